//! One ActionTask: an action run on one event in a fresh store and instance.
//!
//! The task's effects (emitted events, memory writes) take effect only if the
//! action returns `ok`; a trap, a guest error, a timeout or a CPU limit
//! undoes its memory writes and drops what it emitted.

use crate::event::Event;
use crate::host::bindings::weir::agent::types::Event as WitEvent;
use crate::host::{
    Authority, Capability, Denial, Emitted, InstanceState, KeyMemory, ModelUsage, Task, TaskEnv,
    TaskInput,
};
use crate::limits::{Limit, LimitExceeded};
use crate::plan::{ActionKind, ActionPlan};
use crate::sandbox::{ActionComponent, GuestStop, WarmInstance, invoke, memory_limit};
use serde_json::{Value, json};
use std::sync::Arc;

/// Why a task failed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Failure {
    /// The action returned an error.
    Guest { code: String, message: String },
    /// The action failed after being refused something it was not granted.
    Denied {
        denial: Denial,
        code: String,
        message: String,
    },
    /// The guest trapped (a panic is a trap too).
    Trap {
        message: String,
        stderr: String,
        backtrace: String,
    },
    /// The task reached one of its limits.
    Limit(LimitExceeded),
    /// The host could not run the task (for example instantiation failed).
    Host { message: String },
}

impl Failure {
    /// The error kind used in error events and the summary.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Failure::Guest { .. } => "action-error",
            Failure::Denied { .. } => "denied",
            Failure::Trap { .. } => "trap",
            Failure::Limit(_) => "limit",
            Failure::Host { .. } => "host",
        }
    }

    /// The error event payload's details.
    pub(crate) fn details(&self) -> Value {
        match self {
            Failure::Guest { code, message } => json!({ "code": code, "message": message }),
            Failure::Denied {
                denial,
                code,
                message,
            } => json!({
                "capability": denial.capability,
                "target": denial.target,
                "code": code,
                "message": message,
            }),
            Failure::Trap {
                message,
                stderr,
                backtrace,
            } => json!({ "message": message, "stderr": stderr, "backtrace": backtrace }),
            Failure::Limit(exceeded) => json!({
                "limit": exceeded.limit,
                "value": exceeded.value,
                "message": exceeded.to_string(),
            }),
            Failure::Host { message } => json!({ "message": message }),
        }
    }

    /// What went wrong, in words.
    pub(crate) fn message(&self) -> String {
        match self {
            Failure::Guest { message, .. }
            | Failure::Denied { message, .. }
            | Failure::Trap { message, .. }
            | Failure::Host { message } => message.clone(),
            Failure::Limit(exceeded) => exceeded.to_string(),
        }
    }

    /// The failure with its guest-given texts cut to `max` bytes (codes to
    /// [`MAX_CODE_BYTES`]): an error event is output too.
    fn held(self, max: usize) -> Failure {
        let cut = |text: String, max: usize| {
            if text.len() <= max {
                return text;
            }
            let kept = crate::util::head(&text, max.saturating_sub(40));
            format!("{kept}... ({} bytes cut)", text.len() - kept.len())
        };
        match self {
            Failure::Guest { code, message } => Failure::Guest {
                code: cut(code, MAX_CODE_BYTES),
                message: cut(message, max),
            },
            Failure::Denied {
                denial,
                code,
                message,
            } => Failure::Denied {
                denial,
                code: cut(code, MAX_CODE_BYTES),
                message: cut(message, max),
            },
            Failure::Host { message } => Failure::Host {
                message: cut(message, max),
            },
            other => other,
        }
    }

    fn from_stop(stop: GuestStop, stderr: &str) -> Failure {
        match stop {
            GuestStop::Limit(exceeded) => Failure::Limit(exceeded),
            GuestStop::Trap { message, backtrace } => Failure::Trap {
                message,
                stderr: crate::util::tail(stderr, STDERR_TAIL_BYTES).to_string(),
                backtrace,
            },
            GuestStop::Host { message } => Failure::Host { message },
        }
    }
}

/// What a finished task hands back: the key's memory (always), and its
/// emitted events or why it failed.
pub(crate) struct TaskOutcome {
    pub memory: KeyMemory,
    pub result: Result<Vec<Emitted>, Failure>,
    pub host_calls: u64,
    /// Bytes it emitted and wrote to memory.
    pub output_bytes: usize,
    /// What it was refused, per capability.
    pub denial_counts: std::collections::BTreeMap<&'static str, u64>,
    /// Host calls it made, per capability (see [`Capability::ALL`]).
    pub calls: [u32; Capability::ALL.len()],
}

