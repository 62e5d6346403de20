//! The scheduler: takes input events, numbers them, keeps each key's events
//! in order (one agent run per key at a time, in its [`KeyLane`]) and starts
//! runs for different keys concurrently, up to `max_concurrency`.
//!
//! A key's lane is one tokio task while it has events: it runs them one
//! after another and ends when its queue is empty. The scheduler only
//! queues an event on a busy lane (no message, no wake-up) or starts an
//! idle one, so a loaded key costs no task spawn or hand-back per event:
//! those wake-ups between threads were most of the runtime's own cost.

use super::run::agent_run;
use super::{Intake, RunResult, Shared};
use crate::event::{self, Event};
use crate::journal::InputPosition;
use crate::memory::MemoryObject;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

/// What waits in a key's lane: an input event, with its sequence number
/// and its place among the events taken but not done
/// (`max_pending_events`), or an operation on the key's memory.
enum Queued {
    Event {
        event: Event,
        seq: u64,
        _pending: OwnedSemaphorePermit,
    },
    Memory {
        key: String,
        reset: bool,
        answer: tokio::sync::oneshot::Sender<serde_json::Value>,
    },
}

/// Answers an operation on `key`'s memory with its value, and clears it
/// with `reset`. Under a journal a reset is committed (the key's memory as
/// of its last input, `seq`) and answered once it is on disk, so a restart
/// does not bring the memory back.
fn memory_op(
    shared: &Shared,
    key: &str,
    seq: u64,
    memory: &mut MemoryObject,
    reset: bool,
    answer: tokio::sync::oneshot::Sender<serde_json::Value>,
) {
    let value = memory.to_value();
    if !reset {
        let _ = answer.send(value);
        return;
    }
    *memory = MemoryObject::new();
    match &shared.journal {
        Some(journal) => {
            let committed = journal.commit_later(key, seq, memory.to_json(), Vec::new(), "");
            tokio::spawn(async move {
                match committed.await {
                    Ok(_) => {
                        let _ = answer.send(value);
                    }
                    // Dropping the answer says the runtime has stopped: a
                    // failed journal stops it.
                    Err(e) => tracing::error!(error = %e, "cannot commit a memory reset"),
                }
            });
        }
        None => {
            let _ = answer.send(value);
        }
    }
}

/// One key's lane: its queue of input events, and its short-term memory
/// while no run holds it.
#[derive(Default)]
struct KeyLane {
    /// Input events waiting for the key's current run to end.
    queue: VecDeque<Queued>,
    /// The key's short-term memory while no run holds it.
    memory: Option<MemoryObject>,
    /// A lane task is running the key's events.
    running: bool,
    /// The sequence number of the key's last input event run (or committed
    /// before a restart).
    seq: u64,
}

type Lane = Arc<Mutex<KeyLane>>;

/// What the scheduler knows of a key.
struct Key {
    lane: Lane,
    /// The sequence number of the key's last input event the journal has
    /// committed.
    committed: u64,
}

