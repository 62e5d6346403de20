//! The runtime: Flink Agents' ActionExecutionOperator for WebAssembly.
//!
//! Input events get a per-key sequence number and queue per key; one agent
//! run per key at a time, different keys concurrently up to
//! `max_concurrency`. An agent run takes one input event, runs one
//! ActionTask per (event, action) routed by `actions_by_event`, and
//! routes what the tasks emit until only output events remain. A routing loop
//! is cut at `max_depth` hops. Sensory memory is cleared after each run.
//!
//! Here the API ([`Runtime`], [`EventSender`], [`RunHandle`]); the
//! scheduler in `scheduler`, one agent run in `run`, one ActionTask in
//! `task`, the counters and summary in `summary`.

mod error;
mod observer;
mod run;
mod scheduler;
mod summary;
mod task;

pub use crate::host::model::ModelStats;
pub use error::RunError;
pub use summary::{ActionSummary, RunSummary};

use crate::RuntimeSettings;
use crate::event::{Event, types};
use crate::host::ModelUsage;
use crate::journal::{InFlight, InputPosition, Journal};
use crate::memory::MemoryObject;
use crate::observe::eventlog::EventLog;
use crate::observe::telemetry::{AgentTelemetry, Telemetry};
use crate::plan::AgentPlan;
use run::{Release, release_committed};
use scheduler::schedule;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use summary::Counters;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

/// Runs an [`AgentPlan`] over events.
pub struct Runtime {
    plan: Arc<AgentPlan>,
    settings: RuntimeSettings,
    memory: HashMap<String, MemoryObject>,
    journal: Option<Arc<Journal>>,
    committed: HashMap<String, u64>,
    event_log: Option<Arc<EventLog>>,
    telemetry: Option<Arc<AgentTelemetry>>,
    reports: bool,
}

/// An agent run as it ended: its input event's id (the run's id), its key,
/// and the output and error events it released, in order. Reported (see
/// [`Runtime::with_run_reports`]) when the run ends; with a journal, once
/// the run is committed.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    /// The run's id: its input event's.
    pub run: String,
    /// Its key.
    pub key: String,
    /// Its input's sequence number.
    pub seq: u64,
    /// What it released: output and error events.
    pub outputs: Vec<Event>,
    /// With a journal: the number the journal gave the first of `outputs`
    /// (the others follow it, one each; see [`Journal::outbox`]).
    pub first_output: Option<u64>,
}

/// Sends input events into a running agent. Dropping every clone (or calling
/// [`EventSender::close`]) ends the input; the run finishes once the events
/// taken so far are done.
#[derive(Clone)]
pub struct EventSender {
    tx: Option<mpsc::Sender<Intake>>,
}

/// What the intake carries: input events, and operations on a key's
/// memory, taken in order with the key's events.
pub(crate) enum Intake {
    Event(Event, Option<InputPosition>),
    Memory {
        key: String,
        reset: bool,
        answer: tokio::sync::oneshot::Sender<Value>,
    },
}

impl EventSender {
    /// Queues `event`; waits while the runtime's intake is full. It is
    /// numbered after the events sent before it. Built-in event types
    /// other than `_input_event` are refused (see
    /// [`types::input_problem`]).
    pub async fn send(&self, event: Event) -> Result<(), RunError> {
        self.queue(event, None).await
    }

    /// Queues `event` from `position` in the input (its sequence number
    /// and line), so that a journal can record where a restart resumes.
    /// Use either this or [`EventSender::send`] for one run, not both.
    pub async fn send_at(&self, event: Event, position: InputPosition) -> Result<(), RunError> {
        self.queue(event, Some(position)).await
    }

    /// Reserves room for `event` in the intake if there is some now
    /// ([`RunError::Full`] if not: a service answers its client "try
    /// later" rather than buffering without bound), so a caller can record
    /// that it took the event (a service's journal) before the runtime can
    /// run it.
    pub fn try_reserve(&self, event: &Event) -> Result<SendPermit<'_>, RunError> {
        self.intake_for(event)?
            .try_reserve()
            .map(SendPermit)
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(()) => RunError::Full,
                mpsc::error::TrySendError::Closed(()) => RunError::Stopped,
            })
    }

    async fn queue(&self, event: Event, position: Option<InputPosition>) -> Result<(), RunError> {
        self.intake_for(&event)?
            .send(Intake::Event(event, position))
            .await
            .map_err(|_| RunError::Stopped)
    }

    /// Key `key`'s short-term memory as it stands once the events sent for
    /// it before have run (null for a key never seen); with `reset`, the
    /// memory is also cleared (the value returned is the one it had). Under
    /// a journal a reset is answered once it is on disk.
    pub async fn memory(&self, key: &str, reset: bool) -> Result<Value, RunError> {
        let tx = self.intake()?;
        let (answer, answered) = tokio::sync::oneshot::channel();
        tx.send(Intake::Memory {
            key: key.to_string(),
            reset,
            answer,
        })
        .await
        .map_err(|_| RunError::Stopped)?;
        answered.await.map_err(|_| RunError::Stopped)
    }

    /// The intake, while this sender is open.
    fn intake(&self) -> Result<&mpsc::Sender<Intake>, RunError> {
        self.tx.as_ref().ok_or(RunError::InputClosed)
    }

    /// The intake, for an `event` that may come from input.
    fn intake_for(&self, event: &Event) -> Result<&mpsc::Sender<Intake>, RunError> {
        if let Some(reason) = types::input_problem(&event.event_type) {
            return Err(RunError::InputRefused {
                key: event.key.clone(),
                reason,
            });
        }
        self.intake()
    }

    /// Ends the input from this sender.
    pub fn close(&mut self) {
        self.tx = None;
    }
}

