//! The agent's tools: what its components export through `tool-provider`,
//! checked at plan time (names, schemas, no duplicates) and run in a fresh
//! instance per call with what the component's tools are granted (logging,
//! and whatever the manifest lists for the component).

pub mod disclosure;

use crate::host::{Grants, HostError, InstanceState, Offer, ToolCaller, ToolFuture, Toolbox};
use crate::limits::Limits;
use crate::resources::api::ToolSpec;
use crate::sandbox::{ActionComponent, GuestStop, invoke};
use disclosure::{LOAD_SKILL, RUN_SKILL_COMMAND, SkillDoc};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What a component's tools run with.
#[derive(Debug, Clone)]
pub(crate) struct ToolPolicy {
    pub grants: Arc<Grants>,
    pub limits: Limits,
}

impl ToolPolicy {
    /// The input of the task that runs `name` for `caller` under this
    /// policy.
    fn task_input(&self, caller: ToolCaller, name: String) -> crate::host::TaskInput {
        caller.task_input(name, self.grants.clone(), self.limits)
    }
}

struct Tool {
    spec: ToolSpec,
    component: Arc<ActionComponent>,
    validator: Arc<jsonschema::Validator>,
    policy: ToolPolicy,
    /// Its calls have external effects: intents are recorded before them,
    /// and its component's reconciler settles interrupted ones.
    effect: bool,
}

