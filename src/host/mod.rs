//! Host capabilities offered to guests, and the single path every host call
//! takes.
//!
//! Each capability (one submodule per WIT interface) is a method of [`Task`]
//! that runs through [`Task::call`] or [`Task::call_async`], which check the
//! grant, count the call and trace it. Guests reach the methods through the
//! WIT bindings on [`TaskState`]; the built-in actions call them directly, so
//! journaling (durable execution), permissions and tracing wrap every host
//! call here without touching each function.

mod authority;
mod context;
mod events;
pub mod http;
mod limiter;
mod log;
mod memory;
pub(crate) mod model;
mod outbound;
mod readings;
mod tools;
mod wasi;

pub(crate) use authority::{Authority, Offered};
pub(crate) use limiter::{MemoryBudget, MemoryLimiter};
pub(crate) use model::ModelUsage;

use crate::agent::DirGrant;
use crate::limits::{LimitExceeded, Limits};
use crate::memory::{MemoryObject, Undo};
use http::{HttpPolicy, HttpRule};
use serde_json::{Map, Value};
use std::sync::Arc;
use wasi::OutputCapture;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        world: "skill-core",
        path: "wit",
        imports: { default: async | trappable },
        exports: { default: async },
    });

    /// The optional `reconciler` export, looked up on its own.
    pub(crate) mod reconciler {
        wasmtime::component::bindgen!({
            world: "reconciler-export",
            path: "wit",
            exports: { default: async },
            with: { "weir:agent/types": super::weir::agent::types },
        });
    }
}

pub(crate) use bindings::weir::agent::types::HostError;
pub(crate) use bindings::{SkillCore as Skill, SkillCorePre as SkillPre};

/// A host capability that an action can be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Its name, key and config.
    Context,
    /// Emitting events.
    Events,
    /// Short-term and sensory memory.
    Memory,
    /// Structured logging.
    Log,
    /// Chat and embedding models (each also granted by name).
    Model,
    /// Tools (each also granted by name).
    Tools,
}

impl Capability {
    const fn bit(self) -> u8 {
        1 << self as u8
    }

    /// Its name in error events and the summary.
    pub fn name(self) -> &'static str {
        match self {
            Capability::Context => "context",
            Capability::Events => "events",
            Capability::Memory => "memory",
            Capability::Log => "log",
            Capability::Model => "model",
            Capability::Tools => "tools",
        }
    }
}

/// What an action or tool may use: capabilities, models and tools by name,
/// outbound HTTP destinations, directories and environment variables.
/// Everything not listed is denied.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Grants {
    #[serde(skip)]
    capabilities: u8,
    /// Model resources it may call.
    pub models: std::collections::BTreeSet<String>,
    /// Tools it may call.
    pub tools: std::collections::BTreeSet<String>,
    /// Where it may send HTTP requests (wasi:http).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub http: Arc<[HttpRule]>,
    /// Host directories it sees, read-only unless `write`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dirs: Vec<DirGrant>,
    /// Environment variables it sees, by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Their values, read when the plan was made.
    #[serde(skip)]
    pub(crate) env_values: Vec<(String, String)>,
}

impl Grants {
    /// Context, events, memory and log: what every action gets; models and
    /// tools are granted by name.
    pub fn action_default() -> Grants {
        Grants {
            capabilities: Capability::Context.bit()
                | Capability::Events.bit()
                | Capability::Memory.bit()
                | Capability::Log.bit()
                | Capability::Model.bit()
                | Capability::Tools.bit(),
            ..Grants::default()
        }
    }

    /// Its context (the caller's key, its idempotency key), logging, and
    /// models and tools by name: what a tool gets.
    pub fn tool_default() -> Grants {
        Grants {
            capabilities: Capability::Context.bit()
                | Capability::Log.bit()
                | Capability::Model.bit()
                | Capability::Tools.bit(),
            ..Grants::default()
        }
    }

