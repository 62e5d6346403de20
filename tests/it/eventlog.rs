//! The event log: every event and execution of a run as a JSON line in
//! Flink Agents' record shape, its levels and STANDARD cuts, model calls as
//! records of their own, and a log that cannot be written never failing the
//! run.

use crate::support::model_server::*;
use crate::support::*;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use weir::event::types;
use weir::observe::eventlog::{EventLog, EventLogSettings, LogLevel};
use weir::{ActionBuilder, Agent, Event};

/// `weir run` of the word-stats example over its events, with `args`.
fn word_stats(args: &[&str]) -> Output {
    components();
    std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "examples/word-stats/agent.toml"])
        .args(["-i", "examples/word-stats/events.jsonl"])
        .args(args)
        .current_dir(repo())
        .env_remove("WEIR_LOG")
        .output()
        .unwrap()
}

/// Every record of the log files in `dir` (or of the file `dir`).
fn records(path: &Path) -> Vec<Value> {
    let files: Vec<_> = if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    files
        .iter()
        .flat_map(|file| {
            std::fs::read_to_string(file)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
                .collect::<Vec<Value>>()
        })
        .collect()
}

/// The first record of `event_type` for key `key` (a key's runs are in order).
fn first_of<'a>(records: &'a [Value], event_type: &str, key: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["eventType"] == event_type && r["businessKey"] == key)
        .unwrap_or_else(|| panic!("no {event_type} of {key}"))
}

/// Runs `events` through `agent` with an event log at `settings`: the
/// outputs, the summary and the log's records.
async fn logged_run(
    agent: &Agent,
    events: Vec<Event>,
    settings: &EventLogSettings,
) -> (Vec<Event>, weir::RunSummary, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.log");
    let log = Arc::new(EventLog::open(&path, settings, &agent.name));
    let runtime = weir::Runtime::new(plan(agent).await).with_event_log(log);
    let (outputs, summary) = run_with(runtime, events).await;
    (outputs, summary, records(&path))
}

fn of_type<'a>(records: &'a [Value], event_type: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["eventType"] == event_type)
        .collect()
}

