//! The one way to run a guest ([`invoke`]), and why a guest call stopped:
//! a limit, a trap, or a host failure.

use super::CpuLimitExceeded;
use crate::host::InstanceState;
use crate::limits::{Limit, LimitExceeded};
use wasmtime::Store;

/// Runs `call` (instantiate, call an export) on `store` under the wall-clock
/// deadline of the store's task; anything but a return is classified into
/// a [`GuestStop`]. Actions, tools, commands and reconcilers all run
/// through here, so a deadline or a limit reads the same whichever guest
/// reached it.
pub(crate) async fn invoke<T>(
    store: &mut Store<InstanceState>,
    call: impl AsyncFnOnce(&mut Store<InstanceState>) -> wasmtime::Result<T>,
) -> Result<T, GuestStop> {
    let limits = store.data().task.input.limits;
    match tokio::time::timeout(limits.timeout(), call(store)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(classify(error, store.data())),
        Err(_) => Err(GuestStop::Limit(limits.exceeded(
            Limit::TimeoutMs,
            "the guest ran past its wall-clock deadline",
        ))),
    }
}

/// Longest guest backtrace kept in an error.
const MAX_BACKTRACE_BYTES: usize = 4096;

/// How a guest call ended other than by returning.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum GuestStop {
    /// It reached one of its limits.
    Limit(LimitExceeded),
    /// It trapped (a panic is a trap too): the trap, and where (the guest's
    /// backtrace, cut short).
    Trap { message: String, backtrace: String },
    /// The host could not run it, for example instantiation failed.
    Host { message: String },
}

/// Classifies `error`, raised by a call into the guest of `state`'s store.
fn classify(error: wasmtime::Error, state: &InstanceState) -> GuestStop {
    let limits = &state.task.input.limits;
    if let Some(exceeded) = error.downcast_ref::<LimitExceeded>() {
        return GuestStop::Limit(exceeded.clone());
    }
    // Refused by the budget of all tasks, not the task's own limit: the
    // task is not at fault, and its limit did not stop it.
    if let Some(budget) = state.memory_budget_refused() {
        return GuestStop::Host {
            message: format!(
                "refused linear memory within its own limit: the sandbox's memory for all tasks \
                 together ({} MiB, `SandboxConfig::max_total_memory_bytes`) is in use",
                budget >> 20
            ),
        };
    }
    // Instantiation itself can be refused memory (a large initial memory),
    // which is not a trap.
    if error.downcast_ref::<wasmtime::Trap>().is_none()
        && let Some(exceeded) = memory_limit(state)
    {
        return GuestStop::Limit(exceeded);
    }
    if let Some(wasmtime::component::ResourceTableError::Full) =
        error.downcast_ref::<wasmtime::component::ResourceTableError>()
    {
        return GuestStop::Limit(limits.exceeded(
            Limit::MaxResources,
            "the guest held too many host resources (streams, pollables, HTTP fields, ...) at once"
                .to_string(),
        ));
    }
    if error.downcast_ref::<CpuLimitExceeded>().is_some() {
        return GuestStop::Limit(
            limits.exceeded(Limit::CpuMs, "the guest ran past its CPU time".to_string()),
        );
    }
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::OutOfFuel) => {
            GuestStop::Limit(limits.exceeded(Limit::Fuel, "the guest ran out of fuel".to_string()))
        }
        // A refused memory.grow ends in a trap (Rust aborts on a failed
        // allocation); report the limit, not the abort.
        Some(_) if state.memory_refused().is_some() => {
            GuestStop::Limit(memory_limit(state).expect("memory was refused"))
        }
        Some(trap) => GuestStop::Trap {
            message: format!("wasm trap: {trap}"),
            backtrace: crate::util::head(&format!("{error:?}"), MAX_BACKTRACE_BYTES).to_string(),
        },
        None => GuestStop::Host {
            message: format!("{error:#}"),
        },
    }
}

/// The memory limit the guest of `state` ran into, if it did: what a task
/// that fails after a refused `memory.grow` reports, whether it trapped
/// (Rust aborts) or raised an error of its own (Python's `MemoryError`).
pub(crate) fn memory_limit(state: &InstanceState) -> Option<LimitExceeded> {
    let asked = state.memory_refused()?;
    Some(state.task.input.limits.exceeded(
        Limit::MemoryMb,
        format!(
            "the guest asked for {:.1} MiB of linear memory",
            asked as f64 / f64::from(1 << 20)
        ),
    ))
}
