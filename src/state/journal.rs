//! The journal's tables and its group-committing writer.

use super::ResumePoint;
use crate::event::Event;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// The journal's format; a different one is refused.
const FORMAT: &str = "weir-journal-2";

const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
/// key -> the sequence number of its last committed input (8 bytes, little
/// endian), then its short-term memory as JSON.
const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("keys");
/// "{run}/{event}/{action}/{index}" -> JSON [`CallRecord`].
const CALLS: TableDefinition<&str, &[u8]> = TableDefinition::new("calls");
/// output event id -> its place in commit order,
/// `"{key}\u{1}{seq:020}\u{1}{n:06}"`, a newline, then the event as JSON.
const OUTBOX: TableDefinition<&str, &[u8]> = TableDefinition::new("outbox");

/// Why the journal could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The store failed (I/O, corruption, a full disk).
    #[error("state {path}: {message}")]
    Store {
        /// The journal file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The journal was written in another format (by another weir).
    #[error(
        "state {path} is in format `{found}`, which this weir does not read (it reads `{FORMAT}`): finish the run with the weir that wrote it, or use another --state directory"
    )]
    OtherFormat {
        /// The journal file.
        path: PathBuf,
        /// The format recorded.
        found: String,
    },
    /// The journal belongs to another agent (or another version of it).
    #[error(
        "state {path} was written by agent `{found}`, not `{expected}`: use another --state directory, or remove this one to start over"
    )]
    OtherAgent {
        /// The journal file.
        path: PathBuf,
        /// The fingerprint recorded.
        found: String,
        /// This agent's fingerprint.
        expected: String,
    },
}

/// A recorded host call: which function, a digest of its request, and its
/// result (or error).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The host function, for example `model.chat`.
    pub op: String,
    /// sha256 of the request, hex.
    pub request: String,
    /// What came of it.
    pub outcome: Outcome,
}

/// What came of a recorded host call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Its result, as JSON.
    Ok(Value),
    /// The error it returned.
    Err {
        /// `denied`, `invalid`, `limit` or `failed`.
        kind: String,
        /// The error's message.
        message: String,
    },
    /// It was about to take effect (an intent); no result was recorded.
    Intent,
}

impl CallRecord {
    /// True for an intent with no result.
    pub fn is_intent(&self) -> bool {
        self.outcome == Outcome::Intent
    }
}

fn key_record(seq: u64, memory: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(8 + memory.len());
    bytes.extend_from_slice(&seq.to_le_bytes());
    bytes.extend_from_slice(memory);
    bytes
}

fn read_key_record(bytes: &[u8]) -> Result<(u64, Value), String> {
    let (seq, memory) = bytes
        .split_first_chunk::<8>()
        .ok_or("a record shorter than its sequence number")?;
    let memory = if memory.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(memory).map_err(|e| e.to_string())?
    };
    Ok((u64::from_le_bytes(*seq), memory))
}

fn outbox_record(order: &str, event: &Event) -> Vec<u8> {
    let mut bytes = order.as_bytes().to_vec();
    bytes.push(b'\n');
    serde_json::to_writer(&mut bytes, event).expect("events serialise");
    bytes
}

fn read_outbox_record(bytes: &[u8]) -> Result<(String, Event), String> {
    let at = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("an outbox record without its order")?;
    let order = String::from_utf8_lossy(&bytes[..at]).into_owned();
    let event = serde_json::from_slice(&bytes[at + 1..]).map_err(|e| e.to_string())?;
    Ok((order, event))
}

/// One agent run's commit: the key's new sequence number and memory (JSON),
/// the outputs it releases (handed back once on disk), and the run whose
/// call records can go.
struct Commit {
    key: String,
    seq: u64,
    memory: Vec<u8>,
    outputs: Vec<Event>,
    run: String,
    /// The run's call records written in this process.
    calls: Vec<String>,
    done: oneshot::Sender<Result<Vec<Event>, String>>,
}