#[test]
fn every_event_and_action_of_a_run_is_a_record_linked_to_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs/");
    let out = word_stats(&[
        "-o",
        dir.path().join("out.jsonl").to_str().unwrap(),
        "--event-log",
        logs.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // One new file in the directory, named after the agent.
    let files: Vec<_> = std::fs::read_dir(&logs).unwrap().collect();
    assert_eq!(files.len(), 1);
    let name = files[0].as_ref().unwrap().file_name();
    assert!(
        name.to_string_lossy().starts_with("events-word-stats-"),
        "{name:?}"
    );
    let records = records(&logs);
    // Per input: the input, tokenize's task, words_tokenized, count's task,
    // the output; and notes of the memory writes (one sensory write in
    // tokenize, three short-term writes in count).
    let notes = |kind: &str| of_type(&records, kind).len();
    assert_eq!(notes("_sensory_write_event"), 6);
    assert_eq!(notes("_short_term_write_event"), 18);
    assert_eq!(records.len(), 30 + 24, "{records:#?}");
    assert!(stderr.contains("event log: 54 records written"), "{stderr}");
    tree_of_word_stats(&logs);
    query_word_stats(&logs);
    for record in &records {
        assert_eq!(record["agentName"], "word-stats");
        assert_eq!(record["logLevel"], "STANDARD");
        let at = record["timestamp"].as_str().unwrap();
        humantime::parse_rfc3339(at).unwrap_or_else(|e| panic!("{at}: {e}"));
    }
    let inputs = of_type(&records, "_input_event");
    assert_eq!(inputs.len(), 6);
    for input in inputs {
        let run = input["eventId"].as_str().unwrap();
        assert_eq!(input["inputRunId"], run);
        assert!(input.get("upstreamEventId").is_none());
        let of_run: Vec<&Value> = records.iter().filter(|r| r["inputRunId"] == run).collect();
        assert_eq!(of_run.len(), 9, "{of_run:#?}");
        assert!(
            of_run
                .iter()
                .all(|r| r["businessKey"] == input["businessKey"])
        );
        let find = |event_type: &str, name: Option<&str>| -> &Value {
            of_run
                .iter()
                .find(|r| r["eventType"] == event_type && name.is_none_or(|n| r["entityName"] == n))
                .unwrap_or_else(|| panic!("no {event_type} in {of_run:#?}"))
        };
        let tokenize = find("_execution_finished_event", Some("tokenize"));
        assert_eq!(tokenize["entityType"], "action");
        assert_eq!(tokenize["status"], "success");
        assert_eq!(tokenize["executionId"], format!("{run}/tokenize"));
        assert_eq!(tokenize["upstreamEventId"], run);
        assert!(tokenize["eventAttributes"]["durationMs"].as_f64().unwrap() > 0.0);
        let words = find("words_tokenized", None);
        assert_eq!(words["upstreamEventId"], run);
        assert_eq!(words["upstreamActionName"], "tokenize");
        let count = find("_execution_finished_event", Some("count"));
        assert_eq!(count["upstreamEventId"], words["eventId"]);
        assert_eq!(count["upstreamActionName"], "tokenize");
        let output = find("_output_event", None);
        assert_eq!(output["upstreamEventId"], words["eventId"]);
        assert_eq!(output["upstreamActionName"], "count");
        assert!(output["payload"]["total_words"].is_u64(), "{output}");
    }
}

/// `weir log tree` rebuilds the word-stats runs in `logs`: each input,
/// tokenize, words_tokenized, count, the output.
fn tree_of_word_stats(logs: &Path) {
    let tree = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["log", "tree"])
            .arg(logs)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let forest: Value = serde_json::from_str(&tree(&["--json"])).unwrap();
    let runs = forest["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 6);
    for run in runs {
        let input = &run["input"];
        assert_eq!(input["event_type"], "_input_event");
        assert_eq!(input["event_id"], run["run"]);
        let tokenize = &input["actions"][0];
        assert_eq!(
            (&tokenize["name"], &tokenize["status"]),
            (&json!("tokenize"), &json!("success"))
        );
        let words = &tokenize["emitted"][0];
        assert_eq!(words["event_type"], "words_tokenized");
        let count = &words["actions"][0];
        assert_eq!(count["name"], "count");
        let written: Vec<&Value> = count["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| &n["details"]["path"])
            .collect();
        assert_eq!(
            written,
            [
                &json!("stats.counts"),
                &json!("stats.total_words"),
                &json!("stats.sentences")
            ]
        );
        assert!(count["duration_ms"].as_f64().unwrap() > 0.0);
        assert_eq!(count["emitted"][0]["event_type"], "_output_event");
    }
    // One key's runs, as text.
    let text = tree(&["--key", "alice"]);
    assert_eq!(
        text.matches("(key alice, agent word-stats)").count(),
        3,
        "{text}"
    );
    assert_eq!(text.matches("key bob").count(), 0, "{text}");
    assert!(text.contains("\n    [action tokenize] success "), "{text}");
    assert!(text.contains("\n        [action count] success "), "{text}");
    assert!(text.contains("\n          _output_event ("), "{text}");
    let one = runs[0]["run"].as_str().unwrap();
    let text = tree(&["--run", one]);
    assert_eq!(
        text.matches("\nrun ").count() + usize::from(text.starts_with("run ")),
        1,
        "{text}"
    );
}

/// `weir log query` runs jq filters over the word-stats log.
fn query_word_stats(logs: &Path) {
    let query = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["log", "query"])
            .arg(logs)
            .args(args)
            .output()
            .unwrap()
    };
    let out = query(&[
        r#"select(.eventType == "_output_event" and .businessKey == "alice") | .payload.total_words"#,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Alice's running totals, one JSON line per output, in order: those of
    // the run's output file.
    let outputs = std::fs::read_to_string(logs.parent().unwrap().join("out.jsonl")).unwrap();
    let totals: String = outputs
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|o| o["key"] == "alice")
        .map(|o| format!("{}\n", o["payload"]["total_words"]))
        .collect();
    assert_eq!(totals.lines().count(), 3);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), totals);
    let out = query(&[
        r#"select(.entityType == "action" and .businessKey == "bob") | {action: .entityName, status}"#,
        "--table",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["action", "status"]
    );
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[1..].iter().all(|l| l.ends_with("success")), "{text}");
    // A filter that does not parse says where.
    let out = query(&["select(.a == "]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not parse") && err.contains("column 14"),
        "{err}"
    );
}

