//! One ActionTask: an action run on one event in a fresh store and instance.
//!
//! The task's effects (emitted events, memory writes) take effect only if the
//! action returns `ok`; a trap, a guest error, a timeout or a CPU limit
//! undoes its memory writes and drops what it emitted.

use crate::event::Event;
use crate::host::bindings::weir::agent::types::Event as WitEvent;
use crate::host::{Emitted, KeyMemory, ModelUsage, Task, TaskEnv, TaskInput, TaskState};
use crate::plan::{ActionKind, ActionPlan};
use crate::sandbox::{CpuLimitExceeded, StoreLimits};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Why a task failed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Failure {
    /// The action returned an error.
    Guest { code: String, message: String },
    /// The guest trapped (a panic is a trap too).
    Trap { message: String, stderr: String },
    /// The wall-clock deadline passed.
    Timeout { limit_ms: u64 },
    /// The guest used up its CPU time.
    CpuLimit { limit_ms: u64 },
    /// The host could not run the task (for example instantiation failed).
    Host { message: String },
}

impl Failure {
    /// The error kind used in error events and the summary.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Failure::Guest { .. } => "action-error",
            Failure::Trap { .. } => "trap",
            Failure::Timeout { .. } => "timeout",
            Failure::CpuLimit { .. } => "cpu-limit",
            Failure::Host { .. } => "host",
        }
    }

    /// The error event payload's details.
    pub(crate) fn details(&self) -> Value {
        match self {
            Failure::Guest { code, message } => json!({ "code": code, "message": message }),
            Failure::Trap { message, stderr } => json!({ "message": message, "stderr": stderr }),
            Failure::Timeout { limit_ms } => json!({
                "message": format!("the task ran past its {limit_ms} ms deadline"),
                "limit_ms": limit_ms,
            }),
            Failure::CpuLimit { limit_ms } => json!({
                "message": format!("the guest ran past its {limit_ms} ms CPU budget"),
                "limit_ms": limit_ms,
            }),
            Failure::Host { message } => json!({ "message": message }),
        }
    }
}

/// Limits of one task, from the runtime settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TaskLimits {
    pub timeout: Duration,
    pub cpu: Duration,
    pub max_emits: usize,
}

/// What a finished task hands back: the key's memory (always), and its
/// emitted events or why it failed.
pub(crate) struct TaskOutcome {
    pub memory: KeyMemory,
    pub result: Result<Vec<Emitted>, Failure>,
    pub host_calls: u64,
}

/// Longest stderr tail kept in an error event.
const STDERR_TAIL_BYTES: usize = 2048;

/// What every task of a run shares.
pub(crate) struct TaskContext<'a> {
    pub env: &'a Arc<TaskEnv>,
    pub usage: &'a Arc<ModelUsage>,
    pub limits: TaskLimits,
}

pub(crate) async fn run(
    action: &ActionPlan,
    event: &Event,
    wit_event: &WitEvent,
    memory: KeyMemory,
    context: &TaskContext<'_>,
) -> TaskOutcome {
    let input = TaskInput {
        action_name: action.name_arc.clone(),
        config: action.merged_config.clone(),
        grants: action.grants.clone(),
        env: context.env.clone(),
        usage: context.usage.clone(),
        key: event.key.clone(),
        event_id: event.id.clone(),
        memory,
        max_emits: context.limits.max_emits,
    };
    let (task, result) = match &action.kind {
        ActionKind::Component(component) => {
            run_component(action, component, wit_event, input, context.limits).await
        }
        ActionKind::Builtin(builtin) => {
            let mut task = Task::new(input);
            let run = builtin.run(event, &mut task);
            let result = match tokio::time::timeout(context.limits.timeout, run).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(Failure::Guest {
                    code: e.code.to_string(),
                    message: e.message,
                }),
                Err(_) => Err(Failure::Timeout {
                    limit_ms: context.limits.timeout.as_millis() as u64,
                }),
            };
            (task, result)
        }
    };
    let mut memory = task.input.memory;
    let result = match result {
        Ok(()) => Ok(task.emitted),
        Err(failure) => {
            for (scope, undo) in task.undo.into_iter().rev() {
                use crate::host::bindings::weir::agent::memory::Scope;
                let object = match scope {
                    Scope::ShortTerm => &mut memory.short_term,
                    Scope::Sensory => &mut memory.sensory,
                };
                object.rollback(vec![undo]);
            }
            Err(failure)
        }
    };
    TaskOutcome {
        memory,
        result,
        host_calls: task.host_calls,
    }
}

async fn run_component(
    action: &ActionPlan,
    component: &crate::sandbox::ActionComponent,
    event: &WitEvent,
    input: TaskInput,
    limits: TaskLimits,
) -> (Task, Result<(), Failure>) {
    let sandbox = &component.sandbox;
    let tick = sandbox.config().epoch_tick.as_millis().max(1);
    let mut store = sandbox.new_store(
        TaskState::new(input, sandbox.config().max_memory_bytes),
        StoreLimits {
            cpu_ticks: (limits.cpu.as_millis() / tick).max(1) as u64,
        },
    );
    let call = async {
        let instance = component.pre.instantiate_async(&mut store).await?;
        instance
            .weir_agent_handler()
            .call_handle(&mut store, &action.export, event)
            .await
    };
    let outcome = tokio::time::timeout(limits.timeout, call).await;
    let state = store.into_data();
    let result = match outcome {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(Failure::Guest {
            code: e.code,
            message: e.message,
        }),
        Ok(Err(error)) if error.downcast_ref::<CpuLimitExceeded>().is_some() => {
            Err(Failure::CpuLimit {
                limit_ms: limits.cpu.as_millis() as u64,
            })
        }
        Ok(Err(error)) if error.downcast_ref::<wasmtime::Trap>().is_some() => {
            let (stderr, _) = state.captured_output();
            Err(Failure::Trap {
                message: format!("{error:#}"),
                stderr: tail(&stderr, STDERR_TAIL_BYTES).to_string(),
            })
        }
        Ok(Err(error)) => Err(Failure::Host {
            message: format!("{error:#}"),
        }),
        Err(_) => Err(Failure::Timeout {
            limit_ms: limits.timeout.as_millis() as u64,
        }),
    };
    log_guest_output(&state, action);
    (state.task, result)
}

/// Guest stdout/stderr go to the host log at debug level.
fn log_guest_output(state: &TaskState, action: &ActionPlan) {
    if !tracing::enabled!(target: "weir::guest", tracing::Level::DEBUG) {
        return;
    }
    let (stderr, stdout) = state.captured_output();
    for (stream, text) in [("stdout", stdout), ("stderr", stderr)] {
        for line in text.lines() {
            tracing::debug!(target: "weir::guest", action = %action.name, stream, "{line}");
        }
    }
}

fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}
