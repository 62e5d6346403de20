//! One task's side of the host calls: what it starts with ([`TaskInput`]),
//! what it has done so far (emitted events, memory undo, bytes written,
//! denials, the limit that stopped it) and the accounting every capability
//! charges against.

use super::grants::{Capability, Denial, Denials, Grants};
use super::http::{self, HttpPolicy};
use super::tools::{NoTools, Toolbox};
use super::{Authority, HostError, ModelUsage, bindings, readings};
use crate::limits::{LimitExceeded, Limits};
use crate::memory::{MemoryObject, Undo};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Per-key memory handed to a task and taken back after it.
#[derive(Debug, Default)]
pub struct KeyMemory {
    /// Kept across the key's agent runs.
    pub short_term: MemoryObject,
    /// Cleared after each agent run.
    pub sensory: MemoryObject,
}

/// The config an action sees: the agent's config overlaid by its own.
#[derive(Debug, Default)]
pub(crate) struct ActionConfig {
    pub merged: Map<String, Value>,
    pub merged_json: String,
}

impl ActionConfig {
    pub(crate) fn new(agent: &Map<String, Value>, action: &Map<String, Value>) -> Self {
        let mut merged = agent.clone();
        merged.extend(action.iter().map(|(k, v)| (k.clone(), v.clone())));
        let merged_json = Value::Object(merged.clone()).to_string();
        ActionConfig {
            merged,
            merged_json,
        }
    }
}

/// What the tasks of one plan share: its resources and tools.
pub(crate) struct TaskEnv {
    /// The agent's name, part of every idempotency key.
    pub agent: Arc<str>,
    pub resources: Arc<crate::resources::ResourceProviders>,
    pub tools: Arc<dyn Toolbox>,
}

impl Default for TaskEnv {
    fn default() -> Self {
        TaskEnv {
            agent: Arc::from(""),
            resources: Arc::default(),
            tools: Arc::new(NoTools),
        }
    }
}

/// What a task starts with.
pub(crate) struct TaskInput {
    pub action_name: Arc<str>,
    pub config: Arc<ActionConfig>,
    pub grants: Arc<Grants>,
    pub env: Arc<TaskEnv>,
    pub usage: Arc<ModelUsage>,
    pub key: String,
    pub event_id: String,
    pub memory: KeyMemory,
    pub limits: Limits,
    /// How deep in tool calls this task runs (0 for an action).
    pub tool_depth: u32,
    /// The durable-execution journal and the run (input event) this task
    /// belongs to, when the runtime keeps state.
    pub journal: Option<(Arc<crate::journal::Journal>, Arc<str>)>,
    /// The task's idempotency key when its caller sets it (a tool's task);
    /// otherwise derived from the event and action when first asked for.
    pub idempotency: Option<String>,
    /// The action a built-in chat-model or tool-call task acts for; its
    /// grants are then this action's.
    pub on_behalf: Option<Arc<Authority>>,
    /// Where its host calls are logged, when an event log is written.
    pub log: Option<Arc<crate::observe::eventlog::Scope>>,
    /// Its spans' context and its agent's metrics, when telemetry is on.
    pub telemetry: Option<crate::observe::telemetry::TaskTelemetry>,
}

impl TaskInput {
    /// Input that grants nothing and names no task.
    pub(crate) fn idle() -> TaskInput {
        /// What every idle input shares: a warm instance parks on an idle
        /// task between tasks, so making one allocates nothing.
        struct Shared {
            action_name: Arc<str>,
            config: Arc<ActionConfig>,
            grants: Arc<Grants>,
            env: Arc<TaskEnv>,
            usage: Arc<ModelUsage>,
        }
        static SHARED: std::sync::LazyLock<Shared> = std::sync::LazyLock::new(|| Shared {
            action_name: Arc::from(""),
            config: Arc::default(),
            grants: Arc::default(),
            env: Arc::default(),
            usage: Arc::default(),
        });
        TaskInput {
            action_name: SHARED.action_name.clone(),
            config: SHARED.config.clone(),
            grants: SHARED.grants.clone(),
            env: SHARED.env.clone(),
            usage: SHARED.usage.clone(),
            key: String::new(),
            event_id: String::new(),
            memory: KeyMemory::default(),
            limits: Limits::default(),
            tool_depth: 0,
            journal: None,
            idempotency: None,
            on_behalf: None,
            log: None,
            telemetry: None,
        }
    }
}

