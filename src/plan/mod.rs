//! The agent plan: an [`Agent`] checked against its components and compiled.
//!
//! [`AgentPlan::from_agent`] (Flink Agents' step of the same name) loads and
//! compiles every component once, checks each mapped export against the
//! component's actions and the WIT contract, builds `actions_by_event`, the
//! lazily created resource providers and the config. Every problem found is
//! reported at once, each naming the manifest file, line and field.

mod error;

pub use error::{PlanError, Problem};

use crate::agent::{Agent, GrantSpec, Isolation, Origin, RuntimeSettings};
use crate::builtin::{self, Builtin, ReactConfig};
use crate::event::types;
use crate::host::{ActionConfig, Authority, Grants, TaskEnv};
use crate::limits::Limits;
use crate::resources::model::ToolSpec;
use crate::resources::{self, ResourceProviders, models as model_kinds};
use crate::sandbox::{ActionComponent, ActionInfo, CompileSource, InstancePool, Sandbox};
use crate::tools::{ToolCatalog, ToolPolicy};
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
        tokio::task::spawn_blocking(move || build(&agent, &sandbox))
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

fn build(agent: &Agent, sandbox: &Arc<Sandbox>) -> Result<AgentPlan, PlanError> {
    // Installed skills become components first, checked against weir.lock.
    let (resolved, mut problems, skill_docs) = crate::skill::resolve::resolve(agent);
    let agent = &resolved;
    let mut report = |origin: &Origin, field: &str, subject: String, message: String| {
        problems.push(Problem {
            location: origin.of(field).cloned(),
            subject,
            message,
        });
    };
    let nowhere = Origin::default();
    let mut actions: BTreeMap<String, ActionPlan> = BTreeMap::new();

    if agent.name.trim().is_empty() {
        report(
            &nowhere,
            "name",
            "agent.name".into(),
            "must not be empty".into(),
        );
    }
    let settings = &agent.runtime;
    for (name, value) in [
        ("max_concurrency", settings.max_concurrency),
        ("max_depth", settings.max_depth),
        ("max_run_tasks", settings.max_run_tasks),
        ("max_run_events", settings.max_run_events),
        ("max_run_bytes", settings.max_run_bytes),
    ] {
        if value == 0 {
            report(
                &nowhere,
                "runtime",
                format!("runtime.{name}"),
                "must be at least 1".into(),
            );
        }
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
        let limits = spec.limits.or(agent.limits).resolve();
        for message in limit_problems(&limits, sandbox) {
            report(&spec.origin, "limits", subject("limits"), message);
        }
        let grants = match Grants::action_default().with(&spec.grants) {
            Ok(grants) => grants,
            Err(found) => {
                for (field, message) in found {
                    report(&spec.origin, field, subject(field), message);
                }
                continue;
            }
        };
        let pool = match spec.isolation {
            Isolation::Fresh => None,
            Isolation::Reuse { scope, max_tasks } => Some(InstancePool::new(
                scope,
                max_tasks,
                agent.runtime.max_concurrency,
            )),
        };
        let grants = Arc::new(grants);
        let name_arc: Arc<str> = Arc::from(spec.name.as_str());
        actions.insert(
            spec.name.clone(),
            ActionPlan {
                authority: Authority::of(name_arc.clone(), grants.clone()),
                name: spec.name.clone(),
                component: spec.component.clone(),
                export: spec.export.clone(),
                builtin: None,
                listen: spec.listen.clone(),
                config: spec.config.clone(),
                grants,
                limits,
                isolation: spec.isolation,
                kind: ActionKind::Component(component.clone()),
                pool,
                merged_config: Arc::new(ActionConfig::new(&agent.config, &spec.config)),
                name_arc,
            },
        );
    }

    let mut tool_policies = BTreeMap::new();
    for (name, spec) in &agent.components {
        let subject = |field: &str| format!("components.{name}.{field}");
        let limits = spec.limits.or(agent.limits).resolve();
        for message in limit_problems(&limits, sandbox) {
            report(&spec.origin, "limits", subject("limits"), message);
        }
        match Grants::tool_default().with(&spec.grants) {
            Ok(grants) => {
                let grants = Arc::new(grants);
                tool_policies.insert(name.clone(), ToolPolicy { grants, limits });
            }
            Err(found) => {
                for (field, message) in found {
                    report(&spec.origin, field, subject(field), message);
                }
            }
        }
    }
    let (mut catalog, tool_problems) = ToolCatalog::build(&compiled, &tool_policies);
    let mut skill_docs = skill_docs;
    for doc in &mut skill_docs {
        let used = &agent.skills[&doc.name];
        let subject = format!("skills.{}", doc.name);
        let grants = match Grants::tool_default().with(&used.grants) {
            Ok(grants) => Arc::new(grants),
            Err(found) => {
                for (field, message) in found {
                    report(&used.origin, field, format!("{subject}.{field}"), message);
                }
                continue;
            }
        };
        let limits = used.limits.or(agent.limits).resolve();
        for message in limit_problems(&limits, sandbox) {
            report(&used.origin, "limits", format!("{subject}.limits"), message);
        }
        doc.policy = Some(ToolPolicy { grants, limits });
        for command in &mut doc.commands {
            match sandbox.load_command(&command.path) {
                Ok(component) => command.component = Some(Arc::new(component)),
                Err(e) => report(
                    &used.origin,
                    "version",
                    format!("{subject} command `{}`", command.name),
                    e.to_string(),
                ),
            }
        }
    }
    catalog.add_skills(skill_docs);
    for (component, message) in tool_problems {
        let origin = &agent.components[&component].origin;
        report(origin, "path", format!("components.{component}"), message);
    }

    // Resources: known kinds, valid settings, references to existing resources.
    let kind_of = |name: &str| agent.resources.get(name).map(|r| r.kind.as_str());
    let mut offers: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, spec) in &agent.resources {
        match resources::check(spec) {
            Err(message) => report(&spec.origin, "kind", format!("resources.{name}"), message),
            Ok(references) => {
                offers.insert(name, model_offer(&references, &catalog));
                if let Some((connection, kind)) = references.connection {
                    let ok = match kind_of(&connection) {
                        Some(k) => {
                            k == kind
                                || (k.ends_with("-connection") && kind.ends_with("-connection"))
                        }
                        None => false,
                    };
                    if !ok {
                        report(
                            &spec.origin,
                            "connection",
                            format!("resources.{name}.connection"),
                            format!("no {kind} resource named `{connection}`"),
                        );
                    }
                }
                for skill in references.skills {
                    if !agent.skills.contains_key(&skill) {
                        report(
                            &spec.origin,
                            "skills",
                            format!("resources.{name}.skills"),
                            format!("the agent uses no skill `{skill}` (add it under [skills])"),
                        );
                    }
                }
                for tool in references.tools {
                    if catalog.spec(&tool).is_none() {
                        report(
                            &spec.origin,
                            "tools",
                            format!("resources.{name}.tools"),
                            unknown_tool(&tool, &catalog),
                        );
                    }
                }
            }
        }
    }
    let model_kind = |name: &str| {
        matches!(
            kind_of(name),
            Some(model_kinds::CHAT_MODEL | model_kinds::EMBEDDING_MODEL)
        )
    };
    let granted = agent
        .actions
        .iter()
        .map(|a| (format!("actions.{}", a.name), &a.origin, &a.grants))
        .chain(
            agent
                .components
                .iter()
                .map(|(n, c)| (format!("components.{n}"), &c.origin, &c.grants)),
        );
    for (subject, origin, grants) in granted {
        for model in &grants.models {
            if !model_kind(model) {
                report(
                    origin,
                    "models",
                    format!("{subject}.models"),
                    format!("no chat-model or embedding-model resource named `{model}`"),
                );
            }
        }
        for tool in &grants.tools {
            if catalog.spec(tool).is_none() {
                report(
                    origin,
                    "tools",
                    format!("{subject}.tools"),
                    unknown_tool(tool, &catalog),
                );
            }
        }
    }

    // Built-in actions: the chat-model and tool-call actions whenever the
    // agent has a chat model (as Flink Agents adds them to every plan), and
    // the ReAct action when asked for.
    let chat_models: Vec<String> = agent
        .resources
        .iter()
        .filter(|(_, r)| r.kind == model_kinds::CHAT_MODEL)
        .map(|(n, _)| n.clone())
        .collect();
    struct BuiltinAction {
        name: &'static str,
        kind: Builtin,
        listen: Vec<&'static str>,
        models: Vec<String>,
        tools: Vec<String>,
    }
    let mut builtins: Vec<BuiltinAction> = Vec::new();
    if let Some(react) = &agent.react {
        if kind_of(&react.model) != Some(model_kinds::CHAT_MODEL) {
            report(
                &react.origin,
                "model",
                "react.model".into(),
                format!("no chat-model resource named `{}`", react.model),
            );
        }
        if let Some(schema) = &react.output_schema
            && let Err(e) = jsonschema::validator_for(schema)
        {
            report(
                &react.origin,
                "output_schema",
                "react.output_schema".into(),
                format!("not a valid JSON Schema: {e}"),
            );
        }
        builtins.push(BuiltinAction {
            name: builtin::names::REACT,
            kind: Builtin::React(ReactConfig {
                model: react.model.clone(),
                prompt: react.prompt.clone(),
                output_schema: react.output_schema.clone(),
                max_steps: react.max_steps,
            }),
            listen: vec![types::INPUT, types::CHAT_RESPONSE],
            // What the manifest's `[react]` asks for: its model, with the
            // tools and skills that model's resource offers.
            models: vec![react.model.clone()],
            tools: offers
                .get(react.model.as_str())
                .cloned()
                .unwrap_or_default(),
        });
    }
    // These two hold no grants: they act for the action whose request
    // they serve, with its grants (see `host::Authority`).
    if !chat_models.is_empty() {
        let max_steps = agent.react.as_ref().map_or(10, |r| r.max_steps);
        builtins.push(BuiltinAction {
            name: builtin::names::CHAT_MODEL,
            kind: Builtin::ChatModel { max_steps },
            listen: vec![types::CHAT_REQUEST, types::TOOL_RESPONSE],
            models: Vec::new(),
            tools: Vec::new(),
        });
        builtins.push(BuiltinAction {
            name: builtin::names::TOOL_CALL,
            kind: Builtin::ToolCall,
            listen: vec![types::TOOL_REQUEST],
            models: Vec::new(),
            tools: Vec::new(),
        });
    }
    for BuiltinAction {
        name,
        kind,
        listen,
        models,
        tools,
    } in builtins
    {
        if actions.contains_key(name) {
            report(
                &nowhere,
                "name",
                format!("actions.{name}"),
                "is the name of a built-in action".into(),
            );
            continue;
        }
        let builtin_name = match &kind {
            Builtin::ChatModel { .. } => "chat-model",
            Builtin::ToolCall => "tool-call",
            Builtin::React(_) => "react",
        };
        let grants = GrantSpec {
            models,
            tools,
            ..GrantSpec::default()
        };
        let grants = Arc::new(
            Grants::action_default()
                .with(&grants)
                .expect("built-in actions are granted only models and tools"),
        );
        let name_arc: Arc<str> = Arc::from(name);
        actions.insert(
            name.to_string(),
            ActionPlan {
                authority: Authority::of(name_arc.clone(), grants.clone()),
                name: name.to_string(),
                component: String::new(),
                export: String::new(),
                builtin: Some(builtin_name.to_string()),
                listen: listen.iter().map(|t| t.to_string()).collect(),
                config: Map::new(),
                grants,
                limits: agent.limits.resolve(),
                isolation: Isolation::Fresh,
                pool: None,
                kind: ActionKind::Builtin(kind),
                merged_config: Arc::new(ActionConfig::new(&agent.config, &Map::new())),
                name_arc,
            },
        );
    }
    let actions: BTreeMap<String, Arc<ActionPlan>> =
        actions.into_iter().map(|(n, a)| (n, Arc::new(a))).collect();

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

    let resource_providers = Arc::new(ResourceProviders::new(&agent.resources));
    let tools = catalog.specs().cloned().collect();
    let env = Arc::new(TaskEnv {
        agent: Arc::from(agent.name.as_str()),
        resources: resource_providers.clone(),
        tools: Arc::new(catalog),
    });
    Ok(AgentPlan {
        name: agent.name.clone(),
        description: agent.description.clone(),
        actions,
        actions_by_event,
        resource_providers,
        tools,
        env,
        config: agent.config.clone(),
        components,
        runtime: agent.runtime,
        routes,
    })
}

