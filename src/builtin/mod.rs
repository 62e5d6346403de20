//! Built-in actions, with Flink Agents' event names: the chat-model action
//! (`_chat_request_event` and `_tool_response_event` -> model ->
//! `_tool_request_event` or `_chat_response_event`), the tool-call action
//! (`_tool_request_event` -> tools -> `_tool_response_event`) and the ReAct
//! action (`_input_event` -> chat -> `_output_event`).
//!
//! They run in the host, but reach models, tools, memory and events through
//! the same host-call path as guests, with the same grants.

mod chat;
mod react;
mod tool_call;

use crate::event::Event;
use crate::host::Task;
use serde::Serialize;
use serde_json::Value;

pub(crate) use react::ReactConfig;

/// Names of the built-in actions the plan adds.
pub mod names {
    /// Answers chat requests and tool responses.
    pub const CHAT_MODEL: &str = "chat_model_action";
    /// Runs tool requests.
    pub const TOOL_CALL: &str = "tool_call_action";
    /// The ReAct agent's action.
    pub const REACT: &str = "react_action";
}

/// A built-in action.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "builtin")]
pub(crate) enum Builtin {
    /// The chat-model action; `max_steps` bounds model calls per request.
    ChatModel { max_steps: u32 },
    /// The tool-call action.
    ToolCall,
    /// The ReAct action.
    React(ReactConfig),
}

/// Why a built-in action failed: becomes the error event's code and message.
#[derive(Debug)]
pub(crate) struct BuiltinError {
    pub code: &'static str,
    pub message: String,
}

impl BuiltinError {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        BuiltinError {
            code,
            message: message.into(),
        }
    }
}

impl From<crate::host::HostError> for BuiltinError {
    fn from(e: crate::host::HostError) -> Self {
        let (code, message) = e.into_parts();
        BuiltinError::new(code, message)
    }
}

/// Decodes a payload, naming the event type on failure.
fn payload<T: serde::de::DeserializeOwned>(event: &Event) -> Result<T, BuiltinError> {
    serde_json::from_value(event.payload.clone()).map_err(|e| {
        BuiltinError::new(
            "bad-payload",
            format!("payload of a `{}` event: {e}", event.event_type),
        )
    })
}

fn to_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("built-in payloads serialise")
}

impl Builtin {
    /// True for the chat-model and tool-call actions, which hold no grants
    /// of their own and act for the action whose request they serve.
    pub(crate) fn acts_for_requester(&self) -> bool {
        matches!(self, Builtin::ChatModel { .. } | Builtin::ToolCall)
    }

    /// Runs the action on `event` through `task`.
    pub(crate) async fn run(&self, event: &Event, task: &mut Task) -> Result<(), BuiltinError> {
        match self {
            Builtin::ChatModel { max_steps } => chat::run(event, task, *max_steps).await,
            Builtin::ToolCall => tool_call::run(event, task).await,
            Builtin::React(config) => react::run(config, event, task).await,
        }
    }
}
