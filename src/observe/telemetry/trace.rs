//! Spans of a run, on the OpenTelemetry GenAI semantic conventions: an
//! `invoke_agent {agent}` span per run (joining the caller's trace when the
//! input carries W3C `traceparent`), a span per action task, and a span
//! per model or tool call (`chat {model}`, `embeddings {model}`,
//! `execute_tool {tool}`). A run the sampler leaves out makes no spans
//! below its root, but still carries its trace context on outbound calls.

use super::AgentTelemetry;
use crate::event::Event;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::sync::Arc;

/// The attribute (and HTTP header) W3C trace context travels in.
pub const TRACEPARENT: &str = "traceparent";

/// A run's trace: its `invoke_agent` span, and whether it is recorded.
pub(crate) struct RunTrace {
    telemetry: Arc<AgentTelemetry>,
    cx: Context,
}

impl RunTrace {
    /// Starts run `input`'s span, in the trace its `traceparent` attribute
    /// names (a malformed one is reported once and counted, and the run
    /// starts a trace of its own). `None` without a tracer.
    pub(crate) fn start(telemetry: &Arc<AgentTelemetry>, input: &Event) -> Option<RunTrace> {
        let tracer = telemetry.tracer.as_ref()?;
        let parent = match input.attributes.get(TRACEPARENT) {
            Some(value) => {
                let parent = TraceContextPropagator::new().extract(&Attributes(&input.attributes));
                if !parent.span().span_context().is_valid() {
                    telemetry.faults.bad_traceparent(&input.key, value);
                }
                parent
            }
            None => Context::new(),
        };
        // Named and described only once sampled: a run left out costs no
        // allocation for them.
        let mut span = tracer
            .span_builder("invoke_agent")
            .with_kind(SpanKind::Internal)
            .start_with_context(tracer, &parent);
        if span.is_recording() {
            span.update_name(format!("invoke_agent {}", telemetry.agent));
            span.set_attributes([
                KeyValue::new("gen_ai.operation.name", "invoke_agent"),
                KeyValue::new("gen_ai.agent.name", telemetry.agent.to_string()),
                KeyValue::new("weir.run.id", input.id.clone()),
                KeyValue::new("weir.key", input.key.clone()),
                KeyValue::new("weir.event.type", input.event_type.clone()),
            ]);
        }
        Some(RunTrace {
            telemetry: telemetry.clone(),
            cx: parent.with_span(span),
        })
    }

    fn recorded(&self) -> bool {
        self.cx.span().is_recording()
    }

    /// The context a task of the run runs in: its own span's, when the run
    /// is recorded, else the run's (so outbound calls carry the trace on).
    pub(crate) fn task(&self, action: &str, event: &Event) -> Context {
        let Some(tracer) = self.telemetry.tracer.as_ref().filter(|_| self.recorded()) else {
            return self.cx.clone();
        };
        let span = tracer
            .span_builder(format!("action {action}"))
            .with_kind(SpanKind::Internal)
            .with_attributes([
                KeyValue::new("weir.action.name", action.to_string()),
                KeyValue::new("weir.event.id", event.id.clone()),
                KeyValue::new("weir.event.type", event.event_type.clone()),
            ])
            .start_with_context(tracer, &self.cx);
        self.cx.with_span(span)
    }

    /// Ends the run's span with what it released.
    pub(crate) fn end(self, outputs: u64, errors: u64, cut: Option<&str>) {
        let span = self.cx.span();
        if span.is_recording() {
            span.set_attribute(KeyValue::new("weir.run.outputs", outputs as i64));
            span.set_attribute(KeyValue::new("weir.run.errors", errors as i64));
            if let Some(setting) = cut {
                span.set_attribute(KeyValue::new("error.type", setting.to_string()));
                span.set_status(Status::error(format!("the run was cut at `{setting}`")));
            }
        }
        span.end();
    }
}

/// Ends a task's span: failed tasks carry `error.type` (the failure kind)
/// and an error status.
pub(crate) fn end_task(cx: &Context, failure: Option<(&str, &str)>) {
    let span = cx.span();
    if !span.is_recording() {
        return;
    }
    if let Some((kind, message)) = failure {
        span.set_attribute(KeyValue::new("error.type", kind.to_string()));
        span.set_status(Status::error(message.to_string()));
    }
    span.end();
}

