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
//! - An outbox of committed output events, removed once the sink has them;
//!   outputs have deterministic ids, so a sink deduplicates what it may see
//!   twice after a crash.
//!
//! Commits are grouped: one frame (one fdatasync) takes every commit
//! queued at that moment, so throughput does not collapse to one fsync per
//! event.

mod journal;
mod log;
pub mod own_file;
mod position;

pub use journal::{CallRecord, Inspection, Outcome, StateError, StateStore, compact, inspect};
pub(crate) use position::InFlight;
pub use position::{InputPosition, ResumePoint, line_digest};

use crate::host::HostError;
use sha2::{Digest, Sha256};

/// sha256 of a host call's function and request.
pub(crate) fn request_digest(op: &str, request: &impl serde::Serialize) -> String {
    let mut hasher = Sha256::new();
    hasher.update(op.as_bytes());
    hasher.update([0]);
    hasher.update(serde_json::to_vec(request).unwrap_or_default());
    hex::encode(hasher.finalize())
}

/// A record of a host call's result.
pub(crate) fn record<R: serde::Serialize>(
    op: &str,
    request: String,
    result: &Result<R, HostError>,
) -> CallRecord {
    let outcome = match result {
        Ok(value) => Outcome::Ok(serde_json::to_value(value).unwrap_or_default()),
        Err(e) => {
            let (kind, message) = match e {
                HostError::Denied(m) => ("denied", m),
                HostError::Invalid(m) => ("invalid", m),
                HostError::Limit(m) => ("limit", m),
                HostError::Failed(m) => ("failed", m),
            };
            Outcome::Err {
                kind: kind.to_string(),
                message: message.clone(),
            }
        }
    };
    CallRecord {
        op: op.to_string(),
        request,
        outcome,
    }
}

/// A record that a call is about to take effect, its result unknown yet.
pub(crate) fn intent(op: &str, request: String) -> CallRecord {
    CallRecord {
        op: op.to_string(),
        request,
        outcome: Outcome::Intent,
    }
}

/// The recorded result, as the call returned it.
pub(crate) fn replay<R: serde::de::DeserializeOwned>(record: CallRecord) -> Result<R, HostError> {
    match record.outcome {
        Outcome::Ok(value) => serde_json::from_value(value).map_err(|e| {
            HostError::Failed(format!(
                "the journal's record of `{}` is unreadable: {e}",
                record.op
            ))
        }),
        Outcome::Err { kind, message } => Err(match kind.as_str() {
            "denied" => HostError::Denied(message),
            "invalid" => HostError::Invalid(message),
            "limit" => HostError::Limit(message),
            _ => HostError::Failed(message),
        }),
        Outcome::Intent => Err(HostError::Failed(format!(
            "the journal holds only an intent for `{}`",
            record.op
        ))),
    }
}
