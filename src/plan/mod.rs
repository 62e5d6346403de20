//! The agent plan: an [`Agent`] checked against its components and compiled.
//!
//! [`AgentPlan::from_agent`] (Flink Agents' step of the same name) loads and
//! compiles every component once, checks each mapped export against the
//! component's actions and the WIT contract, builds `actions_by_event`, the
//! lazily created resource providers and the config. Every problem found is
//! reported at once, each naming the manifest file, line and field.

mod error;
mod planner;
mod resolve;

pub use error::{PlanError, Problem};

use crate::agent::{Agent, Isolation, RuntimeSettings};
use crate::builtin::Builtin;
use crate::host::{ActionConfig, Authority, Grants, TaskEnv};
use crate::limits::Limits;
use crate::resources::ResourceProviders;
use crate::resources::api::ToolSpec;
use crate::sandbox::{ActionComponent, ActionInfo, CompileSource, InstancePool, Sandbox};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

/// A compiled, checked agent, ready for the runtime. Serialises to JSON
/// (`weir plan` prints it); [`fmt::Display`](std::fmt::Display) prints the same.
#[derive(Serialize)]
pub struct AgentPlan {
    /// The agent's name.
    pub name: String,
    /// What it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Actions by name.
    pub actions: BTreeMap<String, Arc<ActionPlan>>,
    /// For each event type, the actions it triggers, in name order.
    pub actions_by_event: BTreeMap<String, Vec<String>>,
    /// The agent's resources, created on first use.
    pub resource_providers: Arc<ResourceProviders>,
    /// The tools the agent's components provide.
    pub tools: Vec<ToolSpec>,
    /// Agent-wide config.
    pub config: Map<String, Value>,
    /// Components by name.
    pub components: BTreeMap<String, ComponentPlan>,
    /// Runtime settings.
    pub runtime: RuntimeSettings,
    /// What the event log keeps, when one is written.
    pub event_log: crate::observe::eventlog::EventLogSettings,
    /// What the planner found allowed but likely a mistake, each with its
    /// manifest location (also logged as warnings).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// `actions_by_event` resolved to the actions themselves.
    #[serde(skip)]
    routes: HashMap<String, Vec<Arc<ActionPlan>>>,
    /// What the plan's tasks share.
    #[serde(skip)]
    pub(crate) env: Arc<TaskEnv>,
}

/// What runs an action.
#[derive(Clone)]
pub(crate) enum ActionKind {
    /// An export of a WebAssembly component.
    Component(Arc<ActionComponent>),
    /// A built-in action of the host.
    Builtin(Builtin),
}

/// One action of the plan.
#[derive(Serialize)]
pub struct ActionPlan {
    /// The action's name.
    pub name: String,
    /// The component that implements it (empty for built-in actions).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub component: String,
    /// The action's name inside the component.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub export: String,
    /// The built-in action it is, if it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub builtin: Option<String>,
    /// The event types that trigger it.
    pub listen: Vec<String>,
    /// The action's own config (overlaid on the agent's).
    pub config: Map<String, Value>,
    /// What it is granted beyond the defaults.
    pub grants: Arc<Grants>,
    /// The limits its tasks run under.
    pub limits: Limits,
    /// How its tasks get an instance.
    pub isolation: Isolation,
    #[serde(skip)]
    pub(crate) kind: ActionKind,
    /// Warm instances, when its isolation reuses them.
    #[serde(skip)]
    pub(crate) pool: Option<InstancePool>,
    #[serde(skip)]
    pub(crate) merged_config: Arc<ActionConfig>,
    #[serde(skip)]
    pub(crate) name_arc: Arc<str>,
    /// What the events it emits act for (its own name and grants), when a
    /// built-in chat-model or tool-call action serves them.
    #[serde(skip)]
    pub(crate) authority: Arc<Authority>,
}

/// One component of the plan.
#[derive(Serialize)]
pub struct ComponentPlan {
    /// The component file.
    pub path: PathBuf,
    /// sha256 of its bytes.
    pub sha256: String,
    /// Whether it was compiled now or loaded from the compile cache.
    pub compiled: CompileSource,
    /// The actions it carries.
    pub carries: Vec<ActionInfo>,
}

impl std::fmt::Debug for AgentPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_json())
    }
}

impl std::fmt::Display for AgentPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_json())
    }
}

impl AgentPlan {
    /// Compiles and checks `agent` in the process-wide [`Sandbox`] (the one
    /// that meters fuel if any of its limits sets `fuel`).
    pub async fn from_agent(agent: &Agent) -> Result<AgentPlan, PlanError> {
        let sandbox = Sandbox::shared_for(agent.uses_fuel()).map_err(PlanError::sandbox)?;
        Self::from_agent_in(agent, sandbox).await
    }

    /// Compiles and checks `agent` in `sandbox`.
    pub async fn from_agent_in(
        agent: &Agent,
        sandbox: Arc<Sandbox>,
    ) -> Result<AgentPlan, PlanError> {
        let agent = agent.clone();
        // Compiling is CPU-bound: keep it off the async worker threads.
        tokio::task::spawn_blocking(move || planner::build(&agent, &sandbox))
            .await
            .map_err(|e| PlanError::sandbox(anyhow::anyhow!("planning panicked: {e}")))?
    }

    /// A digest of what determines the agent's behaviour: its components'
    /// sha256s, actions, routes, resources and config (not where files are
    /// or whether they came from the compile cache). A durable-execution
    /// journal belongs to one fingerprint.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let components: BTreeMap<&String, &String> = self
            .components
            .iter()
            .map(|(n, c)| (n, &c.sha256))
            .collect();
        let actions: Vec<Value> = self
            .actions
            .values()
            .map(|a| {
                serde_json::json!([
                    a.name,
                    a.component,
                    a.export,
                    a.builtin,
                    a.listen,
                    a.config,
                    a.grants,
                    a.limits
                ])
            })
            .collect();
        let stable = serde_json::json!({
            "name": self.name,
            "components": components,
            "actions": actions,
            "config": self.config,
            "tools": self.tools,
        });
        hex::encode(sha2::Sha256::digest(stable.to_string().as_bytes()))
    }

    /// The plan as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plans always serialise")
    }

    /// The actions that `event_type` triggers.
    pub(crate) fn route(&self, event_type: &str) -> &[Arc<ActionPlan>] {
        self.routes.get(event_type).map_or(&[], Vec::as_slice)
    }
}
