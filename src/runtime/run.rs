//! One agent run: an input event and everything it causes for one key,
//! routed action by action until only outputs are left, within the run's
//! budget; with a journal, committed before its outputs are released.

use super::observer::RunObserver;
use super::task::{self, Failure};
use super::{RunReport, Shared};
use crate::RuntimeSettings;
use crate::event::{self, Event, types};
use crate::host::bindings::weir::agent::types::Event as WitEvent;
use crate::host::{Authority, KeyMemory};
use crate::journal::JournalError;
use crate::memory::MemoryObject;
use crate::observe::telemetry::EventKind;
use crate::plan::{ActionKind, ActionPlan};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;
use tokio::sync::mpsc;

/// One agent run: an input event and everything it causes, for one key.
/// With a journal, its outputs are held until the run is committed.
pub(super) async fn agent_run(
    shared: &Shared,
    input: Event,
    seq: u64,
    short_term: MemoryObject,
    permit: tokio::sync::SemaphorePermit<'_>,
) -> MemoryObject {
    let mut memory = KeyMemory {
        short_term,
        sensory: MemoryObject::new(),
    };
    let run_id: Arc<str> = Arc::from(input.id.as_str());
    let key = input.key.clone();
    let mut observer = RunObserver::start(shared, &run_id, &input);
    // Outputs are held until the run commits (with a journal), and for its
    // report (when the runtime reports runs, outputs go out in reports).
    let mut held: Option<Vec<Event>> =
        (shared.journal.is_some() || shared.reports.is_some()).then(Vec::new);
    // Each event with its depth and whom it acts for (see `host::Authority`).
    let mut queue: VecDeque<(Event, usize, Option<Arc<Authority>>)> =
        VecDeque::from([(input, 0, None)]);
    let task_context = task::TaskContext {
        env: &shared.plan.env,
        usage: &shared.usage,
        journal: shared
            .journal
            .clone()
            .map(|journal| (journal, run_id.clone())),
        event_log: shared
            .event_log
            .clone()
            .map(|event_log| (event_log, run_id.clone())),
    };
    let mut budget = RunBudget::default();
    'run: while let Some((event, depth, authority)) = queue.pop_front() {
        let routes = shared.plan.route(&event.event_type);
        if routes.is_empty() {
            if event.event_type != types::ERROR {
                shared.counters.unrouted(&event.event_type);
            }
            continue;
        }
        let wit_event = to_wit(&event);
        for action in routes {
            if let Some(cut) = budget.start_task(&shared.settings) {
                let error = run_limit_error(shared, &mut observer, action, &event, cut);
                release(shared, &mut observer, &mut held, error).await;
                break 'run;
            }
            let started = Instant::now();
            let telemetry = observer.task(action, &event);
            let outcome = task::run(
                action,
                &event,
                &wit_event,
                authority.as_ref(),
                memory,
                &task_context,
                telemetry.clone(),
            )
            .await;
            observer.action(action, &event, started.elapsed(), &outcome, telemetry);
            memory = outcome.memory;
            let counters = &shared.counters.actions[&action.name];
            counters.runs.fetch_add(1, Relaxed);
            counters
                .busy_nanos
                .fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
            shared
                .counters
                .host_calls
                .fetch_add(outcome.host_calls, Relaxed);
            if !outcome.denial_counts.is_empty() {
                counters.denied(&outcome.denial_counts);
            }
            match outcome.result {
                Ok(emitted) => {
                    let spent = budget.spend(&shared.settings, emitted.len(), outcome.output_bytes);
                    if let Some(cut) = spent {
                        // What this task emitted is dropped with the rest
                        // of the run: the run is cut where it overran.
                        let error = run_limit_error(shared, &mut observer, action, &event, cut);
                        release(shared, &mut observer, &mut held, error).await;
                        break 'run;
                    }
                    for e in emitted {
                        // A built-in serving a request passes its authority
                        // on (narrowed, once a model was asked); anything
                        // else acts for the action that emitted it.
                        let acts_for = e.authority.or_else(|| match &action.kind {
                            ActionKind::Builtin(b) if b.acts_for_requester() => authority.clone(),
                            _ => Some(action.authority.clone()),
                        });
                        let next = Event {
                            id: e.id,
                            event_type: e.event_type,
                            key: event.key.clone(),
                            payload: e.payload,
                            upstream_id: Some(event.id.clone()),
                            upstream_action: Some(action.name.clone()),
                            attributes: e.attributes.into_iter().collect(),
                        };
                        if next.event_type == types::OUTPUT {
                            release(shared, &mut observer, &mut held, next).await;
                        } else if depth + 1 > shared.settings.max_depth {
                            observer.limit(action, "max_depth");
                            let error = depth_error(shared, action, &event, &next);
                            release(shared, &mut observer, &mut held, error).await;
                        } else {
                            observer.event(&next, EventKind::Intermediate);
                            queue.push_back((next, depth + 1, acts_for));
                        }
                    }
                }
                Err(failure) => {
                    counters.failed(&failure);
                    let error = failure_event(action, &event, &failure);
                    tracing::warn!(
                        action = %action.name, key = %event.key, event = %event.id,
                        kind = failure.kind(), details = %failure.details(), "action failed"
                    );
                    // Error events may be handled by actions listening to
                    // `_error_event`, but an error handler's own failure is not
                    // routed again.
                    let route_again = event.event_type != types::ERROR
                        && depth < shared.settings.max_depth
                        && !shared.plan.route(types::ERROR).is_empty();
                    if route_again {
                        queue.push_back((error.clone(), depth + 1, None));
                    }
                    release(shared, &mut observer, &mut held, error).await;
                }
            }
        }
    }
    observer.end();
    drop(permit);
    // The run's report, when the runtime reports runs.
    let report = |outputs: Vec<Event>| {
        shared.reports.as_ref().map(|_| RunReport {
            run: run_id.to_string(),
            key: key.clone(),
            seq,
            outputs,
            first_output: None,
        })
    };
    // Without a journal its outputs go out now (with one, once committed,
    // below).
    if shared.journal.is_none() {
        if let Some(report) = held.and_then(report) {
            send_report(shared, report).await;
        }
        return memory.short_term;
    }
    let releases = shared.releases.lock().expect("release lock").clone();
    if let (Some(journal), Some(outputs), Some(releases)) = (&shared.journal, held, releases) {
        // The commit is queued now; the key's next run may start at once,
        // and the outputs are released, in commit order, once it is on disk.
        let snapshot = memory.short_term.to_json();
        // A place in the release queue first, so that commits are released
        // in the order they are queued (the journal numbers outputs in
        // that order, and a service streams them by number).
        if let Ok(place) = releases.reserve().await {
            // Queued under the lock, so that commits queue in the order
            // their resume points count them: a resume point on disk never
            // counts a commit that is not.
            let mut in_flight = shared.in_flight.lock().expect("in-flight lock");
            in_flight.committed(seq);
            let resume = in_flight.resume_point();
            let durable = journal.commit_at(&key, seq, snapshot, outputs, &run_id, resume);
            let report = report(Vec::new());
            let durable = async move {
                durable.await.map(|committed| match report {
                    Some(report) => Released::Report(RunReport {
                        outputs: committed.outputs,
                        first_output: Some(committed.first_output),
                        ..report
                    }),
                    None => Released::Outputs(committed.outputs),
                })
            };
            place.send(Box::pin(durable));
        }
    }
    memory.short_term
}

