//! Host capabilities offered to guests, and the single path every host call
//! takes.
//!
//! Each capability (one submodule per WIT interface) turns the guest's call
//! into a [`TaskState::call`], which checks the grant, counts the call, traces
//! it, and runs the capability. Journaling (durable execution), permissions
//! and tracing wrap every host call here without touching each function.

mod context;
mod events;
mod log;
mod memory;

use crate::memory::{MemoryObject, Undo};
use serde_json::{Map, Value};
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        world: "action",
        path: "wit",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

pub(crate) use bindings::weir::agent::types::HostError;
pub(crate) use bindings::{Action, ActionPre};

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
}

impl Capability {
    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// The capabilities an action may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grants(u8);

impl Grants {
    /// What every action gets unless restricted: context, events, memory, log.
    pub const ACTION_DEFAULT: Grants = Grants(
        Capability::Context.bit()
            | Capability::Events.bit()
            | Capability::Memory.bit()
            | Capability::Log.bit(),
    );
    /// Nothing at all.
    pub const NONE: Grants = Grants(0);

    /// True if `capability` is granted.
    pub fn allows(self, capability: Capability) -> bool {
        self.0 & capability.bit() != 0
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

/// What a task starts with.
pub(crate) struct TaskInput {
    pub action_name: Arc<str>,
    pub config: Arc<ActionConfig>,
    pub grants: Grants,
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
            task: Task {
                input,
                undo: Vec::new(),
                emitted: Vec::new(),
                host_calls: 0,
            },
        }
    }

    /// State for calling a component's `actions` export at plan time.
    pub(crate) fn describe(max_memory_bytes: usize) -> Self {
        TaskState::new(
            TaskInput {
                action_name: Arc::from(""),
                config: Arc::default(),
                grants: Grants::NONE,
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

    /// The single host-call path: every capability function runs through it.
    pub(crate) fn call<R>(
        &mut self,
        op: Op,
        f: impl FnOnce(&mut Task) -> Result<R, HostError>,
    ) -> Result<R, HostError> {
        let task = &mut self.task;
        task.host_calls += 1;
        if !task.input.grants.allows(op.capability) {
            tracing::debug!(action = %task.input.action_name, call = op.name, "host call denied");
            return Err(HostError::Denied(format!(
                "action `{}` is not granted {:?} (calling `{}`)",
                task.input.action_name, op.capability, op.name
            )));
        }
        let result = f(task);
        tracing::trace!(
            action = %task.input.action_name,
            key = %task.input.key,
            call = op.name,
            ok = result.is_ok(),
            "host call"
        );
        result
    }
}

impl bindings::weir::agent::types::Host for TaskState {}

/// Adds WASI p2 and weir's capabilities to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<TaskState>) -> anyhow::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    Action::add_to_linker::<TaskState, HasSelf<TaskState>>(linker, |state| state)?;
    Ok(())
}
