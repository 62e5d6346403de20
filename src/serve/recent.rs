//! The latest runs of an agent as the web view shows them: each run's
//! event-log records, kept in memory (no file, nothing rescanned per
//! request) and bounded by count and bytes, with a summary of each run and
//! the agent's counters kept up to date as records come in.
//!
//! Fed by an in-memory event log ([`EventLog::tapped`]: the manifest's
//! `[event_log]` levels apply, and its cuts when a record is read) and by
//! the runtime's run reports, which say when a run ended. Records are kept
//! as logged and written out only for the run the view asks for.
//!
//! [`EventLog::tapped`]: crate::observe::eventlog::EventLog::tapped

use crate::event::types;
use crate::observe::eventlog::{NOTE_TYPES, Record, Tap, What};
use crate::runtime::RunReport;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// A run kept costs its records' bytes and about this much besides.
const RUN_OVERHEAD: usize = 512;
/// A record kept costs its bytes ([`Record::size`]) and about this much
/// besides.
const RECORD_OVERHEAD: usize = 32;

pub(crate) struct RecentRuns {
    inner: Mutex<Inner>,
    /// Runs kept at most.
    max_runs: usize,
    /// Bytes kept at most, records and runs together.
    max_bytes: usize,
    /// Whether any run is kept (see [`RecentRuns::keeps_runs`]).
    keeps: bool,
    /// Bytes one run keeps at most: a run that logs more keeps its first
    /// records and counts the rest, so one runaway run cannot push every
    /// other out.
    max_run_bytes: usize,
}

#[derive(Default)]
struct Inner {
    runs: HashMap<Arc<str>, Kept>,
    /// Run ids in the order they were first seen, oldest first.
    order: VecDeque<Arc<str>>,
    bytes: usize,
    counters: Counters,
}

/// One run kept.
struct Kept {
    summary: RunSummary,
    records: Vec<Record>,
    bytes: usize,
    /// Its failure was counted in [`Counters::runs_failed`].
    failure_counted: bool,
}

/// A run, as the list of recent runs shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RunSummary {
    /// The run's id: its input event's.
    pub id: String,
    /// Its key.
    pub key: String,
    /// Its input event's type (absent until its input's record came).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub input_type: Option<String>,
    /// `pending` (not ended), `done`, or `failed` (an action failed or an
    /// error event came out).
    pub status: &'static str,
    /// When its input was logged (RFC 3339, written when the run is
    /// listed).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "rfc3339")]
    pub started: Option<SystemTime>,
    /// From its input's record to its latest one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    /// Action tasks ended.
    pub actions: u64,
    /// Model, embedding and tool calls ended.
    pub calls: u64,
    /// Output events.
    pub outputs: u64,
    /// Error events.
    pub errors: u64,
    /// Model tokens in and out.
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Records kept, and records over the run's share not kept.
    pub records: u64,
    pub omitted_records: u64,
    #[serde(skip)]
    ended: bool,
    #[serde(skip)]
    failed: bool,
}

fn rfc3339<S: serde::Serializer>(at: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => s.collect_str(&humantime::format_rfc3339_micros(*at)),
        None => s.serialize_none(),
    }
}

/// An agent's counters since the service started (not only the runs
/// kept).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Counters {
    /// Input events whose run started.
    pub events_in: u64,
    /// Runs ended, and those of them that failed.
    pub runs_ended: u64,
    pub runs_failed: u64,
    /// Runs started and not ended.
    pub active: u64,
    /// Output and error events released.
    pub outputs: u64,
    pub errors: u64,
    /// Action tasks ended, and those that failed.
    pub actions: u64,
    pub failed_actions: u64,
    /// Model (chat, embedding) and tool calls ended.
    pub model_calls: u64,
    pub tool_calls: u64,
    /// Model tokens in and out.
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// Which runs to list.
#[derive(Debug, Default)]
pub(crate) struct Filter<'a> {
    pub key: Option<&'a str>,
    pub input_type: Option<&'a str>,
    pub status: Option<&'a str>,
}

