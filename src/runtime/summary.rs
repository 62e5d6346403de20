//! Counters of a run and the summary printed at its end.

use crate::host::model::ModelStats;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Live counters, shared by the run's tasks.
#[derive(Default)]
pub(crate) struct Counters {
    pub events_in: AtomicU64,
    pub inputs_already_done: AtomicU64,
    pub outputs: AtomicU64,
    pub error_events: AtomicU64,
    pub outputs_discarded: AtomicU64,
    pub host_calls: AtomicU64,
    pub runs_cut: Mutex<BTreeMap<&'static str, u64>>,
    pub actions: BTreeMap<String, ActionCounters>,
    pub unrouted: Mutex<BTreeMap<String, u64>>,
}

/// Counters of one action.
#[derive(Default)]
pub(crate) struct ActionCounters {
    pub runs: AtomicU64,
    pub failures: AtomicU64,
    pub busy_nanos: AtomicU64,
    pub failures_by_kind: Mutex<BTreeMap<&'static str, u64>>,
    pub limits: Mutex<BTreeMap<&'static str, u64>>,
    pub denials: Mutex<BTreeMap<&'static str, u64>>,
}

impl ActionCounters {
    pub(crate) fn failed(&self, failure: &super::task::Failure) {
        self.failures.fetch_add(1, Relaxed);
        *self
            .failures_by_kind
            .lock()
            .expect("counter lock")
            .entry(failure.kind())
            .or_default() += 1;
        if let super::task::Failure::Limit(exceeded) = failure {
            *self
                .limits
                .lock()
                .expect("counter lock")
                .entry(exceeded.limit.name())
                .or_default() += 1;
        }
    }

    pub(crate) fn denied(&self, counts: &BTreeMap<&'static str, u64>) {
        let mut denials = self.denials.lock().expect("counter lock");
        for (capability, n) in counts {
            *denials.entry(capability).or_default() += n;
        }
    }
}

fn names(map: &Mutex<BTreeMap<&'static str, u64>>) -> BTreeMap<String, u64> {
    map.lock()
        .expect("counter lock")
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect()
}

impl Counters {
    pub(crate) fn new(action_names: impl Iterator<Item = String>) -> Self {
        Counters {
            actions: action_names
                .map(|name| (name, ActionCounters::default()))
                .collect(),
            ..Default::default()
        }
    }

    pub(crate) fn unrouted(&self, event_type: &str) {
        let mut unrouted = self.unrouted.lock().expect("counter lock");
        let first = !unrouted.contains_key(event_type);
        *unrouted.entry(event_type.to_string()).or_default() += 1;
        if first {
            tracing::warn!(
                event_type,
                "no action listens to this event type; events of it are counted and dropped"
            );
        }
    }

    pub(crate) fn summary(&self, elapsed: Duration) -> RunSummary {
        let actions: BTreeMap<String, ActionSummary> = self
            .actions
            .iter()
            .map(|(name, a)| {
                let runs = a.runs.load(Relaxed);
                (
                    name.clone(),
                    ActionSummary {
                        runs,
                        failures: a.failures.load(Relaxed),
                        failures_by_kind: names(&a.failures_by_kind),
                        limits: names(&a.limits),
                        denials: names(&a.denials),
                        mean_task_micros: match runs {
                            0 => 0.0,
                            n => a.busy_nanos.load(Relaxed) as f64 / n as f64 / 1e3,
                        },
                    },
                )
            })
            .collect();
        RunSummary {
            events_in: self.events_in.load(Relaxed),
            inputs_already_done: self.inputs_already_done.load(Relaxed),
            outputs: self.outputs.load(Relaxed),
            error_events: self.error_events.load(Relaxed),
            outputs_discarded: self.outputs_discarded.load(Relaxed),
            action_tasks: actions.values().map(|a| a.runs).sum(),
            failed_tasks: actions.values().map(|a| a.failures).sum(),
            host_calls: self.host_calls.load(Relaxed),
            unrouted: self.unrouted.lock().expect("counter lock").clone(),
            runs_cut: names(&self.runs_cut),
            actions,
            models: BTreeMap::new(),
            event_log: None,
            elapsed_secs: elapsed.as_secs_f64(),
        }
    }
}

