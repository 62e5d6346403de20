//! One served agent: its runtime (replaced on reload), the intake events
//! go through, and what outlives a runtime: its outputs, its runs, the web
//! view's records and its journal.
//!
//! A reload of a changed plan lets the runs taken so far finish on the old
//! plan (submits meanwhile are answered "reloading, try again"), then
//! starts the new plan's runtime with the memory the old one left, the same
//! journal (stamped with the new plan) and the same output numbering.

use super::ServiceSettings;
use super::outputs::OutputLog;
use super::recent::RecentRuns;
use super::runs::{Ended, Known, RunBook};
use crate::event::Event;
use crate::journal::{InputPosition, Journal, JournalError};
use crate::observe::eventlog::EventLog;
use crate::observe::telemetry::Telemetry;
use crate::plan::AgentPlan;
use crate::runtime::{EventSender, RunError, RunReport, RunSummary, Runtime};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;

/// Run reports taken from the runtime at once, at most.
const REPORTS_AT_ONCE: usize = 256;

/// One agent of a service.
pub(super) struct ServedAgent {
    /// The plan served, and its digest.
    plan: Mutex<(Arc<AgentPlan>, String)>,
    pub(super) intake: Mutex<Intake>,
    pub(super) outputs: Arc<OutputLog>,
    /// Runs submitted and the latest ended.
    pub(super) runs: Arc<RunBook>,
    /// The latest runs' event-log records, for the web view.
    pub(super) recent: Arc<RecentRuns>,
    /// The running runtime; held across a reload or the finish, so that
    /// one happens at a time.
    running: tokio::sync::Mutex<Option<Running>>,
    telemetry: Option<Arc<Telemetry>>,
}

/// Where events go in: the runtime's intake (none while reloading or once
/// finished), the agent's journal (under a state directory), and the last
/// input sequence number given.
pub(super) struct Intake {
    pub(super) events: Option<EventSender>,
    pub(super) journal: Option<Arc<Journal>>,
    seq: u64,
    /// A reload is under way: submits are to come back shortly.
    pub(super) reloading: bool,
}

/// A runtime running: ends with its summary and the memory it leaves.
type Running = JoinHandle<Result<(RunSummary, BTreeMap<String, Value>), RunError>>;

/// What came of submitting one event.
pub(super) enum Submitted {
    /// Taken; on disk once the future resolves (with a journal).
    Taken(Option<Durable>),
    /// A run of this id and content was taken before: not run again.
    Again(Option<Durable>),
    /// A run of this id was taken for another event.
    Conflict,
}

/// Resolves once what was submitted is on disk.
pub(super) type Durable = std::pin::Pin<Box<dyn Future<Output = Result<(), JournalError>> + Send>>;

/// What a reload did to an agent.
#[derive(Debug, Clone, PartialEq)]
pub enum Reloaded {
    /// The plan is the same (manifest, components and grants): nothing to do.
    Unchanged,
    /// The new plan serves from now on; the runs taken before finished on
    /// the old one.
    Replaced,
}

impl ServedAgent {
    /// Starts `plan`'s runtime, restoring what `journal` kept: outputs
    /// (with their numbers), the runs it remembers, and the accepted events
    /// that had not run, queued again in their order before anything new.
    pub(super) async fn start(
        plan: Arc<AgentPlan>,
        journal: Option<Arc<Journal>>,
        settings: &ServiceSettings,
        telemetry: Option<Arc<Telemetry>>,
    ) -> anyhow::Result<ServedAgent> {
        let agent = ServedAgent {
            plan: Mutex::new((plan.clone(), digest(&plan))),
            intake: Mutex::new(Intake {
                events: None,
                journal: journal.clone(),
                seq: journal.as_ref().map_or(0, |j| j.last_seq()),
                reloading: false,
            }),
            outputs: Arc::new(OutputLog::new(settings.kept_outputs)),
            runs: Arc::new(RunBook::new(settings.kept_outputs)),
            recent: Arc::new(RecentRuns::new(settings.kept_runs, settings.kept_run_bytes)),
            running: tokio::sync::Mutex::default(),
            telemetry,
        };
        let (events, running) = agent.launch(&plan, journal.clone(), None)?;
        if let Some(journal) = &journal {
            agent.restore(journal, &events).await?;
        }
        agent.intake.lock().expect("intake lock").events = Some(events);
        *agent.running.lock().await = Some(running);
        Ok(agent)
    }

