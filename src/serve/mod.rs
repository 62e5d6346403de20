//! `weir serve`: agents as a long-running HTTP service. Events are
//! submitted over HTTP (one, a JSON array, or JSON lines) and outputs are
//! streamed as Server-Sent Events a client resumes with `Last-Event-ID`;
//! health, readiness and `/metrics` for operators.
//!
//! With a state directory each agent keeps a journal there: a submit is
//! answered only once its events are on disk, an event id seen before (a
//! retried submit) is not run again, outputs keep their numbers and stay
//! until acknowledged or pushed out of the kept window, and a restarted
//! service runs what was accepted and had not run.
//!
//! [`Service`] is the library type: start it with the agents' plans and
//! mount [`Service::router`] in any axum app (`weir serve` serves it
//! alone). The HTTP surface is in `api`, the outputs kept per agent in
//! `outputs`, the web view in `view` (its runs kept in `recent`).

mod api;
mod listen;
mod outputs;
mod recent;
mod runs;
mod view;

use crate::event::Event;
use crate::journal::{InputPosition, Journal, JournalError};
use crate::observe::telemetry::Telemetry;
use crate::plan::AgentPlan;
use crate::runtime::{EventSender, RunError, RunReport, RunSummary, Runtime};
pub use listen::ListenSettings;
use outputs::OutputLog;
use runs::{Known, RunBook};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How a [`Service`] serves.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// The bearer token every `/v1` request must carry (`Authorization:
    /// Bearer TOKEN`); `None` serves anyone who can connect (bind to
    /// loopback then).
    pub token: Option<String>,
    /// The bearer token that grants resetting a key's memory (`DELETE
    /// .../memory`); without one, nobody may.
    pub admin_token: Option<String>,
    /// The largest request body taken, in bytes (default 16 MiB); a larger
    /// one is answered 413.
    pub max_body_bytes: usize,
    /// Outputs kept per agent for clients to read or resume from (default
    /// 10,000): a client further behind misses the oldest, and is told so.
    pub kept_outputs: usize,
    /// The longest a client may take to send a request's body (default
    /// 30 s); a slower one is answered 408 and its connection freed.
    pub body_timeout: std::time::Duration,
    /// Where each agent keeps its journal (in a directory named after it):
    /// accepted events, memory, recorded calls and outputs survive a
    /// crash. `None` keeps everything in memory.
    pub state: Option<std::path::PathBuf>,
    /// Runs kept per agent for the web view and its endpoints (default
    /// 1,000): their event-log records, kept in memory.
    pub kept_runs: usize,
    /// The bytes of those records kept per agent at most (default 32 MiB;
    /// one run keeps at most a quarter of it).
    pub kept_run_bytes: usize,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        ServiceSettings {
            token: None,
            admin_token: None,
            max_body_bytes: 16 << 20,
            kept_outputs: 10_000,
            body_timeout: std::time::Duration::from_secs(30),
            state: None,
            kept_runs: 1000,
            kept_run_bytes: 32 << 20,
        }
    }
}

/// Agents served over HTTP.
pub struct Service {
    agents: BTreeMap<String, ServedAgent>,
    settings: ServiceSettings,
    telemetry: Option<Arc<Telemetry>>,
}

/// One agent of a service: its plan, its running runtime's intake, and
/// its outputs.
struct ServedAgent {
    plan: Arc<AgentPlan>,
    intake: std::sync::Mutex<Intake>,
    outputs: Arc<OutputLog>,
    /// Runs submitted and the latest ended.
    runs: Arc<RunBook>,
    /// The latest runs' event-log records, for the web view.
    recent: Arc<recent::RecentRuns>,
    /// Ends when the runtime has finished.
    done: std::sync::Mutex<Option<tokio::task::JoinHandle<Result<RunSummary, RunError>>>>,
}

/// Where events go in: the runtime's intake and the agent's journal
/// (under a state directory), both let go when the service finishes, and
/// the last input sequence number given.
struct Intake {
    events: Option<EventSender>,
    journal: Option<Arc<Journal>>,
    seq: u64,
}

/// What came of submitting one event.
enum Submitted {
    /// Taken; on disk once the future resolves (with a journal).
    Taken(Option<Durable>),
    /// A run of this id and content was taken before: not run again.
    Again(Option<Durable>),
    /// A run of this id was taken for another event.
    Conflict,
}

/// Resolves once what was submitted is on disk.
type Durable = std::pin::Pin<Box<dyn Future<Output = Result<(), JournalError>> + Send>>;

impl ServedAgent {
    /// The intake, while it is open.
    fn events(&self) -> Result<EventSender, RunError> {
        self.intake
            .lock()
            .expect("intake lock")
            .events
            .clone()
            .ok_or(RunError::InputClosed)
    }

