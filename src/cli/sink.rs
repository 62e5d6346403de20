//! Where `weir run` writes output and error events. With `--state`, the
//! files are appended to, events whose id is already in them are skipped,
//! and the journal's outbox is told what has been written (after an fsync),
//! so a restarted run never writes an output twice.

use anyhow::Context as _;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use weir::Event;
use weir::state::StateStore;

enum Out {
    File(BufWriter<tokio::fs::File>),
    Stdout(BufWriter<tokio::io::Stdout>),
}

impl Out {
    async fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        match self {
            Out::File(w) => {
                w.write_all(line.as_bytes()).await?;
                w.write_all(b"\n").await
            }
            Out::Stdout(w) => {
                w.write_all(line.as_bytes()).await?;
                w.write_all(b"\n").await
            }
        }
    }

    /// Flushes, and with `durable` makes the file's contents durable.
    async fn settle(&mut self, durable: bool) -> std::io::Result<()> {
        match self {
            Out::File(w) => {
                w.flush().await?;
                if durable {
                    w.get_ref().sync_data().await?;
                }
                Ok(())
            }
            Out::Stdout(w) => w.flush().await,
        }
    }
}

/// The output (and optional error) destination of a run.
pub struct Sink {
    outputs: Out,
    errors: Option<Out>,
    state: Option<Arc<StateStore>>,
    seen: HashSet<String>,
    written: Vec<String>,
    /// Events skipped because they were already written.
    pub duplicates: u64,
}

async fn open(
    path: &Option<PathBuf>,
    durable: bool,
    seen: &mut HashSet<String>,
) -> anyhow::Result<Out> {
    let Some(path) = path else {
        return Ok(Out::Stdout(BufWriter::new(tokio::io::stdout())));
    };
    if durable && path.exists() {
        read_ids(path, seen).await?;
    }
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(durable)
        .truncate(!durable)
        .open(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    Ok(Out::File(BufWriter::new(file)))
}

/// The ids of the events already in `path` (a torn last line is ignored).
async fn read_ids(path: &Path, seen: &mut HashSet<String>) -> anyhow::Result<()> {
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = BufReader::new(file).lines();
    while let Some(line) = lines.next_line().await? {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line)
            && let Some(id) = value["id"].as_str()
        {
            seen.insert(id.to_string());
        }
    }
    Ok(())
}

impl Sink {
    pub async fn open(
        outputs: &Option<PathBuf>,
        errors: &Option<PathBuf>,
        state: Option<Arc<StateStore>>,
    ) -> anyhow::Result<Sink> {
        let durable = state.is_some();
        let mut seen = HashSet::new();
        let outputs = open(outputs, durable, &mut seen).await?;
        let errors = match errors {
            Some(_) => Some(open(errors, durable, &mut seen).await?),
            None => None,
        };
        Ok(Sink {
            outputs,
            errors,
            state,
            seen,
            written: Vec::new(),
            duplicates: 0,
        })
    }

    /// Writes `event` unless it was written before.
    pub async fn write(&mut self, event: &Event) -> anyhow::Result<()> {
        if self.state.is_some() {
            if !self.seen.insert(event.id.clone()) {
                self.duplicates += 1;
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
        out.write_line(&event.to_json_line()).await?;
        Ok(())
    }

    /// Makes what was written durable and tells the journal.
    pub async fn settle(&mut self) -> anyhow::Result<()> {
        let durable = self.state.is_some();
        self.outputs.settle(durable).await?;
        if let Some(errors) = &mut self.errors {
            errors.settle(durable).await?;
        }
        if let Some(state) = &self.state
            && !self.written.is_empty()
        {
            state.delivered(std::mem::take(&mut self.written));
        }
        Ok(())
    }
}
