//! Python and JavaScript guests: skills written with the Python SDK
//! (`sdk/python`, built by componentize-py) and the JavaScript SDK (`sdk/js`,
//! built by componentize-qjs), from source by `scripts/build-python-skills`
//! and `scripts/build-js-skills`, planned and run like Rust ones. What both
//! languages must do is one function run for each.

use crate::support::*;
use serde_json::{Value, json};
use std::path::PathBuf;
use weir::event::types;
use weir::{ActionBuilder, Agent, Event};

/// A guest language other than Rust.
#[derive(Clone, Copy, Debug)]
enum Lang {
    Python,
    Js,
}

impl Lang {
    /// The component built from `skills/NAME-py` or `tests/*-guests/NAME-py`
    /// (`-js`).
    fn component(self, name: &str) -> PathBuf {
        let stem = name.replace('-', "_");
        match self {
            Lang::Python => python_component(&format!("skill_{stem}_py.wasm")),
            Lang::Js => js_component(&format!("skill_{stem}_js.wasm")),
        }
    }

    /// `weir skill new --lang`.
    fn flag(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }

    /// The source file of module `module`.
    fn source(self, module: &str) -> String {
        match self {
            Lang::Python => format!("{module}.py"),
            Lang::Js => format!("{module}.js"),
        }
    }
}

/// The word-stats example's agent with its `count` action from `stats`.
fn word_stats(stats: PathBuf) -> Agent {
    Agent::builder("word-stats")
        .component("tokenizer", component("skill_tokenizer.wasm"))
        .component("stats", stats)
        .action(
            ActionBuilder::new("tokenize", "tokenizer")
                .listen(types::INPUT)
                .config("min_length", json!(2)),
        )
        .action(ActionBuilder::new("count", "stats").listen("words_tokenized"))
        .config("top", json!(3))
        .build()
}

