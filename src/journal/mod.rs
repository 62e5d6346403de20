//! Durable execution: a journal (an append-only log of checksummed frames,
//! one file in the state directory) so that a run killed at any moment
//! restarts where it stopped.
//!
//! - Per key: the sequence number of its last committed input event and
//!   the short-term memory after it. A restarted run skips input events
//!   already committed.
//! - The resume point: the first input event not committed, with its byte
//!   offset, so a restart seeks there instead of reading the input again.
//! - Per host call that reaches the world (models, tools): its recorded
//!   result, keyed by (input event, event, action, call index). A re-run
//!   task gets recorded results instead of calling again.
//! - An outbox of committed output events, numbered from 1 in commit order
//!   (numbers are never given twice), removed once the sink has them;
//!   outputs have deterministic ids, so a sink deduplicates what it may see
//!   twice after a crash.
//! - For a service that takes its input over the network: the input
//!   events it accepted, on disk before it says so, until they have run;
//!   then, until forgotten, that they ran and which outputs they released
//!   (so a retried submit is recognised).
//!
//! Commits are grouped: one frame (one fdatasync) takes every commit
//! queued at that moment, so throughput does not collapse to one fsync per
//! event.

mod log;
pub mod own_file;
mod position;
mod store;

pub(crate) use position::InFlight;
pub use position::{InputPosition, ResumePoint, line_digest};
pub use store::{AcceptedInput, Inspection, Journal, JournalError, compact, inspect};
pub(crate) use store::{CallRecord, Outcome};
