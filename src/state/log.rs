//! The journal's file: an append-only log of checksummed frames.
//!
//! A frame is one group commit: `magic | length | crc32 | ops`, written with
//! one `write` and made durable with one `fdatasync`. The writer syncs each
//! frame before it writes the next, so a crash can only tear the last one;
//! reading stops at the first frame that is short or fails its checksum,
//! and that tail is cut off. A bad frame *followed by a good one* cannot come
//! from a crash (the good one was written after the bad one was synced): that
//! file is damaged, and refused.
//!
//! Superseded records (a key's older memory, pruned call records, delivered
//! outputs) stay in the log until it is rewritten: once it has grown to twice
//! the size of what is live (and at least [`REWRITE_MIN`]), a thread writes
//! the live state to a new file while appends go on; the frames appended
//! meanwhile are copied after it, and it is synced and renamed over the old
//! one. The file is bounded by the live state, not by the events taken.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// The journal file in a state directory.
pub(super) const FILE: &str = "journal.log";
/// A rewrite in progress (removed when found: the rename never happened).
const REWRITING: &str = "journal.log.new";
const MAGIC: [u8; 4] = *b"WJL\x01";
const HEADER: usize = 12;
/// The log is not rewritten before it reaches this size.
pub(super) const REWRITE_MIN: u64 = 16 << 20;
/// A rewrite splits the live state into frames of about this size.
const REWRITE_FRAME: usize = 4 << 20;

const META: u8 = 1;
const KEY: u8 = 2;
const OUTPUT: u8 = 3;
const RUN_DONE: u8 = 4;
const CALL: u8 = 5;
const RESUME: u8 = 6;
const DELIVERED: u8 = 7;

/// Ops encoded into one frame (a buffer reused from frame to frame).
pub(super) struct Frame {
    buf: Vec<u8>,
}

impl Default for Frame {
    fn default() -> Self {
        Frame {
            buf: vec![0; HEADER],
        }
    }
}

impl Frame {
    pub(super) fn is_empty(&self) -> bool {
        self.buf.len() == HEADER
    }

    /// The frame's size once sealed.
    pub(super) fn len(&self) -> usize {
        self.buf.len()
    }

    fn clear(&mut self) {
        self.buf.truncate(HEADER);
    }

    fn field(&mut self, bytes: &[u8]) {
        self.buf
            .extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(bytes);
    }

    /// Which agent wrote the journal, and in what format.
    pub(super) fn meta(&mut self, format: &str, agent: &str) {
        self.buf.push(META);
        self.field(format.as_bytes());
        self.field(agent.as_bytes());
    }

    /// `key` has handled input `seq`; its memory (JSON) is now `memory`.
    pub(super) fn key(&mut self, key: &str, seq: u64, memory: &[u8]) {
        self.buf.push(KEY);
        self.field(key.as_bytes());
        self.buf.extend_from_slice(&seq.to_le_bytes());
        self.field(memory);
    }

    /// Output `id` joins the outbox at `order` (its place in commit order).
    pub(super) fn output(&mut self, id: &str, order: &str, event: &[u8]) {
        self.buf.push(OUTPUT);
        self.field(id.as_bytes());
        self.field(order.as_bytes());
        self.field(event);
    }

    /// As [`Frame::output`], serialising `event` straight into the frame.
    pub(super) fn output_event(&mut self, id: &str, order: &str, event: &impl serde::Serialize) {
        self.buf.push(OUTPUT);
        self.field(id.as_bytes());
        self.field(order.as_bytes());
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        serde_json::to_writer(&mut self.buf, event).expect("events serialise");
        let len = (self.buf.len() - at - 4) as u32;
        self.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }

    /// Run `run` is committed: its call records go.
    pub(super) fn run_done(&mut self, run: &str) {
        self.buf.push(RUN_DONE);
        self.field(run.as_bytes());
    }

    /// Host call record `id`.
    pub(super) fn call(&mut self, id: &str, record: &[u8]) {
        self.buf.push(CALL);
        self.field(id.as_bytes());
        self.field(record);
    }

    /// The input's resume point (JSON).
    pub(super) fn resume(&mut self, point: &[u8]) {
        self.buf.push(RESUME);
        self.field(point);
    }

