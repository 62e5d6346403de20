//! `weir:agent/events`: emitting events, committed when the task succeeds.

use super::bindings::weir::agent::events::Host;
use super::bindings::weir::agent::types::Attribute;
use super::{Capability, Emitted, HostError, Op, TaskState};

const EMIT: Op = Op {
    capability: Capability::Events,
    name: "events.emit",
};

impl Host for TaskState {
    async fn emit(
        &mut self,
        event_type: String,
        payload: String,
        attributes: Vec<Attribute>,
    ) -> wasmtime::Result<Result<String, HostError>> {
        Ok(self.call(EMIT, |task| {
            if event_type.is_empty() {
                return Err(HostError::Invalid("event type must not be empty".into()));
            }
            if task.emitted.len() >= task.input.max_emits {
                return Err(HostError::Limit(format!(
                    "an action task may emit at most {} events",
                    task.input.max_emits
                )));
            }
            let payload = serde_json::from_str(&payload).map_err(|e| {
                HostError::Invalid(format!(
                    "payload of a `{event_type}` event is not JSON: {e}"
                ))
            })?;
            let id = crate::event::derived_id(
                &task.input.event_id,
                &task.input.action_name,
                task.emitted.len(),
            );
            task.emitted.push(Emitted {
                id: id.clone(),
                event_type,
                payload,
                attributes,
            });
            Ok(id)
        }))
    }
}
