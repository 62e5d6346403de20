//! `weir:agent/context`: the action's name, key and config.

use super::bindings::weir::agent::context::Host;
use super::{Capability, Op, TaskState};

const OP: fn(&'static str) -> Op = |name| Op {
    capability: Capability::Context,
    name,
};

impl Host for TaskState {
    async fn action_name(&mut self) -> wasmtime::Result<String> {
        Ok(self
            .call(OP("context.action-name"), |t| {
                Ok(t.input.action_name.to_string())
            })
            .unwrap_or_default())
    }

    async fn key(&mut self) -> wasmtime::Result<String> {
        Ok(self
            .call(OP("context.key"), |t| Ok(t.input.key.clone()))
            .unwrap_or_default())
    }

    async fn config(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self
            .call(OP("context.config"), |t| {
                Ok(t.input.config.merged.get(&name).map(|v| v.to_string()))
            })
            .unwrap_or_default())
    }

    async fn config_all(&mut self) -> wasmtime::Result<String> {
        Ok(self
            .call(OP("context.config-all"), |t| {
                Ok(t.input.config.merged_json.clone())
            })
            .unwrap_or_else(|_| "{}".to_string()))
    }
}
