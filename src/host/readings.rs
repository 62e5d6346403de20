//! Clocks and random numbers under durable execution. What a task reads
//! from `wasi:clocks` and `wasi:random` is recorded with its host calls, and
//! a re-run of the task after a crash reads the same values, so a guest that
//! puts a timestamp or a random id into a model request makes the same
//! request again and gets the recorded answer.
//!
//! Readings are persisted only alongside a call record: a run is released
//! only when it commits, so values nothing recorded depends on need not
//! survive a crash.

use crate::state::{CallRecord, Outcome, StateStore};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

/// The op name of a readings record in the journal.
const OP: &str = "wasi.readings";

/// One value a guest read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reading {
    /// `wasi:clocks/wall-clock.now`, in nanoseconds since the epoch.
    Wall(u64),
    /// `wasi:clocks/monotonic-clock.now`, in nanoseconds.
    Monotonic(u64),
    /// Random bytes (`wasi:random`), hex.
    Random(String),
}

/// The readings of the task running in a store.
#[derive(Default)]
pub(crate) struct Readings {
    /// The journal, the run and the record's id, under durable execution.
    journal: Option<(Arc<StateStore>, Arc<str>, String)>,
    /// Recorded values not yet read again (loaded on the first read).
    replay: VecDeque<Reading>,
    loaded: bool,
    /// What the task read so far.
    taken: Vec<Reading>,
    /// Taken values not yet written to the journal.
    unsaved: bool,
    /// The last monotonic value handed out: live readings after replayed
    /// ones never go back in time.
    monotonic_floor: u64,
}

/// Readings shared by a store's clocks and random generators and its task.
pub(crate) type SharedReadings = Arc<Mutex<Readings>>;

impl Readings {
    /// Starts over for a task whose record is `id` in `journal`.
    pub(crate) fn reset(&mut self, journal: Option<(Arc<StateStore>, Arc<str>, String)>) {
        *self = Readings {
            journal,
            ..Readings::default()
        };
    }

    fn read(
        &mut self,
        same_kind: impl Fn(&Reading) -> bool,
        live: impl FnOnce() -> Reading,
    ) -> Reading {
        if !self.loaded {
            self.loaded = true;
            if let Some(recorded) = self.recorded() {
                self.replay = recorded.into();
            }
        }
        let value = match self.replay.front() {
            Some(next) if same_kind(next) => self.replay.pop_front().expect("a front"),
            _ => {
                // Past the recording, or the guest diverged: live from here.
                self.replay.clear();
                live()
            }
        };
        if self.journal.is_some() {
            self.taken.push(value.clone());
            self.unsaved = true;
        }
        value
    }

    fn recorded(&self) -> Option<Vec<Reading>> {
        let (journal, _, id) = self.journal.as_ref()?;
        let record = journal.call(id)?;
        match record.outcome {
            Outcome::Ok(value) if record.op == OP => serde_json::from_value(value).ok(),
            _ => None,
        }
    }

    /// Writes what the task read since the last save into the journal,
    /// ahead of a call record that may depend on it.
    pub(crate) fn save(&mut self) {
        if !self.unsaved {
            return;
        }
        self.unsaved = false;
        if let Some((journal, run, id)) = &self.journal {
            let record = CallRecord {
                op: OP.to_string(),
                request: String::new(),
                outcome: Outcome::Ok(
                    serde_json::to_value(&self.taken).expect("readings serialise"),
                ),
            };
            journal.record_call(run, id.clone(), &record);
        }
    }
}

fn lock(readings: &SharedReadings) -> std::sync::MutexGuard<'_, Readings> {
    readings
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `wasi:clocks/wall-clock` through the task's readings.
pub(crate) struct WallClock(pub SharedReadings);

impl HostWallClock for WallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        let reading = lock(&self.0).read(
            |r| matches!(r, Reading::Wall(_)),
            || {
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default();
                Reading::Wall(now.as_nanos() as u64)
            },
        );
        match reading {
            Reading::Wall(nanos) => Duration::from_nanos(nanos),
            _ => unreachable!("a wall-clock reading"),
        }
    }
}

/// `wasi:clocks/monotonic-clock` through the task's readings.
pub(crate) struct MonotonicClock {
    pub readings: SharedReadings,
    pub start: Instant,
}

impl HostMonotonicClock for MonotonicClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        let mut readings = lock(&self.readings);
        let floor = readings.monotonic_floor;
        let start = self.start;
        let reading = readings.read(
            |r| matches!(r, Reading::Monotonic(_)),
            || Reading::Monotonic((start.elapsed().as_nanos() as u64).max(floor)),
        );
        let Reading::Monotonic(nanos) = reading else {
            unreachable!("a monotonic reading")
        };
        readings.monotonic_floor = nanos;
        nanos
    }
}

/// `wasi:random` (secure and insecure) through the task's readings.
pub(crate) struct Random(pub SharedReadings);

impl Random {
    fn fill(&mut self, dst: &mut [u8]) {
        let len = dst.len() * 2;
        let reading = lock(&self.0).read(
            |r| matches!(r, Reading::Random(hex) if hex.len() == len),
            || {
                let mut bytes = vec![0; dst.len()];
                rand::Rng::fill_bytes(&mut rand::rng(), &mut bytes);
                Reading::Random(hex::encode(bytes))
            },
        );
        let Reading::Random(text) = reading else {
            unreachable!("a random reading")
        };
        if hex::decode_to_slice(&text, dst).is_err() {
            rand::Rng::fill_bytes(&mut rand::rng(), dst);
        }
    }
}

impl rand::TryRng for Random {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut bytes = [0; 4];
        self.fill(&mut bytes);
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut bytes = [0; 8];
        self.fill(&mut bytes);
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.fill(dst);
        Ok(())
    }
}
