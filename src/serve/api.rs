//! The service's HTTP API:
//!
//! - `POST /v1/agents/{agent}/events`: one event (a JSON object), a batch
//!   (a JSON array, or JSON lines with any other content type); answers
//!   202 with the events' ids (given ones kept, missing ones made), 400
//!   naming the bad event, 413 over the body limit, 429 with Retry-After
//!   when the intake is full (the ids taken so far are in the answer), 409
//!   for an id taken before by another event. An id taken before by the
//!   same event is a retry: answered as taken (listed in `again`), not run
//!   twice; with `Idempotency-Key: K`, events without ids get `K/1`, `K/2`,
//!   ..., so retrying the request is safe. With a journal the answer comes
//!   once the events are on disk.
//!   With `?wait=SECONDS` (at most 60), it answers once the runs have ended
//!   (200) or the time is up (202): each run's status and outputs.
//! - `GET /v1/agents/{agent}/runs/{id}`: how a run stands (`pending`, or
//!   `done` with what it released; the latest `kept_outputs` are kept).
//! - `GET /v1/agents/{agent}/keys/{key}/memory`: a key's short-term memory
//!   once the events submitted for it before have run; `DELETE` (with the
//!   admin token only) also clears it.
//! - `GET /v1/agents/{agent}/outputs`: the agent's outputs and error events
//!   as Server-Sent Events (`id` = the output's number; resume with
//!   `Last-Event-ID`, or start at `?after=N`; without either, new ones).
//!   `DELETE .../outputs?through=N` acknowledges them: those up to N are no
//!   longer kept.
//! - `GET /v1/agents`: the agents and their actions.
//! - The web view (`GET /`) and the runs, trees and counters it reads:
//!   in `view`.
//! - `GET /healthz`, `GET /readyz`, `GET /metrics` (Prometheus),
//!   `GET /openapi.json` (this API in OpenAPI 3.1, `openapi.json` beside
//!   this file; a test checks it against the routes).
//!
//! Every `/v1` request carries the bearer token when one is set. Errors are
//! JSON: `{"error": "..."}`.

use super::runs::Status;
use super::{ServedAgent, Service, Submitted};
use crate::event::{self, Event};
use crate::observe::telemetry::scrape;
use crate::runtime::RunError;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::sync::Arc;

/// The most events one request may carry.
const MAX_BATCH: usize = 10_000;

pub(super) fn router(service: Arc<Service>) -> Router {
    let v1 = Router::new()
        .route("/v1/agents", get(agents))
        .route("/v1/agents/{agent}/events", post(submit))
        .route(
            "/v1/agents/{agent}/outputs",
            get(outputs).delete(acknowledge),
        )
        .route("/v1/agents/{agent}/runs/{id}", get(run_status))
        .route(
            "/v1/agents/{agent}/keys/{key}/memory",
            get(read_memory).delete(reset_memory),
        )
        .merge(super::view::routes())
        .layer(middleware::from_fn_with_state(service.clone(), authorize))
        .layer(DefaultBodyLimit::max(service.settings.max_body_bytes));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .merge(super::view::page())
        .merge(v1)
        .with_state(service)
}

pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

/// Refuses a `/v1` request without the service's bearer token.
async fn authorize(State(service): State<Arc<Service>>, request: Request, next: Next) -> Response {
    let Some(token) = &service.settings.token else {
        return next.run(request).await;
    };
    let given = bearer(request.headers());
    let admin = service.settings.admin_token.as_deref();
    if given.is_some_and(|given| same(given, token) || admin.is_some_and(|a| same(given, a))) {
        return next.run(request).await;
    }
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "this service needs `Authorization: Bearer TOKEN` (the token `weir serve` was given)",
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// The request's bearer token.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Compares in time that does not depend on where the tokens differ.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Agent `name`, or the 404 that names the agents there are.
pub(super) fn agent<'a>(
    service: &'a Service,
    name: &str,
) -> Result<&'a ServedAgent, Box<Response>> {
    service.agents.get(name).ok_or_else(|| {
        let names: Vec<&str> = service.agents.keys().map(String::as_str).collect();
        Box::new(error(
            StatusCode::NOT_FOUND,
            format!(
                "no agent `{}` here (agents: {})",
                crate::util::head(name, 200),
                names.join(", ")
            ),
        ))
    })
}

