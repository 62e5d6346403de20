//! The journal's file: an append-only log of checksummed, numbered frames.
//!
//! A frame is one group commit: `magic | number | length | crc32 of the
//! ops | crc32 of the header | ops`, written with one `write` and made
//! durable with one `fdatasync`. Frames are numbered from 0, one after the
//! other, and the header has a checksum of its own, so a length or number
//! changed on disk is caught before it is trusted.
//!
//! The writer syncs each frame before it writes the next, so a crash can
//! only tear the last one, and a torn frame looks like one of two things:
//! a whole header whose frame is shorter than it says, or fails its
//! checksum and ends exactly at the end of the file; or a header that is
//! not whole (cut short or never written: zeros), with no whole frame of a
//! later number anywhere after it. Frames a rewrite writes are marked
//! whole (their file is synced before it is named), and are never taken
//! for torn. Anything else (a frame out of order,
//! a failing frame with bytes after it, a later frame past a broken
//! header) cannot come from a crash: the file is damaged, and refused
//! untouched. A file that does not start like a journal is never written.
//! The magic holds bytes no UTF-8 text has, and only text (keys, JSON) is
//! stored raw, so a frame cannot be smuggled inside a record.
//!
//! Superseded records (a key's older memory, pruned call records, delivered
//! outputs) stay in the log until it is rewritten: once it has grown to twice
//! the size of what is live (and at least [`REWRITE_MIN`]), a thread writes
//! the live state to a new file while appends go on; the frames appended
//! meanwhile are copied after it (renumbered), and it is synced and renamed
//! over the old one. The file is bounded by the live state, not by the
//! events taken.

use super::own_file;
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// The journal file in a state directory.
pub(super) const FILE: &str = "journal.log";
/// A rewrite in progress (removed when found: the rename never happened).
const REWRITING: &str = "journal.log.new";
/// 0xff never occurs in UTF-8, and a length or number would have to pass
/// 1 GiB (or a billion) to spell it with the bytes after it.
const MAGIC: [u8; 4] = [0xff, b'W', b'J', b'L'];
/// The magic of `weir-journal-3`, whose frames were not numbered.
const OLD_MAGIC: [u8; 4] = *b"WJL\x01";
/// magic, number (u64), length (u32), crc32 of the ops, crc32 of the rest
/// of the header.
const HEADER: usize = 24;
/// A torn first frame is no larger than this (it holds the meta record).
const FIRST_FRAME_MAX: u64 = 4096;
/// The bit of a frame's number that marks it as written with its file
/// (by a rewrite, synced before the file was named): it cannot be torn.
const WHOLE: u64 = 1 << 63;
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
const ACCEPTED: u8 = 8;
const INPUT_DONE: u8 = 9;
const FORGOTTEN: u8 = 10;
const NUMBERED: u8 = 11;

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

    /// A field holding `value` as JSON, serialised straight into the frame
    /// (its length filled in after).
    fn json_field(&mut self, value: &impl serde::Serialize) {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        serde_json::to_writer(&mut self.buf, value).expect("events serialise");
        let len = (self.buf.len() - at - 4) as u32;
        self.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
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

    /// Output `id` joins the outbox as number `order` (its place in commit
    /// order, from 1; older journals wrote a string of key and sequence
    /// number here).
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
        self.json_field(event);
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

    /// Input `seq` (event `id` of `key`, whose content has `digest`) was
    /// accepted; `event` is it as JSON while it waits to run, empty once it
    /// ran.
    pub(super) fn accepted(&mut self, seq: u64, id: &str, key: &str, digest: u64, event: &[u8]) {
        self.accepted_head(seq, id, key, digest);
        self.field(event);
    }

    fn accepted_head(&mut self, seq: u64, id: &str, key: &str, digest: u64) {
        self.buf.push(ACCEPTED);
        self.buf.extend_from_slice(&seq.to_le_bytes());
        self.field(id.as_bytes());
        self.field(key.as_bytes());
        self.buf.extend_from_slice(&digest.to_le_bytes());
    }

    /// As [`Frame::accepted`], serialising `event` straight into the frame.
    pub(super) fn accepted_event(&mut self, seq: u64, digest: u64, event: &crate::Event) {
        self.accepted_head(seq, &event.id, &event.key, digest);
        self.json_field(event);
    }

    /// Accepted input `seq` ran; its outputs are numbers `first..first +
    /// count`.
    pub(super) fn input_done(&mut self, seq: u64, first: u64, count: u64) {
        self.buf.push(INPUT_DONE);
        for n in [seq, first, count] {
            self.buf.extend_from_slice(&n.to_le_bytes());
        }
    }

    /// Accepted input `seq` is no longer remembered.
    pub(super) fn forgotten(&mut self, seq: u64) {
        self.buf.push(FORGOTTEN);
        self.buf.extend_from_slice(&seq.to_le_bytes());
    }

    /// Outputs up to number `n` have been numbered (kept across rewrites,
    /// so numbers never repeat once the outbox is empty).
    pub(super) fn numbered(&mut self, n: u64) {
        self.buf.push(NUMBERED);
        self.buf.extend_from_slice(&n.to_le_bytes());
    }

    /// Fills in the header of frame number `seq`, marked `whole` if it is
    /// written with a file synced before it is named (a rewrite), which no
    /// crash can tear; the frame's bytes.
    fn seal(&mut self, seq: u64, whole: bool) -> io::Result<&[u8]> {
        let payload = &self.buf[HEADER..];
        let len = u32::try_from(payload.len()).map_err(|_| {
            io::Error::other(format!(
                "a group commit of {} bytes is over the journal's 4 GiB frame limit",
                payload.len()
            ))
        })?;
        let crc = crc32fast::hash(payload);
        self.buf[0..4].copy_from_slice(&MAGIC);
        let number = if whole { seq | WHOLE } else { seq };
        self.buf[4..12].copy_from_slice(&number.to_le_bytes());
        self.buf[12..16].copy_from_slice(&len.to_le_bytes());
        self.buf[16..20].copy_from_slice(&crc.to_le_bytes());
        let header_crc = crc32fast::hash(&self.buf[..20]);
        self.buf[20..24].copy_from_slice(&header_crc.to_le_bytes());
        Ok(&self.buf)
    }
}