enum Write {
    Commit(Commit),
    Call(String, Vec<u8>),
    /// The input's resume point.
    Resume(Vec<u8>),
    /// Answered once everything queued before it is on disk.
    Barrier(oneshot::Sender<Result<(), String>>),
    /// A call record the caller waits for (an intent).
    DurableCall(String, Vec<u8>, oneshot::Sender<Result<(), String>>),
    Delivered(Vec<String>),
}

/// Call records not yet pruned, by id, and their ids by run.
#[derive(Default)]
struct PendingCalls {
    records: HashMap<String, Vec<u8>>,
    by_run: HashMap<String, Vec<String>>,
}

impl PendingCalls {
    fn insert(&mut self, run: &str, id: &str, bytes: Vec<u8>) {
        if self.records.insert(id.to_string(), bytes).is_none() {
            self.by_run
                .entry(run.to_string())
                .or_default()
                .push(id.to_string());
        }
    }

    /// Forgets run `run`'s records; returns their ids.
    fn take_run(&mut self, run: &str) -> Vec<String> {
        let ids = self.by_run.remove(run).unwrap_or_default();
        for id in &ids {
            self.records.remove(id);
        }
        ids
    }
}

/// The journal of one agent's runs in a state directory.
pub struct StateStore {
    path: PathBuf,
    writes: mpsc::UnboundedSender<Write>,
    /// Call records written but maybe not yet committed, so a re-run in
    /// the same process sees them too.
    pending_calls: Mutex<PendingCalls>,
    /// Call records left by runs a crash interrupted, read when opening;
    /// each run's go when it commits.
    recovered_calls: Mutex<std::collections::BTreeMap<String, Vec<u8>>>,
    /// Every key's sequence number and memory, and the outbox, as opened.
    keys_at_open: Vec<(String, u64, Value)>,
    outbox_at_open: Vec<Event>,
    /// Where the input stood at the last commit before this run.
    resume: Option<ResumePoint>,
}

fn store_error(path: &Path) -> impl Fn(String) -> StateError + '_ {
    move |message| StateError::Store {
        path: path.to_path_buf(),
        message,
    }
}

impl StateStore {
    /// Opens (or creates) the journal in `dir` for the agent with
    /// `fingerprint`; a journal of another agent is refused. Must be called
    /// inside a tokio runtime (the writer is a task).
    pub fn open(dir: &Path, fingerprint: &str) -> Result<Arc<StateStore>, StateError> {
        std::fs::create_dir_all(dir).map_err(|e| StateError::Store {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        let path = dir.join("journal.redb");
        let at = path.clone();
        let err = store_error(&at);
        let db = open_db(&path, true)?;
        let resume;
        let txn = begin_write(&db).map_err(|e| err(e.to_string()))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| err(e.to_string()))?;
            let found = meta
                .get("agent")
                .map_err(|e| err(e.to_string()))?
                .map(|v| v.value().to_string());
            let format = meta
                .get("format")
                .map_err(|e| err(e.to_string()))?
                .map(|v| v.value().to_string());
            if let Some(found) = format.filter(|f| f != FORMAT) {
                return Err(StateError::OtherFormat { path, found });
            }
            resume = read_resume(&meta).map_err(|e| err(e.to_string()))?;
            match found {
                Some(found) if found != fingerprint => {
                    return Err(StateError::OtherAgent {
                        path,
                        found,
                        expected: fingerprint.to_string(),
                    });
                }
                Some(_) => {}
                None => {
                    meta.insert("agent", fingerprint)
                        .map_err(|e| err(e.to_string()))?;
                    meta.insert("format", FORMAT)
                        .map_err(|e| err(e.to_string()))?;
                }
            }
            txn.open_table(KEYS).map_err(|e| err(e.to_string()))?;
            txn.open_table(CALLS).map_err(|e| err(e.to_string()))?;
            txn.open_table(OUTBOX).map_err(|e| err(e.to_string()))?;
        }
        txn.commit().map_err(|e| err(e.to_string()))?;
        // Everything a run reads from the journal is read now; from here on
        // the writer thread owns the database, so it can compact it.
        let mut keys_at_open = Vec::new();
        for (key, value) in read_rows(&db, KEYS).map_err(|e| err(e.to_string()))? {
            let (seq, memory) =
                read_key_record(&value).map_err(|e| err(format!("key `{key}`: {e}")))?;
            keys_at_open.push((key, seq, memory));
        }
        let mut outbox = Vec::new();
        for (_, value) in read_rows(&db, OUTBOX).map_err(|e| err(e.to_string()))? {
            outbox.push(read_outbox_record(&value).map_err(|e| err(format!("outbox: {e}")))?);
        }
        outbox.sort_by(|a, b| a.0.cmp(&b.0));
        let outbox_at_open = outbox.into_iter().map(|(_, event)| event).collect();
        let recovered: std::collections::BTreeMap<String, Vec<u8>> = read_rows(&db, CALLS)
            .map_err(|e| err(e.to_string()))?
            .into_iter()
            .collect();
        let recovering = !recovered.is_empty();
        let (writes, queue) = mpsc::unbounded_channel();
        let writer_path = path.clone();
        std::thread::Builder::new()
            .name("weir-journal".into())
            .spawn(move || writer(db, writer_path, recovering, queue))
            .map_err(|e| err(e.to_string()))?;
        Ok(Arc::new(StateStore {
            path,
            writes,
            pending_calls: Mutex::default(),
            recovered_calls: Mutex::new(recovered),
            keys_at_open,
            outbox_at_open,
            resume,
        }))
    }