async fn agents(State(service): State<Arc<Service>>) -> Response {
    let agents: Vec<Value> = service
        .agents
        .iter()
        .map(|(name, agent)| {
            let (plan, digest) = agent.plan();
            let actions: Vec<Value> = plan
                .actions
                .values()
                .map(|a| json!({ "name": a.name, "listen": a.listen }))
                .collect();
            json!({
                "name": name,
                "description": plan.description,
                "plan": digest,
                "actions": actions,
                "outputs": agent.outputs.latest(),
            })
        })
        .collect();
    axum::Json(json!({ "agents": agents })).into_response()
}

/// The events of a submit body: a JSON object or array with a JSON
/// content type, else JSON lines; each checked as `weir run` checks an
/// input line.
fn parse_events(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Event>, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("the body is not UTF-8: {e}"))?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().unwrap_or("").trim() == "application/json");
    let mut events = Vec::new();
    // Event `n` of the body as read (none for a blank line).
    let mut take = |n: usize, read: Result<Option<Event>, event::InputError>| {
        let read = read.map_err(|e| match json {
            true => format!("event {n}: {}", e.message),
            false => e.to_string(),
        })?;
        let Some(event) = read else { return Ok(()) };
        if let Some(problem) = event::name_problem(&event) {
            return Err(format!("event {n}: {problem}"));
        }
        events.push(event);
        match events.len() > MAX_BATCH {
            true => Err(format!(
                "over {MAX_BATCH} events in one request: send them in several"
            )),
            false => Ok(()),
        }
    };
    if json {
        let items = match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(items)) => items,
            Ok(one @ Value::Object(_)) => vec![one],
            Ok(_) => {
                return Err("the body must be an event (a JSON object) or an array of them".into());
            }
            Err(e) => return Err(format!("the body is not JSON: {e}")),
        };
        for (n, item) in items.into_iter().enumerate() {
            take(
                n + 1,
                event::parse_input_value(item, "request", n + 1).map(Some),
            )?;
        }
    } else {
        for (n, line) in text.lines().enumerate() {
            take(n + 1, event::parse_input_line(line, "request", n + 1))?;
        }
    }
    if events.is_empty() {
        return Err("the body holds no event".into());
    }
    Ok(events)
}

/// A fresh input id: 128 random bits, as hex.
fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[derive(serde::Deserialize)]
struct Wait {
    /// Seconds to wait for the runs to end.
    wait: Option<f64>,
}

/// The longest a submit may wait for its runs.
const MAX_WAIT_SECS: f64 = 60.0;

