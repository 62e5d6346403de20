//! The event log: every event of a run (input, intermediate, output, error)
//! and every execution (an action's task, a model or tool call) as one JSON
//! line in Apache Flink Agents' event-log record shape, so its tools read
//! weir's logs and weir's `weir log` reads theirs.
//!
//! Writing is best-effort and off the runtime's path: records go through a
//! bounded queue to a writer thread, which serialises them (cutting values
//! at STANDARD level), appends and flushes whenever the queue runs dry. A
//! log that cannot be opened or written never fails the run: the fault is
//! reported once and every record lost is counted ([`EventLogStats`]).

mod level;
mod record;
mod truncate;

pub use level::LogLevel;

/// The event types of notes: records of what a task did that are not
/// events it emitted (Flink Agents' names for memory writes).
pub const NOTE_TYPES: [&str; 3] = [
    "_short_term_write_event",
    "_sensory_write_event",
    "_denial_event",
];
pub use record::EventLogStats;
pub use truncate::Truncation;

use crate::event::Event;
use level::Levels;
use record::{Entry, EventEntry, Execution, Logged, Stats};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::time::{Duration, Instant, SystemTime};

pub(crate) use record::{ExecutionOutcome, ExecutionRecord, Record, What};

/// What the event log keeps: the default level, per-type levels and the
/// STANDARD level's cuts (a manifest's `[event_log]`, with Flink Agents'
/// `event-log.*` options' meanings).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventLogSettings {
    /// The level of event types no entry of `types` covers (default
    /// STANDARD).
    pub level: LogLevel,
    /// Levels by event type or dotted prefix: `com.acme.order.Created` takes
    /// the level of `com.acme.order.Created`, else `com.acme.order`, ...,
    /// else `level`.
    pub types: BTreeMap<String, LogLevel>,
    /// What STANDARD keeps of long strings, big arrays and deep values.
    pub standard: Truncation,
}

/// Records queued for the writer at most; past that, records are dropped
/// and counted rather than holding up the run.
const QUEUE: usize = 16_384;

