//! The journal: what a run keeps in its state directory, and the
//! group-committing writer thread that appends it to the log.

use super::ResumePoint;
use super::log::{self, Log};
use crate::event::Event;
use crate::observe::telemetry::JournalMetrics;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// The journal's format; a different one is refused.
const FORMAT: &str = "weir-journal-4";
/// The format before frames were numbered (their own magic tells them).
const FORMAT_3: &str = "weir-journal-3";
/// The file of the redb-based journal weir wrote before this format.
const REDB_FILE: &str = "journal.redb";

/// Why the journal could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
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
pub(crate) struct CallRecord {
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
pub(crate) enum Outcome {
    /// Its result, as JSON.
    Ok(Value),
    /// The error it returned.
    Err {
        /// `denied`, `invalid`, `limit` or `host-failed` (`failed` in older journals).
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

fn read_memory(bytes: &[u8]) -> Result<Value, String> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// One agent run's commit: the key's new sequence number and memory (JSON),
/// the outputs it releases (handed back once on disk), the run if it has
/// call records, which go, and where the input stands with it committed.
struct Commit {
    key: String,
    seq: u64,
    memory: Vec<u8>,
    outputs: Vec<Event>,
    run: Option<String>,
    resume: Option<ResumePoint>,
    /// The number of its first output, given by the writer.
    first_output: u64,
    done: oneshot::Sender<Result<Committed, String>>,
}

/// A run's commit on disk: the outputs it releases, and the number the
/// journal gave the first of them (the rest follow it, one each).
#[derive(Debug)]
pub(crate) struct Committed {
    pub outputs: Vec<Event>,
    pub first_output: u64,
}

/// An input event a service accepted (see [`Journal::accept`]): waiting to
/// run, or ran and still remembered so that a retried submit is known.
#[derive(Debug, Clone)]
pub struct AcceptedInput {
    /// Its sequence number.
    pub seq: u64,
    /// Its id.
    pub id: String,
    /// Its key.
    pub key: String,
    /// The digest of its content ([`Event::content_digest`]).
    pub digest: u64,
    /// The event, while it waits to run.
    pub event: Option<Event>,
    /// Once it ran: the numbers of its outputs.
    pub outputs: Option<std::ops::Range<u64>>,
}

enum Write {
    Commit(Commit),
    Call(String, Vec<u8>),
    /// The input's resume point.
    Resume(ResumePoint),
    /// Answered once everything queued before it is on disk.
    Barrier(oneshot::Sender<Result<(), String>>),
    /// A call record the caller waits for (an intent).
    DurableCall(String, Vec<u8>, oneshot::Sender<Result<(), String>>),
    Delivered(Vec<String>),
    /// An accepted input (seq, digest, event), answered once on disk.
    Accept(u64, u64, Box<Event>, oneshot::Sender<Result<(), String>>),
    /// Accepted inputs no longer remembered.
    Forget(Vec<u64>),
    /// The agent's new fingerprint.
    Meta(String),
}

impl Write {
    /// Whether somebody waits for it to reach the disk.
    fn is_waited_for(&self) -> bool {
        matches!(
            self,
            Write::Commit(_) | Write::Barrier(_) | Write::DurableCall(..) | Write::Accept(..)
        )
    }
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

    /// Forgets run `run`'s records; true if it had any.
    fn take_run(&mut self, run: &str) -> bool {
        let ids = self.by_run.remove(run).unwrap_or_default();
        for id in &ids {
            self.records.remove(id);
        }
        !ids.is_empty()
    }
}

/// The journal of one agent's runs in a state directory. A store serves
/// one run: open it, hand it to one [`Runtime`](crate::Runtime), and open it
/// again for the next run (what it read at open, [`Journal::keys`] and
/// [`Journal::outbox`], is not updated as the run commits).
pub struct Journal {
    path: PathBuf,
    writes: mpsc::UnboundedSender<Write>,
    /// The writer thread, joined on drop so the journal's lock is released
    /// when the store is gone.
    writer: Option<std::thread::JoinHandle<()>>,
    /// Call records written but maybe not yet committed, so a re-run in
    /// the same process sees them too.
    pending_calls: Mutex<PendingCalls>,
    /// Call records left by runs a crash interrupted, read when opening.
    recovered_calls: BTreeMap<String, Vec<u8>>,
    /// Every key's sequence number and memory, and the outbox, as opened.
    keys_at_open: Vec<(String, u64, Value)>,
    /// The outbox as opened, with each output's number, in number order.
    outbox_at_open: Vec<(u64, Event)>,
    /// Accepted inputs as opened, by sequence number.
    accepted_at_open: Vec<AcceptedInput>,
    /// The highest input sequence number the journal knows of, as opened.
    last_seq: u64,
    /// The highest output number given, as opened.
    numbered: u64,
    /// Where the input stood at the last commit before this run.
    resume: Option<ResumePoint>,
    /// Where the writer records its commits, once a runtime with metrics
    /// has the journal.
    metrics: Arc<std::sync::OnceLock<JournalMetrics>>,
}

fn store_error(path: &Path) -> impl Fn(String) -> JournalError + '_ {
    move |message| JournalError::Store {
        path: path.to_path_buf(),
        message,
    }
}

/// Why the log at `path` could not be read, as a [`JournalError`].
fn read_error(path: &Path, e: log::ReadError) -> JournalError {
    match e {
        log::ReadError::OldFormat => JournalError::OtherFormat {
            path: path.to_path_buf(),
            found: FORMAT_3.into(),
        },
        e => store_error(path)(e.to_string()),
    }
}

/// Refuses a journal another weir or another agent wrote.
fn check_meta(path: &Path, image: &log::Image, fingerprint: &str) -> Result<(), JournalError> {
    match &image.meta {
        Some((format, _)) if format != FORMAT => Err(JournalError::OtherFormat {
            path: path.to_path_buf(),
            found: format.clone(),
        }),
        Some((_, agent)) if agent != fingerprint => Err(JournalError::OtherAgent {
            path: path.to_path_buf(),
            found: agent.clone(),
            expected: fingerprint.to_string(),
        }),
        _ => Ok(()),
    }
}

/// Refuses a state directory holding the redb journal of an earlier weir.
fn refuse_older_format(dir: &Path) -> Result<(), JournalError> {
    let old = dir.join(REDB_FILE);
    if old.is_file() && !dir.join(log::FILE).exists() {
        return Err(JournalError::OtherFormat {
            path: old,
            found: "weir-journal-2 (redb)".into(),
        });
    }
    Ok(())
}

impl Journal {
    /// Opens (or creates) the journal in `dir` for the agent with
    /// `fingerprint`; a journal of another agent is refused. A torn tail
    /// (the last group commit, cut short by a crash) is cut off. Must be
    /// called inside a tokio runtime.
    pub fn open(dir: &Path, fingerprint: &str) -> Result<Arc<Journal>, JournalError> {
        Journal::open_with(dir, fingerprint, false)
    }

