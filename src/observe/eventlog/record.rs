//! The records' shape: Flink Agents' flat event-log record (`timestamp`,
//! `logLevel`, the trace fields, `eventId`, `eventType`, the lineage,
//! `eventAttributes`), with weir's payload beside the attributes; and the
//! counts of what was written, lost and cut.

use super::{LogLevel, Truncation};
use crate::event::Event;
use serde::Serialize;
use serde_json::{Map, Value};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

/// One queued record, or a word to the writer.
pub(super) enum Entry {
    Logged(Logged),
    /// Write what came before, then stop.
    Close,
    /// Write what came before, then say so.
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// A record as logged, before it is written out.
#[derive(Clone)]
pub(super) enum Logged {
    Event(Arc<EventEntry>),
    Execution(Arc<Execution>),
}

/// An event, logged.
pub(super) struct EventEntry {
    pub at: SystemTime,
    pub level: LogLevel,
    pub agent: Arc<str>,
    pub run: Arc<str>,
    pub recovered: bool,
    pub event: Event,
}

/// A finished execution, logged.
pub(super) struct Execution {
    pub at: SystemTime,
    pub level: LogLevel,
    pub agent: Arc<str>,
    pub run: Arc<str>,
    pub key: String,
    pub record: ExecutionRecord,
}

/// A record an in-memory log hands its tap ([`EventLog::tapped`]): kept as
/// it was logged (cheap to clone) and written out, cut as the file's line
/// would be, only when read.
///
/// [`EventLog::tapped`]: super::EventLog::tapped
#[derive(Clone)]
pub(crate) struct Record {
    pub(super) logged: Logged,
    pub(super) truncation: Truncation,
}

/// What a record says of its run, for a tap (read from the record, not
/// from its JSON).
pub(crate) struct Head<'a> {
    pub at: SystemTime,
    pub run: &'a str,
    pub key: &'a str,
    pub what: What<'a>,
}

/// What a record is.
pub(crate) enum What<'a> {
    /// An event: its type, and the event it came from (none for an input).
    Event {
        event_type: &'a str,
        upstream: Option<&'a str>,
    },
    /// An execution ended: an action's task, or (`call`) one of its model
    /// or tool calls.
    Execution {
        call: bool,
        entity_type: &'static str,
        failed: bool,
        input_tokens: u64,
        output_tokens: u64,
    },
}

impl Record {
    pub(crate) fn head(&self) -> Head<'_> {
        match &self.logged {
            Logged::Event(entry) => Head {
                at: entry.at,
                run: &entry.run,
                key: &entry.event.key,
                what: What::Event {
                    event_type: &entry.event.event_type,
                    upstream: entry.event.upstream_id.as_deref(),
                },
            },
            Logged::Execution(execution) => {
                let record = &execution.record;
                let tokens = |name: &str| record.attributes.get(name).and_then(Value::as_u64);
                Head {
                    at: execution.at,
                    run: &execution.run,
                    key: &execution.key,
                    what: What::Execution {
                        call: record.parent.is_some(),
                        entity_type: record.entity_type,
                        failed: matches!(record.outcome, ExecutionOutcome::Failed { .. }),
                        input_tokens: tokens("inputTokens").unwrap_or(0),
                        output_tokens: tokens("outputTokens").unwrap_or(0),
                    },
                }
            }
        }
    }

    /// The run it belongs to.
    pub(crate) fn run(&self) -> &Arc<str> {
        match &self.logged {
            Logged::Event(entry) => &entry.run,
            Logged::Execution(execution) => &execution.run,
        }
    }

    /// About the bytes the record holds (its line's length, uncut), for a
    /// tap's bounds; counted without writing it out.
    pub(crate) fn size(&self) -> usize {
        const FIELDS: usize = 256;
        match &self.logged {
            Logged::Event(entry) => {
                let event = &entry.event;
                let attributes: usize = event
                    .attributes
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 6)
                    .sum();
                FIELDS
                    + entry.run.len()
                    + event.id.len()
                    + event.event_type.len()
                    + event.key.len()
                    + event.upstream_id.as_ref().map_or(0, String::len)
                    + event.upstream_action.as_ref().map_or(0, String::len)
                    + attributes
                    + json_size(&event.payload)
            }
            Logged::Execution(execution) => {
                let record = &execution.record;
                let failure = match &record.outcome {
                    ExecutionOutcome::Failed { kind, message, .. } => kind.len() + message.len(),
                    _ => 0,
                };
                FIELDS
                    + execution.run.len()
                    + execution.key.len()
                    + 2 * record.id.len()
                    + record.parent.as_ref().map_or(0, String::len)
                    + record.entity_name.len()
                    + record.event_id.as_ref().map_or(0, String::len)
                    + record.upstream_action.as_ref().map_or(0, String::len)
                    + map_size(&record.metadata)
                    + map_size(&record.attributes)
                    + failure
            }
        }
    }

    /// The record as the file's line would hold it (cut at STANDARD).
    pub(crate) fn to_value(&self) -> Value {
        self.logged
            .with_line(&self.truncation, |line| serde_json::to_value(line))
            .0
            .expect("records serialise")
    }
}

