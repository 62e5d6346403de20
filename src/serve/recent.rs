//! The latest runs of an agent as the web view shows them: each run's
//! event-log records, kept in memory (no file, nothing rescanned per
//! request) and bounded by count and bytes, with a summary of each run and
//! the agent's counters kept up to date as records come in.
//!
//! Fed by an in-memory event log ([`EventLog::tapped`], records as the
//! file's lines would be: the manifest's `[event_log]` levels and cuts
//! apply) and by the runtime's run reports, which say when a run ended.
//!
//! [`EventLog::tapped`]: crate::observe::eventlog::EventLog::tapped

use crate::event::types;
use crate::observe::eventlog::{NOTE_TYPES, Tap};
use crate::runtime::RunReport;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// A run kept costs its records' bytes and about this much besides.
const RUN_OVERHEAD: usize = 512;
/// A record kept costs its bytes and about this much besides.
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
    records: Vec<Box<str>>,
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
    /// When its input was logged (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
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
    #[serde(skip)]
    started_at: Option<std::time::SystemTime>,
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
    /// Records the view could not read (none, unless the log is broken).
    pub unreadable_records: u64,
}

/// Which runs to list.
#[derive(Debug, Default)]
pub(crate) struct Filter<'a> {
    pub key: Option<&'a str>,
    pub input_type: Option<&'a str>,
    pub status: Option<&'a str>,
}