/// Room for one input event in a runtime's intake
/// ([`EventSender::try_reserve`]).
pub struct SendPermit<'a>(mpsc::Permit<'a, Intake>);

impl SendPermit<'_> {
    /// Queues `event` (the one the room was reserved for) as input number
    /// `seq`: numbers must grow in the order events are queued.
    pub fn send_at(self, event: Event, seq: u64) {
        self.0
            .send(Intake::Event(event, Some(InputPosition::numbered(seq))));
    }
}

/// A running agent: send events, receive outputs, then [`RunHandle::finish`].
pub struct RunHandle {
    /// Input events go here.
    pub events: EventSender,
    /// Output events (`_output_event`) and error events (`_error_event`)
    /// come out here, each key's in the order produced (unless runs are
    /// reported: they then come in the reports, and none here).
    pub outputs: mpsc::Receiver<Event>,
    /// Each run as it ended, with [`Runtime::with_run_reports`].
    pub runs: Option<mpsc::Receiver<RunReport>>,
    done: JoinHandle<RunResult>,
}

/// What the scheduler hands back when a run ends.
struct RunResult {
    summary: RunSummary,
    memory: HashMap<String, MemoryObject>,
    fatal: Option<String>,
}

impl RunHandle {
    /// Closes the input, waits for the run to end and returns its summary.
    /// Outputs not received by then are discarded and counted.
    pub async fn finish(self) -> Result<RunSummary, RunError> {
        Ok(self.finish_with_memory().await?.0)
    }

    /// As [`RunHandle::finish`], also returning each key's short-term memory.
    pub async fn finish_with_memory(
        self,
    ) -> Result<(RunSummary, BTreeMap<String, Value>), RunError> {
        let RunHandle {
            events,
            outputs,
            runs,
            done,
        } = self;
        drop(events);
        drop(outputs);
        drop(runs);
        let result = done.await.map_err(|e| RunError::Aborted(e.to_string()))?;
        if let Some(fatal) = result.fatal {
            return Err(RunError::JournalFailed(fatal));
        }
        let memory = result
            .memory
            .into_iter()
            .map(|(key, object)| (key, object.to_value()))
            .collect();
        Ok((result.summary, memory))
    }
}

impl Runtime {
    /// A runtime for `plan` with the plan's runtime settings.
    pub fn new(plan: AgentPlan) -> Self {
        Self::shared(Arc::new(plan))
    }

    /// A runtime for a plan shared with other runtimes.
    pub fn shared(plan: Arc<AgentPlan>) -> Self {
        Runtime {
            settings: plan.runtime,
            plan,
            memory: HashMap::new(),
            journal: None,
            committed: HashMap::new(),
            event_log: None,
            telemetry: None,
            reports: false,
        }
    }

    /// Writes every event and execution of the run to `log` (see
    /// [`EventLog::open`]; the plan's `event_log` settings say what it
    /// keeps).
    pub fn with_event_log(mut self, log: Arc<EventLog>) -> Self {
        self.event_log = Some(log);
        self
    }

    /// Traces the run's spans and records its metrics with `telemetry` (see
    /// [`Telemetry::new`]); nothing is recorded if it produces nothing.
    pub fn with_telemetry(mut self, telemetry: &Telemetry) -> Self {
        let plan = &self.plan;
        self.telemetry = telemetry.agent(
            &plan.name,
            plan.actions.keys().map(String::as_str),
            plan.actions_by_event.keys().map(String::as_str),
        );
        self
    }

    /// Reports every run as it ends on [`RunHandle::runs`] (for a caller
    /// that waits for an input's outputs, as `weir serve` does). Outputs
    /// then come in the reports, in commit order with a journal, and not
    /// on [`RunHandle::outputs`]. The receiver must be read: runs wait while
    /// 1,024 reports are unread.
    pub fn with_run_reports(mut self) -> Self {
        self.reports = true;
        self
    }

