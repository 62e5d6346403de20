//! The single path every host call takes: [`Task::call`] for calls answered
//! at once, [`Task::call_async`] for calls that wait (models, tools). It
//! checks the grant, counts and traces the call, and under durable
//! execution answers from or records to the journal (see [`super::durable`]).

use super::durable::JournaledCall;
use super::{Capability, HostError, Task};
use crate::observe::telemetry::{AgentTelemetry, CallKind, CallSpan, Retries, TaskTelemetry};
use std::sync::Arc;

/// One host function, as the host-call path sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Op {
    pub capability: Capability,
    pub name: &'static str,
}

impl Task {
    /// Counts the call and checks its grant.
    fn enter(&mut self, op: Op) -> Result<(), HostError> {
        self.host_calls += 1;
        self.calls[op.capability as usize] += 1;
        self.check_readings()?;
        if self.input.grants.allows(op.capability) {
            return Ok(());
        }
        Err(self.deny(
            op.capability.name(),
            op.name,
            format!(
                "action {} is not granted {:?} (calling `{}`)",
                self.principal(),
                op.capability,
                op.name
            ),
        ))
    }

    fn trace<R>(&self, op: Op, result: &Result<R, HostError>) {
        tracing::trace!(
            action = %self.input.action_name,
            key = %self.input.key,
            call = op.name,
            ok = result.is_ok(),
            "host call"
        );
    }

    /// The single host-call path for calls answered at once.
    pub(crate) fn call<R>(
        &mut self,
        op: Op,
        f: impl FnOnce(&mut Task) -> Result<R, HostError>,
    ) -> Result<R, HostError> {
        self.enter(op)?;
        let result = f(self);
        self.trace(op, &result);
        result
    }

    /// The single host-call path for calls that wait (models, tools):
    /// `prepare` checks the request against the task and returns the work as
    /// a future that owns what it needs, so the task is free while it runs.
    /// With a journal, a call already recorded for this task (same position,
    /// same request) is answered from the record instead; a call made is
    /// recorded. A call whose intent was recorded but not its result is
    /// handed to `prepare` as interrupted, to reconcile.
    /// `callee` is what is called and `asked` what it is asked (see
    /// [`Task::logs_calls`]), for the event log.
    pub(crate) async fn call_async<R, F>(
        &mut self,
        op: Op,
        callee: Callee<'_>,
        asked: Option<serde_json::Value>,
        request: &impl serde::Serialize,
        prepare: impl FnOnce(&mut Task, CallSite) -> Result<F, HostError>,
    ) -> Result<R, HostError>
    where
        F: std::future::Future<Output = Result<R, HostError>> + Send + 'static,
        R: CallReply + serde::Serialize + serde::de::DeserializeOwned,
    {
        let started = std::time::Instant::now();
        self.enter(op)?;
        let position = format!("{}/{}", self.position(), self.host_calls);
        let mut journaled =
            self.input.journal.as_ref().map(|(journal, run)| {
                JournaledCall::new(journal, run, &position, op.name, request)
            });
        let observed = self.observe_call(callee);
        if let Some(call) = &mut journaled
            && let Some(result) = call.recorded()
        {
            self.trace(op, &result);
            self.log_call(callee, asked, started, &result, true);
            if let Some(observed) = observed {
                observed.end(&result, true);
            }
            return result;
        }
        // The context the work runs in: the call's span's, else the
        // task's (its trace goes on with outbound requests either way).
        let telemetry = self.input.telemetry.as_ref().map(|task| TaskTelemetry {
            agent: task.agent.clone(),
            cx: match &observed {
                Some(observed) => observed.work_context(),
                None => task.cx.clone(),
            },
        });
        let context = telemetry.as_ref().map(|t| t.cx.clone());
        let site = CallSite {
            position,
            journal: journaled.clone(),
            telemetry,
        };
        let result = match (prepare(self, site), context) {
            (Ok(work), Some(context)) => {
                use opentelemetry::context::FutureExt as _;
                work.with_context(context).await
            }
            (Ok(work), None) => work.await,
            (Err(e), _) => Err(e),
        };
        let result = result.and_then(|reply| self.bounded_reply(op, reply));
        if let Some(call) = journaled {
            // The record may depend on what the task read so far.
            self.save_readings();
            call.record(&result);
        }
        self.trace(op, &result);
        self.log_call(callee, asked, started, &result, false);
        if let Some(observed) = observed {
            observed.end(&result, false);
        }
        result
    }

