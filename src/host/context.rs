//! `weir:agent/context`: the action's name, key and config.
//!
//! These functions cannot return an error to the guest, so a denied call
//! traps instead.

use super::bindings::weir::agent::context::Host;
use super::{Capability, HostError, InstanceState, Op};

use wasmtime::component::HasSelf;

/// `weir:agent/context` in the list of capabilities.
pub(super) const CAPABILITY: super::HostCapability = super::HostCapability {
    interface: "weir:agent/context",
    link: |linker| {
        super::bindings::weir::agent::context::add_to_linker::<_, HasSelf<_>>(linker, |state| state)
    },
    lacks: super::capability::lacks_nothing,
};

const fn op(name: &'static str) -> Op {
    Op {
        capability: Capability::Context,
        name,
    }
}

fn trap(error: HostError) -> wasmtime::Error {
    wasmtime::Error::msg(format!("{error:?}"))
}

impl Host for InstanceState {
    async fn action_name(&mut self) -> wasmtime::Result<String> {
        self.task
            .call(op("context.action-name"), |t| {
                Ok(t.input.action_name.to_string())
            })
            .map_err(trap)
    }

    async fn key(&mut self) -> wasmtime::Result<String> {
        self.task
            .call(op("context.key"), |t| Ok(t.input.key.clone()))
            .map_err(trap)
    }

    async fn config(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        self.task
            .call(op("context.config"), |t| {
                Ok(t.input.config.merged.get(&name).map(|v| v.to_string()))
            })
            .map_err(trap)
    }

    async fn idempotency_key(&mut self) -> wasmtime::Result<String> {
        self.task
            .call(op("context.idempotency-key"), |t| {
                Ok(t.idempotency_key().to_string())
            })
            .map_err(trap)
    }

    async fn config_all(&mut self) -> wasmtime::Result<String> {
        self.task
            .call(op("context.config-all"), |t| {
                Ok(t.input.config.merged_json.clone())
            })
            .map_err(trap)
    }
}
