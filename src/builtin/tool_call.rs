//! The tool-call action: runs every call of a `_tool_request_event` and
//! answers with one `_tool_response_event`. A call that cannot run (an unknown
//! or ungranted tool, arguments that do not match its schema, a tool that
//! fails or traps) fails the action: an error event names the tool and the
//! cause, and the conversation stops there. It acts for the action that
//! asked the model (see `host::Authority`): a call the model's request did
//! not offer runs nothing.

use super::{BuiltinError, payload, to_value};
use crate::event::{Event, types};
use crate::host::Task;
use crate::resources::api::ToolCall;
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
    // Only what the model's request offered may run, each call checked
    // before any runs; the grants checked for each are the requester's.
    let authority = task
        .input
        .on_behalf
        .clone()
        .ok_or_else(super::chat::requester_unknown)?;
    for call in &request.tool_calls {
        if let Some(why) = authority.refuses(&call.name, &call.arguments) {
            let message = format!(
                "tool call `{}` of request `{}` for action `{}`: {why}; no tool ran",
                call.id, request.request_id, authority.action
            );
            return Err(task.deny("tool", call.name.clone(), message).into());
        }
    }
    let mut responses = Vec::with_capacity(request.tool_calls.len());
    for call in request.tool_calls {
        let result = task
            .call_tool(call.name.clone(), call.arguments)
            .await
            .map_err(|e| {
                let cause = BuiltinError::from(e);
                BuiltinError::new(
                    "tool-failed",
                    format!(
                        "tool call `{}` ({}) of request `{}`: {}",
                        call.id, call.name, request.request_id, cause.message
                    ),
                )
            })?;
        responses.push(ToolResponse {
            id: call.id,
            name: call.name,
            result: Some(result),
            error: None,
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