    /// The sink has output `id`.
    pub(super) fn delivered(&mut self, id: &str) {
        self.buf.push(DELIVERED);
        self.field(id.as_bytes());
    }

    /// Fills in the header; the frame's bytes.
    fn seal(&mut self) -> &[u8] {
        let payload = &self.buf[HEADER..];
        let len = payload.len() as u32;
        let crc = crc32fast::hash(payload);
        self.buf[0..4].copy_from_slice(&MAGIC);
        self.buf[4..8].copy_from_slice(&len.to_le_bytes());
        self.buf[8..12].copy_from_slice(&crc.to_le_bytes());
        &self.buf
    }
}

/// What is live in a journal: the state its frames add up to.
#[derive(Debug, Default)]
pub(super) struct Image {
    /// `(format, agent)`, from the first frame.
    pub meta: Option<(String, String)>,
    /// key -> (sequence number of its last committed input, memory JSON).
    pub keys: BTreeMap<String, (u64, Vec<u8>)>,
    /// "{run}/{event}/{action}/{index}" -> call record (JSON).
    pub calls: BTreeMap<String, Vec<u8>>,
    /// output id -> (its place in commit order, the event as JSON).
    pub outbox: HashMap<String, (String, Vec<u8>)>,
    /// The resume point (JSON).
    pub resume: Option<Vec<u8>>,
}

impl Image {
    /// Applies one frame's ops; an error says what in it does not parse.
    fn apply(&mut self, payload: &[u8]) -> Result<(), String> {
        let mut ops = Ops { rest: payload };
        while let Some(tag) = ops.tag() {
            match tag {
                META => {
                    let format = ops.text()?;
                    let agent = ops.text()?;
                    self.meta = Some((format, agent));
                }
                KEY => {
                    let key = ops.text()?;
                    let seq = ops.u64()?;
                    let memory = ops.field()?.to_vec();
                    self.keys.insert(key, (seq, memory));
                }
                OUTPUT => {
                    let id = ops.text()?;
                    let order = ops.text()?;
                    let event = ops.field()?.to_vec();
                    self.outbox.insert(id, (order, event));
                }
                RUN_DONE => {
                    let run = ops.text()?;
                    let prefix = format!("{run}/");
                    let doomed: Vec<String> = self
                        .calls
                        .range(prefix.clone()..)
                        .take_while(|(id, _)| id.starts_with(&prefix))
                        .map(|(id, _)| id.clone())
                        .collect();
                    for id in doomed {
                        self.calls.remove(&id);
                    }
                }
                CALL => {
                    let id = ops.text()?;
                    let record = ops.field()?.to_vec();
                    self.calls.insert(id, record);
                }
                RESUME => self.resume = Some(ops.field()?.to_vec()),
                DELIVERED => {
                    let id = ops.field()?;
                    self.outbox
                        .remove(std::str::from_utf8(id).map_err(|e| e.to_string())?);
                }
                other => return Err(format!("an op of unknown kind {other}")),
            }
        }
        Ok(())
    }

    /// Encodes the live state, the meta record first, into one frame
    /// buffer reused from frame to frame: `full` gets each frame (of about
    /// [`REWRITE_FRAME`]) as it fills, so the state is never copied whole.
    fn encode<E>(&self, mut full: impl FnMut(&mut Frame) -> Result<(), E>) -> Result<(), E> {
        let mut frame = Frame::default();
        let mut next = |frame: &mut Frame| -> Result<(), E> {
            if frame.len() >= REWRITE_FRAME {
                full(frame)?;
                frame.clear();
            }
            Ok(())
        };
        if let Some((format, agent)) = &self.meta {
            frame.meta(format, agent);
        }
        for (key, (seq, memory)) in &self.keys {
            next(&mut frame)?;
            frame.key(key, *seq, memory);
        }
        for (id, record) in &self.calls {
            next(&mut frame)?;
            frame.call(id, record);
        }
        let mut outbox: Vec<_> = self.outbox.iter().collect();
        outbox.sort_by(|a, b| a.1.0.cmp(&b.1.0));
        for (id, (order, event)) in outbox {
            next(&mut frame)?;
            frame.output(id, order, event);
        }
        if let Some(point) = &self.resume {
            next(&mut frame)?;
            frame.resume(point);
        }
        if !frame.is_empty() {
            full(&mut frame)?;
        }
        Ok(())
    }

