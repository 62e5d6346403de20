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

use super::{ActionSpec, Agent, ComponentSpec, Origin, ResourceSpec, RuntimeSettings};
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
                actions: Vec::new(),
                resources: BTreeMap::new(),
                config: Map::new(),
                runtime: RuntimeSettings::default(),
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
                origin: Origin::default(),
            },
        );
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
                models: Vec::new(),
                tools: Vec::new(),
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
        self.spec.models.push(name.into());
        self
    }

    /// Grants the tool `name`.
    pub fn tool(mut self, name: impl Into<String>) -> Self {
        self.spec.tools.push(name.into());
        self
    }

    /// Sets a config value for this action.
    pub fn config(mut self, name: impl Into<String>, value: Value) -> Self {
        self.spec.config.insert(name.into(), value);
        self
    }
}
