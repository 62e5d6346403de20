//! `weir:agent/events`: emitting events, committed when the task succeeds.

use super::bindings::weir::agent::events::Host;
use super::bindings::weir::agent::types::Attribute;
use super::{CallError, Capability, Emitted, HostError, InstanceState, Op, Task};
use crate::limits::Limit;
use serde_json::Value;

use wasmtime::component::HasSelf;

/// `weir:agent/events` in the list of capabilities.
pub(super) const CAPABILITY: super::HostCapability = super::HostCapability {
    interface: "weir:agent/events",
    link: |linker| {
        super::bindings::weir::agent::events::add_to_linker::<_, HasSelf<_>>(linker, |state| state)
    },
    lacks: super::capability::lacks_nothing,
};

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
            let size = serde_json::to_vec(&payload)
                .expect("JSON values serialise")
                .len();
            task.push_event(event_type, payload, size, attributes)
        })
    }

    /// Emits an event that acts for `authority` (a built-in narrowing what
    /// the next step of an exchange may use).
    pub(crate) fn emit_for(
        &mut self,
        event_type: String,
        payload: Value,
        authority: std::sync::Arc<super::Authority>,
    ) -> Result<String, HostError> {
        let id = self.emit(event_type, payload, Vec::new())?;
        if let Some(emitted) = self.emitted.last_mut() {
            emitted.authority = Some(authority);
        }
        Ok(id)
    }

    /// Adds an event of `size` JSON bytes, within the task's limits.
    fn push_event(
        &mut self,
        event_type: String,
        payload: Value,
        size: usize,
        attributes: Vec<Attribute>,
    ) -> Result<String, HostError> {
        if event_type.is_empty() {
            return Err(HostError::Invalid("event type must not be empty".into()));
        }
        let limits = &self.input.limits;
        if self.emitted.len() >= limits.max_emits {
            let detail = format!("emitting event #{}", self.emitted.len() + 1);
            return Err(self.exceed(Limit::MaxEmits, detail));
        }
        let size = size
            + event_type.len()
            + attributes
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        self.charge_output(size, || format!("emitting a `{event_type}` event"))?;
        self.check_nesting(crate::limits::nesting(&payload), || {
            format!("the payload of a `{event_type}` event")
        })?;
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
            authority: None,
        });
        Ok(id)
    }
}

impl Host for InstanceState {
    async fn emit(
        &mut self,
        event_type: String,
        payload: String,
        attributes: Vec<Attribute>,
    ) -> Result<String, CallError> {
        let id = self.task.call(EMIT, |task| {
            // Built-in events that carry authority (tool requests, responses,
            // errors) come only from the host; a guest may ask for a chat
            // through `_chat_request_event`, checked against its grants.
            if crate::event::types::is_reserved(&event_type)
                && event_type != crate::event::types::OUTPUT
                && event_type != crate::event::types::CHAT_REQUEST
            {
                let message = format!(
                    "only weir's built-in actions emit `{event_type}`; an action may emit `_output_event`, `_chat_request_event` and its own event types"
                );
                return Err(task.deny("events", event_type.clone(), message));
            }
            // Check the size before parsing: a huge payload is refused
            // without the host building a second copy of it (it is charged
            // once, in `push_event`).
            let size = payload.len();
            if task.output_bytes + size > task.input.limits.max_output_bytes {
                task.charge_output(size, || format!("emitting a `{event_type}` event"))?;
            }
            let value = serde_json::from_str(&payload).map_err(|e| {
                HostError::Invalid(format!(
                    "payload of a `{event_type}` event is not JSON: {e}"
                ))
            })?;
            task.push_event(event_type, value, size, attributes)
        })?;
        Ok(id)
    }
}