impl RecentRuns {
    /// Keeps at most `max_runs` runs in at most `max_bytes` (a run at most
    /// a quarter of it).
    pub(crate) fn new(max_runs: usize, max_bytes: usize) -> RecentRuns {
        let max_bytes = max_bytes.max(4 * RUN_OVERHEAD);
        RecentRuns {
            inner: Mutex::default(),
            max_runs: max_runs.max(1),
            max_bytes,
            max_run_bytes: max_bytes / 4,
            keeps: max_runs > 0,
        }
    }

    /// Whether runs are kept at all (`kept_runs` 0 turns the records off:
    /// the web view then lists no runs and counts nothing).
    pub(crate) fn keeps_runs(&self) -> bool {
        self.keeps
    }

    /// The agent's counters.
    pub(crate) fn counters(&self) -> Counters {
        let inner = self.inner.lock().expect("recent runs lock");
        let mut counters = inner.counters;
        counters.active = counters.events_in.saturating_sub(counters.runs_ended);
        counters
    }

    /// The latest runs `filter` keeps, newest first, at most `limit`; and
    /// how many runs are kept in all.
    pub(crate) fn list(&self, filter: &Filter<'_>, limit: usize) -> (Vec<RunSummary>, usize) {
        let inner = self.inner.lock().expect("recent runs lock");
        let runs = inner
            .order
            .iter()
            .rev()
            .filter_map(|id| inner.runs.get(id))
            .map(|kept| &kept.summary)
            .filter(|run| {
                filter.key.is_none_or(|key| run.key == key)
                    && filter
                        .input_type
                        .is_none_or(|t| run.input_type.as_deref() == Some(t))
                    && filter.status.is_none_or(|status| run.status == status)
            })
            .take(limit)
            .cloned()
            .collect();
        (runs, inner.order.len())
    }

    /// Run `id`'s summary and records, if it is kept.
    pub(crate) fn run(&self, id: &str) -> Option<(RunSummary, Vec<Record>)> {
        let inner = self.inner.lock().expect("recent runs lock");
        let kept = inner.runs.get(id)?;
        Some((kept.summary.clone(), kept.records.clone()))
    }

    /// A run ended (its report: what it released says whether it failed).
    pub(crate) fn ended(&self, report: &RunReport) {
        let errors = report
            .outputs
            .iter()
            .any(|event| event.event_type == types::ERROR);
        let mut guard = self.inner.lock().expect("recent runs lock");
        // Records and reports come by different ways (a report through
        // the runtime's channel), so a run's report may come first: the
        // run is then kept from here.
        let inner = &mut *guard;
        let kept = inner.entry(&report.run, &report.key);
        if kept.summary.ended {
            return;
        }
        kept.summary.ended = true;
        kept.summary.failed |= errors;
        inner.counters.runs_ended += 1;
        inner.settle(&report.run);
        let evicted = self.evict(inner, &report.run);
        drop(guard);
        drop(evicted);
    }

    /// Takes one record.
    fn take(&self, record: Record) {
        let head = record.head();
        let mut guard = self.inner.lock().expect("recent runs lock");
        let inner = &mut *guard;
        inner.entry(head.run, head.key);
        let Inner {
            runs,
            counters,
            bytes,
            ..
        } = &mut *inner;
        let kept = runs.get_mut(head.run).expect("just kept");
        let summary = &mut kept.summary;
        match head.what {
            What::Execution {
                call: false,
                failed,
                ..
            } => {
                summary.actions += 1;
                counters.actions += 1;
                if failed {
                    summary.failed = true;
                    counters.failed_actions += 1;
                }
            }
            What::Execution {
                call: true,
                entity_type,
                input_tokens,
                output_tokens,
                ..
            } => {
                summary.calls += 1;
                match entity_type {
                    "tool" => counters.tool_calls += 1,
                    _ => counters.model_calls += 1,
                }
                summary.input_tokens += input_tokens;
                summary.output_tokens += output_tokens;
                counters.input_tokens += input_tokens;
                counters.output_tokens += output_tokens;
            }
            What::Event { event_type, .. } if NOTE_TYPES.contains(&event_type) => {}
            // The input; logged again when a run is re-done after a crash,
            // and counted once.
            What::Event {
                event_type,
                upstream: None,
            } => {
                if summary.input_type.is_none() {
                    summary.input_type = Some(event_type.to_string());
                    summary.started = Some(head.at);
                    counters.events_in += 1;
                }
            }
            What::Event { event_type, .. } if event_type == types::OUTPUT => {
                summary.outputs += 1;
                counters.outputs += 1;
            }
            What::Event { event_type, .. } if event_type == types::ERROR => {
                summary.errors += 1;
                summary.failed = true;
                counters.errors += 1;
            }
            What::Event { .. } => {}
        }
        if let Some(start) = summary.started
            && let Ok(since) = head.at.duration_since(start)
        {
            let ms = since.as_secs_f64() * 1e3;
            summary.duration_ms = Some(summary.duration_ms.map_or(ms, |d| d.max(ms)));
        }
        let size = record.size() + RECORD_OVERHEAD;
        let run = record.run().clone();
        if kept.bytes + size > self.max_run_bytes {
            kept.summary.omitted_records += 1;
        } else {
            kept.summary.records += 1;
            kept.bytes += size;
            *bytes += size;
            kept.records.push(record);
        }
        inner.settle(&run);
        let evicted = self.evict(inner, &run);
        drop(guard);
        drop(evicted);
    }