/// An event a task emitted, committed only if the task succeeds.
#[derive(Debug)]
pub(crate) struct Emitted {
    pub id: String,
    pub event_type: String,
    pub payload: Value,
    pub attributes: Vec<(String, String)>,
    /// Whom the event acts for, when a built-in narrowed it (see
    /// [`Authority`]); otherwise the runtime derives it from the emitter.
    pub authority: Option<Arc<Authority>>,
}

/// The task-side state of host calls.
pub(crate) struct Task {
    pub input: TaskInput,
    pub undo: Vec<(bindings::weir::agent::memory::Scope, Undo)>,
    pub emitted: Vec<Emitted>,
    /// Bytes emitted and written to memory so far.
    pub output_bytes: usize,
    pub host_calls: u64,
    /// Host calls by capability (indexed as [`Capability::ALL`]).
    pub calls: [u32; Capability::ALL.len()],
    /// Log records written (see `log::MAX_RECORDS`).
    pub log_records: u32,
    /// The limit that stopped the task, if one did.
    pub violation: Option<LimitExceeded>,
    /// Requests refused.
    pub denials: Denials,
    /// What the task read from clocks and random numbers, under durable
    /// execution.
    pub(super) readings: Option<readings::SharedReadings>,
}

/// An idempotency key: a digest of the agent and a task's position, which
/// names the input (key and sequence number, in the event id), the action
/// and, for a tool's task, the call.
pub(crate) fn idempotency_key(agent: &str, position: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{agent}\0{position}"));
    hex::encode(&digest[..16])
}

impl Task {
    pub(crate) fn new(input: TaskInput) -> Self {
        Task {
            input,
            undo: Vec::new(),
            emitted: Vec::new(),
            output_bytes: 0,
            host_calls: 0,
            calls: [0; Capability::ALL.len()],
            log_records: 0,
            violation: None,
            denials: Denials::default(),
            readings: None,
        }
    }

    /// Shares `readings` with the store's clocks, set up for this task.
    pub(super) fn attach_readings(&mut self, readings: &readings::SharedReadings) {
        let record = self.input.journal.as_ref().map(|(store, run)| {
            let id = format!("{run}/{}/readings", self.position());
            (store.clone(), run.clone(), id)
        });
        readings
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .reset(record, self.input.limits.max_output_bytes);
        self.readings = Some(readings.clone());
    }

    /// Where the task's HTTP responses are recorded, under durable
    /// execution.
    pub(super) fn http_journal(&self) -> Option<http::HttpJournal> {
        let (store, run) = self.input.journal.as_ref()?;
        Some(http::HttpJournal {
            store: store.clone(),
            run: run.clone(),
            prefix: format!("{run}/{}", self.position()),
            readings: self.readings.clone(),
        })
    }

    /// Writes the clock and random readings not yet in the journal, ahead
    /// of a record that may depend on them.
    pub(super) fn save_readings(&self) {
        if let Some(readings) = &self.readings {
            readings
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .save();
        }
    }

    /// A task that holds nothing: what a warm instance holds between tasks.
    pub(crate) fn idle() -> Task {
        Task::new(TaskInput::idle())
    }

    /// Where the task stands in its agent run: its event and action. Its
    /// journal records and idempotency keys are named after it.
    pub(super) fn position(&self) -> String {
        format!("{}/{}", self.input.event_id, self.input.action_name)
    }

