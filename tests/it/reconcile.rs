//! Durable execution, effects: a payment tool whose component exports a
//! reconciler, against a payment service that does not deduplicate. weir is
//! killed between the intent and the result of a charge, or at random; on
//! restart the reconciler settles the interrupted call, and every order is
//! charged exactly once.

use crate::support::durable::{StateRun, kill, until};
use crate::support::payments::{Mode, PaymentServer};
use crate::support::{component, js_component, python_component, write};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The payments component: the Rust guest, its Python twin
/// (`tests/python-guests/payments-py`, wasi:http through `weir_sdk.http`)
/// or its JavaScript twin (`tests/js-guests/payments-js`, weir:agent/fetch
/// through the SDK's `http`).
fn rust() -> PathBuf {
    component("guest_payments.wasm")
}

fn python() -> PathBuf {
    python_component("skill_payments_py.wasm")
}

fn js() -> PathBuf {
    js_component("skill_payments_js.wasm")
}

fn payments_agent(dir: &Path, service: &str, payments: &Path) -> PathBuf {
    write(
        dir,
        "payments.toml",
        &format!(
            r#"[agent]
name = "payments"

[components.p]
path = "{component}"
http = ["{service}"]
env = ["PAYMENTS_URL"]

[actions.pay]
component = "p"
listen = ["_input_event"]
tools = ["charge"]

[runtime]
max_concurrency = 8
"#,
            component = payments.display()
        ),
    )
}

/// The payments agent (with the Rust guest) over `orders` (key, order,
/// amount), with the service's URL granted as `PAYMENTS_URL`.
fn payments_run(dir: &Path, service: &str, orders: &[(String, String, u64)]) -> StateRun {
    payments_run_with(dir, service, orders, &rust())
}

