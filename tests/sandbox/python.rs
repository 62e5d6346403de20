//! The hostile-guest classes that make sense for an interpreter, as a
//! Python component (`tests/python-guests/hostile-py`): each attack beside
//! bystander keys (also Python), contained as for Rust guests.

use super::*;

async fn python_attack(export: &str, limits: LimitSettings, payload: Value) -> Vec<Event> {
    let component = python_component("skill_hostile_py.wasm");
    interpreter_attack(component, export, limits, payload).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_infinite_loop_is_stopped_by_its_cpu_limit() {
    let evil = python_attack("spin", limits(|l| l.cpu_ms = Some(300)), json!({})).await;
    assert_limit(&evil, "cpu_ms", 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_memory_bomb_is_refused_at_its_memory_limit() {
    let evil = python_attack("memory_bomb", limits(|l| l.memory_mb = Some(96)), json!({})).await;
    // The interpreter raises the refusal as a MemoryError, which fails the
    // action: reported as the limit it hit, as for a Rust guest's abort.
    assert_limit(&evil, "memory_mb", 96);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_recursion_past_its_limit_is_stopped() {
    let evil = python_attack("recurse", limits(|l| l.memory_mb = Some(64)), json!({})).await;
    let error = the_error(&evil);
    // CPython keeps Python frames on its heap, so recursion without a
    // recursion limit grows linear memory until the task's limit; a build
    // that recursed on the C stack would trap on the stack's guard instead.
    assert!(
        (error["error"] == "limit" && error["limit"] == "memory_mb") || error["error"] == "trap",
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sees_no_host_files_and_no_environment() {
    let evil = python_attack("read_file", LimitSettings::default(), json!({})).await;
    assert_eq!(evil.len(), 1, "{evil:#?}");
    let seen = &evil[0].payload;
    assert!(
        seen["passwd"].as_str().unwrap().starts_with("refused"),
        "{seen}"
    );
    assert!(
        seen["root"].as_str().unwrap().starts_with("refused"),
        "{seen}"
    );

    // SAFETY: the test sets a variable no other test reads.
    unsafe { std::env::set_var("WEIR_TEST_SECRET", "hunter2") };
    let evil = python_attack("read_env", LimitSettings::default(), json!({})).await;
    assert_eq!(evil.len(), 1, "{evil:#?}");
    assert_eq!(
        evil[0].payload,
        json!({}),
        "the guest saw the host's environment"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sockets_reach_nothing() {
    let recorder = Recorder::start();
    let addr = format!("127.0.0.1:{}", recorder.port);
    let evil = python_attack("connect", LimitSettings::default(), json!({ "addr": addr })).await;
    // componentize-py's CPython has no `socket` module (weir links no
    // wasi:sockets either): the attempt fails inside the guest, and nothing
    // reaches the listener.
    assert_eq!(evil.len(), 1, "{evil:#?}");
    let error = evil[0].payload["error"].as_str().unwrap_or_default();
    assert!(!error.is_empty(), "{:?}", evil[0].payload);
    recorder.assert_untouched();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_http_reaches_only_granted_hosts() {
    // weir_sdk.http (wasi:http) raises HostError("denied").
    interpreter_http_reaches_only_granted_hosts(python_component("skill_hostile_py.wasm")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_emit_storm_is_stopped_at_max_emits() {
    let evil = python_attack("emit_storm", limits(|l| l.max_emits = Some(100)), json!({})).await;
    assert_limit(&evil, "max_emits", 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_python_output_is_stopped_at_the_host() {
    let evil = python_attack(
        "big_output",
        limits(|l| l.memory_mb = Some(512)),
        json!({ "mb": 40 }),
    )
    .await;
    assert_limit(&evil, "max_output_bytes", 16 << 20);
}