    /// The plan served now, and its digest (see [`digest`]).
    pub(super) fn plan(&self) -> (Arc<AgentPlan>, String) {
        self.plan.lock().expect("plan lock").clone()
    }

    /// Starts a runtime for `plan` (with `memory` to start from, when there
    /// is no journal to restore it from) whose runs feed this agent's
    /// outputs, runs and records.
    fn launch(
        &self,
        plan: &Arc<AgentPlan>,
        journal: Option<Arc<Journal>>,
        memory: Option<BTreeMap<String, Value>>,
    ) -> anyhow::Result<(EventSender, Running)> {
        let mut runtime = Runtime::shared(plan.clone()).with_run_reports();
        // The web view's event log: in memory, bounded, no file (none when
        // no run is to be kept: it is most of what a run costs to observe).
        if self.recent.keeps_runs() {
            let log = EventLog::tapped(&plan.event_log, &plan.name, self.recent.clone());
            runtime = runtime.with_event_log(Arc::new(log));
        }
        if let Some(telemetry) = &self.telemetry {
            runtime = runtime.with_telemetry(telemetry);
        }
        if let Some(journal) = &journal {
            runtime = runtime.with_journal(journal.clone());
        }
        if let Some(memory) = memory {
            // What the runtime before this one left (newer than what the
            // journal held when it was opened).
            runtime = runtime.with_memory(memory)?;
        }
        let mut handle = runtime.start();
        let events = handle.events.clone();
        handle.events.close();
        // Outputs come in the runs' reports (with their journal numbers).
        let mut reports = handle.runs.take().expect("the runtime reports runs");
        let (kept, book, viewed) = (self.outputs.clone(), self.runs.clone(), self.recent.clone());
        let reported = tokio::spawn(async move {
            // Every report waiting is taken at once: the streams and the
            // waiters are woken once for them all.
            let mut ended = Vec::with_capacity(REPORTS_AT_ONCE);
            while reports.recv_many(&mut ended, REPORTS_AT_ONCE).await > 0 {
                let mut outputs = Vec::new();
                let mut runs = Vec::with_capacity(ended.len());
                for report in ended.drain(..) {
                    viewed.ended(&report);
                    let RunReport {
                        run,
                        key,
                        seq,
                        outputs: released,
                        first_output,
                    } = report;
                    // One copy of each output, for the log and the run book.
                    let released: Vec<Arc<Event>> = released.into_iter().map(Arc::new).collect();
                    outputs.extend(released.iter().enumerate().map(|(n, event)| {
                        (first_output.map(|first| first + n as u64), event.clone())
                    }));
                    runs.push((
                        run,
                        Ended {
                            key,
                            seq,
                            outputs: released,
                        },
                    ));
                }
                let dropped = kept.extend(outputs);
                let forgotten = book.ended(runs);
                if let Some(journal) = &journal {
                    journal.delivered(dropped);
                    journal.forget(forgotten);
                }
            }
        });
        let running = tokio::spawn(async move {
            let ended = handle.finish_with_memory().await;
            let _ = reported.await;
            ended
        });
        Ok((events, running))
    }

    /// Takes back what `journal` kept: outputs, remembered runs, and the
    /// accepted events that had not run (sent to `events` again).
    async fn restore(&self, journal: &Journal, events: &EventSender) -> anyhow::Result<()> {
        journal.delivered(
            self.outputs
                .restore(journal.outputs_numbered(), journal.outbox()),
        );
        let mut forgotten = Vec::new();
        for accepted in journal.accepted() {
            match &accepted.event {
                Some(event) => {
                    self.runs
                        .submitted(&accepted.id, accepted.digest, accepted.seq);
                    events
                        .send_at(event.clone(), InputPosition::numbered(accepted.seq))
                        .await?;
                }
                None => {
                    let numbers = accepted.outputs.clone().unwrap_or_default();
                    let kept = self.outputs.since(
                        numbers.start.saturating_sub(1),
                        (numbers.end - numbers.start) as usize,
                    );
                    let ended = Ended {
                        key: accepted.key.clone(),
                        seq: accepted.seq,
                        outputs: kept
                            .outputs
                            .into_iter()
                            .filter(|(n, _)| numbers.contains(n))
                            .map(|(_, event)| event)
                            .collect(),
                    };
                    let id = accepted.id.clone();
                    forgotten.extend(self.runs.remembered(id, ended, accepted.digest));
                }
            }
        }
        journal.forget(forgotten);
        Ok(())
    }

