//! The WASI side of a task: a context built from the action's grants (denied
//! by default), and guest stdout/stderr captured into bounded buffers.

use super::Grants;
use super::readings::{self, SharedReadings};
use bytes::Bytes;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{FsPerms, WasiCtx};

/// Bytes of guest stdout/stderr kept per stream: the tail shows in errors.
const CAPTURED_OUTPUT_BYTES: usize = 16 << 10;

/// A guest output stream that keeps only its last bytes and never fails, so
/// a chatty guest neither grows the host's memory nor traps on a full pipe.
#[derive(Clone, Default)]
pub(crate) struct OutputCapture {
    tail: Arc<Mutex<Vec<u8>>>,
}

impl OutputCapture {
    fn push(&self, bytes: &[u8]) {
        let mut tail = self.tail.lock().expect("output capture lock");
        if bytes.len() >= CAPTURED_OUTPUT_BYTES {
            tail.clear();
            tail.extend_from_slice(&bytes[bytes.len() - CAPTURED_OUTPUT_BYTES..]);
            return;
        }
        let overflow = (tail.len() + bytes.len()).saturating_sub(CAPTURED_OUTPUT_BYTES);
        tail.drain(..overflow);
        tail.extend_from_slice(bytes);
    }

    /// What was captured (lossy UTF-8), leaving the buffer empty.
    pub(crate) fn take(&self) -> String {
        let bytes = std::mem::take(&mut *self.tail.lock().expect("output capture lock"));
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl IsTerminal for OutputCapture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for OutputCapture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for OutputCapture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(CAPTURED_OUTPUT_BYTES)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for OutputCapture {
    async fn ready(&mut self) {}
}

impl AsyncWrite for OutputCapture {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Arguments and stdin of a command run.
pub(crate) struct CommandIo {
    pub args: Vec<String>,
    pub stdin: Vec<u8>,
}

/// Builds a task's WASI context: only the granted environment variables and
/// directories; no sockets, no name lookup, no host stdio (a command gets
/// its arguments and stdin).
/// With `readings` (durable execution), clocks and random numbers go
/// through them, to be recorded and replayed.
pub(crate) fn context(
    grants: &Grants,
    stdout: &OutputCapture,
    stderr: &OutputCapture,
    io: Option<CommandIo>,
    readings: Option<&SharedReadings>,
) -> anyhow::Result<WasiCtx> {
    let mut builder = WasiCtx::builder();
    if let Some(readings) = readings {
        builder
            .wall_clock(readings::WallClock(readings.clone()))
            .monotonic_clock(readings::MonotonicClock {
                readings: readings.clone(),
                start: std::time::Instant::now(),
            })
            .secure_random(readings::Random(readings.clone()))
            .insecure_random(readings::Random(readings.clone()));
    }
    if let Some(io) = io {
        builder
            .args(&io.args)
            .stdin(wasmtime_wasi::p2::pipe::MemoryInputPipe::new(io.stdin));
    }
    builder
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        // One random read is one synchronous host call: bounded, so the
        // task's deadline can stop a guest that keeps asking.
        .max_random_size(readings::MAX_RANDOM_BYTES)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    for (name, value) in &grants.env_values {
        builder.env(name, value);
    }
    for dir in &grants.dirs {
        let perms = if dir.write {
            FsPerms::ReadWrite
        } else {
            FsPerms::ReadOnly
        };
        builder
            .preopened_dir(&dir.host, &dir.guest, perms)
            .map_err(|e| anyhow::anyhow!("cannot open granted dir {}: {e}", dir.host.display()))?;
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_keeps_the_tail() {
        let capture = OutputCapture::default();
        capture.push(b"hello ");
        capture.push(&vec![b'x'; CAPTURED_OUTPUT_BYTES]);
        capture.push(b" end");
        let text = capture.take();
        assert_eq!(text.len(), CAPTURED_OUTPUT_BYTES);
        assert!(text.ends_with("xx end"));
        assert_eq!(capture.take(), "");
    }
}
