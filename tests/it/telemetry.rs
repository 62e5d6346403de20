//! OpenTelemetry traces and metrics, read back from a real OTLP/HTTP
//! receiver on loopback, and the Prometheus endpoint, linted by promtool
//! and scraped by a real Prometheus server.

use crate::reviews::{review, review_agent};
use crate::support::model_server::*;
use crate::support::otlp::{OtlpReceiver, attribute};
use crate::support::*;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::trace::v1::Span;
use std::collections::BTreeMap;
use weir::observe::telemetry::{Telemetry, TelemetrySettings};
use weir::{Event, Runtime};

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn traced(event: Event, traceparent: &str) -> Event {
    let mut event = event;
    event
        .attributes
        .insert("traceparent".to_string(), traceparent.to_string());
    event
}

fn settings(receiver: &OtlpReceiver) -> TelemetrySettings {
    TelemetrySettings {
        traces: true,
        otlp_metrics: true,
        otlp_endpoint: Some(receiver.url.clone()),
        ..TelemetrySettings::default()
    }
}

/// Runs the reviews agent on `events` with `telemetry`, then sends off
/// what it recorded.
async fn reviews_run(
    server: &ModelServer,
    telemetry: Telemetry,
    events: Vec<Event>,
) -> (Vec<Event>, Telemetry) {
    let runtime = Runtime::new(plan(&review_agent(&server.url)).await).with_telemetry(&telemetry);
    let (outputs, _) = run_with(runtime, events).await;
    let telemetry = tokio::task::spawn_blocking(move || {
        telemetry.shutdown();
        telemetry
    })
    .await
    .unwrap();
    (outputs, telemetry)
}

fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_a_trace_joining_the_callers_with_genai_spans_and_metrics() {
    let server = ModelServer::start().await;
    server.script([
        Reply::Json(openai_text("2", 40, 1)),
        Reply::Json(openai_text("battery dies fast, too heavy", 38, 6)),
    ]);
    server.fallback(Reply::Json(openai_text("4", 5, 1)));
    let receiver = OtlpReceiver::start().await;
    let telemetry = Telemetry::new(&settings(&receiver)).unwrap();
    let events = vec![
        traced(
            review("r1", "The battery dies in an hour."),
            &format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"),
        ),
        traced(review("r2", "Fine."), "00-not-a-trace-context"),
    ];
    let (outputs, telemetry) = reviews_run(&server, telemetry, events).await;
    assert_eq!(outputs.len(), 2, "{outputs:#?}");
    assert_eq!(telemetry.stats().bad_traceparents, 1);
    assert_eq!(telemetry.stats().export_failures, 0);

    let spans = receiver.spans();
    // Each run is an invoke_agent span; the first joins the caller's trace.
    let runs = named(&spans, "invoke_agent product-reviews");
    assert_eq!(
        runs.len(),
        2,
        "{:#?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let (joined, own): (Vec<&Span>, Vec<&Span>) =
        runs.iter().partition(|s| hex(&s.trace_id) == CALLER_TRACE);
    let (first, second) = (joined[0], own[0]);
    assert_eq!(hex(&first.parent_span_id), CALLER_SPAN);
    assert_eq!(
        attribute(&first.attributes, "gen_ai.operation.name").unwrap(),
        "invoke_agent"
    );
    assert_eq!(
        attribute(&first.attributes, "gen_ai.agent.name").unwrap(),
        "product-reviews"
    );
    assert_eq!(
        attribute(&first.attributes, "weir.run.outputs").unwrap(),
        "1"
    );
    // The malformed one started a trace of its own.
    assert_ne!(hex(&second.trace_id), CALLER_TRACE);
    assert!(second.parent_span_id.is_empty());

    // Actions are children of their run; chat calls of their action.
    let analyze: Vec<_> = named(&spans, "action analyze");
    assert_eq!(analyze.len(), 2);
    for action in &analyze {
        let run = runs
            .iter()
            .find(|r| r.span_id == action.parent_span_id)
            .expect("a run parent");
        assert_eq!(run.trace_id, action.trace_id);
    }
    let chats = named(&spans, "chat m");
    assert_eq!(chats.len(), server.count(), "one span per model request");
    for chat in &chats {
        let parent = analyze.iter().find(|a| a.span_id == chat.parent_span_id);
        assert!(parent.is_some(), "a chat span's parent is its action");
        assert_eq!(
            attribute(&chat.attributes, "gen_ai.operation.name").unwrap(),
            "chat"
        );
        assert_eq!(
            attribute(&chat.attributes, "gen_ai.provider.name").unwrap(),
            "openai"
        );
        assert_eq!(
            attribute(&chat.attributes, "gen_ai.request.model").unwrap(),
            "m"
        );
        assert_eq!(
            attribute(&chat.attributes, "weir.resource.name").unwrap(),
            "review-model"
        );
        assert_eq!(
            attribute(&chat.attributes, "gen_ai.response.finish_reasons").unwrap(),
            "[stop]"
        );
        // Contents are recorded only when asked for.
        assert!(attribute(&chat.attributes, "gen_ai.output.messages").is_none());
    }
    let mut tokens: Vec<(String, String)> = chats
        .iter()
        .filter(|c| c.trace_id == first.trace_id)
        .map(|c| {
            (
                attribute(&c.attributes, "gen_ai.usage.input_tokens").unwrap(),
                attribute(&c.attributes, "gen_ai.usage.output_tokens").unwrap(),
            )
        })
        .collect();
    tokens.sort();
    assert_eq!(
        tokens,
        [("38".into(), "6".into()), ("40".into(), "1".into())]
    );

    // The model requests carried the trace on, each from its chat span.
    for request in server.received() {
        let traceparent = request.headers["traceparent"].to_str().unwrap().to_string();
        let parts: Vec<&str> = traceparent.split('-').collect();
        let chat = chats
            .iter()
            .find(|c| hex(&c.span_id) == parts[2])
            .unwrap_or_else(|| panic!("{traceparent} names no chat span"));
        assert_eq!(parts[1], hex(&chat.trace_id));
    }

    // The same calls as metrics, on the GenAI conventions' instruments.
    let metrics = receiver.metrics();
    let histogram_sums = |name: &str, label: &str| {
        let mut sums: BTreeMap<String, f64> = BTreeMap::new();
        for metric in metrics.iter().filter(|m| m.name == name) {
            let Some(Data::Histogram(h)) = &metric.data else {
                panic!("{name} is not a histogram")
            };
            for point in &h.data_points {
                let value = attribute(&point.attributes, label).unwrap_or_default();
                // Cumulative: the last export holds the totals.
                sums.insert(value, point.sum.unwrap_or_default());
            }
        }
        sums
    };
    let tokens = histogram_sums("gen_ai.client.token.usage", "gen_ai.token.type");
    assert_eq!(tokens["input"], (40 + 38 + 5 + 5) as f64, "{tokens:?}");
    assert_eq!(tokens["output"], (1 + 6 + 1 + 1) as f64, "{tokens:?}");
    let durations = metrics
        .iter()
        .filter(|m| m.name == "gen_ai.client.operation.duration")
        .filter_map(|m| match &m.data {
            Some(Data::Histogram(h)) => h.data_points.iter().map(|p| p.count).max(),
            _ => None,
        })
        .max();
    assert_eq!(durations, Some(server.count() as u64));
    let runs_metric = metrics
        .iter()
        .find(|m| m.name == "weir.action.runs")
        .expect("weir.action.runs");
    assert_eq!(runs_metric.unit, "{task}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_leaves_runs_out_unless_their_caller_traced_them() {
    let server = ModelServer::start().await;
    server.fallback(Reply::Json(openai_text("4", 5, 1)));
    let receiver = OtlpReceiver::start().await;
    let telemetry = Telemetry::new(&TelemetrySettings {
        sample_ratio: Some(0.0),
        record_content: true,
        ..settings(&receiver)
    })
    .unwrap();
    let events = vec![
        review("r1", "Not traced."),
        traced(
            review("r2", "Traced by the caller."),
            &format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"),
        ),
    ];
    let (outputs, _) = reviews_run(&server, telemetry, events).await;
    assert_eq!(outputs.len(), 2);
    let spans = receiver.spans();
    assert!(!spans.is_empty());
    assert!(
        spans.iter().all(|s| hex(&s.trace_id) == CALLER_TRACE),
        "only the caller's run is traced"
    );
    // Contents were asked for: the replies are on the chat spans.
    let chat = named(&spans, "chat m")[0];
    let output = attribute(&chat.attributes, "gen_ai.output.messages").unwrap();
    assert!(output.contains("\"4\""), "{output}");
    // The unsampled run still carried a (not sampled) trace context on.
    let flags: Vec<String> = server
        .received()
        .iter()
        .map(|r| {
            r.headers["traceparent"]
                .to_str()
                .unwrap()
                .rsplit('-')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        flags.contains(&"00".to_string()) && flags.contains(&"01".to_string()),
        "{flags:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_is_reported_once_and_the_run_goes_on() {
    let server = ModelServer::start().await;
    server.fallback(Reply::Json(openai_text("4", 5, 1)));
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let telemetry = Telemetry::new(&TelemetrySettings {
        traces: true,
        otlp_metrics: true,
        otlp_endpoint: Some(url),
        ..TelemetrySettings::default()
    })
    .unwrap();
    let events = (1..=5).map(|i| review(&format!("r{i}"), "ok")).collect();
    let (outputs, telemetry) = reviews_run(&server, telemetry, events).await;
    assert_eq!(outputs.len(), 6, "every review and the suggestion came out");
    assert!(
        telemetry.stats().export_failures >= 1,
        "{:?}",
        telemetry.stats()
    );
}

/// A Debian `prometheus` tool, or a failure naming how to install it.
fn prometheus_tool(name: &str) -> std::path::PathBuf {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "`{name}` is not installed: scripts/test installs it (Debian's `prometheus` package)"
        )
    })
}

/// The value of the first sample of `metric` with `labels` in a text
/// exposition.
fn sample(text: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn weir_run_serves_metrics_that_promtool_accepts_and_prometheus_scrapes() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    components();
    let promtool = prometheus_tool("promtool");
    let prometheus = prometheus_tool("prometheus");
    let state = tempfile::tempdir().unwrap();
    let (mut weir, _stderr, url) = announced(
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["run", "examples/word-stats/agent.toml"])
            .args([
                "--metrics-addr",
                "127.0.0.1:0",
                "-o",
                "/dev/null",
                "--state",
            ])
            .arg(state.path())
            .current_dir(repo())
            .env_remove("WEIR_LOG")
            .stdin(Stdio::piped()),
        "weir: metrics at ",
    );
    let target = url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_string();
    // The input stays open: the agent runs (and is scraped) until it ends.
    let events = std::fs::read_to_string(repo().join("examples/word-stats/events.jsonl")).unwrap();
    let inputs = events.lines().count() as f64;
    let mut stdin = weir.stdin.take().unwrap();
    stdin.write_all(events.as_bytes()).unwrap();
    stdin.flush().unwrap();

    let http = http_runtime();
    let fetch = |url: &str| -> Option<String> {
        http.block_on(async {
            let response = reqwest::get(url).await.ok()?;
            let response = response.error_for_status().ok()?;
            response.text().await.ok()
        })
    };
    let outputs = r#"weir_event_kind="output""#;
    let mut text = String::new();
    for _ in 0..200 {
        text = fetch(&url).unwrap_or_default();
        // Outputs are counted as runs release them, commits once synced.
        if sample(&text, "weir_events_total", &[outputs]) == Some(inputs)
            && sample(&text, "weir_journal_commits_total", &[]) == Some(inputs)
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        sample(&text, "weir_events_total", &[outputs]),
        Some(inputs),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "weir_action_runs_total",
            &[r#"weir_action="tokenize""#, r#"weir_outcome="ok""#]
        ),
        Some(inputs)
    );
    assert_eq!(
        sample(
            &text,
            "weir_action_duration_seconds_count",
            &[r#"weir_action="count""#]
        ),
        Some(inputs)
    );
    assert_eq!(sample(&text, "weir_runs_active", &[]), Some(0.0));
    // Every run was committed to the journal (--state), in group commits.
    assert_eq!(
        sample(&text, "weir_journal_commits_total", &[]),
        Some(inputs),
        "{text}"
    );
    let syncs = sample(&text, "weir_journal_sync_duration_seconds_count", &[]).unwrap();
    // (Acknowledgements of delivered outputs are synced too.)
    assert!(syncs >= 1.0, "{syncs}");
    assert!(sample(&text, "weir_journal_written_bytes_total", &[]).unwrap() > 0.0);

    // promtool lints the exposition.
    let lint = Command::new(&promtool)
        .args(["check", "metrics"])
        .output_with_stdin(text.as_bytes());
    assert!(
        lint.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );

    // A real Prometheus scrapes it.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\n\
             scrape_configs:\n  - job_name: weir\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let web = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let web_addr = web.local_addr().unwrap();
    drop(web);
    let mut server = Command::new(&prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={web_addr}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
        .spawn()
        .unwrap();
    let query = format!(
        "http://{web_addr}/api/v1/query?query=weir_events_total%7Bweir_event_kind%3D%22output%22%7D"
    );
    let mut answer = String::new();
    for _ in 0..120 {
        answer = fetch(&query).unwrap_or_default();
        if answer.contains(&format!("\"{inputs}\"]")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        answer.contains(&format!("\"{inputs}\"]")) && answer.contains(r#""job":"weir""#),
        "Prometheus did not scrape {inputs} outputs: {answer}\n{}",
        std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
    );

    drop(stdin);
    let status = weir.wait().unwrap();
    assert!(status.success());
}

/// Runs a command with `input` on its stdin.
trait OutputWithStdin {
    fn output_with_stdin(&mut self, input: &[u8]) -> std::process::Output;
}

impl OutputWithStdin for std::process::Command {
    fn output_with_stdin(&mut self, input: &[u8]) -> std::process::Output {
        use std::io::Write as _;
        let mut child = self
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weir_run_exports_to_the_collector_the_standard_variables_name() {
    components();
    let receiver = OtlpReceiver::start().await;
    let mut weir = std::process::Command::new(env!("CARGO_BIN_EXE_weir"));
    weir.args([
        "run",
        "examples/word-stats/agent.toml",
        "--traces",
        "--otlp-metrics",
    ])
    .args(["-i", "examples/word-stats/events.jsonl", "-o", "/dev/null"])
    .current_dir(repo())
    .env_remove("WEIR_LOG")
    .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url);
    // The receiver runs on this test's runtime: wait off it.
    let out = tokio::task::spawn_blocking(move || weir.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("telemetry"),
        "no telemetry fault: {stderr}"
    );
    let inputs = std::fs::read_to_string(repo().join("examples/word-stats/events.jsonl"))
        .unwrap()
        .lines()
        .count();
    let spans = receiver.spans();
    let runs = named(&spans, "invoke_agent word-stats");
    assert_eq!(runs.len(), inputs);
    for action in ["action tokenize", "action count"] {
        let tasks = named(&spans, action);
        assert_eq!(tasks.len(), inputs, "{action}");
        assert!(
            tasks
                .iter()
                .all(|t| runs.iter().any(|r| r.span_id == t.parent_span_id))
        );
    }
    // Metrics were sent once more as the run ended.
    let events = receiver.metrics();
    let events = events
        .iter()
        .rev()
        .find(|m| m.name == "weir.events")
        .expect("weir.events");
    let Some(Data::Sum(sum)) = &events.data else {
        panic!("weir.events is not a sum")
    };
    let outputs: i64 = sum
        .data_points
        .iter()
        .filter(|p| attribute(&p.attributes, "weir.event.kind").as_deref() == Some("output"))
        .map(|p| match p.value {
            Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(n)) => n,
            _ => 0,
        })
        .sum();
    assert_eq!(outputs, inputs as i64);
}

/// A loopback server whose `/echo` answers with the `traceparent` header
/// the request carried (empty without one).
async fn traceparent_echo() -> (String, tokio::sync::oneshot::Sender<()>) {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/echo",
        get(|headers: axum::http::HeaderMap| async move {
            headers
                .get("traceparent")
                .map(|v| v.to_str().unwrap_or_default().to_string())
                .unwrap_or_default()
        }),
    );
    serve(app).await
}

/// The trace and parent span a `traceparent` names.
fn trace_and_parent(traceparent: &str) -> (String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "not a traceparent: {traceparent:?}");
    (parts[1].to_string(), parts[2].to_string())
}

/// Runs `agent` on one traced `input`, exporting to a receiver; the
/// outputs and the spans.
async fn traced_run(agent: &weir::Agent, input: Event) -> (Vec<Event>, Vec<Span>) {
    let receiver = OtlpReceiver::start().await;
    let telemetry = Telemetry::new(&settings(&receiver)).unwrap();
    let runtime = Runtime::new(plan(agent).await).with_telemetry(&telemetry);
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let (outputs, _) = run_with(runtime, vec![traced(input, &caller)]).await;
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .unwrap();
    (outputs, receiver.spans())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guests_outbound_http_requests_carry_its_tasks_trace_context() {
    let (url, _stop) = traceparent_echo().await;
    let agent = weir::Agent::builder("fetcher")
        .component("h", component("guest_hostile.wasm"))
        .action(
            weir::ActionBuilder::new("fetch", "h")
                .export("http-get")
                .listen(weir::event::types::INPUT)
                .http(&url),
        )
        .build();
    let input = || Event::input("k", serde_json::json!({ "url": format!("{url}/echo") }));
    let (outputs, spans) = traced_run(&agent, input()).await;
    let (trace, parent) = trace_and_parent(outputs[0].payload["body"].as_str().unwrap());
    assert_eq!(trace, CALLER_TRACE);
    let fetch = named(&spans, "action fetch");
    assert_eq!(
        parent,
        hex(&fetch[0].span_id),
        "the request's parent is the task's span"
    );

    // Without telemetry, nothing is added.
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let (outputs, _) = run(plan(&agent).await, vec![traced(input(), &caller)]).await;
    assert_eq!(outputs[0].payload["body"], "", "{outputs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tools_task_runs_in_its_calls_span() {
    use crate::models::use_tool;
    let (url, _stop) = traceparent_echo().await;
    let agent = weir::Agent::builder("tools")
        .component("m", component("guest_misbehave.wasm"))
        .component_grants(
            "m",
            weir::GrantSpec {
                http: vec![url.clone()],
                ..weir::GrantSpec::default()
            },
            weir::LimitSettings::default(),
        )
        .action(
            weir::ActionBuilder::new("use-tool", "m")
                .listen(weir::event::types::INPUT)
                .tool("fetch"),
        )
        .build();
    let input = use_tool("fetch", serde_json::json!({ "url": format!("{url}/echo") }));
    let (outputs, spans) = traced_run(&agent, input).await;
    let body = outputs[0].payload["result"]["body"]
        .as_str()
        .unwrap_or_default();
    let (trace, parent) = trace_and_parent(body);
    assert_eq!(trace, CALLER_TRACE);
    let call = named(&spans, "execute_tool fetch");
    assert_eq!(
        call.len(),
        1,
        "{:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    assert_eq!(
        attribute(&call[0].attributes, "gen_ai.tool.name").unwrap(),
        "fetch"
    );
    let action = named(&spans, "action use-tool");
    assert_eq!(
        call[0].parent_span_id, action[0].span_id,
        "the call is its action's child"
    );
    assert_eq!(
        parent,
        hex(&call[0].span_id),
        "the tool's request is the call's child"
    );
}

/// Runs `agent` on `events` with Prometheus metrics on; the exposition.
async fn scraped_run(agent: &weir::Agent, events: Vec<Event>) -> String {
    let telemetry = Telemetry::new(&TelemetrySettings {
        prometheus: true,
        ..TelemetrySettings::default()
    })
    .unwrap();
    let runtime = Runtime::new(plan(agent).await).with_telemetry(&telemetry);
    run_with(runtime, events).await;
    telemetry.prometheus_text().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_denials_and_limits_are_counted_per_action() {
    use crate::models::{tool_agent, use_tool};
    use serde_json::json;
    let granted = scraped_run(
        &tool_agent(&["add", "explode"]),
        vec![
            use_tool("add", json!({ "a": 2, "b": 40 })),
            use_tool("explode", json!({})),
            use_tool("add", json!({ "a": 1, "b": 1 })),
        ],
    )
    .await;
    let add = r#"gen_ai_tool_name="add""#;
    assert_eq!(
        sample(&granted, "weir_tool_duration_seconds_count", &[add]),
        Some(2.0),
        "{granted}"
    );
    let explode = [r#"gen_ai_tool_name="explode""#, r#"error_type="#];
    assert_eq!(
        sample(&granted, "weir_tool_duration_seconds_count", &explode),
        Some(1.0)
    );
    let calls = [r#"weir_action="use-tool""#, r#"weir_capability="tools""#];
    assert_eq!(sample(&granted, "weir_host_calls_total", &calls), Some(3.0));

    let denied = scraped_run(
        &tool_agent(&[]),
        vec![use_tool("add", json!({ "a": 1, "b": 2 }))],
    )
    .await;
    let denial = [r#"weir_action="use-tool""#, r#"weir_capability="#];
    assert_eq!(
        sample(&denied, "weir_denials_total", &denial),
        Some(1.0),
        "{denied}"
    );
    assert!(sample(&denied, "weir_tool_duration_seconds_count", &[]).is_none());
    let failed = [r#"weir_outcome="failed""#, r#"error_type="denied""#];
    assert_eq!(
        sample(&denied, "weir_action_runs_total", &failed),
        Some(1.0),
        "{denied}"
    );

    let spinner = weir::Agent::builder("spinner")
        .component("h", component("guest_hostile.wasm"))
        .action(
            weir::ActionBuilder::new("attack", "h")
                .export("spin")
                .listen(weir::event::types::INPUT)
                .limits(weir::LimitSettings {
                    cpu_ms: Some(100),
                    ..weir::LimitSettings::default()
                }),
        )
        .build();
    let limited = scraped_run(&spinner, vec![Event::input("k", json!({}))]).await;
    let limit = [r#"weir_action="attack""#, r#"weir_limit="cpu_ms""#];
    assert_eq!(
        sample(&limited, "weir_limits_hit_total", &limit),
        Some(1.0),
        "{limited}"
    );
    let error = [
        r#"weir_event_kind="error""#,
        r#"weir_event_type="_error_event""#,
    ];
    assert_eq!(sample(&limited, "weir_events_total", &error), Some(1.0));
}
