//! `weir serve` and the library's `Service`, over real HTTP on loopback:
//! submitting events, streaming outputs as Server-Sent Events (and
//! resuming), the token, bad requests, a full intake, and the binary's
//! lifecycle.

use crate::support::*;
use serde_json::{Value, json};
use std::sync::Arc;
use weir::serve::{ListenSettings, Service, ServiceSettings};
use weir::{ActionBuilder, Agent, Event, RuntimeSettings};

pub(crate) fn word_stats() -> Agent {
    Agent::from_manifest(repo().join("examples/word-stats/agent.toml")).unwrap()
}

/// Serves `agents` on loopback; the base URL and the service.
pub(crate) async fn serving(
    agents: Vec<Agent>,
    settings: ServiceSettings,
) -> (String, Arc<Service>) {
    serving_with(agents, settings, ListenSettings::default()).await
}

/// [`serving`] with `listen`'s connection limits.
async fn serving_with(
    agents: Vec<Agent>,
    settings: ServiceSettings,
    listen: ListenSettings,
) -> (String, Arc<Service>) {
    components();
    let mut plans = Vec::new();
    for agent in &agents {
        plans.push(plan(agent).await);
    }
    let service = Arc::new(Service::start(plans, settings, None).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let serving = service.clone();
    tokio::spawn(async move {
        serving
            .serve(listener, listen, std::future::pending())
            .await
    });
    (url, service)
}

/// One Server-Sent Event.
#[derive(Debug)]
pub(crate) struct Sse {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

/// Reads `n` events (comments and keep-alives skipped) from a stream.
pub(crate) async fn read_events(response: &mut reqwest::Response, n: usize) -> Vec<Sse> {
    let mut text = String::new();
    let mut events = Vec::new();
    while events.len() < n {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(30), response.chunk())
            .await
            .expect("an event within 30 s")
            .unwrap()
            .expect("the stream goes on");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let mut event = Sse {
                id: None,
                event: "message".into(),
                data: String::new(),
            };
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    event.id = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("event:") {
                    event.event = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    event.data.push_str(v.trim_start());
                }
            }
            if !event.data.is_empty() {
                events.push(event);
            }
        }
    }
    events
}

