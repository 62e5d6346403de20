//! `weir:agent/model`: chat and embedding calls to the agent's model
//! resources, each granted to the action by name, with token usage and
//! latency counted per (action, model).

use super::bindings::weir::agent::model as wit;
use super::tools::{LOAD_SKILL, Offer};
use super::{CallError, Callee, Capability, HostError, InstanceState, Op, Task};
use crate::resources::api::{ChatOptions, ChatReply, Message, ModelError, ToolCall};
use crate::resources::setup::ChatModel;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use wasmtime::component::HasSelf;

/// `weir:agent/model` in the list of capabilities.
pub(super) const CAPABILITY: super::HostCapability = super::HostCapability {
    interface: "weir:agent/model",
    link: |linker| wit::add_to_linker::<_, HasSelf<_>>(linker, |state| state),
    lacks: |grants| {
        grants
            .models
            .is_empty()
            .then_some("model (`models = [...]`)")
    },
};

const CHAT: Op = Op {
    capability: Capability::Model,
    name: "model.chat",
};
const EMBED: Op = Op {
    capability: Capability::Model,
    name: "model.embed",
};

/// Model calls of one (action, model) pair.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ModelStats {
    /// Calls made.
    pub calls: u64,
    /// Calls that failed.
    pub failures: u64,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Total wall time in calls, in milliseconds.
    pub total_ms: f64,
}

/// Token usage and latency per (action, model), for the run summary.
#[derive(Debug, Default)]
pub struct ModelUsage {
    stats: Mutex<BTreeMap<(String, String), ModelStats>>,
}

impl ModelUsage {
    fn record(&self, action: &str, model: &str, started: Instant, tokens: Option<(u64, u64)>) {
        let mut stats = self.stats.lock().expect("usage lock");
        let entry = stats
            .entry((action.to_string(), model.to_string()))
            .or_default();
        entry.calls += 1;
        entry.total_ms += started.elapsed().as_secs_f64() * 1e3;
        match tokens {
            Some((input, output)) => {
                entry.input_tokens += input;
                entry.output_tokens += output;
            }
            None => entry.failures += 1,
        }
    }

    /// A snapshot: action -> model -> stats.
    pub fn snapshot(&self) -> BTreeMap<String, BTreeMap<String, ModelStats>> {
        let mut out: BTreeMap<String, BTreeMap<String, ModelStats>> = BTreeMap::new();
        for ((action, model), stats) in self.stats.lock().expect("usage lock").iter() {
            out.entry(action.clone())
                .or_default()
                .insert(model.clone(), stats.clone());
        }
        out
    }
}

fn model_error(model: &str, e: ModelError) -> HostError {
    match e {
        ModelError::Invalid(m) => HostError::Invalid(format!("model `{model}`: {m}")),
        other => HostError::Failed(format!("model `{model}`: {other}")),
    }
}

/// What an action asks of a chat model.
#[derive(Debug, Clone)]
pub(crate) struct ChatCall {
    pub model: String,
    pub messages: Vec<Message>,
    pub options: ChatOptions,
    pub output_schema: Option<Value>,
    pub use_tools: bool,
}

impl Task {
    fn granted_model(&mut self, model: &str) -> Result<(), HostError> {
        if self.input.grants.models.contains(model) {
            return Ok(());
        }
        let message = format!(
            "action {} is not granted model `{model}` (grant it with `models = [\"{model}\"]`)",
            self.principal()
        );
        Err(self.deny("model", model, message))
    }

    /// What a chat request to `resource` offers, for this task's grants:
    /// with `use_tools`, the resource's tools the requester is granted, and
    /// its skills (names and descriptions up front, the rest on demand
    /// through `load_skill`) only for a requester granted `load_skill`.
    pub(crate) fn offer(&self, resource: &ChatModel, use_tools: bool) -> Offer {
        if !use_tools {
            return Offer::default();
        }
        let granted = &self.input.grants.tools;
        let skills: &[String] = if granted.contains(LOAD_SKILL) {
            &resource.skills
        } else {
            &[]
        };
        self.input.env.tools.offer(&resource.tools, skills, granted)
    }

