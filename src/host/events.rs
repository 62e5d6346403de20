//! `weir:agent/events`: emitting events, committed when the task succeeds.

use super::bindings::weir::agent::events::Host;
use super::bindings::weir::agent::types::Attribute;
use super::{Capability, Emitted, HostError, Op, Task, TaskState};
use serde_json::Value;

const EMIT: Op = Op {
    capability: Capability::Events,
    name: "events.emit",
};

impl Task {
    /// Emits an event; returns its id, derived from the event being handled,
    /// the action and the emit's index.
    pub(crate) fn emit(
        &mut self,
        event_type: String,
        payload: Value,
        attributes: Vec<Attribute>,
    ) -> Result<String, HostError> {
        self.call(EMIT, |task| {
            task.push_event(event_type, payload, attributes)
        })
    }

    fn push_event(
        &mut self,
        event_type: String,
        payload: Value,
        attributes: Vec<Attribute>,
    ) -> Result<String, HostError> {
        if event_type.is_empty() {
            return Err(HostError::Invalid("event type must not be empty".into()));
        }
        if self.emitted.len() >= self.input.max_emits {
            return Err(HostError::Limit(format!(
                "an action task may emit at most {} events",
                self.input.max_emits
            )));
        }
        let id = crate::event::derived_id(
            &self.input.event_id,
            &self.input.action_name,
            self.emitted.len(),
        );
        self.emitted.push(Emitted {
            id: id.clone(),
            event_type,
            payload,
            attributes,
        });
        Ok(id)
    }
}

impl Host for TaskState {
    async fn emit(
        &mut self,
        event_type: String,
        payload: String,
        attributes: Vec<Attribute>,
    ) -> wasmtime::Result<Result<String, HostError>> {
        Ok(self.task.call(EMIT, |task| {
            let payload = serde_json::from_str(&payload).map_err(|e| {
                HostError::Invalid(format!(
                    "payload of a `{event_type}` event is not JSON: {e}"
                ))
            })?;
            task.push_event(event_type, payload, attributes)
        }))
    }
}
