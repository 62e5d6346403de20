//! An agent's outputs as a Server-Sent Events stream. Each output is an
//! event: `id:` its number (what a client resumes from with
//! `Last-Event-ID`), `event: output` or `error`, `data:` its JSON (which
//! has no raw line break). Outputs dropped before the stream got to them
//! are said in one `event: missed` with their count.
//!
//! Written here rather than with axum's `Sse`: the outputs ready when the
//! stream wakes go out as one frame (one chunk, one write), not as an event
//! object, a buffer and a chunk each.

use super::outputs::OutputLog;
use crate::event::types;
use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

/// Outputs read from the log per frame, at most.
const STEP: usize = 256;
/// A comment is sent after this long without an output, so that proxies
/// and clients see the stream is alive.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The stream of `log`'s outputs numbered after `position`, open until the
/// log is closed.
pub(super) fn outputs(log: Arc<OutputLog>, position: u64) -> Response {
    let changes = log.subscribe();
    let frames = futures_util::stream::unfold(
        (log, position, changes),
        |(log, mut position, mut changes)| async move {
            loop {
                let since = log.since(position, STEP);
                if let Some((last, _)) = since.outputs.last() {
                    let mut frame = Vec::with_capacity(since.outputs.len() * 256);
                    if since.missed > 0 {
                        let _ = write!(
                            frame,
                            "event: missed\ndata: {{\"missed\":{}}}\n\n",
                            since.missed
                        );
                    }
                    position = *last;
                    for (number, event) in &since.outputs {
                        let kind = match event.event_type == types::ERROR {
                            true => "error",
                            false => "output",
                        };
                        let _ = write!(frame, "id: {number}\nevent: {kind}\ndata: ");
                        serde_json::to_writer(&mut frame, &**event).expect("events serialise");
                        frame.extend_from_slice(b"\n\n");
                    }
                    return Some((
                        Ok::<_, std::convert::Infallible>(frame),
                        (log, position, changes),
                    ));
                }
                if log.is_closed() {
                    return None;
                }
                match tokio::time::timeout(KEEP_ALIVE, changes.changed()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return None,
                    Err(_) => return Some((Ok(b":\n\n".to_vec()), (log, position, changes))),
                }
            }
        },
    );
    let mut response = Response::new(Body::from_stream(frames));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
