//! `weir:agent/memory`: the key's short-term memory and the run's sensory
//! memory. Writes are logged for undo, so a failed task changes nothing.

use super::bindings::weir::agent::memory::{Host, Scope};
use super::{CallError, Capability, HostError, InstanceState, Op, Task};
use crate::memory::{MemoryObject, PathError};
use serde_json::Value;

use wasmtime::component::HasSelf;

/// `weir:agent/memory` in the list of capabilities.
pub(super) const CAPABILITY: super::HostCapability = super::HostCapability {
    interface: "weir:agent/memory",
    link: |linker| {
        super::bindings::weir::agent::memory::add_to_linker::<_, HasSelf<_>>(linker, |state| state)
    },
    lacks: super::capability::lacks_nothing,
};

const GET: Op = op("memory.get");
const SET: Op = op("memory.set");

const fn op(name: &'static str) -> Op {
    Op {
        capability: Capability::Memory,
        name,
    }
}

/// The event-log note of a write to `scope` (Flink Agents' names).
fn write_note(scope: Scope) -> &'static str {
    match scope {
        Scope::ShortTerm => "_short_term_write_event",
        Scope::Sensory => "_sensory_write_event",
    }
}

fn invalid(e: PathError) -> HostError {
    HostError::Invalid(e.to_string())
}

impl Task {
    fn scope(&mut self, scope: Scope) -> &mut MemoryObject {
        match scope {
            Scope::ShortTerm => &mut self.input.memory.short_term,
            Scope::Sensory => &mut self.input.memory.sensory,
        }
    }

    fn write(&mut self, scope: Scope, path: &str, value: Value) -> Result<(), HostError> {
        // Memory outlives the task (in the journal too): bounded nesting,
        // counted from the root, so it always reads back.
        let segments = if path.is_empty() {
            0
        } else {
            path.bytes().filter(|b| *b == b'.').count() + 1
        };
        self.check_nesting(segments + crate::limits::nesting(&value), || {
            format!("the memory value at `{}`", crate::util::head(path, 64))
        })?;
        let logged = self.input.log.is_some().then(|| value.clone());
        let undo = self.scope(scope).set(path, value).map_err(invalid)?;
        // A key's short-term memory outlives the run, and under a journal
        // every commit writes it whole: bounded at the write.
        let held = self.input.memory.short_term.size();
        if matches!(scope, Scope::ShortTerm) && held > self.input.limits.max_key_memory_bytes {
            self.input.memory.short_term.rollback(vec![undo]);
            let detail = format!(
                "writing `{}` would make the key's short-term memory about {held} bytes",
                crate::util::head(path, 64)
            );
            return Err(self.exceed(crate::limits::Limit::MaxKeyMemoryBytes, detail));
        }
        self.undo.push((scope, undo));
        if let Some(value) = logged {
            self.note(
                write_note(scope),
                || serde_json::json!({ "path": path, "value": value }),
            );
        }
        Ok(())
    }

    /// The value at `path`.
    pub(crate) fn memory_get(
        &mut self,
        scope: Scope,
        path: &str,
    ) -> Result<Option<Value>, HostError> {
        self.call(GET, |task| task.scope(scope).get(path).map_err(invalid))
    }

    /// Stores `value` at `path`.
    pub(crate) fn memory_set(
        &mut self,
        scope: Scope,
        path: &str,
        value: Value,
    ) -> Result<(), HostError> {
        self.call(SET, |task| task.write(scope, path, value))
    }
}

impl Host for InstanceState {
    async fn get(&mut self, scope: Scope, path: String) -> Result<Option<String>, CallError> {
        let value = self.task.call(GET, |task| {
            let value = task.scope(scope).get(&path).map_err(invalid)?;
            Ok(value.map(|v| v.to_string()))
        })?;
        Ok(value)
    }

    async fn set(&mut self, scope: Scope, path: String, value: String) -> Result<(), CallError> {
        self.task.call(SET, |task| {
            // Memory outlives the task: what a task may write is bounded
            // with what it may emit.
            task.charge_output(path.len() + value.len(), || {
                format!("writing memory at `{path}`")
            })?;
            let value = serde_json::from_str(&value).map_err(|e| {
                HostError::Invalid(format!("memory value for `{path}` is not JSON: {e}"))
            })?;
            task.write(scope, &path, value)
        })?;
        Ok(())
    }

    async fn remove(&mut self, scope: Scope, path: String) -> Result<bool, CallError> {
        let removed = self.task.call(op("memory.remove"), |task| {
            let (removed, undo) = task.scope(scope).remove(&path).map_err(invalid)?;
            task.undo.push((scope, undo));
            task.note(
                write_note(scope),
                || serde_json::json!({ "path": path, "removed": removed.is_some() }),
            );
            Ok(removed.is_some())
        })?;
        Ok(removed)
    }

    async fn field_names(&mut self, scope: Scope, path: String) -> Result<Vec<String>, CallError> {
        let names = self.task.call(op("memory.field-names"), |task| {
            task.scope(scope).field_names(&path).map_err(invalid)
        })?;
        Ok(names)
    }
}