async fn submit(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    Query(wait): Query<Wait>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    // The whole body within the deadline: a client trickling it in (a byte
    // now and then) must not hold the connection.
    let limit = service.settings.max_body_bytes;
    let body = match tokio::time::timeout(
        service.settings.body_timeout,
        axum::body::to_bytes(body, limit),
    )
    .await
    {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is over {limit} bytes (--max-body-bytes)"),
            );
        }
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {} s",
                    service.settings.body_timeout.as_secs_f64()
                ),
            );
        }
    };
    let wait = match wait.wait {
        Some(secs) if secs.is_finite() && (0.0..=MAX_WAIT_SECS).contains(&secs) => {
            Some(std::time::Duration::from_secs_f64(secs))
        }
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("`wait` is seconds, from 0 to {MAX_WAIT_SECS}"),
            );
        }
        None => None,
    };
    let agent = match agent(&service, &name) {
        Ok(agent) => agent,
        Err(response) => return *response,
    };
    let events = match parse_events(&headers, &body) {
        Ok(events) => events,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let idempotency = headers
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::to_string));
    let idempotency = match idempotency {
        Some(Ok(key)) if !key.is_empty() && key.len() <= 200 => Some(key),
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "`Idempotency-Key` must be 1 to 200 visible ASCII characters",
            );
        }
        None => None,
    };
    let mut ids = Vec::with_capacity(events.len());
    let mut durable = None;
    let mut again = Vec::new();
    for (n, mut event) in events.into_iter().enumerate() {
        if event.id.is_empty() {
            // A retried request with the same idempotency key gives its
            // events the same ids, so they are known as retries.
            event.id = match &idempotency {
                Some(key) => format!("{key}/{}", n + 1),
                None => new_id(),
            };
        }
        let id = event.id.clone();
        let refused = match agent.submit(event) {
            Ok(Submitted::Taken(on_disk)) => {
                durable = on_disk.or(durable);
                ids.push(id);
                continue;
            }
            Ok(Submitted::Again(on_disk)) => {
                durable = on_disk.or(durable);
                again.push(id.clone());
                ids.push(id);
                continue;
            }
            Ok(Submitted::Conflict) => (
                StatusCode::CONFLICT,
                format!(
                    "event {}: id `{}` was taken for another event (ids name one event: give this one its own)",
                    n + 1,
                    crate::util::head(&id, 200)
                ),
            ),
            Err(RunError::Full) => (
                StatusCode::TOO_MANY_REQUESTS,
                "the agent's intake is full: send the events not accepted again shortly".into(),
            ),
            Err(e @ RunError::InputRefused { .. }) => (StatusCode::BAD_REQUEST, e.to_string()),
            Err(_) if agent.reloading() => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "agent `{name}` is reloading (the runs taken before finish on the old plan): send the events not accepted again shortly"
                ),
            ),
            Err(e) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the agent takes no more events: {e}"),
            ),
        };
        // What was taken before stays taken: the answer names it (once it
        // is on disk), so the client sends only the rest again.
        if let Some(failed) = on_disk(durable).await {
            return failed;
        }
        let (status, message) = refused;
        let mut response =
            (status, axum::Json(json!({ "error": message, "ids": ids }))).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS || agent.reloading() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        return response;
    }
    if let Some(failed) = on_disk(durable).await {
        return failed;
    }
    let Some(wait) = wait else {
        let mut answer = json!({ "ids": ids });
        if !again.is_empty() {
            answer["again"] = json!(again);
        }
        return (StatusCode::ACCEPTED, axum::Json(answer)).into_response();
    };
    let deadline = std::time::Instant::now() + wait;
    let mut runs = Vec::with_capacity(ids.len());
    let mut all_done = true;
    for id in &ids {
        let status = agent.runs.wait(id, deadline).await;
        all_done &= matches!(status, Status::Done(_));
        runs.push(run_json(id, &status));
    }
    let status = if all_done {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let mut answer = json!({ "ids": ids, "runs": runs });
    if !again.is_empty() {
        answer["again"] = json!(again);
    }
    (status, axum::Json(answer)).into_response()
}

/// Waits until the events taken are on disk (the last one's write is the
/// journal's latest: the ones before it are on disk with it); the answer
/// to give if they could not be written.
async fn on_disk(durable: Option<super::agent::Durable>) -> Option<Response> {
    let failed = durable?.await.err()?;
    tracing::error!(error = %failed, "cannot record accepted events");
    Some(error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the events could not be recorded, so none is accepted: {failed}"),
    ))
}

fn run_json(id: &str, status: &Status) -> Value {
    match status {
        Status::Done(report) => json!({
            "id": id,
            "status": "done",
            "key": report.key,
            "outputs": report.outputs,
        }),
        Status::Pending => json!({ "id": id, "status": "pending" }),
        Status::Unknown => json!({ "id": id, "status": "unknown" }),
    }
}

