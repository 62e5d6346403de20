//! The hostile-guest classes that make sense for an interpreter, as a
//! JavaScript component (`tests/js-guests/hostile-js`, QuickJS): each attack
//! beside bystander keys (also JavaScript), contained as for Rust guests.

use super::*;

async fn js_attack(export: &str, limits: LimitSettings, payload: Value) -> Vec<Event> {
    let component = js_component("skill_hostile_js.wasm");
    interpreter_attack(component, export, limits, payload).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_infinite_loop_is_stopped_by_its_cpu_limit() {
    let evil = js_attack("spin", limits(|l| l.cpu_ms = Some(300)), json!({})).await;
    assert_limit(&evil, "cpu_ms", 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_memory_bomb_is_refused_at_its_memory_limit() {
    let evil = js_attack("memory_bomb", limits(|l| l.memory_mb = Some(96)), json!({})).await;
    assert_limit(&evil, "memory_mb", 96);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_recursion_without_end_is_stopped() {
    let evil = js_attack("recurse", limits(|l| l.memory_mb = Some(64)), json!({})).await;
    let error = the_error(&evil);
    // This QuickJS build sets no recursion limit of its own: the
    // interpreter recurses on the wasm stack until the engine's guard stops
    // it, a trap that fails the task and nothing else.
    assert_eq!(error["error"], "trap", "{error}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains("call stack exhausted"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_finds_no_way_to_host_files_the_environment_or_the_network() {
    // SAFETY: the test sets a variable no other test reads.
    unsafe { std::env::set_var("WEIR_TEST_SECRET", "hunter2") };
    let evil = js_attack("read_file", LimitSettings::default(), json!({})).await;
    assert_eq!(evil.len(), 1, "{evil:#?}");
    let seen = evil[0].payload.as_object().unwrap();
    for global in [
        "std",
        "os",
        "require",
        "Deno",
        "fetch",
        "XMLHttpRequest",
        "WebSocket",
        "scriptArgs",
    ] {
        assert_eq!(seen[global], "undefined", "{global}: {seen:?}");
    }
    let passwd = seen["passwd"].as_str().unwrap();
    assert!(passwd != "loaded", "{seen:?}");
    // `process.env` is the SDK's, and holds only granted variables: none.
    assert_eq!(seen["env"], json!({}), "{seen:?}");
    assert!(!evil[0].payload.to_string().contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_http_reaches_only_granted_hosts() {
    // The SDK's `http` (weir:agent/fetch) throws HostError("denied").
    interpreter_http_reaches_only_granted_hosts(js_component("skill_hostile_js.wasm")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_emit_storm_is_stopped_at_max_emits() {
    let evil = js_attack("emit_storm", limits(|l| l.max_emits = Some(100)), json!({})).await;
    assert_limit(&evil, "max_emits", 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_javascript_output_is_stopped_at_the_host() {
    let evil = js_attack(
        "big_output",
        limits(|l| l.memory_mb = Some(512)),
        json!({ "mb": 40 }),
    )
    .await;
    assert_limit(&evil, "max_output_bytes", 16 << 20);
}