    /// Starts a waiting call's span and metrics, when either is recorded
    /// and the callee is granted (so that every label comes from the
    /// manifest).
    fn observe_call(&self, callee: Callee<'_>) -> Option<ObservedCall> {
        use opentelemetry::trace::TraceContextExt as _;
        let telemetry = self.input.telemetry.as_ref()?;
        if telemetry.agent.metrics.is_none() && !telemetry.cx.span().is_recording() {
            return None;
        }
        let grants = &self.input.grants;
        let resources = &self.input.env.resources;
        let (operation, name, model) = match callee {
            Callee::Chat(name) if grants.models.contains(name) => {
                let model = resources.chat_model(name).ok()?;
                (
                    "chat",
                    name,
                    Some((model.provider(), model.model().to_string())),
                )
            }
            Callee::Embed(name) if grants.models.contains(name) => {
                let model = resources.embedding_model(name).ok()?;
                (
                    "embeddings",
                    name,
                    Some((model.provider(), model.model().to_string())),
                )
            }
            Callee::Tool(name) if grants.tools.contains(name) => ("execute_tool", name, None),
            _ => return None,
        };
        let kind = CallKind {
            operation,
            name,
            model: model.as_ref().map(|(p, m)| (*p, m.as_str())),
        };
        let span = CallSpan::start(&telemetry.agent, &telemetry.cx, &kind);
        let retries = Arc::new(Retries::default());
        Some(ObservedCall {
            work: span.context().with_value(retries.clone()),
            agent: telemetry.agent.clone(),
            span,
            operation,
            name: name.to_string(),
            model,
            retries,
            started: std::time::Instant::now(),
        })
    }

    /// Whether calls are logged: only then is what a call asks worth
    /// copying for [`Task::call_async`].
    pub(crate) fn logs_calls(&self) -> bool {
        self.input.log.is_some()
    }

    /// Logs a waiting call as it ended, when an event log is written, with
    /// what it asked and what came back (the log's level cuts them).
    fn log_call<R: CallReply>(
        &self,
        callee: Callee<'_>,
        asked: Option<serde_json::Value>,
        started: std::time::Instant,
        result: &Result<R, HostError>,
        replayed: bool,
    ) {
        use crate::observe::eventlog::ExecutionOutcome;
        let Some(scope) = &self.input.log else {
            return;
        };
        let (entity_type, category, entity) = match callee {
            Callee::Chat(model) => ("llm", "model_call_failed", model),
            Callee::Embed(model) => ("embedding", "model_call_failed", model),
            Callee::Tool(tool) => ("tool", "tool_call_failed", tool),
        };
        let mut attributes = serde_json::Map::new();
        let mut metadata = serde_json::Map::new();
        if let Some(asked) = asked {
            attributes.insert("request".into(), asked);
        }
        let outcome = match result {
            Ok(reply) => {
                if let Some(logged) = reply.logged() {
                    attributes.insert("reply".into(), logged);
                }
                if let Some(model) = reply.model() {
                    metadata.insert("model".into(), model.into());
                }
                if let Some((input, output)) = reply.usage() {
                    attributes.insert("inputTokens".into(), input.into());
                    attributes.insert("outputTokens".into(), output.into());
                }
                if replayed {
                    ExecutionOutcome::Reused
                } else {
                    ExecutionOutcome::Succeeded
                }
            }
            Err(error) => ExecutionOutcome::Failed {
                category,
                kind: error.kind().to_string(),
                message: error.message().to_string(),
            },
        };
        scope.call(
            self.host_calls,
            crate::observe::eventlog::CallRecord {
                entity_type,
                entity_name: entity.to_string(),
                duration: started.elapsed(),
                outcome,
                metadata,
                attributes,
            },
        );
    }

