//! The runtime's metrics, as OpenTelemetry instruments: the same series
//! reach Prometheus (scraped) and an OTLP collector (pushed). Names follow
//! the OpenTelemetry conventions (`gen_ai.client.*` where the GenAI
//! conventions define one, `weir.*` otherwise); the Prometheus exporter
//! turns them into Prometheus names (`weir_events_total`,
//! `weir_action_duration_seconds`, ...).
//!
//! Attribute sets are made once per agent, action and event type, so
//! recording is a lookup and an add. Every label value comes from the
//! plan (actions, routed event types, granted models and tools): a guest
//! cannot make series without bound (anything else is `other`).

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

/// Seconds, for actions and tools: 50 us .. 82 s.
const SECONDS: [f64; 21] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16,
    0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/// Seconds, for model calls: the GenAI conventions' boundaries (10 ms ..
/// 82 s).
const GENAI_SECONDS: &[f64] = SECONDS.split_at(7).1;
/// Tokens: the GenAI conventions' boundaries for token usage.
const TOKENS: [f64; 14] = [
    1.0,
    4.0,
    16.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];

/// The gauges of runs in progress and input events queued, read when
/// metrics are collected. The callbacks hold them weakly: an agent's
/// runtime that is gone reports nothing.
fn observed_gauges(meter: &Meter, agent: &KeyValue) -> Arc<Gauges> {
    let gauges = Arc::new(Gauges::default());
    let gauge =
        |name: &'static str, unit: &'static str, about: &'static str, read: fn(&Gauges) -> i64| {
            let (watched, attributes) = (Arc::downgrade(&gauges), [agent.clone()]);
            meter
                .i64_observable_gauge(name)
                .with_unit(unit)
                .with_description(about)
                .with_callback(move |observer| {
                    if let Some(gauges) = watched.upgrade() {
                        observer.observe(read(&gauges), &attributes);
                    }
                })
                .build();
        };
    gauge(
        "weir.runs.active",
        "{run}",
        "Agent runs in progress (keys in flight)",
        |g| g.runs_active.load(Relaxed),
    );
    gauge(
        "weir.events.queued",
        "{event}",
        "Input events taken and waiting for their key's turn",
        |g| g.queued.load(Relaxed),
    );
    gauges
}

/// Where an event stands in its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    Input = 0,
    Intermediate = 1,
    Output = 2,
    Error = 3,
}

const KINDS: [&str; 4] = ["input", "intermediate", "output", "error"];

/// One agent's instruments, with their attribute sets made once.
pub(crate) struct AgentMetrics {
    agent: KeyValue,
    events: Counter<u64>,
    /// Attributes by event type, then [`EventKind`].
    event_attributes: HashMap<String, [Box<[KeyValue]>; 4]>,
    other_event: [Box<[KeyValue]>; 4],
    action_runs: Counter<u64>,
    action_duration: Histogram<f64>,
    host_calls: Counter<u64>,
    denials: Counter<u64>,
    limits: Counter<u64>,
    model_duration: Histogram<f64>,
    tokens: Histogram<u64>,
    retries: Counter<u64>,
    tool_duration: Histogram<f64>,
    /// Runs in progress and input events queued: plain atomics, read
    /// when metrics are collected (observable gauges), as they change
    /// twice per event.
    gauges: Arc<Gauges>,
    actions: HashMap<String, ActionMetrics>,
    journal: JournalMetrics,
}

#[derive(Default)]
struct Gauges {
    runs_active: AtomicI64,
    queued: AtomicI64,
}

/// The durable-execution journal's instruments: group commits, the bytes
/// they wrote and how long writing and syncing took.
#[derive(Clone)]
pub(crate) struct JournalMetrics {
    attributes: Arc<[KeyValue]>,
    commits: Counter<u64>,
    syncs: Histogram<f64>,
    bytes: Counter<u64>,
}

impl JournalMetrics {
    /// A group commit of `commits` runs wrote `bytes` and synced them in
    /// `seconds`.
    pub(crate) fn synced(&self, commits: u64, bytes: u64, seconds: f64) {
        self.commits.add(commits, &self.attributes);
        self.bytes.add(bytes, &self.attributes);
        self.syncs.record(seconds, &self.attributes);
    }
}

/// One action's attribute sets.
pub(crate) struct ActionMetrics {
    /// Agent and action.
    base: Box<[KeyValue]>,
    /// Agent, action and a successful outcome.
    ok: Box<[KeyValue]>,
    /// Agent, action and a capability, by the capability's index (made
    /// on first use).
    calls: [OnceLock<Box<[KeyValue]>>; MAX_CAPABILITIES],
}

