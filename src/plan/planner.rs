//! The planner, in phases: each phase checks one part of the agent,
//! reports every problem it finds (file, line and field) and hands the next
//! phase what it built. [`build`] runs them in order:
//!
//! 1. [`Planner::settings`]: the agent's name and runtime settings;
//! 2. [`Planner::components`]: compile every component;
//! 3. [`Planner::actions`]: each action against its component, with its
//!    grants and limits ([`Planner::policy`], the one grant/limit merge);
//! 4. [`Planner::tools`]: the components' tools and the installed skills;
//! 5. [`Planner::resources`]: resource kinds and what they refer to, and
//!    what each chat model may offer;
//! 6. [`Planner::granted_names`]: every model and tool granted by name exists;
//! 7. [`Planner::builtins`]: the built-in actions;
//! 8. [`routes`]: event type -> actions.

use super::resolve;
use super::{ActionKind, ActionPlan, AgentPlan, ComponentPlan, PlanError, Problem};
use crate::agent::{Agent, GrantSpec, Isolation, Origin};
use crate::builtin::{self, Builtin, ReactConfig};
use crate::event::types;
use crate::host::{self, ActionConfig, Authority, Grants, TaskEnv};
use crate::limits::{LimitSettings, Limits};
use crate::resources::{self, ResourceProviders, setup as model_kinds};
use crate::sandbox::{ActionComponent, InstancePool, Sandbox};
use crate::tools::disclosure::SkillDoc;
use crate::tools::{ToolCatalog, ToolPolicy};
use serde_json::Map;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Compiled components by name.
type Compiled = BTreeMap<String, Arc<ActionComponent>>;

/// Checks and compiles `agent` in `sandbox`.
pub(super) fn build(agent: &Agent, sandbox: &Arc<Sandbox>) -> Result<AgentPlan, PlanError> {
    // Installed skills become components first, checked against weir.lock.
    let (resolved, problems, skill_docs) = resolve::resolve(agent);
    let mut planner = Planner {
        agent: &resolved,
        sandbox,
        problems,
        warnings: Vec::new(),
    };
    planner.settings();
    let compiled = planner.components();
    let mut actions = planner.actions(&compiled);
    let catalog = planner.tools(&compiled, skill_docs);
    let offers = planner.resources(&catalog);
    planner.granted_names(&catalog);
    planner.builtins(&offers, &mut actions);
    if !planner.problems.is_empty() {
        return Err(PlanError::Invalid {
            problems: planner.problems,
        });
    }
    let agent = &resolved;
    let actions: BTreeMap<String, Arc<ActionPlan>> =
        actions.into_iter().map(|(n, a)| (n, Arc::new(a))).collect();
    let (actions_by_event, routes) = routes(&actions);
    if !actions_by_event.contains_key(types::INPUT) {
        planner.warnings.push(Problem {
            location: None,
            subject: "actions".into(),
            message: "no action listens to `_input_event`; only typed input events will run".into(),
        });
    }
    let warnings: Vec<String> = planner.warnings.iter().map(ToString::to_string).collect();
    for warning in &warnings {
        tracing::warn!(agent = %agent.name, "{warning}");
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
        event_log: agent.event_log.clone(),
        warnings,
        routes,
    })
}

/// For each event type, the names of the actions it triggers (in name
/// order, as `actions` is) and the actions themselves.
#[allow(clippy::type_complexity)]
pub(super) fn routes(
    actions: &BTreeMap<String, Arc<ActionPlan>>,
) -> (
    BTreeMap<String, Vec<String>>,
    HashMap<String, Vec<Arc<ActionPlan>>>,
) {
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
    (actions_by_event, routes)
}

/// The state of one planning: the agent and every problem found so far.
pub(super) struct Planner<'a> {
    agent: &'a Agent,
    sandbox: &'a Arc<Sandbox>,
    problems: Vec<Problem>,
    /// What is allowed but likely a mistake (the plan still builds).
    warnings: Vec<Problem>,
}

/// A built-in action the plan adds, before it becomes an [`ActionPlan`].
struct BuiltinAction {
    name: &'static str,
    kind: Builtin,
    listen: Vec<&'static str>,
    models: Vec<String>,
    tools: Vec<String>,
}

impl<'a> Planner<'a> {
    /// Records a problem with `field` of the item declared at `origin`.
    fn report(&mut self, origin: &Origin, field: &str, subject: String, message: String) {
        self.problems.push(Problem {
            location: origin.of(field).cloned(),
            subject,
            message,
        });
    }

