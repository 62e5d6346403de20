//! Shared test setup: builds the guest components from `skills/` and
//! `tests/guests/` once per test binary, and helpers to run agents.

pub mod durable;
pub mod model_server;
pub mod otlp;
pub mod payments;
pub mod registry;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use weir::{Agent, AgentPlan, Event, RunSummary, Runtime, Sandbox, SandboxConfig};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds every guest for wasm32-wasip2 (once per test binary) and returns
/// the directory holding the `.wasm` components.
pub fn components() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let status = std::process::Command::new(repo().join("scripts/build-skills"))
                .status()
                .expect("run scripts/build-skills");
            assert!(status.success(), "building the guest components failed");
            repo().join("build/components")
        })
        .clone()
}

pub fn component(file: &str) -> PathBuf {
    components().join(file)
}

/// Builds the Python skills and test guests (once per test binary, with
/// componentize-py from weir's tools cache) and returns a component's path.
pub fn python_component(file: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    built_by("scripts/build-python-skills", &BUILT, file)
}

/// Builds the JavaScript skills and test guests (once per test binary, with
/// componentize-qjs from weir's tools cache) and returns a component's path.
pub fn js_component(file: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    built_by("scripts/build-js-skills", &BUILT, file)
}

/// Runs the build `script` once (per `built`); the path of its `file`.
fn built_by(script: &str, built: &OnceLock<()>, file: &str) -> PathBuf {
    built.get_or_init(|| {
        // The Python and JavaScript builds go through this build's weir.
        let status = std::process::Command::new(repo().join(script))
            .env("WEIR", env!("CARGO_BIN_EXE_weir"))
            .status()
            .unwrap_or_else(|e| panic!("run {script}: {e}"));
        assert!(status.success(), "{script} failed");
    });
    repo().join("build/components").join(file)
}

/// A sandbox for tests with its own compile cache under a temp dir.
pub fn sandbox() -> Arc<Sandbox> {
    static SANDBOX: OnceLock<Arc<Sandbox>> = OnceLock::new();
    SANDBOX
        .get_or_init(|| {
            let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("weir-compile-cache");
            Arc::new(
                Sandbox::new(SandboxConfig {
                    max_instances: 256,
                    cache_dir: Some(cache),
                    ..SandboxConfig::default()
                })
                .expect("create the sandbox"),
            )
        })
        .clone()
}

pub async fn plan(agent: &Agent) -> AgentPlan {
    AgentPlan::from_agent_in(agent, sandbox())
        .await
        .unwrap_or_else(|e| panic!("planning failed:\n{e}"))
}

/// Runs `events` through `plan` and returns the outputs (error events
/// included) with the summary.
pub async fn run(plan: AgentPlan, events: Vec<Event>) -> (Vec<Event>, RunSummary) {
    run_with(Runtime::new(plan), events).await
}

pub async fn run_with(runtime: Runtime, events: Vec<Event>) -> (Vec<Event>, RunSummary) {
    let mut handle = runtime.start();
    let sender = handle.events.clone();
    handle.events.close();
    let feeder = tokio::spawn(async move {
        for event in events {
            sender.send(event).await.unwrap();
        }
    });
    let mut outputs = Vec::new();
    while let Some(event) = handle.outputs.recv().await {
        outputs.push(event);
    }
    feeder.await.unwrap();
    let summary = handle.finish().await.unwrap();
    (outputs, summary)
}

/// Runs `events` and also returns each key's short-term memory at the end.
pub async fn run_keeping_memory(
    runtime: Runtime,
    events: Vec<Event>,
) -> (
    Vec<Event>,
    std::collections::BTreeMap<String, serde_json::Value>,
) {
    let mut handle = runtime.start();
    for event in events {
        handle.events.send(event).await.unwrap();
    }
    handle.events.close();
    let mut outputs = Vec::new();
    while let Some(event) = handle.outputs.recv().await {
        outputs.push(event);
    }
    let (_, memory) = handle.finish_with_memory().await.unwrap();
    (outputs, memory)
}

/// The misbehave fixture as a one-action agent: `export` on `_input_event`.
pub fn misbehave_agent(export: &str) -> weir::AgentBuilder {
    Agent::builder(format!("misbehave-{export}"))
        .component("misbehave", component("guest_misbehave.wasm"))
        .action(weir::ActionBuilder::new(export, "misbehave").listen("_input_event"))
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The JSON answer to `request`, whatever its status.
pub async fn json_of(request: reqwest::RequestBuilder) -> serde_json::Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// Starts `command` with stderr piped, and reads the first line it
/// writes there, which must start with `prefix`: the process, its stderr
/// for the rest, and what followed the prefix (an address it announces).
pub fn announced(
    command: &mut std::process::Command,
    prefix: &str,
) -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStderr>,
    String,
) {
    use std::io::BufRead as _;
    let mut child = command
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let announced = line
        .trim()
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("expected `{prefix}...` first on stderr, got: {line}"))
        .to_string();
    (child, stderr, announced)
}

/// A runtime for a plain test to make HTTP requests on.
pub fn http_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
