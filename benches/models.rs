//! Many keys waiting on a slow model: throughput against the
//! concurrency/latency limit, and peak RSS.
//!
//! `cargo bench --bench models` (env `WEIR_BENCH_KEYS`, default 1000;
//! `WEIR_BENCH_EVENTS`, default 20000; `WEIR_BENCH_DELAY_MS`, default 200).
//! The model server (OpenAI-compatible, answering after a fixed delay) runs
//! in a child process, so the RSS measured is weir's alone.

#[path = "../tests/it/support/model_server.rs"]
#[allow(dead_code)]
mod model_server;

mod support;

use model_server::{ModelServer, Reply, openai_text};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::{ChildServer, env_usize};
use weir::event::types;
use weir::{
    ActionBuilder, Agent, AgentPlan, Event, Runtime, RuntimeSettings, Sandbox, SandboxConfig,
};

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Child mode: serve until stdin closes, printing the URL first.
async fn serve(delay: Duration) {
    let server = ModelServer::start().await;
    server.fallback(Reply::Delayed(
        delay,
        Box::new(Reply::Json(openai_text("ok", 12, 2))),
    ));
    ChildServer::announce_and_wait(&server.url).await;
}

async fn bench(url: String, keys: usize, events: usize, delay: Duration) -> anyhow::Result<()> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    assert!(
        std::process::Command::new(repo.join("scripts/build-skills"))
            .status()?
            .success()
    );
    let cache = tempfile::tempdir()?;
    let sandbox = std::sync::Arc::new(Sandbox::new(SandboxConfig {
        max_instances: keys as u32 + 16,
        cache_dir: Some(cache.path().to_path_buf()),
        ..SandboxConfig::default()
    })?);
    let agent = Agent::builder("slow-model")
        .component("m", repo.join("build/components/guest_misbehave.wasm"))
        .resource(
            "conn",
            "chat-model-connection",
            json!({ "provider": "openai", "base_url": format!("{url}/v1"), "max_concurrency": keys, "max_retries": 0 }),
        )
        .resource("model", "chat-model", json!({ "connection": "conn", "model": "slow" }))
        .action(ActionBuilder::new("ask", "m").listen(types::INPUT).model("model"))
        .runtime(RuntimeSettings {
            max_concurrency: keys,
            max_pending_events: events,
            ..RuntimeSettings::default()
        })
        .build();
    let plan = AgentPlan::from_agent_in(&agent, sandbox.clone()).await?;
    let rss_before = peak_rss_mib();

    let mut run = Runtime::new(plan).start();
    let sender = run.events.clone();
    run.events.close();
    let started = Instant::now();
    let feeder = tokio::spawn(async move {
        for i in 0..events {
            let event = Event::input(
                format!("key-{}", i % keys),
                json!({ "model": "model", "question": "hi" }),
            );
            sender.send(event).await.unwrap();
        }
    });
    let mut outputs = 0usize;
    while let Some(out) = run.outputs.recv().await {
        assert_eq!(out.event_type, types::OUTPUT, "{}", out.payload);
        outputs += 1;
    }
    let elapsed = started.elapsed();
    feeder.await?;
    let summary = run.finish().await?;
    assert_eq!(outputs, events);
    let limit = keys as f64 / delay.as_secs_f64();
    let rate = events as f64 / elapsed.as_secs_f64();
    println!(
        "| {keys} keys in flight, {events} events, model answers after {} ms | {rate:.0} events/s | limit {limit:.0}/s | {:.1}% of the limit | peak RSS {:.0} MiB (after planning {:.0} MiB) | {} model calls |",
        delay.as_millis(),
        100.0 * rate / limit,
        peak_rss_mib(),
        rss_before,
        summary.models["ask"]["model"].calls
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let delay = Duration::from_millis(env_usize("WEIR_BENCH_DELAY_MS", 200) as u64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if ChildServer::is_child() {
        runtime.block_on(serve(delay));
        return Ok(());
    }
    let server = ChildServer::start()?;
    runtime.block_on(bench(
        server.line.clone(),
        env_usize("WEIR_BENCH_KEYS", 1000),
        env_usize("WEIR_BENCH_EVENTS", 20_000),
        delay,
    ))
}
