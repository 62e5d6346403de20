//! Small helpers shared by modules.

use std::future::Future;

/// Runs `future` to completion from synchronous code: on the current tokio
/// runtime when called from one of its blocking threads, else on a
/// throwaway current-thread runtime. Must not be called from async code.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.block_on(future),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("build a tokio runtime")
            .block_on(future),
    }
}

/// The 1-based line and column of byte `offset` in `text` (clamped to its
/// end), for errors that point into a file.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let start = offset.min(text.len());
    let before = &text[..start];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(start, |nl| start - nl - 1) + 1;
    (line, column)
}

/// The first `max` bytes of `text`, cut at a character boundary.
pub(crate) fn head(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The last `max` bytes of `text`, cut at a character boundary.
pub(crate) fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// A remote body that could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body is longer than allowed.
    #[error("the {what} is over the {max} byte limit")]
    TooBig {
        /// What the body is.
        what: String,
        /// The limit.
        max: u64,
    },
    /// The body did not end by the deadline.
    #[error("the {what} did not arrive within {} s", timeout.as_secs_f64())]
    TimedOut {
        /// What the body is.
        what: String,
        /// The time it had.
        timeout: std::time::Duration,
    },
    /// The connection failed.
    #[error("reading the {what}: {source}")]
    Transport {
        /// What the body is.
        what: String,
        /// The error.
        source: reqwest::Error,
    },
}

/// A response body read chunk by chunk, refused once it goes past
/// `max_bytes` or `deadline`: a server that never ends its body, or stalls
/// in it, cannot grow weir's memory or hold it forever. Every body weir
/// reads from a registry, a token service, a download or a model server
/// goes through this.
pub(crate) struct BoundedBody {
    response: reqwest::Response,
    what: String,
    max_bytes: u64,
    received: u64,
    timeout: std::time::Duration,
    deadline: tokio::time::Instant,
}

impl BoundedBody {
    /// Reads `response` (`what` names it in errors): at most `max_bytes`,
    /// and all of it within `timeout` of `started` (when its request was
    /// sent: the deadline covers the whole exchange). A `Content-Length`
    /// over the limit is refused at once.
    pub(crate) fn new(
        response: reqwest::Response,
        what: &str,
        max_bytes: u64,
        started: tokio::time::Instant,
        timeout: std::time::Duration,
    ) -> Result<BoundedBody, BodyError> {
        let body = BoundedBody {
            response,
            what: what.to_string(),
            max_bytes,
            received: 0,
            timeout,
            deadline: started + timeout,
        };
        if body
            .response
            .content_length()
            .is_some_and(|n| n > max_bytes)
        {
            return Err(body.too_big());
        }
        Ok(body)
    }

    fn too_big(&self) -> BodyError {
        BodyError::TooBig {
            what: self.what.clone(),
            max: self.max_bytes,
        }
    }

    fn timed_out(&self) -> BodyError {
        BodyError::TimedOut {
            what: self.what.clone(),
            timeout: self.timeout,
        }
    }

    /// The next chunk, or `None` at the end of the body.
    pub(crate) async fn chunk(&mut self) -> Result<Option<bytes::Bytes>, BodyError> {
        let next = tokio::time::timeout_at(self.deadline, self.response.chunk()).await;
        let chunk = match next {
            Err(_elapsed) => return Err(self.timed_out()),
            Ok(Err(e)) if e.is_timeout() => return Err(self.timed_out()),
            Ok(Err(source)) => {
                return Err(BodyError::Transport {
                    what: self.what.clone(),
                    source,
                });
            }
            Ok(Ok(chunk)) => chunk,
        };
        if let Some(chunk) = &chunk {
            self.received += chunk.len() as u64;
            if self.received > self.max_bytes {
                return Err(self.too_big());
            }
        }
        Ok(chunk)
    }

    /// The bytes received so far.
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// The whole body.
    pub(crate) async fn read_all(mut self) -> Result<Vec<u8>, BodyError> {
        let mut out = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// The first `max` bytes of the body (for error messages), whatever
    /// follows them or goes wrong after.
    pub(crate) async fn read_head(mut self, max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while out.len() < max
            && let Ok(Some(chunk)) = self.chunk().await
        {
            out.extend_from_slice(&chunk[..chunk.len().min(max - out.len())]);
        }
        out
    }
}
