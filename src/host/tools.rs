//! `weir:agent/tools`: calling the agent's tools by name, each granted to
//! the action by name.
//!
//! Tools run in sandboxes of their own, a layer above the host: the host
//! reaches them only through [`Toolbox`], which the tool catalogue (a
//! layer above) implements.

use super::bindings::weir::agent::tools::Host;
use super::bindings::weir::agent::types::ToolSpec as WitToolSpec;
use super::{
    CallError, Callee, Capability, Grants, HostError, InstanceState, ModelUsage, Offered, Op,
};
use super::{Task, TaskEnv, TaskInput};
use crate::limits::{Limit, Limits};
use crate::resources::api::ToolSpec;
use serde_json::Value;
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use wasmtime::component::HasSelf;

/// `weir:agent/tools` in the list of capabilities.
pub(super) const CAPABILITY: super::HostCapability = super::HostCapability {
    interface: "weir:agent/tools",
    link: |linker| {
        super::bindings::weir::agent::tools::add_to_linker::<_, HasSelf<_>>(linker, |state| state)
    },
    lacks: |grants| grants.tools.is_empty().then_some("tool (`tools = [...]`)"),
};

/// The built-in tool that reads a skill's files.
pub const LOAD_SKILL: &str = "load_skill";
/// The built-in tool that runs a skill's command.
pub const RUN_SKILL_COMMAND: &str = "run_skill_command";

/// What a tool call comes to, later.
pub(crate) type ToolFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, HostError>> + Send + 'a>>;

/// The agent's tools, as the host-call path needs them.
pub(crate) trait Toolbox: Send + Sync {
    /// Tool `name`'s spec, if the agent has such a tool.
    fn spec(&self, name: &str) -> Option<&ToolSpec>;

    /// True if calls of tool `name` have external effects: under durable
    /// execution an intent is recorded before each, and an interrupted one
    /// is reconciled.
    fn is_effect(&self, name: &str) -> bool;

    /// What a chat model whose resource lists `tools` and `skills` is
    /// offered, of what `granted` allows.
    fn offer(&self, tools: &[String], skills: &[String], granted: &BTreeSet<String>) -> Offer;

    /// Runs tool `name` with `arguments` for `caller`.
    fn call(&self, name: String, arguments: Value, caller: ToolCaller) -> ToolFuture<'_, Value>;

    /// Asks what became of an interrupted call of tool `name`:
    /// `Some(result)` if it took effect, `None` if not.
    fn reconcile(
        &self,
        name: String,
        arguments: Value,
        caller: ToolCaller,
    ) -> ToolFuture<'_, Option<Value>>;
}

/// No tools: what a task outside any plan sees.
pub(crate) struct NoTools;

impl Toolbox for NoTools {
    fn spec(&self, _: &str) -> Option<&ToolSpec> {
        None
    }

    fn is_effect(&self, _: &str) -> bool {
        false
    }

    fn offer(&self, _: &[String], _: &[String], _: &BTreeSet<String>) -> Offer {
        Offer::default()
    }

    fn call(&self, name: String, _: Value, _: ToolCaller) -> ToolFuture<'_, Value> {
        Box::pin(async move { Err(HostError::Invalid(format!("no tool named `{name}`"))) })
    }

    fn reconcile(&self, name: String, _: Value, _: ToolCaller) -> ToolFuture<'_, Option<Value>> {
        Box::pin(async move { Err(HostError::Invalid(format!("no tool named `{name}`"))) })
    }
}

/// What one chat request offers its model: the tools it may call (with
/// their specs), the skills it may load, and the system-prompt block that
/// names those skills.
#[derive(Debug, Default)]
pub(crate) struct Offer {
    pub tools: Vec<ToolSpec>,
    pub skills: BTreeSet<String>,
    pub prompt: Option<String>,
}

impl Offer {
    /// The names offered, for checking the model's tool calls.
    pub(crate) fn names(&self) -> Offered {
        Offered {
            tools: self.tools.iter().map(|t| t.name.clone()).collect(),
            skills: self.skills.clone(),
        }
    }
}

