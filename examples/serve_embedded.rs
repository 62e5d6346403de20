//! Embedding `weir serve` in your own axum service: the agents' API (and
//! web view) mounted under `/agents` beside the service's own routes, on
//! one listener, stopped gracefully with the rest of the app.
//!
//! Build the example components first (`scripts/build-skills`), then:
//! `cargo run --example serve_embedded` and, from another shell,
//! `curl -s localhost:8090/agents/v1/agents/word-stats/events?wait=5 -H 'content-type: application/json' -d '{"key":"ada","payload":"Patterns of patterns"}'`.
//! With `--once` it submits one event to itself, prints the answer and
//! stops (what the test runs).

use std::sync::Arc;
use weir::serve::{Service, ServiceSettings};
use weir::{Agent, AgentPlan};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let manifest =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/word-stats/agent.toml");
    let plan = AgentPlan::from_agent(&Agent::from_manifest(&manifest)?).await?;

    // The service: one runtime per agent, in memory (set `state` for a
    // journal per agent).
    let service = Arc::new(Service::start(vec![plan], ServiceSettings::default(), None).await?);
    // Your app's routes, and the agents' under /agents.
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "my service\n" }))
        .nest("/agents", service.router());

    let once = std::env::args().any(|a| a == "--once");
    let listener = tokio::net::TcpListener::bind(if once {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:8090"
    })
    .await?;
    let url = format!("http://{}", listener.local_addr()?);
    eprintln!("serving at {url}/ (agents at {url}/agents/v1/agents)");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .into_future(),
    );
    if once {
        let answer = reqwest::Client::new()
            .post(format!("{url}/agents/v1/agents/word-stats/events?wait=30"))
            .json(&serde_json::json!({ "key": "ada", "payload": "Patterns of patterns" }))
            .send()
            .await?
            .text()
            .await?;
        println!("{answer}");
    } else {
        tokio::signal::ctrl_c().await?;
    }
    // Stop taking events, finish the runs taken, then stop serving.
    for (name, summary) in service.finish().await {
        eprint!("{name}: {}", summary?);
    }
    let _ = stop.send(());
    server.await??;
    Ok(())
}