pub(crate) fn events_jsonl() -> String {
    std::fs::read_to_string(repo().join("examples/word-stats/events.jsonl")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_submitted_over_http_stream_out_as_server_sent_events() {
    let (url, _service) = serving(vec![word_stats()], ServiceSettings::default()).await;
    let http = reqwest::Client::new();
    let outputs = format!("{url}/v1/agents/word-stats/outputs");
    let mut stream = http.get(format!("{outputs}?after=0")).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");

    // A batch as JSON lines: one id per event, made for those without.
    let lines = events_jsonl();
    let inputs = lines.lines().filter(|l| !l.trim().is_empty()).count();
    let answer = http
        .post(format!("{url}/v1/agents/word-stats/events"))
        .header("content-type", "application/x-ndjson")
        .body(lines)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let ids: Vec<String> =
        serde_json::from_value(answer.json::<Value>().await.unwrap()["ids"].clone()).unwrap();
    assert_eq!(ids.len(), inputs);
    assert!(ids.iter().all(|id| id.len() == 32), "{ids:?}");

    let streamed = read_events(&mut stream, inputs).await;
    let numbers: Vec<String> = streamed.iter().map(|e| e.id.clone().unwrap()).collect();
    let expected: Vec<String> = (1..=inputs).map(|n| n.to_string()).collect();
    assert_eq!(numbers, expected);
    for event in &streamed {
        assert_eq!(event.event, "output");
        let output: Event = serde_json::from_str(&event.data).unwrap();
        assert_eq!(output.event_type, weir::event::types::OUTPUT);
        assert!(output.payload["total_words"].is_number(), "{}", event.data);
    }

    // One event as a JSON object, with its own id; a client resuming after
    // output 4 gets 5, 6 and the new one.
    let answer = http
        .post(format!("{url}/v1/agents/word-stats/events"))
        .json(&json!({ "key": "zoe", "id": "my-id-1", "payload": "one more sentence" }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    assert_eq!(
        answer.json::<Value>().await.unwrap()["ids"],
        json!(["my-id-1"])
    );
    let mut resumed = http
        .get(&outputs)
        .header("last-event-id", "4")
        .send()
        .await
        .unwrap();
    let after = read_events(&mut resumed, 3).await;
    let numbers: Vec<&str> = after.iter().map(|e| e.id.as_deref().unwrap()).collect();
    assert_eq!(numbers, ["5", "6", "7"]);
    let last: Event = serde_json::from_str(&after[2].data).unwrap();
    assert_eq!(last.key, "zoe");

    let agents: Value = json_of(http.get(format!("{url}/v1/agents"))).await;
    assert_eq!(agents["agents"][0]["name"], "word-stats");
    assert_eq!(agents["agents"][0]["outputs"], 7);
    let actions: Vec<&str> = agents["agents"][0]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["count", "tokenize"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_take_nothing() {
    let settings = ServiceSettings {
        max_body_bytes: 4096,
        ..ServiceSettings::default()
    };
    let (url, service) = serving(vec![word_stats()], settings).await;
    let http = reqwest::Client::new();
    let events = format!("{url}/v1/agents/word-stats/events");
    let post = |body: Vec<u8>, content_type: &'static str| {
        http.post(&events)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let error = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        (
            status,
            body["error"].as_str().unwrap_or_default().to_string(),
        )
    };

    // The second line is not an event: nothing of the batch is taken.
    let batch = b"{\"key\": \"a\", \"payload\": 1}\n{\"key\": \"b\", \"payload\": \n".to_vec();
    let (status, message) = error(post(batch, "application/x-ndjson").await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(message.starts_with("request:2:"), "{message}");
    let (status, message) = error(
        post(b"{\"key\": 1, \"paylod\": 2}".to_vec(), "application/json")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(message.contains("paylod"), "{message}");
    let (status, message) =
        error(post(b"[1, 2]".to_vec(), "application/json").await.unwrap()).await;
    assert_eq!(status, 400, "{message}");
    let output = b"{\"key\": \"a\", \"type\": \"_output_event\", \"payload\": 1}".to_vec();
    let (status, message) = error(post(output, "application/json").await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(message.contains("_output_event"), "{message}");
    let (status, _) = error(post(Vec::new(), "application/x-ndjson").await.unwrap()).await;
    assert_eq!(status, 400);
    let (status, message) = error(
        post(vec![0xff, 0xfe], "application/x-ndjson")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, message.contains("UTF-8")),
        (400, true),
        "{message}"
    );
    let long_key = format!("{{\"key\": \"{}\", \"payload\": 1}}", "k".repeat(2000));
    let (status, message) = error(
        post(long_key.into_bytes(), "application/json")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(message.contains("key is 2000 bytes"), "{message}");
    let huge = format!(
        "{{\"key\": \"a\", \"payload\": \"{}\"}}",
        "x".repeat(10_000)
    );
    let response = post(huge.into_bytes(), "application/json").await.unwrap();
    assert_eq!(response.status(), 413);

    let (status, message) = error(
        http.post(format!("{url}/v1/agents/nobody/events"))
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert!(
        message.contains("no agent `nobody` here (agents: word-stats)"),
        "{message}"
    );

    // One good event: the only output there is.
    let ok = post(
        b"{\"key\": \"a\", \"payload\": \"fine words\"}".to_vec(),
        "application/json",
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 202);
    let summaries = service.finish().await;
    let summary = summaries["word-stats"].as_ref().unwrap();
    assert_eq!(
        summary.events_in, 1,
        "nothing of the bad requests was taken"
    );
    // After finishing, submits are refused and readiness says so.
    let late = post(
        b"{\"key\": \"a\", \"payload\": 1}".to_vec(),
        "application/json",
    )
    .await
    .unwrap();
    assert_eq!(late.status(), 503);
    assert_eq!(
        http.get(format!("{url}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_only_clients_holding_it_are_served() {
    let settings = ServiceSettings {
        token: Some("s3cret-token".into()),
        ..ServiceSettings::default()
    };
    let (url, _service) = serving(vec![word_stats()], settings).await;
    let http = reqwest::Client::new();
    let agents = format!("{url}/v1/agents");
    let none = http.get(&agents).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    let wrong = http
        .get(&agents)
        .bearer_auth("s3cret-tokeN")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let submit = http
        .post(format!("{url}/v1/agents/word-stats/events"))
        .json(&json!({ "key": "a", "payload": "hi there" }));
    assert_eq!(
        submit.try_clone().unwrap().send().await.unwrap().status(),
        401
    );
    let right = submit.bearer_auth("s3cret-token").send().await.unwrap();
    assert_eq!(right.status(), 202);
    // Health needs no token.
    assert_eq!(
        http.get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_intake_is_answered_429_with_retry_after() {
    let sleeper = Agent::builder("sleeper")
        .component("h", component("guest_hostile.wasm"))
        .action(
            ActionBuilder::new("nap", "h")
                .export("sleep")
                .listen(weir::event::types::INPUT),
        )
        .runtime(RuntimeSettings {
            max_concurrency: 1,
            max_pending_events: 1,
            ..RuntimeSettings::default()
        })
        .build();
    let (url, service) = serving(vec![sleeper], ServiceSettings::default()).await;
    let batch: String = (0..300)
        .map(|i| format!("{{\"key\": \"k{i}\", \"payload\": {{\"ms\": 5}}}}\n"))
        .collect();
    let answer = reqwest::Client::new()
        .post(format!("{url}/v1/agents/sleeper/events"))
        .body(batch)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 429);
    assert_eq!(answer.headers()["retry-after"], "1");
    let body: Value = answer.json().await.unwrap();
    let taken = body["ids"].as_array().unwrap().len();
    assert!(taken > 0 && taken < 300, "{taken} taken");
    let summaries = service.finish().await;
    assert_eq!(
        summaries["sleeper"].as_ref().unwrap().events_in,
        taken as u64,
        "exactly the events whose ids were returned ran"
    );
}

#[test]
fn weir_serve_reloads_a_changed_manifest_on_sighup_and_keeps_serving_a_broken_one() {
    use std::io::BufRead as _;
    use std::process::Command;
    components();
    let tmp = tempfile::tempdir().unwrap();
    let original = std::fs::read_to_string(repo().join("examples/word-stats/agent.toml"))
        .unwrap()
        .replace("../../build", &repo().join("build").display().to_string());
    let manifest = write(tmp.path(), "agent.toml", &original);
    let (mut weir, mut stderr, url) = announced(
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("serve")
            .arg(&manifest)
            .args(["--listen", "127.0.0.1:0"])
            .env_remove("WEIR_LOG"),
        "weir: serving word-stats at ",
    );
    let http = http_runtime();
    let top = |url: &str| {
        http.block_on(async {
            let answer: Value = json_of(
                reqwest::Client::new()
                    .post(format!("{url}/v1/agents/word-stats/events?wait=30"))
                    .json(&json!({ "key": "a", "payload": "one two three four five" })),
            )
            .await;
            answer["runs"][0]["outputs"][0]["payload"]["top_words"]
                .as_array()
                .unwrap()
                .len()
        })
    };
    assert_eq!(top(&url), 3);
    let hangup = |weir: &std::process::Child| {
        let sent = Command::new("kill")
            .args(["-HUP", &weir.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    let said = |stderr: &mut std::io::BufReader<std::process::ChildStderr>| {
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        line
    };

    // A manifest that no longer plans: said, and the old plan serves on.
    std::fs::write(
        &manifest,
        original.replace("[actions.count]", "[actions.count]\nnope = 1"),
    )
    .unwrap();
    hangup(&weir);
    let line = said(&mut stderr);
    assert!(
        line.contains("not reloaded, every agent serves as before"),
        "{line}"
    );
    assert!(line.contains("nope"), "names the field at fault: {line}");
    assert_eq!(top(&url), 3);

    // The changed manifest serves once reloaded.
    std::fs::write(&manifest, original.replace("top = 3", "top = 1")).unwrap();
    hangup(&weir);
    let line = said(&mut stderr);
    assert!(
        line.contains("agent word-stats serves its new plan"),
        "{line}"
    );
    assert_eq!(top(&url), 1);
    hangup(&weir);
    let line = said(&mut stderr);
    assert!(line.contains("agent word-stats is unchanged"), "{line}");
    weir.kill().unwrap();
    weir.wait().unwrap();
}

#[test]
fn weir_serve_serves_until_sigterm_and_refuses_an_open_address_without_a_token() {
    use std::process::Command;
    components();
    let open = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "serve",
            "examples/word-stats/agent.toml",
            "--listen",
            "0.0.0.0:0",
        ])
        .current_dir(repo())
        .env_remove("WEIR_SERVE_TOKEN")
        .output()
        .unwrap();
    assert!(!open.status.success());
    let stderr = String::from_utf8_lossy(&open.stderr);
    assert!(
        stderr.contains("not a loopback address: give --token"),
        "{stderr}"
    );
    // With a token it serves, and warns that the token travels in clear.
    let (mut weir, mut stderr, _) = announced(
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["serve", "examples/word-stats/agent.toml"])
            .args(["--listen", "0.0.0.0:0", "--token", "t0ken"])
            .current_dir(repo()),
        "weir: serving word-stats at ",
    );
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    assert!(
        line.contains("plain HTTP") && line.contains("TLS-terminating proxy"),
        "{line}"
    );
    weir.kill().unwrap();
    weir.wait().unwrap();

    let (mut weir, mut stderr, url) = announced(
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["serve", "examples/word-stats/agent.toml"])
            .args(["--listen", "127.0.0.1:0"])
            .current_dir(repo())
            .env_remove("WEIR_LOG"),
        "weir: serving word-stats at ",
    );
    let http = http_runtime();
    http.block_on(async {
        let client = reqwest::Client::new();
        assert_eq!(
            client
                .get(format!("{url}/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            client
                .get(format!("{url}/readyz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        let submit = client
            .post(format!("{url}/v1/agents/word-stats/events"))
            .json(&json!({ "key": "a", "payload": "served words" }))
            .send()
            .await
            .unwrap();
        assert_eq!(submit.status(), 202);
        // The service's /metrics counts it once it has run.
        let mut text = String::new();
        for _ in 0..100 {
            text = client
                .get(format!("{url}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if text.contains("weir_event_kind=\"output\"") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(
            text.contains("weir_events_total{weir_agent=\"word-stats\",weir_event_kind=\"output\""),
            "{text}"
        );
    });
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(weir.id() as i32, libc::SIGTERM) };
    let status = weir.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(status.success(), "{status:?}: {rest}");
    assert!(
        rest.contains("stopping") && rest.contains("1 events in, 1 out"),
        "{rest}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_may_wait_for_its_runs_and_a_run_can_be_looked_up() {
    let sleeper = Agent::builder("sleeper")
        .component("h", component("guest_hostile.wasm"))
        .action(
            ActionBuilder::new("nap", "h")
                .export("sleep")
                .listen(weir::event::types::INPUT),
        )
        .build();
    let (url, _service) = serving(vec![word_stats(), sleeper], ServiceSettings::default()).await;
    let http = reqwest::Client::new();

    // Waiting: the answer holds each run's outputs.
    let answer = http
        .post(format!("{url}/v1/agents/word-stats/events?wait=20"))
        .json(&json!([
            { "key": "a", "payload": "one two three" },
            { "key": "b", "id": "b-1", "payload": "four five" },
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    let runs = body["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["status"], "done");
    assert_eq!(runs[0]["key"], "a");
    assert_eq!(runs[0]["outputs"][0]["payload"]["total_words"], 3);
    assert_eq!(runs[1]["id"], "b-1");
    assert_eq!(runs[1]["outputs"][0]["payload"]["total_words"], 2);

    // Looking a run up afterwards; an unknown one is a 404.
    let run: Value = json_of(http.get(format!("{url}/v1/agents/word-stats/runs/b-1"))).await;
    assert_eq!(run["status"], "done");
    assert_eq!(run["outputs"][0]["key"], "b");
    let unknown = http
        .get(format!("{url}/v1/agents/word-stats/runs/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    // A run that outlasts the wait: 202, pending; then done.
    let answer = http
        .post(format!("{url}/v1/agents/sleeper/events?wait=0.05"))
        .json(&json!({ "key": "s", "id": "slow-1", "payload": { "ms": 1500 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["runs"][0]["status"], "pending");
    let pending: Value = json_of(http.get(format!("{url}/v1/agents/sleeper/runs/slow-1"))).await;
    assert_eq!(pending["status"], "pending");
    let again = http
        .post(format!("{url}/v1/agents/sleeper/events?wait=nope"))
        .json(&json!({ "key": "s", "payload": { "ms": 1 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 400);
    let too_long = http
        .post(format!("{url}/v1/agents/sleeper/events?wait=3600"))
        .json(&json!({ "key": "s", "payload": { "ms": 1 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(too_long.status(), 400);
    for _ in 0..100 {
        let run: Value = json_of(http.get(format!("{url}/v1/agents/sleeper/runs/slow-1"))).await;
        if run["status"] == "done" {
            assert_eq!(run["outputs"][0]["payload"]["slept"], 1500);
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the slow run never ended");
}

/// Resolves a local `$ref` (`#/a/b`) in `doc`.
fn resolve<'a>(doc: &'a Value, reference: &str) -> &'a Value {
    let path = reference.strip_prefix("#/").expect("a local reference");
    path.split('/').fold(doc, |node, part| &node[part])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_description_matches_the_routes_it_describes() {
    let (url, _service) = serving(vec![word_stats()], ServiceSettings::default()).await;
    let http = reqwest::Client::new();
    let doc: Value = json_of(http.get(format!("{url}/openapi.json"))).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    // Every reference resolves.
    let text = doc.to_string();
    for reference in text
        .split("\"$ref\":\"")
        .skip(1)
        .map(|r| &r[..r.find('"').unwrap()])
    {
        assert!(
            !resolve(&doc, reference).is_null(),
            "{reference} does not resolve"
        );
    }
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            operations += 1;
            let concrete = path
                .replace("{agent}", "word-stats")
                .replace("{id}", "no-such-run");
            let request = match method.as_str() {
                "get" if concrete.ends_with("/outputs") => {
                    http.get(format!("{url}{concrete}?after=0"))
                }
                "get" => http.get(format!("{url}{concrete}")),
                "post" => http
                    .post(format!("{url}{concrete}"))
                    .json(&json!({ "key": "k", "payload": "some words" })),
                "delete" => http.delete(format!("{url}{concrete}")),
                other => panic!("undocumented method {other}"),
            };
            let response = request.send().await.unwrap();
            let status = response.status().as_u16().to_string();
            let documented = operation["responses"].as_object().unwrap();
            assert!(
                documented.contains_key(&status),
                "{method} {path}: answered {status}, documented {:?}",
                documented.keys().collect::<Vec<_>>()
            );
        }
    }
    assert_eq!(operations, 16, "every route is described");
    // Routes not described are not served.
    let missing = http.get(format!("{url}/v1/nothing")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_memory_is_read_in_order_with_its_events_and_reset_only_with_the_admin_token() {
    let settings = ServiceSettings {
        token: Some("user-token".into()),
        admin_token: Some("admin-token".into()),
        ..ServiceSettings::default()
    };
    let (url, _service) = serving(vec![word_stats()], settings).await;
    let http = reqwest::Client::new();
    let memory = format!("{url}/v1/agents/word-stats/keys/alice/memory");
    // Submitted, not waited for: the read still comes after the events.
    let submit = http
        .post(format!("{url}/v1/agents/word-stats/events"))
        .bearer_auth("user-token")
        .body("{\"key\": \"alice\", \"payload\": \"one two\"}\n{\"key\": \"alice\", \"payload\": \"three\"}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(submit.status(), 202);
    let read: Value = json_of(http.get(&memory).bearer_auth("user-token")).await;
    assert_eq!(read["key"], "alice");
    assert_eq!(read["memory"]["stats"]["total_words"], 3, "{read}");
    let never: Value = json_of(
        http.get(format!("{url}/v1/agents/word-stats/keys/nobody/memory"))
            .bearer_auth("user-token"),
    )
    .await;
    assert_eq!(never["memory"], Value::Null);

    // Resetting needs the admin token.
    let refused = http
        .delete(&memory)
        .bearer_auth("user-token")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let reset: Value = json_of(http.delete(&memory).bearer_auth("admin-token")).await;
    assert_eq!(
        reset["memory"]["stats"]["total_words"], 3,
        "the memory it had"
    );
    let after: Value = json_of(http.get(&memory).bearer_auth("user-token")).await;
    assert!(
        after["memory"].as_object().is_none_or(|m| m.is_empty()),
        "{after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_its_body_is_cut_off_at_the_deadline() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let settings = ServiceSettings {
        body_timeout: std::time::Duration::from_millis(300),
        ..ServiceSettings::default()
    };
    let (url, _service) = serving(vec![word_stats()], settings).await;
    let address = url.trim_start_matches("http://");
    let mut slow = tokio::net::TcpStream::connect(address).await.unwrap();
    slow.write_all(
        b"POST /v1/agents/word-stats/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"key\":",
    )
    .await
    .unwrap();
    // One more byte now and then, never the whole body.
    let trickle = async {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if slow.write_all(b" ").await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), trickle).await;
    let mut answer = vec![0; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), slow.read(&mut answer))
        .await
        .expect("an answer")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within 0.3 s"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_connections_are_closed_and_connections_are_bounded() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listen = ListenSettings {
        header_timeout: std::time::Duration::from_secs(1),
        max_connections: 2,
        ..ListenSettings::default()
    };
    let (url, _service) =
        serving_with(vec![word_stats()], ServiceSettings::default(), listen).await;
    let address = url.trim_start_matches("http://").to_string();
    let read_to_end = |mut stream: tokio::net::TcpStream| async move {
        let mut got = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            stream.read_to_end(&mut got),
        )
        .await
        .map(|read| (read.is_ok(), got))
    };

    // Headers trickling in, never finished: the connection is closed.
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let (_, got) = read_to_end(slow).await.expect("closed well within 10 s");
    assert!(
        !String::from_utf8_lossy(&got).contains("ok"),
        "never served"
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));

    // Two connections held (a request answered, then idle): a third
    // waits to be served until one is closed for idling.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = vec![0; 1024];
        let n = stream.read(&mut answer).await.unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
        held.push(stream);
    }
    let mut third = tokio::net::TcpStream::connect(&address).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 1];
    let early = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        third.peek(&mut first),
    )
    .await;
    assert!(early.is_err(), "not served while two connections are held");
    let (_, got) = read_to_end(third)
        .await
        .expect("served once a slot is free");
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // The idle ones were closed by then.
    for stream in held {
        let (_, rest) = read_to_end(stream).await.expect("closed");
        assert!(rest.is_empty());
    }
}

#[test]
fn weir_serve_speaks_https_and_with_a_client_ca_serves_only_the_clients_it_signed() {
    use std::process::Command;
    components();
    let tls = repo().join("tests/fixtures/tls");
    let pem = |name: &str| std::fs::read(tls.join(name)).unwrap();
    // Mutual TLS stands in for a token on an open address.
    let (mut weir, _stderr, url) = announced(
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["serve", "examples/word-stats/agent.toml"])
            .args(["--listen", "0.0.0.0:0"])
            .arg("--tls-cert")
            .arg(tls.join("server.pem"))
            .arg("--tls-key")
            .arg(tls.join("server-key.pem"))
            .arg("--tls-client-ca")
            .arg(tls.join("ca.pem"))
            .args(["--header-timeout", "1"])
            .current_dir(repo())
            .env_remove("WEIR_SERVE_TOKEN"),
        "weir: serving word-stats at ",
    );
    let port = url
        .strip_prefix("https://0.0.0.0:")
        .unwrap_or_else(|| panic!("an https address: {url}"))
        .to_string();
    let url = format!("https://localhost:{port}");
    let client = |identity: Option<(&str, &str)>| {
        let mut builder = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem("ca.pem")).unwrap());
        if let Some((cert, key)) = identity {
            let both = [pem(cert), pem(key)].concat();
            builder = builder.identity(reqwest::Identity::from_pem(&both).unwrap());
        }
        builder.build().unwrap()
    };
    let http = http_runtime();
    http.block_on(async {
        let known = client(Some(("client.pem", "client-key.pem")));
        let health = known.get(format!("{url}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let submit = known
            .post(format!("{url}/v1/agents/word-stats/events?wait=10"))
            .json(&json!({ "key": "a", "payload": "over tls" }))
            .send()
            .await
            .unwrap();
        assert_eq!(submit.status(), 200, "{:?}", submit.text().await);
        // No certificate, or one another CA signed: the handshake fails.
        for (who, identity) in [
            ("no certificate", None),
            ("a stranger", Some(("stranger.pem", "stranger-key.pem"))),
        ] {
            let refused = client(identity).get(format!("{url}/healthz")).send().await;
            assert!(refused.is_err(), "{who} was served: {refused:?}");
        }
        // Plain HTTP to the TLS port is not served either, and the service
        // goes on.
        let plain = reqwest::get(format!("http://localhost:{port}/healthz")).await;
        assert!(plain.is_err() || !plain.unwrap().status().is_success());
        let again = known.get(format!("{url}/readyz")).send().await.unwrap();
        assert_eq!(again.status(), 200);
    });
    // A client that connects and never starts its handshake is let go
    // after the header timeout.
    let mut silent = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    silent
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut byte = [0u8; 1];
    let read = std::io::Read::read(&mut silent, &mut byte);
    assert!(
        matches!(read, Ok(0))
            || read
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "a silent client was kept: {read:?}"
    );
    weir.kill().unwrap();
    weir.wait().unwrap();

    // A certificate file that is not one says which flag and file.
    let broken = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "serve",
            "examples/word-stats/agent.toml",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--tls-cert")
        .arg(repo().join("README.md"))
        .arg("--tls-key")
        .arg(tls.join("server-key.pem"))
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(!broken.status.success());
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(
        stderr.contains("--tls-cert")
            && stderr.contains("README.md")
            && stderr.contains("no certificate"),
        "{stderr}"
    );
}