/// What a run did, printed on stderr by `weir run`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// Input events taken.
    pub events_in: u64,
    /// Input events skipped because the journal had already committed them
    /// (a restarted run).
    pub inputs_already_done: u64,
    /// Output events produced.
    pub outputs: u64,
    /// Error events produced (failed tasks, routing loops cut).
    pub error_events: u64,
    /// Output or error events the receiver did not take.
    pub outputs_discarded: u64,
    /// Action tasks run.
    pub action_tasks: u64,
    /// Action tasks that failed.
    pub failed_tasks: u64,
    /// Host calls made by guests.
    pub host_calls: u64,
    /// Events of types no action listens to, by type.
    pub unrouted: BTreeMap<String, u64>,
    /// Agent runs cut by a run budget, by setting (`max_run_events`, ...).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub runs_cut: BTreeMap<String, u64>,
    /// Per action.
    pub actions: BTreeMap<String, ActionSummary>,
    /// Model calls per action and model: calls, failures, tokens, time.
    pub models: BTreeMap<String, BTreeMap<String, ModelStats>>,
    /// What the event log wrote, lost and cut, when one was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_log: Option<crate::observe::eventlog::EventLogStats>,
    /// Wall time of the run in seconds.
    pub elapsed_secs: f64,
}

/// What one action did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionSummary {
    /// Tasks run.
    pub runs: u64,
    /// Tasks failed.
    pub failures: u64,
    /// Failures by kind (`trap`, `action-error`, `limit`, `denied`, ...).
    pub failures_by_kind: BTreeMap<String, u64>,
    /// Tasks stopped by each limit (`cpu_ms`, `memory_mb`, ...).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, u64>,
    /// Requests refused, by capability (`http`, `model`, `tool`, ...),
    /// whether or not the task then failed.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub denials: BTreeMap<String, u64>,
    /// Mean wall time of a task, in microseconds.
    pub mean_task_micros: f64,
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = if self.elapsed_secs > 0.0 {
            self.events_in as f64 / self.elapsed_secs
        } else {
            0.0
        };
        writeln!(
            f,
            "weir: {} events in, {} out, {} errors; {} action tasks ({} failed), {} host calls; {:.3} s ({:.0} events/s)",
            self.events_in,
            self.outputs,
            self.error_events,
            self.action_tasks,
            self.failed_tasks,
            self.host_calls,
            self.elapsed_secs,
            rate
        )?;
        if let Some(log) = &self.event_log {
            write!(f, "  event log: {} records written", log.written)?;
            if log.truncated > 0 {
                write!(f, " ({} with values cut)", log.truncated)?;
            }
            if log.failed + log.dropped > 0 {
                write!(
                    f,
                    "; {} not written (the log failed), {} dropped (the writer fell behind)",
                    log.failed, log.dropped
                )?;
            }
            writeln!(f)?;
        }
        if self.inputs_already_done > 0 {
            writeln!(
                f,
                "  {} input events were already done before a restart (skipped)",
                self.inputs_already_done
            )?;
        }
        for (name, a) in self.actions.iter().filter(|(_, a)| a.runs > 0) {
            write!(
                f,
                "  action {name}: {} runs, {} failed, {:.0} us per task",
                a.runs, a.failures, a.mean_task_micros
            )?;
            if !a.failures_by_kind.is_empty() {
                let kinds: Vec<String> = a
                    .failures_by_kind
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect();
                write!(f, " ({})", kinds.join(", "))?;
            }
            for (label, map) in [("limits hit", &a.limits), ("denied", &a.denials)] {
                if !map.is_empty() {
                    let items: Vec<String> = map.iter().map(|(k, n)| format!("{k} {n}")).collect();
                    write!(f, "; {label}: {}", items.join(", "))?;
                }
            }
            writeln!(f)?;
        }
        for (action, models) in &self.models {
            for (model, m) in models {
                writeln!(
                    f,
                    "  model {model} from {action}: {} calls ({} failed), {} input + {} output tokens, {:.0} ms per call",
                    m.calls,
                    m.failures,
                    m.input_tokens,
                    m.output_tokens,
                    if m.calls > 0 {
                        m.total_ms / m.calls as f64
                    } else {
                        0.0
                    }
                )?;
            }
        }
        for (event_type, n) in &self.unrouted {
            writeln!(
                f,
                "  unrouted: {n} `{event_type}` events (no action listens)"
            )?;
        }
        for (setting, n) in &self.runs_cut {
            writeln!(f, "  {n} agent runs cut at their `{setting}`")?;
        }
        if self.outputs_discarded > 0 {
            writeln!(
                f,
                "  {} output events were not taken by the receiver",
                self.outputs_discarded
            )?;
        }
        Ok(())
    }
}