/// [`payments_run`] with the `payments` component.
fn payments_run_with(
    dir: &Path,
    service: &str,
    orders: &[(String, String, u64)],
    payments: &Path,
) -> StateRun {
    let lines: Vec<_> = orders
        .iter()
        .map(|(key, order, amount)| json!({ "key": key, "payload": { "order": order, "amount": amount } }))
        .collect();
    StateRun::new(dir, payments_agent(dir, service, payments), &lines)
        .warm()
        .env("PAYMENTS_URL", service)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_made_before_a_crash_is_reconciled_not_repeated() {
    charge_made_before_a_crash_is_reconciled(&rust()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_charge_made_before_a_crash_is_reconciled_not_repeated() {
    charge_made_before_a_crash_is_reconciled(&python()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_charge_made_before_a_crash_is_reconciled_not_repeated() {
    charge_made_before_a_crash_is_reconciled(&js()).await;
}

async fn charge_made_before_a_crash_is_reconciled(payments: &Path) {
    let service = PaymentServer::start(Mode::StallAfterCharging).await;
    let tmp = tempfile::tempdir().unwrap();
    let orders = vec![("alice".to_string(), "o-1".to_string(), 250)];
    let run = payments_run_with(tmp.path(), &service.url, &orders, payments);

    // The charge is made, and weir dies before hearing back.
    let child = run.spawn();
    until(|| service.charges().len() == 1).await;
    kill(child);
    let made = service.charges()[0].clone();
    assert_eq!(made.order, "o-1");
    assert_eq!(made.amount, 250, "the order's amount: {made:?}");
    assert_eq!(made.reference.len(), 32, "an idempotency key: {made:?}");

    // On restart the reconciler finds the charge by its reference; the tool
    // is not called again, and the output carries the original charge.
    service.set_mode(Mode::Answer(Duration::ZERO));
    let outputs = run.finish().await;
    assert_eq!(service.requests(), 1, "the charge was not repeated");
    assert_eq!(service.lookups(), 1, "the reconciler looked it up");
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    assert_eq!(outputs[0]["payload"]["charge"], made.id.as_str());
    assert_eq!(outputs[0]["payload"]["paid"], 250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_lost_before_a_crash_is_made_again_once() {
    charge_lost_before_a_crash_is_made_again(&rust()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_charge_lost_before_a_crash_is_made_again_once() {
    charge_lost_before_a_crash_is_made_again(&python()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_charge_lost_before_a_crash_is_made_again_once() {
    charge_lost_before_a_crash_is_made_again(&js()).await;
}

async fn charge_lost_before_a_crash_is_made_again(payments: &Path) {
    let service = PaymentServer::start(Mode::StallBeforeCharging).await;
    let tmp = tempfile::tempdir().unwrap();
    let orders = vec![("bob".to_string(), "o-9".to_string(), 40)];
    let run = payments_run_with(tmp.path(), &service.url, &orders, payments);

    // The request is out, but the service never charged.
    let child = run.spawn();
    until(|| service.requests() == 1).await;
    kill(child);
    assert!(service.charges().is_empty());

    // The reconciler finds nothing, so the call is made again, once.
    service.set_mode(Mode::Answer(Duration::ZERO));
    let outputs = run.finish().await;
    assert_eq!(service.lookups(), 1);
    assert_eq!(service.charges().len(), 1);
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    assert_eq!(outputs[0]["payload"]["charge"], "ch_1");
    // The repeated request carried the same reference as the lost one.
    assert_eq!(service.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_killed_at_random_moments_charge_every_order_exactly_once() {
    let count: usize = std::env::var("WEIR_CRASH_EVENTS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map(|n| n / 4)
        .unwrap_or(400);
    let kills: usize = std::env::var("WEIR_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    // Charges take a while to answer, so kills land between charge and reply.
    let service = PaymentServer::start(Mode::Answer(Duration::from_millis(15))).await;
    let tmp = tempfile::tempdir().unwrap();
    let orders: Vec<(String, String, u64)> = (0..count)
        .map(|i| (format!("c{}", i % 10), format!("o-{i}"), 1 + i as u64 % 7))
        .collect();
    let run = payments_run(tmp.path(), &service.url, &orders);
    let mut killed = 0;
    for trial in 0..kills {
        let mut child = run.spawn();
        let mark = (trial + 1) * count / (kills + 1) + fastrand::usize(0..10);
        while child.try_wait().unwrap().is_none() && service.charges().len() < mark {
            tokio::time::sleep(Duration::from_millis(fastrand::u64(1..10))).await;
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
    }
    let outputs = run.finish().await;
    assert!(
        killed >= kills.min(2),
        "the kills landed after the run ended"
    );

    // Every order charged exactly once, and paid for once.
    let per_order = service.charges_per_order();
    assert_eq!(per_order.len(), count, "every order charged");
    let twice: Vec<_> = per_order.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "charged more than once: {twice:?}");
    assert_eq!(outputs.len(), count, "one output per order");
    let ids: HashSet<&str> = outputs.iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), count, "duplicate outputs");
    // Each call had its own idempotency key.
    let references: HashSet<String> = service.charges().into_iter().map(|c| c.reference).collect();
    assert_eq!(
        references.len(),
        count,
        "idempotency keys repeat across calls"
    );
    // Each output names the charge the service made for its order.
    let charge_of: HashMap<String, String> = service
        .charges()
        .into_iter()
        .map(|c| (c.order, c.id))
        .collect();
    for o in &outputs {
        let order = o["payload"]["order"].as_str().unwrap();
        assert_eq!(o["payload"]["charge"], charge_of[order].as_str(), "{o}");
    }
    // Memory as in a crash-free run: each key paid the sum of its orders.
    let mut expected: HashMap<String, u64> = HashMap::new();
    for (key, _, amount) in &orders {
        *expected.entry(key.clone()).or_default() += amount;
    }
    let mut paid: HashMap<String, u64> = HashMap::new();
    for o in &outputs {
        let key = o["key"].as_str().unwrap().to_string();
        let now = o["payload"]["paid"].as_u64().unwrap();
        let best = paid.entry(key).or_default();
        *best = (*best).max(now);
    }
    assert_eq!(paid, expected);
    eprintln!(
        "{killed} kills, {} charge requests for {count} orders, {} reconciled",
        service.requests(),
        service.lookups()
    );
    assert!(service.lookups() >= 1, "no kill landed inside a charge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconciler_that_cannot_tell_fails_the_task_and_repeats_nothing() {
    reconciler_that_cannot_tell_repeats_nothing(&rust()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_reconciler_that_cannot_tell_fails_the_task_and_repeats_nothing() {
    reconciler_that_cannot_tell_repeats_nothing(&python()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_reconciler_that_cannot_tell_fails_the_task_and_repeats_nothing() {
    reconciler_that_cannot_tell_repeats_nothing(&js()).await;
}

async fn reconciler_that_cannot_tell_repeats_nothing(payments: &Path) {
    let service = PaymentServer::start(Mode::StallAfterCharging).await;
    let tmp = tempfile::tempdir().unwrap();
    let orders = vec![("carol".to_string(), "o-5".to_string(), 70)];
    let run = payments_run_with(tmp.path(), &service.url, &orders, payments);
    let child = run.spawn();
    until(|| service.charges().len() == 1).await;
    kill(child);

    // The lookup fails: the outcome is unknown, so the charge is not made
    // again, and the order ends in an error event that says why.
    service.set_mode(Mode::LookupsFail);
    let outputs = run.finish().await;
    assert_eq!(service.requests(), 1, "the charge was repeated");
    assert_eq!(service.lookups(), 1);
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    assert_eq!(outputs[0]["type"], "_error_event", "{outputs:?}");
    let error = outputs[0]["payload"].to_string();
    assert!(error.contains("interrupted by a crash"), "{error}");
    assert!(error.contains("not repeated"), "{error}");
}