    /// As [`Journal::open`], but a journal another version of the agent
    /// wrote (a changed manifest or component) is taken over when it holds
    /// no unfinished work (no accepted event waiting to run, no recorded
    /// call of a run not committed): its memory, outputs and remembered
    /// runs carry on, stamped with `fingerprint`. For a service that keeps
    /// each agent's journal under the agent's name.
    pub fn open_adopting(dir: &Path, fingerprint: &str) -> Result<Arc<Journal>, JournalError> {
        Journal::open_with(dir, fingerprint, true)
    }

    fn open_with(dir: &Path, fingerprint: &str, adopt: bool) -> Result<Arc<Journal>, JournalError> {
        std::fs::create_dir_all(dir).map_err(|e| JournalError::Store {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        refuse_older_format(dir)?;
        let path = dir.join(log::FILE);
        let at = path.clone();
        let err = store_error(&at);
        // Nothing is written before the file is known to be this agent's
        // journal, whole but maybe for a torn tail.
        let opened = log::open(dir).map_err(|e| read_error(&path, e))?;
        let mut stamp = false;
        match check_meta(&path, &opened.loaded.image, fingerprint) {
            Err(JournalError::OtherAgent { found, .. }) if adopt => {
                let image = &opened.loaded.image;
                let waiting = image
                    .accepted
                    .values()
                    .filter(|a| a.event.is_some())
                    .count();
                if waiting > 0 || !image.calls.is_empty() {
                    return Err(JournalError::Store {
                        path,
                        message: format!(
                            "written by another version of this agent ({found}), with unfinished work ({waiting} accepted events waiting to run, {} recorded calls of runs not committed): serve it with the version that wrote it until that work is done, then change the agent",
                            image.calls.len()
                        ),
                    });
                }
                tracing::warn!(journal = %path.display(), "the agent changed since this journal was written: its memory, outputs and remembered runs carry on");
                stamp = true;
            }
            checked => checked?,
        }
        let (mut log, loaded) = opened.start().map_err(|e| err(e.to_string()))?;
        if loaded.whole < loaded.len {
            tracing::warn!(
                journal = %path.display(),
                discarded = loaded.len - loaded.whole,
                "cut off the journal's torn tail: the last group commit had not reached the disk; its work runs again"
            );
        }
        let image = loaded.image;
        if image.meta.is_none() || stamp {
            log.frame().meta(FORMAT, fingerprint);
            log.append().map_err(|e| err(e.to_string()))?;
        }
        let mut keys_at_open = Vec::with_capacity(image.keys.len());
        for (key, (seq, memory)) in image.keys {
            let memory = read_memory(&memory).map_err(|e| err(format!("key `{key}`: {e}")))?;
            keys_at_open.push((key, seq, memory));
        }
        let (outbox_at_open, numbered) = numbered_outbox(image.outbox, image.numbered)
            .map_err(|e| err(format!("outbox: {e}")))?;
        let resume: Option<ResumePoint> = image
            .resume
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let mut accepted_at_open = Vec::with_capacity(image.accepted.len());
        for (seq, accepted) in image.accepted {
            let event = match &accepted.event {
                Some(bytes) => Some(
                    serde_json::from_slice(bytes)
                        .map_err(|e| err(format!("accepted input {seq}: {e}")))?,
                ),
                None => None,
            };
            accepted_at_open.push(AcceptedInput {
                seq,
                id: accepted.id,
                key: accepted.key,
                digest: accepted.digest,
                event,
                outputs: accepted.outputs.map(|(first, count)| first..first + count),
            });
        }
        let last_seq = keys_at_open
            .iter()
            .map(|(_, seq, _)| *seq)
            .chain(accepted_at_open.last().map(|a| a.seq))
            .chain(resume.map(|r| r.seq.saturating_sub(1)))
            .max()
            .unwrap_or(0);
        let waiting = accepted_at_open
            .iter()
            .filter(|a| a.event.is_some())
            .map(|a| a.seq)
            .collect();
        let numbering = Numbering {
            next_output: numbered + 1,
            waiting,
        };
        let (writes, queue) = mpsc::unbounded_channel();
        let metrics = Arc::<std::sync::OnceLock<JournalMetrics>>::default();
        let recorded = metrics.clone();
        let writer = std::thread::Builder::new()
            .name("weir-journal".into())
            .spawn(move || writer(log, queue, numbering, &recorded))
            .map_err(|e| err(e.to_string()))?;
        Ok(Arc::new(Journal {
            path,
            writes,
            writer: Some(writer),
            pending_calls: Mutex::default(),
            recovered_calls: image.calls,
            keys_at_open,
            outbox_at_open,
            accepted_at_open,
            last_seq,
            numbered,
            resume,
            metrics,
        }))
    }

    /// Records the journal's group commits (their count, bytes and sync
    /// time) with `metrics`, from now on; the first runtime to ask wins.
    pub(crate) fn record_metrics(&self, metrics: JournalMetrics) {
        let _ = self.metrics.set(metrics);
    }

    /// Every key's committed sequence number and short-term memory, as the
    /// journal held them when opened.
    pub fn keys(&self) -> &[(String, u64, Value)] {
        &self.keys_at_open
    }

    /// Committed outputs the sink had not acknowledged when the journal was
    /// opened, in commit order, each with its number (outputs are numbered
    /// from 1 as they are committed; numbers are never given twice).
    pub fn outbox(&self) -> &[(u64, Event)] {
        &self.outbox_at_open
    }

    /// The highest output number given when the journal was opened (0:
    /// none yet); the next commit's outputs follow it.
    pub fn outputs_numbered(&self) -> u64 {
        self.numbered
    }

    /// The input events accepted ([`Journal::accept`]) and still
    /// remembered when the journal was opened, by sequence number: those
    /// with an `event` had not run (send them again, at their `seq`).
    pub fn accepted(&self) -> &[AcceptedInput] {
        &self.accepted_at_open
    }

    /// The highest input sequence number the journal knew of when opened:
    /// a caller numbering its own inputs (see [`Journal::accept`]) goes on
    /// after it.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Records input event `event`, numbered `seq` (higher than every
    /// input before it), as accepted: once the returned future resolves it
    /// is on disk, and a restart finds it in [`Journal::accepted`] until it
    /// has run. When its run commits, the journal remembers that it ran
    /// and which outputs it released (until [`Journal::forget`]). Queue the
    /// event to the runtime (at `seq`, [`crate::EventSender::send_at`])
    /// only after calling this: the journal writes in call order.
    pub fn accept(
        &self,
        seq: u64,
        event: &Event,
    ) -> impl std::future::Future<Output = Result<(), JournalError>> + Send + 'static {
        let (done, wait) = oneshot::channel();
        let write = Write::Accept(seq, event.content_digest(), Box::new(event.clone()), done);
        let sent = self.writes.send(write).is_ok();
        let path = self.path.clone();
        async move { answered(&path, sent, wait).await }
    }

    /// Records that from now on the journal is `fingerprint`'s (a service
    /// that reloaded a changed agent once the old one's runs were done);
    /// written with the next group commit.
    pub fn stamp(&self, fingerprint: &str) {
        let _ = self.writes.send(Write::Meta(fingerprint.to_string()));
    }

    /// Stops remembering accepted inputs `seqs` that have run.
    pub fn forget(&self, seqs: Vec<u64>) {
        if !seqs.is_empty() {
            let _ = self.writes.send(Write::Forget(seqs));
        }
    }

    /// The recorded result of host call `id`, if there is one.
    pub(crate) fn call(&self, id: &str) -> Option<CallRecord> {
        if let Some(bytes) = self
            .pending_calls
            .lock()
            .expect("journal lock")
            .records
            .get(id)
        {
            return serde_json::from_slice(bytes).ok();
        }
        serde_json::from_slice(self.recovered_calls.get(id)?).ok()
    }

    /// True if a crash left call records of run `run`.
    pub(crate) fn recovered_calls_of(&self, run: &str) -> bool {
        let prefix = format!("{run}/");
        self.recovered_calls
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(id, _)| id.starts_with(&prefix))
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
    pub(crate) fn record_call(&self, run: &str, id: String, record: &CallRecord) {
        let bytes = self.pend(run, &id, record);
        let _ = self.writes.send(Write::Call(id, bytes));
    }

    /// Records host call `id` of run `run` and waits until the record is on
    /// disk.
    pub(crate) async fn record_durably(
        &self,
        run: &str,
        id: String,
        record: &CallRecord,
    ) -> Result<(), JournalError> {
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
    ) -> Result<(), JournalError> {
        let memory = serde_json::to_vec(&memory).expect("memory is JSON");
        self.commit_later(key, seq, memory, outputs, run)
            .await
            .map(drop)
    }

    /// Queues the commit of one agent run (commits apply in the order they
    /// are queued; `memory` is the key's memory as JSON) and returns a
    /// future that resolves once it is on disk, with `outputs` back, so the
    /// key's next run need not wait for the fsync.
    pub(crate) fn commit_later(
        &self,
        key: &str,
        seq: u64,
        memory: Vec<u8>,
        outputs: Vec<Event>,
        run: &str,
    ) -> impl std::future::Future<Output = Result<Committed, JournalError>> + Send + 'static {
        self.commit_at(key, seq, memory, outputs, run, None)
    }

