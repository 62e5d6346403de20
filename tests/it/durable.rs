//! Durable execution: `weir run --state` killed with SIGKILL at random
//! moments and restarted on the same input writes every output exactly
//! once, repeats no recorded model call, and keeps short-term memory as a
//! crash-free run would; it resumes its input where it stopped; torn
//! writes and a full disk lose nothing. Replay is in `replay.rs`, effects
//! and reconcilers in `reconcile.rs`.

use crate::support::durable::{
    StateRun, ask_and_order as agent, kill, longest_seen, times_asked, until,
};
use crate::support::model_server::{ModelServer, Reply, openai_text};
use crate::support::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::process::{Command, Stdio};
use std::time::Duration;

const KEYS: usize = 20;

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
    let last_seen = longest_seen(&outputs);
    assert_eq!(last_seen.len(), KEYS);
    for (key, seen) in &last_seen {
        let expected: Vec<Value> = (1..=events / KEYS).map(|s| json!(s)).collect();
        assert_eq!(seen, &expected, "memory of {key}");
    }

    // Each question was asked once, but for calls in flight at a kill or
    // finished since the last commit reached the disk (a few per key in
    // flight; far below the 2,000 a journal-less restart would repeat).
    let asked = times_asked(&server);
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
    let said = weir(&["state", "inspect", state_dir.to_str().unwrap(), "--json"]);
    let found: Value = serde_json::from_str(&said).unwrap();
    assert_eq!(found["keys"].as_array().unwrap().len(), KEYS, "{said}");
    assert_eq!(found["resume"]["seq"], events as u64 + 1, "{said}");
    assert_eq!(found["torn_bytes"], 0, "{said}");
    let said = weir(&["state", "compact", state_dir.to_str().unwrap()]);
    assert!(said.starts_with("compacted:"), "{said}");
    let after: Value = serde_json::from_str(&weir(&[
        "state",
        "inspect",
        state_dir.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    // Compaction leaves only what is live, and all of it.
    assert_eq!(after["file_bytes"], found["used_bytes"], "{after}");
    assert_eq!(after["keys"], found["keys"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_input_is_refused_at_the_resume_point() {
    let server = ModelServer::start().await;
    // One key's question is answered; the other's stalls until the kill.
    server.script([Reply::Json(openai_text("a", 1, 1))]);
    server.fallback(Reply::Delayed(
        Duration::from_secs(3600),
        Box::new(Reply::Json(openai_text("late", 1, 1))),
    ));
    let tmp = tempfile::tempdir().unwrap();
    let line = |key: &str| json!({ "key": key, "payload": { "model": "assistant", "question": key, "seq": 1 } });
    let run = StateRun::new(
        tmp.path(),
        agent(tmp.path(), &server.url),
        &[line("a"), line("b")],
    );
    let child = run.spawn();
    // One key's run is committed, the other's is in flight (whichever
    // question reached the server first was answered).
    until(|| server.count() == 2 && run.outputs().len() == 2).await;
    let (done_key, open_key, open_line) = if run.outputs()[0]["key"] == "a" {
        ("a", "b", 2)
    } else {
        ("b", "a", 1)
    };
    // The resume point is written with the commit it counts, so outputs
    // out means it is on disk.
    kill(child);
    let said = run.inspect();
    assert!(
        said.contains(&format!(
            "resume at:      input event {open_line}, line {open_line}"
        )),
        "{said}"
    );

    // The line there is not what it was: refused with the place and a way out.
    let changed = if open_line == 1 {
        [line("c"), line("b")]
    } else {
        [line("a"), line("c")]
    };
    let text: String = changed.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&run.input, text).unwrap();
    server.fallback(Reply::Json(openai_text("now", 1, 1)));
    let refused = run.run(&[]).await;
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
    let done = run.run(&["--from-start"]).await;
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let keys: Vec<String> = run
        .outputs()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        keys.iter().filter(|k| *k == done_key).count(),
        2,
        "{keys:?}"
    );
    assert_eq!(keys.iter().filter(|k| *k == "c").count(), 2, "{keys:?}");
    assert!(!keys.contains(&open_key.to_string()), "{keys:?}");
}

const PAGE: usize = 4096;

/// `after` as a crash during its last write can leave it: `before` (synced)
/// and then the new bytes, with the file's pages in `lost` (4 KiB, by
/// offset) not written: zeros where the file grew.
fn with_pages_lost(before: &[u8], after: &[u8], lost: &[usize]) -> Vec<u8> {
    let mut bytes = after.to_vec();
    for &page in lost {
        let range = (page * PAGE).max(before.len())..((page + 1) * PAGE).min(after.len());
        bytes[range].fill(0);
    }
    bytes
}

/// The keys of the journal in `dir`, with each one's sequence number and
/// memory.
fn keys_of(store: &weir::journal::Journal) -> BTreeMap<String, (u64, Value)> {
    store
        .keys()
        .iter()
        .map(|(k, seq, memory)| (k.clone(), (*seq, memory.clone())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_last_commit_is_discarded_and_the_run_goes_on() {
    use weir::journal::Journal;
    let tmp = tempfile::tempdir().unwrap();
    let live = tmp.path().join("live");
    let journal = live.join("journal.log");
    let store = Journal::open(&live, "agent-v1").unwrap();
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
    let last = json!({ "v": 21, "pad": "y".repeat(9000) });
    store
        .commit("k1", 21, last.clone(), Vec::new(), "run-21")
        .await
        .unwrap();
    let after = std::fs::read(&journal).unwrap();
    assert!(after.starts_with(&before), "the journal only appends");
    let tail = after.len() - before.len();
    let pages: Vec<usize> = (before.len() / PAGE..after.len().div_ceil(PAGE)).collect();
    assert!(pages.len() >= 3, "the last commit spans pages {pages:?}");

    // What a crash during the last commit can leave: the commits before
    // it are synced; of the last, any prefix (the file not grown all the
    // way), or the file grown with any of its pages not written.
    // k1's inputs are 1, 5, 9, 13, 17, then 21.
    let mut torn: Vec<(String, Vec<u8>, u64)> =
        vec![("the whole commit".into(), after.clone(), 21)];
    for cut in [1, 11, 12, 13, tail / 2, tail - 1]
        .into_iter()
        .chain((0..4).map(|_| fastrand::usize(1..tail)))
    {
        let what = format!("the first {cut} of {tail} bytes of the commit");
        torn.push((what, after[..before.len() + cut].to_vec(), 17));
    }
    let mut lost_sets = vec![pages.clone(), vec![pages[0]], vec![*pages.last().unwrap()]];
    lost_sets.extend((0..5).map(|_| {
        let some: Vec<usize> = pages.iter().copied().filter(|_| fastrand::bool()).collect();
        if some.is_empty() {
            vec![pages[1]]
        } else {
            some
        }
    }));
    for lost in lost_sets {
        let what = format!("pages {lost:?} of {pages:?} not written");
        torn.push((what, with_pages_lost(&before, &after, &lost), 17));
    }
    for (what, bytes, expected) in torn {
        let dir = tmp.path().join(format!("torn-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("journal.log"), &bytes).unwrap();
        // The torn commit is discarded: the journal holds the commits
        // before it, whole.
        let store = Journal::open(&dir, "agent-v1")
            .unwrap_or_else(|e| panic!("{what}: the journal was not recovered: {e}"));
        let keys = keys_of(&store);
        assert_eq!(keys.len(), 4, "{what}");
        let (seq, memory) = &keys["k1"];
        assert_eq!(*seq, expected, "{what}");
        if expected == 21 {
            assert_eq!(memory, &last, "{what}");
        } else {
            assert_eq!(memory["v"], 17, "{what}");
        }
        // The discarded work runs again and commits; later work goes on,
        // after the cut (nothing of the torn tail is left before it).
        store
            .commit("k1", 21, last.clone(), Vec::new(), "run-21")
            .await
            .unwrap();
        store
            .commit("k2", 22, json!({ "v": 22 }), Vec::new(), "run-22")
            .await
            .unwrap();
        let found = weir::journal::inspect(&dir).unwrap();
        assert_eq!(found.torn_bytes, 0, "{what}");
        let seqs: BTreeMap<String, u64> = found.keys.into_iter().collect();
        assert_eq!((seqs["k1"], seqs["k2"]), (21, 22), "{what}");
    }

    // Damage a crash cannot leave (a changed byte in a synced commit, with
    // whole commits after it) is refused with a message naming the file.
    let dir = tmp.path().join("damaged");
    std::fs::create_dir_all(&dir).unwrap();
    let mut damaged = after.clone();
    damaged[before.len() / 2] ^= 0x20;
    std::fs::write(dir.join("journal.log"), &damaged).unwrap();
    let err = Journal::open(&dir, "agent-v1")
        .err()
        .expect("a damaged journal is refused")
        .to_string();
    assert!(err.contains("damaged/journal.log"), "{err}");
    assert!(err.contains("damaged at byte"), "{err}");
    assert!(err.contains("move it aside"), "{err}");
    // Nothing was changed: the file is as it was.
    assert_eq!(std::fs::read(dir.join("journal.log")).unwrap(), damaged);

    // A committed frame's length changed to reach the end of the file (so
    // it looks like a torn last frame): refused too, not cut.
    let mut damaged = after.clone();
    let second = 24 + u32::from_le_bytes(after[12..16].try_into().unwrap()) as usize;
    let to_end = (after.len() - second - 24) as u32;
    damaged[second + 12..second + 16].copy_from_slice(&to_end.to_le_bytes());
    std::fs::write(dir.join("journal.log"), &damaged).unwrap();
    let err = Journal::open(&dir, "agent-v1")
        .err()
        .expect("a length changed on disk is refused")
        .to_string();
    assert!(err.contains(&format!("damaged at byte {second}")), "{err}");
    assert_eq!(std::fs::read(dir.join("journal.log")).unwrap(), damaged);
}

#[tokio::test]
async fn a_journal_of_another_format_or_in_use_is_refused() {
    use weir::journal::Journal;
    let tmp = tempfile::tempdir().unwrap();
    // The redb journal of an earlier weir.
    let old = tmp.path().join("old");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("journal.redb"), b"redb").unwrap();
    let err = Journal::open(&old, "agent-v1").err().unwrap().to_string();
    assert!(err.contains("old/journal.redb"), "{err}");
    assert!(err.contains("weir-journal-2"), "{err}");
    assert!(
        err.contains("finish the run with the weir that wrote it"),
        "{err}"
    );
    assert!(!old.join("journal.log").exists(), "nothing was written");

    // A log in a format from a later weir: one frame with its meta
    // record; and one of weir-journal-3, whose frames were not numbered.
    let mut payload = vec![1u8];
    for field in [&b"weir-journal-9"[..], b"agent-v1"] {
        payload.extend_from_slice(&(field.len() as u32).to_le_bytes());
        payload.extend_from_slice(field);
    }
    let mut frame = vec![0xff, b'W', b'J', b'L'];
    frame.extend_from_slice(&0u64.to_le_bytes());
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(&frame).to_le_bytes());
    frame.extend_from_slice(&payload);
    let mut frame_3 = b"WJL\x01".to_vec();
    frame_3.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame_3.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    frame_3.extend_from_slice(&payload);
    for (name, bytes, found) in [
        ("later", &frame, "weir-journal-9"),
        ("three", &frame_3, "weir-journal-3"),
    ] {
        let later = tmp.path().join(name);
        std::fs::create_dir_all(&later).unwrap();
        std::fs::write(later.join("journal.log"), bytes).unwrap();
        let err = Journal::open(&later, "agent-v1").err().unwrap().to_string();
        assert!(err.contains(&format!("format `{found}`")), "{err}");
        assert_eq!(&std::fs::read(later.join("journal.log")).unwrap(), bytes);
    }

    // A text file, or a link, in the journal's place: refused, untouched.
    let text = tmp.path().join("text");
    std::fs::create_dir_all(&text).unwrap();
    std::fs::write(text.join("journal.log"), "notes\n").unwrap();
    let err = Journal::open(&text, "agent-v1").err().unwrap().to_string();
    assert!(err.contains("not a weir journal"), "{err}");
    assert_eq!(std::fs::read(text.join("journal.log")).unwrap(), b"notes\n");
    let linked = tmp.path().join("linked");
    std::fs::create_dir_all(&linked).unwrap();
    std::os::unix::fs::symlink(text.join("journal.log"), linked.join("journal.log")).unwrap();
    let err = Journal::open(&linked, "agent-v1")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("is a symbolic link"), "{err}");
    assert_eq!(std::fs::read(text.join("journal.log")).unwrap(), b"notes\n");

    // Another agent's journal.
    let dir = tmp.path().join("agent");
    Journal::open(&dir, "agent-v1")
        .unwrap()
        .sync()
        .await
        .unwrap();
    let err = Journal::open(&dir, "agent-v2").err().unwrap().to_string();
    assert!(
        err.contains("written by agent `agent-v1`, not `agent-v2`"),
        "{err}"
    );

    // One run per state directory: a second open is refused while the
    // first holds it.
    let dir = tmp.path().join("busy");
    let first = Journal::open(&dir, "agent-v1").unwrap();
    let err = Journal::open(&dir, "agent-v1").err().unwrap().to_string();
    assert!(err.contains("in use by another weir process"), "{err}");
    first.sync().await.unwrap();
}

/// An agent whose action writes its 4 KiB payload to short-term memory,
/// and `events` input lines for it: a journal that grows fast.
fn full_disk_setup(dir: &std::path::Path, events: usize) -> (std::path::PathBuf, String) {
    let manifest = write(
        dir,
        "full.toml",
        &format!(
            "[agent]\nname = \"full\"\n\n[components.m]\npath = \"{}\"\n\n[actions.remember]\ncomponent = \"m\"\nlisten = [\"_input_event\"]\n",
            component("guest_misbehave.wasm").display()
        ),
    );
    let pad = "x".repeat(4096);
    let lines = (0..events)
        .map(|i| {
            let payload = json!({ "path": format!("p{i}"), "value": pad, "read": "none" });
            format!(
                "{}\n",
                json!({ "key": format!("k{}", i % 10), "payload": payload })
            )
        })
        .collect();
    (manifest, lines)
}

/// `weir ARGS` under a file-size limit of `bytes`, with SIGXFSZ ignored, as
/// a full disk fails a write.
fn with_file_limit(bytes: u64) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; exec prlimit --fsize={bytes} \"$0\" \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_weir"));
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_intake_with_an_error_and_loses_nothing() {
    // The journal grows past the largest file the process may write, while
    // the outputs stay small.
    let tmp = tempfile::tempdir().unwrap();
    let events = 1500;
    let (manifest, lines) = full_disk_setup(tmp.path(), events);
    let input = write(tmp.path(), "in.jsonl", &lines);
    let output = tmp.path().join("out.jsonl");
    let state = tmp.path().join("state");
    let run = |limit: Option<u64>| {
        let mut command = match limit {
            Some(bytes) => with_file_limit(bytes),
            None => Command::new(env!("CARGO_BIN_EXE_weir")),
        };
        command
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
    assert!(stderr.contains("journal.log"), "{stderr}");
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
async fn a_full_disk_ends_a_run_whose_input_is_idle() {
    // One line, whose commit (1 MiB of memory) does not fit, and the input
    // (stdin) stays open with nothing more to read: the failed commit
    // itself must stop intake, not the arrival of another line, and weir
    // must exit with its error though a read of stdin is still pending.
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, _) = full_disk_setup(tmp.path(), 0);
    let payload = json!({ "path": "big", "value": "x".repeat(1 << 20), "read": "none" });
    let lines = format!("{}\n", json!({ "key": "k", "payload": payload }));
    let mut child = with_file_limit(512 << 10)
        .arg("run")
        .arg(&manifest)
        .args(["--input", "-", "--output", "/dev/null", "--state"])
        .arg(tmp.path().join("state"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (ended, end) = std::sync::mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        // weir may stop reading before the last line (a broken pipe then).
        let _ = std::io::Write::write_all(&mut stdin, lines.as_bytes());
        // Held open, not closed, until the run has ended.
        let _ = end.recv();
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let mut stderr = String::new();
            let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr);
            panic!("weir kept waiting for input after its journal failed: {stderr}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(ended);
    writer.join().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "the run should fail: {stderr}");
    assert!(stderr.contains("File too large"), "{stderr}");
    assert!(stderr.contains("stopped taking input"), "{stderr}");
}
