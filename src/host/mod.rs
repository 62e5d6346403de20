//! Host capabilities offered to guests, and the single path every host call
//! takes.
//!
//! Each capability (one submodule per WIT interface) is a method of [`Task`]
//! that runs through [`Task::call`] or [`Task::call_async`], which check the
//! grant, count the call and trace it. Guests reach the methods through the
//! WIT bindings on [`TaskState`]; the built-in actions call them directly, so
//! journaling (durable execution), permissions and tracing wrap every host
//! call here without touching each function.

mod context;
mod events;
mod log;
mod memory;
pub(crate) mod model;
mod tools;

pub(crate) use model::ModelUsage;

use crate::memory::{MemoryObject, Undo};
use serde_json::{Map, Value};
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        world: "skill",
        path: "wit",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

pub(crate) use bindings::weir::agent::types::HostError;
pub(crate) use bindings::{Skill, SkillPre};

/// Bytes of guest stdout/stderr kept per task (the tail shows in errors).
const CAPTURED_OUTPUT_BYTES: usize = 16 << 10;

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
}

/// What an action may use: capabilities, and the models and tools by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Grants {
    #[serde(skip)]
    capabilities: u8,
    /// Model resources it may call.
    pub models: std::collections::BTreeSet<String>,
    /// Tools it may call.
    pub tools: std::collections::BTreeSet<String>,
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

    /// Only logging: what a tool gets.
    pub fn tool_default() -> Grants {
        Grants {
            capabilities: Capability::Log.bit(),
            ..Grants::default()
        }
    }

    /// Also grants the models and tools named.
    pub fn with(mut self, models: &[String], tools: &[String]) -> Grants {
        self.models.extend(models.iter().cloned());
        self.tools.extend(tools.iter().cloned());
        self
    }

    /// True if `capability` is granted.
    pub fn allows(&self, capability: Capability) -> bool {
        self.capabilities & capability.bit() != 0
    }
}

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
    pub max_emits: usize,
}

/// An event a task emitted, committed only if the task succeeds.
#[derive(Debug)]
pub(crate) struct Emitted {
    pub id: String,
    pub event_type: String,
    pub payload: Value,
    pub attributes: Vec<(String, String)>,
}

/// The task-side state of host calls.
pub(crate) struct Task {
    pub input: TaskInput,
    pub undo: Vec<(bindings::weir::agent::memory::Scope, Undo)>,
    pub emitted: Vec<Emitted>,
    pub host_calls: u64,
}

/// The data of one task's store.
pub struct TaskState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: wasmtime::StoreLimits,
    stderr: MemoryOutputPipe,
    stdout: MemoryOutputPipe,
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

impl TaskState {
    pub(crate) fn new(input: TaskInput, max_memory_bytes: usize) -> Self {
        let stdout = MemoryOutputPipe::new(CAPTURED_OUTPUT_BYTES);
        let stderr = MemoryOutputPipe::new(CAPTURED_OUTPUT_BYTES);
        // Deny by default: no preopened dirs, no env, no args, no network, no
        // host stdio; guest output is captured for the log and error events.
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let limits = wasmtime::StoreLimitsBuilder::new()
            .memory_size(max_memory_bytes)
            .instances(16)
            .tables(32)
            .memories(8)
            .trap_on_grow_failure(false)
            .build();
        TaskState {
            wasi,
            table: ResourceTable::new(),
            limits,
            stderr,
            stdout,
            task: Task::new(input),
        }
    }

    /// State for calling a component's `actions` export at plan time.
    pub(crate) fn describe(max_memory_bytes: usize) -> Self {
        TaskState::new(
            TaskInput {
                action_name: Arc::from(""),
                config: Arc::default(),
                grants: Arc::default(),
                env: Arc::default(),
                usage: Arc::default(),
                key: String::new(),
                event_id: String::new(),
                memory: KeyMemory::default(),
                max_emits: 0,
            },
            max_memory_bytes,
        )
    }

    pub(crate) fn limits(&mut self) -> &mut wasmtime::StoreLimits {
        &mut self.limits
    }

    /// What the guest wrote to stderr and stdout (lossy UTF-8).
    pub(crate) fn captured_output(&self) -> (String, String) {
        let text = |pipe: &MemoryOutputPipe| String::from_utf8_lossy(&pipe.contents()).into_owned();
        (text(&self.stderr), text(&self.stdout))
    }
}

impl Task {
    pub(crate) fn new(input: TaskInput) -> Self {
        Task {
            input,
            undo: Vec::new(),
            emitted: Vec::new(),
            host_calls: 0,
        }
    }

    /// Counts the call and checks its grant.
    fn enter(&mut self, op: Op) -> Result<(), HostError> {
        self.host_calls += 1;
        if self.input.grants.allows(op.capability) {
            return Ok(());
        }
        tracing::debug!(action = %self.input.action_name, call = op.name, "host call denied");
        Err(HostError::Denied(format!(
            "action `{}` is not granted {:?} (calling `{}`)",
            self.input.action_name, op.capability, op.name
        )))
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
    pub(crate) async fn call_async<R, F>(
        &mut self,
        op: Op,
        prepare: impl FnOnce(&mut Task) -> Result<F, HostError>,
    ) -> Result<R, HostError>
    where
        F: std::future::Future<Output = Result<R, HostError>> + Send + 'static,
    {
        self.enter(op)?;
        let result = match prepare(self) {
            Ok(work) => work.await,
            Err(e) => Err(e),
        };
        self.trace(op, &result);
        result
    }
}

impl bindings::weir::agent::types::Host for TaskState {}

/// Adds WASI p2 and weir's capabilities to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<TaskState>) -> anyhow::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    Skill::add_to_linker::<TaskState, HasSelf<TaskState>>(linker, |state| state)?;
    Ok(())
}
