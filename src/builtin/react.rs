//! The ReAct action: turns each input into a chat request (with the model's
//! tools offered), and the final chat response into the output.

use super::chat::{ChatRequest, ChatResponse};
use super::{BuiltinError, payload, to_value};
use crate::event::{Event, types};
use crate::host::Task;
use crate::resources::api::{ChatOptions, Message};
use crate::resources::setup::parse_json_reply;
use serde::Serialize;
use serde_json::Value;

/// The ReAct agent's settings.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ReactConfig {
    pub model: String,
    pub prompt: Option<String>,
    pub output_schema: Option<Value>,
    pub max_steps: u32,
}

fn user_message(prompt: Option<&str>, input: &Value) -> String {
    let input = match input {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    match prompt {
        Some(template) => template.replace("{input}", &input),
        None => input,
    }
}

pub(super) async fn run(
    config: &ReactConfig,
    event: &Event,
    task: &mut Task,
) -> Result<(), BuiltinError> {
    match event.event_type.as_str() {
        types::CHAT_RESPONSE => {
            let response: ChatResponse = payload(event)?;
            let output = match &config.output_schema {
                // The model call already checked the reply against the schema.
                Some(_) => parse_json_reply(&response.response.content).map_err(|e| {
                    BuiltinError::new("bad-output", format!("the final answer is not JSON: {e}"))
                })?,
                None => Value::String(response.response.content),
            };
            task.emit(types::OUTPUT.to_string(), output, Vec::new())?;
        }
        _ => {
            let request = ChatRequest {
                request_id: Some(event.id.clone()),
                model: config.model.clone(),
                messages: vec![Message::new(
                    "user",
                    user_message(config.prompt.as_deref(), &event.payload),
                )],
                output_schema: config.output_schema.clone(),
                use_tools: true,
                options: ChatOptions::default(),
            };
            task.emit(
                types::CHAT_REQUEST.to_string(),
                to_value(&request),
                Vec::new(),
            )?;
        }
    }
    Ok(())
}