    /// A model's or tool's reply, refused if it nests deeper than the
    /// task's `max_nesting`: it is kept (in memory, the journal) and must
    /// read back.
    fn bounded_reply<R: serde::Serialize>(&self, op: Op, reply: R) -> Result<R, HostError> {
        let max = self.input.limits.max_nesting;
        let levels = serde_json::to_value(&reply).map_or(0, |v| crate::limits::nesting(&v));
        if levels <= max {
            return Ok(reply);
        }
        Err(HostError::Invalid(format!(
            "the reply to `{}` nests {levels} levels deep, over the limit `max_nesting` ({max})",
            op.name
        )))
    }
}

/// A waiting call's span and metrics, from its start to its end.
struct ObservedCall {
    agent: Arc<AgentTelemetry>,
    span: CallSpan,
    /// The context its work runs in: the span's, with its retry count.
    work: opentelemetry::Context,
    operation: &'static str,
    name: String,
    /// The provider and its model name, for a model.
    model: Option<(&'static str, String)>,
    retries: Arc<Retries>,
    started: std::time::Instant,
}

impl ObservedCall {
    fn work_context(&self) -> opentelemetry::Context {
        self.work.clone()
    }

    /// Ends the span with what the reply says, and records the call's
    /// metrics (a call answered from the journal made no request: its span
    /// says so, and no metric counts it).
    fn end<R: CallReply>(self, result: &Result<R, HostError>, replayed: bool) {
        use opentelemetry::{KeyValue, Value};
        let seconds = self.started.elapsed().as_secs_f64();
        let retries = self.retries.0.load(std::sync::atomic::Ordering::Relaxed);
        let usage = result.as_ref().ok().and_then(CallReply::usage);
        if self.span.recording() {
            let mut attributes = Vec::new();
            if replayed {
                attributes.push(KeyValue::new("weir.call.replayed", true));
            }
            if retries > 0 {
                attributes.push(KeyValue::new("weir.model.retries", retries as i64));
            }
            if let Some((input, output)) = usage {
                attributes.push(KeyValue::new("gen_ai.usage.input_tokens", input as i64));
                attributes.push(KeyValue::new("gen_ai.usage.output_tokens", output as i64));
            }
            if let Ok(reply) = result {
                if let Some(model) = reply.model() {
                    attributes.push(KeyValue::new("gen_ai.response.model", model.to_string()));
                }
                if let Some(reason) = reply.finish_reason() {
                    attributes.push(KeyValue::new(
                        "gen_ai.response.finish_reasons",
                        Value::Array(
                            vec![opentelemetry::StringValue::from(reason.to_string())].into(),
                        ),
                    ));
                }
                if self.agent.record_content
                    && let Some((key, content)) = reply.content(self.operation)
                {
                    attributes.push(KeyValue::new(key, content));
                }
            }
            self.span.set(attributes);
        }
        let error = result.as_ref().err().map(|e| (e.kind(), e.message()));
        if !replayed && let Some(metrics) = &self.agent.metrics {
            match &self.model {
                Some((provider, model)) => metrics.model_call(
                    self.operation,
                    (provider, model),
                    seconds,
                    usage,
                    retries,
                    error.map(|(kind, _)| kind),
                ),
                None => metrics.tool_call(&self.name, seconds, error.map(|(kind, _)| kind)),
            }
        }
        self.span.end(error);
    }
}

/// What a waiting call calls, as the event log names it.
#[derive(Clone, Copy)]
pub(crate) enum Callee<'a> {
    /// A chat model resource.
    Chat(&'a str),
    /// An embedding model resource.
    Embed(&'a str),
    /// A tool.
    Tool(&'a str),
}

/// A waiting call's reply, as the event log sees it.
pub(crate) trait CallReply {
    /// Tokens in and out, for a model's reply.
    fn usage(&self) -> Option<(u64, u64)> {
        None
    }

    /// The model that answered.
    fn model(&self) -> Option<&str> {
        None
    }

    /// Why the model stopped.
    fn finish_reason(&self) -> Option<&str> {
        None
    }

    /// The reply's content as a span attribute (its GenAI name and JSON),
    /// for spans that record contents; `operation` is the call's.
    fn content(&self, _operation: &str) -> Option<(&'static str, String)> {
        None
    }

    /// The reply as the event log keeps it.
    fn logged(&self) -> Option<serde_json::Value> {
        None
    }
}

impl CallReply for crate::resources::api::ChatReply {
    fn usage(&self) -> Option<(u64, u64)> {
        Some((self.usage.input_tokens, self.usage.output_tokens))
    }

    fn model(&self) -> Option<&str> {
        Some(&self.model)
    }

    fn finish_reason(&self) -> Option<&str> {
        Some(&self.finish_reason)
    }

    fn content(&self, _operation: &str) -> Option<(&'static str, String)> {
        let message = serde_json::to_string(&[&self.message]).ok()?;
        Some(("gen_ai.output.messages", message))
    }

    fn logged(&self) -> Option<serde_json::Value> {
        serde_json::to_value(&self.message).ok()
    }
}

impl CallReply for serde_json::Value {
    fn content(&self, _operation: &str) -> Option<(&'static str, String)> {
        Some(("gen_ai.tool.call.result", self.to_string()))
    }

    fn logged(&self) -> Option<serde_json::Value> {
        Some(self.clone())
    }
}

/// Vectors are not logged: long, and unreadable.
impl CallReply for Vec<Vec<f32>> {}

/// Where a waiting host call stands, for the work [`Task::call_async`] runs.
pub(crate) struct CallSite {
    /// The call's position: event, action and call index.
    pub position: String,
    /// Its journal entry, under durable execution.
    pub journal: Option<JournaledCall>,
    /// The call's telemetry, which a task it runs (a tool's) runs in: its
    /// spans are the call's children.
    pub telemetry: Option<TaskTelemetry>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Grants, TaskInput};
    use std::sync::Arc;

    const EMIT: Op = Op {
        capability: Capability::Events,
        name: "events.emit",
    };

    fn task_of(grants: Grants) -> Task {
        Task::new(TaskInput {
            action_name: Arc::from("act"),
            grants: Arc::new(grants),
            ..TaskInput::idle()
        })
    }

    #[test]
    fn an_ungranted_call_is_denied_counted_and_never_runs() {
        let mut task = task_of(Grants::tool_default());
        let result = task.call(EMIT, |_| -> Result<(), HostError> {
            panic!("a denied call must not run")
        });
        let error = result.unwrap_err();
        assert_eq!(error.kind(), "denied");
        assert!(error.message().contains("`act`"), "{}", error.message());
        assert_eq!(task.host_calls, 1);
        assert_eq!(task.denials.first().map(|d| d.capability), Some("events"));

        let mut granted = task_of(Grants::action_default());
        assert_eq!(granted.call(EMIT, |_| Ok(7)).unwrap(), 7);
        assert!(granted.denials.first().is_none());
    }

    #[test]
    fn a_reply_nested_past_max_nesting_is_refused() {
        let mut task = task_of(Grants::action_default());
        task.input.limits.max_nesting = 3;
        let shallow = serde_json::json!({"a": {"b": 1}});
        assert!(task.bounded_reply(EMIT, shallow).is_ok());
        let deep = serde_json::json!({"a": {"b": {"c": {"d": 1}}}});
        let error = task.bounded_reply(EMIT, deep).unwrap_err();
        assert_eq!(error.kind(), "invalid");
        assert!(
            error.message().contains("max_nesting"),
            "{}",
            error.message()
        );
    }
}
