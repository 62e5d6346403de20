//! What serving costs: the trivial agent (one fresh-instance task per
//! event) through `weir serve` over HTTP/1.1 keep-alive, against `weir run`
//! on the same events in the same round, journal off and on.
//!
//! - Throughput: `WEIR_BENCH_EVENTS` events (default 20000) submitted by C
//!   concurrent clients in batches of B (JSON lines), timed from the first
//!   submit to the last output read from the SSE stream; `weir run` reads
//!   the same events from a file. Reported as events/s and as the ratio to
//!   `weir run` (the goal: the service within 2x).
//! - Latency: one event per request, open loop at half the peak
//!   single-event rate, for `WEIR_BENCH_SECS` seconds (default 10): each
//!   event's time from sending its submit to reading its output on the
//!   stream (p50, p99, max; the goal: p99 under 10 ms).
//! - Soak (`WEIR_BENCH_SOAK_SECS`, e.g. 600): the latency load for that
//!   long, the server's RSS sampled every 10 s.
//!
//! `cargo bench --bench serve` (env `WEIR_BENCH_ROUNDS`, default 3;
//! `WEIR_BENCH_SERVE_ARGS`, more `weir serve` arguments, e.g.
//! `--kept-runs 0`). The
//! servers and `weir run` are the release `weir` binary in child
//! processes; the clients run in this process, on the same 2 cores.

use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod support;
use support::env_usize;

const KEYS: usize = 100;

fn weir() -> &'static str {
    env!("CARGO_BIN_EXE_weir")
}

/// The trivial agent's manifest in `dir`.
fn trivial(dir: &Path) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = dir.join("trivial.toml");
    std::fs::write(
        &manifest,
        format!(
            "[agent]\nname = \"trivial\"\n\n[components.b]\npath = \"{}\"\n\n[actions.single]\ncomponent = \"b\"\nlisten = [\"_input_event\"]\n",
            repo.join("build/components/guest_bench.wasm").display()
        ),
    )
    .unwrap();
    manifest
}

fn line(i: usize) -> String {
    format!(
        "{{\"id\":\"e{i}\",\"key\":\"k{}\",\"payload\":\"the quick brown fox jumps over the lazy dog {i}\"}}\n",
        i % KEYS
    )
}

/// CPU seconds (user + system) of the children waited for so far.
fn children_cpu() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// CPU seconds (user + system) of process `pid` so far.
fn process_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / per_second
}

/// `weir run` over `n` events: events/s and CPU us per event.
fn weir_run(dir: &Path, manifest: &Path, n: usize, journal: bool) -> (f64, f64) {
    let input = dir.join("in.jsonl");
    if std::fs::metadata(&input).map(|m| m.len()).unwrap_or(0) == 0 {
        std::fs::write(&input, (0..n).map(line).collect::<String>()).unwrap();
    }
    let state = dir.join("run-state");
    let _ = std::fs::remove_dir_all(&state);
    let mut command = Command::new(weir());
    command
        .arg("run")
        .arg(manifest)
        .arg("--input")
        .arg(&input)
        .args(["--output", "/dev/null"])
        .stderr(Stdio::null());
    if journal {
        command.arg("--state").arg(&state);
    }
    let (started, cpu) = (Instant::now(), children_cpu());
    assert!(command.status().unwrap().success());
    let rate = n as f64 / started.elapsed().as_secs_f64();
    (rate, (children_cpu() - cpu) * 1e6 / n as f64)
}

/// A `weir serve` child and its URL.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `weir serve` as configured by default (it keeps the latest 10,000
/// outputs and runs), plus `WEIR_BENCH_SERVE_ARGS`.
fn serve(dir: &Path, manifest: &Path, journal: bool) -> Server {
    use std::io::BufRead as _;
    let state = dir.join("serve-state");
    let _ = std::fs::remove_dir_all(&state);
    let mut command = Command::new(weir());
    command
        .arg("serve")
        .arg(manifest)
        .args(["--listen", "127.0.0.1:0"])
        .env("WEIR_LOG", "error")
        .stderr(Stdio::piped());
    if let Ok(extra) = std::env::var("WEIR_BENCH_SERVE_ARGS") {
        command.args(extra.split_whitespace());
    }
    if journal {
        command.arg("--state").arg(&state);
    }
    let mut child = command.spawn().unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    let url = first
        .trim()
        .rsplit(' ')
        .next()
        .expect("weir: serving ... at URL")
        .to_string();
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    Server { child, url }
}

/// What the stream's reader reads of an output (or of a `missed` notice).
#[derive(serde::Deserialize)]
struct Data<'a> {
    #[serde(borrow)]
    upstream_id: Option<std::borrow::Cow<'a, str>>,
    missed: Option<u64>,
}

