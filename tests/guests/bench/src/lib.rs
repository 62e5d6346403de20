//! Benchmark fixture: the side-by-side agents' actions (benches/langs.sh and
//! ../shared/bench/flink-agents-sbs) in Rust, beside the same actions in
//! Python (`tests/python-guests/bench-py`) and JavaScript
//! (`tests/js-guests/bench-js`): upper-case a sentence and count its words.

use serde_json::{Value, json};
use weir_sdk::{Event, Result, emit, emit_output, memory};

fn text_of(event: &Event) -> Result<String> {
    let value: Value = event.payload()?;
    Ok(match value {
        Value::String(text) => text,
        other => other.to_string(),
    })
}

fn single(event: Event) -> Result<()> {
    let text = text_of(&event)?;
    emit_output(
        &json!({ "upper": text.to_uppercase(), "words": text.split_whitespace().count() }),
    )?;
    Ok(())
}

fn first(event: Event) -> Result<()> {
    let text = text_of(&event)?;
    emit(
        "bench_processed",
        &json!({ "upper": text.to_uppercase(), "text": text }),
    )?;
    Ok(())
}

fn second(event: Event) -> Result<()> {
    let value: Value = event.payload()?;
    let words = value["text"]
        .as_str()
        .unwrap_or("")
        .split_whitespace()
        .count();
    emit_output(&json!({ "upper": value["upper"], "words": words }))?;
    Ok(())
}

fn memory(event: Event) -> Result<()> {
    let text = text_of(&event)?;
    let words = text.split_whitespace().count() as u64;
    let stm = memory::short_term();
    let total = stm.get::<u64>("total_words")?.unwrap_or(0) + words;
    stm.set("total_words", &total)?;
    emit_output(&json!({ "upper": text.to_uppercase(), "words": words, "total_words": total }))?;
    Ok(())
}

weir_sdk::actions! {
    /// Input -> output.
    "single" => single,
    /// Input -> `bench_processed`.
    "first" => first,
    /// `bench_processed` -> output.
    "second" => second,
    /// Input -> output, with a running word total in short-term memory.
    "memory" => memory,
}
