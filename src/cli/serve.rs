//! `weir serve`: the agents of the manifests given, served over HTTP until
//! SIGTERM or Ctrl-C, then stopped gracefully (no more events taken, the
//! ones taken finished, their outputs streamed, then exit).

use super::telemetry::TelemetryArgs;
use anyhow::Context as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use weir::serve::{ListenSettings, Reloaded, Service, ServiceSettings, TlsFiles};
use weir::{Agent, AgentPlan};

#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// The agent manifests (TOML) to serve, each under its agent's name.
    #[arg(required = true)]
    agents: Vec<PathBuf>,
    /// Where to listen. Anything but a loopback address needs --token, or
    /// mutual TLS (--tls-client-ca).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Serve HTTPS with this certificate chain (PEM, leaf first).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Mutual TLS: clients must show a certificate signed by one of these
    /// CAs (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// The bearer token clients must send (`Authorization: Bearer TOKEN`).
    #[arg(long, env = "WEIR_SERVE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The bearer token that grants resetting a key's memory (DELETE .../memory).
    #[arg(long, env = "WEIR_SERVE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// The largest request body taken, in bytes.
    #[arg(long, default_value_t = ServiceSettings::default().max_body_bytes)]
    max_body_bytes: usize,
    /// Outputs kept per agent for clients to read or resume from.
    #[arg(long, default_value_t = ServiceSettings::default().kept_outputs)]
    kept_outputs: usize,
    /// Runs kept per agent for the web view (their event-log records, in
    /// memory); 0 keeps none and records nothing.
    #[arg(long, default_value_t = ServiceSettings::default().kept_runs)]
    kept_runs: usize,
    /// The bytes of those records kept per agent at most.
    #[arg(long, default_value_t = ServiceSettings::default().kept_run_bytes)]
    kept_run_bytes: usize,
    /// Keep durable state here (a journal per agent, in a directory named
    /// after it): accepted events are on disk before a submit is answered,
    /// and a restarted service continues where it stopped.
    #[arg(long)]
    state: Option<PathBuf>,
    /// The longest a client may take to send a request body, in seconds (then 408).
    #[arg(long, default_value_t = ServiceSettings::default().body_timeout.as_secs_f64())]
    body_timeout: f64,
    /// The longest a client may take to send a request's headers, and to
    /// keep a connection idle, in seconds (then the connection is closed).
    #[arg(long, default_value_t = ListenSettings::default().header_timeout.as_secs_f64())]
    header_timeout: f64,
    /// Connections served at once; more wait to be accepted.
    #[arg(long, default_value_t = ListenSettings::default().max_connections)]
    max_connections: usize,
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

