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

mod agent;
mod api;
mod listen;
mod outputs;
mod recent;
mod runs;
mod stream;
mod tls;
mod view;

use crate::journal::Journal;
use crate::observe::telemetry::Telemetry;
use crate::plan::AgentPlan;
use crate::runtime::{RunError, RunSummary};
pub use agent::Reloaded;
use agent::{ServedAgent, Submitted};
pub use listen::ListenSettings;
use std::collections::BTreeMap;
use std::sync::Arc;
pub use tls::TlsFiles;

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
    /// 1,000): their event-log records, kept in memory. 0 keeps none and
    /// writes no records (observing runs costs some CPU: see
    /// BENCHMARKS.md); the web view then lists no runs and counts nothing.
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
                // A changed agent takes its journal over once the old one's
                // work is done (the directory is the agent's, by name).
                Some(dir) => Some(Journal::open_adopting(
                    &dir.join(&name),
                    &plan.fingerprint(),
                )?),
                None => None,
            };
            let agent =
                ServedAgent::start(Arc::new(plan), journal, &settings, telemetry.clone()).await?;
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
        let mut summaries = BTreeMap::new();
        for (name, agent) in &self.agents {
            if let Some(summary) = agent.finish().await {
                summaries.insert(name.clone(), summary);
            }
        }
        summaries
    }

    /// Serves each of `plans` that differs from the plan served under its
    /// name (a changed manifest, component or skill): the runs taken
    /// before finish on the old plan, then the new one serves, with the
    /// memory, journal and outputs the old one left. A plan for an agent
    /// not served is an error (a service serves the agents it started
    /// with).
    pub async fn reload(
        &self,
        plans: Vec<AgentPlan>,
    ) -> BTreeMap<String, Result<Reloaded, RunError>> {
        let mut reloaded = BTreeMap::new();
        for plan in plans {
            let name = plan.name.clone();
            let done = match self.agents.get(&name) {
                Some(agent) => agent.reload(plan).await,
                None => Err(RunError::Aborted(format!(
                    "no agent `{name}` is served: a service reloads the agents it started with"
                ))),
            };
            reloaded.insert(name, done);
        }
        reloaded
    }
}