    /// Takes `event` if the intake has room and its id is new; one seen
    /// before with the same content is a retry, taken once.
    fn submit(&self, event: Event) -> Result<Submitted, RunError> {
        let digest = event.content_digest();
        let mut intake = self.intake.lock().expect("intake lock");
        let Intake {
            events,
            journal,
            seq,
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
}

/// Resolves once every write the journal has queued is on disk.
fn synced(journal: &Arc<Journal>) -> Durable {
    let journal = journal.clone();
    Box::pin(async move { journal.sync().await })
}

impl Service {
    /// Starts a runtime per plan (on the current tokio runtime). Agents
    /// are served under their names, which must differ. With
    /// `settings.state`, each agent's journal is opened (or made) there,
    /// and the events it had accepted but not run are queued again first.
    pub async fn start(
        plans: Vec<AgentPlan>,
        settings: ServiceSettings,
        telemetry: Option<Arc<Telemetry>>,
    ) -> anyhow::Result<Service> {
        let mut agents = BTreeMap::new();
        for plan in plans {
            let name = plan.name.clone();
            anyhow::ensure!(
                !agents.contains_key(&name),
                "two agents are named `{name}`: a service serves each agent under its name"
            );
            let journal = match &settings.state {
                Some(dir) => Some(Journal::open(&dir.join(&name), &plan.fingerprint())?),
                None => None,
            };
            let agent =
                serve_agent(Arc::new(plan), journal, &settings, telemetry.as_deref()).await?;
            agents.insert(name, agent);
        }
        Ok(Service {
            agents,
            settings,
            telemetry,
        })
    }

    /// The service's HTTP API, to serve or to mount in another axum app.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        api::router(self.clone())
    }

    /// Takes no more events (submits are answered 503), lets what was
    /// taken finish, lets the state directory go, and returns each agent's
    /// summary (once; later calls return none).
    pub async fn finish(&self) -> BTreeMap<String, Result<RunSummary, RunError>> {
        for agent in self.agents.values() {
            agent.intake.lock().expect("intake lock").events.take();
        }
        // Each journal is let go once its runtime is done with it (the
        // state directory is free for another process then).
        let mut summaries = BTreeMap::new();
        for (name, agent) in &self.agents {
            let Some(done) = agent.done.lock().expect("done lock").take() else {
                continue;
            };
            let summary = match done.await {
                Ok(summary) => summary,
                Err(e) => Err(RunError::Aborted(e.to_string())),
            };
            let journal = agent.intake.lock().expect("intake lock").journal.take();
            if let Some(journal) = journal {
                // The last handle: its writer finishes and unlocks.
                let _ = tokio::task::spawn_blocking(move || drop(journal)).await;
            }
            summaries.insert(name.clone(), summary);
        }
        summaries
    }
}

/// Starts one agent's runtime, restoring what its journal kept: outputs
/// (with their numbers), the runs it remembers, and the accepted events
/// that had not run, queued again in their order before anything new.
async fn serve_agent(
    plan: Arc<AgentPlan>,
    journal: Option<Arc<Journal>>,
    settings: &ServiceSettings,
    telemetry: Option<&Telemetry>,
) -> anyhow::Result<ServedAgent> {
    let mut runtime = Runtime::shared(plan.clone()).with_run_reports();
    // The web view's event log: in memory, bounded, no file.
    let recent = Arc::new(recent::RecentRuns::new(
        settings.kept_runs,
        settings.kept_run_bytes,
    ));
    let log =
        crate::observe::eventlog::EventLog::tapped(&plan.event_log, &plan.name, recent.clone());
    runtime = runtime.with_event_log(Arc::new(log));
    if let Some(telemetry) = telemetry {
        runtime = runtime.with_telemetry(telemetry);
    }
    if let Some(journal) = &journal {
        runtime = runtime.with_journal(journal.clone());
    }
    let mut handle = runtime.start();
    let events = handle.events.clone();
    handle.events.close();
    let outputs = Arc::new(OutputLog::new(settings.kept_outputs));
    let runs = Arc::new(RunBook::new(settings.kept_outputs));
    let mut seq = 0;
    if let Some(journal) = &journal {
        journal.delivered(outputs.restore(journal.outputs_numbered(), journal.outbox()));
        seq = journal.last_seq();
        let mut forgotten = Vec::new();
        for accepted in journal.accepted() {
            match &accepted.event {
                Some(event) => {
                    runs.submitted(&accepted.id, accepted.digest, accepted.seq);
                    events
                        .send_at(event.clone(), InputPosition::numbered(accepted.seq))
                        .await?;
                }
                None => {
                    let numbers = accepted.outputs.clone().unwrap_or_default();
                    let kept = outputs.since(
                        numbers.start.saturating_sub(1),
                        (numbers.end - numbers.start) as usize,
                    );
                    let report = RunReport {
                        run: accepted.id.clone(),
                        key: accepted.key.clone(),
                        seq: accepted.seq,
                        outputs: kept
                            .outputs
                            .iter()
                            .filter(|(n, _)| numbers.contains(n))
                            .map(|(_, event)| (**event).clone())
                            .collect(),
                        first_output: Some(numbers.start),
                    };
                    forgotten.extend(runs.ended(report, Some(accepted.digest)));
                }
            }
        }
        journal.forget(forgotten);
    }
    // Outputs are kept as runs report them (with their journal numbers);
    // the runtime's own output channel only has to be drained.
    let mut reports = handle.runs.take().expect("the runtime reports runs");
    let mut received = std::mem::replace(&mut handle.outputs, tokio::sync::mpsc::channel(1).1);
    let (kept, book, state) = (outputs.clone(), runs.clone(), journal.clone());
    let viewed = recent.clone();
    let reported = tokio::spawn(async move {
        while let Some(report) = reports.recv().await {
            let mut dropped = Vec::new();
            for (n, event) in report.outputs.iter().enumerate() {
                let number = report.first_output.map(|first| first + n as u64);
                dropped.extend(kept.push(number, event.clone()));
            }
            viewed.ended(&report);
            let forgotten = book.ended(report, None);
            if let Some(journal) = &state {
                journal.delivered(dropped);
                journal.forget(forgotten);
            }
        }
        kept.close();
    });
    let done = tokio::spawn(async move {
        while received.recv().await.is_some() {}
        let summary = handle.finish().await;
        let _ = reported.await;
        summary
    });
    Ok(ServedAgent {
        plan,
        intake: std::sync::Mutex::new(Intake {
            events: Some(events),
            journal,
            seq,
        }),
        outputs,
        runs,
        recent,
        done: std::sync::Mutex::new(Some(done)),
    })
}