/// Reads the output stream after output `after`, calling `seen` with each
/// output's upstream (input) id as it arrives, until `n` outputs; returns
/// how many of them the server no longer kept when the stream got to them
/// (it keeps the latest `--kept-outputs`), which the reader counts as read.
async fn read_outputs(
    url: String,
    after: u64,
    n: usize,
    mut seen: impl FnMut(&str) + Send + 'static,
) -> usize {
    let http = reqwest::Client::new();
    let mut response = http
        .get(format!("{url}/v1/agents/trivial/outputs?after={after}"))
        .send()
        .await
        .unwrap();
    let mut buffer: Vec<u8> = Vec::new();
    let (mut count, mut missed) = (0, 0);
    while count < n {
        let chunk = response.chunk().await.unwrap().expect("the stream goes on");
        buffer.extend_from_slice(&chunk);
        // Every whole block in the buffer, then what is left moved once.
        let mut start = 0;
        while let Some(at) = buffer[start..].windows(2).position(|w| w == b"\n\n") {
            let block = &buffer[start..start + at];
            start += at + 2;
            let Some(data) = block
                .split(|&b| b == b'\n')
                .find_map(|line| line.strip_prefix(b"data: "))
            else {
                continue;
            };
            let data: Data<'_> = serde_json::from_slice(data).unwrap();
            if let Some(upstream) = data.upstream_id {
                seen(&upstream);
                count += 1;
            } else if let Some(gone) = data.missed {
                missed += gone as usize;
                count += gone as usize;
            }
        }
        buffer.drain(..start);
    }
    missed
}