    /// The intake, while it is open.
    pub(super) fn events(&self) -> Result<EventSender, RunError> {
        self.intake
            .lock()
            .expect("intake lock")
            .events
            .clone()
            .ok_or(RunError::InputClosed)
    }

    /// Takes `event` if the intake has room and its id is new; one seen
    /// before with the same content is a retry, taken once.
    pub(super) fn submit(&self, event: Event) -> Result<Submitted, RunError> {
        let digest = event.content_digest();
        let mut intake = self.intake.lock().expect("intake lock");
        let Intake {
            events,
            journal,
            seq,
            ..
        } = &mut *intake;
        let Some(events) = events else {
            return Err(RunError::InputClosed);
        };
        match self.runs.known(&event.id, digest) {
            Known::No => {}
            // On disk once everything queued before is.
            Known::Same => return Ok(Submitted::Again(journal.as_ref().map(synced))),
            Known::Other => return Ok(Submitted::Conflict),
        }
        let place = events.try_reserve(&event)?;
        *seq += 1;
        let seq = *seq;
        self.runs.submitted(&event.id, digest, seq);
        // Recorded before the runtime can run it, so its commit follows.
        let durable = journal
            .as_ref()
            .map(|journal| Box::pin(journal.accept(seq, &event)) as Durable);
        place.send_at(event, seq);
        Ok(Submitted::Taken(durable))
    }

    /// Whether a reload is under way.
    pub(super) fn reloading(&self) -> bool {
        self.intake.lock().expect("intake lock").reloading
    }

    /// Serves `plan` from now on if it differs from the plan served: the
    /// runs taken so far finish on the old plan first (submits meanwhile
    /// are answered "reloading"); the new runtime starts from the memory
    /// they leave, with the same journal and output numbering.
    pub(super) async fn reload(&self, plan: AgentPlan) -> Result<Reloaded, RunError> {
        let mut running = self.running.lock().await;
        let Some(old) = running.take() else {
            return Err(RunError::InputClosed);
        };
        let new = digest(&plan);
        if new == self.plan().1 {
            *running = Some(old);
            return Ok(Reloaded::Unchanged);
        }
        let journal = {
            let mut intake = self.intake.lock().expect("intake lock");
            intake.reloading = true;
            intake.events = None;
            intake.journal.clone()
        };
        let left = old
            .await
            .map_err(|e| RunError::Aborted(e.to_string()))
            .and_then(|ended| ended);
        let plan = Arc::new(plan);
        // The old runtime's memory is the newest; with a journal it is on
        // disk too (every run and reset was committed before it ended).
        let launched = left.and_then(|(_, memory)| {
            if let Some(journal) = &journal {
                journal.stamp(&plan.fingerprint());
            }
            self.launch(&plan, journal, Some(memory))
                .map_err(|e| RunError::Aborted(e.to_string()))
        });
        let mut intake = self.intake.lock().expect("intake lock");
        intake.reloading = false;
        let (events, started) = launched?;
        intake.events = Some(events);
        drop(intake);
        *running = Some(started);
        *self.plan.lock().expect("plan lock") = (plan, new);
        Ok(Reloaded::Replaced)
    }

    /// Takes no more events, waits for the runs taken, lets the journal go;
    /// the runtime's summary (none if already finished).
    pub(super) async fn finish(&self) -> Option<Result<RunSummary, RunError>> {
        let mut running = self.running.lock().await;
        self.intake.lock().expect("intake lock").events.take();
        let old = running.take()?;
        let ended = match old.await {
            Ok(ended) => ended.map(|(summary, _)| summary),
            Err(e) => Err(RunError::Aborted(e.to_string())),
        };
        self.outputs.close();
        let journal = self.intake.lock().expect("intake lock").journal.take();
        if let Some(journal) = journal {
            // The last handle: its writer finishes and unlocks.
            let _ = tokio::task::spawn_blocking(move || drop(journal)).await;
        }
        Some(ended)
    }
}

/// A digest of everything a plan says (its actions, components, grants,
/// resources, settings): a reload with the same digest changes nothing.
/// The journal's fingerprint is narrower (it leaves out what a recorded
/// run does not depend on, such as a model's endpoint).
fn digest(plan: &AgentPlan) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(plan.to_json().as_bytes()))
}

/// Resolves once every write the journal has queued is on disk.
fn synced(journal: &Arc<Journal>) -> Durable {
    let journal = journal.clone();
    Box::pin(async move { journal.sync().await })
}
