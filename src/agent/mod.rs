//! The user's definition of an agent: components, actions, resources and
//! config, from a TOML manifest ([`Agent::from_manifest`]) or built in Rust
//! ([`Agent::builder`]).
//!
//! An [`Agent`] is only a description; [`crate::AgentPlan::from_agent`]
//! checks it against the real components and compiles it.

mod builder;
mod grants;
mod manifest;

pub use builder::{ActionBuilder, AgentBuilder};
pub use grants::{DirGrant, GrantSpec, Isolation, ReuseScope};
pub use manifest::{ManifestError, models_dir};

/// The lockfile's name, beside the agent manifest: it pins each installed
/// skill to its package digest (the skill layer reads and writes it).
pub const LOCK_FILE: &str = "weir.lock";

/// The lockfile for the agent manifest at `manifest`.
pub fn lockfile_path(manifest: &std::path::Path) -> std::path::PathBuf {
    manifest
        .parent()
        .unwrap_or_else(|| std::path::Path::new("."))
        .join(LOCK_FILE)
}

use crate::limits::LimitSettings;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// A place in a manifest file, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The manifest file.
    pub file: Arc<PathBuf>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// Where an item of the agent came from: the manifest locations of its
/// fields, or nothing for agents built in code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    fields: BTreeMap<&'static str, Location>,
    whole: Option<Location>,
}

impl Origin {
    /// The location of `field`, or of the whole item if the field has none.
    pub fn of(&self, field: &str) -> Option<&Location> {
        self.fields.get(field).or(self.whole.as_ref())
    }

    pub(crate) fn set(&mut self, field: &'static str, location: Location) {
        self.fields.insert(field, location);
    }

    pub(crate) fn set_whole(&mut self, location: Location) {
        self.whole = Some(location);
    }
}

/// A component file that implements actions.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentSpec {
    /// Path of the `.wasm` component (a manifest's relative paths are
    /// resolved against the manifest's directory).
    pub path: PathBuf,
    /// What its tools are granted (its actions have their own grants).
    pub grants: GrantSpec,
    /// Limits of its tool calls, over the agent's `[limits]`.
    pub limits: LimitSettings,
    /// Where it was declared.
    pub origin: Origin,
}

/// An action: which component export handles which event types.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionSpec {
    /// The action's name, unique in the agent.
    pub name: String,
    /// The component (by its name in the agent) that implements it.
    pub component: String,
    /// What it is granted beyond context, events, memory and logging.
    pub grants: GrantSpec,
    /// Its limits, over the agent's `[limits]`.
    pub limits: LimitSettings,
    /// Fresh instance per task, or a reused one.
    pub isolation: Isolation,
    /// The action name inside the component (defaults to `name`).
    pub export: String,
    /// The event types that trigger it.
    pub listen: Vec<String>,
    /// Config for this action, overlaid on the agent's config.
    pub config: Map<String, Value>,
    /// Where it was declared.
    pub origin: Origin,
}

/// A resource (model, tool, prompt, ...) that actions can use.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceSpec {
    /// The resource kind, for example `prompt`.
    pub kind: String,
    /// The kind-specific settings.
    pub config: Map<String, Value>,
    /// Where it was declared.
    pub origin: Origin,
}

/// Runtime settings an agent may carry; the CLI and the library can
/// override them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSettings {
    /// How many keys may run at once.
    pub max_concurrency: usize,
    /// How many hops of emitted events an input event may cause before the
    /// run is cut as a routing loop.
    pub max_depth: usize,
    /// Input events admitted but not finished before intake pauses; with a
    /// journal, also the committed runs whose outputs wait for the sink.
    pub max_pending_events: usize,
    /// Tasks one agent run (an input event and all it causes) may start.
    pub max_run_tasks: usize,
    /// Events one agent run's tasks may emit in all: `max_depth` bounds how
    /// deep a run goes, this how wide.
    pub max_run_events: usize,
    /// Bytes one agent run's tasks may emit and write to memory in all.
    pub max_run_bytes: usize,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        RuntimeSettings {
            max_concurrency: 64,
            max_depth: 32,
            max_pending_events: 16_384,
            max_run_tasks: 10_000,
            max_run_events: 10_000,
            max_run_bytes: 64 << 20,
        }
    }
}

