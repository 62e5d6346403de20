//! Model resources, split as Flink Agents splits them: a connection (provider,
//! server, credentials, timeouts, retries, concurrency) and a setup (model
//! name, system prompt, default options, the tools it may offer).
//!
//! ```toml
//! [resources.openai]
//! kind = "chat-model-connection"
//! provider = "openai"                 # openai | anthropic | local
//! base_url = "https://api.openai.com/v1"
//! api_key_env = "OPENAI_API_KEY"      # the key is read from this variable
//! timeout_ms = 60000
//! max_retries = 3
//! max_concurrency = 64                # calls in flight through this connection
//!
//! [resources.reviewer]
//! kind = "chat-model"
//! connection = "openai"
//! model = "gpt-4o-mini"
//! system_prompt = "You analyse product reviews."
//! options = { temperature = 0.0, max_tokens = 512 }
//! tools = ["lookup"]
//! ```

use super::anthropic::Anthropic;
use super::api::*;
use super::http::HttpSettings;
use super::local::Local;
use super::openai::OpenAi;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Kind names.
pub const CHAT_CONNECTION: &str = "chat-model-connection";
/// Kind names.
pub const EMBEDDING_CONNECTION: &str = "embedding-model-connection";
/// Kind names.
pub const CHAT_MODEL: &str = "chat-model";
/// Kind names.
pub const EMBEDDING_MODEL: &str = "embedding-model";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionConfig {
    provider: String,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    api_key_env: Option<String>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_retries")]
    max_retries: u32,
    #[serde(default = "default_backoff_ms")]
    backoff_ms: u64,
    #[serde(default)]
    max_concurrency: Option<usize>,
}

fn default_timeout_ms() -> u64 {
    60_000
}
fn default_retries() -> u32 {
    3
}
fn default_backoff_ms() -> u64 {
    200
}
/// Calls in flight per connection unless set: remote servers take many; the
/// embedded provider computes on the CPU, where one at a time is fastest.
fn default_concurrency(provider: &str) -> usize {
    if provider == "local" { 1 } else { 64 }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatSetupConfig {
    connection: String,
    #[serde(default)]
    model: Option<String>,
    /// The model file, for the embedded provider.
    #[serde(default)]
    model_path: Option<String>,
    #[serde(default)]
    system_prompt: Option<String>,
    #[serde(default)]
    options: Map<String, Value>,
    #[serde(default)]
    tools: Vec<String>,
    /// Installed skills the model is offered (progressive disclosure).
    #[serde(default)]
    skills: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbeddingSetupConfig {
    connection: String,
    #[serde(default)]
    model: Option<String>,
    /// The model directory, for the embedded provider.
    #[serde(default)]
    model_path: Option<String>,
}

/// The name a provider is asked for: the file for the embedded provider,
/// else the model name.
fn model_name(
    provider: &str,
    model: Option<String>,
    model_path: Option<String>,
) -> Result<String, String> {
    match (provider, model, model_path) {
        ("local", _, Some(path)) => Ok(path),
        ("local", _, None) => Err("the embedded provider needs `model_path`".into()),
        (_, Some(model), _) => Ok(model),
        (_, None, _) => Err("missing `model`".into()),
    }
}

fn parse<T: serde::de::DeserializeOwned>(config: &Map<String, Value>) -> Result<T, String> {
    serde_json::from_value(Value::Object(config.clone())).map_err(|e| e.to_string())
}

/// Checks a model resource's settings without creating it. Returns the
/// resources it refers to (connection, tools) for the plan to check.
pub(crate) fn check(kind: &str, config: &Map<String, Value>) -> Result<References, String> {
    match kind {
        CHAT_CONNECTION | EMBEDDING_CONNECTION => {
            let c: ConnectionConfig = parse(config)?;
            match (kind, c.provider.as_str()) {
                (_, "openai" | "local") | (CHAT_CONNECTION, "anthropic") => {}
                (EMBEDDING_CONNECTION, "anthropic") => {
                    return Err("provider `anthropic` has no embeddings API".into());
                }
                (_, other) => {
                    return Err(format!(
                        "unknown provider `{other}` (known: openai, anthropic, local)"
                    ));
                }
            }
            if c.max_concurrency == Some(0) {
                return Err("max_concurrency must be at least 1".into());
            }
            Ok(References::default())
        }
        CHAT_MODEL => {
            let s: ChatSetupConfig = parse(config)?;
            ChatOptions::from_map(&s.options)?;
            if s.model.is_none() && s.model_path.is_none() {
                return Err("set `model` (or `model_path` for the embedded provider)".into());
            }
            Ok(References {
                connection: Some((s.connection, CHAT_CONNECTION)),
                tools: s.tools,
                skills: s.skills,
            })
        }
        EMBEDDING_MODEL => {
            let s: EmbeddingSetupConfig = parse(config)?;
            if s.model.is_none() && s.model_path.is_none() {
                return Err("set `model` (or `model_path` for the embedded provider)".into());
            }
            Ok(References {
                connection: Some((s.connection, EMBEDDING_CONNECTION)),
                ..References::default()
            })
        }
        other => Err(format!("not a model kind: {other}")),
    }
}

/// What a model resource refers to.
#[derive(Debug, Default)]
pub(crate) struct References {
    pub connection: Option<(String, &'static str)>,
    pub tools: Vec<String>,
    pub skills: Vec<String>,
}

fn http_client() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .user_agent(concat!("weir/", env!("CARGO_PKG_VERSION")))
                .build()
                .expect("build the HTTP client")
        })
        .clone()
}