/// A frame's header, its own checksum checked.
#[derive(Debug, Clone, Copy)]
struct Header {
    seq: u64,
    len: u32,
    crc: u32,
    /// Written with its file: damaged if not whole, never torn.
    whole: bool,
}

impl Header {
    /// The header at the start of `bytes`, if it is whole and intact.
    fn parse(bytes: &[u8]) -> Option<Header> {
        let bytes = bytes.get(..HEADER)?;
        let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        if bytes[..4] != MAGIC || crc32fast::hash(&bytes[..20]) != word(20) {
            return None;
        }
        let number = u64::from_le_bytes(bytes[4..12].try_into().expect("8 bytes"));
        Some(Header {
            seq: number & !WHOLE,
            len: word(12),
            crc: word(16),
            whole: number & WHOLE != 0,
        })
    }

    /// The frame's size, header included.
    fn frame_len(&self) -> u64 {
        HEADER as u64 + u64::from(self.len)
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
    /// Accepted inputs by sequence number: waiting to run, or ran and
    /// still remembered.
    pub accepted: BTreeMap<u64, Accepted>,
    /// The highest output number given.
    pub numbered: u64,
}

/// An accepted input as the journal keeps it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Accepted {
    pub id: String,
    pub key: String,
    /// A digest of its content (see `Event::content_digest`).
    pub digest: u64,
    /// The event (JSON) while it waits to run.
    pub event: Option<Vec<u8>>,
    /// Once it ran: its outputs' numbers, `(first, count)`.
    pub outputs: Option<(u64, u64)>,
}

