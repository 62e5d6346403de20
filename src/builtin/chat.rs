//! The chat-model action: sends a conversation to a model; tool calls go out
//! as a `_tool_request_event` and their answers come back as a
//! `_tool_response_event`, until the model answers with a
//! `_chat_response_event`. The conversation waits in sensory memory between
//! rounds; `max_steps` bounds the model calls of one request.

use super::tool_call::{ToolRequest, ToolResponses};
use super::{BuiltinError, payload, to_value};
use crate::event::{Event, types};
use crate::host::Task;
use crate::host::bindings::weir::agent::memory::Scope;
use crate::host::model::ChatCall;
use crate::resources::api::{ChatOptions, Message, Usage};
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn yes() -> bool {
    true
}

/// `_chat_request_event` payload.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChatRequest {
    /// Identifies the request in the response; default: the event's id.
    #[serde(default)]
    pub request_id: Option<String>,
    /// The chat-model resource.
    pub model: String,
    /// The conversation.
    pub messages: Vec<Message>,
    /// A JSON Schema the answer must follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// Offer the model its resource's tools (default true).
    #[serde(default = "yes")]
    pub use_tools: bool,
    /// Options overriding the resource's.
    #[serde(default)]
    pub options: ChatOptions,
}

/// `_chat_response_event` payload.
#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct ChatResponse {
    pub request_id: String,
    pub response: Message,
    pub finish_reason: String,
    pub usage: Usage,
    pub model: String,
    /// Model calls this request took.
    pub steps: u32,
}

/// A conversation waiting for tool results.
#[derive(Debug, Deserialize, Serialize)]
struct Conversation {
    model: String,
    messages: Vec<Message>,
    output_schema: Option<Value>,
    use_tools: bool,
    options: ChatOptions,
    steps: u32,
}

fn memory_path(request_id: &str) -> String {
    format!("_chat.{}", request_id.replace('.', "_"))
}

/// A chat exchange the runtime handed over without the action that asked
/// for it: never from the runtime's routes (built-in events come only from
/// actions), so a bug, reported rather than served with no grants checked.
pub(super) fn requester_unknown() -> BuiltinError {
    BuiltinError::new(
        "denied",
        "a built-in event arrived without the action that asked for it; nothing ran",
    )
}

pub(super) async fn run(
    event: &Event,
    task: &mut Task,
    max_steps: u32,
) -> Result<(), BuiltinError> {
    let (request_id, mut conversation) = match event.event_type.as_str() {
        types::CHAT_REQUEST => {
            let request: ChatRequest = payload(event)?;
            // The model is checked against the requester's grants, which
            // are this task's (see `host::Authority`).
            let request_id = request.request_id.unwrap_or_else(|| event.id.clone());
            let conversation = Conversation {
                model: request.model,
                messages: request.messages,
                output_schema: request.output_schema,
                use_tools: request.use_tools,
                options: request.options,
                steps: 0,
            };
            (request_id, conversation)
        }
        types::TOOL_RESPONSE => {
            let answers: ToolResponses = payload(event)?;
            let path = memory_path(&answers.request_id);
            let saved = task.memory_get(Scope::Sensory, &path)?.ok_or_else(|| {
                BuiltinError::new(
                    "unknown-request",
                    format!(
                        "no conversation is waiting for tool results of request `{}`",
                        answers.request_id
                    ),
                )
            })?;
            let mut conversation: Conversation = serde_json::from_value(saved)
                .map_err(|e| BuiltinError::new("bad-memory", format!("saved conversation: {e}")))?;
            for answer in answers.responses {
                let content = match (answer.result, answer.error) {
                    (_, Some(error)) => format!("error: {error}"),
                    (Some(Value::String(text)), None) => text,
                    (Some(value), None) => value.to_string(),
                    (None, None) => String::new(),
                };
                let mut message = Message::new("tool", content);
                message.tool_call_id = Some(answer.id);
                conversation.messages.push(message);
            }
            (answers.request_id, conversation)
        }
        other => {
            return Err(BuiltinError::new(
                "unexpected-event",
                format!("the chat-model action does not handle `{other}` events"),
            ));
        }
    };

    if conversation.steps >= max_steps {
        return Err(BuiltinError::new(
            "step-limit",
            format!(
                "request `{request_id}` reached its limit of {max_steps} model calls while the model kept calling tools"
            ),
        ));
    }
    conversation.steps += 1;
    let reply = task
        .chat(ChatCall {
            model: conversation.model.clone(),
            messages: conversation.messages.clone(),
            options: conversation.options.clone(),
            output_schema: conversation.output_schema.clone(),
            use_tools: conversation.use_tools,
        })
        .await?;

    if reply.message.tool_calls.is_empty() {
        let response = ChatResponse {
            request_id,
            response: reply.message,
            finish_reason: reply.finish_reason,
            usage: reply.usage,
            model: reply.model,
            steps: conversation.steps,
        };
        task.emit(
            types::CHAT_RESPONSE.to_string(),
            to_value(&response),
            Vec::new(),
        )?;
    } else {
        // The model may call only what this request offered it: anything
        // else (a name from a poisoned prompt, say) stops the exchange
        // before any tool runs.
        let authority = task.input.on_behalf.clone().ok_or_else(requester_unknown)?;
        let env = task.input.env.clone();
        let resource = env
            .resources
            .chat_model(&conversation.model)
            .map_err(|e| BuiltinError::new("host-failed", e.to_string()))?;
        let offered = task.offer(&resource, conversation.use_tools).names();
        let narrowed = authority.narrowed(offered);
        for call in &reply.message.tool_calls {
            if let Some(why) = narrowed.refuses(&call.name, &call.arguments) {
                return Err(BuiltinError::new(
                    "tool-not-offered",
                    format!(
                        "request `{request_id}` of action `{}` to model `{}`: {why}; no tool ran",
                        authority.action, conversation.model
                    ),
                ));
            }
        }
        let request = ToolRequest {
            request_id: request_id.clone(),
            tool_calls: reply.message.tool_calls.clone(),
        };
        conversation.messages.push(reply.message);
        task.memory_set(
            Scope::Sensory,
            &memory_path(&request_id),
            to_value(&conversation),
        )?;
        task.emit_for(
            types::TOOL_REQUEST.to_string(),
            to_value(&request),
            narrowed,
        )?;
    }
    Ok(())
}