/// What in `limits` this sandbox cannot enforce.
fn limit_problems(limits: &Limits, sandbox: &Sandbox) -> Vec<String> {
    let mut problems = Vec::new();
    let ceiling = sandbox.config().max_memory_bytes;
    if limits.memory_bytes() > ceiling {
        problems.push(format!(
            "memory_mb = {} exceeds the sandbox's ceiling of {} MiB",
            limits.memory_mb,
            ceiling >> 20
        ));
    }
    if limits.fuel.is_some() && !sandbox.config().fuel {
        problems.push(
            "fuel is set but this sandbox does not meter fuel (`SandboxConfig::fuel`)".into(),
        );
    }
    if limits.max_nesting > crate::limits::MAX_NESTING {
        problems.push(format!(
            "max_nesting = {} exceeds weir's ceiling of {}",
            limits.max_nesting,
            crate::limits::MAX_NESTING
        ));
    }
    for (name, value) in [
        ("max_nesting", limits.max_nesting as u64),
        ("max_key_memory_bytes", limits.max_key_memory_bytes as u64),
        ("memory_mb", limits.memory_mb),
        ("cpu_ms", limits.cpu_ms),
        ("timeout_ms", limits.timeout_ms),
        ("max_payload_bytes", limits.max_payload_bytes as u64),
    ] {
        if value == 0 {
            problems.push(format!("{name} must be at least 1"));
        }
    }
    problems
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

/// The tools a chat-model resource with `references` may offer its model
/// (see [`ToolCatalog::offerable`]): what the ReAct action is granted.
fn model_offer(references: &model_kinds::References, catalog: &ToolCatalog) -> Vec<String> {
    let (names, _) = catalog.offerable(&references.tools, &references.skills);
    names.into_iter().map(String::from).collect()
}

fn unknown_tool(tool: &str, catalog: &ToolCatalog) -> String {
    let known: Vec<&str> = catalog.specs().map(|t| t.name.as_str()).collect();
    format!(
        "no component provides a tool `{tool}` (tools: {})",
        list_or_none(&known)
    )
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}
