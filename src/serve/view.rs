//! The web view: a page at `/` (HTML, CSS and vanilla JavaScript from
//! `web/`, built into the binary: no build step, nothing fetched from
//! elsewhere) and the JSON it reads, which any client may read too:
//!
//! - `GET /v1/agents/{agent}/runs`: the latest runs (newest first), by
//!   `key`, input event `type` and `status` (`pending`, `done`, `failed`),
//!   at most `limit` (default 50, at most 500).
//! - `GET /v1/agents/{agent}/runs/{id}/tree`: one run as a tree: its
//!   input, the actions that handled it with their model and tool calls
//!   (what was asked, what came back, timings, tokens, errors), the events
//!   they emitted, and so on down.
//! - `GET /v1/agents/{agent}/counters`: the agent's counters since the
//!   service started.
//!
//! The runs come from each agent's in-memory event log (`recent`), so the
//! view needs no log file. The JSON routes are under `/v1` and need the
//! token when the service has one; the page itself does not (it holds no
//! data: it asks for the token and sends it on its requests). Guest data
//! only ever reaches the page as JSON, which the page puts in the document
//! as text (never as markup), under a Content-Security-Policy that allows
//! no script but the page's own file.

use super::Service;
use super::api::{agent, error};
use super::recent::Filter;
use crate::observe::eventlog::Record;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::sync::Arc;

/// Runs listed when the request says no `limit`, and at most.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

const INDEX: &str = include_str!("web/index.html");
const SCRIPT: &str = include_str!("web/app.js");
const STYLE: &str = include_str!("web/style.css");

/// No script, style or connection but the service's own; no plugins,
/// frames, forms or base URL: markup slipped into the page could not run
/// or send anything.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The JSON routes, to mount under the token.
pub(super) fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/v1/agents/{agent}/runs", get(runs))
        .route("/v1/agents/{agent}/runs/{id}/tree", get(tree))
        .route("/v1/agents/{agent}/counters", get(counters))
}

/// The page and its files, served without the token.
pub(super) fn page() -> Router<Arc<Service>> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route("/web/{file}", get(file))
}

async fn file(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "app.js" => asset("text/javascript; charset=utf-8", SCRIPT),
        "style.css" => asset("text/css; charset=utf-8", STYLE),
        _ => error(StatusCode::NOT_FOUND, "no such file of the web view"),
    }
}

/// A file of the page, with the headers that keep it to itself.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// JSON that no browser sniffs as anything else.
fn json_response(value: Value) -> Response {
    let mut response = axum::Json(value).into_response();
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[derive(serde::Deserialize)]
struct RunsQuery {
    key: Option<String>,
    #[serde(rename = "type")]
    input_type: Option<String>,
    status: Option<String>,
    limit: Option<String>,
}

async fn runs(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    Query(query): Query<RunsQuery>,
) -> Response {
    let agent = match agent(&service, &name) {
        Ok(agent) => agent,
        Err(response) => return *response,
    };
    // An empty field (a form's empty input) filters nothing.
    let given = |v: &Option<String>| v.as_deref().filter(|v| !v.is_empty()).map(str::to_string);
    let status = given(&query.status);
    if let Some(status) = &status
        && !["pending", "done", "failed"].contains(&status.as_str())
    {
        return error(
            StatusCode::BAD_REQUEST,
            "`status` is pending, done or failed",
        );
    }
    let limit = match given(&query.limit).map(|l| l.parse::<usize>()) {
        None => DEFAULT_LIMIT,
        Some(Ok(limit)) if (1..=MAX_LIMIT).contains(&limit) => limit,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("`limit` is a number of runs, from 1 to {MAX_LIMIT}"),
            );
        }
    };
    let (key, input_type) = (given(&query.key), given(&query.input_type));
    let filter = Filter {
        key: key.as_deref(),
        input_type: input_type.as_deref(),
        status: status.as_deref(),
    };
    let (runs, kept) = agent.recent.list(&filter, limit);
    json_response(json!({ "agent": name, "runs": runs, "kept": kept }))
}

async fn tree(
    State(service): State<Arc<Service>>,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let agent = match agent(&service, &name) {
        Ok(agent) => agent,
        Err(response) => return *response,
    };
    let Some((run, records)) = agent.recent.run(&id) else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "no run `{}` among the latest kept",
                crate::util::head(&id, 200)
            ),
        );
    };
    // Written out here, per request, from the few records of one run
    // (bounded by the run's share of the view's bytes).
    let records: Vec<Value> = records.iter().map(Record::to_value).collect();
    let forest = crate::observe::tree::build(&records, Vec::new());
    let mut roots = forest.runs;
    let tree = roots
        .iter()
        .position(|root| root.run == id)
        .map(|at| roots.swap_remove(at));
    json_response(json!({ "run": run, "tree": tree, "warnings": forest.warnings }))
}

async fn counters(State(service): State<Arc<Service>>, Path(name): Path<String>) -> Response {
    let agent = match agent(&service, &name) {
        Ok(agent) => agent,
        Err(response) => return *response,
    };
    json_response(json!({ "agent": name, "counters": agent.recent.counters() }))
}