/// The word-stats example's input events.
fn example_events() -> Vec<Event> {
    let path = repo().join("examples/word-stats/events.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .enumerate()
        .filter_map(|(n, line)| weir::event::parse_input_line(line, "events.jsonl", n + 1).unwrap())
        .collect()
}

fn sorted(mut events: Vec<Event>) -> Vec<Event> {
    events.sort_by(|a, b| a.id.cmp(&b.id));
    events
}

/// The word-stats example with its `count` action written in `lang`: the
/// Rust action's outputs, event for event.
async fn word_stats_gives_the_rust_outputs(lang: Lang) {
    let guest_plan = plan(&word_stats(lang.component("word-stats"))).await;
    // Planning checked `count` against the component's `actions`.
    assert_eq!(guest_plan.actions["count"].export, "count");

    let events = example_events();
    let (from_guest, summary) = run(guest_plan, events.clone()).await;
    let rust = component("skill_word_stats.wasm");
    let (from_rust, _) = run(plan(&word_stats(rust)).await, events.clone()).await;
    assert_eq!(summary.outputs as usize, events.len());
    assert!(
        from_guest.iter().all(|e| e.event_type == types::OUTPUT),
        "{from_guest:#?}"
    );
    // Same payloads, same deterministic ids, same order per key.
    assert_eq!(sorted(from_guest), sorted(from_rust));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_word_stats_action_gives_the_rust_ones_outputs() {
    word_stats_gives_the_rust_outputs(Lang::Python).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_word_stats_action_gives_the_rust_ones_outputs() {
    word_stats_gives_the_rust_outputs(Lang::Js).await;
}

/// An agent whose only action is `export` of `component`, on input events.
fn only(component: PathBuf, export: &str) -> Agent {
    Agent::builder("only")
        .component("c", component)
        .action(ActionBuilder::new(export, "c").listen(types::INPUT))
        .build()
}

/// An ActionError fails the task with its code; any other exception with
/// code `exception` and the guest's stack trace, which names the source file
/// and the error's type (`trace_marks`).
async fn errors_and_exceptions_become_error_events(lang: Lang, trace_marks: &[&str]) {
    let (outputs, _) = run(
        plan(&only(lang.component("word-stats"), "count")).await,
        vec![Event::input("k", json!({ "words": 5 }))],
    )
    .await;
    assert_eq!(outputs.len(), 1, "{outputs:#?}");
    assert_eq!(outputs[0].event_type, types::ERROR);
    assert_eq!(outputs[0].payload["code"], "bad-payload", "{outputs:#?}");

    // `stamp` reads `payload.model`: a null payload is a TypeError.
    let (outputs, summary) = run(
        plan(&only(lang.component("durable"), "stamp")).await,
        vec![
            Event::input("k", Value::Null),
            Event::input("k", json!(["not", "an", "object"])),
        ],
    )
    .await;
    assert_eq!(summary.failed_tasks, 2, "{outputs:#?}");
    let message = outputs[0].payload["message"].as_str().unwrap_or_default();
    assert_eq!(outputs[0].payload["code"], "exception", "{outputs:#?}");
    for mark in trace_marks {
        assert!(message.contains(mark), "{mark} in {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_action_errors_and_exceptions_become_error_events() {
    let marks = ["Traceback", "durable.py", "TypeError"];
    errors_and_exceptions_become_error_events(Lang::Python, &marks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_action_errors_and_exceptions_become_error_events() {
    let marks = ["TypeError", "durable.js"];
    errors_and_exceptions_become_error_events(Lang::Js, &marks).await;
}

/// QuickJS's random state is snapshotted with the module at build time; the
/// SDK draws `Math.random` and `crypto` from wasi:random instead, so fresh
/// instances give different numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_random_numbers_differ_between_fresh_instances() {
    let (outputs, _) = run(
        plan(&only(Lang::Js.component("durable"), "entropy")).await,
        (0..4)
            .map(|i| Event::input(format!("k{i}"), json!(i)))
            .collect(),
    )
    .await;
    assert_eq!(outputs.len(), 4, "{outputs:#?}");
    let distinct = |field: &str| {
        let values: std::collections::HashSet<String> = outputs
            .iter()
            .map(|e| e.payload[field].to_string())
            .collect();
        values.len()
    };
    assert_eq!(distinct("random"), 4, "{outputs:#?}");
    assert_eq!(distinct("uuid"), 4, "{outputs:#?}");
    assert_eq!(distinct("words"), 4, "{outputs:#?}");
    for event in &outputs {
        let random = event.payload["random"].as_f64().unwrap();
        assert!((0.0..1.0).contains(&random), "{random}");
        let uuid = event.payload["uuid"].as_str().unwrap();
        assert_eq!(uuid.len(), 36, "{uuid}");
        assert_eq!(&uuid[14..15], "4", "a version 4 UUID: {uuid}");
    }
}

/// The interpreters' components (19 MB for Python) are compiled once: a
/// second sandbox on the same compile cache loads them, and they run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_javascript_components_load_from_the_compile_cache() {
    let cache = tempfile::tempdir().unwrap();
    let sandbox = || {
        std::sync::Arc::new(
            weir::Sandbox::new(weir::SandboxConfig {
                cache_dir: Some(cache.path().to_path_buf()),
                ..weir::SandboxConfig::default()
            })
            .unwrap(),
        )
    };
    for lang in [Lang::Python, Lang::Js] {
        let path = lang.component("word-stats");
        let first = sandbox().load_component(&path).await.unwrap();
        assert_eq!(
            first.compile_source(),
            weir::sandbox::CompileSource::Compiled
        );
        let again = sandbox();
        let second = again.load_component(&path).await.unwrap();
        assert_eq!(
            second.compile_source(),
            weir::sandbox::CompileSource::Cached,
            "{lang:?}"
        );
        let plan = weir::AgentPlan::from_agent_in(&only(path, "count"), again)
            .await
            .unwrap();
        let (outputs, _) = run(plan, vec![Event::input("k", json!({ "words": ["a"] }))]).await;
        assert_eq!(
            outputs[0].payload["total_words"], 1,
            "{lang:?}: {outputs:#?}"
        );
    }
}

/// The benchmark's actions (benches/langs.sh) do the same work in the three
/// languages: the same outputs for the single, chain and memory agents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_actions_give_the_same_outputs_in_every_language() {
    let agent = |component: PathBuf, variant: &str| {
        let builder = Agent::builder("bench").component("b", component);
        match variant {
            "chain" => builder
                .action(ActionBuilder::new("first", "b").listen(types::INPUT))
                .action(ActionBuilder::new("second", "b").listen("bench_processed")),
            _ => builder.action(ActionBuilder::new(variant, "b").listen(types::INPUT)),
        }
        .build()
    };
    let events: Vec<Event> = ["the quick brown fox", "over  the lazy dog", "fox"]
        .iter()
        .enumerate()
        .map(|(i, text)| Event::input(format!("k{}", i % 2), json!(text)))
        .collect();
    for variant in ["single", "chain", "memory"] {
        let mut outputs = Vec::new();
        for component in [
            component("guest_bench.wasm"),
            Lang::Python.component("bench"),
            Lang::Js.component("bench"),
        ] {
            let (out, _) = run(plan(&agent(component, variant)).await, events.clone()).await;
            outputs.push(sorted(out));
        }
        assert_eq!(outputs[0].len(), 3, "{variant}: {:#?}", outputs[0]);
        let words: u64 = outputs[0]
            .iter()
            .map(|e| e.payload["words"].as_u64().unwrap())
            .sum();
        assert_eq!(words, 9, "{variant}: {:#?}", outputs[0]);
        assert_eq!(outputs[1], outputs[0], "{variant}: Python");
        assert_eq!(outputs[2], outputs[0], "{variant}: JavaScript");
    }
}

/// A Rust action (`use-tool`) granted the text tools of `text`.
fn tools_agent(text: PathBuf) -> Agent {
    Agent::builder("text-tools")
        .component("m", component("guest_misbehave.wasm"))
        .component("text", text)
        .action(
            ActionBuilder::new("use-tool", "m")
                .listen(types::INPUT)
                .tool("count_words")
                .tool("top_words"),
        )
        .build()
}

fn use_tool(tool: &str, arguments: Value) -> Event {
    Event::input("k", json!({ "tool": tool, "arguments": arguments }))
}

/// Calls of the text tools: two that work, two the schema refuses, one the
/// tool refuses.
fn tool_calls() -> Vec<Event> {
    vec![
        use_tool(
            "count_words",
            json!({ "text": "a bb ccc", "min_length": 2 }),
        ),
        use_tool("top_words", json!({ "words": ["b", "a", "b"], "top": 1 })),
        use_tool("top_words", json!({ "words": ["b"], "order": "zzz" })),
        use_tool("top_words", json!({ "words": ["b"], "top": -1 })),
        use_tool("count_words", json!({ "text": "x", "unknown": 1 })),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_tools_get_schemas_from_their_signatures_and_run_when_called() {
    let plan = plan(&tools_agent(Lang::Python.component("text-tools"))).await;
    let spec = |name: &str| {
        plan.tools
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no tool {name}"))
            .clone()
    };
    // Type hints, defaults and the docstring's parameter descriptions.
    let count = spec("count_words");
    assert_eq!(count.description, "Counts the words of a text.");
    assert_eq!(count.parameters["required"], json!(["text"]));
    assert_eq!(count.parameters["additionalProperties"], json!(false));
    assert_eq!(
        count.parameters["properties"]["min_length"],
        json!({ "type": "integer", "default": 1, "description": "Shortest word counted, in characters." })
    );
    let top = spec("top_words");
    assert_eq!(
        top.parameters["properties"]["order"]["enum"],
        json!(["count", "alpha"])
    );
    assert_eq!(
        top.parameters["properties"]["words"]["items"],
        json!({ "type": "string" })
    );

    let (outputs, _) = run(plan, tool_calls()).await;
    assert_eq!(outputs.len(), 5, "{outputs:#?}");
    assert_eq!(
        outputs[0].payload,
        json!({ "result": { "words": 2, "chars": 8 } })
    );
    assert_eq!(
        outputs[1].payload,
        json!({ "result": [{ "word": "b", "count": 2 }] })
    );
    let message = |i: usize| outputs[i].payload["message"].as_str().unwrap().to_string();
    // Refused by the schema before the tool runs.
    assert!(
        message(2).contains("do not match its schema") && message(2).contains("/order"),
        "{}",
        message(2)
    );
    assert!(
        message(4).contains("do not match its schema"),
        "{}",
        message(4)
    );
    // The tool's own ActionError.
    assert!(
        message(3).contains("bad-arguments: top must not be negative"),
        "{}",
        message(3)
    );
}

/// The JavaScript text tools (`skills/text-tools-js`) declare their schemas
/// with `tool({parameters})`: the model is told exactly what it is told of
/// the Python ones, and the same calls give the same results and refusals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_tools_match_the_python_ones_in_schema_and_results() {
    let python = plan(&tools_agent(Lang::Python.component("text-tools"))).await;
    let js = plan(&tools_agent(Lang::Js.component("text-tools"))).await;
    let specs = |plan: &weir::AgentPlan| {
        let mut specs: Vec<_> = plan
            .tools
            .iter()
            .filter(|t| ["count_words", "top_words"].contains(&t.name.as_str()))
            .map(|t| (t.name.clone(), t.description.clone(), t.parameters.clone()))
            .collect();
        specs.sort_by(|a, b| a.0.cmp(&b.0));
        specs
    };
    assert_eq!(specs(&js).len(), 2);
    assert_eq!(specs(&js), specs(&python));

    let payloads = |events: Vec<Event>| -> Vec<Value> {
        sorted(events).into_iter().map(|e| e.payload).collect()
    };
    let (from_js, _) = run(js, tool_calls()).await;
    let (from_python, _) = run(python, tool_calls()).await;
    assert_eq!(from_js.len(), 5, "{from_js:#?}");
    assert_eq!(payloads(from_js), payloads(from_python));
}

/// The README's flow (tests/it/skills.rs) for a skill in `lang`, built with
/// componentize-py or componentize-qjs from weir's tools cache.
fn a_new_skill_goes_through_build_push_install_and_run(lang: Lang) {
    lang.component("word-stats"); // the toolchain installed, as scripts/test does
    let name = format!("hello-{}", lang.flag());
    let module = name.replace('-', "_");
    crate::skills::new_skill_builds_pushes_installs_and_runs(
        &name,
        &["--lang", lang.flag()],
        &lang.source(&module),
    );
}

#[test]
fn a_new_python_skill_goes_through_build_push_install_and_run() {
    a_new_skill_goes_through_build_push_install_and_run(Lang::Python);
}

#[test]
fn a_new_javascript_skill_goes_through_build_push_install_and_run() {
    a_new_skill_goes_through_build_push_install_and_run(Lang::Js);
}

/// A skill directory whose module is misnamed, and a JavaScript module that
/// does not parse: each build fails with an error that says what is wrong
/// and where, and lays out no package.
#[test]
fn a_skill_that_cannot_be_built_says_why() {
    Lang::Js.component("word-stats"); // componentize-qjs installed
    let tmp = tempfile::tempdir().unwrap();
    let weir = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .current_dir(tmp.path())
            .output()
            .unwrap()
    };
    assert!(
        weir(&["skill", "new", "odd", "--lang", "js"])
            .status
            .success()
    );
    std::fs::rename(
        tmp.path().join("odd/odd.js"),
        tmp.path().join("odd/main.js"),
    )
    .unwrap();
    let out = weir(&["skill", "build", "odd"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("holds no skill named odd")
            && err.contains("odd.js")
            && err.contains("odd.py"),
        "{err}"
    );
    // The module built alone, by the name it has now: one component file.
    let out = weir(&[
        "skill",
        "component",
        "odd",
        "--module",
        "main",
        "-o",
        "odd.wasm",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wasm = std::fs::read(tmp.path().join("odd.wasm")).unwrap();
    assert_eq!(&wasm[..8], b"\0asm\x0d\0\x01\0", "a component's header");

    std::fs::write(
        tmp.path().join("odd/odd.js"),
        "action({}, function (event, ctx) {\n",
    )
    .unwrap();
    let out = weir(&["skill", "build", "odd"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("componentize-qjs failed to build") && err.contains("odd.js"),
        "{err}"
    );
    assert!(!tmp.path().join("odd/target/skill/odd").exists());
    // Alone (the module named after the skill by default): no file at all.
    let out = weir(&["skill", "component", "odd", "-o", "broken.wasm"]);
    assert!(!out.status.success());
    assert!(!tmp.path().join("broken.wasm").exists());
    assert!(!tmp.path().join("broken.wasm.partial").exists());
}

/// Building a skill in `lang` without its toolchain (variable `env` unset,
/// an empty tools cache) fails with an error that says `marks`: what is
/// missing and the command that installs it.
fn building_without_the_toolchain_says_how_to_install_it(lang: Lang, env: &str, marks: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let weir = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .current_dir(tmp.path())
            .env("WEIR_TOOLS_DIR", tmp.path().join("no-tools"))
            .env_remove(env)
            .output()
            .unwrap()
    };
    assert!(
        weir(&["skill", "new", "bare", "--lang", lang.flag()])
            .status
            .success()
    );
    let out = weir(&["skill", "build", "bare"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for mark in marks {
        assert!(err.contains(mark), "{mark} in {err}");
    }
}

#[test]
fn building_a_python_skill_without_componentize_py_says_how_to_install_it() {
    let marks = [
        "needs componentize-py 0.25.1",
        "pip install componentize-py==0.25.1",
    ];
    building_without_the_toolchain_says_how_to_install_it(
        Lang::Python,
        "WEIR_COMPONENTIZE_PY",
        &marks,
    );
}

#[test]
fn building_a_javascript_skill_without_componentize_qjs_says_how_to_install_it() {
    let marks = [
        "needs componentize-qjs 0.4.5",
        "npm install --prefix",
        "componentize-qjs@0.4.5",
    ];
    building_without_the_toolchain_says_how_to_install_it(
        Lang::Js,
        "WEIR_COMPONENTIZE_QJS",
        &marks,
    );
}

/// The replay test (tests/it/replay.rs) with the `stamp` action written in
/// Python: `time.time_ns()` and `os.urandom` recorded and replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_python_task_re_runs_with_its_recorded_clock_random_and_calls() {
    let durable = Lang::Python.component("durable");
    crate::replay::re_run_reads_the_same_clock_and_random_numbers(&durable).await;
}

/// The same in JavaScript: `Date.now()` and `Math.random()`, which the SDK
/// draws from wasi:random.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_javascript_task_re_runs_with_its_recorded_clock_random_and_calls() {
    let durable = Lang::Js.component("durable");
    crate::replay::re_run_reads_the_same_clock_and_random_numbers(&durable).await;
}