/// A model or tool call's span (when its run is recorded) and the
/// context its work runs in.
pub(crate) struct CallSpan {
    cx: Context,
}

/// What a call is, for its span and metrics.
pub(crate) struct CallKind<'a> {
    /// `chat`, `embeddings` or `execute_tool`.
    pub operation: &'static str,
    /// The model resource or tool.
    pub name: &'a str,
    /// The provider and its model name, for a model.
    pub model: Option<(&'static str, &'a str)>,
}

impl CallSpan {
    /// Starts the span of call `kind` made by the task running in `task`.
    pub(crate) fn start(telemetry: &AgentTelemetry, task: &Context, kind: &CallKind) -> CallSpan {
        let Some(tracer) = telemetry
            .tracer
            .as_ref()
            .filter(|_| task.span().is_recording())
        else {
            return CallSpan { cx: task.clone() };
        };
        let mut attributes = vec![KeyValue::new("gen_ai.operation.name", kind.operation)];
        let (name, span_kind) = match kind.model {
            Some((provider, model)) => {
                attributes.push(KeyValue::new("gen_ai.provider.name", provider));
                attributes.push(KeyValue::new("gen_ai.request.model", model.to_string()));
                attributes.push(KeyValue::new("weir.resource.name", kind.name.to_string()));
                (format!("{} {model}", kind.operation), SpanKind::Client)
            }
            None => {
                attributes.push(KeyValue::new("gen_ai.tool.name", kind.name.to_string()));
                (
                    format!("{} {}", kind.operation, kind.name),
                    SpanKind::Internal,
                )
            }
        };
        let span = tracer
            .span_builder(name)
            .with_kind(span_kind)
            .with_attributes(attributes)
            .start_with_context(tracer, task);
        CallSpan {
            cx: task.with_span(span),
        }
    }

    /// The context the call's work runs in (its trace context goes on
    /// outbound HTTP requests).
    pub(crate) fn context(&self) -> &Context {
        &self.cx
    }

    /// Whether the span records attributes.
    pub(crate) fn recording(&self) -> bool {
        self.cx.span().is_recording()
    }

    /// Sets `attributes` on the span.
    pub(crate) fn set(&self, attributes: impl IntoIterator<Item = KeyValue>) {
        let span = self.cx.span();
        if span.is_recording() {
            span.set_attributes(attributes);
        }
    }

    /// Ends the span; a failed call carries `error.type` and an error
    /// status.
    pub(crate) fn end(self, error: Option<(&str, &str)>) {
        end_task(&self.cx, error)
    }
}

/// Adds the trace context of `cx` to outbound HTTP `headers` (nothing when
/// `cx` is in no trace).
pub(crate) fn inject(cx: &Context, headers: &mut http::HeaderMap) {
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(cx, &mut Headers(headers));
    }
}

/// Adds the current trace context (see [`opentelemetry::context::FutureExt`])
/// to outbound HTTP `headers`.
pub(crate) fn inject_current(headers: &mut http::HeaderMap) {
    Context::map_current(|cx| inject(cx, headers));
}

struct Attributes<'a>(&'a std::collections::BTreeMap<String, String>);

impl Extractor for Attributes<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

struct Headers<'a>(&'a mut http::HeaderMap);

impl Injector for Headers<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_context_is_read_from_attributes_and_written_to_headers() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let attributes =
            std::collections::BTreeMap::from([(TRACEPARENT.to_string(), value.to_string())]);
        let cx = TraceContextPropagator::new().extract(&Attributes(&attributes));
        let span = cx.span();
        let remote = span.span_context();
        assert!(remote.is_valid() && remote.is_remote() && remote.is_sampled());
        assert_eq!(
            remote.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let mut headers = http::HeaderMap::new();
        inject(&cx, &mut headers);
        assert_eq!(headers[TRACEPARENT], value);

        for bad in [
            "00-xyz",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "",
        ] {
            let attributes =
                std::collections::BTreeMap::from([(TRACEPARENT.to_string(), bad.to_string())]);
            let cx = TraceContextPropagator::new().extract(&Attributes(&attributes));
            assert!(!cx.span().span_context().is_valid(), "{bad}");
            let mut headers = http::HeaderMap::new();
            inject(&cx, &mut headers);
            assert!(headers.is_empty(), "{bad}");
        }
    }
}
