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
