//! What observing a run costs: the trivial agent (one fresh-instance task
//! per event) and an LLM agent (one chat call per event, to a model server
//! answering at once) with nothing on, the event log at STANDARD, metrics,
//! both, and tracing at 100% and 1% sampling; interleaved rounds, CPU time
//! of this process (the model server and the OTLP receiver run in a child
//! process), as ratios to nothing on in the same round.
//!
//! `cargo bench --bench observe` (env `WEIR_BENCH_ROUNDS`, default 5;
//! `WEIR_BENCH_EVENTS`, default 50000 trivial / a tenth of it LLM;
//! `WEIR_BENCH_ONLY`, e.g. `llm:Nothing,Traces1Pct`, to measure fewer).

#[path = "../tests/it/support/model_server.rs"]
#[allow(dead_code)]
mod model_server;
#[path = "../tests/it/support/otlp.rs"]
#[allow(dead_code)]
mod otlp;

mod support;

use model_server::{ModelServer, Reply, openai_text};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use support::{ChildServer, env_usize};
use weir::event::types;
use weir::observe::eventlog::EventLog;
use weir::observe::telemetry::{Telemetry, TelemetrySettings};
use weir::{ActionBuilder, Agent, AgentPlan, Event, Runtime};

/// The `weir` binary's allocator: what the observers cost depends on it
/// (records are freed on the event log's thread).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// User + system CPU time of this process so far, in seconds.
fn cpu_seconds() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Child mode: a model server answering at once and an OTLP receiver,
/// until stdin closes; prints both URLs first.
async fn serve() {
    let server = ModelServer::start().await;
    server.fallback(Reply::Json(openai_text("ok", 12, 2)));
    server.forget_requests();
    let receiver = otlp::OtlpReceiver::start().await;
    ChildServer::announce_and_wait(&format!("{} {}", server.url, receiver.url)).await;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Config {
    Nothing,
    EventLog,
    Metrics,
    EventLogAndMetrics,
    Traces,
    Traces1Pct,
}

const CONFIGS: [Config; 6] = [
    Config::Nothing,
    Config::EventLog,
    Config::Metrics,
    Config::EventLogAndMetrics,
    Config::Traces,
    Config::Traces1Pct,
];

/// Runs `plan` over `events` inputs with `config`; CPU seconds and wall
/// seconds, the end of the telemetry (a last export) included.
async fn measure(
    plan: &Arc<AgentPlan>,
    inputs: &[Event],
    config: Config,
    otlp: &str,
) -> (f64, f64) {
    let logs = tempfile::tempdir().unwrap();
    let settings = TelemetrySettings {
        traces: matches!(config, Config::Traces | Config::Traces1Pct),
        sample_ratio: (config == Config::Traces1Pct).then_some(0.01),
        prometheus: matches!(config, Config::Metrics | Config::EventLogAndMetrics),
        otlp_endpoint: Some(otlp.to_string()),
        ..TelemetrySettings::default()
    };
    let (cpu, wall) = (cpu_seconds(), Instant::now());
    let telemetry = Telemetry::new(&settings).unwrap();
    let mut runtime = Runtime::shared(plan.clone()).with_telemetry(&telemetry);
    let log = matches!(config, Config::EventLog | Config::EventLogAndMetrics).then(|| {
        Arc::new(EventLog::open(
            &logs.path().join("events.log"),
            &plan.event_log,
            &plan.name,
        ))
    });
    if let Some(log) = &log {
        runtime = runtime.with_event_log(log.clone());
    }
    let mut run = runtime.start();
    let sender = run.events.clone();
    run.events.close();
    let inputs = inputs.to_vec();
    let feeder = tokio::spawn(async move {
        for event in inputs {
            sender.send(event).await.unwrap();
        }
    });
    let mut outputs = 0usize;
    while let Some(out) = run.outputs.recv().await {
        assert_eq!(out.event_type, types::OUTPUT, "{}", out.payload);
        outputs += 1;
    }
    feeder.await.unwrap();
    run.finish().await.unwrap();
    tokio::task::spawn_blocking(move || {
        if let Some(log) = log {
            log.close();
        }
        telemetry.shutdown();
    })
    .await
    .unwrap();
    assert!(outputs > 0);
    (cpu_seconds() - cpu, wall.elapsed().as_secs_f64())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn bench(model: String, otlp: String) -> anyhow::Result<()> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    assert!(
        std::process::Command::new(repo.join("scripts/build-skills"))
            .status()?
            .success()
    );
    let components = repo.join("build/components");
    let trivial = Agent::builder("trivial")
        .component("b", components.join("guest_bench.wasm"))
        .action(ActionBuilder::new("single", "b").listen(types::INPUT))
        .build();
    let llm = Agent::builder("llm")
        .component("m", components.join("guest_misbehave.wasm"))
        .resource(
            "conn",
            "chat-model-connection",
            json!({ "provider": "openai", "base_url": format!("{model}/v1"), "max_concurrency": 64, "max_retries": 0 }),
        )
        .resource("model", "chat-model", json!({ "connection": "conn", "model": "m" }))
        .action(ActionBuilder::new("ask", "m").listen(types::INPUT).model("model"))
        .build();
    let events = env_usize("WEIR_BENCH_EVENTS", 50_000);
    let rounds = env_usize("WEIR_BENCH_ROUNDS", 5);
    let agents = [
        (
            "trivial",
            trivial,
            events,
            json!("the quick brown fox jumps"),
        ),
        (
            "llm",
            llm,
            events / 10,
            json!({ "model": "model", "question": "hi" }),
        ),
    ];
    println!(
        "| agent | configuration | CPU per event | CPU vs nothing (median of rounds) | wall vs nothing |"
    );
    println!("|---|---|---|---|---|");
    // `AGENT:CONFIG,CONFIG`: one agent, some configurations.
    let only = std::env::var("WEIR_BENCH_ONLY").unwrap_or_default();
    let (only_agent, only_configs) = only.split_once(':').unwrap_or((&only, ""));
    let configs: Vec<Config> = CONFIGS
        .into_iter()
        .filter(|c| {
            only_configs.is_empty() || only_configs.split(',').any(|o| o == format!("{c:?}"))
        })
        .collect();
    for (name, agent, n, payload) in agents {
        if !only_agent.is_empty() && only_agent != name {
            continue;
        }
        let plan = Arc::new(AgentPlan::from_agent(&agent).await?);
        let inputs: Vec<Event> = (0..n)
            .map(|i| Event::input(format!("key-{}", i % 100), payload.clone()))
            .collect();
        // Warm up (compile caches, connections).
        measure(&plan, &inputs[..n / 10], Config::Nothing, &otlp).await;
        let mut cpu: BTreeMap<Config, Vec<f64>> = BTreeMap::new();
        let mut cpu_ratio: BTreeMap<Config, Vec<f64>> = BTreeMap::new();
        let mut wall_ratio: BTreeMap<Config, Vec<f64>> = BTreeMap::new();
        for round in 0..rounds {
            // Each round starts at another configuration: no configuration
            // always runs first (or right after another).
            let mut order = configs.clone();
            order.rotate_left(round % configs.len());
            let mut measured = BTreeMap::new();
            for &config in &order {
                measured.insert(config, measure(&plan, &inputs, config, &otlp).await);
            }
            let base = measured
                .get(&Config::Nothing)
                .copied()
                .unwrap_or((f64::NAN, f64::NAN));
            for (config, (c, w)) in measured {
                cpu.entry(config).or_default().push(c);
                cpu_ratio.entry(config).or_default().push(c / base.0);
                wall_ratio.entry(config).or_default().push(w / base.1);
            }
        }
        if std::env::var_os("WEIR_BENCH_VERBOSE").is_some() {
            for (config, ratios) in &cpu_ratio {
                eprintln!("{name} {config:?} CPU ratios by round: {ratios:.2?}");
            }
        }
        for &config in &configs {
            println!(
                "| {name} | {config:?} | {:.1} us | {:.2} | {:.2} |",
                median(cpu.get_mut(&config).unwrap()) / n as f64 * 1e6,
                median(cpu_ratio.get_mut(&config).unwrap()),
                median(wall_ratio.get_mut(&config).unwrap()),
            );
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if ChildServer::is_child() {
        runtime.block_on(serve());
        return Ok(());
    }
    let server = ChildServer::start()?;
    let mut urls = server.line.split_whitespace().map(str::to_string);
    let (model, otlp) = (urls.next().unwrap(), urls.next().unwrap());
    runtime.block_on(bench(model, otlp))
}