pub(crate) async fn serve(args: ServeArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::ensure!(
        args.listen.ip().is_loopback() || args.token.is_some() || args.tls_client_ca.is_some(),
        "--listen {} is not a loopback address: give --token (or WEIR_SERVE_TOKEN), or \
         --tls-client-ca for mutual TLS, so that only the clients you choose are served",
        args.listen
    );
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(
            TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: args.tls_client_ca.clone(),
            }
            .server_config()?,
        ),
        _ => None,
    };
    let plans = plan_all(&args.agents).await?;
    let names: Vec<String> = plans.iter().map(|p| p.name.clone()).collect();
    let stop = StopSignal::install()?;
    // The service serves /metrics itself.
    let telemetry = args.telemetry.start_with_prometheus().await?;
    let settings = ServiceSettings {
        token: args.token.clone(),
        admin_token: args.admin_token.clone(),
        max_body_bytes: args.max_body_bytes,
        kept_outputs: args.kept_outputs,
        body_timeout: std::time::Duration::try_from_secs_f64(args.body_timeout)
            .context("--body-timeout is seconds")?,
        state: args.state.clone(),
        kept_runs: args.kept_runs,
        kept_run_bytes: args.kept_run_bytes,
    };
    let service =
        Arc::new(Service::start(plans, settings, Some(telemetry.telemetry.clone())).await?);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen at {}", args.listen))?;
    let bound = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!("weir: serving {} at {scheme}://{bound}", names.join(", "));
    if !bound.ip().is_loopback() && tls.is_none() {
        // Said after the line above, which scripts read for the address.
        eprintln!(
            "weir: warning: {bound} speaks plain HTTP: the token and every event cross the \
             network unencrypted; give --tls-cert and --tls-key, or put weir serve behind a \
             TLS-terminating proxy"
        );
    }
    // Caught from now on: SIGHUP's default is to end the process.
    #[cfg(unix)]
    let reloader = {
        use tokio::signal::unix::{SignalKind, signal};
        let hangups = signal(SignalKind::hangup()).context("cannot catch SIGHUP")?;
        tokio::spawn(reload_on_sighup(
            hangups,
            service.clone(),
            args.agents.clone(),
        ))
    };
    let stopping = service.clone();
    let shutdown = async move {
        stop.wait().await;
        eprintln!("weir: stopping: taking no more events, finishing the ones taken");
        for (name, summary) in stopping.finish().await {
            match summary {
                Ok(summary) => eprint!("agent {name}: {summary}"),
                Err(e) => eprintln!("agent {name}: {e}"),
            }
        }
    };
    let listen = ListenSettings {
        header_timeout: std::time::Duration::try_from_secs_f64(args.header_timeout)
            .context("--header-timeout is seconds")?,
        max_connections: args.max_connections,
        tls,
    };
    service.serve(listener, listen, shutdown).await;
    #[cfg(unix)]
    reloader.abort();
    telemetry.finish().await;
    Ok(std::process::ExitCode::SUCCESS)
}

/// Each manifest's plan (compiled and checked).
async fn plan_all(manifests: &[PathBuf]) -> anyhow::Result<Vec<AgentPlan>> {
    let mut plans = Vec::new();
    for manifest in manifests {
        let agent = Agent::from_manifest(manifest)?;
        plans.push(AgentPlan::from_agent(&agent).await?);
    }
    Ok(plans)
}

/// On SIGHUP, reads the manifests again (and the components and skills
/// they name) and serves each changed agent's new plan once the runs taken
/// on the old one are done. A manifest that no longer plans leaves every
/// agent as it was, and says why.
#[cfg(unix)]
async fn reload_on_sighup(
    mut hangups: tokio::signal::unix::Signal,
    service: Arc<Service>,
    manifests: Vec<PathBuf>,
) {
    while hangups.recv().await.is_some() {
        let plans = match plan_all(&manifests).await {
            Ok(plans) => plans,
            Err(e) => {
                eprintln!("weir: not reloaded, every agent serves as before: {e:#}");
                continue;
            }
        };
        for (name, reloaded) in service.reload(plans).await {
            match reloaded {
                Ok(Reloaded::Unchanged) => eprintln!("weir: reload: agent {name} is unchanged"),
                Ok(Reloaded::Replaced) => eprintln!(
                    "weir: reload: agent {name} serves its new plan (the runs taken before finished on the old one)"
                ),
                Err(e) => eprintln!("weir: reload: agent {name}: {e}"),
            }
        }
    }
}

/// SIGTERM or Ctrl-C (SIGINT), caught from the moment it is made (a
/// signal before the server is up must not kill it).
struct StopSignal {
    #[cfg(unix)]
    signals: [tokio::signal::unix::Signal; 2],
}

impl StopSignal {
    fn install() -> anyhow::Result<StopSignal> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let term = signal(SignalKind::terminate()).context("cannot catch SIGTERM")?;
            let int = signal(SignalKind::interrupt()).context("cannot catch SIGINT")?;
            Ok(StopSignal {
                signals: [term, int],
            })
        }
        #[cfg(not(unix))]
        Ok(StopSignal {})
    }

    async fn wait(self) {
        #[cfg(unix)]
        {
            let [mut term, mut int] = self.signals;
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
