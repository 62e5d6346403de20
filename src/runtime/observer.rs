//! What a run shows of itself: its events and action executions in the
//! event log, its spans, and its metrics. One place for the runtime to call,
//! so that the run's logic says what happened once and each observer takes
//! what it keeps; with none on, each call is a branch.

use super::Shared;
use super::task::{self, Failure, TaskOutcome};
use crate::event::{Event, types};
use crate::observe::eventlog::{EventLog, ExecutionOutcome, ExecutionRecord};
use crate::observe::telemetry::{AgentTelemetry, EventKind, RunTrace, TaskTelemetry, end_task};
use crate::plan::ActionPlan;
use std::sync::Arc;
use std::time::Duration;

/// One run's observers.
pub(super) struct RunObserver {
    log: Option<Arc<EventLog>>,
    run: Arc<str>,
    /// Re-done after a crash (the crash left call records of it).
    recovered: bool,
    telemetry: Option<Arc<AgentTelemetry>>,
    trace: Option<RunTrace>,
    outputs: u64,
    errors: u64,
    /// The run setting that cut the run, if one did.
    cut: Option<&'static str>,
}

impl RunObserver {
    /// Starts observing run `run` of `input` (and logs `input`).
    pub(super) fn start(shared: &Shared, run: &Arc<str>, input: &Event) -> RunObserver {
        let log = shared.event_log.clone();
        let recovered = log.is_some()
            && shared
                .journal
                .as_ref()
                .is_some_and(|journal| journal.recovered_calls_of(run));
        let telemetry = shared.telemetry.clone();
        let trace = telemetry.as_ref().and_then(|t| RunTrace::start(t, input));
        if let Some(metrics) = telemetry.as_ref().and_then(|t| t.metrics.as_ref()) {
            metrics.runs_active(1);
        }
        let observer = RunObserver {
            log,
            run: run.clone(),
            recovered,
            telemetry,
            trace,
            outputs: 0,
            errors: 0,
            cut: None,
        };
        observer.event(input, EventKind::Input);
        observer
    }

    /// An event of the run: the input, or one emitted to route on.
    pub(super) fn event(&self, event: &Event, kind: EventKind) {
        if let Some(log) = &self.log {
            log.event(&self.run, self.recovered, event);
        }
        if let Some(metrics) = self.telemetry.as_ref().and_then(|t| t.metrics.as_deref()) {
            metrics.event(kind, &event.event_type);
        }
    }

    /// An output or error event the run releases.
    pub(super) fn released(&mut self, event: &Event) {
        let kind = if event.event_type == types::ERROR {
            self.errors += 1;
            EventKind::Error
        } else {
            self.outputs += 1;
            EventKind::Output
        };
        self.event(event, kind);
    }

    /// The run was cut at run setting `setting` while running `action`.
    pub(super) fn cut(&mut self, action: &ActionPlan, setting: &'static str) {
        self.cut = Some(setting);
        self.limit(action, setting);
    }

    /// `action` reached limit `limit` (a routing loop cut at `max_depth`,
    /// for one).
    pub(super) fn limit(&self, action: &ActionPlan, limit: &'static str) {
        if let Some(metrics) = self.telemetry.as_ref().and_then(|t| t.metrics.as_deref())
            && let Some(of) = metrics.action(&action.name)
        {
            metrics.limit(of, limit);
        }
    }

    /// The telemetry of `action`'s task on `event` (starting its span).
    pub(super) fn task(&self, action: &ActionPlan, event: &Event) -> Option<TaskTelemetry> {
        let agent = self.telemetry.as_ref()?;
        let cx = match &self.trace {
            Some(trace) => trace.task(&action.name, event),
            None => opentelemetry::Context::new(),
        };
        Some(TaskTelemetry {
            agent: agent.clone(),
            cx,
        })
    }

    /// `action`'s task on `event` ended after `duration` with `outcome`.
    pub(super) fn action(
        &self,
        action: &ActionPlan,
        event: &Event,
        duration: Duration,
        outcome: &TaskOutcome,
        telemetry: Option<TaskTelemetry>,
    ) {
        let failure = outcome.result.as_ref().err();
        if let Some(telemetry) = telemetry {
            end_task(
                &telemetry.cx,
                failure
                    .map(|f| (f.kind(), f.message()))
                    .as_ref()
                    .map(|(k, m)| (*k, m.as_str())),
            );
            if let Some(metrics) = &telemetry.agent.metrics
                && let Some(of) = metrics.action(&action.name)
            {
                let limit = match failure {
                    Some(Failure::Limit(exceeded)) => Some(exceeded.limit.name()),
                    _ => None,
                };
                metrics.task(
                    of,
                    duration.as_secs_f64(),
                    failure.map(|f| (f.kind(), limit)),
                    &outcome.calls(),
                    &outcome.denial_counts,
                );
            }
        }
        let Some(log) = &self.log else {
            return;
        };
        let outcome = match failure {
            None => ExecutionOutcome::Succeeded,
            Some(failure) => ExecutionOutcome::Failed {
                category: "action_execution_failed",
                kind: failure.kind().to_string(),
                message: failure.message(),
            },
        };
        log.execution(
            &self.run,
            &event.key,
            ExecutionRecord {
                id: task::execution_id(event, action),
                parent: None,
                entity_type: "action",
                entity_name: action.name.clone(),
                metadata: serde_json::Map::new(),
                event_id: Some(event.id.clone()),
                upstream_action: event.upstream_action.clone(),
                duration,
                outcome,
                attributes: serde_json::Map::new(),
            },
        );
    }

    /// The run ended.
    pub(super) fn end(self) {
        if let Some(trace) = self.trace {
            trace.end(self.outputs, self.errors, self.cut);
        }
        if let Some(metrics) = self.telemetry.as_ref().and_then(|t| t.metrics.as_deref()) {
            metrics.runs_active(-1);
        }
    }
}
