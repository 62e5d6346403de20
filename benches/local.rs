//! The embedded provider through the whole runtime: SmolLM2-135M generation
//! tokens/s and MiniLM sentences/s on this machine.
//!
//! `cargo bench --bench local` (runs `scripts/fetch-models` and
//! `scripts/build-skills` first; `CANDLE_NUM_THREADS` defaults to 1 through
//! `.cargo/config.toml`).

use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Instant;
use weir::event::types;
use weir::{ActionBuilder, Agent, AgentPlan, Event, Runtime};

fn script(repo: &std::path::Path, name: &str) {
    let status = std::process::Command::new(repo.join("scripts").join(name))
        .status()
        .expect("run a setup script");
    assert!(status.success(), "{name} failed");
}

/// Runs `events` on one key (so one after another) and returns the outputs.
async fn run(plan: std::sync::Arc<AgentPlan>, events: Vec<Event>) -> Vec<Value> {
    let mut run = Runtime::shared(plan).start();
    for e in events {
        run.events.send(e).await.unwrap();
    }
    run.events.close();
    let mut out = Vec::new();
    while let Some(e) = run.outputs.recv().await {
        assert_eq!(e.event_type, types::OUTPUT, "{}", e.payload);
        out.push(e.payload);
    }
    run.finish().await.unwrap();
    out
}

async fn bench() -> anyhow::Result<()> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    script(&repo, "fetch-models");
    script(&repo, "build-skills");
    let models = weir::agent::models_dir();
    let agent = Agent::builder("local-bench")
        .component("m", repo.join("build/components/guest_misbehave.wasm"))
        .resource("local", "chat-model-connection", json!({ "provider": "local" }))
        .resource(
            "smol",
            "chat-model",
            json!({ "connection": "local", "model_path": models.join("SmolLM2-135M-Instruct.Q4_1.gguf") }),
        )
        .resource("embeddings", "embedding-model-connection", json!({ "provider": "local" }))
        .resource(
            "minilm",
            "embedding-model",
            json!({ "connection": "embeddings", "model_path": models.join("all-minilm-l6-v2") }),
        )
        .action(ActionBuilder::new("ask", "m").listen(types::INPUT).model("smol"))
        .action(ActionBuilder::new("embed", "m").listen("embed").model("minilm"))
        .build();
    let plan = std::sync::Arc::new(AgentPlan::from_agent(&agent).await?);
    println!(
        "CANDLE_NUM_THREADS={}",
        std::env::var("CANDLE_NUM_THREADS").unwrap_or_else(|_| "unset".into())
    );

    let ask = |tokens: u32| {
        Event::input(
            "k",
            json!({ "model": "smol", "question": "Write a long story about a dragon.",
                    "options": { "max_tokens": tokens, "temperature": 0.0 } }),
        )
    };
    // Load the model and warm up.
    run(plan.clone(), vec![ask(4)]).await;
    let rounds = 5;
    let started = Instant::now();
    let outputs = run(plan.clone(), (0..rounds).map(|_| ask(64)).collect()).await;
    let elapsed = started.elapsed().as_secs_f64();
    let generated: u64 = outputs
        .iter()
        .map(|p| p["output_tokens"].as_u64().unwrap())
        .sum();
    let prompt: u64 = outputs
        .iter()
        .map(|p| p["input_tokens"].as_u64().unwrap())
        .sum();
    println!(
        "| SmolLM2-135M, {rounds} requests of {} prompt + 64 generated tokens, greedy | {:.1} generated tokens/s end to end ({:.2} s per request) |",
        prompt / rounds,
        generated as f64 / elapsed,
        elapsed / rounds as f64
    );

    let sentences: Vec<String> = (0..32)
        .map(|i| format!("Sentence number {i} is about agents that run in WebAssembly sandboxes."))
        .collect();
    let embed = |texts: &[String]| {
        Event::input("k", json!({ "model": "minilm", "texts": texts })).with_type("embed")
    };
    run(plan.clone(), vec![embed(&sentences[..1])]).await;
    let started = Instant::now();
    run(plan.clone(), vec![embed(&sentences)]).await;
    let batch = started.elapsed().as_secs_f64();
    let started = Instant::now();
    run(plan.clone(), sentences.chunks(1).map(embed).collect()).await;
    let single = started.elapsed().as_secs_f64();
    println!(
        "| all-MiniLM-L6-v2, 32 sentences in one call | {:.0} sentences/s |",
        32.0 / batch
    );
    println!(
        "| all-MiniLM-L6-v2, 32 sentences one call each | {:.0} sentences/s |",
        32.0 / single
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench())
}