    /// The bytes the live state takes as a log.
    pub(super) fn live_bytes(&self) -> u64 {
        let mut bytes = 0;
        let counted: Result<(), std::convert::Infallible> = self.encode(|frame| {
            bytes += frame.len() as u64;
            Ok(())
        });
        let Ok(()) = counted;
        bytes
    }
}

/// Reads the fields of a frame's ops.
struct Ops<'a> {
    rest: &'a [u8],
}

impl<'a> Ops<'a> {
    fn tag(&mut self) -> Option<u8> {
        let (&tag, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(tag)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.rest.len() < n {
            return Err("an op cut short".into());
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    fn u64(&mut self) -> Result<u64, String> {
        let bytes = self.take(8)?;
        Ok(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    fn field(&mut self) -> Result<&'a [u8], String> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"));
        self.take(len as usize)
    }

    fn text(&mut self) -> Result<String, String> {
        let bytes = self.field()?;
        String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
    }
}

/// Why a log could not be read.
#[derive(Debug)]
pub(super) enum ReadError {
    Io(io::Error),
    /// Damage a crash cannot explain, at this byte offset.
    Damaged {
        at: u64,
        why: String,
    },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Damaged { at, why } => write!(
                f,
                "the journal is damaged at byte {at} ({why}), which a crash does not leave; move it aside to start over"
            ),
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// A log as read: its live state, and where its whole frames end.
#[derive(Debug)]
pub(super) struct Loaded {
    pub image: Image,
    /// The bytes of whole frames; past this is a torn tail.
    pub whole: u64,
    /// The file's length.
    pub len: u64,
}

/// Reads the log at `path` (an empty image if there is none).
pub(super) fn read(path: &Path) -> Result<Loaded, ReadError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Loaded {
                image: Image::default(),
                whole: 0,
                len: 0,
            });
        }
        Err(e) => return Err(e.into()),
    };
    let len = file.metadata()?.len();
    read_frames(file, len)
}

/// Reads the first `len` bytes of the log at `path`, which the caller knows
/// to be whole frames.
fn read_prefix(path: &Path, len: u64) -> Result<Loaded, ReadError> {
    read_frames(File::open(path)?, len)
}

fn read_frames(file: File, len: u64) -> Result<Loaded, ReadError> {
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut image = Image::default();
    let mut whole = 0u64;
    let mut payload = Vec::new();
    loop {
        match next_frame(&mut reader, len - whole, &mut payload)? {
            Some(()) => {
                image
                    .apply(&payload)
                    .map_err(|why| ReadError::Damaged { at: whole, why })?;
                whole += (HEADER + payload.len()) as u64;
            }
            None if whole == len => break,
            None => {
                // A short or failing frame: the torn tail of a crash, unless
                // a whole frame follows it. Past its own end, when its header
                // says where that is: its payload (event keys and ids are
                // raw bytes) may hold anything, a frame's bytes included.
                let mut rest = Vec::new();
                reader.seek(SeekFrom::Start(whole))?;
                reader.read_to_end(&mut rest)?;
                let skip = rest
                    .get(..HEADER)
                    .and_then(parse_header)
                    .map(|(len, _)| HEADER + len as usize)
                    .filter(|&end| end <= rest.len())
                    .unwrap_or(1.min(rest.len()));
                if let Some(at) = whole_frame_within(&rest[skip..]) {
                    return Err(ReadError::Damaged {
                        at: whole,
                        why: format!(
                            "a frame that fails its checksum, followed by a whole frame at byte {}",
                            whole + (skip + at) as u64
                        ),
                    });
                }
                break;
            }
        }
    }
    Ok(Loaded { image, whole, len })
}

/// Reads the next frame's payload into `payload`; `None` if it is short or
/// fails its checksum. `left` is what the file holds from here.
fn next_frame(
    reader: &mut impl Read,
    left: u64,
    payload: &mut Vec<u8>,
) -> Result<Option<()>, ReadError> {
    if left < HEADER as u64 {
        return Ok(None);
    }
    let mut header = [0u8; HEADER];
    reader.read_exact(&mut header)?;
    let (len, crc) = match parse_header(&header) {
        Some(found) => found,
        None => return Ok(None),
    };
    if len as u64 > left - HEADER as u64 {
        return Ok(None);
    }
    payload.resize(len as usize, 0);
    reader.read_exact(payload)?;
    Ok((crc32fast::hash(payload) == crc).then_some(()))
}

fn parse_header(header: &[u8]) -> Option<(u32, u32)> {
    if header[..4] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    Some((len, crc))
}

/// The offset of the first whole frame in `bytes`, if any.
fn whole_frame_within(bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = find(&bytes[from..], &MAGIC) {
        let at = from + found;
        if let Some((len, crc)) = bytes.get(at..at + HEADER).and_then(parse_header)
            && let Some(payload) = bytes.get(at + HEADER..at + HEADER + len as usize)
            && crc32fast::hash(payload) == crc
        {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The open log: appends frames, each synced, and rewrites itself when
/// mostly superseded.
pub(super) struct Log {
    file: File,
    path: PathBuf,
    len: u64,
    rewrite_at: u64,
    frame: Frame,
    /// A rewrite under way on another thread: how much of the log it
    /// covers, and the thread.
    rewriting: Option<(u64, RewriteThread)>,
}

/// Writes the new file of a rewrite; returns it and its length.
type RewriteThread = JoinHandle<io::Result<(File, u64)>>;

/// Opens the log file in `dir` for appending, locked against other
/// processes, cutting off a torn tail (`whole` of `len` bytes are whole).
pub(super) fn open(dir: &Path, loaded: &Loaded) -> io::Result<Log> {
    let path = dir.join(FILE);
    let created = !path.exists();
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(&path)?;
    lock(&file)?;
    let _ = std::fs::remove_file(dir.join(REWRITING));
    if created {
        // The new file's name must survive a crash too.
        File::open(dir)?.sync_all()?;
    }
    if loaded.whole < loaded.len {
        file.set_len(loaded.whole)?;
        file.sync_all()?;
    }
    let live = loaded.image.live_bytes();
    Ok(Log {
        file,
        path,
        len: loaded.whole,
        rewrite_at: rewrite_threshold(live),
        frame: Frame::default(),
        rewriting: None,
    })
}

/// Locks `file` for this process (errors say so without naming the file:
/// callers do).
fn lock(file: &File) -> io::Result<()> {
    file.try_lock().map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => io::Error::new(
            io::ErrorKind::ResourceBusy,
            "in use by another weir process (one run per state directory)",
        ),
        std::fs::TryLockError::Error(e) => e,
    })
}

fn rewrite_threshold(live: u64) -> u64 {
    REWRITE_MIN.max(live.saturating_mul(2))
}

impl Log {
    /// The frame the next [`Log::append`] writes.
    pub(super) fn frame(&mut self) -> &mut Frame {
        &mut self.frame
    }

    /// Writes the frame and waits until it is on disk.
    pub(super) fn append(&mut self) -> io::Result<()> {
        if self.frame.is_empty() {
            return Ok(());
        }
        let bytes = self.frame.seal();
        let n = bytes.len() as u64;
        let written = self
            .file
            .write_all(bytes)
            .and_then(|()| self.file.sync_data());
        self.frame.clear();
        written?;
        self.len += n;
        Ok(())
    }

    /// The log file.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Rewrites the log to its live state once it is mostly superseded,
    /// on another thread: appends go on meanwhile, and whatever they added
    /// is copied over when the new file is ready. Returns the sizes before
    /// and after a rewrite that finished. One that fails before its rename
    /// leaves the log as it was (tried again after as much growth); an
    /// error means the log can no longer be written.
    pub(super) fn rewrite_when_due(&mut self) -> io::Result<Option<(u64, u64)>> {
        let finished = self
            .rewriting
            .as_ref()
            .is_some_and(|(_, thread)| thread.is_finished());
        if finished {
            let before = self.len;
            return match self.finish_rewrite() {
                Ok(after) => Ok(Some((before, after))),
                Err(Rewrite::NotDone(e)) => {
                    tracing::warn!(journal = %self.path.display(), error = %e, "could not rewrite the journal; it goes on growing");
                    self.rewrite_at = self.len.saturating_mul(2);
                    Ok(None)
                }
                Err(Rewrite::Failed(e)) => Err(e),
            };
        }
        if self.rewriting.is_none() && self.len >= self.rewrite_at {
            self.start_rewrite();
        }
        Ok(None)
    }

    /// Rewrites the log to its live state now. Returns the new length.
    pub(super) fn rewrite(&mut self) -> Result<u64, Rewrite> {
        if self.rewriting.is_none() {
            self.start_rewrite();
        }
        self.finish_rewrite()
    }

    /// Starts writing the live state of the log as it is now (all synced,
    /// whole frames) to a new file.
    fn start_rewrite(&mut self) {
        let (path, covered) = (self.path.clone(), self.len);
        let new = self.rewriting_path();
        let thread = std::thread::spawn(move || {
            let loaded =
                read_prefix(&path, covered).map_err(|e| io::Error::other(e.to_string()))?;
            write_new(&new, &loaded.image)
        });
        self.rewriting = Some((covered, thread));
    }

    /// Waits for the rewrite under way, copies what was appended since it
    /// started, and renames the new file over the log.
    fn finish_rewrite(&mut self) -> Result<u64, Rewrite> {
        let (covered, thread) = self.rewriting.take().expect("a rewrite under way");
        let new = self.rewriting_path();
        let not_done = |e: io::Error| {
            let _ = std::fs::remove_file(&new);
            Rewrite::NotDone(e)
        };
        let written = thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the rewrite thread panicked")));
        let (mut file, mut len) = written.map_err(not_done)?;
        let appended = copy_range(&self.file, covered, self.len, &mut file)
            .and_then(|n| file.sync_data().map(|()| n))
            .map_err(not_done)?;
        len += appended;
        std::fs::rename(&new, &self.path).map_err(not_done)?;
        // The new file is the log now, whatever happens next.
        self.file = file;
        self.len = len;
        self.rewrite_at = rewrite_threshold(len);
        let dir = self.path.parent().unwrap_or(Path::new("."));
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(Rewrite::Failed)?;
        Ok(len)
    }

    fn rewriting_path(&self) -> PathBuf {
        self.path.with_file_name(REWRITING)
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        // A rewrite the log will not finish: let it end, and drop its file.
        if let Some((_, thread)) = self.rewriting.take() {
            let _ = thread.join();
            let _ = std::fs::remove_file(self.rewriting_path());
        }
    }
}

/// Appends bytes `from..to` of `source` to `target`; returns how many.
fn copy_range(mut source: &File, from: u64, to: u64, target: &mut File) -> io::Result<u64> {
    // Appends go to the end whatever the position, so reading may move it.
    source.seek(SeekFrom::Start(from))?;
    let copied = io::copy(&mut source.take(to - from), target)?;
    if copied < to - from {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(copied)
}

/// Why a rewrite did not happen.
#[derive(Debug)]
pub(super) enum Rewrite {
    /// It failed before the rename: the log is as it was.
    NotDone(io::Error),
    /// It failed after: the log cannot be trusted to be on disk.
    Failed(io::Error),
}

impl std::fmt::Display for Rewrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rewrite::NotDone(e) | Rewrite::Failed(e) => write!(f, "{e}"),
        }
    }
}