/// The most capabilities host calls are counted by.
pub(crate) const MAX_CAPABILITIES: usize = 8;

impl AgentMetrics {
    /// Agent `agent`'s instruments, labelled with its `actions` and the
    /// event types it routes (`routed`; the built-in types are added).
    pub(crate) fn new<'a>(
        meter: &Meter,
        agent: &str,
        actions: impl Iterator<Item = &'a str>,
        routed: impl Iterator<Item = &'a str>,
    ) -> AgentMetrics {
        let agent = KeyValue::new("weir.agent", agent.to_string());
        let types = routed.chain(crate::event::types::ALL.iter().copied());
        let attributes_of = |event_type: &str| {
            KINDS.map(|kind| {
                Box::from([
                    agent.clone(),
                    KeyValue::new("weir.event.kind", kind),
                    KeyValue::new("weir.event.type", event_type.to_string()),
                ])
            })
        };
        let event_attributes = types.map(|t| (t.to_string(), attributes_of(t))).collect();
        let other_event = attributes_of("other");
        let actions = actions
            .map(|name| {
                let base: Box<[KeyValue]> = Box::from([
                    agent.clone(),
                    KeyValue::new("weir.action", name.to_string()),
                ]);
                let ok = base
                    .iter()
                    .cloned()
                    .chain([KeyValue::new("weir.outcome", "ok")])
                    .collect();
                let calls = Default::default();
                (name.to_string(), ActionMetrics { base, ok, calls })
            })
            .collect();
        AgentMetrics {
            events: meter
                .u64_counter("weir.events")
                .with_unit("{event}")
                .with_description(
                    "Events of agent runs, by kind (input, intermediate, output, error) and type",
                )
                .build(),
            event_attributes,
            other_event,
            action_runs: meter
                .u64_counter("weir.action.runs")
                .with_unit("{task}")
                .with_description(
                    "Action tasks run, by outcome (ok, failed) and failure kind (error.type)",
                )
                .build(),
            action_duration: meter
                .f64_histogram("weir.action.duration")
                .with_unit("s")
                .with_description("How long action tasks took, host calls included")
                .with_boundaries(SECONDS.to_vec())
                .build(),
            host_calls: meter
                .u64_counter("weir.host.calls")
                .with_unit("{call}")
                .with_description("Host calls made by guests, by capability")
                .build(),
            denials: meter
                .u64_counter("weir.denials")
                .with_unit("{call}")
                .with_description(
                    "Host calls refused because the action is not granted them, by capability",
                )
                .build(),
            limits: meter
                .u64_counter("weir.limits.hit")
                .with_unit("{stop}")
                .with_description("Tasks and runs stopped by a limit, by limit")
                .build(),
            model_duration: meter
                .f64_histogram("gen_ai.client.operation.duration")
                .with_unit("s")
                .with_description("GenAI operation duration")
                .with_boundaries(GENAI_SECONDS.to_vec())
                .build(),
            tokens: meter
                .u64_histogram("gen_ai.client.token.usage")
                .with_unit("{token}")
                .with_description("Number of input and output tokens used")
                .with_boundaries(TOKENS.to_vec())
                .build(),
            retries: meter
                .u64_counter("weir.model.retries")
                .with_unit("{request}")
                .with_description("Model requests sent again after a failure or a rate limit")
                .build(),
            tool_duration: meter
                .f64_histogram("weir.tool.duration")
                .with_unit("s")
                .with_description("How long tool calls took")
                .with_boundaries(SECONDS.to_vec())
                .build(),
            gauges: observed_gauges(meter, &agent),
            actions,
            journal: JournalMetrics {
                attributes: Arc::from([agent.clone()]),
                commits: meter
                    .u64_counter("weir.journal.commits")
                    .with_unit("{run}")
                    .with_description("Agent runs committed to the journal")
                    .build(),
                syncs: meter
                    .f64_histogram("weir.journal.sync.duration")
                    .with_unit("s")
                    .with_description("How long writing and syncing one group commit took")
                    .with_boundaries(SECONDS.to_vec())
                    .build(),
                bytes: meter
                    .u64_counter("weir.journal.written")
                    .with_unit("By")
                    .with_description("Bytes appended to the journal")
                    .build(),
            },
            agent,
        }
    }

    /// Counts an event of `kind` and type `event_type`.
    pub(crate) fn event(&self, kind: EventKind, event_type: &str) {
        let attributes = self
            .event_attributes
            .get(event_type)
            .unwrap_or(&self.other_event);
        self.events.add(1, &attributes[kind as usize]);
    }

    /// Action `action`'s attribute sets.
    pub(crate) fn action(&self, action: &str) -> Option<&ActionMetrics> {
        self.actions.get(action)
    }

    /// Records a task of `action` that took `seconds`; `failure` is its
    /// failure kind and the limit it reached, if any.
    pub(crate) fn task(
        &self,
        action: &ActionMetrics,
        seconds: f64,
        failure: Option<(&'static str, Option<&'static str>)>,
        calls: &[(&'static str, u32)],
        denials: &std::collections::BTreeMap<&'static str, u64>,
    ) {
        self.action_duration.record(seconds, &action.base);
        match failure {
            None => self.action_runs.add(1, &action.ok),
            Some((kind, limit)) => {
                let mut attributes = action.base.to_vec();
                attributes.push(KeyValue::new("weir.outcome", "failed"));
                attributes.push(KeyValue::new("error.type", kind));
                self.action_runs.add(1, &attributes);
                if let Some(limit) = limit {
                    self.limit(action, limit);
                }
            }
        }
        for (index, (capability, n)) in calls.iter().enumerate().take(MAX_CAPABILITIES) {
            if *n == 0 {
                continue;
            }
            let attributes = action.calls[index].get_or_init(|| {
                let mut attributes = action.base.to_vec();
                attributes.push(KeyValue::new("weir.capability", *capability));
                attributes.into()
            });
            self.host_calls.add(u64::from(*n), attributes);
        }
        for (capability, n) in denials {
            let mut attributes = action.base.to_vec();
            attributes.push(KeyValue::new("weir.capability", *capability));
            self.denials.add(*n, &attributes);
        }
    }

    /// Counts a limit reached by `action`'s task or run.
    pub(crate) fn limit(&self, action: &ActionMetrics, limit: &'static str) {
        let mut attributes = action.base.to_vec();
        attributes.push(KeyValue::new("weir.limit", limit));
        self.limits.add(1, &attributes);
    }

    /// Records a model call: `operation` (`chat`, `embeddings`) to
    /// `provider`'s `model`, its duration, tokens in and out, retries, and
    /// its error kind if it failed.
    pub(crate) fn model_call(
        &self,
        operation: &'static str,
        (provider, model): (&'static str, &str),
        seconds: f64,
        tokens: Option<(u64, u64)>,
        retries: u64,
        error: Option<&'static str>,
    ) {
        let mut attributes = vec![
            self.agent.clone(),
            KeyValue::new("gen_ai.operation.name", operation),
            KeyValue::new("gen_ai.provider.name", provider),
            KeyValue::new("gen_ai.request.model", model.to_string()),
        ];
        if retries > 0 {
            self.retries.add(retries, &attributes);
        }
        if let Some((input, output)) = tokens {
            attributes.push(KeyValue::new("gen_ai.token.type", "input"));
            self.tokens.record(input, &attributes);
            attributes.pop();
            attributes.push(KeyValue::new("gen_ai.token.type", "output"));
            self.tokens.record(output, &attributes);
            attributes.pop();
        }
        if let Some(error) = error {
            attributes.push(KeyValue::new("error.type", error));
        }
        self.model_duration.record(seconds, &attributes);
    }

    /// Records a tool call to `tool` that took `seconds`.
    pub(crate) fn tool_call(&self, tool: &str, seconds: f64, error: Option<&'static str>) {
        let mut attributes = vec![
            self.agent.clone(),
            KeyValue::new("gen_ai.tool.name", tool.to_string()),
        ];
        if let Some(error) = error {
            attributes.push(KeyValue::new("error.type", error));
        }
        self.tool_duration.record(seconds, &attributes);
    }

    /// The journal's instruments.
    pub(crate) fn journal(&self) -> JournalMetrics {
        self.journal.clone()
    }

    /// A run started (`1`) or ended (`-1`).
    pub(crate) fn runs_active(&self, delta: i64) {
        self.gauges.runs_active.fetch_add(delta, Relaxed);
    }

    /// Input events were queued (`+n`) or taken from the queue (`-n`).
    pub(crate) fn queued(&self, delta: i64) {
        self.gauges.queued.fetch_add(delta, Relaxed);
    }
}