    /// Records a warning about `field` of the item declared at `origin`.
    fn warn(&mut self, origin: &Origin, field: &str, subject: String, message: String) {
        self.warnings.push(Problem {
            location: origin.of(field).cloned(),
            subject,
            message,
        });
    }

    /// Phase 1: the agent's name and runtime settings.
    fn settings(&mut self) {
        let nowhere = Origin::default();
        if self.agent.name.trim().is_empty() {
            self.report(
                &nowhere,
                "name",
                "agent.name".into(),
                "must not be empty".into(),
            );
        }
        let settings = self.agent.runtime;
        for (name, value) in [
            ("max_concurrency", settings.max_concurrency),
            ("max_depth", settings.max_depth),
            ("max_run_tasks", settings.max_run_tasks),
            ("max_run_events", settings.max_run_events),
            ("max_run_bytes", settings.max_run_bytes),
        ] {
            if value == 0 {
                self.report(
                    &nowhere,
                    "runtime",
                    format!("runtime.{name}"),
                    "must be at least 1".into(),
                );
            }
        }
        let instances = self.sandbox.config().max_instances as usize;
        if settings.max_concurrency > instances {
            self.report(
                &nowhere,
                "runtime",
                "runtime.max_concurrency".into(),
                format!(
                    "{} exceeds the sandbox's {instances} instances",
                    settings.max_concurrency
                ),
            );
        }
    }

    /// Phase 2: every component, compiled (or loaded from the cache).
    fn components(&mut self) -> Compiled {
        let mut compiled = Compiled::new();
        for (name, spec) in &self.agent.components {
            match self.sandbox.load_component_blocking(&spec.path) {
                Ok(component) => {
                    compiled.insert(name.clone(), Arc::new(component));
                }
                Err(e) => self.report(
                    &spec.origin,
                    "path",
                    format!("components.{name}.path"),
                    e.to_string(),
                ),
            }
        }
        compiled
    }

    /// The grants and limits of the item declared at `origin` as `subject`
    /// (`actions.x`, `components.y`, `skills.z`): its own limits over the
    /// agent's, checked against the sandbox, and `defaults` plus what
    /// `grants` lists. `None` (with the problems reported) if a grant is
    /// invalid.
    fn policy(
        &mut self,
        origin: &Origin,
        subject: &str,
        limits: LimitSettings,
        defaults: Grants,
        grants: &GrantSpec,
    ) -> Option<(Arc<Grants>, Limits)> {
        let limits = limits.or(self.agent.limits).resolve();
        for message in limit_problems(&limits, self.sandbox) {
            self.report(origin, "limits", format!("{subject}.limits"), message);
        }
        match defaults.with(grants) {
            Ok(grants) => Some((Arc::new(grants), limits)),
            Err(found) => {
                for (field, message) in found {
                    self.report(origin, field, format!("{subject}.{field}"), message);
                }
                None
            }
        }
    }

