//! `weir run --state` as a child process, for the durable-execution tests:
//! one agent over one input file, killed and started again.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// An agent manifest whose component `m` is the misbehave guest, with
/// `actions` (TOML) and a chat model `assistant` on `server`.
pub fn model_agent(dir: &Path, name: &str, actions: &str, server: &str) -> PathBuf {
    let misbehave = super::component("guest_misbehave.wasm");
    model_agent_with(dir, name, actions, server, &misbehave)
}

/// The agent `durable`, two actions on every input: `ask` calls the model,
/// `order` keeps the sequence numbers (`payload.seq`) it has seen in memory
/// and outputs them (`payload.seen`).
pub fn ask_and_order(dir: &Path, server: &str) -> PathBuf {
    let actions = r#"[actions.ask]
component = "m"
listen = ["_input_event"]
models = ["assistant"]

[actions.order]
component = "m"
listen = ["_input_event"]

[runtime]
max_concurrency = 8"#;
    model_agent(dir, "durable", actions, server)
}

/// Each key's longest `payload.seen` among `outputs` (what its `order`
/// action's memory held last): a key's events once each, in order, after
/// a run without loss or repeats.
pub fn longest_seen(outputs: &[Value]) -> std::collections::BTreeMap<String, Vec<Value>> {
    let mut longest = std::collections::BTreeMap::<String, Vec<Value>>::new();
    for o in outputs {
        if let Some(seen) = o["payload"]["seen"].as_array() {
            let key = o["key"].as_str().unwrap().to_string();
            if longest.get(&key).is_none_or(|prev| prev.len() < seen.len()) {
                longest.insert(key, seen.clone());
            }
        }
    }
    longest
}

/// How many times `server` was asked each question (the last message's
/// content).
pub fn times_asked(
    server: &super::model_server::ModelServer,
) -> std::collections::HashMap<String, usize> {
    let mut asked = std::collections::HashMap::new();
    for request in server.received() {
        let question = request.body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
            .to_string();
        *asked.entry(question).or_default() += 1;
    }
    asked
}

/// [`model_agent`] with `component` as `m`.
pub fn model_agent_with(
    dir: &Path,
    name: &str,
    actions: &str,
    server: &str,
    component: &Path,
) -> PathBuf {
    super::write(
        dir,
        &format!("{name}.toml"),
        &format!(
            r#"[agent]
name = "{name}"

[components.m]
path = "{component}"

{actions}

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
            component = component.display()
        ),
    )
}

/// One agent, one input file, one output file and one state directory.
pub struct StateRun {
    pub manifest: PathBuf,
    pub input: PathBuf,
    pub output: PathBuf,
    pub state: PathBuf,
    pub env: Vec<(String, String)>,
}

impl StateRun {
    /// Writes `lines` (one JSON input event each) to `dir/in.jsonl`.
    pub fn new(dir: &Path, manifest: PathBuf, lines: &[Value]) -> Self {
        let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
        StateRun {
            manifest,
            input: super::write(dir, "in.jsonl", &text),
            output: dir.join("out.jsonl"),
            state: dir.join("state"),
            env: Vec::new(),
        }
    }

    /// Compiles the agent's components into the compile cache with
    /// `weir plan`, so that a run's start is not a compile: a test that
    /// waits a bounded time for the run to reach a server would otherwise
    /// wait out the compilation of a big (19 MB Python) component.
    pub fn warm(self) -> Self {
        let planned = Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("plan")
            .arg(&self.manifest)
            .output()
            .unwrap();
        assert!(planned.status.success(), "{planned:?}");
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    pub fn command(&self, extra: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
        command
            .arg("run")
            .arg(&self.manifest)
            .arg("--input")
            .arg(&self.input)
            .arg("--output")
            .arg(&self.output)
            .arg("--state")
            .arg(&self.state)
            .args(extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    }

    pub fn spawn(&self) -> Child {
        self.command(&[]).spawn().unwrap()
    }

    /// Runs to the end with `extra` arguments.
    pub async fn run(&self, extra: &[&str]) -> Output {
        let child = self.command(extra).spawn().unwrap();
        tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap()
    }

    /// Runs to the end, which must succeed, and returns every output.
    pub async fn finish(&self) -> Vec<Value> {
        let done = self.run(&[]).await;
        assert!(
            done.status.success(),
            "{}",
            String::from_utf8_lossy(&done.stderr)
        );
        self.outputs()
    }

    /// The output file's events so far.
    pub fn outputs(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.output)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line {l}: {e}")))
            .collect()
    }

    /// `weir state inspect` of the state directory.
    pub fn inspect(&self) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["state", "inspect"])
            .arg(&self.state)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Kills `child` (SIGKILL) and waits for it.
pub fn kill(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Waits until `ready` holds (a server saw what the test waits for).
pub async fn until(mut ready: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if ready() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting");
}
