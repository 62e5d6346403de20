//! The host errors a guest sees (`weir:agent/types.host-error`), and the one
//! table of their kinds: the same word in error events, the built-ins' error
//! codes and the journal's records of failed calls.

pub(crate) use super::bindings::weir::agent::types::HostError;

/// A guest's host call's error as the bindings carry it, on its way to
/// `InstanceState::convert_host_error`, the one place that decides whether
/// the guest sees it or is stopped (a limit reached traps the guest).
#[derive(Debug)]
pub(crate) struct CallError(pub HostError);

impl From<HostError> for CallError {
    fn from(error: HostError) -> Self {
        CallError(error)
    }
}

/// Makes a [`HostError`] of one kind from its message.
type Make = fn(String) -> HostError;

/// Each kind of [`HostError`] and its name, in one place.
const KINDS: [(&str, Make); 4] = [
    ("denied", HostError::Denied),
    ("invalid", HostError::Invalid),
    ("limit", HostError::Limit),
    ("host-failed", HostError::Failed),
];

impl HostError {
    /// The kind's name, for example `denied`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            HostError::Denied(_) => KINDS[0].0,
            HostError::Invalid(_) => KINDS[1].0,
            HostError::Limit(_) => KINDS[2].0,
            HostError::Failed(_) => KINDS[3].0,
        }
    }

    /// Its message.
    pub(crate) fn message(&self) -> &str {
        match self {
            HostError::Denied(m)
            | HostError::Invalid(m)
            | HostError::Limit(m)
            | HostError::Failed(m) => m,
        }
    }

    /// Splits it into its kind's name and its message.
    pub(crate) fn into_parts(self) -> (&'static str, String) {
        let kind = self.kind();
        match self {
            HostError::Denied(m)
            | HostError::Invalid(m)
            | HostError::Limit(m)
            | HostError::Failed(m) => (kind, m),
        }
    }

    /// The error of kind `kind` with `message`; a kind not in the table (or
    /// `failed`, what journals before the table wrote) is a host failure.
    pub(crate) fn from_parts(kind: &str, message: String) -> HostError {
        let make = KINDS
            .iter()
            .find(|(name, _)| *name == kind)
            .map_or(HostError::Failed as fn(String) -> HostError, |(_, make)| {
                *make
            });
        make(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_as_itself() {
        for error in [
            HostError::Denied("d".into()),
            HostError::Invalid("i".into()),
            HostError::Limit("l".into()),
            HostError::Failed("f".into()),
        ] {
            let (kind, message) = error.clone().into_parts();
            let back = HostError::from_parts(kind, message.clone()).into_parts();
            assert_eq!(back, (kind, message));
        }
        // What journals wrote before the table, and anything unknown.
        for old in ["failed", "??"] {
            let error = HostError::from_parts(old, "x".into());
            assert!(matches!(error, HostError::Failed(m) if m == "x"));
        }
    }
}