#[test]
fn levels_by_event_type_and_standard_cuts_come_from_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = std::fs::read_to_string(repo().join("examples/word-stats/agent.toml"))
        .unwrap()
        .replace(
            "../../build/components",
            &components().display().to_string(),
        );
    let manifest = format!(
        "{manifest}\n[event_log]\ntypes = {{ words_tokenized = \"OFF\" }}\nstandard = {{ max_array_elements = 2, max_string_length = 10 }}\n"
    );
    let agent = write(dir.path(), "agent.toml", &manifest);
    let run = |extra: &[&str], log: &str| {
        let log = dir.path().join(log);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["run", agent.to_str().unwrap(), "-o"])
            .arg(dir.path().join("out.jsonl"))
            .arg("--event-log")
            .arg(&log)
            .args(extra)
            .current_dir(repo())
            .stdin(std::fs::File::open(repo().join("examples/word-stats/events.jsonl")).unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            records(&log),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (standard, stderr) = run(&[], "standard.log");
    // The type turned off is not logged; the rest is.
    assert!(of_type(&standard, "words_tokenized").is_empty());
    assert_eq!(standard.len(), 24 + 24);
    let input = first_of(&standard, "_input_event", "alice");
    assert_eq!(
        input["payload"]["text"],
        json!({ "truncatedString": "The quick ...", "omittedChars": 33 })
    );
    // Identifying fields are never cut.
    assert_eq!(input["eventId"].as_str().unwrap().len(), 32);
    let output = first_of(&standard, "_output_event", "alice");
    let top = &output["payload"]["top_words"];
    assert_eq!(top["omittedElements"], 1, "{output}");
    assert_eq!(top["truncatedList"].as_array().unwrap().len(), 2);
    assert!(stderr.contains("with values cut"), "{stderr}");

    // VERBOSE keeps values whole (the type turned off stays off).
    let (verbose, _) = run(&["--event-log-level", "verbose"], "verbose.log");
    assert!(of_type(&verbose, "words_tokenized").is_empty());
    let input = first_of(&verbose, "_input_event", "alice");
    assert_eq!(
        input["payload"]["text"],
        "The quick brown fox jumps over the lazy dog"
    );
    assert_eq!(input["logLevel"], "VERBOSE");
}

