//! `weir:agent/tools`: calling the agent's tools by name, each granted to
//! the action by name.

use super::bindings::weir::agent::tools::Host;
use super::bindings::weir::agent::types::ToolSpec as WitToolSpec;
use super::{Capability, HostError, Op, Task, TaskState};
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
        self.call_async(CALL, |task| {
            if task.input.env.tools.spec(&name).is_none() {
                return Err(HostError::Invalid(format!("no tool named `{name}`")));
            }
            if !task.input.grants.tools.contains(&name) {
                return Err(HostError::Denied(format!(
                    "action `{}` is not granted tool `{name}` (grant it with `tools = [\"{name}\"]`)",
                    task.input.action_name
                )));
            }
            let catalog = task.input.env.tools.clone();
            let key = task.input.key.clone();
            Ok(async move { catalog.call(&name, arguments, &key).await })
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
        Ok(self
            .task
            .call_tool(name, arguments)
            .await
            .map(|v| v.to_string()))
    }
}
