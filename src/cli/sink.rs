//! Where `weir run` writes output and error events. With `--state`, the
//! files are appended to, the journal's outbox (outputs committed but not
//! known to be written) is written again except the events already in the
//! files, and the journal is told what has been written (after an fsync),
//! so a restarted run never writes an output twice. Only the outbox's ids
//! are looked for and held: a sink's memory does not grow with its output.
//! The files are opened without following a link (see
//! [`weir::journal::own_file`]).
//!
//! The sink is plain blocking I/O on a thread of its own ([`Sink::drain`]):
//! through tokio's file type every flush was a hop to its blocking pool,
//! two thread wake-ups per batch of outputs.

use anyhow::Context as _;
use std::collections::HashSet;
use std::io::{BufRead as _, BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc;
use weir::Event;
use weir::journal::{Journal, own_file};

enum Out {
    /// A file, and whether it is a regular one (a fifo or a device such as
    /// /dev/null has nothing to sync).
    File(BufWriter<std::fs::File>, bool),
    Stdout(BufWriter<std::io::Stdout>),
}

/// How long the output thread waits for more outputs once they come in
/// batches (see [`Sink::drain`]): an output waits at most this much longer
/// under load, where queueing already costs milliseconds.
const LINGER: std::time::Duration = std::time::Duration::from_micros(500);

/// Bytes buffered per destination before a write.
const BUFFER_BYTES: usize = 64 << 10;

impl Out {
    fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        let w: &mut dyn std::io::Write = match self {
            Out::File(w, _) => w,
            Out::Stdout(w) => w,
        };
        w.write_all(line.as_bytes())?;
        w.write_all(b"\n")
    }

    /// Flushes, and with `durable` makes the file's contents durable.
    fn settle(&mut self, durable: bool) -> std::io::Result<()> {
        match self {
            Out::File(w, regular) => {
                w.flush()?;
                if durable && *regular {
                    w.get_ref().sync_data()?;
                }
                Ok(())
            }
            Out::Stdout(w) => w.flush(),
        }
    }
}

/// The output (and optional error) destination of a run.
pub struct Sink {
    outputs: Out,
    errors: Option<Out>,
    state: Option<Arc<Journal>>,
    /// Ids of outbox events found in the files: written before a restart.
    seen: HashSet<String>,
    written: Vec<String>,
}

fn open(
    path: &Option<PathBuf>,
    durable: bool,
    outbox: &HashSet<&str>,
    seen: &mut HashSet<String>,
) -> anyhow::Result<Out> {
    let Some(path) = path else {
        return Ok(Out::Stdout(BufWriter::with_capacity(
            BUFFER_BYTES,
            std::io::stdout(),
        )));
    };
    let file = own_file::open(
        std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(durable)
            .truncate(!durable),
        path,
    )
    .with_context(|| format!("cannot open {}", path.display()))?;
    let regular = file.metadata()?.is_file();
    if durable && regular {
        read_ids(&file, path, outbox, seen)?;
    }
    Ok(Out::File(
        BufWriter::with_capacity(BUFFER_BYTES, file),
        regular,
    ))
}

/// The ids of `outbox` found among the events in `file` (a torn last line
/// is ignored), read through a handle of its own (appends go to the end
/// whatever the position).
fn read_ids(
    file: &std::fs::File,
    path: &Path,
    outbox: &HashSet<&str>,
    seen: &mut HashSet<String>,
) -> anyhow::Result<()> {
    if outbox.is_empty() {
        return Ok(());
    }
    let file = own_file::open_to_read(path)
        .and_then(|read| same_file(file, &read).map(|()| read))
        .with_context(|| format!("cannot read {}", path.display()))?;
    for line in BufReader::new(file).split(b'\n') {
        let line = line?;
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&line)
            && let Some(id) = value["id"].as_str()
            && outbox.contains(id)
        {
            seen.insert(id.to_string());
        }
    }
    Ok(())
}

/// An error unless `a` and `b` are the same file (it was not swapped
/// between two opens).
fn same_file(a: &std::fs::File, b: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let (a, b) = (a.metadata()?, b.metadata()?);
    if (a.dev(), a.ino()) != (b.dev(), b.ino()) {
        return Err(std::io::Error::other(
            "the file changed while it was opened",
        ));
    }
    Ok(())
}

impl Sink {
    pub fn open(
        outputs: &Option<PathBuf>,
        errors: &Option<PathBuf>,
        state: Option<Arc<Journal>>,
    ) -> anyhow::Result<Sink> {
        let durable = state.is_some();
        let outbox: HashSet<&str> = state
            .iter()
            .flat_map(|state| state.outbox())
            .map(|(_, event)| event.id.as_str())
            .collect();
        let mut seen = HashSet::new();
        let outputs = open(outputs, durable, &outbox, &mut seen)?;
        let errors = match errors {
            Some(_) => Some(open(errors, durable, &outbox, &mut seen)?),
            None => None,
        };
        Ok(Sink {
            outputs,
            errors,
            state,
            seen,
            written: Vec::new(),
        })
    }

    /// Writes `event` unless it is an outbox event already in the files.
    pub fn write(&mut self, event: &Event) -> anyhow::Result<()> {
        if self.state.is_some() {
            if self.seen.remove(&event.id) {
                self.written.push(event.id.clone());
                return Ok(());
            }
            self.written.push(event.id.clone());
        }
        let out = match (
            &mut self.errors,
            event.event_type == weir::event::types::ERROR,
        ) {
            (Some(errors), true) => errors,
            _ => &mut self.outputs,
        };
        out.write_line(&event.to_json_line())?;
        Ok(())
    }

    /// Makes what was written durable and tells the journal.
    pub fn settle(&mut self) -> anyhow::Result<()> {
        let durable = self.state.is_some();
        self.outputs.settle(durable)?;
        if let Some(errors) = &mut self.errors {
            errors.settle(durable)?;
        }
        if let Some(state) = &self.state
            && !self.written.is_empty()
        {
            state.delivered(std::mem::take(&mut self.written));
        }
        Ok(())
    }

    /// Writes every event `outputs` brings until it closes, settling each
    /// time it has none waiting. Blocks: run it on a thread of its own.
    ///
    /// A lone output is written at once. When they come faster than one per
    /// wake-up (a batch of more than one), the thread lingers
    /// [`LINGER`] before taking the next batch instead of being woken for
    /// each output: waking this thread per output cost the workers a futex
    /// call and a preemption each, a sixth of the runtime's CPU under load.
    pub fn drain(mut self, mut outputs: mpsc::Receiver<Event>) -> anyhow::Result<()> {
        let mut batch = Vec::new();
        loop {
            let taken = outputs.blocking_recv_many(&mut batch, 1024);
            if taken == 0 {
                break;
            }
            for event in batch.drain(..) {
                self.write(&event)?;
            }
            if outputs.is_empty() {
                self.settle()?;
            }
            if taken > 1 {
                std::thread::sleep(LINGER);
            }
        }
        self.settle()
    }
}