    /// Every key's committed sequence number and short-term memory, as the
    /// journal held them when opened.
    pub fn keys(&self) -> &[(String, u64, Value)] {
        &self.keys_at_open
    }

    /// Committed outputs the sink had not acknowledged when the journal was
    /// opened, in commit order per key.
    pub fn outbox(&self) -> &[Event] {
        &self.outbox_at_open
    }

    /// The recorded result of host call `id`, if there is one.
    pub fn call(&self, id: &str) -> Option<CallRecord> {
        if let Some(bytes) = self
            .pending_calls
            .lock()
            .expect("journal lock")
            .records
            .get(id)
        {
            return serde_json::from_slice(bytes).ok();
        }
        let recovered = self.recovered_calls.lock().expect("journal lock");
        serde_json::from_slice(recovered.get(id)?).ok()
    }

    /// Keeps call record `id` of run `run` for this process's lookups, and
    /// returns it serialised for the writer.
    fn pend(&self, run: &str, id: &str, record: &CallRecord) -> Vec<u8> {
        let bytes = serde_json::to_vec(record).expect("call records serialise");
        self.pending_calls
            .lock()
            .expect("journal lock")
            .insert(run, id, bytes.clone());
        bytes
    }

    /// Records host call `id` of run `run` (written with the next group
    /// commit).
    pub fn record_call(&self, run: &str, id: String, record: &CallRecord) {
        let bytes = self.pend(run, &id, record);
        let _ = self.writes.send(Write::Call(id, bytes));
    }

    /// Records host call `id` of run `run` and waits until the record is on
    /// disk.
    pub async fn record_durably(
        &self,
        run: &str,
        id: String,
        record: &CallRecord,
    ) -> Result<(), StateError> {
        let bytes = self.pend(run, &id, record);
        let (done, answer) = oneshot::channel();
        let sent = self.writes.send(Write::DurableCall(id, bytes, done));
        answered(&self.path, sent.is_ok(), answer).await
    }

    /// Commits one agent run: `key` has handled input `seq`, its memory is
    /// now `memory`, and `outputs` go to the outbox; the run's call records
    /// are pruned. Returns once the commit is on disk.
    pub async fn commit(
        &self,
        key: &str,
        seq: u64,
        memory: Value,
        outputs: Vec<Event>,
        run: &str,
    ) -> Result<(), StateError> {
        let memory = serde_json::to_vec(&memory).expect("memory is JSON");
        self.commit_later(key, seq, memory, outputs, run)
            .await
            .map(drop)
    }