/// Every tool of an agent, by name, and the skills models may load.
#[derive(Default)]
pub struct ToolCatalog {
    tools: BTreeMap<String, Tool>,
    skills: BTreeMap<String, SkillDoc>,
    /// `load_skill` and `run_skill_command`, when skills are installed.
    skill_tools: Vec<ToolSpec>,
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
        policies: &BTreeMap<String, ToolPolicy>,
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
                let policy = policies
                    .get(component_name)
                    .cloned()
                    .unwrap_or_else(|| ToolPolicy {
                        grants: Arc::new(Grants::tool_default()),
                        limits: Limits::default(),
                    });
                tools.insert(
                    spec.name.clone(),
                    Tool {
                        spec: spec.clone(),
                        component: component.clone(),
                        validator: Arc::new(validator),
                        policy,
                        effect: component.effects().contains(&spec.name),
                    },
                );
            }
        }
        let catalog = ToolCatalog {
            tools,
            ..ToolCatalog::default()
        };
        (catalog, problems)
    }

    /// Adds the agent's installed skills, and with them the built-in
    /// `load_skill` tool.
    pub(crate) fn add_skills(&mut self, skills: Vec<SkillDoc>) {
        if skills.is_empty() {
            return;
        }
        self.skill_tools.push(disclosure::load_skill_spec());
        if skills.iter().any(|s| !s.commands.is_empty()) {
            self.skill_tools.push(disclosure::run_command_spec());
        }
        self.skills = skills.into_iter().map(|s| (s.name.clone(), s)).collect();
    }

    /// The installed skill `name`, as models see it.
    pub fn skill(&self, name: &str) -> Option<&SkillDoc> {
        self.skills.get(name)
    }

    /// What a chat model whose resource lists `tools` and `skills` may be
    /// offered: its tools, and for the installed ones of its skills
    /// `load_skill`, `run_skill_command` (when one has commands) and the
    /// skills' own tools, in that order; with those skills.
    pub(crate) fn offerable<'a: 't, 't>(
        &'a self,
        tools: &'t [String],
        skills: &[String],
    ) -> (Vec<&'t str>, Vec<&'a SkillDoc>) {
        let skills: Vec<&SkillDoc> = skills.iter().filter_map(|n| self.skill(n)).collect();
        let mut names: Vec<&str> = tools.iter().map(String::as_str).collect();
        if !skills.is_empty() {
            names.push(LOAD_SKILL);
            if skills.iter().any(|s| !s.commands.is_empty()) {
                names.push(RUN_SKILL_COMMAND);
            }
            names.extend(
                skills
                    .iter()
                    .flat_map(|s| s.tools.iter().map(String::as_str)),
            );
        }
        (names, skills)
    }

    /// The tool `name`'s spec.
    pub fn spec(&self, name: &str) -> Option<&ToolSpec> {
        self.skill_tools
            .iter()
            .find(|t| t.name == name)
            .or_else(|| self.tools.get(name).map(|t| &t.spec))
    }

    /// True if tool `name` has external effects (see [`ActionComponent::effects`]).
    pub fn is_effect(&self, name: &str) -> bool {
        self.tools.get(name).is_some_and(|t| t.effect)
    }

    /// Every tool's spec, by name.
    pub fn specs(&self) -> impl Iterator<Item = &ToolSpec> {
        self.skill_tools
            .iter()
            .chain(self.tools.values().map(|t| &t.spec))
    }

    /// Asks the reconciler of tool `name`'s component what became of an
    /// interrupted call: `Some(result)` if it took effect, `None` if not.
    async fn reconcile(
        &self,
        name: &str,
        arguments: &Value,
        caller: ToolCaller,
    ) -> Result<Option<Value>, HostError> {
        let tool = self
            .tools
            .get(name)
            .ok_or_else(|| HostError::Invalid(format!("no tool named `{name}`")))?;
        let unknown = |why: String| {
            HostError::Failed(format!(
                "tool `{name}` was interrupted by a crash and what became of the call is unknown \
                 (it is not repeated): {why}"
            ))
        };
        let key = caller.idempotency.clone();
        let input = tool.policy.task_input(caller, format!("reconcile:{name}"));
        let state =
            InstanceState::new(input).map_err(|failed| unknown(format!("{:#}", failed.error)))?;
        let mut store = tool.component.sandbox.new_store(state);
        let answer = invoke(&mut store, async |store| {
            tool.component
                .reconcile(store, name, &arguments.to_string(), &key)
                .await
        })
        .await
        .map_err(|stop| match stop {
            GuestStop::Limit(exceeded) => {
                unknown(format!("its reconciler was stopped: {exceeded}"))
            }
            GuestStop::Trap { message, .. } => {
                unknown(format!("its reconciler trapped: {message}"))
            }
            GuestStop::Host { message } => {
                unknown(format!("its reconciler could not run: {message}"))
            }
        })?;
        match answer {
            Ok(Some(text)) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| unknown(format!("its reconciler returned non-JSON ({e}): {text}"))),
            Ok(None) => Ok(None),
            Err((code, message)) => {
                Err(unknown(format!("its reconciler failed: {code}: {message}")))
            }
        }
    }

    /// Checks `arguments` against tool `name`'s schema and runs it in a
    /// fresh instance. The call runs as its own task, aborted if the caller
    /// stops waiting.
    async fn call(
        &self,
        name: &str,
        arguments: Value,
        caller: ToolCaller,
    ) -> Result<Value, HostError> {
        if !self.skills.is_empty() && (name == LOAD_SKILL || name == RUN_SKILL_COMMAND) {
            let field = if name == LOAD_SKILL { "name" } else { "skill" };
            let wanted = arguments[field].as_str().unwrap_or_default();
            let skill = self.skills.get(wanted).ok_or_else(|| {
                let known: Vec<&str> = self.skills.keys().map(String::as_str).collect();
                HostError::Invalid(format!(
                    "no skill named `{wanted}` (skills: {})",
                    known.join(", ")
                ))
            })?;
            if name == LOAD_SKILL {
                return disclosure::load(skill, &arguments);
            }
            return run_command(skill, &arguments, caller).await;
        }
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
        let policy = tool.policy.clone();
        let name = name.to_string();
        let run =
            tokio::spawn(
                async move { run_tool(&component, &policy, &name, arguments, caller).await },
            );
        let abort = run.abort_handle();
        let _abort_on_drop = AbortOnDrop(abort);
        run.await
            .map_err(|e| HostError::Failed(format!("the tool task failed: {e}")))?
    }
}

impl Toolbox for ToolCatalog {
    fn spec(&self, name: &str) -> Option<&ToolSpec> {
        ToolCatalog::spec(self, name)
    }

    fn is_effect(&self, name: &str) -> bool {
        ToolCatalog::is_effect(self, name)
    }

    fn offer(&self, tools: &[String], skills: &[String], granted: &BTreeSet<String>) -> Offer {
        let (names, skills) = self.offerable(tools, skills);
        let mut offer = Offer {
            skills: skills.iter().map(|s| s.name.clone()).collect(),
            prompt: (!skills.is_empty()).then(|| disclosure::prompt_block(skills.iter().copied())),
            ..Offer::default()
        };
        for name in names {
            if granted.contains(name)
                && !offer.tools.iter().any(|t| t.name == name)
                && let Some(spec) = self.spec(name)
            {
                offer.tools.push(spec.clone());
            }
        }
        offer
    }

