//! Durable execution: `weir run --state` killed with SIGKILL at random
//! moments and restarted on the same input writes every output exactly
//! once, repeats no recorded model call, and keeps short-term memory as a
//! crash-free run would.

mod support;

use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Command, Stdio};
use std::sync::Arc;
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
    let summary_json = tmp.path().join("summary.json");
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
            .arg("--summary-json")
            .arg(&summary_json)
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
    let stderr = String::from_utf8_lossy(&finished.stderr);
    assert!(finished.status.success(), "{stderr}");
    // The last run picked the input up where the journal stopped: it read
    // only the events after the resume point.
    let done_before: usize = stderr
        .split("; the ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume message: {stderr}"));
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("summary.json")).unwrap())
            .unwrap();
    assert!(done_before > 0, "{stderr}");
    assert_eq!(
        summary["events_in"].as_u64().unwrap() as usize + done_before,
        events,
        "{summary}"
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
    let input_bytes = std::fs::metadata(tmp.path().join("in.jsonl"))
        .unwrap()
        .len();
    assert!(
        said.contains(&format!(
            "resume at:      input event {}, line {} (byte {input_bytes})",
            events + 1,
            events + 1
        )),
        "{said}"
    );
    assert!(said.contains("pending calls:  0"), "{said}");
    assert!(said.contains("outbox:         0"), "{said}");
    // k0's last input event is number events - KEYS + 1.
    assert!(
        said.contains(&format!("  k0: {}\n", events - KEYS + 1)),
        "{said}"
    );
    let said = weir(&["state", "compact", state_dir.to_str().unwrap()]);
    assert!(said.starts_with("compacted:"), "{said}");
}

fn payments_agent(dir: &std::path::Path, service: &str) -> std::path::PathBuf {
    write(
        dir,
        "payments.toml",
        &format!(
            r#"[agent]
name = "payments"

[components.p]
path = "{component}"
http = ["{service}"]
env = ["PAYMENTS_URL"]

[actions.pay]
component = "p"
listen = ["_input_event"]
tools = ["charge"]

[runtime]
max_concurrency = 8
"#,
            component = component("guest_payments.wasm").display()
        ),
    )
}

/// `weir run --state` of the payments agent, as a child process.
struct PaymentsRun {
    manifest: std::path::PathBuf,
    input: std::path::PathBuf,
    output: std::path::PathBuf,
    state: std::path::PathBuf,
    service: String,
}

impl PaymentsRun {
    fn new(dir: &std::path::Path, service: &str, orders: &[(String, String, u64)]) -> Self {
        let input = dir.join("orders.jsonl");
        let lines: String = orders
            .iter()
            .map(|(key, order, amount)| {
                format!(
                    "{}\n",
                    json!({ "key": key, "payload": { "order": order, "amount": amount } })
                )
            })
            .collect();
        std::fs::write(&input, lines).unwrap();
        PaymentsRun {
            manifest: payments_agent(dir, service),
            input,
            output: dir.join("paid.jsonl"),
            state: dir.join("state"),
            service: service.to_string(),
        }
    }