/// About the length of `value`'s JSON (numbers as 8), without writing it.
fn json_size(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => 8,
        Value::String(s) => s.len() + 2,
        Value::Array(items) => 2 + items.iter().map(|v| json_size(v) + 1).sum::<usize>(),
        Value::Object(map) => map_size(map),
    }
}

fn map_size(map: &Map<String, Value>) -> usize {
    2 + map
        .iter()
        .map(|(k, v)| k.len() + 4 + json_size(v))
        .sum::<usize>()
}

/// An execution (an action's task, a model or tool call) as it ended: a
/// Flink Agents lifecycle record (`_execution_finished_event`,
/// `_execution_failed_event`, or `_execution_reused_event` for a call
/// answered from the journal).
pub(crate) struct ExecutionRecord {
    /// Its id, unique in the run and the same when the run is re-done.
    pub id: String,
    /// The execution it is part of (a call's action).
    pub parent: Option<String>,
    /// `action`, `llm`, `embedding` or `tool`.
    pub entity_type: &'static str,
    /// The action, model resource or tool.
    pub entity_name: String,
    /// What identifies it further (a model's `model`).
    pub metadata: Map<String, Value>,
    /// The event it handled, and the action that emitted that event.
    pub event_id: Option<String>,
    pub upstream_action: Option<String>,
    pub duration: Duration,
    pub outcome: ExecutionOutcome,
    /// More about it (token usage).
    pub attributes: Map<String, Value>,
}

/// How an execution ended.
pub(crate) enum ExecutionOutcome {
    Succeeded,
    /// Answered from the journal: not run again.
    Reused,
    Failed {
        /// Flink Agents' problem category (`action_execution_failed`,
        /// `model_call_failed`, `tool_call_failed`).
        category: &'static str,
        /// The error's kind (weir's failure or host-error kind).
        kind: String,
        message: String,
    },
}

impl ExecutionOutcome {
    pub(crate) fn event_type(&self) -> &'static str {
        match self {
            ExecutionOutcome::Succeeded => "_execution_finished_event",
            ExecutionOutcome::Reused => "_execution_reused_event",
            ExecutionOutcome::Failed { .. } => "_execution_failed_event",
        }
    }

    fn status(&self) -> &'static str {
        match self {
            ExecutionOutcome::Succeeded => "success",
            ExecutionOutcome::Reused => "reused",
            ExecutionOutcome::Failed { .. } => "failed",
        }
    }
}

/// One line, in Flink Agents' field order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a> {
    timestamp: Timestamp,
    log_level: &'static str,
    input_run_id: &'a str,
    business_key: &'a str,
    agent_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    execution_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_execution_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entity_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entity_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entity_metadata: Option<&'a Map<String, Value>>,
    event_id: &'a str,
    event_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_event_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_action_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem_category: Option<&'a str>,
    /// A run re-done after a crash: its events were logged before.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    recovered: bool,
    event_attributes: Kept<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<Kept<'a>>,
}

/// A logged value: as it is, or the copy STANDARD cut.
enum Kept<'a> {
    Whole(&'a Value),
    Cut(Value),
    /// An event's attributes, which nothing cut.
    Strings(&'a std::collections::BTreeMap<String, String>),
}

impl Serialize for Kept<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Kept::Whole(value) => value.serialize(s),
            Kept::Cut(value) => value.serialize(s),
            Kept::Strings(map) => map.serialize(s),
        }
    }
}

impl Logged {
    /// Writes the record's JSON to `out`; true if STANDARD cut anything.
    pub(super) fn write_line(&self, out: &mut Vec<u8>, truncation: &Truncation) -> bool {
        let (written, cut) = self.with_line(truncation, |line| serde_json::to_writer(out, line));
        written.expect("records serialise");
        cut
    }

