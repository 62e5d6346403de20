//! `weir serve --state`: accepted events are on disk before the answer, a
//! retried submit is not a second input, outputs keep their numbers and
//! stay until acknowledged, and a service killed with SIGKILL at random
//! moments and started again loses nothing and runs nothing twice that was
//! recorded.

use crate::serve::{Sse, read_events, serving, word_stats};
use crate::support::durable::{ask_and_order as agent, longest_seen, times_asked};
use crate::support::model_server::{ModelServer, Reply, openai_text};
use crate::support::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use weir::serve::ServiceSettings;

/// Posts `body` (JSON) to `url`; the status and answer.
async fn post(http: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let response = http.post(url).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Reads every output kept after `after`, until `n` are read.
async fn outputs_after(http: &reqwest::Client, url: &str, after: u64, n: usize) -> Vec<Sse> {
    let mut stream = http
        .get(format!("{url}/v1/agents/word-stats/outputs?after={after}"))
        .send()
        .await
        .unwrap();
    read_events(&mut stream, n).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_submit_runs_once_and_a_restart_keeps_runs_outputs_and_their_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let settings = ServiceSettings {
        state: Some(tmp.path().join("state")),
        admin_token: Some("admin".into()),
        ..ServiceSettings::default()
    };
    let (url, service) = serving(vec![word_stats()], settings.clone()).await;
    let http = reqwest::Client::new();
    let events = format!("{url}/v1/agents/word-stats/events");

    // An id seen before with the same content is a retry; with other
    // content, a conflict that takes nothing after it.
    let first = json!({ "id": "a-1", "key": "ann", "payload": "the first words" });
    let (status, answer) = post(&http, &format!("{events}?wait=30"), &first).await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = post(&http, &events, &first).await;
    assert_eq!(
        (status, &answer["again"]),
        (202, &json!(["a-1"])),
        "{answer}"
    );
    let other = json!([
        { "id": "a-2", "key": "ann", "payload": "new words" },
        { "id": "a-1", "key": "ann", "payload": "not the first words" },
        { "id": "a-3", "key": "ann", "payload": "never taken" },
    ]);
    let (status, answer) = post(&http, &events, &other).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["ids"], json!(["a-2"]), "taken before the conflict");
    assert!(
        answer["error"].as_str().unwrap().contains("`a-1`"),
        "{answer}"
    );

    // With an Idempotency-Key, events without ids get ids from it: the
    // request retried is taken once.
    let batch =
        json!([{ "key": "bob", "payload": "one two" }, { "key": "bob", "payload": "three" }]);
    let mut answers = Vec::new();
    for _ in 0..2 {
        let response = http
            .post(format!("{events}?wait=30"))
            .header("idempotency-key", "req-7")
            .json(&batch)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        answers.push(response.json::<Value>().await.unwrap());
    }
    assert_eq!(answers[0]["ids"], json!(["req-7/1", "req-7/2"]));
    assert_eq!(answers[1]["again"], answers[0]["ids"]);
    assert_eq!(
        answers[1]["runs"], answers[0]["runs"],
        "the same runs, done once"
    );

    // a-1, a-2, req-7/1, req-7/2: four runs, one output each, numbered 1-4.
    let before = outputs_after(&http, &url, 0, 4).await;
    let numbered: Vec<(String, String)> = before
        .iter()
        .map(|e| (e.id.clone().unwrap(), e.data.clone()))
        .collect();
    assert_eq!(
        numbered.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["1", "2", "3", "4"]
    );
    // A key's memory reset is durable: it stays reset after a restart.
    let memory = |url: &str, key: &str| format!("{url}/v1/agents/word-stats/keys/{key}/memory");
    let reset: Value = http
        .delete(memory(&url, "ann"))
        .bearer_auth("admin")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        reset["memory"]["stats"].is_object(),
        "what it held: {reset}"
    );
    service.finish().await;
    drop(service);

    // Started again on the same state: the outputs with their numbers, the
    // runs it remembers (and their retries), numbering going on.
    let (url, service) = serving(vec![word_stats()], settings.clone()).await;
    let events = format!("{url}/v1/agents/word-stats/events");
    let again = outputs_after(&http, &url, 0, 4).await;
    let renumbered: Vec<(String, String)> = again
        .iter()
        .map(|e| (e.id.clone().unwrap(), e.data.clone()))
        .collect();
    assert_eq!(
        renumbered, numbered,
        "the same outputs under the same numbers"
    );
    let run: Value = json_of(http.get(format!("{url}/v1/agents/word-stats/runs/a-2"))).await;
    assert_eq!(run["status"], "done", "{run}");
    assert_eq!(run["key"], "ann");
    assert_eq!(run["outputs"].as_array().unwrap().len(), 1, "{run}");
    let (status, answer) = post(&http, &events, &first).await;
    assert_eq!(
        (status, &answer["again"]),
        (202, &json!(["a-1"])),
        "{answer}"
    );
    let (status, _) = post(
        &http,
        &format!("{events}?wait=30"),
        &json!({ "id": "c-1", "key": "cy", "payload": "after the restart" }),
    )
    .await;
    assert_eq!(status, 200);
    let fifth = outputs_after(&http, &url, 4, 1).await;
    assert_eq!(fifth[0].id.as_deref(), Some("5"));

    // Acknowledged outputs are no longer kept, across a restart too.
    let acked: Value = http
        .delete(format!("{url}/v1/agents/word-stats/outputs?through=3"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(acked, json!({ "acknowledged": 3, "latest": 5 }));
    service.finish().await;
    drop(service);
    let (url, service) = serving(vec![word_stats()], settings).await;
    let kept = outputs_after(&http, &url, 0, 3).await;
    assert_eq!(kept[0].event, "missed", "{kept:?}");
    assert_eq!(kept[0].data, r#"{"missed":3}"#);
    let numbers: Vec<&str> = kept[1..].iter().map(|e| e.id.as_deref().unwrap()).collect();
    assert_eq!(numbers, ["4", "5"]);
    service.finish().await;

    let said = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["state", "inspect"])
        .arg(tmp.path().join("state/word-stats"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&said.stdout);
    assert!(
        said.contains("accepted:       0 waiting to run, 5 ran"),
        "{said}"
    );
    assert!(said.contains("outbox:         2 "), "{said}");
}

const KEYS: usize = 10;

/// A `weir serve --state` process and its address.
struct Server {
    child: std::process::Child,
    url: String,
}

fn start(manifest: &std::path::Path, state: &std::path::Path) -> Server {
    let (child, stderr, url) = announced(
        std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("serve")
            .arg(manifest)
            .arg("--state")
            .arg(state)
            .args(["--listen", "127.0.0.1:0"])
            .env("WEIR_LOG", "error"),
        "weir: serving durable at ",
    );
    // Drained, so the child never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut { stderr }, &mut std::io::sink()));
    Server { child, url }
}

/// Submits `batches` in order, each until it is answered 202 (a killed
/// server's request is sent again to the next one, as a client retries:
/// what the killed one had accepted is then a retry); returns how many
/// were answered when `stop` is set.
async fn submit_all(
    http: reqwest::Client,
    url: std::sync::Arc<std::sync::Mutex<String>>,
    batches: Vec<Value>,
    from: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> usize {
    let mut next = from;
    while next < batches.len() {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return next;
        }
        let at = url.lock().unwrap().clone();
        let sent = http
            .post(format!("{at}/v1/agents/durable/events"))
            .json(&batches[next])
            .send()
            .await;
        match sent {
            Ok(response) if response.status() == 202 => {
                next += 1;
                // Paced like the runs, so kills land among the submits too.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(response) if response.status() == 429 => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(response) => panic!("{}: {:?}", response.status(), response.text().await),
            // The server is gone: wait for the next one.
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    next
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing_and_runs_nothing_twice() {
    components();
    let events: usize = std::env::var("WEIR_CRASH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let kills = 3;
    let server = ModelServer::start().await;
    server.fallback(Reply::Delayed(
        Duration::from_millis(5),
        Box::new(Reply::Json(openai_text("noted", 5, 1))),
    ));
    let tmp = tempfile::tempdir().unwrap();
    let manifest = agent(tmp.path(), &server.url);
    let state = tmp.path().join("state");
    // Batches of 20 with ids of their own, each key's events in order.
    let batches: Vec<Value> = (0..events)
        .collect::<Vec<_>>()
        .chunks(20)
        .map(|chunk| {
            let batch: Vec<Value> = chunk
                .iter()
                .map(|&i| {
                    json!({
                        "id": format!("e{i}"),
                        "key": format!("k{}", i % KEYS),
                        "payload": {
                            "model": "assistant",
                            "question": format!("q{i}"),
                            "seq": i / KEYS + 1
                        }
                    })
                })
                .collect();
            json!(batch)
        })
        .collect();

    let http = reqwest::Client::new();
    // Outputs by number as read after each kill: a number read again must
    // name the same output.
    let mut seen: BTreeMap<u64, String> = BTreeMap::new();
    let mut submitted = 0;
    let mut kills_landed = 0;
    let url = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    for trial in 0..=kills {
        let mut serving = start(&manifest, &state);
        let agents = format!("{}/v1/agents", serving.url);
        let latest = |http: reqwest::Client, agents: String| async move {
            let listed: Value = json_of(http.get(&agents)).await;
            listed["agents"][0]["outputs"].as_u64().unwrap() as usize
        };
        // Every output kept from before, from the first: the same under
        // the same numbers.
        let kept = latest(http.clone(), agents.clone()).await;
        let mut stream = http
            .get(format!("{}/v1/agents/durable/outputs?after=0", serving.url))
            .send()
            .await
            .unwrap();
        for event in read_events(&mut stream, kept).await {
            record(&mut seen, &event);
        }
        *url.lock().unwrap() = serving.url.clone();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let submitter = tokio::spawn(submit_all(
            http.clone(),
            url.clone(),
            batches.clone(),
            submitted,
            stop.clone(),
        ));
        if trial == kills {
            submitted = submitter.await.unwrap();
            assert_eq!(submitted, batches.len());
            for _ in 0..600 {
                if latest(http.clone(), agents.clone()).await == 2 * events {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let mut stream = http
                .get(format!("{}/v1/agents/durable/outputs?after=0", serving.url))
                .send()
                .await
                .unwrap();
            for event in read_events(&mut stream, 2 * events).await {
                record(&mut seen, &event);
            }
            serving.child.kill().unwrap();
            serving.child.wait().unwrap();
            break;
        }
        // Killed once the outputs pass a mark that differs per trial (with
        // some jitter), so each kill lands mid-run.
        let mark = (trial + 1) * 2 * events / (kills + 1) + fastrand::usize(0..40);
        let mut at = 0;
        while at < mark && serving.child.try_wait().unwrap().is_none() {
            at = latest(http.clone(), agents.clone()).await;
            tokio::time::sleep(Duration::from_millis(fastrand::u64(1..10))).await;
        }
        serving.child.kill().unwrap(); // SIGKILL
        serving.child.wait().unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        submitted = submitter.await.unwrap();
        eprintln!("kill {trial}: {submitted} batches submitted, {at} outputs released");
        kills_landed += usize::from(at < 2 * events);
    }

    assert!(kills_landed >= 2, "the kills landed after the runs ended");

    // Every output exactly once, numbered 1, 2, ... without a gap.
    assert_eq!(seen.len(), 2 * events, "every event gives two outputs");
    let numbers: Vec<u64> = seen.keys().copied().collect();
    assert_eq!(numbers, (1..=2 * events as u64).collect::<Vec<_>>());
    let outputs: Vec<Value> = seen
        .values()
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    let ids: HashSet<&str> = outputs.iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), outputs.len(), "no output twice");
    assert!(outputs.iter().all(|o| o["type"] == "_output_event"));

    // Each key's memory saw its events once each, in order.
    let longest = longest_seen(&outputs);
    assert_eq!(longest.len(), KEYS);
    for (key, seen) in &longest {
        let expected: Vec<Value> = (1..=events / KEYS).map(|s| json!(s)).collect();
        assert_eq!(seen, &expected, "memory of {key}");
    }

    // Each question asked once, but for calls in flight at a kill.
    let asked = times_asked(&server);
    assert_eq!(asked.len(), events, "every question asked");
    let repeats: usize = asked.values().map(|n| n - 1).sum();
    assert!(
        repeats <= kills * 32,
        "{repeats} repeated model calls after {kills} kills"
    );
    eprintln!("{kills} kills, {repeats} repeated in-flight model calls");
}

/// Keeps a streamed output under its number; a number seen before must
/// name the same output.
fn record(seen: &mut BTreeMap<u64, String>, event: &Sse) {
    assert_eq!(event.event, "output", "{event:?}");
    let number: u64 = event.id.as_deref().unwrap().parse().unwrap();
    if let Some(before) = seen.insert(number, event.data.clone()) {
        assert_eq!(before, event.data, "output {number} changed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_lets_runs_taken_finish_on_the_old_plan_and_the_new_one_goes_on_from_there() {
    let server = ModelServer::start().await;
    // Slow enough that the first run is still asking when the reload comes.
    server.fallback(Reply::Delayed(
        Duration::from_millis(1500),
        Box::new(Reply::Json(openai_text("noted", 5, 1))),
    ));
    let tmp = tempfile::tempdir().unwrap();
    let old = agent(tmp.path(), &server.url);
    let text = std::fs::read_to_string(&old).unwrap();
    let new = tmp.path().join("durable-2.toml");
    // The new plan asks another model.
    std::fs::write(&new, text.replace("model = \"m\"", "model = \"m2\"")).unwrap();
    let load = |manifest: &std::path::Path| weir::Agent::from_manifest(manifest).unwrap();
    let settings = ServiceSettings {
        state: Some(tmp.path().join("state")),
        ..ServiceSettings::default()
    };
    let (url, service) = serving(vec![load(&old)], settings.clone()).await;
    let http = reqwest::Client::new();
    let events = format!("{url}/v1/agents/durable/events");
    let event = |id: &str, seq: u64| json!({ "id": id, "key": "k", "payload": { "model": "assistant", "question": id, "seq": seq } });
    let (status, _) = post(&http, &events, &event("before", 1)).await;
    assert_eq!(status, 202);
    while server.received().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The reload waits for the run in flight; submits meanwhile are told
    // to come back.
    let new_plan = plan(&load(&new)).await;
    let listed: Value = json_of(http.get(format!("{url}/v1/agents"))).await;
    let digest_before = listed["agents"][0]["plan"].clone();
    let reloading = service.clone();
    let reload = tokio::spawn(async move { reloading.reload(vec![new_plan]).await });
    let mut waited = 0;
    loop {
        let ready = http.get(format!("{url}/readyz")).send().await.unwrap();
        if ready.status() == 503 {
            assert_eq!(ready.text().await.unwrap(), "reloading\n");
            break;
        }
        waited += 1;
        assert!(waited < 2000, "the reload never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut told_to_wait = 0;
    while told_to_wait < 1000 {
        let response = http
            .post(&events)
            .json(&event("after", 2))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            202 => break,
            503 => {
                assert_eq!(response.headers()["retry-after"], "1");
                let answer: Value = response.json().await.unwrap();
                assert!(
                    answer["error"].as_str().unwrap().contains("reloading"),
                    "{answer}"
                );
                told_to_wait += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("{other}"),
        }
    }
    assert!(told_to_wait > 0, "the submit came during the reload");
    let reloaded = reload.await.unwrap();
    assert_eq!(
        reloaded["durable"].as_ref().unwrap(),
        &weir::serve::Reloaded::Replaced
    );
    let done: Value = json_of(http.get(format!("{url}/v1/agents/durable/runs/after"))).await;
    let done = if done["status"] == "done" {
        done
    } else {
        let (_, answer) = post(&http, &format!("{events}?wait=30"), &event("after", 2)).await;
        answer["runs"][0].clone()
    };
    assert_eq!(done["status"], "done", "{done}");

    // The run taken before asked the old plan's model, the one after the
    // new plan's; the key's memory went on (the new run saw both).
    let models: Vec<String> = server
        .received()
        .iter()
        .map(|r| r.body["model"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(models, ["m", "m2"]);
    let mut stream = http
        .get(format!("{url}/v1/agents/durable/outputs?after=0"))
        .send()
        .await
        .unwrap();
    let outputs = read_events(&mut stream, 4).await;
    let numbers: Vec<&str> = outputs.iter().map(|e| e.id.as_deref().unwrap()).collect();
    assert_eq!(
        numbers,
        ["1", "2", "3", "4"],
        "one numbering across the reload"
    );
    let seen: Vec<Value> = outputs
        .iter()
        .map(|e| serde_json::from_str::<Value>(&e.data).unwrap())
        .filter_map(|o| o["payload"]["seen"].as_array().cloned())
        .map(Value::from)
        .collect();
    assert_eq!(seen, [json!([1]), json!([1, 2])]);
    let reloaded_plan = plan(&load(&new)).await;
    let listed: Value = json_of(http.get(format!("{url}/v1/agents"))).await;
    assert_ne!(
        listed["agents"][0]["plan"], digest_before,
        "the new plan is served"
    );
    // The same plan again changes nothing.
    let again = service.reload(vec![reloaded_plan]).await;
    assert_eq!(
        again["durable"].as_ref().unwrap(),
        &weir::serve::Reloaded::Unchanged
    );
    service.finish().await;
    drop(service);

    // The journal is the new plan's now: a restart on it goes on.
    let (url, service) = serving(vec![load(&new)], settings).await;
    let memory: Value = json_of(http.get(format!("{url}/v1/agents/durable/keys/k/memory"))).await;
    assert!(memory["memory"].to_string().contains("[1,2]"), "{memory}");
    service.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_agent_takes_its_journal_over_only_when_no_work_is_unfinished() {
    use weir::journal::Journal;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let journal = Journal::open(&dir, "agent-v1").unwrap();
    journal
        .commit("k", 1, json!({ "n": 1 }), Vec::new(), "run-1")
        .await
        .unwrap();
    let waiting = weir::Event::input("k", json!("later"));
    journal.accept(2, &waiting).await.unwrap();
    drop(journal);

    // An accepted event waiting to run: refused, saying why.
    let refused = Journal::open_adopting(&dir, "agent-v2")
        .err()
        .unwrap()
        .to_string();
    assert!(
        refused.contains("1 accepted events waiting to run"),
        "{refused}"
    );
    assert!(
        Journal::open(&dir, "agent-v2").is_err(),
        "open never adopts"
    );

    // Once it has run, the new version takes the journal over.
    let journal = Journal::open(&dir, "agent-v1").unwrap();
    journal
        .commit("k", 2, json!({ "n": 2 }), Vec::new(), "run-2")
        .await
        .unwrap();
    drop(journal);
    let adopted = Journal::open_adopting(&dir, "agent-v2").unwrap();
    assert_eq!(adopted.keys()[0].2, json!({ "n": 2 }), "memory carries on");
    drop(adopted);
    let again = Journal::open(&dir, "agent-v2").unwrap();
    assert_eq!(again.keys()[0].1, 2, "stamped with the new version");
    drop(again);
    assert!(Journal::open(&dir, "agent-v1").is_err());
}