    /// Also grants what `spec` lists: HTTP rules are parsed, directories
    /// checked and environment values read now. Problems come back as
    /// (field, message).
    pub(crate) fn with(
        mut self,
        spec: &crate::agent::GrantSpec,
    ) -> Result<Grants, Vec<(&'static str, String)>> {
        let mut problems = Vec::new();
        self.models.extend(spec.models.iter().cloned());
        self.tools.extend(spec.tools.iter().cloned());
        let mut http = self.http.to_vec();
        for rule in &spec.http {
            match HttpRule::parse(rule) {
                Ok(rule) => http.push(rule),
                Err(message) => problems.push(("http", message)),
            }
        }
        self.http = http.into();
        for dir in &spec.dirs {
            if !dir.guest.starts_with('/') {
                problems.push((
                    "dirs",
                    format!("guest path `{}` must be absolute, like `/data`", dir.guest),
                ));
            } else if !dir.host.is_dir() {
                problems.push(("dirs", format!("{} is not a directory", dir.host.display())));
            } else {
                self.dirs.push(dir.clone());
            }
        }
        for name in &spec.env {
            if name.is_empty() || name.contains('=') {
                problems.push(("env", format!("`{name}` is not a variable name")));
                continue;
            }
            self.env.push(name.clone());
            if let Ok(value) = std::env::var(name) {
                self.env_values.push((name.clone(), value));
            }
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(problems)
        }
    }

    /// True if `capability` is granted.
    pub fn allows(&self, capability: Capability) -> bool {
        self.capabilities & capability.bit() != 0
    }
}

/// A request a task was refused: which capability, and what it asked for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Denial {
    /// The capability, for example `http` or `model`.
    pub capability: &'static str,
    /// What was asked for: a URL, a model or tool name, a host function.
    pub target: String,
}

impl Denial {
    pub(crate) fn new(capability: &'static str, target: impl Into<String>) -> Self {
        Denial {
            capability,
            target: target.into(),
        }
    }
}

/// Most denials kept per task (all are counted).
pub(crate) const MAX_DENIALS_KEPT: usize = 16;

/// One host function, as the host-call path sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Op {
    pub capability: Capability,
    pub name: &'static str,
}

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
#[derive(Default)]
pub(crate) struct TaskEnv {
    /// The agent's name, part of every idempotency key.
    pub agent: Arc<str>,
    pub resources: Arc<crate::resources::ResourceProviders>,
    pub tools: Arc<crate::tools::ToolCatalog>,
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
    pub journal: Option<(Arc<crate::state::StateStore>, Arc<str>)>,
    /// The task's idempotency key when its caller sets it (a tool's task);
    /// otherwise derived from the event and action when first asked for.
    pub idempotency: Option<String>,
    /// The action a built-in chat-model or tool-call task acts for; its
    /// grants are then this action's.
    pub on_behalf: Option<Arc<Authority>>,
}

impl TaskInput {
    /// Input that grants nothing and names no task.
    pub(crate) fn idle() -> TaskInput {
        TaskInput {
            action_name: Arc::from(""),
            config: Arc::default(),
            grants: Arc::default(),
            env: Arc::default(),
            usage: Arc::default(),
            key: String::new(),
            event_id: String::new(),
            memory: KeyMemory::default(),
            limits: Limits::default(),
            tool_depth: 0,
            journal: None,
            idempotency: None,
            on_behalf: None,
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
    /// Log records written (see `log::MAX_RECORDS`).
    pub log_records: u32,
    /// The limit that stopped the task, if one did.
    pub violation: Option<LimitExceeded>,
    /// Requests refused: the first few, and how many per capability.
    pub denials: Vec<Denial>,
    pub denial_counts: std::collections::BTreeMap<&'static str, u64>,
    /// What the task read from clocks and random numbers, under durable
    /// execution.
    readings: Option<readings::SharedReadings>,
}

/// An idempotency key: a digest of the agent and a task's position, which
/// names the input (key and sequence number, in the event id), the action
/// and, for a tool's task, the call.
pub(crate) fn idempotency_key(agent: &str, position: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{agent}\0{position}"));
    hex::encode(&digest[..16])
}

/// A task whose WASI context could not be built, with its input back.
pub(crate) struct SetupFailed {
    pub input: TaskInput,
    pub error: anyhow::Error,
}

/// The data of one task's store.
pub struct TaskState {
    wasi: WasiCtx,
    table: ResourceTable,
    http_ctx: WasiHttpCtx,
    http: HttpPolicy,
    limiter: MemoryLimiter,
    stderr: OutputCapture,
    stdout: OutputCapture,
    pub(crate) task: Task,
}

impl WasiView for TaskState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for TaskState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        // Derived on the task's first wasi:http call, not for every task.
        if self.http.idempotency.is_empty() {
            self.http.idempotency = self.task.idempotency_key().to_string();
            self.http.journal = self.task.http_journal();
        }
        WasiHttpCtxView {
            ctx: &mut self.http_ctx,
            table: &mut self.table,
            hooks: &mut self.http,
        }
    }
}

