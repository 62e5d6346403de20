//! Building an [`Agent`] in Rust.
//!
//! ```no_run
//! use weir::{Agent, ActionBuilder};
//! use serde_json::json;
//!
//! let agent = Agent::builder("word-stats")
//!     .component("tokenizer", "build/components/skill_tokenizer.wasm")
//!     .component("stats", "build/components/skill_word_stats.wasm")
//!     .action(ActionBuilder::new("tokenize", "tokenizer").listen("_input_event"))
//!     .action(ActionBuilder::new("count", "stats").listen("words_tokenized"))
//!     .config("top", json!(3))
//!     .build();
//! ```

use super::{
    ActionSpec, Agent, ComponentSpec, DirGrant, GrantSpec, Isolation, Origin, ResourceSpec,
    RuntimeSettings,
};
use crate::limits::LimitSettings;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Builds an [`Agent`] in code. Checking happens in
/// [`crate::AgentPlan::from_agent`], as for manifests.
#[derive(Debug, Clone)]
pub struct AgentBuilder {
    agent: Agent,
}

impl AgentBuilder {
    pub(super) fn new(name: impl Into<String>) -> Self {
        AgentBuilder {
            agent: Agent {
                name: name.into(),
                description: None,
                components: BTreeMap::new(),
                skills: BTreeMap::new(),
                skill_store: None,
                lockfile: None,
                actions: Vec::new(),
                resources: BTreeMap::new(),
                config: Map::new(),
                runtime: RuntimeSettings::default(),
                event_log: Default::default(),
                limits: LimitSettings::default(),
                react: None,
                manifest: None,
            },
        }
    }

    /// Sets the description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.agent.description = Some(text.into());
        self
    }

    /// Adds a component file under `name`.
    pub fn component(mut self, name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        self.agent.components.insert(
            name.into(),
            ComponentSpec {
                path: path.into(),
                grants: GrantSpec::default(),
                limits: LimitSettings::default(),
                origin: Origin::default(),
            },
        );
        self
    }

    /// Sets what the tools of component `name` are granted and their
    /// limits; the component must already be added.
    pub fn component_grants(
        mut self,
        name: &str,
        grants: GrantSpec,
        limits: LimitSettings,
    ) -> Self {
        if let Some(component) = self.agent.components.get_mut(name) {
            component.grants = grants;
            component.limits = limits;
        }
        self
    }

    /// Uses the installed skill `name` at `version`, granting its tools
    /// `grants`.
    pub fn skill(
        mut self,
        name: impl Into<String>,
        version: impl Into<String>,
        grants: GrantSpec,
    ) -> Self {
        self.agent.skills.insert(
            name.into(),
            super::SkillUse {
                version: version.into(),
                grants,
                limits: LimitSettings::default(),
                origin: Origin::default(),
            },
        );
        self
    }

    /// Finds skills in the store at `root` instead of the default one.
    pub fn skill_store(mut self, root: impl Into<PathBuf>) -> Self {
        self.agent.skill_store = Some(root.into());
        self
    }

    /// Pins the skills' digests in the lockfile at `path`.
    pub fn lockfile(mut self, path: impl Into<PathBuf>) -> Self {
        self.agent.lockfile = Some(path.into());
        self
    }

    /// Sets the agent-wide limits.
    pub fn limits(mut self, limits: LimitSettings) -> Self {
        self.agent.limits = limits;
        self
    }

    /// Adds an action.
    pub fn action(mut self, action: ActionBuilder) -> Self {
        self.agent.actions.push(action.spec);
        self
    }

    /// Adds a resource of `kind` with its settings.
    pub fn resource(
        mut self,
        name: impl Into<String>,
        kind: impl Into<String>,
        config: Value,
    ) -> Self {
        let config = match config {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => Map::from_iter([("value".to_string(), other)]),
        };
        self.agent.resources.insert(
            name.into(),
            ResourceSpec {
                kind: kind.into(),
                config,
                origin: Origin::default(),
            },
        );
        self
    }

    /// Sets an agent-wide config value.
    pub fn config(mut self, name: impl Into<String>, value: Value) -> Self {
        self.agent.config.insert(name.into(), value);
        self
    }

    /// Uses the built-in ReAct agent with chat-model resource `model`.
    pub fn react(
        mut self,
        model: impl Into<String>,
        prompt: Option<String>,
        output_schema: Option<Value>,
        max_steps: u32,
    ) -> Self {
        self.agent.react = Some(super::ReactSpec {
            model: model.into(),
            prompt,
            output_schema,
            max_steps,
            origin: Origin::default(),
        });
        self
    }

    /// Sets the runtime settings.
    pub fn runtime(mut self, settings: RuntimeSettings) -> Self {
        self.agent.runtime = settings;
        self
    }

    /// The agent.
    pub fn build(self) -> Agent {
        self.agent
    }
}

/// Builds one action of an agent.
#[derive(Debug, Clone)]
pub struct ActionBuilder {
    spec: ActionSpec,
}

impl ActionBuilder {
    /// An action `name` implemented by `component`'s export of the same name.
    pub fn new(name: impl Into<String>, component: impl Into<String>) -> Self {
        let name = name.into();
        ActionBuilder {
            spec: ActionSpec {
                export: name.clone(),
                name,
                component: component.into(),
                grants: GrantSpec::default(),
                limits: LimitSettings::default(),
                isolation: Isolation::Fresh,
                listen: Vec::new(),
                config: Map::new(),
                origin: Origin::default(),
            },
        }
    }

    /// Uses the component's action `export` instead of the action's name.
    pub fn export(mut self, export: impl Into<String>) -> Self {
        self.spec.export = export.into();
        self
    }

    /// Also triggers on `event_type`.
    pub fn listen(mut self, event_type: impl Into<String>) -> Self {
        self.spec.listen.push(event_type.into());
        self
    }

    /// Grants the model resource `name`.
    pub fn model(mut self, name: impl Into<String>) -> Self {
        self.spec.grants.models.push(name.into());
        self
    }

    /// Grants the tool `name`.
    pub fn tool(mut self, name: impl Into<String>) -> Self {
        self.spec.grants.tools.push(name.into());
        self
    }

    /// Grants outbound HTTP to `rule` (`scheme://host[:port]`, wildcards
    /// allowed).
    pub fn http(mut self, rule: impl Into<String>) -> Self {
        self.spec.grants.http.push(rule.into());
        self
    }

    /// Grants the host directory `host` as `guest`, writable if `write`.
    pub fn dir(mut self, host: impl Into<PathBuf>, guest: impl Into<String>, write: bool) -> Self {
        self.spec.grants.dirs.push(DirGrant {
            host: host.into(),
            guest: guest.into(),
            write,
        });
        self
    }

    /// Grants the environment variable `name`.
    pub fn env(mut self, name: impl Into<String>) -> Self {
        self.spec.grants.env.push(name.into());
        self
    }

    /// Sets this action's limits (unset fields come from the agent's).
    pub fn limits(mut self, limits: LimitSettings) -> Self {
        self.spec.limits = limits;
        self
    }

    /// Sets how its tasks get an instance.
    pub fn isolation(mut self, isolation: Isolation) -> Self {
        self.spec.isolation = isolation;
        self
    }

    /// Sets a config value for this action.
    pub fn config(mut self, name: impl Into<String>, value: Value) -> Self {
        self.spec.config.insert(name.into(), value);
        self
    }
}
