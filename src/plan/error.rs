//! Errors of planning an agent.

use crate::agent::Location;
use std::fmt;

/// One problem found while planning, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The manifest location, when the agent came from a manifest.
    pub location: Option<Location>,
    /// The field at fault, for example `actions.count.export`.
    pub subject: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(location) = &self.location {
            write!(f, "{location}: ")?;
        }
        write!(f, "{}: {}", self.subject, self.message)
    }
}

/// Why an agent could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The agent has problems; all of them are listed.
    #[error("{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// Every problem found.
        problems: Vec<Problem>,
    },
    /// The sandbox itself could not be set up.
    #[error("cannot set up the WebAssembly sandbox: {0:#}")]
    Sandbox(anyhow::Error),
}

impl PlanError {
    pub(crate) fn sandbox(e: impl Into<anyhow::Error>) -> Self {
        PlanError::Sandbox(e.into())
    }

    /// The problems found (empty for sandbox errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            PlanError::Invalid { problems } => problems,
            PlanError::Sandbox(_) => &[],
        }
    }
}
