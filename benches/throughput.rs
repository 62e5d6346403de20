//! Throughput and latency of the runtime, with a breakdown of a task's cost.
//!
//! `cargo bench --bench throughput` (env `WEIR_BENCH_EVENTS`, default 100000;
//! `WEIR_BENCH_KEYS`, default 100). Prints a Markdown table for BENCHMARKS.md.
//! `WEIR_BENCH_ONLY=hot-path` runs only the task probe and the agents'
//! table (the library path and `weir run`, CPU per event against the
//! fresh-task floor). `WEIR_BENCH_ONLY=journal` runs only the journal tables (`journal-latency`
//! only its one-event-at-a-time latency); `trivial-on` or
//! `trivial-off` only the trivial agent with the journal on or off (to run
//! under a profiler); `WEIR_BENCH_ONLY=langs` only the per-task cost of the
//! same action in Rust, Python and JavaScript (`WEIR_BENCH_STARLINGMONKEY`
//! adds a componentize-js component exporting `single`);
//! `WEIR_BENCH_ROUNDS` sets the rounds.

#[path = "../tests/it/support/model_server.rs"]
#[allow(dead_code)]
mod model_server;

mod support;

use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::env_usize;
use weir::event::types;
use weir::sandbox::probe;
use weir::{
    ActionBuilder, Agent, AgentPlan, Event, Isolation, LimitSettings, ReuseScope, Runtime, Sandbox,
    SandboxConfig,
};

fn components() -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let status = std::process::Command::new(repo.join("scripts/build-skills"))
        .status()
        .expect("run scripts/build-skills");
    assert!(status.success());
    repo.join("build/components")
}

const SENTENCES: &[&str] = &[
    "the quick brown fox jumps over the lazy dog again today",
    "a stitch in time saves nine but only if you sew it",
    "all that glitters is not gold and all who wander are not lost",
    "to be or not to be that is the question we ask",
];

struct Measured {
    events_per_sec: f64,
    p50: Duration,
    p99: Duration,
    tasks: u64,
    /// CPU time of the whole process (all threads, user + system) per
    /// event, in microseconds.
    cpu_per_event: f64,
}