    /// Forgets the oldest runs while over a bound, but not `current`, the
    /// run just added to (a run keeps less than the bound on bytes).
    /// Returns them, to be dropped once the lock is let go (freeing their
    /// records is most of the work).
    #[must_use]
    fn evict(&self, inner: &mut Inner, current: &str) -> Vec<Kept> {
        let mut evicted = Vec::new();
        while inner.order.len() > self.max_runs || inner.bytes > self.max_bytes {
            let Some(oldest) = inner.order.iter().position(|id| &**id != current) else {
                break;
            };
            let Some(id) = inner.order.remove(oldest) else {
                break;
            };
            if let Some(kept) = inner.runs.remove(&id) {
                inner.bytes -= kept.bytes + RUN_OVERHEAD;
                evicted.push(kept);
            }
        }
        evicted
    }
}

impl Inner {
    /// Run `run`, kept from now if it was not.
    fn entry(&mut self, run: &str, key: &str) -> &mut Kept {
        if !self.runs.contains_key(run) {
            let id: Arc<str> = Arc::from(run);
            self.order.push_back(id.clone());
            self.bytes += RUN_OVERHEAD;
            self.runs.insert(
                id,
                Kept {
                    summary: RunSummary {
                        id: run.to_string(),
                        key: key.to_string(),
                        input_type: None,
                        status: "pending",
                        started: None,
                        duration_ms: None,
                        actions: 0,
                        calls: 0,
                        outputs: 0,
                        errors: 0,
                        input_tokens: 0,
                        output_tokens: 0,
                        records: 0,
                        omitted_records: 0,
                        ended: false,
                        failed: false,
                    },
                    records: Vec::new(),
                    bytes: 0,
                    failure_counted: false,
                },
            );
        }
        self.runs.get_mut(run).expect("just kept")
    }

    /// Brings run `id`'s status up to date, and counts its failure once
    /// it has ended (whichever of its report and its failure came last).
    fn settle(&mut self, id: &str) {
        let Some(kept) = self.runs.get_mut(id) else {
            return;
        };
        let summary = &mut kept.summary;
        summary.status = match (summary.ended, summary.failed) {
            (false, _) => "pending",
            (true, false) => "done",
            (true, true) => "failed",
        };
        if summary.ended && summary.failed && !kept.failure_counted {
            kept.failure_counted = true;
            self.counters.runs_failed += 1;
        }
    }
}

