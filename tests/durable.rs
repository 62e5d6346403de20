//! Durable execution: `weir run --state` killed with SIGKILL at random
//! moments and restarted on the same input writes every output exactly
//! once, repeats no recorded model call, and keeps short-term memory as a
//! crash-free run would.

mod support;

use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::model_server::{ModelServer, Reply, openai_text};
use support::*;

const KEYS: usize = 20;

fn agent(dir: &std::path::Path, server: &str) -> std::path::PathBuf {
    write(
        dir,
        "agent.toml",
        &format!(
            r#"[agent]
name = "durable"

[components.m]
path = "{component}"

[actions.ask]
component = "m"
listen = ["_input_event"]
models = ["assistant"]

[actions.order]
component = "m"
listen = ["_input_event"]

[resources.conn]
kind = "chat-model-connection"
provider = "openai"
base_url = "{server}/v1"
max_retries = 0

[resources.assistant]
kind = "chat-model"
connection = "conn"
model = "m"

[runtime]
max_concurrency = 8
"#,
            component = component("guest_misbehave.wasm").display()
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    let events: usize = std::env::var("WEIR_CRASH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let kills: usize = std::env::var("WEIR_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let server = ModelServer::start().await;
    server.fallback(Reply::Delayed(
        Duration::from_millis(5),
        Box::new(Reply::Json(openai_text("noted", 5, 1))),
    ));
    let tmp = tempfile::tempdir().unwrap();
    let manifest = agent(tmp.path(), &server.url);
    let input = tmp.path().join("in.jsonl");
    let mut lines = String::new();
    for i in 0..events {
        let key = format!("k{}", i % KEYS);
        let seq = i / KEYS + 1;
        lines.push_str(
            &json!({ "key": key, "payload": { "model": "assistant", "question": format!("q{i}"), "seq": seq } })
                .to_string(),
        );
        lines.push('\n');
    }
    std::fs::write(&input, lines).unwrap();
    let output = tmp.path().join("out.jsonl");
    let state = tmp.path().join("state");
    let watched = output.clone();
    let run = move || {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("run")
            .arg(&manifest)
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&output)
            .arg("--state")
            .arg(&state)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let lines_written = |path: &std::path::Path| {
        std::fs::read(path)
            .map(|b| b.iter().filter(|&&c| c == b'\n').count())
            .unwrap_or(0)
    };
    let mut killed = 0;
    for trial in 0..kills {
        let mut child = run();
        // Kill once the output passes a mark that differs per trial (with
        // some jitter), so each kill lands mid-run.
        let mark = (trial + 1) * 2 * events / (kills + 1) + fastrand::usize(0..50);
        while child.try_wait().unwrap().is_none() && lines_written(&watched) < mark {
            tokio::time::sleep(Duration::from_millis(fastrand::u64(1..15))).await;
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().unwrap();
    }
    let finished = tokio::task::spawn_blocking(move || run().wait_with_output().unwrap())
        .await
        .unwrap();
    let output = tmp.path().join("out.jsonl");
    assert!(
        finished.status.success(),
        "{}",
        String::from_utf8_lossy(&finished.stderr)
    );

    // Every output exactly once.
    let text = std::fs::read_to_string(&output).unwrap();
    let outputs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line {l}: {e}")))
        .collect();
    let ids: HashSet<&str> = outputs.iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), outputs.len(), "duplicate outputs");
    assert_eq!(outputs.len(), 2 * events, "every event gives two outputs");
    assert!(
        outputs.iter().all(|o| o["type"] == "_output_event"),
        "no errors"
    );

    // Short-term memory as in a crash-free run: each key's `order` outputs
    // saw its sequence numbers exactly once, in order.
    let mut last_seen: BTreeMap<String, Value> = BTreeMap::new();
    for o in &outputs {
        if o["payload"]["seen"].is_array() {
            let key = o["key"].as_str().unwrap().to_string();
            let seen = &o["payload"]["seen"];
            let longer = last_seen
                .get(&key)
                .is_none_or(|prev| prev.as_array().unwrap().len() < seen.as_array().unwrap().len());
            if longer {
                last_seen.insert(key, seen.clone());
            }
        }
    }
    assert_eq!(last_seen.len(), KEYS);
    for (key, seen) in &last_seen {
        let expected: Vec<Value> = (1..=events / KEYS).map(|s| json!(s)).collect();
        assert_eq!(seen.as_array().unwrap(), &expected, "memory of {key}");
    }

    // Each question was asked once, but for calls in flight at a kill or
    // finished since the last commit reached the disk (a few per key in
    // flight; far below the 2,000 a journal-less restart would repeat).
    let mut asked: HashMap<String, usize> = HashMap::new();
    for request in server.received() {
        let question = request.body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
            .to_string();
        *asked.entry(question).or_default() += 1;
    }
    assert_eq!(asked.len(), events, "every question asked");
    let repeats: usize = asked.values().map(|n| n - 1).sum();
    assert!(
        repeats <= killed * 64,
        "{repeats} repeated model calls after {killed} kills"
    );
    assert!(
        killed >= kills.min(2),
        "the kills landed after the run ended"
    );
    eprintln!("{killed} kills, {repeats} repeated in-flight model calls");

    // The journal holds each key's position and no leftover work.
    let weir = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let state_dir = tmp.path().join("state");
    let said = weir(&["state", "inspect", state_dir.to_str().unwrap(), "--keys"]);
    assert!(said.contains(&format!("keys:           {KEYS}")), "{said}");
    assert!(
        said.contains(&format!("inputs done:    {events}")),
        "{said}"
    );
    assert!(said.contains("pending calls:  0"), "{said}");
    assert!(said.contains("outbox:         0"), "{said}");
    assert!(said.contains(&format!("  k0: {}", events / KEYS)), "{said}");
    let said = weir(&["state", "compact", state_dir.to_str().unwrap()]);
    assert!(said.starts_with("compacted:"), "{said}");
}