/// What the view reads of a record; the rest is skipped.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head<'a> {
    #[serde(borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    input_run_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    business_key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    event_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    upstream_event_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    execution_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    parent_execution_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    entity_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(default)]
    event_attributes: Attributes,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Attributes {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
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
    pub(crate) fn run(&self, id: &str) -> Option<(RunSummary, Vec<Box<str>>)> {
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
        let mut inner = self.inner.lock().expect("recent runs lock");
        // A run's records may come after its report (the log's writer
        // is a thread of its own): the run is then kept from here.
        let inner = &mut *inner;
        let kept = inner.entry(&report.run, &report.key);
        if kept.summary.ended {
            return;
        }
        kept.summary.ended = true;
        kept.summary.failed |= errors;
        inner.counters.runs_ended += 1;
        inner.settle(&report.run);
        self.evict(inner, &report.run);
    }

    /// Takes one record (its JSON line).
    fn take(&self, line: &[u8]) {
        let Ok(head) = serde_json::from_slice::<Head<'_>>(line) else {
            self.inner
                .lock()
                .expect("recent runs lock")
                .counters
                .unreadable_records += 1;
            return;
        };
        let Some(run) = head.input_run_id.as_deref() else {
            return;
        };
        let event_type = head.event_type.as_deref().unwrap_or_default();
        let at = head
            .timestamp
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339(t).ok());
        let mut guard = self.inner.lock().expect("recent runs lock");
        let inner = &mut *guard;
        inner.entry(run, head.business_key.as_deref().unwrap_or_default());
        let Inner {
            runs,
            counters,
            bytes,
            ..
        } = &mut *inner;
        let kept = runs.get_mut(run).expect("just kept");
        let summary = &mut kept.summary;
        if event_type.starts_with("_execution_") && head.execution_id.is_some() {
            let failed = head.status.as_deref() == Some("failed");
            if head.parent_execution_id.is_none() {
                summary.actions += 1;
                counters.actions += 1;
                if failed {
                    summary.failed = true;
                    counters.failed_actions += 1;
                }
            } else {
                summary.calls += 1;
                match head.entity_type.as_deref() {
                    Some("tool") => counters.tool_calls += 1,
                    _ => counters.model_calls += 1,
                }
                let tokens = &head.event_attributes;
                summary.input_tokens += tokens.input_tokens.unwrap_or(0);
                summary.output_tokens += tokens.output_tokens.unwrap_or(0);
                counters.input_tokens += tokens.input_tokens.unwrap_or(0);
                counters.output_tokens += tokens.output_tokens.unwrap_or(0);
            }
        } else if !NOTE_TYPES.contains(&event_type) {
            if head.upstream_event_id.is_none() {
                // The input; logged again when a run is re-done after a
                // crash, and counted once.
                if summary.input_type.is_none() {
                    summary.input_type = Some(event_type.to_string());
                    summary.started = head.timestamp.as_deref().map(str::to_string);
                    summary.started_at = at;
                    counters.events_in += 1;
                }
            } else if event_type == types::OUTPUT {
                summary.outputs += 1;
                counters.outputs += 1;
            } else if event_type == types::ERROR {
                summary.errors += 1;
                summary.failed = true;
                counters.errors += 1;
            }
        }
        if let (Some(start), Some(at)) = (summary.started_at, at)
            && let Ok(since) = at.duration_since(start)
        {
            let ms = since.as_secs_f64() * 1e3;
            summary.duration_ms = Some(summary.duration_ms.map_or(ms, |d| d.max(ms)));
        }
        let size = line.len() + RECORD_OVERHEAD;
        if kept.bytes + size > self.max_run_bytes {
            kept.summary.omitted_records += 1;
        } else {
            let text = String::from_utf8_lossy(line).into_owned();
            kept.records.push(text.into_boxed_str());
            kept.summary.records += 1;
            kept.bytes += size;
            *bytes += size;
        }
        inner.settle(run);
        self.evict(inner, run);
    }

    /// Forgets the oldest runs while over a bound, but not `current`, the
    /// run just added to (a run keeps less than the bound on bytes).
    fn evict(&self, inner: &mut Inner, current: &str) {
        while inner.order.len() > self.max_runs || inner.bytes > self.max_bytes {
            let Some(oldest) = inner.order.iter().position(|id| &**id != current) else {
                break;
            };
            let Some(id) = inner.order.remove(oldest) else {
                break;
            };
            if let Some(kept) = inner.runs.remove(&id) {
                inner.bytes -= kept.bytes + RUN_OVERHEAD;
            }
        }
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
                        started_at: None,
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
    fn record(&self, line: &[u8]) {
        self.take(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(run: &str, value: serde_json::Value) -> Vec<u8> {
        let mut value = value;
        value["inputRunId"] = json!(run);
        value["businessKey"] = json!("k");
        value["timestamp"] = json!("2026-12-04T12:00:00.000001Z");
        value.to_string().into_bytes()
    }

    fn input(run: &str) -> Vec<u8> {
        record(
            run,
            json!({ "eventId": run, "eventType": "_input_event", "payload": "x" }),
        )
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
        let recent = RecentRuns::new(2, 1 << 20);
        recent.record(&input("a"));
        recent.record(&record(
            "a",
            json!({ "eventId": "a/m/1!success", "eventType": "_execution_finished_event",
                    "executionId": "a/m/1", "parentExecutionId": "a/m", "entityType": "llm",
                    "status": "success", "eventAttributes": { "inputTokens": 3, "outputTokens": 4 } }),
        ));
        recent.record(&record(
            "a",
            json!({ "eventId": "o", "eventType": "_output_event", "upstreamEventId": "a" }),
        ));
        let (runs, _) = recent.list(&Filter::default(), 10);
        assert_eq!(runs[0].status, "pending");
        assert_eq!(runs[0].input_type.as_deref(), Some("_input_event"));
        assert_eq!(
            (runs[0].calls, runs[0].input_tokens, runs[0].outputs),
            (1, 3, 1)
        );
        recent.ended(&report("a", false));
        // A report before the run's records.
        recent.ended(&report("b", true));
        recent.record(&input("b"));
        let counters = recent.counters();
        assert_eq!(counters.events_in, 2);
        assert_eq!((counters.runs_ended, counters.runs_failed), (2, 1));
        assert_eq!(counters.active, 0);
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
        recent.record(&input("c"));
        assert!(recent.run("a").is_none());
        let (runs, _) = recent.list(&Filter::default(), 10);
        let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["c", "b"]);
        assert_eq!(recent.counters().active, 1);
    }

    #[test]
    fn bytes_are_bounded_per_run_and_in_all() {
        let recent = RecentRuns::new(1000, 64 << 10);
        let big = "x".repeat(5000);
        for n in 0..10 {
            recent.record(&record(
                "a",
                json!({ "eventId": format!("e{n}"), "eventType": "t", "upstreamEventId": "a",
                        "payload": big }),
            ));
        }
        let (summary, records) = recent.run("a").unwrap();
        assert_eq!(records.len(), 3, "a quarter of 64 KiB");
        assert_eq!(summary.omitted_records, 7);
        for run in 0..40 {
            recent.record(&record(
                &format!("r{run}"),
                json!({ "eventId": "i", "eventType": "_input_event", "payload": big }),
            ));
        }
        let inner = recent.inner.lock().unwrap();
        assert!(inner.bytes <= 64 << 10, "{}", inner.bytes);
        assert!(inner.order.len() < 40);
        let counted: usize = inner.runs.values().map(|k| k.bytes + RUN_OVERHEAD).sum();
        assert_eq!(counted, inner.bytes);
        drop(inner);
        recent.record(b"not json");
        assert_eq!(recent.counters().unreadable_records, 1);
    }
}