/// Submits events `0..n` from `clients` clients in batches of `batch`;
/// events/s from the first submit to the last output, and how many outputs
/// the stream's reader fell too far behind to read.
async fn throughput(url: &str, n: usize, clients: usize, batch: usize) -> (f64, usize) {
    // The load generator's own work is kept off the clock where it can be:
    // every request's body is made before it starts.
    let bodies: Arc<Vec<String>> = Arc::new(
        (0..n)
            .step_by(batch)
            .map(|from| (from..(from + batch).min(n)).map(line).collect())
            .collect(),
    );
    let reader = tokio::spawn(read_outputs(url.to_string(), 0, n, |_| {}));
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (next, url, bodies) = (next.clone(), url.to_string(), bodies.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            loop {
                let from = next.fetch_add(batch, std::sync::atomic::Ordering::Relaxed);
                if from >= n {
                    return;
                }
                let body = &bodies[from / batch];
                loop {
                    let answer = http
                        .post(format!("{url}/v1/agents/trivial/events"))
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    match answer.status().as_u16() {
                        202 => break,
                        429 => tokio::time::sleep(Duration::from_millis(2)).await,
                        other => panic!("{other}: {:?}", answer.text().await),
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let missed = reader.await.unwrap();
    (n as f64 / started.elapsed().as_secs_f64(), missed)
}

/// One event per request at `rate` a second for `secs` (ids from `first`):
/// the latencies in ms, sorted, and how many submits were answered 429.
async fn latency(url: &str, rate: f64, secs: f64, first: usize) -> (Vec<f64>, usize) {
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n = (rate * secs) as usize;
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let took: Arc<Mutex<Vec<f64>>> = Arc::default();
    let (sent_at, took_by) = (sent.clone(), took.clone());
    // The stream from the latest output on.
    let listed: Value = reqwest::get(format!("{url}/v1/agents"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let after = listed["agents"][0]["outputs"].as_u64().unwrap();
    let reader = tokio::spawn(read_outputs(url.to_string(), after, n, move |id| {
        if let Some(at) = sent_at.lock().unwrap().remove(id) {
            took_by
                .lock()
                .unwrap()
                .push(at.elapsed().as_secs_f64() * 1000.0);
        }
    }));
    let http = reqwest::Client::new();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for i in first..first + n {
        ticker.tick().await;
        let (http, url, sent) = (http.clone(), url.to_string(), sent.clone());
        let refused = refused.clone();
        tokio::spawn(async move {
            sent.lock().unwrap().insert(format!("e{i}"), Instant::now());
            // A full intake (429) is sent again shortly: its wait is part
            // of the event's latency.
            loop {
                let answer = http
                    .post(format!("{url}/v1/agents/trivial/events"))
                    .body(line(i))
                    .send()
                    .await
                    .unwrap();
                match answer.status().as_u16() {
                    202 => break,
                    429 => {
                        refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    other => panic!("{other}"),
                }
            }
        });
    }
    let missed = reader.await.unwrap();
    assert_eq!(missed, 0, "the latency load's reader fell behind");
    let mut took = std::mem::take(&mut *took.lock().unwrap());
    took.sort_by(f64::total_cmp);
    (took, refused.load(std::sync::atomic::Ordering::Relaxed))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        Command::new(repo.join("scripts/build-skills"))
            .status()
            .unwrap()
            .success()
    );
    let dir = tempfile::tempdir().unwrap();
    let manifest = trivial(dir.path());
    assert!(
        Command::new(weir())
            .arg("plan")
            .arg(&manifest)
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    );
    let n = env_usize("WEIR_BENCH_EVENTS", 20_000);
    let rounds = env_usize("WEIR_BENCH_ROUNDS", 3);
    let secs = env_usize("WEIR_BENCH_SECS", 10) as f64;
    let soak = env_usize("WEIR_BENCH_SOAK_SECS", 0) as f64;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let shapes = [(16, 1), (4, 100)];

    println!(
        "| journal | `weir run` events/s (CPU us/event) | serve, 16 clients x 1 event | serve, 4 clients x 100 events | p50 / p99 / max ms at half the 1-event peak |"
    );
    println!("|---|---|---|---|---|");
    for journal in [false, true] {
        let (mut run, mut run_cpu) = (Vec::new(), Vec::new());
        let mut served: Vec<Vec<f64>> = vec![Vec::new(); shapes.len()];
        let mut served_cpu: Vec<Vec<f64>> = vec![Vec::new(); shapes.len()];
        // Outputs dropped (beyond --kept-outputs) before the reader got to them.
        let mut fell_behind = 0;
        for round in 0..rounds {
            let (rate, cpu) = weir_run(dir.path(), &manifest, n, journal);
            run.push(rate);
            run_cpu.push(cpu);
            for (s, &(clients, batch)) in shapes.iter().enumerate() {
                let server = serve(dir.path(), &manifest, journal);
                let before = process_cpu(server.child.id());
                let (rate, missed) = runtime.block_on(throughput(&server.url, n, clients, batch));
                fell_behind += missed;
                let cpu = (process_cpu(server.child.id()) - before) * 1e6 / n as f64;
                served[s].push(rate);
                served_cpu[s].push(cpu);
                eprintln!(
                    "journal {journal} round {round}: weir run {:.0}/s {:.1} us/event, serve {clients}x{batch} {rate:.0}/s {cpu:.1} us/event",
                    run[round], run_cpu[round]
                );
            }
        }
        let (run, run_cpu) = (median(run), median(run_cpu));
        let served: Vec<f64> = served.into_iter().map(median).collect();
        let served_cpu: Vec<f64> = served_cpu.into_iter().map(median).collect();
        // Latency at half the single-event peak, on a fresh server.
        let server = serve(dir.path(), &manifest, journal);
        let rate = served[0] / 2.0;
        let (took, refused) = runtime.block_on(latency(&server.url, rate, secs, 0));
        println!(
            "| {} | {run:.0} ({run_cpu:.1}) | {:.0}/s, {:.2}x slower; CPU {:.1} us, {:.2}x | {:.0}/s, {:.2}x slower; CPU {:.1} us, {:.2}x | {:.1} / {:.1} / {:.1} at {rate:.0}/s ({} events, {refused} 429s) |",
            if journal { "on" } else { "off" },
            served[0],
            run / served[0],
            served_cpu[0],
            served_cpu[0] / run_cpu,
            served[1],
            run / served[1],
            served_cpu[1],
            served_cpu[1] / run_cpu,
            percentile(&took, 0.5),
            percentile(&took, 0.99),
            took.last().copied().unwrap_or(0.0),
            took.len(),
        );
        if fell_behind > 0 {
            println!(
                "\n(the output stream's reader missed {fell_behind} outputs in all: dropped before it read them)\n"
            );
        }
        if soak > 0.0 && journal {
            // The same load for `soak` seconds, RSS every 10 s.
            let pid = server.child.id();
            let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let watching = done.clone();
            let sampler = std::thread::spawn(move || {
                let mut samples = Vec::new();
                let started = Instant::now();
                while !watching.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_secs(10));
                    samples.push((started.elapsed().as_secs(), rss_kib(pid)));
                }
                samples
            });
            let first = (rate * secs) as usize;
            let (took, refused) = runtime.block_on(latency(&server.url, rate, soak, first));
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            let samples = sampler.join().unwrap();
            println!(
                "\nsoak: {soak:.0} s at {rate:.0}/s with the journal, {} events ({refused} 429s), p99 {:.1} ms; server RSS (s, KiB): {samples:?}",
                took.len(),
                percentile(&took, 0.99)
            );
        }
    }
}