/// The built-in ReAct agent: a model answers each input, calling tools as it
/// sees fit, until it gives a final answer (optionally following a schema).
#[derive(Debug, Clone, PartialEq)]
pub struct ReactSpec {
    /// The chat-model resource.
    pub model: String,
    /// The user message; `{input}` is replaced by the input payload (a string
    /// as is, anything else as JSON). Default: the payload itself.
    pub prompt: Option<String>,
    /// A JSON Schema the final answer must follow; the output payload is then
    /// the parsed JSON.
    pub output_schema: Option<Value>,
    /// Most model calls per input event.
    pub max_steps: u32,
    /// Where it was declared.
    pub origin: Origin,
}

/// An installed skill an agent uses: its version, and what the agent grants
/// its components' tools.
#[derive(Debug, Clone, PartialEq)]
pub struct SkillUse {
    /// The installed version to use (exact).
    pub version: String,
    /// What its tools are granted.
    pub grants: GrantSpec,
    /// Limits of its tool calls.
    pub limits: LimitSettings,
    /// Where it was declared.
    pub origin: Origin,
}

/// An agent: the user's definition, not yet checked against its components.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    /// The agent's name.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// Components by name.
    pub components: BTreeMap<String, ComponentSpec>,
    /// Installed skills by name; each adds its components (named as the
    /// skill, or `SKILL.COMPONENT` when it has several).
    pub skills: BTreeMap<String, SkillUse>,
    /// The skill store to find them in (default: the skill store's default
    /// root: `$WEIR_SKILLS_DIR`, else the user's data dir + `weir/skills`).
    pub skill_store: Option<PathBuf>,
    /// The lockfile pinning the skills' digests (a manifest's is `weir.lock`
    /// beside it; none for agents built in code unless set).
    pub lockfile: Option<PathBuf>,
    /// Actions, in declaration order.
    pub actions: Vec<ActionSpec>,
    /// Resources by name.
    pub resources: BTreeMap<String, ResourceSpec>,
    /// Agent-wide config, visible to every action.
    pub config: Map<String, Value>,
    /// Runtime settings.
    pub runtime: RuntimeSettings,
    /// What the event log keeps, when one is written (`[event_log]`).
    pub event_log: crate::observe::eventlog::EventLogSettings,
    /// Limits of every task, unless an action or component sets its own.
    pub limits: LimitSettings,
    /// The built-in ReAct agent, if used.
    pub react: Option<ReactSpec>,
    /// The manifest file it was read from, if any.
    pub manifest: Option<PathBuf>,
}

impl Agent {
    /// Starts building an agent in code.
    pub fn builder(name: impl Into<String>) -> AgentBuilder {
        AgentBuilder::new(name)
    }

    /// Reads an agent manifest (TOML). Errors name the file, line and field.
    pub fn from_manifest(path: impl Into<PathBuf>) -> Result<Agent, ManifestError> {
        manifest::load(path.into())
    }

    /// True if any of its limits sets `fuel`.
    pub fn uses_fuel(&self) -> bool {
        let set = |l: &LimitSettings| l.fuel.is_some();
        set(&self.limits)
            || self.actions.iter().any(|a| set(&a.limits))
            || self.components.values().any(|c| set(&c.limits))
            || self.skills.values().any(|s| set(&s.limits))
    }

    /// Parses manifest text; `path` names it in errors and anchors relative
    /// component paths.
    pub fn from_manifest_str(path: impl Into<PathBuf>, text: &str) -> Result<Agent, ManifestError> {
        manifest::parse(path.into(), text)
    }
}