/// A connection to a model server.
pub struct Connection {
    provider: &'static str,
    chat: Arc<dyn ChatProvider>,
    embeddings: Option<Arc<dyn EmbeddingProvider>>,
    permits: Semaphore,
}

impl Connection {
    pub(crate) fn create(config: &Map<String, Value>) -> Result<Self, String> {
        let c: ConnectionConfig = parse(config)?;
        let api_key = match &c.api_key_env {
            None => None,
            Some(var) => Some(std::env::var(var).map_err(|_| {
                format!("the environment variable `{var}` (api_key_env) is not set")
            })?),
        };
        let settings = HttpSettings {
            timeout: Duration::from_millis(c.timeout_ms),
            max_retries: c.max_retries,
            backoff: Duration::from_millis(c.backoff_ms),
            ..HttpSettings::default()
        };
        let (provider, chat, embeddings): (
            &'static str,
            Arc<dyn ChatProvider>,
            Option<Arc<dyn EmbeddingProvider>>,
        ) = match c.provider.as_str() {
            "openai" => {
                let base = c.base_url.as_deref().unwrap_or("https://api.openai.com/v1");
                let client = OpenAi::new(http_client(), base, api_key, settings);
                ("openai", Arc::new(client.clone()), Some(Arc::new(client)))
            }
            "anthropic" => {
                let base = c.base_url.as_deref().unwrap_or("https://api.anthropic.com");
                let client = Anthropic::new(http_client(), base, api_key, settings);
                ("anthropic", Arc::new(client), None)
            }
            "local" => {
                let local = Local::new();
                ("local", Arc::new(local.clone()), Some(Arc::new(local)))
            }
            other => return Err(format!("unknown provider `{other}`")),
        };
        Ok(Connection {
            provider,
            chat,
            embeddings,
            permits: Semaphore::new(
                c.max_concurrency
                    .unwrap_or_else(|| default_concurrency(&c.provider)),
            ),
        })
    }

    /// The provider's name (`openai`, `anthropic`).
    pub fn provider(&self) -> &'static str {
        self.provider
    }
}

/// A chat model setup over a connection.
pub struct ChatModel {
    connection: Arc<Connection>,
    model: String,
    system_prompt: Option<String>,
    options: ChatOptions,
    /// The tools this setup may offer the model.
    pub tools: Vec<String>,
    /// The installed skills it offers the model.
    pub skills: Vec<String>,
}

