//! Input positions: where a run stands in its input, so a restart resumes
//! there instead of reading everything again.
//!
//! Every input event has a position: its sequence number in the input,
//! counted from one, and, when it comes from a file, its line's byte range
//! and a digest of the line. The resume point is the first input event not
//! yet committed (every event before it is); a restart seeks to its byte
//! offset and checks that the line there is the one recorded, so a changed
//! input file is refused rather than misread.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Where an input event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputPosition {
    /// Its sequence number in the input, from 1.
    pub seq: u64,
    /// Byte offset of its line's start, when it comes from a file.
    pub start: u64,
    /// Byte offset just past its line.
    pub end: u64,
    /// A digest of its line (see [`line_digest`]).
    pub line: u64,
    /// Its line number, for messages.
    pub number: u64,
}

impl InputPosition {
    /// Input event number `seq`, from no file (a service's input).
    pub fn numbered(seq: u64) -> InputPosition {
        InputPosition {
            seq,
            start: 0,
            end: 0,
            line: 0,
            number: 0,
        }
    }
}

/// Where a restarted run picks its input up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumePoint {
    /// The sequence number of the first event to read.
    pub seq: u64,
    /// The byte offset of its line.
    pub offset: u64,
    /// The digest of that line; none when the input had ended there.
    pub line: Option<u64>,
    /// Its line number.
    pub number: u64,
}

/// A digest of an input line, to recognise it when resuming.
pub fn line_digest(line: &str) -> u64 {
    let digest = Sha256::digest(line.as_bytes());
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// The input events taken but not yet committed, and the last one taken:
/// the resume point is the first of them, or just past the last.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    open: BTreeMap<u64, InputPosition>,
    last: Option<InputPosition>,
}

impl InFlight {
    /// An event was taken; `running` if it runs now (not done before).
    pub(crate) fn taken(&mut self, position: InputPosition, running: bool) {
        if running {
            self.open.insert(position.seq, position);
        }
        if self.last.is_none_or(|last| last.seq < position.seq) {
            self.last = Some(position);
        }
    }

    /// The run of input `seq` is committed.
    pub(crate) fn committed(&mut self, seq: u64) {
        self.open.remove(&seq);
    }

    /// Where a restart would pick up now.
    pub(crate) fn resume_point(&self) -> Option<ResumePoint> {
        if let Some(first) = self.open.values().next() {
            return Some(ResumePoint {
                seq: first.seq,
                offset: first.start,
                line: Some(first.line),
                number: first.number,
            });
        }
        self.last.map(|last| ResumePoint {
            seq: last.seq + 1,
            offset: last.end,
            line: None,
            number: last.number + 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seq: u64) -> InputPosition {
        InputPosition {
            seq,
            start: seq * 10,
            end: seq * 10 + 10,
            line: seq,
            number: seq,
        }
    }

    #[test]
    fn the_resume_point_is_the_first_event_not_committed() {
        let mut flight = InFlight::default();
        assert_eq!(flight.resume_point(), None);
        flight.taken(at(1), false);
        for seq in 2..=4 {
            flight.taken(at(seq), true);
        }
        assert_eq!(flight.resume_point().unwrap().seq, 2);
        flight.committed(3);
        assert_eq!(flight.resume_point().unwrap().offset, 20);
        flight.committed(2);
        assert_eq!(flight.resume_point().unwrap().line, Some(4));
        flight.committed(4);
        let past = flight.resume_point().unwrap();
        assert_eq!((past.seq, past.offset, past.line), (5, 50, None));
    }
}
