//! The runtime: Flink Agents' ActionExecutionOperator for WebAssembly.
//!
//! Input events get a per-key sequence number and queue per key; one agent
//! run per key at a time, different keys concurrently up to
//! `max_concurrency`. An agent run takes one input event, runs one
//! ActionTask per (event, action) routed by `actions_by_event`, and
//! routes what the tasks emit until only output events remain. A routing loop
//! is cut at `max_depth` hops. Sensory memory is cleared after each run.

mod summary;
mod task;

pub use summary::{ActionSummary, RunSummary};

use crate::RuntimeSettings;
use crate::event::{self, Event, types};
use crate::host::bindings::weir::agent::types::Event as WitEvent;
use crate::host::{Authority, KeyMemory, ModelUsage};
use crate::memory::MemoryObject;
use crate::plan::{ActionKind, ActionPlan, AgentPlan};
use crate::state::{InFlight, InputPosition, StateError, StateStore};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;
use summary::Counters;
use task::Failure;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

/// Runs an [`AgentPlan`] over events.
pub struct Runtime {
    plan: Arc<AgentPlan>,
    settings: RuntimeSettings,
    memory: HashMap<String, MemoryObject>,
    state: Option<Arc<StateStore>>,
    committed: HashMap<String, u64>,
}

/// Sends input events into a running agent. Dropping every clone (or calling
/// [`EventSender::close`]) ends the input; the run finishes once the events
/// taken so far are done.
#[derive(Clone)]
pub struct EventSender {
    tx: Option<mpsc::Sender<(Event, Option<InputPosition>)>>,
}

impl EventSender {
    /// Queues `event`; waits while the runtime's intake is full. It is
    /// numbered after the events sent before it. Built-in event types
    /// other than `_input_event` are refused (see
    /// [`types::input_problem`](crate::event::types::input_problem)).
    pub async fn send(&self, event: Event) -> anyhow::Result<()> {
        self.queue(event, None).await
    }

    /// Queues `event` from `position` in the input (its sequence number
    /// and line), so that a journal can record where a restart resumes.
    /// Use either this or [`EventSender::send`] for one run, not both.
    pub async fn send_at(&self, event: Event, position: InputPosition) -> anyhow::Result<()> {
        self.queue(event, Some(position)).await
    }

    async fn queue(&self, event: Event, position: Option<InputPosition>) -> anyhow::Result<()> {
        if let Some(problem) = types::input_problem(&event.event_type) {
            anyhow::bail!(
                "an input event of key `{}` is refused: {problem}",
                event.key
            );
        }
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("input is closed"))?;
        tx.send((event, position))
            .await
            .map_err(|_| anyhow::anyhow!("the run has stopped"))
    }

    /// Ends the input from this sender.
    pub fn close(&mut self) {
        self.tx = None;
    }
}

/// A running agent: send events, receive outputs, then [`RunHandle::finish`].
pub struct RunHandle {
    /// Input events go here.
    pub events: EventSender,
    /// Output events (`_output_event`) and error events (`_error_event`)
    /// come out here, each key's in the order produced.
    pub outputs: mpsc::Receiver<Event>,
    done: JoinHandle<RunResult>,
}

/// What the scheduler hands back when a run ends.
struct RunResult {
    summary: RunSummary,
    memory: HashMap<String, MemoryObject>,
    fatal: Option<String>,
}

impl RunHandle {
    /// Closes the input, waits for the run to end and returns its summary.
    /// Outputs not received by then are discarded and counted.
    pub async fn finish(self) -> anyhow::Result<RunSummary> {
        Ok(self.finish_with_memory().await?.0)
    }