/// An open event log. Cheap to share; [`EventLog::close`] (or dropping the
/// last handle) writes what is queued and stops the writer.
pub struct EventLog {
    agent: Arc<str>,
    levels: Levels,
    truncation: Truncation,
    path: PathBuf,
    sink: Sink,
    writer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EventLog {
    /// Opens the event log of agent `agent` at `path`: a directory (one that
    /// exists, or a path ending in `/`) gets a new file
    /// `events-AGENT-TIME-PID.log`; anything else is a file appended to.
    /// Never fails: a log that cannot be opened is reported (a warning) and
    /// its records are counted as failed.
    pub fn open(path: &Path, settings: &EventLogSettings, agent: &str) -> EventLog {
        let mut log = EventLog {
            agent: Arc::from(agent),
            levels: Levels::new(settings.level, settings.types.clone()),
            truncation: settings.standard,
            path: path.to_path_buf(),
            sink: Sink::Lost,
            writer: std::sync::Mutex::new(None),
            stats: Arc::default(),
        };
        if !log.levels.any_on() {
            return log;
        }
        match open_file(path, agent) {
            Ok((file, path)) => {
                log.path = path;
                log.start_writer(std::io::BufWriter::with_capacity(64 << 10, file));
            }
            Err(e) => log.stats.fail_once(path, &e),
        }
        log
    }

    /// An event log that keeps no file: each record goes to `tap` as it is
    /// logged, as a [`Record`] that is written out (cut as the file's line
    /// would be) only when read. No thread, no serialising on the run's
    /// path: a tap keeps many records and reads few.
    pub(crate) fn tapped(settings: &EventLogSettings, agent: &str, tap: Arc<dyn Tap>) -> EventLog {
        EventLog {
            agent: Arc::from(agent),
            levels: Levels::new(settings.level, settings.types.clone()),
            truncation: settings.standard,
            path: PathBuf::from("<memory>"),
            sink: Sink::Tap(tap),
            writer: std::sync::Mutex::new(None),
            stats: Arc::default(),
        }
    }

    /// Starts the writer thread, writing to `out`.
    fn start_writer(&mut self, out: std::io::BufWriter<std::fs::File>) {
        let (queue, records) = std::sync::mpsc::sync_channel(QUEUE);
        let stats = self.stats.clone();
        let truncation = self.truncation;
        let path = self.path.clone();
        let writer = std::thread::Builder::new()
            .name("weir-event-log".into())
            .spawn(move || write_records(out, path, records, truncation, stats));
        match writer {
            Ok(writer) => {
                self.sink = Sink::Queue(queue);
                *self.writer.lock().expect("writer lock") = Some(writer);
            }
            Err(e) => self.stats.fail_once(&self.path, &e),
        }
    }

    /// Where records are written (the file made in a directory).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What was written, lost and cut so far.
    pub fn stats(&self) -> EventLogStats {
        self.stats.snapshot()
    }

    /// Waits until what is queued now is written (or failed). Blocks.
    pub fn flush(&self) {
        if let Sink::Queue(queue) = &self.sink {
            let (done, written) = std::sync::mpsc::sync_channel(1);
            if queue.send(Entry::Flush(done)).is_ok() {
                let _ = written.recv();
            }
        }
    }

    /// Writes what is queued and stops the writer; later records are
    /// counted as failed.
    pub fn close(&self) {
        if let Sink::Queue(queue) = &self.sink {
            let _ = queue.send(Entry::Close);
        }
        if let Some(writer) = self.writer.lock().expect("writer lock").take() {
            let _ = writer.join();
        }
    }

    /// Logs `event` of run `run` (the id of its input event); `recovered`
    /// marks a run re-done after a crash.
    pub(crate) fn event(&self, run: &Arc<str>, recovered: bool, event: &Event) {
        let level = self.levels.of(&event.event_type);
        if level == LogLevel::Off {
            return;
        }
        self.queue(Logged::Event(Arc::new(EventEntry {
            at: SystemTime::now(),
            level,
            agent: self.agent.clone(),
            run: run.clone(),
            recovered,
            event: event.clone(),
        })));
    }

    /// Logs the end of an execution of run `run` for `key`.
    pub(crate) fn execution(&self, run: &Arc<str>, key: &str, record: ExecutionRecord) {
        let level = self.levels.of(record.outcome.event_type());
        if level == LogLevel::Off {
            return;
        }
        self.queue(Logged::Execution(Arc::new(Execution {
            at: SystemTime::now(),
            level,
            agent: self.agent.clone(),
            run: run.clone(),
            key: key.to_string(),
            record,
        })));
    }

    fn queue(&self, logged: Logged) {
        match &self.sink {
            Sink::Queue(queue) => match queue.try_send(Entry::Logged(logged)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => self.stats.dropped(&self.path),
                Err(TrySendError::Disconnected(_)) => self.stats.failed(1),
            },
            Sink::Tap(tap) => {
                tap.record(Record {
                    logged,
                    truncation: self.truncation,
                });
                self.stats.written(1);
            }
            Sink::Lost => self.stats.failed(1),
        }
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.close();
    }
}

/// Opens the log's file: a new one in a directory, or the file at `path`
/// (appended to).
fn open_file(path: &Path, agent: &str) -> std::io::Result<(std::fs::File, PathBuf)> {
    let is_dir = path.is_dir() || path.as_os_str().to_string_lossy().ends_with('/');
    let file = if is_dir {
        std::fs::create_dir_all(path)?;
        let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let stamp: String = now.chars().filter(char::is_ascii_alphanumeric).collect();
        let agent: String = agent
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        path.join(format!("events-{agent}-{stamp}-{}.log", std::process::id()))
    } else {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        path.to_path_buf()
    };
    let opened = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)?;
    Ok((opened, file))
}

/// The writer polls its queue rather than sleeping in `recv`: a sender then
/// never has to wake it (a futex call per record, which was most of the
/// log's cost). It naps this long when the queue is empty, doubling up to
/// [`MAX_NAP`] while it stays empty.
const MIN_NAP: Duration = Duration::from_millis(1);
const MAX_NAP: Duration = Duration::from_millis(50);
/// Lines written to the file at the latest this long after they were
/// logged (sooner when 64 KiB are buffered, at a flush and at close).
const MAX_UNFLUSHED: Duration = Duration::from_millis(50);

/// What takes an in-memory log's records ([`EventLog::tapped`]); called
/// on the run's path, so it must be quick.
pub(crate) trait Tap: Send + Sync {
    fn record(&self, record: Record);
}

/// Where records go.
enum Sink {
    /// To the writer thread, for the file.
    Queue(SyncSender<Entry>),
    /// Straight to a tap.
    Tap(Arc<dyn Tap>),
    /// Nowhere: the file could not be opened (or nothing is logged).
    Lost,
}

