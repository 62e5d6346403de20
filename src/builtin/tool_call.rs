//! The tool-call action: runs every call of a `_tool_request_event` and
//! answers with one `_tool_response_event`. A failing tool is reported to the
//! model as that call's error, so it can recover.

use super::{BuiltinError, payload, to_value};
use crate::event::{Event, types};
use crate::host::Task;
use crate::resources::model::ToolCall;
use serde::{Deserialize, Serialize};

/// `_tool_request_event` payload.
#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct ToolRequest {
    pub request_id: String,
    pub tool_calls: Vec<ToolCall>,
}

/// One answered call.
#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct ToolResponse {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `_tool_response_event` payload.
#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct ToolResponses {
    pub request_id: String,
    pub responses: Vec<ToolResponse>,
}

pub(super) async fn run(event: &Event, task: &mut Task) -> Result<(), BuiltinError> {
    let request: ToolRequest = payload(event)?;
    let mut responses = Vec::with_capacity(request.tool_calls.len());
    for call in request.tool_calls {
        let outcome = task.call_tool(call.name.clone(), call.arguments).await;
        let (result, error) = match outcome {
            Ok(value) => (Some(value), None),
            Err(e) => (None, Some(BuiltinError::from(e).message)),
        };
        responses.push(ToolResponse {
            id: call.id,
            name: call.name,
            result,
            error,
        });
    }
    let answer = ToolResponses {
        request_id: request.request_id,
        responses,
    };
    task.emit(
        types::TOOL_RESPONSE.to_string(),
        to_value(&answer),
        Vec::new(),
    )?;
    Ok(())
}