impl TaskOutcome {
    /// Host calls made, by capability (name and count, as
    /// [`Capability::ALL`] orders them).
    pub(crate) fn calls(&self) -> [(&'static str, u32); Capability::ALL.len()] {
        let mut calls = [("", 0); Capability::ALL.len()];
        for (slot, (capability, n)) in calls.iter_mut().zip(Capability::ALL.iter().zip(self.calls))
        {
            *slot = (capability.name(), n);
        }
        calls
    }
}

/// Longest stderr tail kept in an error event.
const STDERR_TAIL_BYTES: usize = 2048;
// The longest error message an error event keeps (less if the task's
// `max_output_bytes` is less), and the longest error code.
use crate::limits::{
    MAX_ERROR_CODE_BYTES as MAX_CODE_BYTES, MAX_ERROR_MESSAGE_BYTES as MAX_MESSAGE_BYTES,
};

/// What every task of a run shares.
pub(crate) struct TaskContext<'a> {
    pub env: &'a Arc<TaskEnv>,
    pub usage: &'a Arc<ModelUsage>,
    /// The journal and the run's id, when the runtime keeps state.
    pub journal: Option<(Arc<crate::journal::Journal>, Arc<str>)>,
    /// The event log and the run's id, when one is written.
    pub event_log: Option<(Arc<crate::observe::eventlog::EventLog>, Arc<str>)>,
}

/// The id of `action`'s task on `event` in the event log: the same when a
/// run is re-done.
pub(crate) fn execution_id(event: &Event, action: &ActionPlan) -> String {
    format!("{}/{}", event.id, action.name)
}

