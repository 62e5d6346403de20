//! The agent plan: an [`Agent`] checked against its components and compiled.
//!
//! [`AgentPlan::from_agent`] (Flink Agents' step of the same name) loads and
//! compiles every component once, checks each mapped export against the
//! component's actions and the WIT contract, builds `actions_by_event`, the
//! lazily created resource providers and the config. Every problem found is
//! reported at once, each naming the manifest file, line and field.

mod error;

pub use error::{PlanError, Problem};

use crate::agent::{Agent, Origin, RuntimeSettings};
use crate::event::types;
use crate::host::{ActionConfig, Grants};
use crate::resources::{self, ResourceProviders};
use crate::sandbox::{ActionComponent, ActionInfo, CompileSource, Sandbox};
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
    pub resource_providers: ResourceProviders,
    /// Agent-wide config.
    pub config: Map<String, Value>,
    /// Components by name.
    pub components: BTreeMap<String, ComponentPlan>,
    /// Runtime settings.
    pub runtime: RuntimeSettings,
    /// `actions_by_event` resolved to the actions themselves.
    #[serde(skip)]
    routes: HashMap<String, Vec<Arc<ActionPlan>>>,
}

/// One action of the plan.
#[derive(Serialize)]
pub struct ActionPlan {
    /// The action's name.
    pub name: String,
    /// The component that implements it.
    pub component: String,
    /// The action's name inside the component.
    pub export: String,
    /// The event types that trigger it.
    pub listen: Vec<String>,
    /// The action's own config (overlaid on the agent's).
    pub config: Map<String, Value>,
    #[serde(skip)]
    pub(crate) compiled: Arc<ActionComponent>,
    #[serde(skip)]
    pub(crate) merged_config: Arc<ActionConfig>,
    #[serde(skip)]
    pub(crate) name_arc: Arc<str>,
    #[serde(skip)]
    pub(crate) grants: Grants,
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
    /// Compiles and checks `agent` in the process-wide [`Sandbox`].
    pub async fn from_agent(agent: &Agent) -> Result<AgentPlan, PlanError> {
        let sandbox = Sandbox::shared().map_err(PlanError::sandbox)?;
        Self::from_agent_in(agent, sandbox).await
    }