    /// Queues the commit of one agent run (commits apply in the order they
    /// are queued; `memory` is the key's memory as JSON) and returns a
    /// future that resolves once it is on disk, with `outputs` back, so the
    /// key's next run need not wait for the fsync.
    pub fn commit_later(
        &self,
        key: &str,
        seq: u64,
        memory: Vec<u8>,
        outputs: Vec<Event>,
        run: &str,
    ) -> impl std::future::Future<Output = Result<Vec<Event>, StateError>> + Send + 'static {
        let (done, wait) = oneshot::channel();
        let calls = self
            .pending_calls
            .lock()
            .expect("journal lock")
            .take_run(run);
        let commit = Commit {
            key: key.to_string(),
            seq,
            memory,
            outputs,
            run: run.to_string(),
            calls,
            done,
        };
        let sent = self.writes.send(Write::Commit(commit)).is_ok();
        let path = self.path.clone();
        async move { answered(&path, sent, wait).await }
    }

    /// Where the input stood when this journal was opened: the first input
    /// event a restarted run has to read.
    pub fn resume_point(&self) -> Option<ResumePoint> {
        self.resume
    }

    /// Records where the input stands (written with the next group commit).
    pub(crate) fn set_resume_point(&self, point: &ResumePoint) {
        let bytes = serde_json::to_vec(point).expect("resume points serialise");
        let _ = self.writes.send(Write::Resume(bytes));
    }

    /// Waits until every write queued so far is on disk.
    pub async fn sync(&self) -> Result<(), StateError> {
        let (done, answer) = oneshot::channel();
        let sent = self.writes.send(Write::Barrier(done));
        answered(&self.path, sent.is_ok(), answer).await
    }

    /// The sink has these outputs (by id): drop them from the outbox.
    pub fn delivered(&self, ids: Vec<String>) {
        let _ = self.writes.send(Write::Delivered(ids));
    }
}

/// The writer's answer to a write that was `sent`: what it returned, or an
/// error if it is gone.
async fn answered<T>(
    path: &Path,
    sent: bool,
    answer: oneshot::Receiver<Result<T, String>>,
) -> Result<T, StateError> {
    let err = store_error(path);
    let stopped = || err("the journal writer stopped".into());
    if !sent {
        return Err(stopped());
    }
    answer.await.map_err(|_| stopped())?.map_err(err)
}

/// Every row of `table`, in key order.
fn read_rows(
    db: &Database,
    table: TableDefinition<&str, &[u8]>,
) -> Result<Vec<(String, Vec<u8>)>, redb::Error> {
    let txn = db.begin_read()?;
    let table = txn.open_table(table)?;
    let mut rows = Vec::new();
    for row in table.iter()? {
        let (key, value) = row?;
        rows.push((key.value().to_string(), value.value().to_vec()));
    }
    Ok(rows)
}

fn read_resume(
    meta: &impl ReadableTable<&'static str, &'static str>,
) -> Result<Option<ResumePoint>, redb::Error> {
    Ok(meta
        .get("resume")?
        .and_then(|v| serde_json::from_str(v.value()).ok()))
}

fn outbox_order(key: &str, seq: u64, n: usize) -> String {
    format!("{key}\u{1}{seq:020}\u{1}{n:06}")
}

/// The writer thread: takes every write queued, applies them in one
/// transaction, commits (fsync), then answers the commits.
fn writer(
    mut db: Database,
    path: PathBuf,
    recovering: bool,
    mut queue: mpsc::UnboundedReceiver<Write>,
) {
    // After a failed commit (a full disk, an I/O error) nothing more is
    // written: every later write gets the first error.
    let mut failed: Option<String> = None;
    let mut compacted_at = file_len(&path);
    while let Some(first) = queue.blocking_recv() {
        let mut batch = vec![first];
        while let Ok(next) = queue.try_recv() {
            batch.push(next);
        }
        let result = match &failed {
            Some(message) => Err(message.clone()),
            None => apply(&db, &batch, recovering).map_err(|e| format!("{e}")),
        };
        if result.is_ok() {
            compact_when_sparse(&mut db, &path, &mut compacted_at);
        }
        if let (Err(message), None) = (&result, &failed) {
            tracing::error!(journal = %path.display(), error = %message, "journal commit failed; writing nothing more");
            failed = Some(message.clone());
        }
        for write in batch {
            match write {
                Write::Commit(commit) => {
                    let _ = commit.done.send(result.clone().map(|()| commit.outputs));
                }
                Write::DurableCall(_, _, done) | Write::Barrier(done) => {
                    let _ = done.send(result.clone());
                }
                _ => {}
            }
        }
    }
}

