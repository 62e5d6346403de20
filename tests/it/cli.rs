//! End to end through the `weir` binary: the example agent, `weir plan`, and
//! bad input of every kind.

use crate::support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Weir {
    cache: tempfile::TempDir,
}

impl Weir {
    fn new() -> Self {
        components();
        Weir {
            cache: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
        command
            .args(args)
            .current_dir(repo())
            .env("WEIR_CACHE_DIR", self.cache.path())
            .env_remove("WEIR_LOG");
        match stdin {
            None => command.output().unwrap(),
            Some(text) => {
                use std::io::Write;
                let mut child = command
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(text.as_bytes())
                    .unwrap();
                child.wait_with_output().unwrap()
            }
        }
    }
}

fn stdout_lines(output: &Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad output line {l}: {e}")))
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const EXAMPLE: &str = "examples/word-stats/agent.toml";
const EXAMPLE_EVENTS: &str = "examples/word-stats/events.jsonl";

#[test]
fn the_example_agent_runs_from_the_cli() {
    let weir = Weir::new();
    let out = weir.run(&["run", EXAMPLE, "--input", EXAMPLE_EVENTS], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 6);
    let alice: Vec<&Value> = lines.iter().filter(|l| l["key"] == "alice").collect();
    assert_eq!(alice.len(), 3);
    // "The quick brown fox jumps over the lazy dog" / "The dog sleeps; the fox runs" /
    // "A fox, a dog, and the end" with min_length 2: 9 + 6 + 5 words.
    let totals: Vec<u64> = alice
        .iter()
        .map(|l| l["payload"]["total_words"].as_u64().unwrap())
        .collect();
    assert_eq!(totals, vec![9, 15, 20]);
    assert_eq!(
        alice[2]["payload"]["top_words"],
        serde_json::json!([
            {"word": "the", "count": 5}, {"word": "dog", "count": 3}, {"word": "fox", "count": 3}
        ])
    );
    assert!(lines.iter().all(|l| l["type"] == "_output_event"));
    let err = stderr(&out);
    assert!(
        err.contains("6 events in, 6 out, 0 errors; 12 action tasks (0 failed)"),
        "{err}"
    );
    assert!(err.contains("action tokenize: 6 runs"), "{err}");
}

#[test]
fn run_reads_stdin_and_writes_output_and_summary_files() {
    let weir = Weir::new();
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("out.jsonl");
    let summary_file = dir.path().join("summary.json");
    let input = "{\"key\": \"a\", \"payload\": {\"text\": \"one two three\"}}\n";
    let out = weir.run(
        &[
            "run",
            EXAMPLE,
            "--output",
            out_file.to_str().unwrap(),
            "--summary-json",
            summary_file.to_str().unwrap(),
        ],
        Some(input),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let written = std::fs::read_to_string(&out_file).unwrap();
    let line: Value = serde_json::from_str(written.trim()).unwrap();
    assert_eq!(line["payload"]["total_words"], 3);
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(summary_file).unwrap()).unwrap();
    assert_eq!(summary["events_in"], 1);
    assert_eq!(summary["outputs"], 1);
}

#[test]
fn plan_prints_the_compiled_plan_and_a_second_run_uses_the_cache() {
    let weir = Weir::new();
    let first = weir.run(&["plan", EXAMPLE], None);
    assert!(first.status.success(), "{}", stderr(&first));
    let plan: Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(plan["name"], "word-stats");
    assert_eq!(
        plan["actions_by_event"]["_input_event"],
        serde_json::json!(["tokenize"])
    );
    assert_eq!(
        plan["actions_by_event"]["words_tokenized"],
        serde_json::json!(["count"])
    );
    assert_eq!(plan["actions"]["tokenize"]["config"]["min_length"], 2);
    assert_eq!(plan["config"]["top"], 3);
    assert_eq!(
        plan["components"]["tokenizer"]["carries"][0]["name"],
        "tokenize"
    );
    assert_eq!(
        plan["components"]["tokenizer"]["sha256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    assert_eq!(plan["components"]["tokenizer"]["compiled"], "compiled");

    let second = weir.run(&["plan", EXAMPLE], None);
    let plan: Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(plan["components"]["tokenizer"]["compiled"], "cached");
    assert_eq!(plan["components"]["stats"]["compiled"], "cached");
}

#[test]
fn malformed_input_lines_are_reported_and_skipped_or_stop_the_run() {
    let weir = Weir::new();
    let input = [
        r#"{"key": "a", "payload": {"text": "first line"}}"#,
        r#"{"key": "a", "payload": {"text": "broken"#,
        r#"{"key": "a", "payload": {"text": "third line"}}"#,
        r#"{"key": "a", "pay": 1}"#,
        r#"{"key": "a", "payload": {"text": "fifth line"}}"#,
    ]
    .join("\n");

    let skipped = weir.run(&["run", EXAMPLE], Some(&input));
    assert!(skipped.status.success(), "{}", stderr(&skipped));
    let err = stderr(&skipped);
    assert!(err.contains("-:2: not an input event"), "{err}");
    assert!(err.contains("-:4: not an input event"), "{err}");
    assert!(err.contains("skipped 2 bad input lines"), "{err}");
    assert_eq!(stdout_lines(&skipped).len(), 3);

    let stopped = weir.run(&["run", EXAMPLE, "--on-bad-line", "stop"], Some(&input));
    assert!(!stopped.status.success());
    let err = stderr(&stopped);
    assert!(err.contains("-:2: not an input event"), "{err}");
    assert!(err.contains("stopped at the bad input line 2"), "{err}");
    // The event read before the bad line was still processed.
    assert_eq!(stdout_lines(&stopped).len(), 1);
}

fn manifest(dir: &Path, component: &Path, export: &str) -> PathBuf {
    write(
        dir,
        "agent.toml",
        &format!(
            "[agent]\nname = \"t\"\n\n[components.c]\npath = \"{}\"\n\n[actions.a]\ncomponent = \"c\"\nexport = \"{export}\"\nlisten = [\"_input_event\"]\n",
            component.display()
        ),
    )
}

fn plan_error(weir: &Weir, manifest: &Path) -> String {
    let out = weir.run(
        &["run", manifest.to_str().unwrap()],
        Some("{\"payload\": 1}\n"),
    );
    assert!(!out.status.success(), "planning should have failed");
    assert!(
        out.stdout.is_empty(),
        "no event may run when planning fails"
    );
    stderr(&out)
}

#[test]
fn manifest_and_component_errors_name_file_line_and_field() {
    let weir = Weir::new();
    let dir = tempfile::tempdir().unwrap();
    let misbehave = component("guest_misbehave.wasm");

    let missing = manifest(dir.path(), &dir.path().join("nope.wasm"), "echo");
    let err = plan_error(&weir, &missing);
    assert!(err.contains("agent.toml:5:8: components.c.path:"), "{err}");
    assert!(
        err.contains("nope.wasm: cannot read the component"),
        "{err}"
    );

    let wrong_export = manifest(dir.path(), &misbehave, "ecko");
    let err = plan_error(&weir, &wrong_export);
    assert!(err.contains("agent.toml:9:10: actions.a.export:"), "{err}");
    assert!(
        err.contains("carries no action `ecko`; it carries: echo, trap"),
        "{err}"
    );

    let garbage = write(dir.path(), "garbage.wasm", "not wasm at all");
    let err = plan_error(&weir, &manifest(dir.path(), &garbage, "echo"));
    assert!(
        err.contains("garbage.wasm: not a WebAssembly component"),
        "{err}"
    );

    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let err = plan_error(&weir, &manifest(dir.path(), &core, "echo"));
    assert!(
        err.contains("core.wasm: a core WebAssembly module, not a component"),
        "{err}"
    );

    let command = component("guest-command.wasm");
    let err = plan_error(&weir, &manifest(dir.path(), &command, "echo"));
    assert!(
        err.contains("guest-command.wasm: does not export the `weir:agent/skill@0.1.0` world"),
        "{err}"
    );

    let bad_toml = write(
        dir.path(),
        "bad.toml",
        "[agent]\nname = \"t\"\n[actions.a]\ncomponent = 3\n",
    );
    let err = plan_error(&weir, &bad_toml);
    assert!(err.contains("bad.toml:4:13:"), "{err}");

    let unknown = write(
        dir.path(),
        "unknown.toml",
        "[agent]\nname = \"t\"\n\n[actions.a]\ncomponent = \"missing\"\nlisten = [\"_input_evnt\", \"_output_event\"]\n\n[resources.m]\nkind = \"vector-store\"\n",
    );
    let err = plan_error(&weir, &unknown);
    assert!(
        err.contains(
            "unknown.toml:5:13: actions.a.component: no component named `missing` (declared: none)"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "unknown.toml:6:10: actions.a.listen: `_input_evnt` is not a built-in event type"
        ),
        "{err}"
    );
    assert!(
        err.contains("actions.a.listen: `_output_event` leaves the agent"),
        "{err}"
    );
    assert!(
        err.contains("unknown.toml:8:1: resources.m: unknown resource kind `vector-store`"),
        "{err}"
    );

    let not_found = weir.run(&["plan", "does/not/exist.toml"], None);
    assert!(!not_found.status.success());
    assert!(stderr(&not_found).contains("does/not/exist.toml: cannot read the agent manifest"));
}

#[test]
fn failing_actions_become_error_events_in_their_own_file() {
    let weir = Weir::new();
    let dir = tempfile::tempdir().unwrap();
    let agent = write(
        dir.path(),
        "agent.toml",
        &format!(
            "[agent]\nname = \"t\"\n\n[components.m]\npath = \"{}\"\n\n[actions.echo]\ncomponent = \"m\"\nlisten = [\"_input_event\"]\n\n[actions.panic]\ncomponent = \"m\"\nlisten = [\"boom\"]\n",
            component("guest_misbehave.wasm").display()
        ),
    );
    let errors = dir.path().join("errors.jsonl");
    let input = "{\"key\": \"a\", \"payload\": 1}\n{\"key\": \"b\", \"type\": \"boom\", \"payload\": 2}\n{\"key\": \"c\", \"payload\": 3}\n";
    let out = weir.run(
        &[
            "run",
            agent.to_str().unwrap(),
            "--errors",
            errors.to_str().unwrap(),
        ],
        Some(input),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 2);
    let error_text = std::fs::read_to_string(&errors).unwrap();
    let error: Value = serde_json::from_str(error_text.trim()).unwrap();
    assert_eq!(error["type"], "_error_event");
    assert_eq!(error["key"], "b");
    assert_eq!(error["payload"]["error"], "trap");
    assert!(
        stderr(&out).contains("1 errors; 3 action tasks (1 failed)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_embedding_example_runs() {
    components();
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--example", "embed"])
        .current_dir(repo())
        .env("WEIR_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("ada: 5 words, 5 in total"), "{text}");
    assert!(text.contains("ada: 3 words, 8 in total"), "{text}");
    assert!(text.contains("ada's short-term memory: 8"), "{text}");
}

#[test]
fn the_service_embedding_example_serves_beside_its_own_routes() {
    components();
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO"))
        .args([
            "run",
            "--quiet",
            "--example",
            "serve_embedded",
            "--",
            "--once",
        ])
        .current_dir(repo())
        .env("WEIR_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let answer: Value =
        serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
    assert_eq!(answer["runs"][0]["status"], "done", "{answer}");
    assert_eq!(
        answer["runs"][0]["outputs"][0]["payload"]["total_words"], 3,
        "{answer}"
    );
}

/// An agent whose `echo` action (which echoes each input as an output) may
/// write to `dir/out`.
fn agent_writing_to(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("out")).unwrap();
    write(
        dir,
        "agent.toml",
        &format!(
            "[agent]\nname = \"t\"\n\n[components.m]\npath = \"{}\"\n\n[actions.echo]\ncomponent = \"m\"\nlisten = [\"_input_event\"]\ndirs = [{{ host = \"out\", guest = \"/out\", write = true }}]\n",
            component("guest_misbehave.wasm").display()
        ),
    )
}

#[test]
fn weir_never_writes_through_a_link_or_inside_a_writable_grant() {
    let weir = Weir::new();
    let dir = tempfile::tempdir().unwrap();
    let agent = agent_writing_to(dir.path());
    let input = write(dir.path(), "in.jsonl", "{\"key\": \"a\", \"payload\": 1}\n");
    let victim = write(dir.path(), "victim.txt", "precious\n");
    // What a guest with /out writable can leave for the next run.
    std::os::unix::fs::symlink("../victim.txt", dir.path().join("out/results.jsonl")).unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            agent.to_str().unwrap(),
            "-i",
            input.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        weir.run(&args, None)
    };
    let inside = dir.path().join("out/results.jsonl");
    let fresh = dir.path().join("out/new.jsonl");
    let state = dir.path().join("out/state");
    for (option, path) in [
        ("--output", &inside),
        ("--output", &fresh),
        ("--errors", &fresh),
        ("--summary-json", &fresh),
        ("--state", &state),
    ] {
        let out = run(&[option, path.to_str().unwrap()]);
        assert!(!out.status.success(), "{option} {}", path.display());
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{option} {}", path.display()))
                && err.contains("which action `echo` may write to")
                && err.contains("put it outside every writable directory grant"),
            "{err}"
        );
        assert!(!fresh.exists() && !state.exists());
    }
    // The same directory reached through a link of its own.
    let alias = dir.path().join("alias");
    std::os::unix::fs::symlink("out", &alias).unwrap();
    let out = run(&["-o", alias.join("x.jsonl").to_str().unwrap()]);
    assert!(
        stderr(&out).contains("which action `echo` may write to"),
        "{}",
        stderr(&out)
    );
    // Outside every grant, a link in an output's place is not followed
    // either (whoever planted it).
    let link = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink("victim.txt", &link).unwrap();
    for option in ["--output", "--summary-json"] {
        let out = run(&[option, link.to_str().unwrap()]);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("is a symbolic link"),
            "{}",
            stderr(&out)
        );
    }
    let out = run(&[
        "-o",
        link.to_str().unwrap(),
        "--state",
        dir.path().join("st").to_str().unwrap(),
    ]);
    assert!(
        stderr(&out).contains("is a symbolic link"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    // A file of its own, outside the grants, is written as ever.
    let own = dir.path().join("results.jsonl");
    let out = run(&["-o", own.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&own).unwrap().lines().count(), 1);
}

#[test]
fn bad_bytes_long_lines_and_long_keys_are_bad_lines_with_their_number() {
    let weir = Weir::new();
    let dir = tempfile::tempdir().unwrap();
    let agent = agent_writing_to(dir.path());
    let mut input = b"{\"key\": \"a\", \"payload\": 1}\n".to_vec();
    input.extend_from_slice(b"{\"key\": \"b\", \"payload\": \"\xff\xfe\"}\n");
    input.extend_from_slice(
        format!(
            "{{\"key\": \"c\", \"payload\": \"{}\"}}\n",
            "x".repeat(3 << 20)
        )
        .as_bytes(),
    );
    input.extend_from_slice(
        format!("{{\"key\": \"{}\", \"payload\": 4}}\r\n", "k".repeat(2000)).as_bytes(),
    );
    input.extend_from_slice(
        format!(
            "{{\"key\": \"d\", \"id\": \"{}\", \"payload\": 4}}\n",
            "i".repeat(1025)
        )
        .as_bytes(),
    );
    input.extend_from_slice(b"{\"key\": \"e\", \"payload\": 5}");
    let path = dir.path().join("in.jsonl");
    std::fs::write(&path, &input).unwrap();
    let out = weir.run(
        &[
            "run",
            agent.to_str().unwrap(),
            "-i",
            path.to_str().unwrap(),
            "--max-line-bytes",
            "1048576",
        ],
        None,
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let keys: Vec<Value> = stdout_lines(&out)
        .iter()
        .map(|e| e["key"].clone())
        .collect();
    assert_eq!(keys, ["a", "e"], "{err}");
    let name = path.display();
    assert!(
        err.contains(&format!(
            "{name}:2: not UTF-8 text (an invalid byte at column 26)"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{name}:3: the line is about 3145756 bytes, over the limit of 1048576"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{name}:4: the key is 2000 bytes, over the limit of 1024"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{name}:5: the id is 1025 bytes, over the limit of 1024"
        )),
        "{err}"
    );
    assert!(err.contains("skipped 4 bad input lines"), "{err}");
}

#[test]
fn durable_outputs_may_go_to_a_device() {
    let weir = Weir::new();
    let dir = tempfile::tempdir().unwrap();
    let agent = agent_writing_to(dir.path());
    let input = write(dir.path(), "in.jsonl", "{\"key\": \"a\", \"payload\": 1}\n");
    let state = dir.path().join("state");
    for _ in 0..2 {
        let out = weir.run(
            &[
                "run",
                agent.to_str().unwrap(),
                "-i",
                input.to_str().unwrap(),
                "-o",
                "/dev/null",
                "--state",
                state.to_str().unwrap(),
            ],
            None,
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
}
