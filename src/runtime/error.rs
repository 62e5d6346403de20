//! Why a run, or a request to it, failed: the library's typed error.

/// An error of [`Runtime`](super::Runtime), [`EventSender`](super::EventSender)
/// or [`RunHandle`](super::RunHandle).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// An input event was refused before it ran (a built-in event type
    /// that may not come from input, say).
    #[error("an input event of key `{key}` is refused: {reason}")]
    InputRefused {
        /// The event's key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The sender's input was closed with [`EventSender::close`](super::EventSender::close).
    #[error("input is closed")]
    InputClosed,
    /// The run has ended and takes no more events.
    #[error("the run has stopped")]
    Stopped,
    /// The intake is full ([`EventSender::try_reserve`](super::EventSender::try_reserve)):
    /// try again once some events are taken.
    #[error("the intake is full; try again shortly")]
    Full,
    /// The run stopped taking input because its journal failed; a restart
    /// re-runs what was not committed.
    #[error("the run stopped taking input: {0}")]
    JournalFailed(String),
    /// Short-term memory handed to [`Runtime::with_memory`](super::Runtime::with_memory)
    /// could not be used.
    #[error("short-term memory of key `{key}`: {message}")]
    Memory {
        /// The key.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// The scheduler task ended abnormally (it panicked or was cancelled).
    #[error("the run ended abnormally: {0}")]
    Aborted(String),
}