impl TaskState {
    /// State for a task with `input`'s grants and limits. Fails only if a
    /// granted directory cannot be opened; the input comes back then.
    pub(crate) fn new(input: TaskInput) -> Result<Self, Box<SetupFailed>> {
        Self::with_io(input, None)
    }

    /// State for running a wasi:cli command with `args` and `stdin`.
    pub(crate) fn for_command(
        input: TaskInput,
        args: Vec<String>,
        stdin: Vec<u8>,
    ) -> Result<Self, Box<SetupFailed>> {
        Self::with_io(input, Some(wasi::CommandIo { args, stdin }))
    }

    fn with_io(input: TaskInput, io: Option<wasi::CommandIo>) -> Result<Self, Box<SetupFailed>> {
        let stdout = OutputCapture::default();
        let stderr = OutputCapture::default();
        let readings = input
            .journal
            .as_ref()
            .map(|_| readings::SharedReadings::default());
        let wasi = match wasi::context(&input.grants, &stdout, &stderr, io, readings.as_ref()) {
            Ok(wasi) => wasi,
            Err(error) => return Err(Box::new(SetupFailed { input, error })),
        };
        let rules = input.grants.http.clone();
        let memory_bytes = input.limits.memory_bytes();
        let mut table = ResourceTable::new();
        table.set_max_capacity(input.limits.max_resources);
        let mut task = Task::new(input);
        if let Some(readings) = &readings {
            task.attach_readings(readings);
        }
        Ok(TaskState {
            wasi,
            table,
            http_ctx: WasiHttpCtx::new(),
            http: HttpPolicy {
                rules,
                idempotency: String::new(),
                sent: 0,
                denials: Vec::new(),
                denied: 0,
                journal: None,
                refused_late: Arc::default(),
            },
            limiter: MemoryLimiter::new(memory_bytes),
            stderr,
            stdout,
            task,
        })
    }

    /// State for calling a component's `actions` export at plan time, with
    /// `cpu_ms` of CPU time.
    pub(crate) fn describe(cpu_ms: u64) -> Self {
        let mut input = TaskInput::idle();
        input.limits.cpu_ms = cpu_ms;
        TaskState::new(input).unwrap_or_else(|_| unreachable!("no dirs are granted"))
    }

    pub(crate) fn limiter(&mut self) -> &mut MemoryLimiter {
        &mut self.limiter
    }

    /// What the guest wrote to stderr and stdout since the last call (lossy
    /// UTF-8, the tail of each).
    pub(crate) fn take_output(&self) -> (String, String) {
        (self.stderr.take(), self.stdout.take())
    }

    /// Swaps in the next task of a reused instance; returns the last one,
    /// with the HTTP requests it was refused.
    pub(crate) fn replace_task(&mut self, mut next: Task) -> Task {
        // Before the readings start over for the next task.
        let _ = self.task.check_readings();
        if let Some(readings) = self.task.readings.clone() {
            next.attach_readings(&readings);
        }
        self.limiter.set_limit(next.input.limits.memory_bytes());
        self.table.set_max_capacity(next.input.limits.max_resources);
        self.http.rules = next.input.grants.http.clone();
        self.http.idempotency.clear();
        self.http.sent = 0;
        self.http.journal = None;
        let mut done = std::mem::replace(&mut self.task, next);
        done.take_http_denials(&mut self.http);
        done
    }