/// A commit on its way to disk, resolving to what it releases.
pub(super) type Release =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Released, JournalError>> + Send>>;

/// What a committed run releases: its outputs, or (when the runtime
/// reports runs) its report, which carries them.
pub(super) enum Released {
    Outputs(Vec<Event>),
    Report(RunReport),
}

/// Releases committed outputs in commit order; a failed commit releases
/// nothing more and stops intake (a restart re-runs what was not committed).
pub(super) async fn release_committed(shared: Arc<Shared>, mut releases: mpsc::Receiver<Release>) {
    while let Some(durable) = releases.recv().await {
        if shared.fatal.lock().expect("fatal lock").is_some() {
            continue;
        }
        match durable.await {
            Ok(Released::Outputs(outputs)) => {
                for event in outputs {
                    deliver(&shared, event).await;
                }
            }
            Ok(Released::Report(report)) => send_report(&shared, report).await,
            Err(e) => {
                tracing::error!(error = %e, "cannot commit a run; taking no more input");
                shared.stop_intake(|| e.to_string());
            }
        }
    }
}

/// Sends an output or error event now, or holds it until the run commits
/// or is reported.
async fn release(
    shared: &Shared,
    observer: &mut RunObserver,
    held: &mut Option<Vec<Event>>,
    event: Event,
) {
    observer.released(&event);
    match held {
        Some(held) => held.push(event),
        None => deliver(shared, event).await,
    }
}

/// Counts an output or error event going out.
fn count_out(shared: &Shared, event: &Event) {
    let counter = if event.event_type == types::ERROR {
        &shared.counters.error_events
    } else {
        &shared.counters.outputs
    };
    counter.fetch_add(1, Relaxed);
}