/// The writer thread: serialises each record as a line, and writes the
/// lines out in batches.
fn write_records(
    mut out: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
    records: Receiver<Entry>,
    truncation: Truncation,
    stats: Arc<Stats>,
) {
    let mut line = Vec::with_capacity(1024);
    let mut unflushed = 0u64;
    let mut flushed_at = Instant::now();
    let mut nap = MIN_NAP;
    loop {
        match records.try_recv() {
            Ok(Entry::Close) | Err(TryRecvError::Disconnected) => break,
            Ok(Entry::Flush(done)) => {
                flush(&mut out, &mut unflushed, &path, &stats);
                let _ = done.send(());
            }
            Ok(Entry::Logged(logged)) => {
                nap = MIN_NAP;
                line.clear();
                if logged.write_line(&mut line, &truncation) {
                    stats.truncated();
                }
                line.push(b'\n');
                if unflushed == 0 {
                    flushed_at = Instant::now();
                }
                match out.write_all(&line) {
                    Ok(()) => unflushed += 1,
                    Err(e) => {
                        stats.fail_once(&path, &e);
                        stats.failed(1);
                    }
                }
            }
            Err(TryRecvError::Empty) => {
                if unflushed > 0 && flushed_at.elapsed() >= MAX_UNFLUSHED {
                    flush(&mut out, &mut unflushed, &path, &stats);
                }
                std::thread::sleep(nap);
                nap = (nap * 2).min(MAX_NAP);
            }
        }
    }
    flush(&mut out, &mut unflushed, &path, &stats);
}

/// Flushes the buffered lines; counts them written, or failed.
fn flush(
    out: &mut std::io::BufWriter<std::fs::File>,
    unflushed: &mut u64,
    path: &Path,
    stats: &Stats,
) {
    if *unflushed == 0 {
        return;
    }
    match out.flush() {
        Ok(()) => stats.written(*unflushed),
        Err(e) => {
            stats.fail_once(path, &e);
            stats.failed(*unflushed);
        }
    }
    *unflushed = 0;
}

/// Where a task's host calls are logged: the run, the key and the action
/// execution they are part of.
pub(crate) struct Scope {
    pub log: Arc<EventLog>,
    pub run: Arc<str>,
    pub key: String,
    /// The action's execution id (`EVENT/ACTION`).
    pub execution: String,
    /// The action.
    pub action: String,
    /// The event the action handles.
    pub event_id: String,
    /// Notes logged so far.
    pub notes: std::sync::atomic::AtomicU64,
}

impl Scope {
    /// Logs a note of the task (a memory write, a denial) as a record of
    /// its own: `event_type` with `details` as its payload.
    pub(crate) fn note(&self, event_type: &str, details: serde_json::Value) {
        let n = self
            .notes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let note = Event {
            id: format!("{}/note{n}", self.execution),
            event_type: event_type.to_string(),
            key: self.key.clone(),
            payload: details,
            upstream_id: Some(self.event_id.clone()),
            upstream_action: Some(self.action.clone()),
            attributes: BTreeMap::new(),
        };
        self.log.event(&self.run, false, &note);
    }

    /// Logs host call number `index` of the task as it ended.
    pub(crate) fn call(&self, index: u64, call: CallRecord) {
        self.log.execution(
            &self.run,
            &self.key,
            ExecutionRecord {
                id: format!("{}/{index}", self.execution),
                parent: Some(self.execution.clone()),
                entity_type: call.entity_type,
                entity_name: call.entity_name,
                metadata: call.metadata,
                event_id: Some(self.event_id.clone()),
                upstream_action: None,
                duration: call.duration,
                outcome: call.outcome,
                attributes: call.attributes,
            },
        );
    }
}

/// A host call (to a model, a tool) as it ended.
pub(crate) struct CallRecord {
    /// `llm`, `embedding` or `tool`.
    pub entity_type: &'static str,
    /// The model resource or tool.
    pub entity_name: String,
    pub duration: std::time::Duration,
    pub outcome: ExecutionOutcome,
    /// What identifies it further (the model that answered).
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// More about it (token usage).
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Records(std::sync::Mutex<Vec<Record>>);

    impl Tap for Records {
        fn record(&self, record: Record) {
            self.0.lock().unwrap().push(record);
        }
    }

    #[test]
    fn a_tapped_log_hands_each_record_over_cut_as_a_file_would_keep_it() {
        let records = Arc::new(Records::default());
        let log = EventLog::tapped(&EventLogSettings::default(), "a", records.clone());
        let run: Arc<str> = Arc::from("in");
        let long = "x".repeat(3000);
        log.event(&run, false, &Event::input("k", serde_json::json!(long)));
        let kept = records.0.lock().unwrap().clone();
        assert_eq!(kept.len(), 1);
        let head = kept[0].head();
        assert_eq!((head.run, head.key), ("in", "k"));
        assert!(matches!(
            head.what,
            What::Event {
                event_type: "_input_event",
                upstream: None
            }
        ));
        assert!(kept[0].size() > 3000, "the whole payload is held");
        let record = kept[0].to_value();
        assert_eq!(record["inputRunId"], "in");
        assert_eq!(record["payload"]["omittedChars"], 1000, "{record}");
        // The same line as the file's.
        let mut line = Vec::new();
        assert!(kept[0].logged.write_line(&mut line, &kept[0].truncation));
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&line).unwrap(),
            record
        );
        assert_eq!(log.stats().written, 1);
        log.close();
    }
}