    /// The task's idempotency key (see `context.idempotency-key`), derived
    /// when first asked for: most tasks never need it.
    pub(crate) fn idempotency_key(&mut self) -> &str {
        if self.input.idempotency.is_none() {
            let key = idempotency_key(&self.input.env.agent, &self.position());
            self.input.idempotency = Some(key);
        }
        self.input.idempotency.as_deref().unwrap_or_default()
    }

    /// Who is asking, for denial messages: the action, or for a built-in
    /// acting for another action, both.
    pub(crate) fn principal(&self) -> String {
        match &self.input.on_behalf {
            Some(authority) => format!(
                "`{}` (through `{}`)",
                authority.action, self.input.action_name
            ),
            None => format!("`{}`", self.input.action_name),
        }
    }

    /// Fails the task with `max_output_bytes` if its clock and random
    /// readings ran past what the journal may record for it.
    pub(crate) fn check_readings(&mut self) -> Result<(), HostError> {
        let Some(readings) = &self.readings else {
            return Ok(());
        };
        let overran = readings
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .overran();
        match overran {
            Some(bytes) => Err(self.exceed(
                crate::limits::Limit::MaxOutputBytes,
                format!("recording {bytes} bytes of clock and random readings"),
            )),
            None => Ok(()),
        }
    }

    /// Records a refused request and returns the error the guest gets.
    pub(crate) fn deny(
        &mut self,
        capability: &'static str,
        target: impl Into<String>,
        message: String,
    ) -> HostError {
        let denial = Denial::new(capability, target);
        tracing::debug!(action = %self.input.action_name, capability, target = %denial.target, "denied");
        self.note("_denial_event", || {
            serde_json::json!({ "capability": capability, "target": denial.target, "message": message })
        });
        self.denials.record(denial);
        HostError::Denied(message)
    }

    /// Logs a note of this task (a memory write, a denial) as a record of
    /// its own, when an event log is written.
    pub(crate) fn note(
        &self,
        event_type: &'static str,
        details: impl FnOnce() -> serde_json::Value,
    ) {
        if let Some(scope) = &self.input.log {
            scope.note(event_type, details());
        }
    }

    /// Takes over the HTTP requests the task's wasi:http hooks refused.
    pub(super) fn take_http_denials(&mut self, http: HttpPolicy) {
        let (denials, late) = http.into_denials();
        for denial in denials.kept().iter().chain(late.kept()) {
            self.note(
                "_denial_event",
                || serde_json::json!({ "capability": denial.capability, "target": denial.target }),
            );
        }
        self.denials.absorb(denials);
        self.denials.absorb(late);
    }

    /// Records that the task reached a limit; the guest is stopped (its
    /// host call traps) and the task fails with this limit.
    pub(crate) fn exceed(&mut self, limit: crate::limits::Limit, detail: String) -> HostError {
        let exceeded = self.input.limits.exceeded(limit, detail);
        let message = exceeded.to_string();
        self.violation.get_or_insert(exceeded);
        HostError::Limit(message)
    }

    /// Counts `size` bytes a task emits or writes to memory against its
    /// `max_output_bytes`; `what` describes the write for the error.
    pub(crate) fn charge_output(
        &mut self,
        size: usize,
        what: impl FnOnce() -> String,
    ) -> Result<(), HostError> {
        if self.output_bytes + size > self.input.limits.max_output_bytes {
            let detail = format!(
                "{} of {size} bytes after {} bytes",
                what(),
                self.output_bytes
            );
            return Err(self.exceed(crate::limits::Limit::MaxOutputBytes, detail));
        }
        self.output_bytes += size;
        Ok(())
    }

    /// Checks that JSON a task hands the host, nested `levels` deep, stays
    /// within its `max_nesting`; `what` describes it for the error.
    pub(crate) fn check_nesting(
        &mut self,
        levels: usize,
        what: impl FnOnce() -> String,
    ) -> Result<(), HostError> {
        if levels <= self.input.limits.max_nesting {
            return Ok(());
        }
        let detail = format!("{} nests {levels} levels deep", what());
        Err(self.exceed(crate::limits::Limit::MaxNesting, detail))
    }
}