/// Takes input events, keeps per-key order, and starts agent runs.
pub(super) async fn schedule(
    shared: Arc<Shared>,
    mut input: mpsc::Receiver<Intake>,
    memory: HashMap<String, MemoryObject>,
    committed: HashMap<String, u64>,
    releaser: Option<JoinHandle<()>>,
) -> RunResult {
    let started = Instant::now();
    let mut keys: HashMap<String, Key> = memory
        .into_iter()
        .map(|(key, object)| {
            let committed = committed.get(&key).copied().unwrap_or(0);
            let lane = KeyLane {
                memory: Some(object),
                seq: committed,
                ..KeyLane::default()
            };
            let state = Key {
                lane: Arc::new(Mutex::new(lane)),
                committed,
            };
            (key, state)
        })
        .collect();
    // One permit per input event taken and not yet done.
    let max_pending = shared
        .settings
        .max_pending_events
        .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let pending = Arc::new(Semaphore::new(max_pending));
    // The sequence number of the last input event taken.
    let mut taken = 0u64;

    loop {
        let permit = pending
            .clone()
            .acquire_owned()
            .await
            .expect("the pending semaphore is never closed");
        let next = tokio::select! {
            biased;
            // The journal failed: take no more input, finish what runs.
            () = shared.intake_stopped.notified() => None,
            next = input.recv() => next,
        };
        let (mut event, position) = match next {
            Some(Intake::Event(event, position)) => (event, position),
            Some(Intake::Memory { key, reset, answer }) => {
                drop(permit);
                let Some(state) = keys.get(&key) else {
                    let _ = answer.send(serde_json::Value::Null);
                    continue;
                };
                let mut lane = state.lane.lock().expect("lane lock");
                if lane.running {
                    // After the key's queued events.
                    lane.queue.push_back(Queued::Memory { key, reset, answer });
                } else {
                    let seq = lane.seq;
                    let memory = lane.memory.get_or_insert_with(MemoryObject::new);
                    memory_op(&shared, &key, seq, memory, reset, answer);
                }
                continue;
            }
            None => break,
        };
        let position = position.unwrap_or(InputPosition::numbered(taken + 1));
        let seq = position.seq;
        taken = seq;
        shared.counters.events_in.fetch_add(1, Relaxed);
        let state = match keys.get(&event.key) {
            Some(state) => state,
            None => keys.entry(event.key.clone()).or_insert_with(|| Key {
                lane: Lane::default(),
                committed: 0,
            }),
        };
        // Handled before a restart: the journal has its effects.
        let done_before = seq <= state.committed;
        if shared.journal.is_some() {
            shared
                .in_flight
                .lock()
                .expect("in-flight lock")
                .taken(position, !done_before);
        }
        if done_before {
            shared.counters.inputs_already_done.fetch_add(1, Relaxed);
            continue;
        }
        if event.id.is_empty() {
            event.id = event::input_id(&event.key, seq);
        }
        let queued = Queued::Event {
            event,
            seq,
            _pending: permit,
        };
        if let Some(metrics) = shared.metrics() {
            metrics.queued(1);
        }
        let mut lane = state.lane.lock().expect("lane lock");
        lane.queue.push_back(queued);
        if !lane.running {
            lane.running = true;
            drop(lane);
            tokio::spawn(run_lane(shared.clone(), state.lane.clone()));
        }
    }

    // Every run has ended once every pending permit is back.
    let _all = pending
        .acquire_many(max_pending as u32)
        .await
        .expect("the pending semaphore is never closed");

    // Record where the input stands (past events the journal had done
    // before, too), close the release queue and wait for the last
    // committed outputs to go out.
    let resume = shared
        .in_flight
        .lock()
        .expect("in-flight lock")
        .resume_point();
    if let (Some(journal), Some(point)) = (&shared.journal, resume) {
        journal.set_resume_point(point);
    }
    drop(shared.releases.lock().expect("release lock").take());
    if let Some(releaser) = releaser {
        let _ = releaser.await;
    }
    let mut summary = shared.counters.summary(started.elapsed());
    summary.models = shared.usage.snapshot();
    if let Some(log) = shared.event_log.clone() {
        // What the run logged is written before the summary counts it.
        summary.event_log = tokio::task::spawn_blocking(move || {
            log.flush();
            log.stats()
        })
        .await
        .ok();
    }
    let memory = keys
        .into_iter()
        .filter_map(|(key, state)| {
            let memory = state.lane.lock().expect("lane lock").memory.take();
            memory.filter(|m| !m.is_empty()).map(|m| (key, m))
        })
        .collect();
    let fatal = shared.fatal.lock().expect("fatal lock").take();
    RunResult {
        summary,
        memory,
        fatal,
    }
}

/// Runs a key's queued events in order, one agent run at a time, each
/// within a `max_concurrency` permit taken again per run (so keys with
/// long queues take turns with the others), until the queue is empty.
async fn run_lane(shared: Arc<Shared>, lane: Lane) {
    let mut memory = lane
        .lock()
        .expect("lane lock")
        .memory
        .take()
        .unwrap_or_default();
    loop {
        let next = {
            let mut lane = lane.lock().expect("lane lock");
            match lane.queue.pop_front() {
                Some(Queued::Memory { key, reset, answer }) => {
                    memory_op(&shared, &key, lane.seq, &mut memory, reset, answer);
                    continue;
                }
                Some(Queued::Event {
                    event,
                    seq,
                    _pending,
                }) => {
                    if let Some(metrics) = shared.metrics() {
                        metrics.queued(-1);
                    }
                    (event, seq, _pending)
                }
                None => {
                    lane.memory = Some(memory);
                    lane.running = false;
                    return;
                }
            }
        };
        let permit = shared
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        // Boxed: a run's future is several KiB (the instance's calls are in
        // it), which a spawn and a task's end would otherwise copy around.
        let (event, seq, pending) = next;
        memory = Box::pin(agent_run(&shared, event, seq, memory, permit)).await;
        lane.lock().expect("lane lock").seq = seq;
        // The event's pending permit is released here, as the run is done.
        drop(pending);
    }
}