    /// Overrides the runtime settings.
    pub fn with_settings(mut self, settings: RuntimeSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Starts with this short-term memory per key (as
    /// [`RunHandle::finish_with_memory`] returns it), and none for other
    /// keys: after [`Runtime::with_journal`], in place of the memory the
    /// journal held when opened (a runtime taking over from another that
    /// used the same journal).
    pub fn with_memory(mut self, memory: BTreeMap<String, Value>) -> Result<Self, RunError> {
        self.memory.clear();
        for (key, value) in memory {
            let mut object = MemoryObject::new();
            object.set("", value).map_err(|e| RunError::Memory {
                key: key.clone(),
                message: e.to_string(),
            })?;
            self.memory.insert(key, object);
        }
        Ok(self)
    }

    /// Keeps durable state in `journal`: each key's memory and position are
    /// restored from it, input events it has committed are skipped (events
    /// are numbered from 1 in the order sent, or as [`EventSender::send_at`]
    /// says, so a restart must send the same input in the same order, or
    /// resume at [`Journal::resume_point`]), host
    /// calls it recorded are replayed, and every agent run is committed to
    /// it before its outputs are released.
    pub fn with_journal(mut self, journal: Arc<Journal>) -> Self {
        for (key, seq, memory) in journal.keys() {
            let mut object = MemoryObject::new();
            if !memory.is_null() {
                let _ = object.set("", memory.clone());
            }
            self.memory.insert(key.clone(), object);
            self.committed.insert(key.clone(), *seq);
        }
        self.journal = Some(journal);
        self
    }

    /// Starts the run on the current tokio runtime.
    pub fn start(self) -> RunHandle {
        let settings = self.settings;
        let (input_tx, input_rx) = mpsc::channel(settings.max_concurrency.max(64));
        let (output_tx, output_rx) = mpsc::channel(1024);
        let counters = Counters::new(self.plan.actions.keys().cloned());
        let (release_tx, release_rx) = match self.journal {
            Some(_) => {
                // Bounded, so that a slow sink holds up new runs rather
                // than letting committed outputs pile up.
                let (tx, rx) = mpsc::channel(settings.max_pending_events.max(1));
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        if let (Some(journal), Some(metrics)) = (
            &self.journal,
            self.telemetry.as_ref().and_then(|t| t.metrics.as_ref()),
        ) {
            journal.record_metrics(metrics.journal());
        }
        let (reports, runs) = match self.reports {
            true => {
                let (tx, rx) = mpsc::channel(1024);
                (Some(tx), Some(rx))
            }
            false => (None, None),
        };
        let shared = Arc::new(Shared {
            plan: self.plan,
            reports,
            settings,
            counters,
            outputs: output_tx,
            permits: Semaphore::new(settings.max_concurrency),
            usage: Arc::default(),
            fatal: std::sync::Mutex::new(None),
            intake_stopped: tokio::sync::Notify::new(),
            releases: std::sync::Mutex::new(release_tx),
            in_flight: std::sync::Mutex::default(),
            journal: self.journal,
            event_log: self.event_log,
            telemetry: self.telemetry,
        });
        let releaser = release_rx.map(|rx| tokio::spawn(release_committed(shared.clone(), rx)));
        let done = tokio::spawn(schedule(
            shared,
            input_rx,
            self.memory,
            self.committed,
            releaser,
        ));
        RunHandle {
            events: EventSender { tx: Some(input_tx) },
            outputs: output_rx,
            runs,
            done,
        }
    }
}

/// What every agent run of one [`Runtime`] shares.
struct Shared {
    plan: Arc<AgentPlan>,
    settings: RuntimeSettings,
    counters: Counters,
    outputs: mpsc::Sender<Event>,
    /// Where ended runs are reported, with [`Runtime::with_run_reports`].
    reports: Option<mpsc::Sender<RunReport>>,
    permits: Semaphore,
    usage: Arc<ModelUsage>,
    journal: Option<Arc<Journal>>,
    event_log: Option<Arc<EventLog>>,
    telemetry: Option<Arc<AgentTelemetry>>,
    /// Why the run had to stop taking input (the journal failed); set
    /// through [`Shared::stop_intake`].
    fatal: std::sync::Mutex<Option<String>>,
    /// Wakes the scheduler waiting for input when `fatal` is set.
    intake_stopped: tokio::sync::Notify,
    /// Commits waiting to release their outputs, with a journal (taken
    /// away when the last run has ended, which ends the releaser).
    releases: std::sync::Mutex<Option<mpsc::Sender<Release>>>,
    /// Input events taken whose commits are not queued yet, with a journal.
    in_flight: std::sync::Mutex<InFlight>,
}

impl Shared {
    /// The agent's metrics, when they are recorded.
    fn metrics(&self) -> Option<&crate::observe::telemetry::AgentMetrics> {
        self.telemetry.as_ref()?.metrics.as_deref()
    }

    /// Stops intake for `reason` (the first reason stays): the scheduler
    /// takes no more input, even while it waits for some, and the run ends
    /// once what runs is done.
    fn stop_intake(&self, reason: impl FnOnce() -> String) {
        self.fatal
            .lock()
            .expect("fatal lock")
            .get_or_insert_with(reason);
        // A stored permit if the scheduler is not waiting right now.
        self.intake_stopped.notify_one();
    }
}
