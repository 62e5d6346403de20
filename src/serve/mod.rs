//! `weir serve`: agents as a long-running HTTP service. Events are
//! submitted over HTTP (one, a JSON array, or JSON lines) and outputs are
//! streamed as Server-Sent Events a client resumes with `Last-Event-ID`;
//! health, readiness and `/metrics` for operators.
//!
//! [`Service`] is the library type: start it with the agents' plans and
//! mount [`Service::router`] in any axum app (`weir serve` serves it
//! alone). The HTTP surface is in `api`, the outputs kept per agent in
//! `outputs`.

mod api;
mod outputs;
mod runs;

use crate::observe::telemetry::Telemetry;
use crate::plan::AgentPlan;
use crate::runtime::{EventSender, RunError, RunSummary, Runtime};
use outputs::OutputLog;
use runs::RunBook;
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
}

impl Default for ServiceSettings {
    fn default() -> Self {
        ServiceSettings {
            token: None,
            admin_token: None,
            max_body_bytes: 16 << 20,
            kept_outputs: 10_000,
            body_timeout: std::time::Duration::from_secs(30),
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
    /// Taken away when the service finishes: no more events.
    events: std::sync::Mutex<Option<EventSender>>,
    outputs: Arc<OutputLog>,
    /// Runs submitted and the latest ended.
    runs: Arc<RunBook>,
    /// Ends when the runtime has finished.
    done: std::sync::Mutex<Option<tokio::task::JoinHandle<Result<RunSummary, RunError>>>>,
}

impl ServedAgent {
    /// The intake, while it is open.
    fn events(&self) -> Result<EventSender, RunError> {
        self.events
            .lock()
            .expect("intake lock")
            .clone()
            .ok_or(RunError::InputClosed)
    }

    /// Queues `event` if the intake has room.
    fn try_send(&self, event: crate::Event) -> Result<(), RunError> {
        let id = event.id.clone();
        // Known before it can end; withdrawn if not taken, unless a run
        // of that id was pending already.
        let added = self.runs.submitted(&id);
        let sent = match &*self.events.lock().expect("intake lock") {
            Some(events) => events.try_send(event),
            None => Err(RunError::InputClosed),
        };
        if sent.is_err() && added {
            self.runs.withdrawn(&id);
        }
        sent
    }
}

impl Service {
    /// Starts a runtime per plan (on the current tokio runtime). Agents
    /// are served under their names, which must differ.
    pub fn start(
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
            let plan = Arc::new(plan);
            let mut runtime = Runtime::shared(plan.clone()).with_run_reports();
            if let Some(telemetry) = &telemetry {
                runtime = runtime.with_telemetry(telemetry);
            }
            let mut handle = runtime.start();
            let events = handle.events.clone();
            handle.events.close();
            let outputs = Arc::new(OutputLog::new(settings.kept_outputs));
            let mut received =
                std::mem::replace(&mut handle.outputs, tokio::sync::mpsc::channel(1).1);
            let runs = Arc::new(RunBook::new(settings.kept_outputs));
            let mut reports = handle.runs.take().expect("the runtime reports runs");
            let book = runs.clone();
            tokio::spawn(async move {
                while let Some(report) = reports.recv().await {
                    book.ended(report);
                }
            });
            let kept = outputs.clone();
            let done = tokio::spawn(async move {
                while let Some(event) = received.recv().await {
                    kept.push(event);
                }
                kept.close();
                handle.finish().await
            });
            agents.insert(
                name,
                ServedAgent {
                    plan,
                    events: std::sync::Mutex::new(Some(events)),
                    outputs,
                    runs,
                    done: std::sync::Mutex::new(Some(done)),
                },
            );
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
    /// taken finish, and returns each agent's summary (once; later calls
    /// return none).
    pub async fn finish(&self) -> BTreeMap<String, Result<RunSummary, RunError>> {
        for agent in self.agents.values() {
            agent.events.lock().expect("intake lock").take();
        }
        let mut summaries = BTreeMap::new();
        for (name, agent) in &self.agents {
            let Some(done) = agent.done.lock().expect("done lock").take() else {
                continue;
            };
            let summary = match done.await {
                Ok(summary) => summary,
                Err(e) => Err(RunError::Aborted(e.to_string())),
            };
            summaries.insert(name.clone(), summary);
        }
        summaries
    }
}
