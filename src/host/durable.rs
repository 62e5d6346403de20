//! Durable execution on the host-call path: a call that reaches the world
//! (a model, a tool) is recorded in the journal with its result, keyed by
//! its position (input event, event, action, call index) and a digest of its
//! request, and a re-run task is answered from the record instead of calling
//! again. The journal stores records; what they mean is decided here.

use super::HostError;
use crate::journal::{CallRecord, Journal, Outcome};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// sha256 of a host call's function and request.
pub(crate) fn request_digest(op: &str, request: &impl serde::Serialize) -> String {
    let mut hasher = Sha256::new();
    hasher.update(op.as_bytes());
    hasher.update([0]);
    hasher.update(serde_json::to_vec(request).unwrap_or_default());
    hex::encode(hasher.finalize())
}

/// A record of a host call's result.
fn record<R: serde::Serialize>(
    op: &str,
    request: String,
    result: &Result<R, HostError>,
) -> CallRecord {
    let outcome = match result {
        Ok(value) => Outcome::Ok(serde_json::to_value(value).unwrap_or_default()),
        Err(e) => Outcome::Err {
            kind: e.kind().to_string(),
            message: e.message().to_string(),
        },
    };
    CallRecord {
        op: op.to_string(),
        request,
        outcome,
    }
}

/// The recorded result, as the call returned it.
fn replay<R: serde::de::DeserializeOwned>(record: CallRecord) -> Result<R, HostError> {
    match record.outcome {
        Outcome::Ok(value) => serde_json::from_value(value).map_err(|e| {
            HostError::Failed(format!(
                "the journal's record of `{}` is unreadable: {e}",
                record.op
            ))
        }),
        Outcome::Err { kind, message } => Err(HostError::from_parts(&kind, message)),
        Outcome::Intent => Err(HostError::Failed(format!(
            "the journal holds only an intent for `{}`",
            record.op
        ))),
    }
}

/// A host call's entry in the journal.
#[derive(Clone)]
pub(crate) struct JournaledCall {
    journal: Arc<Journal>,
    run: Arc<str>,
    id: String,
    digest: String,
    op: &'static str,
    /// An intent was recorded for this call before a crash, but no result:
    /// it may or may not have taken effect.
    pub interrupted: bool,
}

impl JournaledCall {
    /// The entry of call `op` with `request` at `position` in `run`.
    pub(super) fn new(
        journal: &Arc<Journal>,
        run: &Arc<str>,
        position: &str,
        op: &'static str,
        request: &impl serde::Serialize,
    ) -> Self {
        JournaledCall {
            journal: journal.clone(),
            run: run.clone(),
            id: format!("{run}/{position}"),
            digest: request_digest(op, request),
            op,
            interrupted: false,
        }
    }

    /// The recorded result of this call, if the journal has one for the
    /// same function and request. An intent alone marks the call
    /// interrupted; a record of another call is a diverged replay, and the
    /// call runs live.
    pub(super) fn recorded<R: serde::de::DeserializeOwned>(
        &mut self,
    ) -> Option<Result<R, HostError>> {
        let record = self.journal.call(&self.id)?;
        if record.op != self.op || record.request != self.digest {
            tracing::warn!(
                call = %self.id, recorded = %record.op, now = self.op,
                "replay diverged: the guest made another call than the one recorded; running it live"
            );
            return None;
        }
        if record.is_intent() {
            self.interrupted = true;
            return None;
        }
        Some(replay(record))
    }

    /// Records the call's result (committed with the task's run).
    pub(super) fn record<R: serde::Serialize>(self, result: &Result<R, HostError>) {
        let record = record(self.op, self.digest, result);
        self.journal.record_call(&self.run, self.id, &record);
    }

    /// Records that the call is about to take effect, and waits until the
    /// record is on disk: a crash from here on leaves an intent to
    /// reconcile.
    pub(crate) async fn record_intent(&self) -> Result<(), HostError> {
        let intent = CallRecord {
            op: self.op.to_string(),
            request: self.digest.clone(),
            outcome: Outcome::Intent,
        };
        self.journal
            .record_durably(&self.run, self.id.clone(), &intent)
            .await
            .map_err(|e| HostError::Failed(format!("the journal could not record the call: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_error_replays_as_the_same_kind() {
        for error in [
            HostError::Denied("no".into()),
            HostError::Limit("too much".into()),
            HostError::Failed("down".into()),
        ] {
            let (kind, message) = error.clone().into_parts();
            let back: Result<u32, HostError> = replay(record::<u32>("op", "r".into(), &Err(error)));
            assert_eq!(back.unwrap_err().into_parts(), (kind, message));
        }
        let ok: Result<u32, HostError> = replay(record("op", "r".into(), &Ok::<u32, HostError>(7)));
        assert_eq!(ok.unwrap(), 7);
    }

    #[test]
    fn an_unreadable_record_is_a_host_failure_naming_the_call() {
        let record = CallRecord {
            op: "model.chat".into(),
            request: "r".into(),
            outcome: Outcome::Ok(serde_json::json!("not a number")),
        };
        let error = replay::<u32>(record).unwrap_err();
        assert_eq!(error.kind(), "host-failed");
        assert!(
            error.message().contains("`model.chat`"),
            "{}",
            error.message()
        );
    }
}
