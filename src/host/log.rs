//! `weir:agent/log`: guest log records into the host's tracing, tagged with
//! action, key and event.

use super::bindings::weir::agent::log::{Host, Level};
use super::bindings::weir::agent::types::Attribute;
use super::{Capability, InstanceState, Op};

use wasmtime::component::HasSelf;

/// `weir:agent/log` in the list of capabilities.
pub(super) const CAPABILITY: super::HostCapability = super::HostCapability {
    interface: "weir:agent/log",
    link: |linker| {
        super::bindings::weir::agent::log::add_to_linker::<_, HasSelf<_>>(linker, |state| state)
    },
    lacks: super::capability::lacks_nothing,
};

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

impl Host for InstanceState {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Grants, TaskInput};
    use std::sync::{Arc, Mutex};

    /// Guest log lines written while `f` runs, as the CLI's subscriber
    /// would write them.
    fn captured(f: impl FnOnce()) -> Vec<String> {
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .filter(|l| l.contains("weir::guest"))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_task_writes_a_bounded_number_of_bounded_records() {
        let mut input = TaskInput::idle();
        input.grants = Arc::new(Grants::action_default());
        let mut state = InstanceState::new(input).unwrap_or_else(|_| unreachable!("no dirs"));
        let fields: Vec<Attribute> = (0..100)
            .map(|i| (format!("{}{i}", "k".repeat(500)), "v".repeat(1_000)))
            .collect();
        let lines = captured(|| {
            crate::util::block_on(async {
                for _ in 0..MAX_RECORDS + 500 {
                    state
                        .write(Level::Info, "m".repeat(20_000), fields.clone())
                        .await
                        .unwrap();
                }
            })
        });
        assert_eq!(
            lines.len(),
            MAX_RECORDS as usize + 1,
            "one warning after the cap"
        );
        assert!(lines.last().unwrap().contains("further ones are dropped"));
        let longest = lines.iter().map(String::len).max().unwrap();
        assert!(longest < 3 * MAX_MESSAGE_BYTES, "{longest}");
        assert!(lines[0].contains("more fields dropped") || lines[0].len() < 3 * MAX_MESSAGE_BYTES);
    }
}