/// CPU time (user + system) of this process, or with `children` of its
/// waited-for children, so far.
fn cpu_time(children: bool) -> Duration {
    let who = if children {
        libc::RUSAGE_CHILDREN
    } else {
        libc::RUSAGE_SELF
    };
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(who, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Feeds `n` events over `keys` keys and times each from send to its output.
async fn pipeline(plan: Arc<AgentPlan>, n: usize, keys: usize) -> Measured {
    pipeline_on(Runtime::shared(plan), n, keys, None).await
}

/// As [`pipeline`], on a runtime set up by the caller.
/// With `journal`, outputs are acknowledged as received, as the CLI's sink
/// does once they are written.
async fn pipeline_on(
    runtime: Runtime,
    n: usize,
    keys: usize,
    journal: Option<Arc<weir::journal::Journal>>,
) -> Measured {
    let mut run = runtime.start();
    let sender = run.events.clone();
    run.events.close();
    let sent: Arc<std::sync::Mutex<Vec<Instant>>> =
        Arc::new(std::sync::Mutex::new(Vec::with_capacity(n)));
    let sent_by_feeder = sent.clone();
    let start = Instant::now();
    let cpu_start = cpu_time(false);
    let feeder = tokio::spawn(async move {
        for i in 0..n {
            let key = format!("key-{}", i % keys);
            let text = SENTENCES[i % SENTENCES.len()];
            sent_by_feeder.lock().unwrap().push(Instant::now());
            sender
                .send(Event::input(
                    key,
                    json!({ "i": i, "text": text, "model": "model", "question": text }),
                ))
                .await
                .unwrap();
        }
    });
    // Outputs of one key come in its input order, so the k-th output of a key
    // answers its k-th input: i = k * keys + key index.
    let mut seen_per_key: HashMap<String, usize> = HashMap::new();
    let mut latencies = Vec::with_capacity(n);
    let mut acks = Vec::new();
    // Outputs taken as they come, many per wake-up (as an embedding service
    // would drain them), not one wake-up of this thread per output.
    let mut batch = Vec::with_capacity(256);
    while run.outputs.recv_many(&mut batch, 256).await > 0 {
        for out in batch.drain(..) {
            assert_eq!(out.event_type, types::OUTPUT, "{}", out.payload);
            let k = seen_per_key.entry(out.key.clone()).or_default();
            let key_index: usize = out.key["key-".len()..].parse().unwrap();
            let i = *k * keys + key_index;
            *k += 1;
            let sent_at = sent.lock().unwrap()[i];
            latencies.push(sent_at.elapsed());
            if let Some(journal) = &journal {
                // In batches, as the CLI's sink acknowledges what it wrote.
                acks.push(out.id);
                if acks.len() >= 512 || run.outputs.is_empty() {
                    journal.delivered(std::mem::take(&mut acks));
                }
            }
        }
    }
    let elapsed = start.elapsed();
    let cpu = cpu_time(false) - cpu_start;
    feeder.await.unwrap();
    let summary = run.finish().await.unwrap();
    assert_eq!(latencies.len(), n);
    latencies.sort();
    Measured {
        events_per_sec: n as f64 / elapsed.as_secs_f64(),
        p50: latencies[n / 2],
        p99: latencies[n * 99 / 100],
        tasks: summary.action_tasks,
        cpu_per_event: cpu.as_secs_f64() * 1e6 / n as f64,
    }
}

/// `weir run` (the binary, the whole process) on the trivial agent over
/// `n` JSON-lines events, output to /dev/null: its CPU time per event, in
/// microseconds, and its events per second (wall, start-up included).
fn weir_run(dir: &std::path::Path, n: usize, keys: usize) -> anyhow::Result<(f64, f64)> {
    use std::io::Write as _;
    let work = tempfile::tempdir()?;
    let manifest = work.path().join("agent.toml");
    std::fs::write(
        &manifest,
        format!(
            "[agent]\nname = \"trivial\"\n\n[components.m]\npath = {:?}\n\n\
             [actions.echo]\ncomponent = \"m\"\nlisten = [\"_input_event\"]\n",
            dir.join("guest_misbehave.wasm")
        ),
    )?;
    let input = work.path().join("in.jsonl");
    let mut lines = std::io::BufWriter::new(std::fs::File::create(&input)?);
    for i in 0..n {
        let text = SENTENCES[i % SENTENCES.len()];
        let line =
            json!({ "key": format!("key-{}", i % keys), "payload": { "i": i, "text": text } });
        writeln!(lines, "{line}")?;
    }
    lines.flush()?;
    drop(lines);
    let weir = || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_weir"));
        command
            .env("WEIR_CACHE_DIR", work.path().join("cache"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        command
    };
    // Compiles the component into the cache, as a user's first run would.
    anyhow::ensure!(
        weir().arg("plan").arg(&manifest).status()?.success(),
        "weir plan failed"
    );
    let cpu_before = cpu_time(true);
    let start = Instant::now();
    let status = weir()
        .arg("run")
        .arg(&manifest)
        .arg("--input")
        .arg(&input)
        .args(["--output", "/dev/null"])
        .status()?;
    let elapsed = start.elapsed();
    anyhow::ensure!(status.success(), "weir run failed: {status}");
    let cpu = cpu_time(true) - cpu_before;
    Ok((
        cpu.as_secs_f64() * 1e6 / n as f64,
        n as f64 / elapsed.as_secs_f64(),
    ))
}

/// The trivial agent: `action` of the misbehave fixture (component `m`).
fn trivial_agent(dir: &std::path::Path, action: ActionBuilder) -> Agent {
    Agent::builder("trivial")
        .component("m", dir.join("guest_misbehave.wasm"))
        .action(action)
        .build()
}

/// The word-stats chain: tokenize -> custom event -> count with memory.
fn chain_agent(dir: &std::path::Path) -> Agent {
    Agent::builder("word-stats")
        .component("tokenizer", dir.join("skill_tokenizer.wasm"))
        .component("stats", dir.join("skill_word_stats.wasm"))
        .action(ActionBuilder::new("tokenize", "tokenizer").listen(types::INPUT))
        .action(ActionBuilder::new("count", "stats").listen("words_tokenized"))
        .build()
}

fn micros(d: Duration, n: u32) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

async fn bench() -> anyhow::Result<()> {
    let n = env_usize("WEIR_BENCH_EVENTS", 100_000);
    let keys = env_usize("WEIR_BENCH_KEYS", 100);
    let dir = components();
    // `WEIR_BENCH_ONLY=journal` runs only the journal tables;
    // `trivial-on` / `trivial-off` only the trivial agent with the journal on
    // or off, for a profiler.
    let only = std::env::var("WEIR_BENCH_ONLY").unwrap_or_default();
    if let Some(journal) = only.strip_prefix("trivial-") {
        return trivial_only(&dir, n, keys, journal == "on").await;
    }
    if only == "journal-latency" {
        return journal_latency(&dir).await;
    }
    if only == "langs" {
        return langs_cost(&dir).await;
    }
    if only == "journal" {
        if std::env::var("WEIR_EXP").is_err() {
            journal_cost(&dir, n, keys).await?;
        }
        journal_latency(&dir).await?;
        return recovery_time(&dir).await;
    }
    let cache = tempfile::tempdir()?;
    let sandbox = Arc::new(Sandbox::new(SandboxConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..SandboxConfig::default()
    })?);
    println!(
        "sandbox: pooling allocator {}, {} worker threads",
        if sandbox.pooling() {
            "on"
        } else {
            "off (fallback)"
        },
        std::thread::available_parallelism()?.get()
    );

    // Where a task's time goes, on the trivial `echo` action.
    let misbehave = sandbox
        .load_component(&dir.join("guest_misbehave.wasm"))
        .await?;
    let parts = 20_000u32;
    probe::fresh_tasks(&misbehave, "echo", 1_000).await?; // warm up
    let store = probe::stores(&misbehave, parts);
    let instantiate = probe::instantiate(&misbehave, parts).await?;
    let fresh = probe::fresh_tasks(&misbehave, "echo", parts).await?;
    let warm = probe::warm_calls(&misbehave, "echo", parts * 5).await?;
    println!("\n| part of an ActionTask (echo, one thread) | us |");
    println!("|---|---|");
    println!(
        "| new Store + WASI ctx + limits | {:.1} |",
        micros(store, parts)
    );
    println!(
        "| Store + instantiate (InstancePre, pooling) | {:.1} |",
        micros(instantiate, parts)
    );
    println!(
        "| full task: Store + instantiate + call | {:.1} |",
        micros(fresh, parts)
    );
    println!(
        "| floor: call on one warm instance | {:.2} |",
        micros(warm, parts * 5)
    );

    // The floor is the CPU time (not wall time: a preempted probe would
    // read high) of fresh tasks on one thread, sampled before each agent and
    // after the last, so that the ratios compare like with like on a shared
    // machine; the median sample is the floor.
    let floor_sample = async || -> anyhow::Result<f64> {
        let tasks = 20_000u32;
        let before = cpu_time(false);
        probe::fresh_tasks(&misbehave, "echo", tasks).await?;
        Ok(micros(cpu_time(false) - before, tasks))
    };
    let mut floors = Vec::new();
    let trivial = trivial_agent(&dir, ActionBuilder::new("echo", "m").listen(types::INPUT));
    let chain = chain_agent(&dir);
    let mut agents = Vec::new();
    for (name, agent) in [
        ("trivial: one action (echo)", trivial),
        ("chain: tokenize -> count, short-term memory", chain),
    ] {
        let plan = Arc::new(AgentPlan::from_agent_in(&agent, sandbox.clone()).await?);
        pipeline(plan.clone(), n.min(5_000), keys).await; // warm up
        agents.push((name, plan, Vec::new()));
    }
    // Rounds interleave the agents, `weir run` and the floor's samples; each
    // row is the round with the median CPU per event.
    let rounds = env_usize("WEIR_BENCH_ROUNDS", 3);
    let mut weir_runs = Vec::new();
    for _ in 0..rounds {
        for (_, plan, measured) in agents.iter_mut() {
            floors.push(floor_sample().await?);
            measured.push(pipeline(plan.clone(), n, keys).await);
        }
        // What users run: the `weir` binary, the whole process, start-up
        // and compile-cache load included, reading and writing JSON lines.
        floors.push(floor_sample().await?);
        weir_runs.push(weir_run(&dir, n, keys)?);
    }
    let mut rows = Vec::new();
    for (name, _, mut measured) in agents {
        measured.sort_by(|a, b| a.cpu_per_event.total_cmp(&b.cpu_per_event));
        let m = &measured[measured.len() / 2];
        // The floor is one fresh task (store + instance + call) per task.
        let tasks_per_event = m.tasks as f64 / n as f64;
        let row = format!(
            "| {name} | {:.0} | {:.0} | {:.2} ms | {:.2} ms | {:.1} us |",
            m.events_per_sec,
            m.events_per_sec * tasks_per_event,
            m.p50.as_secs_f64() * 1e3,
            m.p99.as_secs_f64() * 1e3,
            m.cpu_per_event,
        );
        rows.push((row, m.cpu_per_event / tasks_per_event));
    }
    weir_runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (cpu, events_per_sec) = weir_runs[weir_runs.len() / 2];
    rows.push((
        format!(
            "| trivial, `weir run` (whole process, JSON lines in and out) | {events_per_sec:.0} | {events_per_sec:.0} | | | {cpu:.1} us |"
        ),
        cpu,
    ));
    floors.sort_by(f64::total_cmp);
    let floor = floors[floors.len() / 2];
    println!(
        "\n| agent ({n} events, {keys} keys, fresh instance per task; median of {rounds} interleaved rounds) | events/s | tasks/s | p50 | p99 | CPU per event | per task vs floor |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (row, per_task) in rows {
        println!("{row} {:.2}x |", per_task / floor);
    }
    let samples: Vec<String> = floors.iter().map(|f| format!("{f:.1}")).collect();
    println!(
        "\nfloor: {floor:.1} us of CPU per fresh task (store + instance + call, one thread), the median of {} samples taken around the agents in this run ({} us)",
        floors.len(),
        samples.join(", ")
    );
    if only == "hot-path" {
        return Ok(());
    }
    limits_cost(&dir, n, keys).await?;
    journal_cost(&dir, n, keys).await?;
    journal_latency(&dir).await?;
    recovery_time(&dir).await
}

/// The cost of a task in each guest language: the side-by-side agents'
/// `single` action (upper-case a sentence, count its words) as a Rust,
/// Python (componentize-py) and JavaScript (componentize-qjs) component, and
/// a StarlingMonkey one (componentize-js) when `WEIR_BENCH_STARLINGMONKEY`
/// names it. Compiling (empty cache) and loading from the compile cache
/// once; then, in interleaved rounds of about a second each, CPU time per
/// fresh instance (no call), per full fresh task and per call on one warm
/// instance; the median round.
async fn langs_cost(dir: &std::path::Path) -> anyhow::Result<()> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for script in ["scripts/build-python-skills", "scripts/build-js-skills"] {
        let status = std::process::Command::new(repo.join(script))
            .env("WEIR", env!("CARGO_BIN_EXE_weir"))
            .status()?;
        anyhow::ensure!(status.success(), "{script} failed");
    }
    let mut guests = vec![
        ("Rust (cargo, wasm32-wasip2)", dir.join("guest_bench.wasm")),
        (
            "Python (componentize-py 0.25.1)",
            dir.join("skill_bench_py.wasm"),
        ),
        (
            "JavaScript (componentize-qjs 0.4.5, QuickJS)",
            dir.join("skill_bench_js.wasm"),
        ),
    ];
    if let Ok(path) = std::env::var("WEIR_BENCH_STARLINGMONKEY") {
        guests.push((
            "JavaScript (componentize-js, StarlingMonkey)",
            PathBuf::from(path),
        ));
    }
    let cache = tempfile::tempdir()?;
    let sandbox = || {
        Sandbox::new(SandboxConfig {
            cache_dir: Some(cache.path().to_path_buf()),
            ..SandboxConfig::default()
        })
        .map(Arc::new)
    };
    let (compiling, cached) = (sandbox()?, sandbox()?);
    let mut loaded = Vec::new();
    println!("\n| guest | component | compile (empty cache) | load (compile cache) |");
    println!("|---|---|---|---|");
    for (name, path) in &guests {
        let size = std::fs::metadata(path)?.len();
        let started = Instant::now();
        compiling.load_component(path).await?;
        let compile = started.elapsed();
        let started = Instant::now();
        let component = cached.load_component(path).await?;
        let load = started.elapsed();
        println!(
            "| {name} | {:.2} MB | {:.2} s | {:.0} ms |",
            size as f64 / 1e6,
            compile.as_secs_f64(),
            load.as_secs_f64() * 1e3
        );
        probe::fresh_tasks(&component, "single", 20).await?; // warm up
        loaded.push((name, component, [Vec::new(), Vec::new(), Vec::new()]));
    }
    let rounds = env_usize("WEIR_BENCH_ROUNDS", 3);
    let budget = Duration::from_millis(700);
    for _ in 0..rounds {
        for (_, component, samples) in loaded.iter_mut() {
            for (op, samples) in samples.iter_mut().enumerate() {
                samples.push(cpu_per_op(component, op, budget).await?);
            }
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut rows = Vec::new();
    for (name, _, [instantiate, fresh, warm]) in loaded {
        rows.push((name, median(instantiate), median(fresh), median(warm)));
    }
    let rust_fresh = rows[0].2;
    println!(
        "\n| guest (`single`, CPU us per operation; median of {rounds} interleaved rounds) | fresh instance | fresh task (instance + call) | warm call | fresh task vs Rust's |"
    );
    println!("|---|---|---|---|---|");
    for (name, instantiate, fresh, warm) in rows {
        println!(
            "| {name} | {instantiate:.1} | {fresh:.1} | {warm:.1} | {:.1}x |",
            fresh / rust_fresh
        );
    }
    Ok(())
}

/// CPU us per operation `op` of `component` (0: a fresh instance, 1: a
/// fresh task, 2: a warm call of `single`), repeated for about `budget` of
/// wall time: a trial run grows until it takes a quarter of the budget, then
/// a run sized to the whole budget is measured.
async fn cpu_per_op(
    component: &weir::sandbox::ActionComponent,
    op: usize,
    budget: Duration,
) -> anyhow::Result<f64> {
    let run = async |n: u32| match op {
        0 => probe::instantiate(component, n).await,
        1 => probe::fresh_tasks(component, "single", n).await,
        _ => probe::warm_calls(component, "single", n).await,
    };
    let mut n = 1u32;
    loop {
        let took = run(n).await?;
        if took >= budget / 4 || n >= 1 << 24 {
            let more = ((budget.as_secs_f64() / took.as_secs_f64()) as u32).max(1) * n;
            let before = cpu_time(false);
            run(more).await?;
            return Ok(micros(cpu_time(false) - before, more));
        }
        n *= 4;
    }
}

/// An agent whose action asks a chat model on a loopback server that
/// answers after `WEIR_BENCH_MODEL_MS` (default 20 ms).
fn llm_agent(dir: &std::path::Path, url: &str, keys: usize) -> Agent {
    Agent::builder("llm")
        .component("m", dir.join("guest_misbehave.wasm"))
        .resource(
            "conn",
            "chat-model-connection",
            json!({ "provider": "openai", "base_url": format!("{url}/v1"), "max_concurrency": keys, "max_retries": 0 }),
        )
        .resource("model", "chat-model", json!({ "connection": "conn", "model": "m" }))
        .action(ActionBuilder::new("ask", "m").listen(types::INPUT).model("model"))
        .runtime(weir::RuntimeSettings {
            max_concurrency: keys,
            ..weir::RuntimeSettings::default()
        })
        .build()
}

/// Recovery time of a journal that has taken `WEIR_BENCH_RECOVERY_EVENTS`
/// (default 1,000,000) events of the trivial agent over 1,000 keys: opening
/// it and loading what a restarted run needs (keys, memory, outbox, resume
/// point), cleanly closed and as a crash leaves it.
async fn recovery_time(dir: &std::path::Path) -> anyhow::Result<()> {
    let n = env_usize("WEIR_BENCH_RECOVERY_EVENTS", 1_000_000);
    let keys = 1_000;
    let plan = trivial_plan(dir).await?;
    let state_dir = tempfile::tempdir()?;
    let state = weir::journal::Journal::open(state_dir.path(), &plan.fingerprint())?;
    let runtime = Runtime::shared(plan.clone()).with_journal(state.clone());
    let started = Instant::now();
    let m = pipeline_on(runtime, n, keys, Some(state.clone())).await;
    let took = started.elapsed();
    state.sync().await?;
    // What a crash leaves: the file as it is while the journal is open.
    let crashed = tempfile::tempdir()?;
    std::fs::copy(
        state_dir.path().join("journal.log"),
        crashed.path().join("journal.log"),
    )?;
    drop(state);
    let size = std::fs::metadata(state_dir.path().join("journal.log"))?.len();
    let reopen = |dir: PathBuf| {
        let fingerprint = plan.fingerprint();
        async move {
            let started = Instant::now();
            let state = weir::journal::Journal::open(&dir, &fingerprint)?;
            let keys = state.keys().len();
            let outbox = state.outbox().len();
            let resume = state.resume_point().map_or(0, |p| p.seq);
            anyhow::Ok((started.elapsed(), keys, outbox, resume))
        }
    };
    // The state store's writer thread holds the file until it sees the
    // channel close; give it a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let used = weir::journal::inspect(state_dir.path())?.used_bytes;
    println!("journal file {size} bytes, {used} in use");
    let clean = reopen(state_dir.path().to_path_buf()).await?;
    let crash = reopen(crashed.path().to_path_buf()).await?;
    println!(
        "\n| journal of {n} events, {keys} keys ({:.0} events/s, {:.1} s to write; file {:.1} MiB) | open and load | keys | outbox | resumes at event |",
        m.events_per_sec,
        took.as_secs_f64(),
        size as f64 / (1 << 20) as f64
    );
    println!("|---|---|---|---|---|");
    for (name, (time, keys, outbox, resume)) in [
        ("closed cleanly", clean),
        ("after a crash (kill -9 image)", crash),
    ] {
        println!(
            "| {name} | {:.1} ms | {keys} | {outbox} | {resume} |",
            time.as_secs_f64() * 1e3
        );
    }
    Ok(())
}

/// One event at a time (the next sent once the last one's output is in),
/// as an interactive caller would: the latency of each, median and p99.
async fn one_at_a_time(
    runtime: Runtime,
    n: usize,
    journal: Option<Arc<weir::journal::Journal>>,
) -> (Duration, Duration) {
    let mut run = runtime.start();
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        run.events
            .send(Event::input("key-0", json!({ "i": i })))
            .await
            .unwrap();
        let out = run.outputs.recv().await.unwrap();
        latencies.push(started.elapsed());
        if let Some(journal) = &journal {
            journal.delivered(vec![out.id]);
        }
    }
    run.finish().await.unwrap();
    latencies.sort();
    (latencies[n / 2], latencies[n * 99 / 100])
}

/// The trivial agent's latency one event at a time, journal off and on.
async fn journal_latency(dir: &std::path::Path) -> anyhow::Result<()> {
    let plan = trivial_plan(dir).await?;
    let n = 2_000;
    let off = one_at_a_time(Runtime::shared(plan.clone()), n, None).await;
    let state_dir = tempfile::tempdir()?;
    let state = weir::journal::Journal::open(state_dir.path(), &plan.fingerprint())?;
    let runtime = Runtime::shared(plan.clone()).with_journal(state.clone());
    let on = one_at_a_time(runtime, n, Some(state)).await;
    println!("\n| trivial agent, one event at a time ({n} events) | p50 | p99 |");
    println!("|---|---|---|");
    for (name, (p50, p99)) in [("journal off", off), ("journal on", on)] {
        println!(
            "| {name} | {:.2} ms | {:.2} ms |",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
    Ok(())
}

/// The trivial agent alone, `WEIR_BENCH_ROUNDS` times, journal on or off.
async fn trivial_only(
    dir: &std::path::Path,
    n: usize,
    keys: usize,
    journal: bool,
) -> anyhow::Result<()> {
    let plan = trivial_plan(dir).await?;
    for _ in 0..env_usize("WEIR_BENCH_ROUNDS", 5) {
        let rate = if journal {
            pipeline_journaled(plan.clone(), n, keys).await?
        } else {
            pipeline(plan.clone(), n, keys).await
        };
        let on = if journal { "on" } else { "off" };
        println!("trivial, journal {on}: {:.0} events/s", rate.events_per_sec);
    }
    Ok(())
}

/// The trivial agent's plan, on an engine without a compilation cache.
async fn trivial_plan(dir: &std::path::Path) -> anyhow::Result<Arc<AgentPlan>> {
    let sandbox = Arc::new(Sandbox::new(SandboxConfig {
        cache_dir: None,
        ..SandboxConfig::default()
    })?);
    let agent = trivial_agent(dir, ActionBuilder::new("echo", "m").listen(types::INPUT));
    Ok(Arc::new(AgentPlan::from_agent_in(&agent, sandbox).await?))
}

/// One run of `plan` with the journal on, in a fresh state directory.
async fn pipeline_journaled(
    plan: Arc<AgentPlan>,
    n: usize,
    keys: usize,
) -> anyhow::Result<Measured> {
    let state_dir = tempfile::tempdir()?;
    let state = weir::journal::Journal::open(state_dir.path(), &plan.fingerprint())?;
    let runtime = Runtime::shared(plan).with_journal(state.clone());
    Ok(pipeline_on(runtime, n, keys, Some(state)).await)
}

/// The trivial and word-stats agents with the durable-execution journal on
/// (a fresh state directory per run) and off, interleaved over rounds.
async fn journal_cost(dir: &std::path::Path, n: usize, keys: usize) -> anyhow::Result<()> {
    let rounds = env_usize("WEIR_BENCH_ROUNDS", 5);
    let sandbox = Arc::new(Sandbox::new(SandboxConfig {
        cache_dir: None,
        ..SandboxConfig::default()
    })?);
    let trivial = trivial_agent(dir, ActionBuilder::new("echo", "m").listen(types::INPUT));
    let chain = chain_agent(dir);
    let delay = Duration::from_millis(env_usize("WEIR_BENCH_MODEL_MS", 20) as u64);
    let server = model_server::ModelServer::start().await;
    server.fallback(model_server::Reply::Delayed(
        delay,
        Box::new(model_server::Reply::Json(model_server::openai_text(
            "ok", 12, 2,
        ))),
    ));
    let llm_events = n.min(10_000);
    let llm = llm_agent(dir, &server.url, keys);
    println!(
        "\n| agent, {n} events, {keys} keys, median of {rounds} interleaved rounds | journal off, events/s | journal on, events/s | on vs off |"
    );
    println!("|---|---|---|---|");
    let llm_name = format!(
        "LLM agent: one chat call per event, model answers in {} ms ({llm_events} events)",
        delay.as_millis()
    );
    for (name, agent, n) in [
        ("trivial (echo)".to_string(), trivial, n),
        ("word-stats chain (memory)".to_string(), chain, n),
        (llm_name, llm, llm_events),
    ] {
        let plan = Arc::new(AgentPlan::from_agent_in(&agent, sandbox.clone()).await?);
        let (mut off, mut on) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            off.push(pipeline(plan.clone(), n, keys).await.events_per_sec);
            on.push(
                pipeline_journaled(plan.clone(), n, keys)
                    .await?
                    .events_per_sec,
            );
        }
        let median = |rates: &mut Vec<f64>| {
            rates.sort_by(f64::total_cmp);
            rates[rates.len() / 2]
        };
        let (off, on) = (median(&mut off), median(&mut on));
        println!("| {name} | {off:.0} | {on:.0} | {:.2}x slower |", off / on);
    }
    Ok(())
}

/// The trivial agent with limits and epoch interruption on and off, fuel
/// metering, and a reused instance, each in its own engine, interleaved over
/// rounds in one run; prints the median events/s of each.
async fn limits_cost(dir: &std::path::Path, n: usize, keys: usize) -> anyhow::Result<()> {
    let rounds = env_usize("WEIR_BENCH_ROUNDS", 5);
    let engine = |enforce_limits: bool, fuel: bool| -> anyhow::Result<Arc<Sandbox>> {
        Ok(Arc::new(Sandbox::new(SandboxConfig {
            enforce_limits,
            fuel,
            cache_dir: None,
            ..SandboxConfig::default()
        })?))
    };
    let echo = || ActionBuilder::new("echo", "m").listen(types::INPUT);
    let agent = |action: ActionBuilder| trivial_agent(dir, action);
    let fuel = LimitSettings {
        fuel: Some(10_000_000),
        ..LimitSettings::default()
    };
    let reuse = Isolation::Reuse {
        scope: ReuseScope::Any,
        max_tasks: 10_000,
    };
    let variants = [
        (
            "limits on (default: memory limiter, epoch CPU budget, caps)",
            engine(true, false)?,
            agent(echo()),
        ),
        (
            "limits off (no limiter, no epoch interruption)",
            engine(false, false)?,
            agent(echo()),
        ),
        (
            "limits on + fuel metering",
            engine(true, true)?,
            agent(echo().limits(fuel)),
        ),
        (
            "limits on, reused instance (`reuse = \"any\"`)",
            engine(true, false)?,
            agent(echo().isolation(reuse)),
        ),
    ];
    let order: Vec<&str> = variants.iter().map(|(name, ..)| *name).collect();
    let mut plans = Vec::new();
    for (name, sandbox, agent) in variants {
        let component = sandbox
            .load_component(&dir.join("guest_misbehave.wasm"))
            .await?;
        let plan = Arc::new(AgentPlan::from_agent_in(&agent, sandbox).await?);
        pipeline(plan.clone(), n.min(5_000), keys).await; // warm up
        plans.push((name, plan, component, Vec::new(), Vec::new()));
    }
    // Each round starts with a different variant, so that no variant always
    // runs right after the same neighbour (the machine's state carries over).
    for round in 0..rounds {
        plans.rotate_left(usize::from(round > 0));
        for (_, plan, component, rates, task_micros) in plans.iter_mut() {
            rates.push(pipeline(plan.clone(), n, keys).await.events_per_sec);
            let tasks = 20_000;
            let took = probe::fresh_tasks(component, "echo", tasks).await?;
            task_micros.push(micros(took, tasks));
        }
    }
    let median = |rates: &mut Vec<f64>| {
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    };
    plans.sort_by_key(|(name, ..)| order.iter().position(|n| n == name));
    let base = median(&mut plans[1].3.clone());
    let base_task = median(&mut plans[1].4.clone());
    println!(
        "\n| trivial agent, {n} events, {keys} keys, median of {rounds} interleaved rounds | events/s | vs limits off | fresh task, one thread (us) | vs limits off |"
    );
    println!("|---|---|---|---|---|");
    for (name, _, _, rates, task_micros) in plans.iter_mut() {
        let rate = median(rates);
        let task = median(task_micros);
        println!(
            "| {name} | {rate:.0} | {:+.1}% | {task:.1} | {:+.1}% |",
            (rate / base - 1.0) * 100.0,
            (task / base_task - 1.0) * 100.0
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    // On a worker, as a service's handlers run: the output loop on the
    // thread `block_on` parks would be woken across threads for each
    // output it waits for.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async { tokio::spawn(bench()).await? })
}