impl ChatModel {
    pub(crate) fn create(
        config: &Map<String, Value>,
        connection: Arc<Connection>,
    ) -> Result<Self, String> {
        let s: ChatSetupConfig = parse(config)?;
        Ok(ChatModel {
            options: ChatOptions::from_map(&s.options)?,
            model: model_name(connection.provider, s.model, s.model_path)?,
            connection,
            system_prompt: s.system_prompt,
            tools: s.tools,
            skills: s.skills,
        })
    }

    /// The provider's model name.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The provider's name.
    pub fn provider(&self) -> &'static str {
        self.connection.provider
    }

    /// Sends a conversation: the setup's system prompt first (with `extra`
    /// appended to whichever system prompt leads), its options overlaid by
    /// `options`; a reply is checked against `output_schema`.
    pub async fn chat(
        &self,
        mut messages: Vec<Message>,
        tools: Vec<ToolSpec>,
        options: &ChatOptions,
        output_schema: Option<Value>,
        extra_system: Option<String>,
    ) -> Result<ChatReply, ModelError> {
        if let Some(system) = &self.system_prompt
            && messages.first().is_none_or(|m| m.role != "system")
        {
            messages.insert(0, Message::new("system", system.clone()));
        }
        if let Some(extra) = extra_system {
            match messages.first_mut() {
                Some(first) if first.role == "system" => {
                    first.content = format!("{}\n\n{extra}", first.content);
                }
                _ => messages.insert(0, Message::new("system", extra)),
            }
        }
        let validator = match &output_schema {
            Some(schema) => Some(jsonschema::validator_for(schema).map_err(|e| {
                ModelError::Invalid(format!("the output schema is not a valid JSON Schema: {e}"))
            })?),
            None => None,
        };
        let request = ChatRequest {
            model: self.model.clone(),
            messages,
            tools,
            options: self.options.clone().overlay(options),
            output_schema,
        };
        let provider = &self.connection.chat;
        let _permit = self
            .connection
            .permits
            .acquire()
            .await
            .expect("never closed");
        let reply = provider.chat(request).await?;
        if let Some(validator) = validator
            && reply.message.tool_calls.is_empty()
        {
            let value = parse_json_reply(&reply.message.content).map_err(|e| {
                ModelError::Invalid(format!(
                    "the model's reply is not JSON ({e}): {}",
                    reply.message.content
                ))
            })?;
            if let Err(error) = validator.validate(&value) {
                return Err(ModelError::Invalid(format!(
                    "the model's reply does not follow the output schema: {error}"
                )));
            }
        }
        Ok(reply)
    }
}

/// Reads a JSON reply, tolerating a Markdown code fence around it.
pub fn parse_json_reply(content: &str) -> Result<Value, serde_json::Error> {
    let trimmed = content.trim();
    let unfenced = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.strip_suffix("```"))
        .unwrap_or(trimmed);
    serde_json::from_str(unfenced.trim())
}

/// An embedding model setup over a connection.
pub struct EmbeddingModel {
    connection: Arc<Connection>,
    model: String,
}

impl EmbeddingModel {
    pub(crate) fn create(
        config: &Map<String, Value>,
        connection: Arc<Connection>,
    ) -> Result<Self, String> {
        let s: EmbeddingSetupConfig = parse(config)?;
        if connection.embeddings.is_none() {
            return Err(format!(
                "connection `{}` has no embeddings API",
                s.connection
            ));
        }
        Ok(EmbeddingModel {
            model: model_name(connection.provider, s.model, s.model_path)?,
            connection,
        })
    }

    /// The provider's model name.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The provider's name.
    pub fn provider(&self) -> &'static str {
        self.connection.provider
    }

    /// Embeds `texts`: one vector per text.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Embeddings, ModelError> {
        let provider = self
            .connection
            .embeddings
            .as_ref()
            .expect("checked at creation");
        let _permit = self
            .connection
            .permits
            .acquire()
            .await
            .expect("never closed");
        provider.embed(self.model.clone(), texts).await
    }
}
