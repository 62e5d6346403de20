//! `weir:agent/log`: guest log records into the host's tracing, tagged with
//! action, key and event.

use super::bindings::weir::agent::log::{Host, Level};
use super::bindings::weir::agent::types::Attribute;
use super::{Capability, Op, TaskState};

const WRITE: Op = Op {
    capability: Capability::Log,
    name: "log.write",
};

/// Longest message kept; longer ones are cut so a guest cannot flood the log.
const MAX_MESSAGE_BYTES: usize = 8 << 10;

fn cut(text: &str) -> &str {
    crate::util::head(text, MAX_MESSAGE_BYTES)
}

impl Host for TaskState {
    async fn write(
        &mut self,
        level: Level,
        message: String,
        fields: Vec<Attribute>,
    ) -> wasmtime::Result<()> {
        let _ = self.task.call(WRITE, |task| {
            let action = &*task.input.action_name;
            let key = &task.input.key;
            let event = &task.input.event_id;
            let message = cut(&message);
            let fields = fields
                .iter()
                .map(|(k, v)| format!("{k}={}", cut(v)))
                .collect::<Vec<_>>()
                .join(" ");
            macro_rules! emit {
                ($level:expr) => {
                    tracing::event!(target: "weir::guest", $level, action, key, event, fields, "{message}")
                };
            }
            match level {
                Level::Trace => emit!(tracing::Level::TRACE),
                Level::Debug => emit!(tracing::Level::DEBUG),
                Level::Info => emit!(tracing::Level::INFO),
                Level::Warn => emit!(tracing::Level::WARN),
                Level::Error => emit!(tracing::Level::ERROR),
            }
            Ok(())
        });
        Ok(())
    }
}