    /// Ends the task: its state, with the HTTP requests it was refused.
    pub(crate) fn into_task(mut self) -> Task {
        let mut task = self.task;
        task.take_http_denials(&mut self.http);
        let _ = task.check_readings();
        task
    }

    /// The memory limit the guest ran into, if it did.
    pub(crate) fn memory_refused(&self) -> Option<usize> {
        self.limiter.refused()
    }

    /// The sandbox's memory budget, if it refused memory this task's own
    /// limit allowed.
    pub(crate) fn memory_budget_refused(&self) -> Option<usize> {
        self.limiter.refused_by_budget()
    }
}

impl Task {
    pub(crate) fn new(input: TaskInput) -> Self {
        Task {
            input,
            undo: Vec::new(),
            emitted: Vec::new(),
            output_bytes: 0,
            host_calls: 0,
            log_records: 0,
            violation: None,
            denials: Vec::new(),
            denial_counts: std::collections::BTreeMap::new(),
            readings: None,
        }
    }

    /// Shares `readings` with the store's clocks, set up for this task.
    fn attach_readings(&mut self, readings: &readings::SharedReadings) {
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
    fn http_journal(&self) -> Option<http::HttpJournal> {
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
    fn save_readings(&self) {
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
    fn position(&self) -> String {
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

    /// Counts the call and checks its grant.
    fn enter(&mut self, op: Op) -> Result<(), HostError> {
        self.host_calls += 1;
        self.check_readings()?;
        if self.input.grants.allows(op.capability) {
            return Ok(());
        }
        Err(self.deny(
            op.capability.name(),
            op.name,
            format!(
                "action {} is not granted {:?} (calling `{}`)",
                self.principal(),
                op.capability,
                op.name
            ),
        ))
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
        self.record_denial(denial);
        HostError::Denied(message)
    }

    /// Takes over the HTTP requests the task's wasi:http hooks refused.
    fn take_http_denials(&mut self, http: &mut HttpPolicy) {
        let kept = http.denials.len() as u64;
        for denial in http.denials.drain(..) {
            self.record_denial(denial);
        }
        let late = std::mem::take(
            &mut *http
                .refused_late
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for denial in late {
            self.record_denial(denial);
        }
        // Refusals beyond those kept are counted too.
        let uncounted = std::mem::take(&mut http.denied).saturating_sub(kept);
        if uncounted > 0 {
            *self.denial_counts.entry("http").or_default() += uncounted;
        }
    }

    fn record_denial(&mut self, denial: Denial) {
        *self.denial_counts.entry(denial.capability).or_default() += 1;
        if self.denials.len() < MAX_DENIALS_KEPT {
            self.denials.push(denial);
        }
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

    /// Turns a limit reached during a guest's host call into a trap, so the
    /// guest cannot go on past it.
    pub(crate) fn stop_on_limit<R>(
        &self,
        result: Result<R, HostError>,
    ) -> wasmtime::Result<Result<R, HostError>> {
        match (&result, &self.violation) {
            (Err(HostError::Limit(_)), Some(exceeded)) => {
                Err(wasmtime::Error::new(exceeded.clone()))
            }
            _ => Ok(result),
        }
    }

    fn trace<R>(&self, op: Op, result: &Result<R, HostError>) {
        tracing::trace!(
            action = %self.input.action_name,
            key = %self.input.key,
            call = op.name,
            ok = result.is_ok(),
            "host call"
        );
    }

    /// The single host-call path for calls answered at once.
    pub(crate) fn call<R>(
        &mut self,
        op: Op,
        f: impl FnOnce(&mut Task) -> Result<R, HostError>,
    ) -> Result<R, HostError> {
        self.enter(op)?;
        let result = f(self);
        self.trace(op, &result);
        result
    }

    /// The single host-call path for calls that wait (models, tools):
    /// `prepare` checks the request against the task and returns the work as
    /// a future that owns what it needs, so the task is free while it runs.
    /// With a journal, a call already recorded for this task (same position,
    /// same request) is answered from the record instead; a call made is
    /// recorded. A call whose intent was recorded but not its result is
    /// handed to `prepare` as interrupted, to reconcile.
    pub(crate) async fn call_async<R, F>(
        &mut self,
        op: Op,
        request: &impl serde::Serialize,
        prepare: impl FnOnce(&mut Task, CallSite) -> Result<F, HostError>,
    ) -> Result<R, HostError>
    where
        F: std::future::Future<Output = Result<R, HostError>> + Send + 'static,
        R: serde::Serialize + serde::de::DeserializeOwned,
    {
        self.enter(op)?;
        let position = format!("{}/{}", self.position(), self.host_calls);
        let mut journaled = self
            .input
            .journal
            .clone()
            .map(|(store, run)| JournaledCall {
                id: format!("{run}/{position}"),
                run,
                digest: crate::state::request_digest(op.name, request),
                op: op.name,
                store,
                interrupted: false,
            });
        if let Some(call) = &mut journaled
            && let Some(record) = call.store.call(&call.id)
        {
            if record.op != op.name || record.request != call.digest {
                tracing::warn!(
                    call = %call.id, recorded = %record.op, now = op.name,
                    "replay diverged: the guest made another call than the one recorded; running it live"
                );
            } else if record.is_intent() {
                call.interrupted = true;
            } else {
                let result = crate::state::replay(record);
                self.trace(op, &result);
                return result;
            }
        }
        let site = CallSite {
            position,
            journal: journaled.clone(),
        };
        let result = match prepare(self, site) {
            Ok(work) => work.await,
            Err(e) => Err(e),
        };
        let result = result.and_then(|reply| self.bounded_reply(op, reply));
        if let Some(call) = journaled {
            self.save_readings();
            let record = crate::state::record(op.name, call.digest, &result);
            call.store.record_call(&call.run, call.id, &record);
        }
        self.trace(op, &result);
        result
    }
}

impl Task {
    /// A model's or tool's reply, refused if it nests deeper than the
    /// task's `max_nesting`: it is kept (in memory, the journal) and must
    /// read back.
    fn bounded_reply<R: serde::Serialize>(&self, op: Op, reply: R) -> Result<R, HostError> {
        let max = self.input.limits.max_nesting;
        let levels = serde_json::to_value(&reply).map_or(0, |v| crate::limits::nesting(&v));
        if levels <= max {
            return Ok(reply);
        }
        Err(HostError::Invalid(format!(
            "the reply to `{}` nests {levels} levels deep, over the limit `max_nesting` ({max})",
            op.name
        )))
    }
}

/// Where a waiting host call stands, for the work [`Task::call_async`] runs.
pub(crate) struct CallSite {
    /// The call's position: event, action and call index.
    pub position: String,
    /// Its journal entry, under durable execution.
    pub journal: Option<JournaledCall>,
}

/// A host call's entry in the journal.
#[derive(Clone)]
pub(crate) struct JournaledCall {
    store: Arc<crate::state::StateStore>,
    run: Arc<str>,
    id: String,
    digest: String,
    op: &'static str,
    /// An intent was recorded for this call before a crash, but no result:
    /// it may or may not have taken effect.
    pub interrupted: bool,
}

impl JournaledCall {
    /// Records that the call is about to take effect, and waits until the
    /// record is on disk: a crash from here on leaves an intent to
    /// reconcile.
    pub(crate) async fn record_intent(&self) -> Result<(), HostError> {
        let record = crate::state::intent(self.op, self.digest.clone());
        self.store
            .record_durably(&self.run, self.id.clone(), &record)
            .await
            .map_err(|e| HostError::Failed(format!("the journal could not record the call: {e}")))
    }
}

impl bindings::weir::agent::types::Host for TaskState {}

/// Adds WASI p2, wasi:http and weir's capabilities to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<TaskState>) -> anyhow::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    Skill::add_to_linker::<TaskState, HasSelf<TaskState>>(linker, |state| state)?;
    Ok(())
}