/// Who is calling a tool, for the tool's own task.
#[derive(Clone)]
pub(crate) struct ToolCaller {
    pub key: String,
    pub env: Arc<TaskEnv>,
    pub usage: Arc<ModelUsage>,
    /// The depth the tool runs at (1 when an action calls it).
    pub depth: u32,
    /// The idempotency key of the call, which the tool's task gets as its
    /// own.
    pub idempotency: String,
    /// The call's telemetry: the tool's task runs in its span.
    pub telemetry: Option<crate::observe::telemetry::TaskTelemetry>,
}

impl ToolCaller {
    /// The input of the task that runs a tool, command or reconciler `name`
    /// for this caller, with `grants` and `limits`.
    pub(crate) fn task_input(self, name: String, grants: Arc<Grants>, limits: Limits) -> TaskInput {
        TaskInput {
            action_name: Arc::from(name),
            grants,
            env: self.env,
            usage: self.usage,
            key: self.key,
            limits,
            tool_depth: self.depth,
            idempotency: Some(self.idempotency),
            telemetry: self.telemetry,
            ..TaskInput::idle()
        }
    }
}

const CALL: Op = Op {
    capability: Capability::Tools,
    name: "tools.call",
};
const AVAILABLE: Op = Op {
    capability: Capability::Tools,
    name: "tools.available",
};

impl Task {
    /// Calls tool `name` with `arguments`; returns its result.
    pub(crate) async fn call_tool(
        &mut self,
        name: String,
        arguments: Value,
    ) -> Result<Value, HostError> {
        let request = (&name, &arguments);
        let request = super::durable::request_digest(CALL.name, &request);
        let asked = self.logs_calls().then(|| arguments.clone());
        self.call_async(CALL, Callee::Tool(&name.clone()), asked, &request, |task, site| {
            if task.input.env.tools.spec(&name).is_none() {
                return Err(HostError::Invalid(format!("no tool named `{name}`")));
            }
            if !task.input.grants.tools.contains(&name) {
                let message = format!(
                    "action {} is not granted tool `{name}` (grant it with `tools = [\"{name}\"]`)",
                    task.principal()
                );
                return Err(task.deny("tool", name.clone(), message));
            }
            let depth = task.input.tool_depth + 1;
            if depth > task.input.limits.max_tool_depth {
                let detail = format!("calling tool `{name}` at depth {depth}");
                return Err(task.exceed(Limit::MaxToolDepth, detail));
            }
            let catalog = task.input.env.tools.clone();
            let caller = ToolCaller {
                key: task.input.key.clone(),
                env: task.input.env.clone(),
                usage: task.input.usage.clone(),
                depth,
                idempotency: super::idempotency_key(&task.input.env.agent, &site.position),
                telemetry: site.telemetry.clone(),
            };
            // An effect under durable execution: settle an interrupted call
            // first, and record the intent before calling.
            let journal = site.journal.filter(|_| catalog.is_effect(&name));
            if journal.is_some() {
                // The intent goes to disk with what the task read so far.
                task.save_readings();
            }
            Ok(async move {
                if let Some(journal) = journal {
                    if journal.interrupted {
                        let again = caller.clone();
                        let answer = catalog
                            .reconcile(name.clone(), arguments.clone(), again)
                            .await?;
                        tracing::warn!(
                            tool = %name, took_effect = answer.is_some(),
                            "a call interrupted by a crash was reconciled"
                        );
                        if let Some(result) = answer {
                            return Ok(result);
                        }
                    }
                    journal.record_intent().await?;
                }
                catalog.call(name, arguments, caller).await
            })
        })
        .await
    }
}

impl Host for InstanceState {
    async fn available(&mut self) -> wasmtime::Result<Vec<WitToolSpec>> {
        Ok(self
            .task
            .call(AVAILABLE, |task| {
                let catalog = &task.input.env.tools;
                Ok(task
                    .input
                    .grants
                    .tools
                    .iter()
                    .filter_map(|name| catalog.spec(name))
                    .map(|spec| WitToolSpec {
                        name: spec.name.clone(),
                        description: spec.description.clone(),
                        parameters: spec.parameters.to_string(),
                    })
                    .collect())
            })
            .unwrap_or_default())
    }

    async fn call(&mut self, name: String, arguments: String) -> Result<String, CallError> {
        let arguments = serde_json::from_str(&arguments).map_err(|e| {
            HostError::Invalid(format!("arguments of tool `{name}` are not JSON: {e}"))
        })?;
        let reply = self.task.call_tool(name, arguments).await?;
        Ok(reply.to_string())
    }
}
