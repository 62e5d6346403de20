//! Embedding weir in a Rust service: build an agent in code, compile its
//! plan, feed events and receive outputs asynchronously.
//!
//! Build the example components first (`scripts/build-skills`), then:
//! `cargo run --example embed`.

use serde_json::json;
use weir::event::types;
use weir::{ActionBuilder, Agent, AgentPlan, Event, Runtime};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let components = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("build/components");
    anyhow::ensure!(
        components.join("skill_tokenizer.wasm").exists(),
        "run scripts/build-skills first: no components in {}",
        components.display()
    );

    // The same agent as examples/word-stats/agent.toml, built in code.
    let agent = Agent::builder("word-stats")
        .component("tokenizer", components.join("skill_tokenizer.wasm"))
        .component("stats", components.join("skill_word_stats.wasm"))
        .action(
            ActionBuilder::new("tokenize", "tokenizer")
                .listen(types::INPUT)
                .config("min_length", json!(2)),
        )
        .action(ActionBuilder::new("count", "stats").listen("words_tokenized"))
        .config("top", json!(2))
        .build();
    let plan = AgentPlan::from_agent(&agent).await?;

    let mut run = Runtime::new(plan).start();
    // Feed from another task while this one receives: the input channel is
    // bounded, so a producer and a consumer run side by side.
    let events = run.events.clone();
    run.events.close();
    let producer = tokio::spawn(async move {
        for (key, text) in [
            ("ada", "Analytical engines weave algebraic patterns"),
            ("alan", "Machines can think about thinking machines"),
            ("ada", "Patterns of patterns"),
        ] {
            events
                .send(Event::input(key, json!({ "text": text })))
                .await?;
        }
        anyhow::Ok(())
    });

    while let Some(output) = run.outputs.recv().await {
        let p = &output.payload;
        println!(
            "{}: {} words, {} in total, top {}",
            output.key, p["words"], p["total_words"], p["top_words"]
        );
    }
    producer.await??;
    let (summary, memory) = run.finish_with_memory().await?;
    eprint!("{summary}");
    println!(
        "ada's short-term memory: {}",
        memory["ada"]["stats"]["total_words"]
    );
    Ok(())
}
