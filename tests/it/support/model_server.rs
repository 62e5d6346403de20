//! A scripted model server on loopback speaking the OpenAI chat-completions
//! and embeddings API and the Anthropic messages API. It answers from a
//! script (then from a default), counts and records requests, and can delay,
//! fail with a status, or send malformed, endless or stalled bodies. weir's
//! production clients talk to it over real HTTP.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum Reply {
    /// 200 with this JSON body.
    Json(Value),
    /// This status, with an optional `Retry-After` (seconds) and a body.
    Status(u16, Option<u64>, String),
    /// 200 with a body that is not JSON.
    Garbage(String),
    /// Wait, then answer.
    Delayed(Duration, Box<Reply>),
    /// 200 with a body that never ends (see [`Endless`]).
    Endless,
    /// 200 with the start of a body, then nothing, ever.
    Stalled(String),
}

/// A body that never ends: `chunk` again and again, one every `every` (a
/// steady rate, so a client that does not bound it grows, but slowly
/// enough not to take the machine down with it).
pub struct Endless {
    chunk: Bytes,
    every: Duration,
    sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl Endless {
    pub fn body(chunk: impl Into<Bytes>, every: Duration) -> axum::body::Body {
        axum::body::Body::new(Endless {
            chunk: chunk.into(),
            every,
            sleep: None,
        })
    }
}

impl http_body::Body for Endless {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let every = self.every;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(every)));
        std::task::ready!(std::future::Future::poll(sleep.as_mut(), cx));
        self.sleep = None;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(self.chunk.clone()))))
    }
}

/// A body that sends `start`, then stalls forever.
pub struct Stalled(Option<Bytes>);

impl Stalled {
    pub fn body(start: impl Into<Bytes>) -> axum::body::Body {
        axum::body::Body::new(Stalled(Some(start.into())))
    }
}

impl http_body::Body for Stalled {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        match self.0.take() {
            Some(start) => std::task::Poll::Ready(Some(Ok(http_body::Frame::data(start)))),
            // Never woken: the connection stays open and silent.
            None => std::task::Poll::Pending,
        }
    }
}

/// A request the server received.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Default)]
struct ServerState {
    script: Mutex<VecDeque<Reply>>,
    fallback: Mutex<Option<Reply>>,
    received: Mutex<Vec<Received>>,
    /// Requests are not kept (a benchmark's server answers millions).
    forgetful: std::sync::atomic::AtomicBool,
}

pub struct ModelServer {
    pub url: String,
    state: Arc<ServerState>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl ModelServer {
    /// Starts on 127.0.0.1 on a free port.
    pub async fn start() -> ModelServer {
        let state = Arc::new(ServerState::default());
        let app = Router::new()
            .route("/v1/chat/completions", post(answer))
            .route("/v1/embeddings", post(answer))
            .route("/v1/messages", post(answer))
            .with_state(state.clone());
        let (url, stop) = serve(app).await;
        ModelServer {
            url,
            state,
            _stop: stop,
        }
    }

    /// Queues answers, used in order before the fallback.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().unwrap().extend(replies);
    }

    /// The answer once the script is used up (default: an echo of the last
    /// user message in the OpenAI format).
    pub fn fallback(&self, reply: Reply) {
        *self.state.fallback.lock().unwrap() = Some(reply);
    }

    /// Requests received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Keeps no more requests: `received` stays as it is.
    #[allow(dead_code)] // benches/observe.rs's server answers millions
    pub fn forget_requests(&self) {
        self.state
            .forgetful
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn count(&self) -> usize {
        self.state.received.lock().unwrap().len()
    }
}

async fn answer(
    State(state): State<Arc<ServerState>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !state.forgetful.load(std::sync::atomic::Ordering::Relaxed) {
        state.received.lock().unwrap().push(Received {
            path: uri.path().to_string(),
            headers,
            body: body.clone(),
        });
    }
    let scripted = state.script.lock().unwrap().pop_front();
    let reply = scripted
        .or_else(|| state.fallback.lock().unwrap().clone())
        .unwrap_or_else(|| Reply::Json(echo(&body)));
    respond(reply).await
}

fn respond(reply: Reply) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>> {
    Box::pin(async move {
        match reply {
            Reply::Json(value) => axum::Json(value).into_response(),
            Reply::Garbage(text) => (StatusCode::OK, text).into_response(),
            Reply::Status(status, retry_after, text) => {
                let mut response = (StatusCode::from_u16(status).unwrap(), text).into_response();
                if let Some(seconds) = retry_after {
                    response
                        .headers_mut()
                        .insert("retry-after", seconds.to_string().parse().unwrap());
                }
                response
            }
            Reply::Endless => (
                StatusCode::OK,
                [("content-type", "application/json")],
                Endless::body(Bytes::from(" ".repeat(64 << 10)), Duration::from_millis(1)),
            )
                .into_response(),
            Reply::Stalled(start) => (
                StatusCode::OK,
                [("content-type", "application/json")],
                Stalled::body(start),
            )
                .into_response(),
            Reply::Delayed(wait, reply) => {
                tokio::time::sleep(wait).await;
                respond(*reply).await
            }
        }
    })
}

/// Serves `app` on 127.0.0.1 on a free port until the returned sender is
/// dropped; returns its base URL.
pub async fn serve(app: Router) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (url, stop)
}

fn echo(body: &Value) -> Value {
    let last = body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .map(|m| m["content"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    openai_text(&format!("echo: {last}"), 7, 3)
}

/// An OpenAI chat completion with text.
pub fn openai_text(content: &str, input_tokens: u64, output_tokens: u64) -> Value {
    json!({
        "id": "chatcmpl-test", "object": "chat.completion", "model": "scripted-model",
        "choices": [{ "index": 0, "finish_reason": "stop",
            "message": { "role": "assistant", "content": content } }],
        "usage": { "prompt_tokens": input_tokens, "completion_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens },
    })
}

/// An OpenAI chat completion asking for one tool call.
pub fn openai_tool_call(id: &str, name: &str, arguments: Value) -> Value {
    json!({
        "id": "chatcmpl-test", "object": "chat.completion", "model": "scripted-model",
        "choices": [{ "index": 0, "finish_reason": "tool_calls",
            "message": { "role": "assistant", "content": null, "tool_calls": [{
                "id": id, "type": "function",
                "function": { "name": name, "arguments": arguments.to_string() } }] } }],
        "usage": { "prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16 },
    })
}

/// An Anthropic message with text.
pub fn anthropic_text(text: &str) -> Value {
    json!({
        "id": "msg_test", "type": "message", "role": "assistant", "model": "scripted-claude",
        "content": [{ "type": "text", "text": text }],
        "stop_reason": "end_turn",
        "usage": { "input_tokens": 13, "output_tokens": 4 },
    })
}

/// An OpenAI embeddings answer with one `dims`-long vector per input.
pub fn openai_embeddings(inputs: usize, dims: usize) -> Value {
    let data: Vec<Value> = (0..inputs)
        .map(|i| {
            json!({ "object": "embedding", "index": i,
            "embedding": (0..dims).map(|d| (i * dims + d) as f64 / 4.0).collect::<Vec<_>>() })
        })
        .collect();
    json!({ "object": "list", "data": data, "model": "scripted-embedder",
        "usage": { "prompt_tokens": 3 * inputs, "total_tokens": 3 * inputs } })
}