/// The number in an outbox order written by this format.
pub(super) fn output_number(order: &str) -> Option<u64> {
    order.parse().ok()
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
                    if let Some(n) = output_number(&order) {
                        self.numbered = self.numbered.max(n);
                    }
                    self.outbox.insert(id, (order, event));
                }
                ACCEPTED => {
                    let seq = ops.u64()?;
                    let id = ops.text()?;
                    let key = ops.text()?;
                    let digest = ops.u64()?;
                    let event = ops.field()?;
                    let accepted = Accepted {
                        id,
                        key,
                        digest,
                        event: (!event.is_empty()).then(|| event.to_vec()),
                        outputs: None,
                    };
                    self.accepted.insert(seq, accepted);
                }
                INPUT_DONE => {
                    let seq = ops.u64()?;
                    let first = ops.u64()?;
                    let count = ops.u64()?;
                    if let Some(accepted) = self.accepted.get_mut(&seq) {
                        accepted.event = None;
                        accepted.outputs = Some((first, count));
                    }
                }
                FORGOTTEN => {
                    let seq = ops.u64()?;
                    self.accepted.remove(&seq);
                }
                NUMBERED => {
                    let n = ops.u64()?;
                    self.numbered = self.numbered.max(n);
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
        for (seq, accepted) in &self.accepted {
            next(&mut frame)?;
            let event = accepted.event.as_deref().unwrap_or_default();
            frame.accepted(*seq, &accepted.id, &accepted.key, accepted.digest, event);
            if let Some((first, count)) = accepted.outputs {
                frame.input_done(*seq, first, count);
            }
        }
        if self.numbered > 0 {
            frame.numbered(self.numbered);
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
    /// The file does not start like a journal: weir writes nothing to it.
    NotAJournal,
    /// A journal of `weir-journal-3`, whose frames were not numbered.
    OldFormat,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Damaged { at, why } => write!(
                f,
                "the journal is damaged at byte {at} ({why}), which a crash does not leave; move it aside to start over"
            ),
            ReadError::NotAJournal => f.write_str(
                "this is not a weir journal (it does not start with a journal frame), and weir writes nothing to it: \
                 move it aside, or use another --state directory",
            ),
            ReadError::OldFormat => f.write_str("a journal in format weir-journal-3"),
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
    /// The whole frames: the number of the next one.
    pub frames: u64,
}

/// Reads the log at `path` (an empty image if there is none).
pub(super) fn read(path: &Path) -> Result<Loaded, ReadError> {
    match own_file::open_to_read(path) {
        Ok(file) => {
            let len = file.metadata()?.len();
            read_frames(&file, len)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Loaded {
            image: Image::default(),
            whole: 0,
            len: 0,
            frames: 0,
        }),
        Err(e) => Err(e.into()),
    }
}

/// Reads the frames of the first `len` bytes of `file`, which a crash can
/// have torn only at the end.
fn read_frames(file: &File, len: u64) -> Result<Loaded, ReadError> {
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut image = Image::default();
    let (mut whole, mut seq) = (0u64, 0u64);
    let mut payload = Vec::new();
    while whole < len {
        let left = len - whole;
        let damaged = |why: String| ReadError::Damaged { at: whole, why };
        let mut bytes = [0u8; HEADER];
        let got = left.min(HEADER as u64) as usize;
        reader.read_exact(&mut bytes[..got])?;
        let Some(header) = Header::parse(&bytes[..got]) else {
            // Cut short or never written (a torn last frame), or damaged.
            if whole == 0 {
                first_frame_torn(len, &bytes[..got])?;
            }
            torn_tail(file, whole, len, seq)?;
            break;
        };
        if header.seq != seq {
            return Err(damaged(format!(
                "frame number {} where frame {seq} belongs",
                header.seq
            )));
        }
        let rewritten = || {
            damaged(format!(
                "frame {seq} is not whole, but was written with its file, which was synced before it was named"
            ))
        };
        if header.frame_len() > left {
            // Shorter than its header says: torn.
            if header.whole {
                return Err(rewritten());
            }
            torn_tail(file, whole, len, seq)?;
            break;
        }
        // Bounded by the file: the frame is within it.
        payload.resize(header.len as usize, 0);
        reader.read_exact(&mut payload)?;
        if crc32fast::hash(&payload) != header.crc {
            if header.frame_len() < left {
                return Err(damaged(format!(
                    "frame {seq} fails its checksum, and {} bytes follow it",
                    left - header.frame_len()
                )));
            }
            // The last frame, not all of it on disk: torn.
            if header.whole {
                return Err(rewritten());
            }
            torn_tail(file, whole, len, seq)?;
            break;
        }
        image.apply(&payload).map_err(damaged)?;
        if seq == 0 && image.meta.is_none() {
            return Err(damaged(
                "the first frame does not name the journal's format".into(),
            ));
        }
        whole += header.frame_len();
        seq += 1;
    }
    Ok(Loaded {
        image,
        whole,
        len,
        frames: seq,
    })
}

/// Refuses a file whose first frame is not whole unless it can be the
/// torn meta frame of a new journal (`start` is its first bytes, up to a
/// header's worth): small, with the magic written or zeros.
fn first_frame_torn(len: u64, start: &[u8]) -> Result<(), ReadError> {
    if start.starts_with(&OLD_MAGIC) {
        return Err(ReadError::OldFormat);
    }
    let magic_or_zeros = start
        .iter()
        .zip(MAGIC)
        .all(|(&byte, magic)| byte == magic || byte == 0);
    if len > FIRST_FRAME_MAX || !magic_or_zeros {
        return Err(ReadError::NotAJournal);
    }
    Ok(())
}

/// Checks that frame `seq` at `at`, which is not whole, is a torn last
/// frame: no whole frame numbered after it starts anywhere past its first
/// byte (one written after it means it was synced once: damage). A later
/// number is at most one per header's worth of bytes that follow; a
/// record cannot hold a frame (see [`MAGIC`]).
fn torn_tail(file: &File, at: u64, len: u64, seq: u64) -> Result<(), ReadError> {
    let latest = seq.saturating_add(1 + (len - at) / HEADER as u64);
    match whole_frame_after(file, at + 1, len, seq + 1..=latest)? {
        Some((found, header)) => Err(ReadError::Damaged {
            at,
            why: format!(
                "frame {seq} is not whole, and frame {} follows it at byte {found}",
                header.seq
            ),
        }),
        None => Ok(()),
    }
}

/// The first whole frame (intact header numbered in `seqs`, payload
/// passing its checksum) starting in `from..len` of `file`.
fn whole_frame_after(
    file: &File,
    from: u64,
    len: u64,
    seqs: std::ops::RangeInclusive<u64>,
) -> io::Result<Option<(u64, Header)>> {
    const CHUNK: usize = 1 << 20;
    let mut chunk = vec![0u8; CHUNK + MAGIC.len() - 1];
    let mut at = from;
    while at < len {
        let n = (len - at).min(chunk.len() as u64) as usize;
        file.read_exact_at(&mut chunk[..n], at)?;
        for i in 0..n.saturating_sub(MAGIC.len() - 1) {
            if chunk[i..i + MAGIC.len()] != MAGIC {
                continue;
            }
            let start = at + i as u64;
            if let Some(header) = header_at(file, start, len)?
                && seqs.contains(&header.seq)
                && start + header.frame_len() <= len
                && payload_crc(file, start + HEADER as u64, header.len)? == header.crc
            {
                return Ok(Some((start, header)));
            }
        }
        // The next chunk overlaps this one by a magic's length less one.
        at += (n.saturating_sub(MAGIC.len() - 1)).max(1) as u64;
    }
    Ok(None)
}

fn header_at(file: &File, at: u64, len: u64) -> io::Result<Option<Header>> {
    if len - at < HEADER as u64 {
        return Ok(None);
    }
    let mut bytes = [0u8; HEADER];
    file.read_exact_at(&mut bytes, at)?;
    Ok(Header::parse(&bytes))
}

/// The crc32 of `len` bytes of `file` at `at`, read a piece at a time.
fn payload_crc(file: &File, mut at: u64, len: u32) -> io::Result<u32> {
    let mut hasher = crc32fast::Hasher::new();
    let mut left = len as usize;
    let mut piece = vec![0u8; left.min(1 << 20)];
    while left > 0 {
        let n = left.min(piece.len());
        file.read_exact_at(&mut piece[..n], at)?;
        hasher.update(&piece[..n]);
        at += n as u64;
        left -= n;
    }
    Ok(hasher.finalize())
}

/// The open log: appends frames, each synced, and rewrites itself when
/// mostly superseded.
pub(super) struct Log {
    file: File,
    path: PathBuf,
    len: u64,
    /// The number of the next frame.
    seq: u64,
    rewrite_at: u64,
    frame: Frame,
    /// A rewrite under way on another thread: how much of the log it
    /// covers, and the thread.
    rewriting: Option<(u64, RewriteThread)>,
}

/// Writes the new file of a rewrite; returns it, its length and frames.
type RewriteThread = JoinHandle<io::Result<(File, u64, u64)>>;

/// A log opened and locked, read but not yet written to.
pub(super) struct Opened {
    file: File,
    path: PathBuf,
    pub loaded: Loaded,
}

/// Opens (or creates) the log file in `dir`, locked against other
/// processes, and reads it. Nothing is written: a file that is not a
/// journal, or a damaged one, is refused as it is.
pub(super) fn open(dir: &Path) -> Result<Opened, ReadError> {
    let path = dir.join(FILE);
    let file = own_file::open(
        OpenOptions::new().read(true).append(true).create(true),
        &path,
    )?;
    lock(&file)?;
    let len = own_file::regular(&file, &path)?.len();
    if len == 0 {
        // The new file's name must survive a crash too.
        File::open(dir)?.sync_all()?;
    }
    let loaded = read_frames(&file, len)?;
    Ok(Opened { file, path, loaded })
}

impl Opened {
    /// The log, ready for appends: a torn tail is cut off, and a rewrite a
    /// crash left half done is dropped.
    pub(super) fn start(self) -> io::Result<(Log, Loaded)> {
        let Opened { file, path, loaded } = self;
        let _ = std::fs::remove_file(path.with_file_name(REWRITING));
        if loaded.whole < loaded.len {
            file.set_len(loaded.whole)?;
            file.sync_all()?;
        }
        let live = loaded.image.live_bytes();
        let log = Log {
            file,
            path,
            len: loaded.whole,
            seq: loaded.frames,
            rewrite_at: rewrite_threshold(live),
            frame: Frame::default(),
            rewriting: None,
        };
        Ok((log, loaded))
    }
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

    /// Writes the frame and waits until it is on disk; the bytes written.
    pub(super) fn append(&mut self) -> io::Result<u64> {
        if self.frame.is_empty() {
            return Ok(0);
        }
        let written = self.frame.seal(self.seq, false).and_then(|bytes| {
            self.file.write_all(bytes)?;
            self.file.sync_data()?;
            Ok(bytes.len() as u64)
        });
        self.frame.clear();
        let written = written?;
        self.len += written;
        self.seq += 1;
        Ok(written)
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
            let loaded = own_file::open_to_read(&path)
                .map_err(ReadError::from)
                .and_then(|file| read_frames(&file, covered))
                .map_err(|e| io::Error::other(e.to_string()))?;
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
        let (mut file, mut len, mut seq) = written.map_err(not_done)?;
        let (bytes, frames) = copy_frames(&self.file, covered, self.len, &mut file, seq)
            .and_then(|n| file.sync_data().map(|()| n))
            .map_err(not_done)?;
        len += bytes;
        seq += frames;
        std::fs::rename(&new, &self.path).map_err(not_done)?;
        // The new file is the log now, whatever happens next.
        self.file = file;
        self.len = len;
        self.seq = seq;
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

/// Appends the frames in bytes `from..to` of `source` (whole ones, all
/// synced) to `target`, numbered from `seq` on; returns the bytes and the
/// frames copied.
fn copy_frames(
    source: &File,
    from: u64,
    to: u64,
    target: &mut File,
    seq: u64,
) -> io::Result<(u64, u64)> {
    let mut at = from;
    let mut frame = Frame::default();
    let mut frames = 0;
    while at < to {
        let header = header_at(source, at, to)?.ok_or_else(|| {
            io::Error::other(format!("the journal's frame at byte {at} changed under it"))
        })?;
        frame.clear();
        let start = frame.buf.len();
        frame.buf.resize(start + header.len as usize, 0);
        source.read_exact_at(&mut frame.buf[start..], at + HEADER as u64)?;
        target.write_all(frame.seal(seq + frames, true)?)?;
        at += header.frame_len();
        frames += 1;
    }
    Ok((at - from, frames))
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
/// appending, its length and its frames.
fn write_new(path: &Path, image: &Image) -> io::Result<(File, u64, u64)> {
    let mut file = own_file::open(
        OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .truncate(false),
        path,
    )?;
    lock(&file)?;
    own_file::regular(&file, path)?;
    file.set_len(0)?;
    let (mut len, mut seq) = (0u64, 0u64);
    image.encode(|frame| {
        let bytes = frame.seal(seq, true)?;
        len += bytes.len() as u64;
        seq += 1;
        file.write_all(bytes)
    })?;
    file.sync_all()?;
    Ok((file, len, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_empty(dir: &Path) -> Log {
        open(dir).unwrap().start().unwrap().0
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
        let mut log = open_empty(dir.path());
        log.frame().meta("f", "a");
        log.frame().key("k", 7, b"{}");
        log.append().unwrap();
        drop(log);
        // The half-written new file a crash before the rename leaves.
        std::fs::write(dir.path().join(REWRITING), MAGIC).unwrap();
        let (log, loaded) = open(dir.path()).unwrap().start().unwrap();
        assert!(!dir.path().join(REWRITING).exists());
        assert_eq!(loaded.image.keys["k"].0, 7);
        assert_eq!(log.len, loaded.len);
    }

    /// A log of a meta frame and one frame per `(key, memory)`, and the
    /// length of the file after each frame.
    fn write_log(dir: &Path, commits: &[(u8, String)]) -> Vec<u64> {
        let mut log = open_empty(dir);
        log.frame().meta("f", "a");
        log.append().unwrap();
        let mut ends = vec![log.len];
        for (seq, (key, memory)) in commits.iter().enumerate() {
            log.frame()
                .key(&format!("k{key}"), seq as u64 + 1, memory.as_bytes());
            log.append().unwrap();
            ends.push(log.len);
        }
        ends
    }

    fn damaged(path: &Path) -> String {
        match read(path) {
            Err(e @ ReadError::Damaged { .. }) => e.to_string(),
            other => panic!("not refused as damaged: {other:?}"),
        }
    }

    #[test]
    fn a_length_changed_to_reach_the_end_is_damage_not_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let commits: Vec<_> = (0..4).map(|n| (n, format!("{{\"n\":{n}}}"))).collect();
        let ends = write_log(dir.path(), &commits);
        let good = std::fs::read(&path).unwrap();
        let at = ends[1] as usize; // frame 2, a committed one
        let reach_end = |bytes: &mut Vec<u8>| {
            let len = (bytes.len() - at - HEADER) as u32;
            bytes[at + 12..at + 16].copy_from_slice(&len.to_le_bytes());
        };
        // The length changed alone: the header fails its own checksum.
        let mut bytes = good.clone();
        reach_end(&mut bytes);
        std::fs::write(&path, &bytes).unwrap();
        let why = damaged(&path);
        assert!(why.contains(&format!("damaged at byte {at}")), "{why}");
        assert!(why.contains("frame 3 follows it"), "{why}");
        // With the header's checksum made to match: the frames inside the
        // "torn" frame are numbered after it, which no record can hold.
        let sum = crc32fast::hash(&bytes[at..at + 20]);
        bytes[at + 20..at + 24].copy_from_slice(&sum.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        damaged(&path);
        // Opening refuses it, and leaves the file as it was.
        let err = open(dir.path()).err().unwrap().to_string();
        assert!(err.contains("damaged"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        // A frame out of order, a failing frame with frames after it.
        let mut bytes = good.clone();
        bytes[at + 4] = 7;
        let sum = crc32fast::hash(&bytes[at..at + 20]);
        bytes[at + 20..at + 24].copy_from_slice(&sum.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        assert!(damaged(&path).contains("frame number 7 where frame 2 belongs"));
        let mut bytes = good.clone();
        bytes[at + HEADER] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(damaged(&path).contains("fails its checksum"));
    }

    #[test]
    fn a_zeroed_header_with_frames_after_it_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let commits: Vec<_> = (0..3).map(|n| (n, "{}".to_string())).collect();
        let ends = write_log(dir.path(), &commits);
        let good = std::fs::read(&path).unwrap();
        let mut bytes = good.clone();
        let at = ends[1] as usize;
        bytes[at..at + HEADER].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        assert!(damaged(&path).contains(&format!("damaged at byte {at}")));
        // The same zeros on the last frame: a torn tail, cut.
        let mut bytes = good;
        bytes.truncate(ends[3] as usize);
        let last = ends[2] as usize;
        bytes[last..last + HEADER].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        let loaded = read(&path).unwrap();
        assert_eq!((loaded.whole, loaded.frames), (ends[2], 3));
    }

    #[test]
    fn a_file_that_is_not_a_journal_is_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let text = b"my notes, not a journal\n".repeat(3);
        std::fs::write(&path, &text).unwrap();
        let err = open(dir.path()).err().unwrap().to_string();
        assert!(err.contains("not a weir journal"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), text);
        // Nor a file behind a link, which is not followed.
        let other = tempfile::tempdir().unwrap();
        let victim = other.path().join("victim.txt");
        std::fs::write(&victim, b"victim").unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let err = open(dir.path()).err().unwrap().to_string();
        assert!(err.contains("is a symbolic link"), "{err}");
        assert!(
            read(&path)
                .err()
                .unwrap()
                .to_string()
                .contains("symbolic link")
        );
        // A dangling link is not created through either.
        std::fs::remove_file(&victim).unwrap();
        assert!(open(dir.path()).is_err());
        assert!(!victim.exists());
        // A journal of the format before numbered frames.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"WJL\x01\x05\0\0\0\0\0\0\0hello").unwrap();
        assert!(matches!(open(dir.path()), Err(ReadError::OldFormat)));
        // A torn first frame (zeros, or the magic and a little) is cut.
        for torn in [&[0u8; 30][..], &MAGIC[..3]] {
            std::fs::write(&path, torn).unwrap();
            let (_, loaded) = open(dir.path()).unwrap().start().unwrap();
            assert_eq!(loaded.whole, 0);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        }
    }

    #[test]
    fn a_rewrite_numbers_its_frames_and_the_ones_copied_after_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let mut log = open_empty(dir.path());
        log.frame().meta("f", "a");
        log.append().unwrap();
        for seq in 0..5u64 {
            log.frame().key("k", seq, b"{}");
            log.append().unwrap();
        }
        log.start_rewrite();
        log.frame().key("late", 1, b"{}");
        log.append().unwrap();
        log.rewrite().unwrap();
        log.frame().key("later", 2, b"{}");
        log.append().unwrap();
        drop(log);
        let loaded = read(&path).unwrap();
        assert_eq!(loaded.whole, loaded.len);
        // One frame of live state, the one copied, the one appended.
        assert_eq!(loaded.frames, 3);
        assert_eq!(loaded.image.keys.len(), 3);
        // The rewritten frames are synced with their file: damage at the
        // end of the last of them is not taken for a torn tail.
        let mut bytes = std::fs::read(&path).unwrap();
        let end = bytes.len() - (HEADER + 1 + 4 + 5 + 8 + 4 + 2);
        bytes.truncate(end);
        bytes[end - 1] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(damaged(&path).contains("written with its file"));
    }

    #[test]
    fn a_frame_inside_a_torn_frame_is_not_taken_for_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let mut log = open_empty(dir.path());
        log.frame().meta("f", "a");
        log.append().unwrap();
        // The nearest a key (the only raw text in a record) comes to a
        // whole frame numbered after its own: text cannot hold the magic.
        let mut inner = Frame::default();
        inner.key("k", 9, b"{}");
        let inner = String::from_utf8_lossy(inner.seal(2, false).unwrap()).into_owned();
        log.frame().key(&inner, 1, b"{}");
        log.append().unwrap();
        drop(log);
        // The crash left the last frame whole but for its last byte.
        let mut bytes = std::fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let loaded = read(&path).unwrap();
        assert!(loaded.whole < loaded.len, "the torn frame is cut off");
        assert!(loaded.image.keys.is_empty());
        // And its header zeroed as well.
        let at = loaded.whole as usize;
        bytes[at..at + HEADER].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read(&path).unwrap().whole, at as u64);
    }

    mod crash {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            // 96 cases in the suite; PROPTEST_CASES for a longer run.
            #![proptest_config(ProptestConfig::with_cases(
                std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(96)
            ))]

            /// Any commits, a crash at any byte (the file cut there, and
            /// maybe zeros or garbage after): the journal reopens to a
            /// prefix of the commits, every frame wholly before the cut
            /// kept, and a pure cut is never refused.
            #[test]
            fn a_crash_at_any_byte_reopens_to_a_prefix(
                commits in prop::collection::vec((0u8..4, "[a-z\"{}:0-9 ]{0,40}"), 1..8),
                cut in 0.0f64..=1.0,
                after in prop_oneof![
                    Just(Vec::new()),
                    prop::collection::vec(Just(0u8), 1..64),
                    prop::collection::vec(any::<u8>(), 1..64),
                ],
            ) {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join(FILE);
                let ends = write_log(dir.path(), &commits);
                let original = std::fs::read(&path).unwrap();
                let mut bytes = original.clone();
                let cut = (bytes.len() as f64 * cut) as usize;
                bytes.truncate(cut);
                bytes.extend_from_slice(&after);
                std::fs::write(&path, &bytes).unwrap();
                // Frames whose bytes are all there as written (what follows
                // the cut may happen to restore the end of one).
                let kept = ends
                    .iter()
                    .take_while(|&&end| bytes.get(..end as usize) == original.get(..end as usize))
                    .count();
                let opened = match open(dir.path()) {
                    Ok(opened) => opened,
                    Err(e) => {
                        prop_assert!(!after.is_empty(), "a pure cut at {cut} was refused: {e}");
                        prop_assert_eq!(std::fs::read(&path).unwrap(), bytes, "a refused file is untouched");
                        return Ok(());
                    }
                };
                let (mut log, loaded) = opened.start().unwrap();
                prop_assert_eq!(loaded.frames as usize, kept);
                let mut expected = BTreeMap::new();
                for (seq, (key, memory)) in commits.iter().take(kept.saturating_sub(1)).enumerate() {
                    expected.insert(format!("k{key}"), (seq as u64 + 1, memory.as_bytes().to_vec()));
                }
                prop_assert_eq!(&loaded.image.keys, &expected);
                // And it goes on: a commit after the crash is read back.
                if kept == 0 {
                    log.frame().meta("f", "a");
                }
                log.frame().key("after", 99, b"{}");
                log.append().unwrap();
                drop(log);
                let again = read(&path).unwrap();
                prop_assert_eq!(again.whole, again.len);
                prop_assert_eq!(again.image.keys.len(), expected.len() + 1);
            }
        }
    }
}