    /// Calls `f` with the record's line (cut at STANDARD); and whether
    /// STANDARD cut anything.
    fn with_line<R>(&self, truncation: &Truncation, f: impl FnOnce(&Line<'_>) -> R) -> (R, bool) {
        let mut cut = false;
        let made = match self {
            Logged::Event(entry) => {
                let EventEntry {
                    at,
                    level,
                    agent,
                    run,
                    recovered,
                    event,
                } = &**entry;
                // Attributes are short strings: copied only when one is
                // long enough to cut.
                let long = *level == LogLevel::Standard
                    && truncation.max_string_length != 0
                    && event
                        .attributes
                        .values()
                        .any(|v| v.len() > truncation.max_string_length);
                let attributes_cut;
                let attributes = if long {
                    attributes_cut = Value::Object(
                        event
                            .attributes
                            .iter()
                            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                            .collect(),
                    );
                    keep(*level, &attributes_cut, truncation, &mut cut)
                } else {
                    Kept::Strings(&event.attributes)
                };
                let payload = keep(*level, &event.payload, truncation, &mut cut);
                let line = Line {
                    timestamp: Timestamp(*at),
                    log_level: level.name(),
                    input_run_id: run,
                    business_key: &event.key,
                    agent_name: agent,
                    execution_id: None,
                    parent_execution_id: None,
                    entity_type: None,
                    entity_name: None,
                    entity_metadata: None,
                    event_id: &event.id,
                    event_type: &event.event_type,
                    upstream_event_id: event.upstream_id.as_deref(),
                    upstream_action_name: event.upstream_action.as_deref(),
                    status: None,
                    problem_category: None,
                    recovered: *recovered,
                    event_attributes: attributes,
                    payload: Some(payload),
                };
                f(&line)
            }
            Logged::Execution(execution) => {
                let Execution {
                    at,
                    level,
                    agent,
                    run,
                    key,
                    record,
                } = &**execution;
                let mut attributes = record.attributes.clone();
                attributes.insert(
                    "durationMs".into(),
                    Value::from(record.duration.as_secs_f64() * 1e3),
                );
                let (category, status) = match &record.outcome {
                    ExecutionOutcome::Failed {
                        category,
                        kind,
                        message,
                    } => {
                        attributes.insert("errorType".into(), Value::from(kind.as_str()));
                        attributes.insert("errorMessage".into(), Value::from(message.as_str()));
                        (Some(*category), record.outcome.status())
                    }
                    other => (None, other.status()),
                };
                let attributes = Value::Object(attributes);
                let attributes = keep(*level, &attributes, truncation, &mut cut);
                let event_id = format!("{}!{status}", record.id);
                let line = Line {
                    timestamp: Timestamp(*at),
                    log_level: level.name(),
                    input_run_id: run,
                    business_key: key,
                    agent_name: agent,
                    execution_id: Some(&record.id),
                    parent_execution_id: record.parent.as_deref(),
                    entity_type: Some(record.entity_type),
                    entity_name: Some(&record.entity_name),
                    entity_metadata: (!record.metadata.is_empty()).then_some(&record.metadata),
                    event_id: &event_id,
                    event_type: record.outcome.event_type(),
                    upstream_event_id: record.event_id.as_deref(),
                    upstream_action_name: record.upstream_action.as_deref(),
                    status: Some(status),
                    problem_category: category,
                    recovered: false,
                    event_attributes: attributes,
                    payload: None,
                };
                f(&line)
            }
        };
        (made, cut)
    }
}

/// `value` as the record keeps it at `level`; sets `cut` if STANDARD cut
/// anything.
fn keep<'v>(
    level: LogLevel,
    value: &'v Value,
    truncation: &Truncation,
    cut: &mut bool,
) -> Kept<'v> {
    if level == LogLevel::Standard && truncation.needs_cut(value, 1) {
        *cut = true;
        Kept::Cut(truncation.apply(value).0)
    } else {
        Kept::Whole(value)
    }
}

/// RFC 3339 UTC with microseconds, as Flink Agents' `Instant.toString()`;
/// written straight into the line.
struct Timestamp(SystemTime);

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_micros(self.0))
    }
}

/// What an event log wrote, lost and cut.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EventLogStats {
    /// Records written.
    pub written: u64,
    /// Records lost to a log that could not be opened or written.
    pub failed: u64,
    /// Records dropped because the writer fell behind.
    pub dropped: u64,
    /// Records written with a value cut (STANDARD level).
    pub truncated: u64,
}

/// The counts, shared with the writer; each kind of fault is reported once.
#[derive(Default)]
pub(super) struct Stats {
    written: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    truncated: AtomicU64,
    reported_failure: AtomicBool,
    reported_drop: AtomicBool,
}

impl Stats {
    pub(super) fn written(&self, n: u64) {
        self.written.fetch_add(n, Relaxed);
    }

    pub(super) fn failed(&self, n: u64) {
        self.failed.fetch_add(n, Relaxed);
    }

    pub(super) fn truncated(&self) {
        self.truncated.fetch_add(1, Relaxed);
    }

    pub(super) fn dropped(&self, path: &Path) {
        self.dropped.fetch_add(1, Relaxed);
        if !self.reported_drop.swap(true, Relaxed) {
            tracing::warn!(
                log = %path.display(),
                "the event log's writer fell behind: records are dropped (and counted) rather than holding up the run"
            );
        }
    }

    /// Reports a failure to open or write the log, the first time only.
    pub(super) fn fail_once(&self, path: &Path, error: &dyn std::fmt::Display) {
        if !self.reported_failure.swap(true, Relaxed) {
            tracing::warn!(
                log = %path.display(),
                error = %error,
                "cannot write the event log; the run goes on, and records not written are counted"
            );
        }
    }

    pub(super) fn snapshot(&self) -> EventLogStats {
        EventLogStats {
            written: self.written.load(Relaxed),
            failed: self.failed.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            truncated: self.truncated.load(Relaxed),
        }
    }
}