/// Sends a run's report, its outputs counted as gone out (they go out in
/// it).
async fn send_report(shared: &Shared, report: RunReport) {
    report.outputs.iter().for_each(|e| count_out(shared, e));
    if let Some(reports) = &shared.reports {
        let _ = reports.send(report).await;
    }
}

/// Sends an output or error event to the run's receiver.
async fn deliver(shared: &Shared, event: Event) {
    count_out(shared, &event);
    if shared.outputs.send(event).await.is_err() {
        shared.counters.outputs_discarded.fetch_add(1, Relaxed);
    }
}

fn error_event(
    action: &ActionPlan,
    event: &Event,
    index: usize,
    kind: &str,
    details: Value,
) -> Event {
    let mut payload = json!({
        "error": kind,
        "action": action.name,
        "key": event.key,
        "event_id": event.id,
        "event_type": event.event_type,
    });
    if let (Value::Object(p), Value::Object(d)) = (&mut payload, details) {
        p.extend(d);
    }
    Event {
        id: event::derived_id(&event.id, &format!("{}!error", action.name), index),
        event_type: types::ERROR.to_string(),
        key: event.key.clone(),
        payload,
        upstream_id: Some(event.id.clone()),
        upstream_action: Some(action.name.clone()),
        attributes: BTreeMap::new(),
    }
}

fn failure_event(action: &ActionPlan, event: &Event, failure: &Failure) -> Event {
    error_event(action, event, 0, failure.kind(), failure.details())
}

fn depth_error(shared: &Shared, action: &ActionPlan, event: &Event, dropped: &Event) -> Event {
    let max_depth = shared.settings.max_depth;
    error_event(
        action,
        event,
        1,
        "depth-limit",
        json!({
            "message": format!(
                "routing loop cut: the `{}` event emitted by `{}` would be hop {} of this run (max_depth {max_depth})",
                dropped.event_type, action.name, max_depth + 1
            ),
            "dropped_event_type": dropped.event_type,
            "max_depth": max_depth,
        }),
    )
}

/// What one agent run has used of its budget (`max_run_*`): however an
/// action fans out, a run takes bounded work and memory.
#[derive(Default)]
struct RunBudget {
    tasks: usize,
    events: usize,
    bytes: usize,
}

/// The run setting a run reached, and what it was doing.
struct RunCut {
    setting: &'static str,
    value: usize,
    detail: String,
}

impl RunBudget {
    /// Counts a task about to start; the cut if the run may start no more.
    fn start_task(&mut self, settings: &RuntimeSettings) -> Option<RunCut> {
        self.tasks += 1;
        (self.tasks > settings.max_run_tasks).then(|| RunCut {
            setting: "max_run_tasks",
            value: settings.max_run_tasks,
            detail: format!("task #{} of the run", self.tasks),
        })
    }

    /// Counts what a task emitted and wrote; the cut if that overran.
    fn spend(&mut self, settings: &RuntimeSettings, events: usize, bytes: usize) -> Option<RunCut> {
        self.events += events;
        self.bytes += bytes;
        if self.events > settings.max_run_events {
            return Some(RunCut {
                setting: "max_run_events",
                value: settings.max_run_events,
                detail: format!("{} events emitted in the run", self.events),
            });
        }
        (self.bytes > settings.max_run_bytes).then(|| RunCut {
            setting: "max_run_bytes",
            value: settings.max_run_bytes,
            detail: format!("{} bytes emitted and written in the run", self.bytes),
        })
    }
}

fn run_limit_error(
    shared: &Shared,
    observer: &mut RunObserver,
    action: &ActionPlan,
    event: &Event,
    cut: RunCut,
) -> Event {
    observer.cut(action, cut.setting);
    tracing::warn!(key = %event.key, setting = cut.setting, "agent run cut by its budget");
    *shared
        .counters
        .runs_cut
        .lock()
        .expect("counter lock")
        .entry(cut.setting)
        .or_default() += 1;
    error_event(
        action,
        event,
        2,
        "run-limit",
        json!({
            "message": format!(
                "agent run cut: runtime setting `{}` ({}) reached at {}; the rest of the run was dropped",
                cut.setting, cut.value, cut.detail
            ),
            "limit": cut.setting,
            "value": cut.value,
        }),
    )
}

fn to_wit(event: &Event) -> WitEvent {
    WitEvent {
        id: event.id.clone(),
        event_type: event.event_type.clone(),
        key: event.key.clone(),
        // `to_string` writes through `Display`'s formatter, which checks
        // every piece it writes for UTF-8; serde_json writes bytes straight.
        payload: serde_json::to_string(&event.payload).expect("JSON values serialise"),
        upstream_id: event.upstream_id.clone(),
        attributes: event
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}