    /// As [`RunHandle::finish`], also returning each key's short-term memory.
    pub async fn finish_with_memory(self) -> anyhow::Result<(RunSummary, BTreeMap<String, Value>)> {
        let RunHandle {
            events,
            outputs,
            done,
        } = self;
        drop(events);
        drop(outputs);
        let result = done.await?;
        if let Some(fatal) = result.fatal {
            anyhow::bail!("the run stopped taking input: {fatal}");
        }
        let memory = result
            .memory
            .into_iter()
            .map(|(key, object)| (key, object.to_value()))
            .collect();
        Ok((result.summary, memory))
    }
}

impl Runtime {
    /// A runtime for `plan` with the plan's runtime settings.
    pub fn new(plan: AgentPlan) -> Self {
        Self::shared(Arc::new(plan))
    }

    /// A runtime for a plan shared with other runtimes.
    pub fn shared(plan: Arc<AgentPlan>) -> Self {
        Runtime {
            settings: plan.runtime,
            plan,
            memory: HashMap::new(),
            state: None,
            committed: HashMap::new(),
        }
    }

    /// Overrides the runtime settings.
    pub fn with_settings(mut self, settings: RuntimeSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Starts with this short-term memory per key (as
    /// [`RunHandle::finish_with_memory`] returns it).
    pub fn with_memory(mut self, memory: BTreeMap<String, Value>) -> anyhow::Result<Self> {
        for (key, value) in memory {
            let mut object = MemoryObject::new();
            object
                .set("", value)
                .map_err(|e| anyhow::anyhow!("short-term memory of key `{key}`: {e}"))?;
            self.memory.insert(key, object);
        }
        Ok(self)
    }

    /// Keeps durable state in `state`: each key's memory and position are
    /// restored from it, input events it has committed are skipped (events
    /// are numbered from 1 in the order sent, or as [`EventSender::send_at`]
    /// says, so a restart must send the same input in the same order, or
    /// resume at [`StateStore::resume_point`]), host
    /// calls it recorded are replayed, and every agent run is committed to
    /// it before its outputs are released.
    pub fn with_state(mut self, state: Arc<StateStore>) -> Self {
        for (key, seq, memory) in state.keys() {
            let mut object = MemoryObject::new();
            if !memory.is_null() {
                let _ = object.set("", memory.clone());
            }
            self.memory.insert(key.clone(), object);
            self.committed.insert(key.clone(), *seq);
        }
        self.state = Some(state);
        self
    }

    /// Starts the run on the current tokio runtime.
    pub fn start(self) -> RunHandle {
        let settings = self.settings;
        let (input_tx, input_rx) = mpsc::channel(settings.max_concurrency.max(64));
        let (output_tx, output_rx) = mpsc::channel(1024);
        let counters = Counters::new(self.plan.actions.keys().cloned());
        let (release_tx, release_rx) = match self.state {
            Some(_) => {
                // Bounded, so that a slow sink holds up new runs rather
                // than letting committed outputs pile up.
                let (tx, rx) = mpsc::channel(settings.max_pending_events.max(1));
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let shared = Arc::new(Shared {
            plan: self.plan,
            settings,
            counters,
            outputs: output_tx,
            permits: Semaphore::new(settings.max_concurrency),
            usage: Arc::default(),
            fatal: std::sync::Mutex::new(None),
            releases: std::sync::Mutex::new(release_tx),
            in_flight: std::sync::Mutex::default(),
            state: self.state,
        });
        let releaser = release_rx.map(|rx| tokio::spawn(release_committed(shared.clone(), rx)));
        let done = tokio::spawn(schedule(
            shared,
            input_rx,
            self.memory,
            self.committed,
            releaser,
        ));
        RunHandle {
            events: EventSender { tx: Some(input_tx) },
            outputs: output_rx,
            done,
        }
    }
}

/// What every agent run of one [`Runtime`] shares.
struct Shared {
    plan: Arc<AgentPlan>,
    settings: RuntimeSettings,
    counters: Counters,
    outputs: mpsc::Sender<Event>,
    permits: Semaphore,
    usage: Arc<ModelUsage>,
    state: Option<Arc<StateStore>>,
    /// Why the run had to stop taking input (the journal failed).
    fatal: std::sync::Mutex<Option<String>>,
    /// Commits waiting to release their outputs, with a journal (taken
    /// away when the last run has ended, which ends the releaser).
    releases: std::sync::Mutex<Option<mpsc::Sender<Release>>>,
    /// Input events taken whose commits are not queued yet, with a journal.
    in_flight: std::sync::Mutex<InFlight>,
}

/// The state of one key.
#[derive(Default)]
struct KeyState {
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
async fn schedule(
    shared: Arc<Shared>,
    mut input: mpsc::Receiver<(Event, Option<InputPosition>)>,
    memory: HashMap<String, MemoryObject>,
    committed: HashMap<String, u64>,
    releaser: Option<JoinHandle<()>>,
) -> RunResult {
    let started = Instant::now();
    let mut keys: HashMap<String, KeyState> = memory
        .into_iter()
        .map(|(key, object)| {
            let state = KeyState {
                memory: Some(object),
                committed: committed.get(&key).copied().unwrap_or(0),
                ..KeyState::default()
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
                if shared.state.is_some() {
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
    if let (Some(state), Some(point)) = (&shared.state, resume) {
        state.set_resume_point(point);
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

/// One agent run: an input event and everything it causes, for one key.
/// With a journal, its outputs are held until the run is committed.
async fn agent_run(
    shared: &Shared,
    input: Event,
    seq: u64,
    short_term: MemoryObject,
    permit: tokio::sync::SemaphorePermit<'_>,
) -> MemoryObject {
    let mut memory = KeyMemory {
        short_term,
        sensory: MemoryObject::new(),
    };
    let run_id: Arc<str> = Arc::from(input.id.as_str());
    let key = input.key.clone();
    let mut held: Option<Vec<Event>> = shared.state.as_ref().map(|_| Vec::new());
    // Each event with its depth and whom it acts for (see `host::Authority`).
    let mut queue: VecDeque<(Event, usize, Option<Arc<Authority>>)> =
        VecDeque::from([(input, 0, None)]);
    let task_context = task::TaskContext {
        env: &shared.plan.env,
        usage: &shared.usage,
        journal: shared.state.clone().map(|state| (state, run_id.clone())),
    };
    let mut budget = RunBudget::default();
    'run: while let Some((event, depth, authority)) = queue.pop_front() {
        let routes = shared.plan.route(&event.event_type);
        if routes.is_empty() {
            if event.event_type != types::ERROR {
                shared.counters.unrouted(&event.event_type);
            }
            continue;
        }
        let wit_event = to_wit(&event);
        for action in routes {
            if let Some(cut) = budget.start_task(&shared.settings) {
                let error = run_limit_error(shared, action, &event, cut);
                release(shared, &mut held, error).await;
                break 'run;
            }
            let started = Instant::now();
            let outcome = task::run(
                action,
                &event,
                &wit_event,
                authority.as_ref(),
                memory,
                &task_context,
            )
            .await;
            memory = outcome.memory;
            let counters = &shared.counters.actions[&action.name];
            counters.runs.fetch_add(1, Relaxed);
            counters
                .busy_nanos
                .fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
            shared
                .counters
                .host_calls
                .fetch_add(outcome.host_calls, Relaxed);
            if !outcome.denial_counts.is_empty() {
                counters.denied(&outcome.denial_counts);
            }
            match outcome.result {
                Ok(emitted) => {
                    let spent = budget.spend(&shared.settings, emitted.len(), outcome.output_bytes);
                    if let Some(cut) = spent {
                        // What this task emitted is dropped with the rest
                        // of the run: the run is cut where it overran.
                        let error = run_limit_error(shared, action, &event, cut);
                        release(shared, &mut held, error).await;
                        break 'run;
                    }
                    for e in emitted {
                        // A built-in serving a request passes its authority
                        // on (narrowed, once a model was asked); anything
                        // else acts for the action that emitted it.
                        let acts_for = e.authority.or_else(|| match &action.kind {
                            ActionKind::Builtin(b) if b.acts_for_requester() => authority.clone(),
                            _ => Some(action.authority.clone()),
                        });
                        let next = Event {
                            id: e.id,
                            event_type: e.event_type,
                            key: event.key.clone(),
                            payload: e.payload,
                            upstream_id: Some(event.id.clone()),
                            upstream_action: Some(action.name.clone()),
                            attributes: e.attributes.into_iter().collect(),
                        };
                        if next.event_type == types::OUTPUT {
                            release(shared, &mut held, next).await;
                        } else if depth + 1 > shared.settings.max_depth {
                            let error = depth_error(shared, action, &event, &next);
                            release(shared, &mut held, error).await;
                        } else {
                            queue.push_back((next, depth + 1, acts_for));
                        }
                    }
                }
                Err(failure) => {
                    counters.failed(&failure);
                    let error = failure_event(action, &event, &failure);
                    tracing::warn!(
                        action = %action.name, key = %event.key, event = %event.id,
                        kind = failure.kind(), details = %failure.details(), "action failed"
                    );
                    // Error events may be handled by actions listening to
                    // `_error_event`, but an error handler's own failure is not
                    // routed again.
                    let route_again = event.event_type != types::ERROR
                        && depth < shared.settings.max_depth
                        && !shared.plan.route(types::ERROR).is_empty();
                    if route_again {
                        queue.push_back((error.clone(), depth + 1, None));
                    }
                    release(shared, &mut held, error).await;
                }
            }
        }
    }
    drop(permit);
    let releases = shared.releases.lock().expect("release lock").clone();
    if let (Some(state), Some(outputs), Some(releases)) = (&shared.state, held, releases) {
        // The commit is queued now; the key's next run may start at once,
        // and the outputs are released, in commit order, once it is on disk.
        let snapshot = memory.short_term.to_json();
        let durable = {
            // Queued under the lock, so that commits queue in the order
            // their resume points count them: a resume point on disk never
            // counts a commit that is not.
            let mut in_flight = shared.in_flight.lock().expect("in-flight lock");
            in_flight.committed(seq);
            let resume = in_flight.resume_point();
            state.commit_at(&key, seq, snapshot, outputs, &run_id, resume)
        };
        let _ = releases.send(Box::pin(durable)).await;
    }
    memory.short_term
}

/// A commit on its way to disk, resolving to the outputs it releases.
type Release =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Event>, StateError>> + Send>>;

/// Releases committed outputs in commit order; a failed commit releases
/// nothing more and stops intake (a restart re-runs what was not committed).
async fn release_committed(shared: Arc<Shared>, mut releases: mpsc::Receiver<Release>) {
    while let Some(durable) = releases.recv().await {
        if shared.fatal.lock().expect("fatal lock").is_some() {
            continue;
        }
        match durable.await {
            Ok(outputs) => {
                for event in outputs {
                    deliver(&shared, event).await;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot commit a run; taking no more input");
                shared
                    .fatal
                    .lock()
                    .expect("fatal lock")
                    .get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// Sends an output or error event now, or holds it until the run commits.
async fn release(shared: &Shared, held: &mut Option<Vec<Event>>, event: Event) {
    match held {
        Some(held) => held.push(event),
        None => deliver(shared, event).await,
    }
}

/// Sends an output or error event to the run's receiver.
async fn deliver(shared: &Shared, event: Event) {
    let counter = if event.event_type == types::ERROR {
        &shared.counters.error_events
    } else {
        &shared.counters.outputs
    };
    counter.fetch_add(1, Relaxed);
    if shared.outputs.send(event).await.is_err() {
        shared.counters.outputs_discarded.fetch_add(1, Relaxed);
    }
}

fn error_event(
    action: &ActionPlan,
    event: &Event,
    index: usize,
    kind: &str,
    details: Value,
) -> Event {
    let mut payload = json!({
        "error": kind,
        "action": action.name,
        "key": event.key,
        "event_id": event.id,
        "event_type": event.event_type,
    });
    if let (Value::Object(p), Value::Object(d)) = (&mut payload, details) {
        p.extend(d);
    }
    Event {
        id: event::derived_id(&event.id, &format!("{}!error", action.name), index),
        event_type: types::ERROR.to_string(),
        key: event.key.clone(),
        payload,
        upstream_id: Some(event.id.clone()),
        upstream_action: Some(action.name.clone()),
        attributes: BTreeMap::new(),
    }
}

fn failure_event(action: &ActionPlan, event: &Event, failure: &Failure) -> Event {
    error_event(action, event, 0, failure.kind(), failure.details())
}

fn depth_error(shared: &Shared, action: &ActionPlan, event: &Event, dropped: &Event) -> Event {
    let max_depth = shared.settings.max_depth;
    error_event(
        action,
        event,
        1,
        "depth-limit",
        json!({
            "message": format!(
                "routing loop cut: the `{}` event emitted by `{}` would be hop {} of this run (max_depth {max_depth})",
                dropped.event_type, action.name, max_depth + 1
            ),
            "dropped_event_type": dropped.event_type,
            "max_depth": max_depth,
        }),
    )
}

/// What one agent run has used of its budget (`max_run_*`): however an
/// action fans out, a run takes bounded work and memory.
#[derive(Default)]
struct RunBudget {
    tasks: usize,
    events: usize,
    bytes: usize,
}

/// The run setting a run reached, and what it was doing.
struct RunCut {
    setting: &'static str,
    value: usize,
    detail: String,
}

impl RunBudget {
    /// Counts a task about to start; the cut if the run may start no more.
    fn start_task(&mut self, settings: &RuntimeSettings) -> Option<RunCut> {
        self.tasks += 1;
        (self.tasks > settings.max_run_tasks).then(|| RunCut {
            setting: "max_run_tasks",
            value: settings.max_run_tasks,
            detail: format!("task #{} of the run", self.tasks),
        })
    }

    /// Counts what a task emitted and wrote; the cut if that overran.
    fn spend(&mut self, settings: &RuntimeSettings, events: usize, bytes: usize) -> Option<RunCut> {
        self.events += events;
        self.bytes += bytes;
        if self.events > settings.max_run_events {
            return Some(RunCut {
                setting: "max_run_events",
                value: settings.max_run_events,
                detail: format!("{} events emitted in the run", self.events),
            });
        }
        (self.bytes > settings.max_run_bytes).then(|| RunCut {
            setting: "max_run_bytes",
            value: settings.max_run_bytes,
            detail: format!("{} bytes emitted and written in the run", self.bytes),
        })
    }
}

fn run_limit_error(shared: &Shared, action: &ActionPlan, event: &Event, cut: RunCut) -> Event {
    tracing::warn!(key = %event.key, setting = cut.setting, "agent run cut by its budget");
    *shared
        .counters
        .runs_cut
        .lock()
        .expect("counter lock")
        .entry(cut.setting)
        .or_default() += 1;
    error_event(
        action,
        event,
        2,
        "run-limit",
        json!({
            "message": format!(
                "agent run cut: runtime setting `{}` ({}) reached at {}; the rest of the run was dropped",
                cut.setting, cut.value, cut.detail
            ),
            "limit": cut.setting,
            "value": cut.value,
        }),
    )
}

fn to_wit(event: &Event) -> WitEvent {
    WitEvent {
        id: event.id.clone(),
        event_type: event.event_type.clone(),
        key: event.key.clone(),
        payload: event.payload.to_string(),
        upstream_id: event.upstream_id.clone(),
        attributes: event
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}
