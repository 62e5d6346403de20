//! Where `weir run` writes output and error events. With `--state`, the
//! files are appended to, events whose id is already in them are skipped,
//! and the journal's outbox is told what has been written (after an fsync),
//! so a restarted run never writes an output twice. The files are opened
//! without following a link (see [`weir::journal::own_file`]).

use anyhow::Context as _;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use weir::Event;
use weir::journal::{Journal, own_file};

enum Out {
    /// A file, and whether it is a regular one (a fifo or a device such as
    /// /dev/null has nothing to sync).
    File(BufWriter<tokio::fs::File>, bool),
    Stdout(BufWriter<tokio::io::Stdout>),
}

impl Out {
    async fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        match self {
            Out::File(w, _) => {
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
            Out::File(w, regular) => {
                w.flush().await?;
                if durable && *regular {
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
    state: Option<Arc<Journal>>,
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
        read_ids(&file, path, seen).await?;
    }
    Ok(Out::File(
        BufWriter::new(tokio::fs::File::from_std(file)),
        regular,
    ))
}

/// The ids of the events already in `file` (a torn last line is ignored),
/// read through a handle of its own (appends go to the end whatever the
/// position).
async fn read_ids(
    file: &std::fs::File,
    path: &Path,
    seen: &mut HashSet<String>,
) -> anyhow::Result<()> {
    let file = own_file::open_to_read(path)
        .and_then(|read| same_file(file, &read).map(|()| read))
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = BufReader::new(tokio::fs::File::from_std(file)).split(b'\n');
    while let Some(line) = lines.next_segment().await? {
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&line)
            && let Some(id) = value["id"].as_str()
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
    pub async fn open(
        outputs: &Option<PathBuf>,
        errors: &Option<PathBuf>,
        state: Option<Arc<Journal>>,
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