async fn run_status(
    State(service): State<Arc<Service>>,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let agent = match agent(&service, &name) {
        Ok(agent) => agent,
        Err(response) => return *response,
    };
    match agent.runs.status(&id) {
        Status::Unknown => error(
            StatusCode::NOT_FOUND,
            format!(
                "no run `{}` is pending or among the latest ended",
                crate::util::head(&id, 200)
            ),
        ),
        status => axum::Json(run_json(&id, &status)).into_response(),
    }
}

#[derive(serde::Deserialize)]
struct After {
    after: Option<u64>,
}

async fn outputs(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    Query(after): Query<After>,
    headers: HeaderMap,
) -> Response {
    let agent = match agent(&service, &name) {
        Ok(agent) => agent,
        Err(response) => return *response,
    };
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let log = agent.outputs.clone();
    let position = resume.or(after.after).unwrap_or_else(|| log.latest());
    super::stream::outputs(log, position)
}

#[derive(serde::Deserialize)]
struct Through {
    through: Option<u64>,
}

/// Drops the outputs up to `?through=N` (a client has them stored): they
/// are no longer kept, in memory or in the journal.
async fn acknowledge(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    Query(through): Query<Through>,
) -> Response {
    let agent = match agent(&service, &name) {
        Ok(agent) => agent,
        Err(response) => return *response,
    };
    let Some(through) = through.through else {
        return error(
            StatusCode::BAD_REQUEST,
            "say which outputs are acknowledged: `?through=N` (an output's number, its SSE id)",
        );
    };
    let dropped = agent.outputs.acknowledge(through);
    let count = dropped.len();
    if let Some(journal) = &agent.intake.lock().expect("intake lock").journal {
        journal.delivered(dropped);
    }
    axum::Json(json!({ "acknowledged": count, "latest": agent.outputs.latest() })).into_response()
}

/// The API's OpenAPI description.
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn read_memory(
    State(service): State<Arc<Service>>,
    Path((name, key)): Path<(String, String)>,
) -> Response {
    memory(&service, &name, key, false).await
}

async fn reset_memory(
    State(service): State<Arc<Service>>,
    Path((name, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(admin) = &service.settings.admin_token else {
        return error(
            StatusCode::FORBIDDEN,
            "resetting memory is not granted here (weir serve --admin-token grants it)",
        );
    };
    if !bearer(&headers).is_some_and(|given| same(given, admin)) {
        return error(
            StatusCode::FORBIDDEN,
            "resetting memory needs the admin token (`Authorization: Bearer ADMIN_TOKEN`)",
        );
    }
    memory(&service, &name, key, true).await
}

/// Key `key`'s memory in agent `name`, cleared with `reset`.
async fn memory(service: &Service, name: &str, key: String, reset: bool) -> Response {
    let agent = match agent(service, name) {
        Ok(agent) => agent,
        Err(response) => return *response,
    };
    let read = match agent.events() {
        Ok(events) => events.memory(&key, reset).await,
        Err(e) => Err(e),
    };
    match read {
        Ok(memory) => axum::Json(json!({ "key": key, "memory": memory })).into_response(),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the agent has stopped: {e}"),
        ),
    }
}

async fn ready(State(service): State<Arc<Service>>) -> Response {
    let open = service
        .agents
        .values()
        .all(|a| a.intake.lock().expect("intake lock").events.is_some());
    let reloading = service.agents.values().any(|a| a.reloading());
    match (open, reloading) {
        (true, _) => (StatusCode::OK, "ready\n").into_response(),
        // Back once the runs taken on the old plans are done.
        (false, true) => (StatusCode::SERVICE_UNAVAILABLE, "reloading\n").into_response(),
        (false, false) => (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response(),
    }
}

async fn metrics(State(service): State<Arc<Service>>) -> Response {
    match service.telemetry.as_deref().and_then(scrape::exposition) {
        Some(exposition) => exposition,
        None => error(
            StatusCode::NOT_FOUND,
            "metrics are not kept: the service was started without telemetry keeping them \
             for Prometheus (weir serve always keeps them)",
        ),
    }
}
