//! The runtime through the library API, on real components built from
//! `skills/` and `tests/guests/`.

use crate::support::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use weir::event::types;
use weir::{ActionBuilder, Agent, Event, Runtime, RuntimeSettings};

fn outputs_of<'a>(outputs: &'a [Event], key: &str) -> Vec<&'a Event> {
    outputs.iter().filter(|e| e.key == key).collect()
}

fn errors(outputs: &[Event]) -> Vec<&Event> {
    outputs
        .iter()
        .filter(|e| e.event_type == types::ERROR)
        .collect()
}

/// The tokenizer's rules, to check the word-stats agent independently.
fn reference_words(text: &str, min_length: usize) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .map(|w| w.trim_matches('\''))
        .filter(|w| w.chars().count() >= min_length)
        .map(str::to_lowercase)
        .collect()
}

fn word_stats_builder() -> weir::AgentBuilder {
    Agent::builder("word-stats")
        .component("tokenizer", component("skill_tokenizer.wasm"))
        .component("stats", component("skill_word_stats.wasm"))
        .action(
            ActionBuilder::new("tokenize", "tokenizer")
                .listen(types::INPUT)
                .config("min_length", json!(2)),
        )
        .action(ActionBuilder::new("count", "stats").listen("words_tokenized"))
        .config("top", json!(2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_stats_chain_keeps_running_totals_per_key() {
    let plan = plan(&word_stats_builder().build()).await;
    let sentences = [
        "The cat sat on the mat",
        "A dog, a cat and the bird",
        "It's the cat's mat now",
        "Bird songs at dawn",
    ];
    let keys = ["k1", "k2", "k3"];
    let mut events = Vec::new();
    for round in 0..4 {
        for (i, key) in keys.iter().enumerate() {
            let text = sentences[(round + i) % sentences.len()];
            events.push(Event::input(*key, json!({ "text": text })));
        }
    }
    let (outputs, summary) = run(plan, events.clone()).await;
    assert!(errors(&outputs).is_empty(), "{outputs:#?}");
    assert_eq!(summary.events_in, 12);
    assert_eq!(summary.outputs, 12);
    assert_eq!(summary.action_tasks, 24);

    for key in keys {
        let mine = outputs_of(&outputs, key);
        let inputs: Vec<&Event> = events.iter().filter(|e| e.key == key).collect();
        assert_eq!(mine.len(), inputs.len());
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut total = 0u64;
        for (n, (out, input)) in mine.iter().zip(&inputs).enumerate() {
            let text = input.payload["text"].as_str().unwrap();
            let words = reference_words(text, 2);
            total += words.len() as u64;
            for w in &words {
                *counts.entry(w.clone()).or_default() += 1;
            }
            let p = &out.payload;
            assert_eq!(out.event_type, types::OUTPUT);
            assert_eq!(p["words"], words.len() as u64, "{key} #{n}");
            assert_eq!(p["total_words"], total, "{key} #{n}");
            assert_eq!(p["sentences"], n as u64 + 1);
            assert_eq!(p["distinct_words"], counts.len() as u64);
            // Sensory memory written by `tokenize` is seen by `count` in the same run.
            assert_eq!(p["chars"], text.chars().count() as u64);
            let mut ranked: Vec<(&String, &u64)> = counts.iter().collect();
            ranked.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let top: Vec<Value> = ranked
                .iter()
                .take(2)
                .map(|(w, c)| json!({"word": w, "count": c}))
                .collect();
            assert_eq!(p["top_words"], Value::Array(top));
            assert_eq!(out.upstream_action.as_deref(), Some("count"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_one_key_run_in_order_under_concurrency() {
    let plan = plan(&misbehave_agent("order").build()).await;
    let keys = 40;
    let per_key = 15u64;
    let mut events = Vec::new();
    for seq in 1..=per_key {
        for k in 0..keys {
            // Some events sleep in WASI (an async host call), so keys finish
            // out of step with each other.
            let sleep_ms = if (seq + k) % 7 == 0 { 5 } else { 0 };
            events.push(Event::input(
                format!("key-{k}"),
                json!({ "seq": seq, "sleep_ms": sleep_ms }),
            ));
        }
    }
    let runtime = Runtime::new(plan).with_settings(RuntimeSettings {
        max_concurrency: 16,
        ..RuntimeSettings::default()
    });
    let (outputs, summary) = run_with(runtime, events).await;
    assert!(errors(&outputs).is_empty(), "{:#?}", errors(&outputs));
    assert_eq!(summary.outputs, keys * per_key);
    for k in 0..keys {
        let mine = outputs_of(&outputs, &format!("key-{k}"));
        let seqs: Vec<u64> = mine
            .iter()
            .map(|e| e.payload["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(
            seqs,
            (1..=per_key).collect::<Vec<_>>(),
            "outputs of key-{k} out of order"
        );
        // Each task saw exactly the key's earlier events in its memory.
        let last = &mine.last().unwrap().payload["seen"];
        assert_eq!(last, &json!((1..=per_key).collect::<Vec<_>>()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_key_does_not_block_other_keys() {
    let plan = plan(&misbehave_agent("order").build()).await;
    let mut events = vec![Event::input("slow", json!({ "seq": 1, "sleep_ms": 1500 }))];
    for seq in 1..=50 {
        events.push(Event::input("fast", json!({ "seq": seq })));
    }
    let (outputs, _) = run(plan, events).await;
    assert_eq!(outputs.len(), 51);
    // The slow key's only output comes after every output of the fast key.
    assert_eq!(
        outputs.last().unwrap().key,
        "slow",
        "{:?}",
        outputs.iter().map(|e| &e.key).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_task_gets_a_fresh_instance() {
    let plan = plan(&misbehave_agent("counter").build()).await;
    let events: Vec<Event> = (0..60)
        .map(|i| Event::input(format!("k{}", i % 3), json!(null)))
        .collect();
    let (outputs, _) = run(plan, events).await;
    assert_eq!(outputs.len(), 60);
    for out in &outputs {
        assert_eq!(
            out.payload,
            json!({ "counter": 1 }),
            "guest state leaked between tasks"
        );
    }
}

fn failing_agent() -> Agent {
    // Each failing action listens to its own event type; `echo` handles input.
    let mut builder = Agent::builder("failures")
        .component("m", component("guest_misbehave.wasm"))
        .action(ActionBuilder::new("echo", "m").listen(types::INPUT));
    for export in ["trap", "panic", "fail"] {
        builder = builder.action(ActionBuilder::new(export, "m").listen(format!("do-{export}")));
    }
    builder.build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traps_panics_and_guest_errors_are_contained() {
    let plan = plan(&failing_agent()).await;
    let mut events = Vec::new();
    for i in 0..30 {
        events.push(Event::input(format!("good-{i}"), json!({ "i": i })));
        let kind = ["trap", "panic", "fail"][i % 3];
        events.push(Event::input(format!("bad-{i}"), json!({})).with_type(format!("do-{kind}")));
    }
    let (outputs, summary) = run(plan, events).await;

    // Every good key completed with its own payload.
    for i in 0..30 {
        let mine = outputs_of(&outputs, &format!("good-{i}"));
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].payload, json!({ "i": i }));
    }
    // Every bad key produced exactly one error event and nothing it emitted
    // before failing.
    for i in 0..30 {
        let mine = outputs_of(&outputs, &format!("bad-{i}"));
        assert_eq!(mine.len(), 1, "{mine:#?}");
        let error = mine[0];
        assert_eq!(error.event_type, types::ERROR);
        let p = &error.payload;
        match i % 3 {
            0 => {
                assert_eq!(p["error"], "trap");
                assert_eq!(p["action"], "trap");
            }
            1 => {
                assert_eq!(p["error"], "trap");
                assert!(
                    p["stderr"]
                        .as_str()
                        .unwrap()
                        .contains("guest panicked on event"),
                    "panic message missing: {p}"
                );
            }
            _ => {
                assert_eq!(p["error"], "action-error");
                assert_eq!(p["code"], "refused");
                assert_eq!(p["message"], "this action always fails");
            }
        }
        assert_eq!(p["key"], format!("bad-{i}"));
        assert_eq!(error.upstream_id.as_deref(), p["event_id"].as_str());
    }
    assert_eq!(summary.failed_tasks, 30);
    assert_eq!(summary.error_events, 30);
    assert_eq!(summary.actions["trap"].failures_by_kind["trap"], 10);
    assert_eq!(summary.actions["fail"].failures_by_kind["action-error"], 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_task_leaves_memory_untouched() {
    let agent = Agent::builder("rollback")
        .component("m", component("guest_misbehave.wasm"))
        .action(ActionBuilder::new("remember", "m").listen(types::INPUT))
        .action(ActionBuilder::new("fail", "m").listen("do-fail"))
        .build();
    let plan = plan(&agent).await;
    let events = vec![
        Event::input("k", json!({ "path": "a", "value": 1, "read": "a" })),
        Event::input("k", json!({})).with_type("do-fail"),
        Event::input("k", json!({ "read": "" })),
    ];
    let (outputs, memory) = run_keeping_memory(Runtime::new(plan), events).await;
    assert_eq!(outputs.len(), 3);
    assert_eq!(outputs[1].payload["error"], "action-error");
    // `fail` wrote `fail.written` before failing: the write was undone.
    assert_eq!(outputs[2].payload["short_term"], json!({ "a": 1 }));
    assert_eq!(memory["k"], json!({ "a": 1 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensory_memory_lasts_one_run_short_term_memory_persists() {
    let plan = plan(&misbehave_agent("remember").build()).await;
    let events = vec![
        Event::input("k", json!({ "path": "x.y", "value": "v", "read": "x.y" })),
        Event::input("k", json!({ "read": "x.y" })),
        Event::input("other", json!({ "read": "x.y" })),
    ];
    let (outputs, _) = run(plan, events).await;
    let k = outputs_of(&outputs, "k");
    assert_eq!(k[0].payload, json!({ "short_term": "v", "sensory": "v" }));
    assert_eq!(k[1].payload, json!({ "short_term": "v", "sensory": null }));
    let other = outputs_of(&outputs, "other");
    assert_eq!(
        other[0].payload,
        json!({ "short_term": null, "sensory": null })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_carries_over_between_runs_of_the_runtime() {
    let plan = std::sync::Arc::new(plan(&misbehave_agent("remember").build()).await);
    let mut handle = Runtime::shared(plan.clone()).start();
    handle
        .events
        .send(Event::input(
            "k",
            json!({ "path": "n", "value": 41, "read": "n" }),
        ))
        .await
        .unwrap();
    handle.events.close();
    while handle.outputs.recv().await.is_some() {}
    let (_, memory) = handle.finish_with_memory().await.unwrap();
    assert_eq!(memory["k"], json!({ "n": 41 }));

    let runtime = Runtime::shared(plan).with_memory(memory).unwrap();
    let (outputs, _) = run_with(runtime, vec![Event::input("k", json!({ "read": "n" }))]).await;
    assert_eq!(outputs[0].payload["short_term"], 41);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_loops_are_cut_at_max_depth() {
    let agent = Agent::builder("loop")
        .component("m", component("guest_misbehave.wasm"))
        .action(
            ActionBuilder::new("ping-pong", "m")
                .listen(types::INPUT)
                .listen("again"),
        )
        .action(ActionBuilder::new("echo", "m").listen("fine"))
        .runtime(RuntimeSettings {
            max_depth: 5,
            ..RuntimeSettings::default()
        })
        .build();
    let plan = plan(&agent).await;
    let events = vec![
        Event::input("looping", json!({})).with_type("again"),
        Event::input("fine", json!({ "ok": true })).with_type("fine"),
    ];
    let (outputs, summary) = run(plan, events).await;
    let looping = outputs_of(&outputs, "looping");
    assert_eq!(looping.len(), 1);
    assert_eq!(looping[0].payload["error"], "depth-limit");
    assert_eq!(looping[0].payload["max_depth"], 5);
    assert!(
        looping[0].payload["message"]
            .as_str()
            .unwrap()
            .contains("routing loop cut")
    );
    // The looping action ran once per hop: depths 0..=5.
    assert_eq!(summary.actions["ping-pong"].runs, 6);
    assert_eq!(
        outputs_of(&outputs, "fine")[0].payload,
        json!({ "ok": true })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrouted_event_types_are_counted() {
    let plan = plan(&misbehave_agent("echo").build()).await;
    let events = vec![
        Event::input("a", json!(1)).with_type("nobody_listens"),
        Event::input("a", json!(2)).with_type("nobody_listens"),
        Event::input("a", json!(3)),
    ];
    let (outputs, summary) = run(plan, events).await;
    assert_eq!(outputs.len(), 1);
    assert_eq!(summary.unrouted["nobody_listens"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_events_can_be_handled_by_an_action() {
    let agent = Agent::builder("handled")
        .component("m", component("guest_misbehave.wasm"))
        .action(ActionBuilder::new("fail", "m").listen(types::INPUT))
        .action(ActionBuilder::new("echo", "m").listen(types::ERROR))
        .build();
    let plan = plan(&agent).await;
    let (outputs, _) = run(plan, vec![Event::input("k", json!({}))]).await;
    // The error event itself, and the handler's output echoing it.
    assert_eq!(outputs.len(), 2, "{outputs:#?}");
    let echoed = outputs
        .iter()
        .find(|e| e.event_type == types::OUTPUT)
        .unwrap();
    assert_eq!(echoed.payload["error"], "action-error");
    assert_eq!(echoed.upstream_action.as_deref(), Some("echo"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_runs_produce_the_same_event_ids() {
    let agent = word_stats_builder().build();
    let events: Vec<Event> = (0..5)
        .map(|i| {
            Event::input(
                format!("k{}", i % 2),
                json!({ "text": format!("word {i}") }),
            )
        })
        .collect();
    let (first, _) = run(plan(&agent).await, events.clone()).await;
    let (second, _) = run(plan(&agent).await, events).await;
    let ids = |outs: &[Event]| {
        let mut ids: Vec<String> = outs.iter().map(|e| e.id.clone()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&first), ids(&second));
    let unique: std::collections::BTreeSet<_> = ids(&first).into_iter().collect();
    assert_eq!(unique.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guide_skill_greets_with_config_and_counts_visits() {
    let agent = Agent::builder("greeter")
        .component("greeter", component("skill_greeter.wasm"))
        .action(
            ActionBuilder::new("greet", "greeter")
                .listen(types::INPUT)
                .config("greeting", json!("Welcome")),
        )
        .build();
    let plan = plan(&agent).await;
    let events = vec![
        Event::input("ada", json!({ "name": "Ada" })),
        Event::input("ada", json!({ "name": "Ada" })),
        Event::input("bob", json!({ "name": "" })),
        Event::input("bob", json!({ "nom": "Bob" })),
    ];
    let (outputs, _) = run(plan, events).await;
    let ada = outputs_of(&outputs, "ada");
    assert_eq!(ada[0].payload["text"], "Welcome, Ada! Visit #1");
    assert_eq!(ada[1].payload["text"], "Welcome, Ada! Visit #2");
    let bob = outputs_of(&outputs, "bob");
    assert_eq!(bob[0].payload["code"], "empty-name");
    assert_eq!(bob[1].payload["code"], "bad-payload");
    assert!(
        bob[1].payload["message"]
            .as_str()
            .unwrap()
            .contains("missing field `name`")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_address_space_for_the_pool_the_sandbox_falls_back() {
    // Four million instance slots of 4 GiB reservations each cannot fit in a
    // 47-bit address space: the pooling allocator fails and the sandbox falls
    // back to on-demand allocation.
    let sandbox = std::sync::Arc::new(
        weir::Sandbox::new(weir::SandboxConfig {
            max_instances: 4_000_000,
            cache_dir: None,
            ..weir::SandboxConfig::default()
        })
        .unwrap(),
    );
    assert!(!sandbox.pooling());
    let agent = misbehave_agent("counter").build();
    let plan = weir::AgentPlan::from_agent_in(&agent, sandbox)
        .await
        .unwrap();
    let events = (0..5)
        .map(|i| Event::input(format!("k{i}"), json!(null)))
        .collect();
    let (outputs, _) = run(plan, events).await;
    assert_eq!(outputs.len(), 5);
    assert!(outputs.iter().all(|e| e.payload == json!({ "counter": 1 })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_warns_of_imports_an_action_is_granted_nothing_for() {
    // The hostile component imports models, tools and wasi:http; this
    // action is granted HTTP only.
    let agent = Agent::builder("imports")
        .component("h", component("guest_hostile.wasm"))
        .action(
            ActionBuilder::new("echo", "h")
                .listen(types::INPUT)
                .http("https://api.example.com"),
        )
        .build();
    let warnings = plan(&agent).await.warnings.clone();
    let about = |interface: &str| {
        warnings
            .iter()
            .filter(|w| w.contains(&format!("`{interface}`")))
            .count()
    };
    assert_eq!(about("weir:agent/model"), 1, "{warnings:#?}");
    assert_eq!(about("weir:agent/tools"), 1, "{warnings:#?}");
    assert_eq!(about("wasi:http/outgoing-handler"), 0, "{warnings:#?}");
    assert!(
        warnings
            .iter()
            .all(|w| w.starts_with("actions.echo.component: ")),
        "{warnings:#?}"
    );

    // word-stats imports none of them: its plan warns of nothing.
    let plan = plan(&word_stats_builder().build()).await;
    assert!(plan.warnings.is_empty(), "{:#?}", plan.warnings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_is_reported_with_what_it_released_journal_or_not() {
    let agent = Agent::from_manifest(repo().join("examples/word-stats/agent.toml")).unwrap();
    let lines = std::fs::read_to_string(repo().join("examples/word-stats/events.jsonl")).unwrap();
    let inputs: Vec<Event> = lines
        .lines()
        .enumerate()
        .filter_map(|(n, l)| weir::event::parse_input_line(l, "events", n + 1).unwrap())
        .enumerate()
        .map(|(n, mut e)| {
            e.id = format!("input-{n}");
            e
        })
        .collect();
    for journaled in [false, true] {
        components();
        let state = tempfile::tempdir().unwrap();
        let plan = plan(&agent).await;
        let fingerprint = plan.fingerprint();
        let mut runtime = weir::Runtime::new(plan).with_run_reports();
        if journaled {
            let journal = weir::journal::Journal::open(state.path(), &fingerprint).unwrap();
            runtime = runtime.with_journal(journal);
        }
        let mut handle = runtime.start();
        let mut runs = handle.runs.take().unwrap();
        for event in inputs.clone() {
            handle.events.send(event).await.unwrap();
        }
        handle.events.close();
        let mut reports = Vec::new();
        while let Some(report) = runs.recv().await {
            reports.push(report);
        }
        assert!(
            handle.outputs.recv().await.is_none(),
            "outputs come in the reports only"
        );
        let summary = handle.finish().await.unwrap();
        assert_eq!(reports.len(), inputs.len(), "journaled: {journaled}");
        assert_eq!(
            summary.outputs,
            inputs.len() as u64,
            "reported outputs are counted"
        );
        let (mut numbers, mut ids) = (Vec::new(), std::collections::HashSet::new());
        for report in &reports {
            let input = inputs.iter().find(|e| e.id == report.run).unwrap();
            assert_eq!(report.key, input.key);
            assert_eq!(report.outputs.len(), 1);
            assert_eq!(report.outputs[0].event_type, "_output_event");
            ids.insert(report.outputs[0].id.clone());
            numbers.extend(report.first_output);
        }
        assert_eq!(ids.len(), inputs.len(), "one output of each run");
        // With a journal, reports come in commit order: outputs numbered 1, 2, ...
        let expected: Vec<u64> = match journaled {
            true => (1..=inputs.len() as u64).collect(),
            false => Vec::new(),
        };
        assert_eq!(numbers, expected);
    }
}