/// Runs `action` on `event`; `authority` is whom the event acts for (see
/// [`Authority`]), which a built-in serving a request acts with.
pub(crate) async fn run(
    action: &ActionPlan,
    event: &Event,
    wit_event: &WitEvent,
    authority: Option<&Arc<Authority>>,
    memory: KeyMemory,
    context: &TaskContext<'_>,
    telemetry: Option<crate::observe::telemetry::TaskTelemetry>,
) -> TaskOutcome {
    let limits = action.limits;
    let serving = matches!(&action.kind, ActionKind::Builtin(b) if b.acts_for_requester());
    let on_behalf = authority.filter(|_| serving).cloned();
    let grants = match &on_behalf {
        Some(authority) => authority.grants.clone(),
        None => action.grants.clone(),
    };
    let input = TaskInput {
        action_name: action.name_arc.clone(),
        config: action.merged_config.clone(),
        grants,
        env: context.env.clone(),
        usage: context.usage.clone(),
        key: event.key.clone(),
        event_id: event.id.clone(),
        memory,
        limits,
        tool_depth: 0,
        journal: context.journal.clone(),
        idempotency: None,
        on_behalf,
        log: context.event_log.as_ref().map(|(log, run)| {
            Arc::new(crate::observe::eventlog::Scope {
                log: log.clone(),
                run: run.clone(),
                key: event.key.clone(),
                execution: execution_id(event, action),
                action: action.name.clone(),
                event_id: event.id.clone(),
                notes: Default::default(),
            })
        }),
        telemetry,
    };
    let (task, result) = if wit_event.payload.len() > limits.max_payload_bytes {
        let exceeded = limits.exceeded(
            Limit::MaxPayloadBytes,
            format!(
                "the `{}` event's payload is {} bytes",
                event.event_type,
                wit_event.payload.len()
            ),
        );
        (Task::new(input), Err(Failure::Limit(exceeded)))
    } else {
        match &action.kind {
            ActionKind::Component(component) => {
                run_component(action, component, wit_event, input).await
            }
            ActionKind::Builtin(builtin) => {
                let mut task = Task::new(input);
                let run = builtin.run(event, &mut task);
                let result = match tokio::time::timeout(limits.timeout(), run).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(Failure::Guest {
                        code: e.code.to_string(),
                        message: e.message,
                    }),
                    Err(_) => Err(timeout(&task)),
                };
                (task, result)
            }
        }
    };
    // A limit reached in a host call stops the task whatever the guest did
    // with the error.
    let result = match (result, &task.violation, task.denials.first()) {
        (Ok(()) | Err(Failure::Guest { .. } | Failure::Trap { .. }), Some(exceeded), _) => {
            Err(Failure::Limit(exceeded.clone()))
        }
        (Err(Failure::Guest { code, message }), None, Some(denial)) if code == "denied" => {
            Err(Failure::Denied {
                denial: denial.clone(),
                code,
                message,
            })
        }
        (result, ..) => result,
    };
    let result = result.map_err(|f| f.held(limits.max_output_bytes.min(MAX_MESSAGE_BYTES)));
    let Task {
        input,
        undo,
        emitted,
        host_calls,
        denials,
        output_bytes,
        calls,
        ..
    } = task;
    let mut memory = input.memory;
    let result = match result {
        Ok(()) => Ok(emitted),
        Err(failure) => {
            for (scope, undo) in undo.into_iter().rev() {
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
        host_calls,
        output_bytes,
        denial_counts: denials.into_counts(),
        calls,
    }
}

fn timeout(task: &Task) -> Failure {
    Failure::Limit(task.input.limits.exceeded(
        Limit::TimeoutMs,
        "the task ran past its wall-clock deadline".to_string(),
    ))
}

/// Runs the action in a fresh instance, or a warm one if its isolation
/// allows; a warm instance goes back to the pool unless the task trapped,
/// timed out or reached a limit.
async fn run_component(
    action: &ActionPlan,
    component: &ActionComponent,
    event: &WitEvent,
    input: TaskInput,
) -> (Task, Result<(), Failure>) {
    let sandbox = &component.sandbox;
    let warm = action.pool.as_ref().and_then(|pool| pool.take(&input.key));
    let (mut store, instance, tasks) = match warm {
        Some(warm) => {
            let mut store = warm.store;
            let _idle = store.data_mut().replace_task(Task::new(input));
            sandbox.arm(&mut store);
            (store, Some(warm.instance), warm.tasks)
        }
        None => match InstanceState::new(input) {
            Ok(state) => (sandbox.new_store(state), None, 0),
            Err(failed) => {
                let message = format!("{:#}", failed.error);
                return (Task::new(failed.input), Err(Failure::Host { message }));
            }
        },
    };
    let outcome = invoke(&mut store, async move |store| {
        let instance = match instance {
            Some(instance) => instance,
            None => component.instantiate_handler(&mut *store).await?,
        };
        let result = instance.call(&mut *store, &action.export, event).await?;
        Ok((instance, result))
    })
    .await;
    let (stderr, stdout) = store.data().take_output();
    log_guest_output(action, &stderr, &stdout);
    let (result, reusable) = match outcome {
        Ok((instance, Ok(()))) => (Ok(()), Some(instance)),
        // An error after a refused memory.grow is the memory limit's doing
        // (an interpreter raises it as an exception), and the instance is
        // not fit to serve again.
        Ok((_, Err(_))) if store.data().memory_refused().is_some() => {
            let exceeded = memory_limit(store.data()).expect("memory was refused");
            (Err(Failure::Limit(exceeded)), None)
        }
        Ok((instance, Err(e))) => (
            Err(Failure::Guest {
                code: e.code,
                message: e.message,
            }),
            Some(instance),
        ),
        Err(stop) => (Err(Failure::from_stop(stop, &stderr)), None),
    };
    let task = match (reusable, &action.pool) {
        (Some(instance), Some(pool))
            if store.data().task.violation.is_none() && store.data().memory_refused().is_none() =>
        {
            let task = store.data_mut().replace_task(Task::idle());
            pool.put(WarmInstance {
                key: task.input.key.clone(),
                store,
                instance,
                tasks: tasks + 1,
            });
            task
        }
        _ => store.into_data().into_task(),
    };
    (task, result)
}

/// Guest stdout/stderr go to the host log at debug level.
fn log_guest_output(action: &ActionPlan, stderr: &str, stdout: &str) {
    if !tracing::enabled!(target: "weir::guest", tracing::Level::DEBUG) {
        return;
    }
    for (stream, text) in [("stdout", stdout), ("stderr", stderr)] {
        for line in text.lines() {
            tracing::debug!(target: "weir::guest", action = %action.name, stream, "{line}");
        }
    }
}