#[test]
fn a_log_that_cannot_be_written_is_reported_once_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // Its parent is a file: the log cannot be created.
    let blocker = write(dir.path(), "not-a-dir", "x");
    let out = word_stats(&[
        "-o",
        dir.path().join("out.jsonl").to_str().unwrap(),
        "--event-log",
        blocker.join("events.log").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let outputs = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
    assert_eq!(outputs.lines().count(), 6, "every output still written");
    assert_eq!(
        stderr.matches("cannot write the event log").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("0 records written; 54 not written"),
        "{stderr}"
    );

    // A full disk (every write fails with ENOSPC): the same.
    let out = word_stats(&[
        "-o",
        dir.path().join("out2.jsonl").to_str().unwrap(),
        "--event-log",
        "/dev/full",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let outputs = std::fs::read_to_string(dir.path().join("out2.jsonl")).unwrap();
    assert_eq!(outputs.lines().count(), 6, "every output still written");
    assert_eq!(
        stderr.matches("No space left on device").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("54 not written"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_calls_are_records_with_their_model_usage_and_failures() {
    let server = ModelServer::start().await;
    server.script([
        Reply::Json(openai_text("4", 40, 1)),
        Reply::Json(openai_text("none", 12, 2)),
        Reply::Status(500, None, "the model is down".into()),
    ]);
    // The product-reviews agent: two reviews are fewer than its
    // suggestion needs, so only `analyze` runs.
    let agent = crate::reviews::review_agent(&server.url);
    let settings = EventLogSettings {
        level: LogLevel::Verbose,
        ..EventLogSettings::default()
    };
    let events = vec![
        Event::input("p1", json!({ "review_id": "r1", "review": "Good." })),
        Event::input("p1", json!({ "review_id": "r2", "review": "Bad." })),
    ];
    let (_, summary, records) = logged_run(&agent, events, &settings).await;
    let stats = summary.event_log.expect("the summary counts the log");
    assert_eq!(stats.written, records.len() as u64);
    assert_eq!(stats.failed + stats.dropped, 0);

    let llm: Vec<&Value> = records
        .iter()
        .filter(|r| r["entityType"] == "llm")
        .collect();
    assert_eq!(llm.len(), 3, "{records:#?}");
    let first = llm[0];
    assert_eq!(first["eventType"], "_execution_finished_event");
    assert_eq!(first["entityName"], "review-model");
    assert_eq!(first["entityMetadata"]["model"], "scripted-model");
    assert_eq!(first["eventAttributes"]["inputTokens"], 40);
    assert_eq!(first["eventAttributes"]["outputTokens"], 1);
    // What the call asked and what came back.
    let asked = &first["eventAttributes"]["request"];
    assert_eq!(asked[0]["role"], "user", "{first}");
    assert!(asked[0]["content"].as_str().unwrap().contains("Good."));
    assert_eq!(first["eventAttributes"]["reply"]["content"], "4", "{first}");
    let run = first["inputRunId"].as_str().unwrap();
    assert_eq!(first["parentExecutionId"], format!("{run}/analyze"));
    // The second review's call failed, and so did its action.
    let failed = llm[2];
    assert_eq!(failed["eventType"], "_execution_failed_event");
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["problemCategory"], "model_call_failed");
    assert!(
        failed["eventAttributes"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{failed}"
    );
    let action = records
        .iter()
        .find(|r| r["executionId"] == failed["parentExecutionId"] && r["entityType"] == "action")
        .unwrap();
    assert_eq!(action["eventType"], "_execution_failed_event");
    assert_eq!(action["problemCategory"], "action_execution_failed");
    // And its error event is a record too.
    assert_eq!(of_type(&records, "_error_event").len(), 1);

    // The tree shows the failed run: the call, the action, the error event.
    let forest = weir::observe::tree::build(&records, Vec::new());
    assert!(forest.warnings.is_empty(), "{:?}", forest.warnings);
    assert_eq!(forest.runs.len(), 2);
    let analyze = &forest.runs[1].input.actions[0];
    assert_eq!(analyze.status, "failed");
    assert_eq!(analyze.calls.len(), 1);
    assert_eq!(analyze.calls[0].status, "failed");
    assert_eq!(analyze.emitted[0].event_type, "_error_event");
    let first = &forest.runs[0].input.actions[0];
    assert_eq!(first.calls.len(), 2);
    assert_eq!(first.calls[0].input_tokens, Some(40));
    assert_eq!(first.calls[0].model.as_deref(), Some("scripted-model"));
    assert_eq!(first.calls[0].reply.as_ref().unwrap()["content"], "4");
    assert!(first.calls[0].request.is_some());
    assert_eq!(
        forest.runs[0].input.payload.as_ref().unwrap()["review_id"],
        "r1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_re_done_after_a_crash_is_marked_and_its_replayed_calls_are_reused() {
    let misbehave = component("guest_misbehave.wasm");
    let (server, run, tmp) = crate::replay::stamp_killed_in_its_second_call(&misbehave).await;
    server.fallback(Reply::Json(openai_text("second", 5, 2)));
    let log = tmp.path().join("events.log");
    let done = run.run(&["--event-log", log.to_str().unwrap()]).await;
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let records = records(&log);
    let input = of_type(&records, "_input_event")[0];
    assert_eq!(input["recovered"], true, "{input}");
    let llm: Vec<&Value> = records
        .iter()
        .filter(|r| r["entityType"] == "llm")
        .collect();
    assert_eq!(llm.len(), 2, "{records:#?}");
    // Answered from the journal, not asked again; then asked.
    assert_eq!(llm[0]["eventType"], "_execution_reused_event");
    assert_eq!(llm[0]["status"], "reused");
    assert_eq!(llm[0]["eventAttributes"]["inputTokens"], 1);
    assert_eq!(llm[1]["eventType"], "_execution_finished_event");
    assert_eq!(llm[1]["eventAttributes"]["inputTokens"], 5);
    assert_eq!(server.count(), 3);
    let forest = weir::observe::tree::build(&records, Vec::new());
    assert!(forest.runs[0].recovered);
    assert_eq!(forest.runs[0].input.actions[0].calls[0].status, "reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denials_are_notes_of_the_action_that_was_refused() {
    // The JavaScript hostile guest's http_get, to a port it is not granted
    // (wasi:http's hook refuses it), and a model it is not granted.
    let agent = Agent::builder("denied-logged")
        .component("h", js_component("skill_hostile_js.wasm"))
        .action(
            ActionBuilder::new("fetch", "h")
                .export("http_get")
                .listen(types::INPUT)
                .http("http://127.0.0.1:9"),
        )
        .build();
    let events = vec![Event::input(
        "k",
        json!({ "url": "http://127.0.0.1:1/steal" }),
    )];
    let (outputs, _, records) = logged_run(&agent, events, &EventLogSettings::default()).await;
    assert_eq!(outputs[0].payload["code"], "denied", "{outputs:?}");
    let notes = of_type(&records, "_denial_event");
    assert_eq!(notes.len(), 1, "{records:#?}");
    assert_eq!(notes[0]["upstreamActionName"], "fetch");
    assert_eq!(notes[0]["payload"]["capability"], "http");
    assert!(
        notes[0]["payload"]["target"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1:1"),
        "{}",
        notes[0]
    );
    let forest = weir::observe::tree::build(&records, Vec::new());
    let fetch = &forest.runs[0].input.actions[0];
    assert_eq!(fetch.status, "failed");
    assert_eq!(fetch.notes[0].kind, "_denial_event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_are_records_and_an_ungranted_one_is_a_denial_note() {
    use crate::models::{tool_agent, use_tool};
    let logged = |agent: Agent, events: Vec<Event>| async move {
        logged_run(&agent, events, &EventLogSettings::default())
            .await
            .2
    };
    let records = logged(
        tool_agent(&["add", "explode"]),
        vec![
            use_tool("add", json!({ "a": 2, "b": 40 })),
            use_tool("explode", json!({})),
        ],
    )
    .await;
    let tools: Vec<&Value> = records
        .iter()
        .filter(|r| r["entityType"] == "tool")
        .collect();
    assert_eq!(tools.len(), 2, "{records:#?}");
    assert_eq!(tools[0]["entityName"], "add");
    assert_eq!(tools[0]["status"], "success");
    assert_eq!(
        tools[0]["eventAttributes"]["request"],
        json!({ "a": 2, "b": 40 })
    );
    assert!(
        !tools[0]["eventAttributes"]["reply"].is_null(),
        "{}",
        tools[0]
    );
    assert_eq!(tools[1]["entityName"], "explode");
    assert_eq!(tools[1]["eventType"], "_execution_failed_event");
    assert_eq!(tools[1]["problemCategory"], "tool_call_failed");
    let run = tools[1]["inputRunId"].as_str().unwrap();
    assert_eq!(tools[1]["parentExecutionId"], format!("{run}/use-tool"));

    // Not granted: refused on the host-call path, a note of its action.
    let records = logged(
        tool_agent(&[]),
        vec![use_tool("add", json!({ "a": 1, "b": 2 }))],
    )
    .await;
    let notes = of_type(&records, "_denial_event");
    assert_eq!(notes.len(), 1, "{records:#?}");
    assert_eq!(notes[0]["payload"]["capability"], "tool");
    assert_eq!(notes[0]["payload"]["target"], "add");
    assert_eq!(notes[0]["upstreamActionName"], "use-tool");
}