/// A write transaction that survives a torn write: two-phase commit (the
/// header is written only once the data it points at is on disk) and quick
/// repair (the allocator state is saved with each commit, so opening after
/// a crash does not rebuild it; redb 3.1's rebuild can panic on a file that
/// grew before the crash).
fn begin_write(db: &Database) -> Result<redb::WriteTransaction, redb::TransactionError> {
    let mut txn = db.begin_write()?;
    txn.set_two_phase_commit(true);
    txn.set_quick_repair(true);
    Ok(txn)
}

/// Opens (or creates) the journal file. A file redb cannot repair is
/// reported, not a panic: redb 3.1 panics on some damaged files.
fn open_db(path: &Path, create: bool) -> Result<Database, StateError> {
    let err = store_error(path);
    let opened = std::panic::catch_unwind(|| {
        if create {
            Database::create(path)
        } else {
            Database::open(path)
        }
    });
    match opened {
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(why)))) => Err(err(format!(
            "the journal is damaged ({why}); move it aside to start over"
        ))),
        Ok(db) => db.map_err(|e| err(e.to_string())),
        Err(_) => Err(err(
            "the journal is damaged beyond repair (redb could not read its last commits); move it aside to start over"
                .into(),
        )),
    }
}

/// Applies a batch in one transaction. With `recovering`, call records
/// written before a crash (not known by id) are pruned by run too.
fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The file grows while pruned pages wait to be reused (redb grows it
/// ahead, and reuses freed pages only a few commits later), far past what
/// is in use: once it has grown to four times its size after the last
/// compaction (and past 64 MiB), it is compacted.
fn compact_when_sparse(db: &mut Database, path: &Path, compacted_at: &mut u64) {
    let len = file_len(path);
    if len < (64 << 20).max(compacted_at.saturating_mul(4)) {
        return;
    }
    match db.compact() {
        Ok(_) => {
            *compacted_at = file_len(path);
            tracing::info!(journal = %path.display(), before = len, after = *compacted_at, "compacted the journal");
        }
        Err(e) => {
            // Compaction is an optimisation; try again after as much growth.
            *compacted_at = len;
            tracing::warn!(journal = %path.display(), error = %e, "could not compact the journal");
        }
    }
}

fn apply(db: &Database, batch: &[Write], recovering: bool) -> Result<(), redb::Error> {
    let txn = begin_write(db)?;
    {
        let mut keys = txn.open_table(KEYS)?;
        let mut calls = txn.open_table(CALLS)?;
        let mut outbox = txn.open_table(OUTBOX)?;
        let mut meta = txn.open_table(META)?;
        for write in batch.iter() {
            match write {
                Write::Resume(bytes) => {
                    let text = std::str::from_utf8(bytes).expect("JSON is UTF-8");
                    meta.insert("resume", text)?;
                }
                Write::Call(id, bytes) | Write::DurableCall(id, bytes, _) => {
                    calls.insert(id.as_str(), bytes.as_slice())?;
                }
                Write::Commit(commit) => {
                    let record = key_record(commit.seq, &commit.memory);
                    keys.insert(commit.key.as_str(), record.as_slice())?;
                    for (n, event) in commit.outputs.iter().enumerate() {
                        let order = outbox_order(&commit.key, commit.seq, n);
                        let record = outbox_record(&order, event);
                        outbox.insert(event.id.as_str(), record.as_slice())?;
                    }
                    for id in &commit.calls {
                        calls.remove(id.as_str())?;
                    }
                    if recovering {
                        let prefix = format!("{}/", commit.run);
                        let end = format!("{}0", commit.run);
                        let doomed: Vec<String> = calls
                            .range(prefix.as_str()..end.as_str())?
                            .filter_map(|row| row.ok().map(|(k, _)| k.value().to_string()))
                            .collect();
                        for id in doomed {
                            calls.remove(id.as_str())?;
                        }
                    }
                }
                Write::Barrier(_) => {}
                Write::Delivered(ids) => {
                    for id in ids {
                        outbox.remove(id.as_str())?;
                    }
                }
            }
        }
    }
    txn.commit()?;
    Ok(())
}

/// What a journal holds, for `weir state inspect`.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The journal file.
    pub path: PathBuf,
    /// The fingerprint of the agent that wrote it.
    pub agent: String,
    /// Its format.
    pub format: String,
    /// Each key's last committed input event (its sequence number).
    pub keys: Vec<(String, u64)>,
    /// Where a restarted run picks its input up.
    pub resume: Option<ResumePoint>,
    /// Host calls recorded for runs not yet committed.
    pub pending_calls: u64,
    /// Committed outputs the sink has not acknowledged.
    pub outbox: u64,
    /// The file's size in bytes.
    pub file_bytes: u64,
    /// The bytes of the file's pages in use (the rest is free space that
    /// later commits reuse, or `weir state compact` gives back).
    pub used_bytes: u64,
}

