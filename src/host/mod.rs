//! Host capabilities offered to guests, and the single path every host call
//! takes.
//!
//! Each capability (one submodule per WIT interface) is a method of [`Task`]
//! that runs through [`Task::call`] or [`Task::call_async`] (in `call`),
//! which check the grant, count the call, trace it and, under durable
//! execution, answer it from or record it to the journal (`durable`).
//! Guests reach the methods through the WIT bindings on [`InstanceState`];
//! the built-in actions call them directly, so permissions, journaling and
//! tracing wrap every host call here without touching each function.
//!
//! The rest: [`Grants`] (what a task may use), [`Task`] and [`TaskInput`]
//! (one task's side of its calls), [`InstanceState`] (the data of an
//! instance's store), [`HostError`] and its kinds (`error`).

mod authority;
mod call;
mod capability;
mod context;
mod durable;
mod error;
mod events;
mod fetch;
mod grants;
pub mod http;
mod instance;
mod limiter;
mod log;
mod memory;
pub(crate) mod model;
mod outbound;
mod readings;
mod task;
mod tools;
mod wasi;

pub(crate) use authority::{Authority, Offered};
pub(crate) use call::{Callee, Op};
pub(crate) use capability::{HostCapability, unusable_imports};
pub(crate) use error::{CallError, HostError};
pub use grants::{Capability, Denial, Grants};
pub(crate) use instance::InstanceState;
pub(crate) use limiter::{MemoryBudget, MemoryLimiter};
pub(crate) use model::ModelUsage;
pub use task::KeyMemory;
pub(crate) use task::{ActionConfig, Emitted, Task, TaskEnv, TaskInput, idempotency_key};
pub use tools::{LOAD_SKILL, RUN_SKILL_COMMAND};
pub(crate) use tools::{Offer, ToolCaller, ToolFuture, Toolbox};

use wasmtime::component::{HasSelf, Linker};

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        world: "skill-core",
        path: "wit",
        imports: { default: async | trappable },
        exports: { default: async },
        // A host function returning `result<_, host-error>` returns a
        // `CallError` instead: the guest's error, or a stop that traps it
        // (see `InstanceState::convert_host_error`).
        trappable_error_type: { "weir:agent/types.host-error" => crate::host::CallError },
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

/// An action component's pre-instantiated form (its exports' bindings).
pub(crate) use bindings::SkillCorePre as ActionInstancePre;

/// Every capability guests may import, one line each (see `capability`).
pub(crate) const CAPABILITIES: &[HostCapability] = &[
    context::CAPABILITY,
    events::CAPABILITY,
    memory::CAPABILITY,
    log::CAPABILITY,
    model::CAPABILITY,
    tools::CAPABILITY,
    http::CAPABILITY,
    fetch::CAPABILITY,
];

/// Adds WASI p2, the contract's shared types and every capability to
/// `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    bindings::weir::agent::types::add_to_linker::<_, HasSelf<_>>(linker, |state| state)?;
    for capability in CAPABILITIES {
        (capability.link)(linker)?;
    }
    Ok(())
}
