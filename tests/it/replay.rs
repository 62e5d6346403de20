//! Durable execution, replay: a task re-run after a crash reads the clock
//! and random values, and gets the HTTP responses, that the interrupted run
//! got, so its recorded model calls match and are not made again.

use crate::support::durable::{StateRun, kill, model_agent, model_agent_with, until};
use crate::support::model_server::{ModelServer, Reply, openai_text, serve};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A model server that answers `first` and then stalls until the kill.
async fn answers_once_then_stalls(first: Option<&str>) -> ModelServer {
    let server = ModelServer::start().await;
    if let Some(text) = first {
        server.script([Reply::Json(openai_text(text, 1, 1))]);
    }
    server.fallback(Reply::Delayed(
        Duration::from_secs(3600),
        Box::new(Reply::Json(openai_text("late", 1, 1))),
    ));
    server
}

/// `component`'s `stamp` action under `--state`, killed while its second
/// model call waits (the first was answered and recorded): the server,
/// the run to start again, and its directory.
pub(crate) async fn stamp_killed_in_its_second_call(
    component: &Path,
) -> (ModelServer, StateRun, tempfile::TempDir) {
    // The stamped question is answered; the second stalls until the kill.
    let server = answers_once_then_stalls(Some("first")).await;
    let tmp = tempfile::tempdir().unwrap();
    let actions =
        "[actions.stamp]\ncomponent = \"m\"\nlisten = [\"_input_event\"]\nmodels = [\"assistant\"]";
    let manifest = model_agent_with(tmp.path(), "stamp", actions, &server.url, component);
    let run = StateRun::new(
        tmp.path(),
        manifest,
        &[json!({ "key": "k", "payload": { "model": "assistant" } })],
    )
    .warm();
    let child = run.spawn();
    until(|| server.count() == 2).await;
    // The first call's record goes to disk with the next group commit,
    // right after the call returns; on a loaded machine give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    kill(child);
    (server, run, tmp)
}

/// The user message of every request the server received.
fn questions(server: &ModelServer) -> Vec<String> {
    server
        .received()
        .iter()
        .map(|r| {
            r.body["messages"][0]["content"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_run_reads_the_same_clock_and_random_numbers() {
    let misbehave = crate::support::component("guest_misbehave.wasm");
    re_run_reads_the_same_clock_and_random_numbers(&misbehave).await;
}

/// The `stamp` action of `component` (the Rust misbehave guest, or its
/// Python and JavaScript twins: tests/it/langs.rs) reads the clock and a
/// random number into a model question, then asks a second one; killed
/// during the second, its re-run reads the recorded values, so the first
/// question is answered from the journal, not asked again, and the output
/// appears once.
pub(crate) async fn re_run_reads_the_same_clock_and_random_numbers(component: &Path) {
    let (server, run, _tmp) = stamp_killed_in_its_second_call(component).await;
    server.fallback(Reply::Json(openai_text("second", 1, 1)));
    let outputs = run.finish().await;
    let asked = questions(&server);
    // The stamped question was asked once: the re-run read the same time
    // and random number, so its request matched the record and was replayed.
    assert_eq!(asked.len(), 3, "{asked:?}");
    assert!(asked[0].starts_with("stamp "), "{asked:?}");
    assert_eq!(asked[1..], ["second k", "second k"]);
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    let out = &outputs[0]["payload"];
    let stamped = format!(
        "stamp {} {}",
        out["stamp"].as_str().unwrap(),
        out["random"].as_str().unwrap()
    );
    assert_eq!(asked[0], stamped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_run_gets_the_recorded_http_response() {
    // A page that changes on every request: "hit 1", "hit 2", ...
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/page",
        axum::routing::get(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move { format!("hit {n}") }
        }),
    );
    let (page, _stop) = serve(app).await;

    let server = answers_once_then_stalls(None).await;
    let tmp = tempfile::tempdir().unwrap();
    let actions = format!(
        "[actions.fetch]\ncomponent = \"m\"\nexport = \"fetch-then-ask\"\nlisten = [\"_input_event\"]\nmodels = [\"assistant\"]\nhttp = [\"{page}\"]"
    );
    let manifest = model_agent(tmp.path(), "fetch", &actions, &server.url);
    let payload = json!({ "model": "assistant", "url": format!("{page}/page") });
    let run = StateRun::new(
        tmp.path(),
        manifest,
        &[json!({ "key": "k", "payload": payload })],
    );

    // The page is fetched, then the model stalls: kill.
    let child = run.spawn();
    until(|| server.count() == 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    kill(child);
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // The re-run gets the recorded page; the server is not asked again.
    server.fallback(Reply::Json(openai_text("answered", 1, 1)));
    let outputs = run.finish().await;
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the page was fetched again");
    let out: &Value = &outputs[0]["payload"];
    assert_eq!(out["fetched"], "hit 1");
    assert_eq!(out["answer"], "answered");
    // The model was asked the same question both times.
    assert_eq!(questions(&server), ["hit 1", "hit 1"]);
}