/// Reads the journal in `dir` without changing it (no run may have it open).
pub fn inspect(dir: &Path) -> Result<Inspection, StateError> {
    let path = dir.join("journal.redb");
    let err = store_error(&path);
    if !path.is_file() {
        return Err(err("no journal here".into()));
    }
    let db = open_db(&path, false)?;
    let txn = db.begin_read().map_err(|e| err(e.to_string()))?;
    let meta = txn.open_table(META).map_err(|e| err(e.to_string()))?;
    let get = |name: &str| -> Result<String, StateError> {
        Ok(meta
            .get(name)
            .map_err(|e| err(e.to_string()))?
            .map(|v| v.value().to_string())
            .unwrap_or_default())
    };
    let (agent, format) = (get("agent")?, get("format")?);
    let resume = read_resume(&meta).map_err(|e| err(e.to_string()))?;
    let mut keys = Vec::new();
    for (key, value) in read_rows(&db, KEYS).map_err(|e| err(e.to_string()))? {
        let (seq, _) = read_key_record(&value).map_err(|e| err(format!("key `{key}`: {e}")))?;
        keys.push((key, seq));
    }
    let count = |def| -> Result<u64, StateError> {
        let table = txn.open_table(def).map_err(|e| err(e.to_string()))?;
        ReadableTableMetadata::len(&table).map_err(|e| err(e.to_string()))
    };
    let (pending_calls, outbox) = (count(CALLS)?, count(OUTBOX)?);
    drop(meta);
    drop(txn);
    let used_bytes = {
        let txn = db.begin_write().map_err(|e| err(e.to_string()))?;
        let stats = txn.stats().map_err(|e| err(e.to_string()))?;
        txn.abort().map_err(|e| err(e.to_string()))?;
        stats.allocated_pages() * stats.page_size() as u64
    };
    let file_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    Ok(Inspection {
        path: path.clone(),
        agent,
        format,
        keys,
        resume,
        pending_calls,
        outbox,
        file_bytes,
        used_bytes,
    })
}

/// Compacts the journal file in `dir` (no run may have it open): completed
/// work is pruned at every commit; this returns the freed pages to the
/// file system. Returns the file's size before and after.
pub fn compact(dir: &Path) -> Result<(u64, u64), StateError> {
    let path = dir.join("journal.redb");
    let err = store_error(&path);
    let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let before = size();
    let mut db = open_db(&path, false)?;
    db.compact().map_err(|e| err(e.to_string()))?;
    drop(db);
    Ok((before, size()))
}