    fn spawn(&self) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("run")
            .arg(&self.manifest)
            .arg("--input")
            .arg(&self.input)
            .arg("--output")
            .arg(&self.output)
            .arg("--state")
            .arg(&self.state)
            .env("PAYMENTS_URL", &self.service)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    async fn finish(&self) -> Vec<Value> {
        let child = self.spawn();
        let done = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap();
        assert!(
            done.status.success(),
            "{}",
            String::from_utf8_lossy(&done.stderr)
        );
        std::fs::read_to_string(&self.output)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// Waits until `ready` holds (the service saw what the test waits for).
async fn until(mut ready: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if ready() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_made_before_a_crash_is_reconciled_not_repeated() {
    use support::payments::{Mode, PaymentServer};
    let service = PaymentServer::start(Mode::StallAfterCharging).await;
    let tmp = tempfile::tempdir().unwrap();
    let orders = vec![("alice".to_string(), "o-1".to_string(), 250)];
    let run = PaymentsRun::new(tmp.path(), &service.url, &orders);

    // The charge is made, and weir dies before hearing back.
    let mut child = run.spawn();
    until(|| service.charges().len() == 1).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let made = service.charges()[0].clone();
    assert_eq!(made.order, "o-1");
    assert_eq!(made.reference.len(), 32, "an idempotency key: {made:?}");

    // On restart the reconciler finds the charge by its reference; the tool
    // is not called again, and the output carries the original charge.
    service.set_mode(Mode::Answer(Duration::ZERO));
    let outputs = run.finish().await;
    assert_eq!(service.requests(), 1, "the charge was not repeated");
    assert_eq!(service.lookups(), 1, "the reconciler looked it up");
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    assert_eq!(outputs[0]["payload"]["charge"], made.id.as_str());
    assert_eq!(outputs[0]["payload"]["paid"], 250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_lost_before_a_crash_is_made_again_once() {
    use support::payments::{Mode, PaymentServer};
    let service = PaymentServer::start(Mode::StallBeforeCharging).await;
    let tmp = tempfile::tempdir().unwrap();
    let orders = vec![("bob".to_string(), "o-9".to_string(), 40)];
    let run = PaymentsRun::new(tmp.path(), &service.url, &orders);

    // The request is out, but the service never charged.
    let mut child = run.spawn();
    until(|| service.requests() == 1).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(service.charges().is_empty());

    // The reconciler finds nothing, so the call is made again, once.
    service.set_mode(Mode::Answer(Duration::ZERO));
    let outputs = run.finish().await;
    assert_eq!(service.lookups(), 1);
    assert_eq!(service.charges().len(), 1);
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    assert_eq!(outputs[0]["payload"]["charge"], "ch_1");
    // The repeated request carried the same reference as the lost one.
    assert_eq!(service.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_killed_at_random_moments_charge_every_order_exactly_once() {
    use support::payments::{Mode, PaymentServer};
    let count: usize = std::env::var("WEIR_CRASH_EVENTS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map(|n| n / 4)
        .unwrap_or(400);
    let kills: usize = std::env::var("WEIR_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    // Charges take a while to answer, so kills land between charge and reply.
    let service = PaymentServer::start(Mode::Answer(Duration::from_millis(15))).await;
    let tmp = tempfile::tempdir().unwrap();
    let orders: Vec<(String, String, u64)> = (0..count)
        .map(|i| (format!("c{}", i % 10), format!("o-{i}"), 1 + i as u64 % 7))
        .collect();
    let run = PaymentsRun::new(tmp.path(), &service.url, &orders);
    let mut killed = 0;
    for trial in 0..kills {
        let mut child = run.spawn();
        let mark = (trial + 1) * count / (kills + 1) + fastrand::usize(0..10);
        while child.try_wait().unwrap().is_none() && service.charges().len() < mark {
            tokio::time::sleep(Duration::from_millis(fastrand::u64(1..10))).await;
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
    }
    let outputs = run.finish().await;
    assert!(
        killed >= kills.min(2),
        "the kills landed after the run ended"
    );

    // Every order charged exactly once, and paid for once.
    let per_order = service.charges_per_order();
    assert_eq!(per_order.len(), count, "every order charged");
    let twice: Vec<_> = per_order.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "charged more than once: {twice:?}");
    assert_eq!(outputs.len(), count, "one output per order");
    let ids: HashSet<&str> = outputs.iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), count, "duplicate outputs");
    // Each call had its own idempotency key.
    let references: HashSet<String> = service.charges().into_iter().map(|c| c.reference).collect();
    assert_eq!(
        references.len(),
        count,
        "idempotency keys repeat across calls"
    );
    // Each output names the charge the service made for its order.
    let charge_of: HashMap<String, String> = service
        .charges()
        .into_iter()
        .map(|c| (c.order, c.id))
        .collect();
    for o in &outputs {
        let order = o["payload"]["order"].as_str().unwrap();
        assert_eq!(o["payload"]["charge"], charge_of[order].as_str(), "{o}");
    }
    // Memory as in a crash-free run: each key paid the sum of its orders.
    let mut expected: HashMap<String, u64> = HashMap::new();
    for (key, _, amount) in &orders {
        *expected.entry(key.clone()).or_default() += amount;
    }
    let mut paid: HashMap<String, u64> = HashMap::new();
    for o in &outputs {
        let key = o["key"].as_str().unwrap().to_string();
        let now = o["payload"]["paid"].as_u64().unwrap();
        let best = paid.entry(key).or_default();
        *best = (*best).max(now);
    }
    assert_eq!(paid, expected);
    eprintln!(
        "{killed} kills, {} charge requests for {count} orders, {} reconciled",
        service.requests(),
        service.lookups()
    );
    assert!(service.lookups() >= 1, "no kill landed inside a charge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_run_reads_the_same_clock_and_random_numbers() {
    let server = ModelServer::start().await;
    // The first call is answered; the second stalls until the kill.
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
            r#"[agent]
name = "stamp"

[components.m]
path = "{component}"

[actions.stamp]
component = "m"
listen = ["_input_event"]
models = ["assistant"]

[resources.conn]
kind = "chat-model-connection"
provider = "openai"
base_url = "{server}/v1"
max_retries = 0

[resources.assistant]
kind = "chat-model"
connection = "conn"
model = "m"
"#,
            component = component("guest_misbehave.wasm").display(),
            server = server.url,
        ),
    );
    let input = write(
        tmp.path(),
        "in.jsonl",
        "{\"key\": \"k\", \"payload\": {\"model\": \"assistant\"}}\n",
    );
    let output = tmp.path().join("out.jsonl");
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("run")
            .arg(&manifest)
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&output)
            .arg("--state")
            .arg(tmp.path().join("state"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut child = spawn();
    until(|| server.count() == 2).await;
    // The first call's record goes to disk with the next group commit,
    // right after the call returns; on a loaded machine give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    child.kill().unwrap();
    child.wait().unwrap();

    server.fallback(Reply::Json(openai_text("second", 1, 1)));
    let done = spawn().wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let questions: Vec<String> = server
        .received()
        .iter()
        .map(|r| {
            r.body["messages"][0]["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // The stamped question was asked once: the re-run read the same time
    // and random number, so its request matched the record and was replayed.
    assert_eq!(questions.len(), 3, "{questions:?}");
    assert!(questions[0].starts_with("stamp "), "{questions:?}");
    assert_eq!(questions[1], "second k");
    assert_eq!(questions[2], "second k");
    let out: Value =
        serde_json::from_str(std::fs::read_to_string(&output).unwrap().trim()).unwrap();
    let stamped = format!(
        "stamp {} {}",
        out["payload"]["stamp"].as_str().unwrap(),
        out["payload"]["random"].as_str().unwrap()
    );
    assert_eq!(questions[0], stamped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_input_is_refused_at_the_resume_point() {
    let server = ModelServer::start().await;
    // Key a's question is answered; key b's stalls until the kill.
    server.script([Reply::Json(openai_text("a", 1, 1))]);
    server.fallback(Reply::Delayed(
        Duration::from_secs(3600),
        Box::new(Reply::Json(openai_text("late", 1, 1))),
    ));
    let tmp = tempfile::tempdir().unwrap();
    let manifest = agent(tmp.path(), &server.url);
    let line = |key: &str| {
        format!(
            "{}\n",
            json!({ "key": key, "payload": { "model": "assistant", "question": key, "seq": 1 } })
        )
    };
    let input = write(tmp.path(), "in.jsonl", &(line("a") + &line("b")));
    let spawn = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("run")
            .arg(&manifest)
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(tmp.path().join("out.jsonl"))
            .arg("--state")
            .arg(tmp.path().join("state"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut child = spawn(&[]);
    let inspect = || {
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["state", "inspect"])
            .arg(tmp.path().join("state"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // One key's run is committed, the other's is in flight (whichever
    // question reached the server first was answered).
    until(|| {
        server.count() == 2
            && std::fs::read_to_string(tmp.path().join("out.jsonl"))
                .is_ok_and(|t| t.lines().count() == 2)
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let first: Value = serde_json::from_str(
        std::fs::read_to_string(tmp.path().join("out.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let (done_key, open_key, open_line) = if first["key"] == "a" {
        ("a", "b", 2)
    } else {
        ("b", "a", 1)
    };
    let said = inspect();
    assert!(
        said.contains(&format!(
            "resume at:      input event {open_line}, line {open_line}"
        )),
        "{said}"
    );

    // The line there is not what it was: refused with the place and a way out.
    let changed = if open_line == 1 {
        line("c") + &line("b")
    } else {
        line("a") + &line("c")
    };
    std::fs::write(&input, changed).unwrap();
    server.fallback(Reply::Json(openai_text("now", 1, 1)));
    let refused = spawn(&[]).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains(&format!(
            "in.jsonl:{open_line}: this is not the line the journal stopped at"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("--from-start"), "{stderr}");

    // --from-start reads it all again; the committed event is still skipped.
    let done = spawn(&["--from-start"]).wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let text = std::fs::read_to_string(tmp.path().join("out.jsonl")).unwrap();
    let keys: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["key"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(keys.iter().filter(|k| *k == done_key).count(), 2, "{text}");
    assert_eq!(keys.iter().filter(|k| *k == "c").count(), 2, "{text}");
    assert!(!keys.contains(&open_key.to_string()), "{text}");
}

/// The journal file's 4 KiB pages that differ between two versions.
fn changed_pages(before: &[u8], after: &[u8]) -> Vec<usize> {
    (0..after.len().div_ceil(PAGE))
        .filter(|&p| {
            let range = page_range(p, after.len());
            before.get(range.clone()) != Some(&after[range])
        })
        .collect()
}

const PAGE: usize = 4096;

fn page_range(page: usize, len: usize) -> std::ops::Range<usize> {
    page * PAGE..((page + 1) * PAGE).min(len)
}

/// `before`, grown to `after`'s length (zeros where nothing was written),
/// with `pages` of `after` written over it.
fn partly_written(before: &[u8], after: &[u8], pages: &[usize]) -> Vec<u8> {
    let mut bytes = before.to_vec();
    bytes.resize(after.len(), 0);
    for &page in pages {
        let range = page_range(page, after.len());
        bytes[range.clone()].copy_from_slice(&after[range]);
    }
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_last_commit_is_discarded_and_the_run_goes_on() {
    use weir::state::StateStore;
    let tmp = tempfile::tempdir().unwrap();
    let live = tmp.path().join("live");
    let journal = live.join("journal.redb");
    let store = StateStore::open(&live, "agent-v1").unwrap();
    for seq in 1..=20 {
        let key = format!("k{}", seq % 4);
        let memory = json!({ "v": seq, "pad": "x".repeat(300) });
        store
            .commit(&key, seq, memory, Vec::new(), &format!("run-{seq}"))
            .await
            .unwrap();
    }
    // Copies taken while the journal is open, as a crash leaves it.
    let before = std::fs::read(&journal).unwrap();
    let last = json!({ "v": 21, "pad": "y".repeat(5000) });
    store
        .commit("k1", 21, last.clone(), Vec::new(), "run-21")
        .await
        .unwrap();
    let after = std::fs::read(&journal).unwrap();
    let pages = changed_pages(&before, &after);
    assert!(
        pages.len() >= 3 && pages[0] == 0,
        "the last commit wrote pages: {pages:?}"
    );
    let data: Vec<usize> = pages[1..].to_vec();

    // What a crash during the last commit can leave: with two-phase commit
    // the header (page 0) is written only after the data it points at, so
    // any part of the data may be on disk, in the grown file, but the old
    // header; or everything.
    // k1's inputs are 1, 5, 9, 13, 17, then 21.
    let mut torn: Vec<(String, Vec<u8>, u64)> = vec![
        (
            "the file grown, nothing written".into(),
            partly_written(&before, &after, &[]),
            17,
        ),
        (
            "all data, no header".into(),
            partly_written(&before, &after, &data),
            17,
        ),
        ("the whole commit".into(), after.clone(), 21),
    ];
    for _ in 0..6 {
        let some: Vec<usize> = data.iter().copied().filter(|_| fastrand::bool()).collect();
        let what = format!("data pages {some:?} of {data:?}, no header");
        torn.push((what, partly_written(&before, &after, &some), 17));
    }
    for (what, bytes, expected) in torn {
        let dir = tmp.path().join(format!("torn-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("journal.redb"), &bytes).unwrap();
        // The torn commit is discarded: the journal holds the commits
        // before it, whole.
        let store = StateStore::open(&dir, "agent-v1")
            .unwrap_or_else(|e| panic!("{what}: the journal was not recovered: {e}"));
        let keys: BTreeMap<String, (u64, Value)> = store
            .keys()
            .unwrap()
            .into_iter()
            .map(|(k, seq, memory)| (k, (seq, memory)))
            .collect();
        assert_eq!(keys.len(), 4, "{what}");
        let (seq, memory) = &keys["k1"];
        assert_eq!(*seq, expected, "{what}");
        if expected == 21 {
            assert_eq!(memory, &last, "{what}");
        } else {
            assert_eq!(memory["v"], 17, "{what}");
        }
        // The discarded work runs again and commits; later work goes on.
        store
            .commit("k1", 21, last.clone(), Vec::new(), "run-21")
            .await
            .unwrap();
        store
            .commit("k2", 22, json!({ "v": 22 }), Vec::new(), "run-22")
            .await
            .unwrap();
        assert_eq!(store.keys().unwrap().len(), 4, "{what}");
    }

    // A damaged file (the new header over old data: bit rot, not a crash)
    // is refused with a message naming it, not a panic.
    let dir = tmp.path().join("damaged");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("journal.redb"),
        partly_written(&before, &after, &[0]),
    )
    .unwrap();
    let err = StateStore::open(&dir, "agent-v1")
        .err()
        .expect("a damaged journal is refused")
        .to_string();
    assert!(
        err.contains("damaged/journal.redb") && err.contains("damaged"),
        "{err}"
    );
    assert!(err.contains("move it aside"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_intake_with_an_error_and_loses_nothing() {
    // The journal grows past the largest file the process may write (the
    // file-size limit, with SIGXFSZ ignored, as a full disk fails a write),
    // while the outputs stay small.
    let tmp = tempfile::tempdir().unwrap();
    let manifest = write(
        tmp.path(),
        "full.toml",
        &format!(
            "[agent]\nname = \"full\"\n\n[components.m]\npath = \"{}\"\n\n[actions.remember]\ncomponent = \"m\"\nlisten = [\"_input_event\"]\n",
            component("guest_misbehave.wasm").display()
        ),
    );
    let events = 1500;
    let pad = "x".repeat(4096);
    let lines: String = (0..events)
        .map(|i| {
            let payload = json!({ "path": format!("p{i}"), "value": pad, "read": "none" });
            format!(
                "{}\n",
                json!({ "key": format!("k{}", i % 10), "payload": payload })
            )
        })
        .collect();
    let input = write(tmp.path(), "in.jsonl", &lines);
    let output = tmp.path().join("out.jsonl");
    let state = tmp.path().join("state");
    let run = |limit: Option<u64>| {
        let mut command = Command::new("sh");
        command.arg("-c");
        match limit {
            Some(bytes) => command.arg(format!(
                "trap '' XFSZ; exec prlimit --fsize={bytes} \"$0\" \"$@\""
            )),
            None => command.arg("exec \"$0\" \"$@\""),
        };
        command
            .arg(env!("CARGO_BIN_EXE_weir"))
            .arg("run")
            .arg(&manifest)
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&output)
            .arg("--state")
            .arg(&state)
            .output()
            .unwrap()
    };
    let stopped = run(Some(3 << 20));
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert!(!stopped.status.success(), "the run should fail: {stderr}");
    assert!(stderr.contains("journal.redb"), "{stderr}");
    assert!(stderr.contains("File too large"), "{stderr}");
    assert!(stderr.contains("stopped taking input"), "{stderr}");
    let written = std::fs::read_to_string(&output)
        .unwrap_or_default()
        .lines()
        .count();
    assert!(written < events, "it stopped early: {written} outputs");

    // With room again, the run finishes: every output exactly once.
    let finished = run(None);
    assert!(
        finished.status.success(),
        "{}",
        String::from_utf8_lossy(&finished.stderr)
    );
    let text = std::fs::read_to_string(&output).unwrap();
    let ids: HashSet<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids.len(), text.lines().count(), "duplicates");
    assert_eq!(ids.len(), events, "every event's output");
    eprintln!("stopped after {written} outputs; finished all {events}\n{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_run_gets_the_recorded_http_response() {
    // A page that changes on every request: "hit 1", "hit 2", ...
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/page",
        axum::routing::get(move || {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            async move { format!("hit {n}") }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let server = ModelServer::start().await;
    server.fallback(Reply::Delayed(
        Duration::from_secs(3600),
        Box::new(Reply::Json(openai_text("late", 1, 1))),
    ));
    let tmp = tempfile::tempdir().unwrap();
    let manifest = write(
        tmp.path(),
        "fetch.toml",
        &format!(
            r#"[agent]
name = "fetch"

[components.m]
path = "{component}"

[actions.fetch]
component = "m"
export = "fetch-then-ask"
listen = ["_input_event"]
models = ["assistant"]
http = ["{page}"]

[resources.conn]
kind = "chat-model-connection"
provider = "openai"
base_url = "{server}/v1"
max_retries = 0

[resources.assistant]
kind = "chat-model"
connection = "conn"
model = "m"
"#,
            component = component("guest_misbehave.wasm").display(),
            server = server.url,
        ),
    );
    let input = write(
        tmp.path(),
        "in.jsonl",
        &format!(
            "{}\n",
            json!({ "key": "k", "payload": { "model": "assistant", "url": format!("{page}/page") } })
        ),
    );
    let output = tmp.path().join("out.jsonl");
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("run")
            .arg(&manifest)
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&output)
            .arg("--state")
            .arg(tmp.path().join("state"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // The page is fetched, then the model stalls: kill.
    let mut child = spawn();
    until(|| server.count() == 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);

    // The re-run gets the recorded page; the server is not asked again.
    server.fallback(Reply::Json(openai_text("answered", 1, 1)));
    let done = spawn().wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the page was fetched again"
    );
    let out: Value =
        serde_json::from_str(std::fs::read_to_string(&output).unwrap().trim()).unwrap();
    assert_eq!(out["payload"]["fetched"], "hit 1");
    assert_eq!(out["payload"]["answer"], "answered");
    // The model was asked the same question both times.
    let asked: Vec<Value> = server
        .received()
        .iter()
        .map(|r| r.body["messages"][0]["content"].clone())
        .collect();
    assert_eq!(asked, vec![json!("hit 1"), json!("hit 1")]);
}