    /// Asks a chat model for the next message.
    pub(crate) async fn chat(&mut self, call: ChatCall) -> Result<ChatReply, HostError> {
        let request = (
            &call.model,
            &call.messages,
            &call.options,
            &call.output_schema,
            call.use_tools,
        );
        let request = super::durable::request_digest(CHAT.name, &request);
        let model = call.model.clone();
        let asked = self
            .logs_calls()
            .then(|| serde_json::to_value(&call.messages).unwrap_or_default());
        self.call_async(
            CHAT,
            Callee::Chat(&model),
            asked,
            &request,
            |task, _site| {
                task.granted_model(&call.model)?;
                let env = task.input.env.clone();
                let resource = env
                    .resources
                    .chat_model(&call.model)
                    .map_err(|e| HostError::Failed(e.to_string()))?;
                let offer = task.offer(&resource, call.use_tools);
                let extra_system = offer.prompt;
                let tools = offer.tools;
                let usage = task.input.usage.clone();
                let action = task.input.action_name.clone();
                Ok(async move {
                    let started = Instant::now();
                    let reply = resource
                        .chat(
                            call.messages,
                            tools,
                            &call.options,
                            call.output_schema,
                            extra_system,
                        )
                        .await;
                    let tokens = reply
                        .as_ref()
                        .ok()
                        .map(|r| (r.usage.input_tokens, r.usage.output_tokens));
                    usage.record(&action, &call.model, started, tokens);
                    reply.map_err(|e| model_error(&call.model, e))
                })
            },
        )
        .await
    }

    /// Embeds texts with an embedding model.
    pub(crate) async fn embed(
        &mut self,
        model: String,
        texts: Vec<String>,
    ) -> Result<Vec<Vec<f32>>, HostError> {
        let request = super::durable::request_digest(EMBED.name, &(&model, &texts));
        let asked = self.logs_calls().then(|| serde_json::json!(texts));
        self.call_async(
            EMBED,
            Callee::Embed(&model.clone()),
            asked,
            &request,
            |task, _site| {
                task.granted_model(&model)?;
                let resource = task
                    .input
                    .env
                    .resources
                    .embedding_model(&model)
                    .map_err(|e| HostError::Failed(e.to_string()))?;
                let usage = task.input.usage.clone();
                let action = task.input.action_name.clone();
                Ok(async move {
                    let started = Instant::now();
                    let result = resource.embed(texts).await;
                    usage.record(
                        &action,
                        &model,
                        started,
                        result.as_ref().ok().map(|e| (e.tokens, 0)),
                    );
                    result
                        .map(|e| e.vectors)
                        .map_err(|e| model_error(&model, e))
                })
            },
        )
        .await
    }
}

fn from_wit(m: wit::Message) -> Result<Message, HostError> {
    let mut tool_calls = Vec::with_capacity(m.tool_calls.len());
    for call in m.tool_calls {
        let arguments = serde_json::from_str(&call.arguments).map_err(|e| {
            HostError::Invalid(format!(
                "arguments of tool call `{}` are not JSON: {e}",
                call.id
            ))
        })?;
        tool_calls.push(ToolCall {
            id: call.id,
            name: call.name,
            arguments,
        });
    }
    Ok(Message {
        role: m.role,
        content: m.content,
        tool_calls,
        tool_call_id: m.tool_call_id,
    })
}

fn to_wit(m: Message) -> wit::Message {
    wit::Message {
        role: m.role,
        content: m.content,
        tool_calls: m
            .tool_calls
            .into_iter()
            .map(|c| wit::ToolCall {
                id: c.id,
                name: c.name,
                arguments: c.arguments.to_string(),
            })
            .collect(),
        tool_call_id: m.tool_call_id,
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(
    what: &str,
    text: Option<String>,
) -> Result<Option<T>, HostError> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| HostError::Invalid(format!("{what}: {e}"))))
        .transpose()
}

impl wit::Host for InstanceState {
    async fn chat(&mut self, request: wit::ChatRequest) -> Result<wit::ChatResponse, CallError> {
        let call = (|| -> Result<ChatCall, HostError> {
            let messages = request
                .messages
                .into_iter()
                .map(from_wit)
                .collect::<Result<_, _>>()?;
            Ok(ChatCall {
                model: request.model,
                messages,
                options: parse_json("options", request.options)?.unwrap_or_default(),
                output_schema: parse_json("output schema", request.output_schema)?,
                use_tools: request.use_tools,
            })
        })();
        let reply = self.task.chat(call?).await?;
        Ok(wit::ChatResponse {
            message: to_wit(reply.message),
            finish_reason: reply.finish_reason,
            usage: wit::Usage {
                input_tokens: reply.usage.input_tokens.min(u32::MAX as u64) as u32,
                output_tokens: reply.usage.output_tokens.min(u32::MAX as u64) as u32,
            },
            model: reply.model,
        })
    }

    async fn embed(
        &mut self,
        model: String,
        texts: Vec<String>,
    ) -> Result<Vec<Vec<f32>>, CallError> {
        Ok(self.task.embed(model, texts).await?)
    }
}
