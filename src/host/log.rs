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
/// Most fields kept per record, and the longest field name.
const MAX_FIELDS: usize = 32;
const MAX_FIELD_NAME_BYTES: usize = 128;
/// Most records one task writes; the rest are dropped (one warning says so).
pub(crate) const MAX_RECORDS: u32 = 1_000;

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
            task.log_records += 1;
            let action = &*task.input.action_name;
            let key = &task.input.key;
            let event = &task.input.event_id;
            if task.log_records > MAX_RECORDS {
                if task.log_records == MAX_RECORDS + 1 {
                    tracing::warn!(target: "weir::guest", action, key, event,
                        "the task wrote {MAX_RECORDS} log records; further ones are dropped");
                }
                return Ok(());
            }
            let message = cut(&message);
            let mut fields_text = String::new();
            for (k, v) in fields.iter().take(MAX_FIELDS) {
                if fields_text.len() >= MAX_MESSAGE_BYTES {
                    break;
                }
                if !fields_text.is_empty() {
                    fields_text.push(' ');
                }
                fields_text.push_str(crate::util::head(k, MAX_FIELD_NAME_BYTES));
                fields_text.push('=');
                fields_text.push_str(cut(v));
            }
            if fields.len() > MAX_FIELDS {
                fields_text.push_str(&format!(" ({} more fields dropped)", fields.len() - MAX_FIELDS));
            }
            let fields = cut(&fields_text);
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
