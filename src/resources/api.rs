//! The provider-neutral model API: messages, tool calls and specs, options,
//! replies and errors, shared by the providers, the host capability and the
//! built-in actions.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future, as the providers return them.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A tool call a model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Id to answer it with.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments (a JSON object).
    pub arguments: Value,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text.
    #[serde(default)]
    pub content: String,
    /// Tool calls (assistant messages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call this message answers (tool messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    /// A message with `role` and `content`.
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Message {
            role: role.to_string(),
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

/// A tool as a model sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// The tool's name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its arguments.
    pub parameters: Value,
}

/// Generation options. Unset fields use the provider's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatOptions {
    /// Sampling temperature; 0 or unset with a seed means greedy where supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Most tokens to generate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
}

impl ChatOptions {
    /// Options from a JSON object; unknown fields are an error.
    pub fn from_map(map: &Map<String, Value>) -> Result<Self, String> {
        serde_json::from_value(Value::Object(map.clone())).map_err(|e| format!("options: {e}"))
    }

    /// `self` with every field that `over` sets taken from `over`.
    pub fn overlay(mut self, over: &ChatOptions) -> Self {
        self.temperature = over.temperature.or(self.temperature);
        self.max_tokens = over.max_tokens.or(self.max_tokens);
        self.seed = over.seed.or(self.seed);
        self.top_p = over.top_p.or(self.top_p);
        if !over.stop.is_empty() {
            self.stop = over.stop.clone();
        }
        self
    }
}

/// What a provider is asked.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The provider's model name.
    pub model: String,
    /// The conversation, system prompt first if any.
    pub messages: Vec<Message>,
    /// Tools offered to the model.
    pub tools: Vec<ToolSpec>,
    /// Options.
    pub options: ChatOptions,
    /// JSON Schema the reply's content must follow.
    pub output_schema: Option<Value>,
}

/// Tokens of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
}

/// A model's reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatReply {
    /// The assistant message.
    pub message: Message,
    /// `stop`, `length`, `tool-calls`, ...
    pub finish_reason: String,
    /// Tokens used.
    pub usage: Usage,
    /// The model that answered.
    pub model: String,
}

/// Why a model call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// The server could not be reached or did not answer in time, after retries.
    #[error("{provider} at {url}: {message} (after {attempts} attempts)")]
    Unavailable {
        /// Provider name.
        provider: &'static str,
        /// The URL called.
        url: String,
        /// What happened last.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The server refused the request.
    #[error("{provider} at {url}: HTTP {status}: {body}")]
    Rejected {
        /// Provider name.
        provider: &'static str,
        /// The URL called.
        url: String,
        /// HTTP status.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The server answered something that is not the protocol.
    #[error("{provider} at {url}: malformed response: {message}")]
    Malformed {
        /// Provider name.
        provider: &'static str,
        /// The URL called.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// The request cannot be made as asked.
    #[error("{0}")]
    Invalid(String),
}

/// A chat model backend.
pub trait ChatProvider: Send + Sync {
    /// Sends one chat request.
    fn chat(&self, request: ChatRequest) -> BoxFuture<Result<ChatReply, ModelError>>;
}

/// Embedding vectors, one per text, and the tokens used.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One vector per text, in order.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens used.
    pub tokens: u64,
}

/// An embedding model backend.
pub trait EmbeddingProvider: Send + Sync {
    /// Embeds `texts` with `model`.
    fn embed(&self, model: String, texts: Vec<String>)
    -> BoxFuture<Result<Embeddings, ModelError>>;
}
