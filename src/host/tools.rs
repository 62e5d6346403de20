//! `weir:agent/tools`: calling the agent's tools by name, each granted to
//! the action by name.

use super::bindings::weir::agent::tools::Host;
use super::bindings::weir::agent::types::ToolSpec as WitToolSpec;
use super::{Capability, HostError, Op, Task, TaskState};
use crate::limits::Limit;
use crate::tools::ToolCaller;
use serde_json::Value;

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
        let request = crate::state::request_digest(CALL.name, &request);
        self.call_async(CALL, &request, |task, site| {
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
                idempotency: crate::host::idempotency_key(&task.input.env.agent, &site.position),
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
                        let answer = catalog.reconcile(&name, &arguments, again).await?;
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
                catalog.call(&name, arguments, caller).await
            })
        })
        .await
    }
}

impl Host for TaskState {
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

    async fn call(
        &mut self,
        name: String,
        arguments: String,
    ) -> wasmtime::Result<Result<String, HostError>> {
        let arguments = match serde_json::from_str(&arguments) {
            Ok(arguments) => arguments,
            Err(e) => {
                return Ok(Err(HostError::Invalid(format!(
                    "arguments of tool `{name}` are not JSON: {e}"
                ))));
            }
        };
        let result = self.task.call_tool(name, arguments).await;
        self.task.stop_on_limit(result.map(|v| v.to_string()))
    }
}