    /// As [`Journal::commit_later`], with the input's resume point as it
    /// stands once this run (and every one queued before it) is committed:
    /// it is written in the same frame, so it is on disk exactly when the
    /// commit is.
    pub(crate) fn commit_at(
        &self,
        key: &str,
        seq: u64,
        memory: Vec<u8>,
        outputs: Vec<Event>,
        run: &str,
        resume: Option<ResumePoint>,
    ) -> impl std::future::Future<Output = Result<Committed, JournalError>> + Send + 'static {
        let (done, wait) = oneshot::channel();
        let had_calls = self
            .pending_calls
            .lock()
            .expect("journal lock")
            .take_run(run);
        let commit = Commit {
            key: key.to_string(),
            seq,
            memory,
            outputs,
            run: (had_calls || self.recovered_calls_of(run)).then(|| run.to_string()),
            resume,
            first_output: 0,
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
    pub(crate) fn set_resume_point(&self, point: ResumePoint) {
        let _ = self.writes.send(Write::Resume(point));
    }

    /// Waits until every write queued so far is on disk.
    pub async fn sync(&self) -> Result<(), JournalError> {
        let (done, answer) = oneshot::channel();
        let sent = self.writes.send(Write::Barrier(done));
        answered(&self.path, sent.is_ok(), answer).await
    }

    /// The sink has these outputs (by id): drop them from the outbox.
    pub fn delivered(&self, ids: Vec<String>) {
        // Nothing to write: no message (a service calls this per run, most
        // often with none, and each message wakes the writer).
        if !ids.is_empty() {
            let _ = self.writes.send(Write::Delivered(ids));
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // Closing the queue ends the writer once it has written what was
        // queued; then the log is closed and unlocked.
        let (closed, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.writes, closed));
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The writer's answer to a write that was `sent`: what it returned, or an
/// error if it is gone.
async fn answered<T>(
    path: &Path,
    sent: bool,
    answer: oneshot::Receiver<Result<T, String>>,
) -> Result<T, JournalError> {
    let err = store_error(path);
    let stopped = || err("the journal writer stopped".into());
    if !sent {
        return Err(stopped());
    }
    answer.await.map_err(|_| stopped())?.map_err(err)
}

/// The outbox as the log holds it, in number order with each output's
/// number, and the highest number given. Outputs older journals kept
/// under their key's order, without numbers, are numbered after the rest.
fn numbered_outbox(
    outbox: HashMap<String, (String, Vec<u8>)>,
    numbered: u64,
) -> Result<(Vec<(u64, Event)>, u64), serde_json::Error> {
    let mut entries: Vec<(String, Vec<u8>)> = outbox.into_values().collect();
    entries.sort_by(|a, b| {
        let (x, y) = (log::output_number(&a.0), log::output_number(&b.0));
        // Numbered ones first (by number), then older ones by their order.
        (x.is_none(), x, &a.0).cmp(&(y.is_none(), y, &b.0))
    });
    let mut last = numbered;
    let mut numbered_outbox = Vec::with_capacity(entries.len());
    for (order, event) in entries {
        let n = match log::output_number(&order) {
            Some(n) => n,
            None => {
                last += 1;
                last
            }
        };
        numbered_outbox.push((n, serde_json::from_slice(&event)?));
    }
    Ok((numbered_outbox, last))
}

/// What the writer numbers: the next output's number, and the accepted
/// inputs waiting to run (whose commits also mark them as run).
struct Numbering {
    next_output: u64,
    waiting: std::collections::HashSet<u64>,
}

/// The least time between the starts of two group commits under load.
/// Writes queue meanwhile and share one fsync (each fsync costs the machine
/// far more than the wait: on a VM, every one is several exits to the
/// hypervisor).
const GROUP_COMMIT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(2);

/// The spacing is adaptive: the writer waits out the interval only when the
/// last group carried more than one commit somebody waits for (several
/// runs finishing at once, so waiting gathers more of them); a run that
/// finishes alone, as with one event at a time, is synced at once instead
/// of waiting for company that is not coming.
fn under_load(waited_for: usize) -> bool {
    waited_for > 1
}

/// The writer thread: takes every write queued, appends them as one frame,
/// syncs it, then answers the commits; rewrites the log when it is mostly
/// superseded.
fn writer(
    mut log: Log,
    mut queue: mpsc::UnboundedReceiver<Write>,
    mut numbering: Numbering,
    metrics: &std::sync::OnceLock<JournalMetrics>,
) {
    // After a failed write (a full disk, an I/O error) nothing more is
    // written: every later write gets the first error.
    let mut failed: Option<String> = None;
    let mut batch = Vec::new();
    let mut last_commit: Option<std::time::Instant> = None;
    let mut last_waited_for = 0;
    while let Some(first) = queue.blocking_recv() {
        if let Some(wait) = last_commit
            .filter(|_| under_load(last_waited_for))
            .and_then(|at| GROUP_COMMIT_INTERVAL.checked_sub(at.elapsed()))
        {
            std::thread::sleep(wait);
        }
        last_commit = Some(std::time::Instant::now());
        batch.push(first);
        while let Ok(next) = queue.try_recv() {
            batch.push(next);
        }
        last_waited_for = batch.iter().filter(|w| w.is_waited_for()).count();
        let started = std::time::Instant::now();
        let result = match &failed {
            Some(message) => Err(message.clone()),
            None => append(&mut log, &mut batch, &mut numbering).map_err(|e| e.to_string()),
        };
        if let (Ok(bytes), Some(metrics)) = (&result, metrics.get()) {
            let commits = batch
                .iter()
                .filter(|w| matches!(w, Write::Commit(_)))
                .count();
            metrics.synced(commits as u64, *bytes, started.elapsed().as_secs_f64());
        }
        let result = result.map(|_| ());
        if let (Err(message), None) = (&result, &failed) {
            tracing::error!(journal = %log.path().display(), error = %message, "journal write failed; writing nothing more");
            failed = Some(message.clone());
        }
        for write in batch.drain(..) {
            match write {
                Write::Commit(commit) => {
                    let committed = result.clone().map(|()| Committed {
                        outputs: commit.outputs,
                        first_output: commit.first_output,
                    });
                    let _ = commit.done.send(committed);
                }
                Write::DurableCall(_, _, done) | Write::Barrier(done) | Write::Accept(.., done) => {
                    let _ = done.send(result.clone());
                }
                _ => {}
            }
        }
        if failed.is_none() {
            match log.rewrite_when_due() {
                Ok(Some((before, after))) => {
                    tracing::debug!(journal = %log.path().display(), before, after, "rewrote the journal")
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(journal = %log.path().display(), error = %e, "journal rewrite failed; writing nothing more");
                    failed = Some(e.to_string());
                }
            }
        }
    }
}

/// Appends a batch as one frame and syncs it; the bytes written. Each
/// commit's outputs get the next numbers (set on the commit, for its
/// answer).
fn append(log: &mut Log, batch: &mut [Write], numbering: &mut Numbering) -> std::io::Result<u64> {
    // Only the batch's last resume point counts: it is written once, after
    // every commit it counts (the frame is whole or not at all).
    let mut resume = None;
    let frame = log.frame();
    for write in batch.iter_mut() {
        match write {
            Write::Commit(commit) => {
                resume = commit.resume.or(resume);
                frame.key(&commit.key, commit.seq, &commit.memory);
                commit.first_output = numbering.next_output;
                for event in &commit.outputs {
                    let order = format!("{:020}", numbering.next_output);
                    numbering.next_output += 1;
                    frame.output_event(&event.id, &order, event);
                }
                if numbering.waiting.remove(&commit.seq) {
                    let count = commit.outputs.len() as u64;
                    frame.input_done(commit.seq, commit.first_output, count);
                }
                if let Some(run) = &commit.run {
                    frame.run_done(run);
                }
            }
            Write::Accept(seq, digest, event, _) => {
                numbering.waiting.insert(*seq);
                frame.accepted_event(*seq, *digest, event);
            }
            Write::Forget(seqs) => {
                for seq in seqs {
                    frame.forgotten(*seq);
                }
            }
            Write::Call(id, bytes) | Write::DurableCall(id, bytes, _) => frame.call(id, bytes),
            Write::Resume(point) => resume = Some(*point),
            Write::Delivered(ids) => {
                for id in ids {
                    frame.delivered(id);
                }
            }
            Write::Meta(fingerprint) => frame.meta(FORMAT, fingerprint),
            Write::Barrier(_) => {}
        }
    }
    if let Some(point) = resume {
        frame.resume(&serde_json::to_vec(&point).expect("resume points serialise"));
    }
    log.append()
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
    /// Accepted inputs (`weir serve`) waiting to run.
    pub accepted_waiting: u64,
    /// Accepted inputs that ran, remembered to recognise a retried submit.
    pub accepted_done: u64,
    /// The file's size in bytes.
    pub file_bytes: u64,
    /// The bytes the live state takes (the rest is superseded records,
    /// dropped when the log rewrites itself or by `weir state compact`).
    pub used_bytes: u64,
    /// Bytes past the last whole frame: a torn tail the next run cuts off.
    pub torn_bytes: u64,
}

fn journal_file(dir: &Path) -> Result<PathBuf, JournalError> {
    refuse_older_format(dir)?;
    let path = dir.join(log::FILE);
    if std::fs::symlink_metadata(&path).is_err() {
        return Err(store_error(&path)("no journal here".into()));
    }
    Ok(path)
}

/// Reads the journal in `dir` without changing it (a run may have it open:
/// this reads what it has synced).
pub fn inspect(dir: &Path) -> Result<Inspection, JournalError> {
    let path = journal_file(dir)?;
    let loaded = log::read(&path).map_err(|e| read_error(&path, e))?;
    let image = &loaded.image;
    let (format, agent) = image.meta.clone().unwrap_or_default();
    Ok(Inspection {
        agent,
        format,
        keys: image
            .keys
            .iter()
            .map(|(key, (seq, _))| (key.clone(), *seq))
            .collect(),
        resume: image
            .resume
            .as_ref()
            .and_then(|bytes| serde_json::from_slice(bytes).ok()),
        pending_calls: image.calls.len() as u64,
        outbox: image.outbox.len() as u64,
        accepted_waiting: image
            .accepted
            .values()
            .filter(|a| a.event.is_some())
            .count() as u64,
        accepted_done: image
            .accepted
            .values()
            .filter(|a| a.event.is_none())
            .count() as u64,
        file_bytes: loaded.len,
        used_bytes: image.live_bytes(),
        torn_bytes: loaded.len - loaded.whole,
        path,
    })
}

/// Compacts the journal in `dir` (no run may have it open): rewrites it
/// to its live state. Returns the file's size before and after.
pub fn compact(dir: &Path) -> Result<(u64, u64), JournalError> {
    let path = journal_file(dir)?;
    let err = store_error(&path);
    let opened = log::open(dir).map_err(|e| read_error(&path, e))?;
    if let Some((format, _)) = &opened.loaded.image.meta
        && format != FORMAT
    {
        return Err(JournalError::OtherFormat {
            path: path.clone(),
            found: format.clone(),
        });
    }
    let (mut log, loaded) = opened.start().map_err(|e| err(e.to_string()))?;
    let after = log.rewrite().map_err(|e| err(e.to_string()))?;
    Ok((loaded.len, after))
}
