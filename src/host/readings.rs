//! Clocks and random numbers under durable execution. What a task reads
//! from `wasi:clocks` and `wasi:random` is recorded with its host calls, and
//! a re-run of the task after a crash reads the same values, so a guest that
//! puts a timestamp or a random id into a model request makes the same
//! request again and gets the recorded answer.
//!
//! Readings are persisted only alongside a call record: a run is released
//! only when it commits, so values nothing recorded depends on need not
//! survive a crash.
//!
//! A guest decides how much it reads, so the record is compact (random
//! bytes read one after another are one entry) and bounded: past the task's
//! `max_output_bytes` nothing more is recorded and the task's next host call
//! (or its end) fails it with that limit. One `get-random-bytes` call is
//! bounded too ([`MAX_RANDOM_BYTES`]), so a single host call stays short and
//! the task's deadline can stop a guest that keeps asking.

use crate::journal::{CallRecord, Journal, Outcome};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

/// The op name of a readings record in the journal.
const OP: &str = "wasi.readings";

/// Most bytes one `wasi:random` call may ask for (a bigger request traps):
/// seeds and ids need tens of bytes.
pub(crate) const MAX_RANDOM_BYTES: u64 = 1 << 20;

/// One value a guest read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reading {
    /// `wasi:clocks/wall-clock.now`, in nanoseconds since the epoch.
    Wall(u64),
    /// `wasi:clocks/monotonic-clock.now`, in nanoseconds.
    Monotonic(u64),
    /// Random bytes (`wasi:random`), hex; consecutive reads are one entry.
    Random(String),
}

impl Reading {
    /// Bytes it takes in the record (roughly: its JSON text).
    fn size(&self) -> usize {
        match self {
            Reading::Random(hex) => hex.len() + 12,
            _ => 32,
        }
    }
}

/// The readings of the task running in a store.
#[derive(Default)]
pub(crate) struct Readings {
    /// The journal, the run and the record's id, under durable execution.
    journal: Option<(Arc<Journal>, Arc<str>, String)>,
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
    /// Bytes `taken` may hold: the task's `max_output_bytes`.
    budget: usize,
    /// Bytes `taken` holds.
    used: usize,
    /// Set once the budget ran out: what the task had read then.
    overran: Option<usize>,
}

/// Readings shared by a store's clocks and random generators and its task.
pub(crate) type SharedReadings = Arc<Mutex<Readings>>;

impl Readings {
    /// Starts over for a task whose record is `id` in `journal`, which may
    /// record `budget` bytes of readings.
    pub(crate) fn reset(
        &mut self,
        journal: Option<(Arc<Journal>, Arc<str>, String)>,
        budget: usize,
    ) {
        *self = Readings {
            journal,
            budget,
            ..Readings::default()
        };
    }

    /// How many bytes of readings the task had recorded when it ran past
    /// its budget, if it did.
    pub(crate) fn overran(&self) -> Option<usize> {
        self.overran
    }

    fn load(&mut self) {
        if !self.loaded {
            self.loaded = true;
            if let Some(recorded) = self.recorded() {
                self.replay = recorded.into();
            }
        }
    }

    /// Keeps `value` for the record, within the budget.
    fn take(&mut self, value: Reading) {
        if self.journal.is_none() || self.overran.is_some() {
            return;
        }
        let size = value.size();
        if self.used + size > self.budget {
            self.overran = Some(self.used + size);
            return;
        }
        self.used += size;
        self.unsaved = true;
        match (self.taken.last_mut(), value) {
            (Some(Reading::Random(last)), Reading::Random(more)) => last.push_str(&more),
            (_, value) => self.taken.push(value),
        }
    }

    /// `len` random bytes: the recorded ones (a prefix of the next random
    /// entry) on a re-run, live ones past the recording.
    fn random(&mut self, len: usize) -> String {
        self.load();
        let want = len * 2;
        let hex = match self.replay.front_mut() {
            Some(Reading::Random(recorded)) if recorded.len() >= want => {
                let rest = recorded.split_off(want);
                let hex = std::mem::replace(recorded, rest);
                if recorded.is_empty() {
                    self.replay.pop_front();
                }
                hex
            }
            _ => {
                self.replay.clear();
                let mut bytes = vec![0; len];
                rand::Rng::fill_bytes(&mut rand::rng(), &mut bytes);
                hex::encode(bytes)
            }
        };
        self.take_random(&hex);
        hex
    }

    /// Keeps random bytes (hex) for the record, one entry with the random
    /// bytes read just before.
    fn take_random(&mut self, hex: &str) {
        if let Some(Reading::Random(last)) = self.taken.last_mut()
            && self.journal.is_some()
            && self.overran.is_none()
            && self.used + hex.len() <= self.budget
        {
            self.used += hex.len();
            self.unsaved = true;
            last.push_str(hex);
            return;
        }
        self.take(Reading::Random(hex.to_string()));
    }

    fn read(
        &mut self,
        same_kind: impl Fn(&Reading) -> bool,
        live: impl FnOnce() -> Reading,
    ) -> Reading {
        self.load();
        let value = match self.replay.front() {
            Some(next) if same_kind(next) => self.replay.pop_front().expect("a front"),
            _ => {
                // Past the recording, or the guest diverged: live from here.
                self.replay.clear();
                live()
            }
        };
        self.take(value.clone());
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
        let text = lock(&self.0).random(dst.len());
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
