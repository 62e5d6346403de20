//! The scheduler: takes input events, numbers them, keeps each key's events
//! in order (one agent run per key at a time, in its [`KeyLane`]) and starts
//! runs for different keys concurrently, up to `max_concurrency`.

use super::run::agent_run;
use super::{RunResult, Shared};
use crate::event::{self, Event};
use crate::journal::InputPosition;
use crate::memory::MemoryObject;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// One key's lane: its queue of input events, its committed position,
/// and its short-term memory while no run holds it.
#[derive(Default)]
struct KeyLane {
    /// Input events waiting for the key's current run to end, with their
    /// sequence numbers.
    queue: VecDeque<(Event, u64)>,
    /// The sequence number of the key's last input event the journal has
    /// committed.
    committed: u64,
    /// The key's short-term memory while no run holds it.
    memory: Option<MemoryObject>,
    running: bool,
}

/// Takes input events, keeps per-key order, and starts agent runs.
pub(super) async fn schedule(
    shared: Arc<Shared>,
    mut input: mpsc::Receiver<(Event, Option<InputPosition>)>,
    memory: HashMap<String, MemoryObject>,
    committed: HashMap<String, u64>,
    releaser: Option<JoinHandle<()>>,
) -> RunResult {
    let started = Instant::now();
    let mut keys: HashMap<String, KeyLane> = memory
        .into_iter()
        .map(|(key, object)| {
            let state = KeyLane {
                memory: Some(object),
                committed: committed.get(&key).copied().unwrap_or(0),
                ..KeyLane::default()
            };
            (key, state)
        })
        .collect();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(String, MemoryObject)>();
    let max_pending = shared.settings.max_pending_events.max(1);
    let mut pending = 0usize;
    let mut input_open = true;
    // The sequence number of the last input event taken.
    let mut taken = 0u64;

    while input_open || pending > 0 {
        if input_open && shared.fatal.lock().expect("fatal lock").is_some() {
            // The journal failed: take no more input, finish what runs.
            input_open = false;
        }
        tokio::select! {
            biased;
            Some((key, memory)) = done_rx.recv() => {
                pending -= 1;
                let state = keys.get_mut(&key).expect("a running key has state");
                match state.queue.pop_front() {
                    Some((next, seq)) => spawn_run(&shared, &done_tx, key, next, seq, memory),
                    None => {
                        state.memory = Some(memory);
                        state.running = false;
                    }
                }
            }
            next = input.recv(), if input_open && pending < max_pending => {
                let Some((mut event, position)) = next else {
                    input_open = false;
                    continue;
                };
                let position = position.unwrap_or(InputPosition {
                    seq: taken + 1,
                    start: 0,
                    end: 0,
                    line: 0,
                    number: 0,
                });
                let seq = position.seq;
                taken = seq;
                pending += 1;
                shared.counters.events_in.fetch_add(1, Relaxed);
                let state = keys.entry(event.key.clone()).or_default();
                // Handled before a restart: the journal has its effects.
                let done_before = seq <= state.committed;
                if shared.journal.is_some() {
                    shared.in_flight.lock().expect("in-flight lock").taken(position, !done_before);
                }
                if done_before {
                    pending -= 1;
                    shared.counters.inputs_already_done.fetch_add(1, Relaxed);
                    continue;
                }
                if event.id.is_empty() {
                    event.id = event::input_id(&event.key, seq);
                }
                if state.running {
                    state.queue.push_back((event, seq));
                } else {
                    state.running = true;
                    let memory = state.memory.take().unwrap_or_default();
                    spawn_run(&shared, &done_tx, event.key.clone(), event, seq, memory);
                }
            }
        }
    }

    // Every run has ended: record where the input stands (past events the
    // journal had done before, too), close the release queue and wait for
    // the last committed outputs to go out.
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
    let memory = keys
        .into_iter()
        .filter_map(|(key, state)| state.memory.filter(|m| !m.is_empty()).map(|m| (key, m)))
        .collect();
    let fatal = shared.fatal.lock().expect("fatal lock").take();
    RunResult {
        summary,
        memory,
        fatal,
    }
}

fn spawn_run(
    shared: &Arc<Shared>,
    done: &mpsc::UnboundedSender<(String, MemoryObject)>,
    key: String,
    event: Event,
    seq: u64,
    short_term: MemoryObject,
) {
    let shared = shared.clone();
    let done = done.clone();
    tokio::spawn(async move {
        let permit = shared
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let memory = agent_run(&shared, event, seq, short_term, permit).await;
        // The scheduler outlives every run it started.
        let _ = done.send((key, memory));
    });
}
