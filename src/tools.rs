//! The agent's tools: what its components export through `tool-provider`,
//! checked at plan time (names, schemas, no duplicates) and run in a fresh
//! instance per call with only logging granted.

use crate::host::{HostError, KeyMemory, TaskInput, TaskState};
use crate::resources::model::ToolSpec;
use crate::sandbox::{ActionComponent, StoreLimits};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Guest CPU time one tool call may use, in epoch ticks (10 ms each by default).
const TOOL_CPU_TICKS: u64 = 1_000;

struct Tool {
    spec: ToolSpec,
    component: Arc<ActionComponent>,
    validator: Arc<jsonschema::Validator>,
}

/// Every tool of an agent, by name.
#[derive(Default)]
pub struct ToolCatalog {
    tools: BTreeMap<String, Tool>,
}

impl std::fmt::Debug for ToolCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.tools.keys()).finish()
    }
}

/// True for MCP-valid tool names: 1-128 of `[A-Za-z0-9_.-]`.
pub fn valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl ToolCatalog {
    /// Collects the tools of `components`; each problem is reported with the
    /// component's name.
    pub(crate) fn build(
        components: &BTreeMap<String, Arc<ActionComponent>>,
    ) -> (ToolCatalog, Vec<(String, String)>) {
        let mut tools: BTreeMap<String, Tool> = BTreeMap::new();
        let mut owners: BTreeMap<String, String> = BTreeMap::new();
        let mut problems = Vec::new();
        for (component_name, component) in components {
            for spec in component.tools() {
                let mut problem =
                    |message: String| problems.push((component_name.clone(), message));
                if !valid_name(&spec.name) {
                    problem(format!(
                        "tool name `{}` must be 1-128 characters of A-Z, a-z, 0-9, `_`, `.`, `-`",
                        spec.name
                    ));
                    continue;
                }
                if let Some(owner) = owners.get(&spec.name) {
                    problem(format!(
                        "tool `{}` is also provided by component `{owner}`",
                        spec.name
                    ));
                    continue;
                }
                if spec.parameters.get("type").and_then(Value::as_str) != Some("object") {
                    problem(format!(
                        "the parameters schema of tool `{}` must have `\"type\": \"object\"` at its root",
                        spec.name
                    ));
                    continue;
                }
                let validator = match jsonschema::validator_for(&spec.parameters) {
                    Ok(v) => v,
                    Err(e) => {
                        problem(format!(
                            "tool `{}` has an invalid parameters schema: {e}",
                            spec.name
                        ));
                        continue;
                    }
                };
                owners.insert(spec.name.clone(), component_name.clone());
                tools.insert(
                    spec.name.clone(),
                    Tool {
                        spec: spec.clone(),
                        component: component.clone(),
                        validator: Arc::new(validator),
                    },
                );
            }
        }
        (ToolCatalog { tools }, problems)
    }

    /// The tool `name`'s spec.
    pub fn spec(&self, name: &str) -> Option<&ToolSpec> {
        self.tools.get(name).map(|t| &t.spec)
    }

    /// Every tool's spec, by name.
    pub fn specs(&self) -> impl Iterator<Item = &ToolSpec> {
        self.tools.values().map(|t| &t.spec)
    }

    /// Checks `arguments` against tool `name`'s schema and runs it in a
    /// fresh instance. The call runs as its own task, aborted if the caller
    /// stops waiting.
    pub(crate) async fn call(
        &self,
        name: &str,
        arguments: Value,
        key: &str,
    ) -> Result<Value, HostError> {
        let tool = self
            .tools
            .get(name)
            .ok_or_else(|| HostError::Invalid(format!("no tool named `{name}`")))?;
        let errors: Vec<String> = tool
            .validator
            .iter_errors(&arguments)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("{at}: {e}")
                }
            })
            .collect();
        if !errors.is_empty() {
            return Err(HostError::Invalid(format!(
                "arguments of tool `{name}` do not match its schema: {}",
                errors.join("; ")
            )));
        }
        let component = tool.component.clone();
        let name = name.to_string();
        let key = key.to_string();
        let run = tokio::spawn(async move { run_tool(&component, &name, arguments, key).await });
        let abort = run.abort_handle();
        let _abort_on_drop = AbortOnDrop(abort);
        run.await
            .map_err(|e| HostError::Failed(format!("the tool task failed: {e}")))?
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn run_tool(
    component: &ActionComponent,
    name: &str,
    arguments: Value,
    key: String,
) -> Result<Value, HostError> {
    let sandbox = &component.sandbox;
    let input = TaskInput {
        action_name: Arc::from(format!("tool:{name}")),
        config: Arc::default(),
        grants: Arc::new(crate::host::Grants::tool_default()),
        env: Arc::default(),
        usage: Arc::default(),
        key,
        event_id: String::new(),
        memory: KeyMemory::default(),
        max_emits: 0,
    };
    let mut store = sandbox.new_store(
        TaskState::new(input, sandbox.config().max_memory_bytes),
        StoreLimits {
            cpu_ticks: TOOL_CPU_TICKS,
        },
    );
    let outcome = async {
        let instance = component.pre.instantiate_async(&mut store).await?;
        instance
            .weir_agent_tool_provider()
            .call_call(&mut store, name, &arguments.to_string())
            .await
    }
    .await;
    match outcome {
        Ok(Ok(text)) => serde_json::from_str(&text).map_err(|e| {
            HostError::Failed(format!("tool `{name}` returned non-JSON ({e}): {text}"))
        }),
        Ok(Err(e)) => Err(HostError::Failed(format!(
            "tool `{name}` failed: {}: {}",
            e.code, e.message
        ))),
        Err(trap) => {
            let (stderr, _) = store.data().captured_output();
            let stderr = stderr.trim();
            let detail = if stderr.is_empty() {
                String::new()
            } else {
                format!("; stderr: {stderr}")
            };
            Err(HostError::Failed(format!(
                "tool `{name}` trapped: {trap:#}{detail}"
            )))
        }
    }
}