    /// Compiles and checks `agent` in `sandbox`.
    pub async fn from_agent_in(
        agent: &Agent,
        sandbox: Arc<Sandbox>,
    ) -> Result<AgentPlan, PlanError> {
        let agent = agent.clone();
        // Compiling is CPU-bound: keep it off the async worker threads.
        tokio::task::spawn_blocking(move || build(&agent, &sandbox))
            .await
            .map_err(|e| PlanError::sandbox(anyhow::anyhow!("planning panicked: {e}")))?
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

fn build(agent: &Agent, sandbox: &Arc<Sandbox>) -> Result<AgentPlan, PlanError> {
    let mut problems = Vec::new();
    let mut report = |origin: &Origin, field: &str, subject: String, message: String| {
        problems.push(Problem {
            location: origin.of(field).cloned(),
            subject,
            message,
        });
    };
    let nowhere = Origin::default();

    if agent.name.trim().is_empty() {
        report(
            &nowhere,
            "name",
            "agent.name".into(),
            "must not be empty".into(),
        );
    }
    if agent.runtime.max_concurrency == 0 || agent.runtime.max_depth == 0 {
        report(
            &nowhere,
            "runtime",
            "runtime".into(),
            "max_concurrency and max_depth must be at least 1".into(),
        );
    }
    let instances = sandbox.config().max_instances as usize;
    if agent.runtime.max_concurrency > instances {
        report(
            &nowhere,
            "runtime",
            "runtime.max_concurrency".into(),
            format!(
                "{} exceeds the sandbox's {instances} instances",
                agent.runtime.max_concurrency
            ),
        );
    }

    let mut compiled: BTreeMap<String, Arc<ActionComponent>> = BTreeMap::new();
    for (name, spec) in &agent.components {
        match sandbox.load_component_blocking(&spec.path) {
            Ok(component) => {
                compiled.insert(name.clone(), Arc::new(component));
            }
            Err(e) => report(
                &spec.origin,
                "path",
                format!("components.{name}.path"),
                e.to_string(),
            ),
        }
    }

    let mut actions = BTreeMap::new();
    for spec in &agent.actions {
        let subject = |field: &str| format!("actions.{}.{field}", spec.name);
        if actions.contains_key(&spec.name) {
            report(
                &spec.origin,
                "name",
                subject("name"),
                "declared twice".into(),
            );
            continue;
        }
        if spec.listen.is_empty() {
            report(
                &spec.origin,
                "listen",
                subject("listen"),
                "lists no event types; the action would never run".into(),
            );
        }
        for event_type in &spec.listen {
            if let Some(message) = listen_problem(event_type) {
                report(&spec.origin, "listen", subject("listen"), message);
            }
        }
        let Some(component) = compiled.get(&spec.component) else {
            if !agent.components.contains_key(&spec.component) {
                let known: Vec<&str> = agent.components.keys().map(String::as_str).collect();
                report(
                    &spec.origin,
                    "component",
                    subject("component"),
                    format!(
                        "no component named `{}` (declared: {})",
                        spec.component,
                        list_or_none(&known)
                    ),
                );
            }
            // A component that failed to load was already reported.
            continue;
        };
        if !component.actions().iter().any(|a| a.name == spec.export) {
            let carried: Vec<&str> = component
                .actions()
                .iter()
                .map(|a| a.name.as_str())
                .collect();
            report(
                &spec.origin,
                "export",
                subject("export"),
                format!(
                    "component `{}` ({}) carries no action `{}`; it carries: {}",
                    spec.component,
                    component.path().display(),
                    spec.export,
                    list_or_none(&carried)
                ),
            );
            continue;
        }
        actions.insert(
            spec.name.clone(),
            Arc::new(ActionPlan {
                name: spec.name.clone(),
                component: spec.component.clone(),
                export: spec.export.clone(),
                listen: spec.listen.clone(),
                config: spec.config.clone(),
                compiled: component.clone(),
                merged_config: Arc::new(ActionConfig::new(&agent.config, &spec.config)),
                name_arc: Arc::from(spec.name.as_str()),
                grants: Grants::ACTION_DEFAULT,
            }),
        );
    }

    for (name, spec) in &agent.resources {
        if !resources::KINDS.contains(&spec.kind.as_str()) {
            report(
                &spec.origin,
                "kind",
                format!("resources.{name}.kind"),
                format!(
                    "unknown resource kind `{}` (known: {})",
                    spec.kind,
                    resources::KINDS.join(", ")
                ),
            );
        }
    }

    if !problems.is_empty() {
        return Err(PlanError::Invalid { problems });
    }

    let mut actions_by_event: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut routes: HashMap<String, Vec<Arc<ActionPlan>>> = HashMap::new();
    for action in actions.values() {
        for event_type in &action.listen {
            actions_by_event
                .entry(event_type.clone())
                .or_default()
                .push(action.name.clone());
            routes
                .entry(event_type.clone())
                .or_default()
                .push(action.clone());
        }
    }
    if !actions_by_event.contains_key(types::INPUT) {
        tracing::warn!(agent = %agent.name, "no action listens to `_input_event`; only typed input events will run");
    }

    let components = compiled
        .iter()
        .map(|(name, c)| {
            let plan = ComponentPlan {
                path: c.path().to_path_buf(),
                sha256: c.digest().to_string(),
                compiled: c.compile_source(),
                carries: c.actions().to_vec(),
            };
            (name.clone(), plan)
        })
        .collect();

    Ok(AgentPlan {
        name: agent.name.clone(),
        description: agent.description.clone(),
        actions,
        actions_by_event,
        resource_providers: ResourceProviders::new(&agent.resources),
        config: agent.config.clone(),
        components,
        runtime: agent.runtime,
        routes,
    })
}

/// What is wrong with listening to `event_type`, if anything.
fn listen_problem(event_type: &str) -> Option<String> {
    if event_type.is_empty() {
        return Some("an event type must not be empty".into());
    }
    if event_type == types::OUTPUT {
        return Some("`_output_event` leaves the agent; no action can listen to it".into());
    }
    if types::is_reserved(event_type) && !types::ALL.contains(&event_type) {
        return Some(format!(
            "`{event_type}` is not a built-in event type (names starting with `_` are reserved: {})",
            types::ALL.join(", ")
        ));
    }
    None
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}