    /// Phase 3: each action, checked against its component's exports.
    fn actions(&mut self, compiled: &Compiled) -> BTreeMap<String, ActionPlan> {
        let agent = self.agent;
        let mut actions = BTreeMap::new();
        for spec in &agent.actions {
            let subject = |field: &str| format!("actions.{}.{field}", spec.name);
            if actions.contains_key(&spec.name) {
                self.report(
                    &spec.origin,
                    "name",
                    subject("name"),
                    "declared twice".into(),
                );
                continue;
            }
            if spec.listen.is_empty() {
                self.report(
                    &spec.origin,
                    "listen",
                    subject("listen"),
                    "lists no event types; the action would never run".into(),
                );
            }
            for event_type in &spec.listen {
                if let Some(message) = listen_problem(event_type) {
                    self.report(&spec.origin, "listen", subject("listen"), message);
                }
            }
            let Some(component) = compiled.get(&spec.component) else {
                if !agent.components.contains_key(&spec.component) {
                    let known: Vec<&str> = agent.components.keys().map(String::as_str).collect();
                    self.report(
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
                self.report(
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
            let Some((grants, limits)) = self.policy(
                &spec.origin,
                &format!("actions.{}", spec.name),
                spec.limits,
                Grants::action_default(),
                &spec.grants,
            ) else {
                continue;
            };
            let imports = component.imports().iter().map(String::as_str);
            for warning in host::unusable_imports(host::CAPABILITIES, imports, &grants) {
                self.warn(&spec.origin, "component", subject("component"), warning);
            }
            let pool = match spec.isolation {
                Isolation::Fresh => None,
                Isolation::Reuse { scope, max_tasks } => Some(InstancePool::new(
                    scope,
                    max_tasks,
                    agent.runtime.max_concurrency,
                )),
            };
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
        actions
    }

    /// Phase 4: the components' tools (each with its component's grants and
    /// limits) and the installed skills, with their commands loaded.
    fn tools(&mut self, compiled: &Compiled, mut skill_docs: Vec<SkillDoc>) -> ToolCatalog {
        let agent = self.agent;
        let mut policies = BTreeMap::new();
        for (name, spec) in &agent.components {
            if let Some((grants, limits)) = self.policy(
                &spec.origin,
                &format!("components.{name}"),
                spec.limits,
                Grants::tool_default(),
                &spec.grants,
            ) {
                policies.insert(name.clone(), ToolPolicy { grants, limits });
            }
        }
        let (mut catalog, tool_problems) = ToolCatalog::build(compiled, &policies);
        for doc in &mut skill_docs {
            let used = &agent.skills[&doc.name];
            let subject = format!("skills.{}", doc.name);
            let Some((grants, limits)) = self.policy(
                &used.origin,
                &subject,
                used.limits,
                Grants::tool_default(),
                &used.grants,
            ) else {
                continue;
            };
            doc.policy = Some(ToolPolicy { grants, limits });
            for command in &mut doc.commands {
                match self.sandbox.load_command(&command.path) {
                    Ok(component) => command.component = Some(Arc::new(component)),
                    Err(e) => self.report(
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
            self.report(origin, "path", format!("components.{component}"), message);
        }
        catalog
    }

    /// Phase 5: resources of known kinds with valid settings, referring to
    /// resources, skills and tools that exist. Returns what each chat-model
    /// resource may offer its model (see [`ToolCatalog::offerable`]).
    fn resources(&mut self, catalog: &ToolCatalog) -> BTreeMap<String, Vec<String>> {
        let agent = self.agent;
        let mut offers = BTreeMap::new();
        for (name, spec) in &agent.resources {
            let references = match resources::check(spec) {
                Ok(references) => references,
                Err(message) => {
                    self.report(&spec.origin, "kind", format!("resources.{name}"), message);
                    continue;
                }
            };
            let (offer, _) = catalog.offerable(&references.tools, &references.skills);
            offers.insert(name.clone(), offer.into_iter().map(String::from).collect());
            if let Some((connection, kind)) = references.connection {
                let ok = agent.resources.get(&connection).is_some_and(|r| {
                    r.kind == kind
                        || (r.kind.ends_with("-connection") && kind.ends_with("-connection"))
                });
                if !ok {
                    self.report(
                        &spec.origin,
                        "connection",
                        format!("resources.{name}.connection"),
                        format!("no {kind} resource named `{connection}`"),
                    );
                }
            }
            for skill in references.skills {
                if !agent.skills.contains_key(&skill) {
                    self.report(
                        &spec.origin,
                        "skills",
                        format!("resources.{name}.skills"),
                        format!("the agent uses no skill `{skill}` (add it under [skills])"),
                    );
                }
            }
            for tool in references.tools {
                if catalog.spec(&tool).is_none() {
                    self.report(
                        &spec.origin,
                        "tools",
                        format!("resources.{name}.tools"),
                        unknown_tool(&tool, catalog),
                    );
                }
            }
        }
        offers
    }

    /// The kind of resource `name`, if the agent has it.
    fn kind_of(&self, name: &str) -> Option<&'a str> {
        self.agent.resources.get(name).map(|r| r.kind.as_str())
    }

    /// Phase 6: every model and tool that an action or component is granted
    /// by name exists.
    fn granted_names(&mut self, catalog: &ToolCatalog) {
        let agent = self.agent;
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
                if !matches!(
                    self.kind_of(model),
                    Some(model_kinds::CHAT_MODEL | model_kinds::EMBEDDING_MODEL)
                ) {
                    self.report(
                        origin,
                        "models",
                        format!("{subject}.models"),
                        format!("no chat-model or embedding-model resource named `{model}`"),
                    );
                }
            }
            for tool in &grants.tools {
                if catalog.spec(tool).is_none() {
                    self.report(
                        origin,
                        "tools",
                        format!("{subject}.tools"),
                        unknown_tool(tool, catalog),
                    );
                }
            }
        }
    }

    /// Phase 7: the built-in actions: the chat-model and tool-call actions
    /// whenever the agent has a chat model (as Flink Agents adds them to
    /// every plan), and the ReAct action when asked for.
    fn builtins(
        &mut self,
        offers: &BTreeMap<String, Vec<String>>,
        actions: &mut BTreeMap<String, ActionPlan>,
    ) {
        let agent = self.agent;
        let mut builtins: Vec<BuiltinAction> = Vec::new();
        if let Some(react) = &agent.react {
            if self.kind_of(&react.model) != Some(model_kinds::CHAT_MODEL) {
                self.report(
                    &react.origin,
                    "model",
                    "react.model".into(),
                    format!("no chat-model resource named `{}`", react.model),
                );
            }
            if let Some(schema) = &react.output_schema
                && let Err(e) = jsonschema::validator_for(schema)
            {
                self.report(
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
                tools: offers.get(&react.model).cloned().unwrap_or_default(),
            });
        }
        // These two hold no grants: they act for the action whose request
        // they serve, with its grants (see `host::Authority`).
        let has_chat_model = agent
            .resources
            .values()
            .any(|r| r.kind == model_kinds::CHAT_MODEL);
        if has_chat_model {
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
        for action in builtins {
            if actions.contains_key(action.name) {
                self.report(
                    &Origin::default(),
                    "name",
                    format!("actions.{}", action.name),
                    "is the name of a built-in action".into(),
                );
                continue;
            }
            let plan = builtin_plan(agent, action);
            actions.insert(plan.name.clone(), plan);
        }
    }
}

/// The plan of a built-in action: granted only the models and tools it
/// names, with the agent's limits.
fn builtin_plan(agent: &Agent, action: BuiltinAction) -> ActionPlan {
    let builtin_name = match &action.kind {
        Builtin::ChatModel { .. } => "chat-model",
        Builtin::ToolCall => "tool-call",
        Builtin::React(_) => "react",
    };
    let grants = GrantSpec {
        models: action.models,
        tools: action.tools,
        ..GrantSpec::default()
    };
    let grants = Arc::new(
        Grants::action_default()
            .with(&grants)
            .expect("built-in actions are granted only models and tools"),
    );
    let name_arc: Arc<str> = Arc::from(action.name);
    ActionPlan {
        authority: Authority::of(name_arc.clone(), grants.clone()),
        name: action.name.to_string(),
        component: String::new(),
        export: String::new(),
        builtin: Some(builtin_name.to_string()),
        listen: action.listen.iter().map(|t| t.to_string()).collect(),
        config: Map::new(),
        grants,
        limits: agent.limits.resolve(),
        isolation: Isolation::Fresh,
        pool: None,
        kind: ActionKind::Builtin(action.kind),
        merged_config: Arc::new(ActionConfig::new(&agent.config, &Map::new())),
        name_arc,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// A manifest's agent; its components need not exist for these phases.
    fn agent(manifest: &str) -> Agent {
        let path = std::env::temp_dir().join("weir-planner-test/agent.toml");
        Agent::from_manifest_str(path, manifest).expect("the test manifest parses")
    }

    fn sandbox() -> &'static Arc<Sandbox> {
        static SANDBOX: OnceLock<Arc<Sandbox>> = OnceLock::new();
        SANDBOX.get_or_init(|| Sandbox::shared().expect("a sandbox"))
    }

    fn planner(agent: &Agent) -> Planner<'_> {
        Planner {
            agent,
            sandbox: sandbox(),
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Each problem as `line: subject: message`.
    fn reported(planner: &Planner) -> Vec<String> {
        planner
            .problems
            .iter()
            .map(|p| {
                let line = p.location.as_ref().map_or(0, |l| l.line);
                format!("{line}: {}: {}", p.subject, p.message)
            })
            .collect()
    }

    const CHAT: &str = r#"
[agent]
name = "a"

[resources.conn]
kind = "chat-model-connection"
provider = "openai"
base_url = "http://127.0.0.1:9/v1"

[resources.assistant]
kind = "chat-model"
connection = "conn"
model = "m"
"#;

    #[test]
    fn settings_report_zero_and_oversized_values() {
        // The manifest parser refuses an empty name itself; an agent built
        // in code reaches the planner with one.
        let mut agent = agent("[agent]\nname = \"a\"\n");
        agent.name = " ".into();
        agent.runtime.max_run_tasks = 0;
        agent.runtime.max_concurrency = sandbox().config().max_instances as usize + 1;
        let mut planner = planner(&agent);
        planner.settings();
        let found = reported(&planner);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(
            found[0].contains("agent.name: must not be empty"),
            "{found:#?}"
        );
        assert!(
            found[1].contains("runtime.max_run_tasks: must be at least 1"),
            "{found:#?}"
        );
        assert!(found[2].contains("exceeds the sandbox's"), "{found:#?}");
    }

    #[test]
    fn policy_merges_limits_over_the_agents_and_reports_each_bad_grant() {
        let agent = agent(
            "[agent]\nname = \"a\"\n[limits]\ntimeout_ms = 1234\nfuel = 5\n\
             [components.c]\npath = \"c.wasm\"\nhttp = [\"not a rule\"]\nenv = [\"A=B\"]\n",
        );
        let spec = &agent.components["c"];
        let mut planner = planner(&agent);
        let policy = planner.policy(
            &spec.origin,
            "components.c",
            spec.limits,
            Grants::tool_default(),
            &spec.grants,
        );
        assert!(policy.is_none(), "an invalid grant refuses the policy");
        let found = reported(&planner);
        // Fuel in a sandbox that does not meter it, and both grants, each
        // at the line that sets it.
        assert!(
            found
                .iter()
                .any(|p| p.contains(": components.c.limits: fuel is set")),
            "{found:#?}"
        );
        assert!(
            found.iter().any(|p| p.starts_with("8: components.c.http:")),
            "{found:#?}"
        );
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("9: components.c.env: `A=B`")),
            "{found:#?}"
        );

        let agent = self::agent(
            "[agent]\nname = \"a\"\n[limits]\ntimeout_ms = 1234\ncpu_ms = 50\n[components.c]\npath = \"c.wasm\"\nlimits = { cpu_ms = 7 }\n",
        );
        let spec = &agent.components["c"];
        let mut planner = self::planner(&agent);
        let (grants, limits) = planner
            .policy(
                &spec.origin,
                "components.c",
                spec.limits,
                Grants::tool_default(),
                &spec.grants,
            )
            .expect("a valid policy");
        assert!(planner.problems.is_empty());
        assert_eq!(
            (limits.timeout_ms, limits.cpu_ms),
            (1234, 7),
            "own over the agent's"
        );
        assert_eq!(*grants, Grants::tool_default());
    }

    #[test]
    fn actions_name_the_missing_component_and_bad_event_types() {
        let agent = agent(
            "[agent]\nname = \"a\"\n[actions.x]\ncomponent = \"nope\"\nlisten = [\"_secret\", \"_output_event\"]\n",
        );
        let mut planner = planner(&agent);
        let actions = planner.actions(&Compiled::new());
        assert!(actions.is_empty());
        let found = reported(&planner);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(
            found[0].starts_with("5: actions.x.listen: `_secret` is not a built-in event type"),
            "{found:#?}"
        );
        assert!(
            found[1].contains("`_output_event` leaves the agent"),
            "{found:#?}"
        );
        assert!(
            found[2]
                .starts_with("4: actions.x.component: no component named `nope` (declared: none)"),
            "{found:#?}"
        );
    }

    #[test]
    fn resources_check_kinds_connections_and_references() {
        let agent = agent(&format!(
            "{CHAT}\n[resources.other]\nkind = \"chat-model\"\nconnection = \"missing\"\nmodel = \"m\"\ntools = [\"ghost\"]\nskills = [\"unused\"]\n\
             [resources.odd]\nkind = \"oracle\"\n"
        ));
        let mut planner = planner(&agent);
        let offers = planner.resources(&ToolCatalog::default());
        assert_eq!(offers["assistant"], Vec::<String>::new());
        let found = reported(&planner);
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(
            found
                .iter()
                .any(|p| p.contains("resources.odd: unknown resource kind `oracle`")),
            "{found:#?}"
        );
        assert!(
            found.iter().any(|p| p.contains(
                "resources.other.connection: no chat-model-connection resource named `missing`"
            )),
            "{found:#?}"
        );
        assert!(
            found.iter().any(|p| p.contains(
                "resources.other.tools: no component provides a tool `ghost` (tools: none)"
            )),
            "{found:#?}"
        );
        assert!(
            found
                .iter()
                .any(|p| p.contains("resources.other.skills: the agent uses no skill `unused`")),
            "{found:#?}"
        );
    }

    #[test]
    fn granted_names_must_exist_and_be_models() {
        let agent = agent(&format!(
            "{CHAT}\n[components.c]\npath = \"c.wasm\"\nmodels = [\"assistant\", \"conn\"]\ntools = [\"t\"]\n"
        ));
        let mut planner = planner(&agent);
        planner.granted_names(&ToolCatalog::default());
        let found = reported(&planner);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found[0].contains(
                "components.c.models: no chat-model or embedding-model resource named `conn`"
            ),
            "{found:#?}"
        );
        assert!(
            found[1].contains("components.c.tools: no component provides a tool `t`"),
            "{found:#?}"
        );
    }

    #[test]
    fn a_chat_model_brings_the_builtins_which_hold_no_grants() {
        let agent = agent(CHAT);
        let mut planner = planner(&agent);
        let mut actions = BTreeMap::new();
        planner.builtins(&BTreeMap::new(), &mut actions);
        assert!(planner.problems.is_empty(), "{:#?}", reported(&planner));
        let names: Vec<&str> = actions.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [builtin::names::CHAT_MODEL, builtin::names::TOOL_CALL]
        );
        for action in actions.values() {
            assert!(action.grants.models.is_empty() && action.grants.tools.is_empty());
        }
        assert_eq!(
            actions[builtin::names::TOOL_CALL].listen,
            [types::TOOL_REQUEST]
        );

        // No chat model: no built-ins.
        let agent = self::agent("[agent]\nname = \"a\"\n");
        let mut actions = BTreeMap::new();
        self::planner(&agent).builtins(&BTreeMap::new(), &mut actions);
        assert!(actions.is_empty());
    }

    #[test]
    fn react_is_granted_its_model_and_what_that_model_offers() {
        let agent = agent(&format!("{CHAT}\n[react]\nmodel = \"assistant\"\n"));
        let mut planner = planner(&agent);
        let offers = BTreeMap::from([("assistant".to_string(), vec!["add".to_string()])]);
        let mut actions = BTreeMap::new();
        planner.builtins(&offers, &mut actions);
        assert!(planner.problems.is_empty(), "{:#?}", reported(&planner));
        let react = &actions[builtin::names::REACT];
        assert!(react.grants.models.contains("assistant"));
        assert!(react.grants.tools.contains("add"));
        assert_eq!(react.listen, [types::INPUT, types::CHAT_RESPONSE]);

        let agent = self::agent(&format!("{CHAT}\n[react]\nmodel = \"conn\"\n"));
        let mut planner = self::planner(&agent);
        planner.builtins(&BTreeMap::new(), &mut BTreeMap::new());
        let found = reported(&planner);
        assert!(
            found
                .iter()
                .any(|p| p.contains("react.model: no chat-model resource named `conn`")),
            "{found:#?}"
        );
    }

    #[test]
    fn a_builtin_name_cannot_be_taken() {
        let agent = agent(CHAT);
        let mut planner = planner(&agent);
        let mut actions = BTreeMap::new();
        planner.builtins(&BTreeMap::new(), &mut actions);
        // Plan the built-ins again over the ones already there.
        planner.builtins(&BTreeMap::new(), &mut actions);
        let found = reported(&planner);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found[0].contains("actions.chat_model_action: is the name of a built-in action"),
            "{found:#?}"
        );
    }

    #[test]
    fn routes_list_each_event_types_actions_in_name_order() {
        let agent = agent(&format!("{CHAT}\n[react]\nmodel = \"assistant\"\n"));
        let mut actions = BTreeMap::new();
        planner(&agent).builtins(&BTreeMap::new(), &mut actions);
        let actions: BTreeMap<String, Arc<ActionPlan>> =
            actions.into_iter().map(|(n, a)| (n, Arc::new(a))).collect();
        let (by_event, routes) = routes(&actions);
        assert_eq!(by_event[types::INPUT], [builtin::names::REACT]);
        assert_eq!(by_event[types::CHAT_RESPONSE], [builtin::names::REACT]);
        assert_eq!(by_event[types::TOOL_REQUEST], [builtin::names::TOOL_CALL]);
        assert_eq!(
            routes[types::CHAT_REQUEST][0].name,
            builtin::names::CHAT_MODEL
        );
        assert!(!by_event.contains_key(types::OUTPUT));
    }
}