/// Writes `image` as a log at `path`, synced and locked; the file, open for
/// appending, and its length.
fn write_new(path: &Path, image: &Image) -> io::Result<(File, u64)> {
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    lock(&file)?;
    file.set_len(0)?;
    let mut len = 0u64;
    image.encode(|frame| {
        let bytes = frame.seal();
        len += bytes.len() as u64;
        file.write_all(bytes)
    })?;
    file.sync_all()?;
    Ok((file, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_empty(dir: &Path) -> Log {
        let loaded = read(&dir.join(FILE)).unwrap();
        open(dir, &loaded).unwrap()
    }

    #[test]
    fn frames_add_up_to_the_live_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open_empty(dir.path());
        log.frame().meta("f", "a");
        log.frame().call("r1/e/a/0", b"call");
        log.frame().call("r10/e/a/0", b"other run");
        log.frame().key("k", 1, b"{}");
        log.frame().output("o1", "k\u{1}1", b"{\"x\":1}");
        log.append().unwrap();
        log.frame().key("k", 2, b"{\"n\":2}");
        log.frame().run_done("r1");
        log.frame().delivered("o1");
        log.frame().output("o2", "k\u{1}2", b"{}");
        log.frame().resume(b"{\"seq\":3}");
        log.append().unwrap();
        let image = read(&dir.path().join(FILE)).unwrap().image;
        assert_eq!(image.meta, Some(("f".into(), "a".into())));
        assert_eq!(image.keys["k"], (2, b"{\"n\":2}".to_vec()));
        assert_eq!(image.calls.keys().collect::<Vec<_>>(), ["r10/e/a/0"]);
        assert_eq!(image.outbox.keys().collect::<Vec<_>>(), ["o2"]);
        assert_eq!(image.resume.as_deref(), Some(&b"{\"seq\":3}"[..]));
    }

    #[test]
    fn the_log_rewrites_itself_to_its_live_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let mut log = open_empty(dir.path());
        log.frame().meta("f", "a");
        log.append().unwrap();
        let memory = vec![b'x'; 16 << 10];
        let mut rewrites = 0;
        for seq in 0..3_000u64 {
            log.frame().key(&format!("k{}", seq % 10), seq, &memory);
            log.append().unwrap();
            if log.rewrite_when_due().unwrap().is_some() {
                rewrites += 1;
            }
            // Appends go on while a rewrite runs.
            assert!(
                log.len < REWRITE_MIN + (4 << 20),
                "the log outgrew its bound"
            );
        }
        assert!(rewrites >= 2, "{rewrites} rewrites");
        drop(log);
        let loaded = read(&path).unwrap();
        assert_eq!(loaded.len, std::fs::metadata(&path).unwrap().len());
        assert_eq!(loaded.whole, loaded.len);
        assert_eq!(loaded.image.keys.len(), 10);
        assert_eq!(loaded.image.keys["k9"].0, 2_999);
        assert_eq!(loaded.image.meta, Some(("f".into(), "a".into())));
        assert!(!dir.path().join(REWRITING).exists());
    }

    #[test]
    fn appends_during_a_rewrite_are_carried_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let mut log = open_empty(dir.path());
        log.frame().meta("f", "a");
        for seq in 0..1000u64 {
            log.frame().key(&format!("k{}", seq % 10), seq, b"{}");
        }
        log.append().unwrap();
        log.start_rewrite();
        log.frame().key("late", 1, b"{}");
        log.frame().key("k0", 5000, b"{\"n\":1}");
        log.append().unwrap();
        let len = log.rewrite().unwrap();
        log.frame().key("later", 2, b"{}");
        log.append().unwrap();
        drop(log);
        let loaded = read(&path).unwrap();
        assert_eq!(loaded.whole, loaded.len);
        assert!(loaded.len > len);
        let image = loaded.image;
        assert_eq!(image.keys.len(), 12);
        assert_eq!(image.keys["k0"], (5000, b"{\"n\":1}".to_vec()));
        assert_eq!(image.keys["k9"].0, 999);
        assert_eq!((image.keys["late"].0, image.keys["later"].0), (1, 2));
        assert!(!dir.path().join(REWRITING).exists());
    }

    #[test]
    fn a_rewrite_cut_short_by_a_crash_leaves_the_log_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let mut log = open_empty(dir.path());
        log.frame().meta("f", "a");
        log.frame().key("k", 7, b"{}");
        log.append().unwrap();
        drop(log);
        // The half-written new file a crash before the rename leaves.
        std::fs::write(dir.path().join(REWRITING), MAGIC).unwrap();
        let loaded = read(&path).unwrap();
        let log = open(dir.path(), &loaded).unwrap();
        assert!(!dir.path().join(REWRITING).exists());
        assert_eq!(loaded.image.keys["k"].0, 7);
        assert_eq!(log.len, loaded.len);
    }

    #[test]
    fn a_frame_inside_a_torn_frame_is_not_taken_for_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let mut log = open_empty(dir.path());
        log.frame().meta("f", "a");
        log.append().unwrap();
        // A record whose bytes hold a whole frame of their own.
        let mut inner = Frame::default();
        inner.key("k", 9, b"{}");
        let inner = inner.seal().to_vec();
        log.frame().key("outer", 1, &inner);
        log.append().unwrap();
        drop(log);
        // The crash left the last frame whole but for its last byte.
        let mut bytes = std::fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let loaded = read(&path).unwrap();
        assert!(loaded.whole < loaded.len, "the torn frame is cut off");
        assert!(loaded.image.keys.is_empty());
    }
}