impl Tap for RecentRuns {
    fn record(&self, record: Record) {
        self.take(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Event;
    use crate::observe::eventlog::{EventLog, EventLogSettings, ExecutionOutcome, ExecutionRecord};
    use serde_json::json;

    /// An event log whose records go to `recent`, as `weir serve` makes it.
    fn log(recent: &Arc<RecentRuns>) -> EventLog {
        EventLog::tapped(&EventLogSettings::default(), "a", recent.clone())
    }

    fn event(log: &EventLog, run: &str, id: &str, event_type: &str, payload: serde_json::Value) {
        let event = Event {
            id: id.into(),
            event_type: event_type.into(),
            key: "k".into(),
            payload,
            upstream_id: (id != run).then(|| run.to_string()),
            upstream_action: None,
            attributes: Default::default(),
        };
        log.event(&Arc::from(run), false, &event);
    }

    fn input(log: &EventLog, run: &str) {
        event(log, run, run, "_input_event", json!("x"));
    }

    fn call(log: &EventLog, run: &str, tokens: (u64, u64)) {
        let mut attributes = serde_json::Map::new();
        attributes.insert("inputTokens".into(), tokens.0.into());
        attributes.insert("outputTokens".into(), tokens.1.into());
        let record = ExecutionRecord {
            id: format!("{run}/m/1"),
            parent: Some(format!("{run}/m")),
            entity_type: "llm",
            entity_name: "model".into(),
            metadata: Default::default(),
            event_id: Some(run.into()),
            upstream_action: None,
            duration: std::time::Duration::from_millis(3),
            outcome: ExecutionOutcome::Succeeded,
            attributes,
        };
        log.execution(&Arc::from(run), "k", record);
    }

    fn report(run: &str, error: bool) -> RunReport {
        let mut outputs = Vec::new();
        if error {
            let mut event = crate::Event::input("k", json!("boom"));
            event.event_type = types::ERROR.into();
            outputs.push(event);
        }
        RunReport {
            run: run.into(),
            key: "k".into(),
            seq: 0,
            outputs,
            first_output: None,
        }
    }

    #[test]
    fn runs_are_summarised_counted_and_forgotten_beyond_their_bounds() {
        let recent = Arc::new(RecentRuns::new(2, 1 << 20));
        let log = log(&recent);
        input(&log, "a");
        call(&log, "a", (3, 4));
        event(&log, "a", "o", types::OUTPUT, json!("y"));
        let (runs, _) = recent.list(&Filter::default(), 10);
        assert_eq!(runs[0].status, "pending");
        assert_eq!(runs[0].input_type.as_deref(), Some("_input_event"));
        let listed = serde_json::to_value(&runs[0]).unwrap();
        assert!(listed["started"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert_eq!(
            (runs[0].calls, runs[0].input_tokens, runs[0].outputs),
            (1, 3, 1)
        );
        // The view reads the records as the file's lines.
        let (_, records) = recent.run("a").unwrap();
        let lines: Vec<serde_json::Value> = records.iter().map(Record::to_value).collect();
        assert_eq!(lines[1]["eventType"], "_execution_finished_event");
        assert_eq!(lines[1]["eventAttributes"]["outputTokens"], 4);
        assert_eq!(lines[2]["upstreamEventId"], "a");
        recent.ended(&report("a", false));
        // A report before the run's records.
        recent.ended(&report("b", true));
        input(&log, "b");
        let counters = recent.counters();
        assert_eq!(counters.events_in, 2);
        assert_eq!((counters.runs_ended, counters.runs_failed), (2, 1));
        assert_eq!(counters.active, 0);
        assert_eq!((counters.model_calls, counters.input_tokens), (1, 3));
        let failed = Filter {
            status: Some("failed"),
            ..Filter::default()
        };
        let (runs, kept) = recent.list(&failed, 10);
        assert_eq!(kept, 2);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].id, "b");
        assert_eq!(runs[0].records, 1);
        // A third run pushes the first out.
        input(&log, "c");
        assert!(recent.run("a").is_none());
        let (runs, _) = recent.list(&Filter::default(), 10);
        let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["c", "b"]);
        assert_eq!(recent.counters().active, 1);
    }

    #[test]
    fn bytes_are_bounded_per_run_and_in_all() {
        let recent = Arc::new(RecentRuns::new(1000, 64 << 10));
        let log = log(&recent);
        let big = json!("x".repeat(5000));
        for n in 0..10 {
            event(&log, "a", &format!("e{n}"), "t", big.clone());
        }
        let (summary, records) = recent.run("a").unwrap();
        assert_eq!(records.len(), 3, "a quarter of 64 KiB");
        assert_eq!(summary.omitted_records, 7);
        for run in 0..40 {
            event(
                &log,
                &format!("r{run}"),
                &format!("r{run}"),
                "_input_event",
                big.clone(),
            );
        }
        let inner = recent.inner.lock().unwrap();
        assert!(inner.bytes <= 64 << 10, "{}", inner.bytes);
        assert!(inner.order.len() < 40);
        let counted: usize = inner.runs.values().map(|k| k.bytes + RUN_OVERHEAD).sum();
        assert_eq!(counted, inner.bytes);
    }
}