    fn call(&self, name: String, arguments: Value, caller: ToolCaller) -> ToolFuture<'_, Value> {
        Box::pin(async move { ToolCatalog::call(self, &name, arguments, caller).await })
    }

    fn reconcile(
        &self,
        name: String,
        arguments: Value,
        caller: ToolCaller,
    ) -> ToolFuture<'_, Option<Value>> {
        Box::pin(async move { ToolCatalog::reconcile(self, &name, &arguments, caller).await })
    }
}

/// Runs a skill's command for a model: `{skill, command, args, stdin}`.
async fn run_command(
    skill: &SkillDoc,
    arguments: &Value,
    caller: ToolCaller,
) -> Result<Value, HostError> {
    let wanted = arguments["command"].as_str().unwrap_or_default();
    let command = skill
        .commands
        .iter()
        .find(|c| c.name == wanted)
        .ok_or_else(|| {
            let known: Vec<&str> = skill.commands.iter().map(|c| c.name.as_str()).collect();
            HostError::Invalid(format!(
                "skill `{}` has no command `{wanted}` (commands: {})",
                skill.name,
                known.join(", ")
            ))
        })?;
    let (Some(component), Some(policy)) = (&command.component, &skill.policy) else {
        return Err(HostError::Failed(format!(
            "command `{wanted}` is not loaded"
        )));
    };
    let mut args = vec![wanted.to_string()];
    for arg in arguments["args"].as_array().into_iter().flatten() {
        let arg = arg
            .as_str()
            .ok_or_else(|| HostError::Invalid("`args` must be a list of strings".into()))?;
        args.push(arg.to_string());
    }
    let stdin = arguments["stdin"].as_str().unwrap_or_default().to_string();
    let input = policy.task_input(caller, format!("command:{}/{wanted}", skill.name));
    let output = component.run(input, args, stdin).await.map_err(|why| {
        HostError::Failed(format!(
            "command `{wanted}` of skill `{}` {why}",
            skill.name
        ))
    })?;
    Ok(serde_json::to_value(output).expect("command output serialises"))
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn run_tool(
    component: &ActionComponent,
    policy: &ToolPolicy,
    name: &str,
    arguments: Value,
    caller: ToolCaller,
) -> Result<Value, HostError> {
    let sandbox = &component.sandbox;
    let input = policy.task_input(caller, format!("tool:{name}"));
    let state = InstanceState::new(input).map_err(|failed| {
        HostError::Failed(format!("tool `{name}` could not start: {:#}", failed.error))
    })?;
    let mut store = sandbox.new_store(state);
    let outcome = invoke(&mut store, async |store| {
        let instance = component.pre.instantiate_async(&mut *store).await?;
        instance
            .weir_agent_tool_provider()
            .call_call(&mut *store, name, &arguments.to_string())
            .await
    })
    .await;
    let stopped = |why: String| HostError::Failed(format!("tool `{name}` {why}"));
    match outcome {
        Ok(Ok(text)) => serde_json::from_str(&text)
            .map_err(|e| stopped(format!("returned non-JSON ({e}): {text}"))),
        // A tool's error goes back to its caller: cut like an error event's.
        Ok(Err(e)) => Err(stopped(format!(
            "failed: {}: {}",
            crate::util::head(&e.code, crate::limits::MAX_ERROR_CODE_BYTES),
            crate::util::head(&e.message, crate::limits::MAX_ERROR_MESSAGE_BYTES)
        ))),
        Err(GuestStop::Limit(exceeded)) => Err(stopped(format!("was stopped: {exceeded}"))),
        Err(GuestStop::Trap { message, .. }) => {
            let (stderr, _) = store.data().take_output();
            let stderr = stderr.trim();
            let detail = if stderr.is_empty() {
                String::new()
            } else {
                format!("; stderr: {stderr}")
            };
            Err(stopped(format!("trapped: {message}{detail}")))
        }
        Err(GuestStop::Host { message }) => Err(stopped(format!("could not run: {message}"))),
    }
}
