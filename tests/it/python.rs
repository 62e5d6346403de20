//! Python guests: skills written with the Python SDK (`sdk/python`), built
//! from source by componentize-py (`scripts/build-python-skills`), planned and
//! run like Rust ones.

use crate::support::*;
use serde_json::{Value, json};
use std::path::PathBuf;
use weir::event::types;
use weir::{ActionBuilder, Agent, Event};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_word_stats_action_gives_the_rust_ones_outputs() {
    let python = python_component("skill_word_stats_py.wasm");
    let rust = component("skill_word_stats.wasm");
    let python_plan = plan(&word_stats(python)).await;
    // Planning checked `count` against the Python component's `actions`.
    assert_eq!(python_plan.actions["count"].export, "count");

    let events = example_events();
    let (from_python, summary) = run(python_plan, events.clone()).await;
    let (from_rust, _) = run(plan(&word_stats(rust)).await, events.clone()).await;
    assert_eq!(summary.outputs as usize, events.len());
    assert!(
        from_python.iter().all(|e| e.event_type == types::OUTPUT),
        "{from_python:#?}"
    );
    // Same payloads, same deterministic ids, same order per key.
    assert_eq!(sorted(from_python), sorted(from_rust));
}

/// An agent whose only action is the Python `count`, on input events.
fn count_only(top: Value) -> Agent {
    Agent::builder("count-only")
        .component("stats", python_component("skill_word_stats_py.wasm"))
        .action(ActionBuilder::new("count", "stats").listen(types::INPUT))
        .config("top", top)
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_action_errors_and_exceptions_become_error_events() {
    // An ActionError raised by the action: its code and message.
    let (outputs, _) = run(
        plan(&count_only(json!(3))).await,
        vec![Event::input("k", json!({ "words": 5 }))],
    )
    .await;
    assert_eq!(outputs.len(), 1, "{outputs:#?}");
    assert_eq!(outputs[0].event_type, types::ERROR);
    assert_eq!(outputs[0].payload["code"], "bad-payload", "{outputs:#?}");

    // An uncaught exception (a string where a number belongs): the error
    // event carries the Python traceback, pointing into the skill's source.
    let (outputs, summary) = run(
        plan(&count_only(json!("three"))).await,
        vec![
            Event::input("k", json!({ "words": ["a", "b"] })),
            Event::input("k", json!({ "words": ["c"] })),
        ],
    )
    .await;
    assert_eq!(summary.failed_tasks, 2, "{outputs:#?}");
    let message = outputs[0].payload["message"].as_str().unwrap_or_default();
    assert_eq!(outputs[0].payload["code"], "exception", "{outputs:#?}");
    assert!(message.contains("Traceback"), "{message}");
    assert!(message.contains("word_stats.py"), "{message}");
    assert!(message.contains("TypeError"), "{message}");
}

/// A Rust action (`use-tool`) granted the Python text tools.
fn python_tools_agent() -> Agent {
    Agent::builder("py-tools")
        .component("m", component("guest_misbehave.wasm"))
        .component("text", python_component("skill_text_tools_py.wasm"))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_tools_get_schemas_from_their_signatures_and_run_when_called() {
    let plan = plan(&python_tools_agent()).await;
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

    let (outputs, _) = run(
        plan,
        vec![
            use_tool(
                "count_words",
                json!({ "text": "a bb ccc", "min_length": 2 }),
            ),
            use_tool("top_words", json!({ "words": ["b", "a", "b"], "top": 1 })),
            use_tool("top_words", json!({ "words": ["b"], "order": "zzz" })),
            use_tool("top_words", json!({ "words": ["b"], "top": -1 })),
            use_tool("count_words", json!({ "text": "x", "unknown": 1 })),
        ],
    )
    .await;
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

/// The README's flow for a Python skill: new, build (componentize-py),
/// push, install from the registry, run.
#[test]
fn a_new_python_skill_goes_through_build_push_install_and_run() {
    // componentize-py in weir's tools cache (scripts/python-tools).
    python_component("skill_word_stats_py.wasm");
    let registry = crate::support::registry::Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let weir = |store: &str, args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .current_dir(tmp.path())
            .env("WEIR_SKILLS_DIR", tmp.path().join(store))
            .output()
            .unwrap();
        assert!(out.status.success(), "weir {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    weir("dev", &["skill", "new", "hello-py", "--lang", "python"]);
    assert!(tmp.path().join("hello-py/hello_py.py").is_file());
    let said = weir("dev", &["skill", "build", "hello-py"]);
    assert!(said.contains("built hello-py@0.1.0"), "{said}");
    assert!(
        said.contains("actions [shout], tools [count_words]"),
        "{said}"
    );
    let reference = format!("{}/acme/hello-py:0.1.0", registry.host);
    weir(
        "dev",
        &[
            "skill",
            "push",
            "hello-py/target/skill/hello-py",
            &reference,
        ],
    );
    weir("user", &["skill", "install", &reference]);

    std::fs::write(
        tmp.path().join("agent.toml"),
        "[agent]\nname = \"shouter\"\n\n[skills.hello-py]\nversion = \"0.1.0\"\n\n[actions.shout]\ncomponent = \"hello-py\"\nlisten = [\"_input_event\"]\nconfig = { prefix = \"> \" }\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("in.jsonl"),
        "{\"key\": \"k\", \"payload\": {\"text\": \"quiet please\"}}\n",
    )
    .unwrap();
    let out = weir("user", &["run", "agent.toml", "--input", "in.jsonl"]);
    let event: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(event["payload"]["text"], "> QUIET PLEASE");
}

#[test]
fn building_a_python_skill_without_componentize_py_says_how_to_install_it() {
    let tmp = tempfile::tempdir().unwrap();
    let weir = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .current_dir(tmp.path())
            .env("WEIR_TOOLS_DIR", tmp.path().join("no-tools"))
            .env_remove("WEIR_COMPONENTIZE_PY")
            .output()
            .unwrap()
    };
    assert!(
        weir(&["skill", "new", "bare", "--lang", "python"])
            .status
            .success()
    );
    let out = weir(&["skill", "build", "bare"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs componentize-py 0.25.1")
            && err.contains("pip install componentize-py==0.25.1"),
        "{err}"
    );
}

/// A Python action under `--state`, killed with -9 while its second model
/// call is in flight: the re-run reads the recorded clock and random
/// values, so its first call is answered from the journal, not asked again,
/// and the output appears once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_python_task_re_runs_with_its_recorded_clock_random_and_calls() {
    use crate::support::durable::{StateRun, kill, until};
    use crate::support::model_server::{ModelServer, Reply, openai_text};
    use std::time::Duration;

    let server = ModelServer::start().await;
    server.script([Reply::Json(openai_text("first", 1, 1))]);
    server.fallback(Reply::Delayed(
        Duration::from_secs(3600),
        Box::new(Reply::Json(openai_text("late", 1, 1))),
    ));
    let tmp = tempfile::tempdir().unwrap();
    let manifest = write(
        tmp.path(),
        "stamp.toml",
        &format!(
            "[agent]\nname = \"stamp-py\"\n\n[components.p]\npath = \"{}\"\n\n\
             [actions.stamp]\ncomponent = \"p\"\nlisten = [\"_input_event\"]\nmodels = [\"assistant\"]\n\n\
             [resources.conn]\nkind = \"chat-model-connection\"\nprovider = \"openai\"\n\
             base_url = \"{}/v1\"\nmax_retries = 0\n\n\
             [resources.assistant]\nkind = \"chat-model\"\nconnection = \"conn\"\nmodel = \"m\"\n",
            python_component("skill_durable_py.wasm").display(),
            server.url
        ),
    );
    // Compiled into the compile cache first: compiling a 19 MB component
    // takes longer than the wait below on a busy machine.
    let planned = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("plan")
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(planned.status.success(), "{planned:?}");
    let run = StateRun::new(
        tmp.path(),
        manifest,
        &[json!({ "key": "k", "payload": { "model": "assistant" } })],
    );
    let child = run.spawn();
    until(|| server.count() == 2).await;
    // The first call's record goes to disk with the next group commit.
    tokio::time::sleep(Duration::from_millis(500)).await;
    kill(child);

    server.fallback(Reply::Json(openai_text("second", 1, 1)));
    let outputs = run.finish().await;
    let asked: Vec<String> = server
        .received()
        .iter()
        .map(|r| {
            r.body["messages"][0]["content"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    // Stamped once (replayed on the re-run); the second question asked by
    // the killed run and by the re-run.
    assert_eq!(asked.len(), 3, "{asked:?}");
    assert_eq!(asked[1..], ["second k", "second k"]);
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    let out = &outputs[0]["payload"];
    assert_eq!(
        asked[0],
        format!(
            "stamp {} {}",
            out["stamp"].as_str().unwrap(),
            out["random"].as_str().unwrap()
        )
    );
}
