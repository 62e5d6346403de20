//! An OTLP/HTTP receiver on loopback: what weir's exporters send is decoded
//! with OpenTelemetry's own protobuf types and kept for the test to read.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Received {
    spans: Mutex<Vec<Span>>,
    metrics: Mutex<Vec<Metric>>,
}

pub struct OtlpReceiver {
    /// The base URL (`/v1/traces` and `/v1/metrics` are served).
    pub url: String,
    received: Arc<Received>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

const PROTOBUF: [(&str, &str); 1] = [("content-type", "application/x-protobuf")];

impl OtlpReceiver {
    pub async fn start() -> OtlpReceiver {
        let received = Arc::new(Received::default());
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .route("/v1/metrics", post(metrics))
            .with_state(received.clone());
        let (url, stop) = super::model_server::serve(app).await;
        OtlpReceiver {
            url,
            received,
            _stop: stop,
        }
    }

    pub fn spans(&self) -> Vec<Span> {
        self.received.spans.lock().unwrap().clone()
    }

    /// Every metric data point batch received, in order.
    pub fn metrics(&self) -> Vec<Metric> {
        self.received.metrics.lock().unwrap().clone()
    }
}

async fn traces(
    State(received): State<Arc<Received>>,
    body: Bytes,
) -> impl axum::response::IntoResponse {
    let request = ExportTraceServiceRequest::decode(body).expect("OTLP traces in protobuf");
    let spans = request
        .resource_spans
        .into_iter()
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans);
    received.spans.lock().unwrap().extend(spans);
    (
        PROTOBUF,
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

async fn metrics(
    State(received): State<Arc<Received>>,
    body: Bytes,
) -> impl axum::response::IntoResponse {
    let request = ExportMetricsServiceRequest::decode(body).expect("OTLP metrics in protobuf");
    let metrics = request
        .resource_metrics
        .into_iter()
        .flat_map(|r| r.scope_metrics)
        .flat_map(|s| s.metrics);
    received.metrics.lock().unwrap().extend(metrics);
    (
        PROTOBUF,
        ExportMetricsServiceResponse::default().encode_to_vec(),
    )
}

/// Attribute `key` of `attributes` as text (strings, ints, bools, arrays).
pub fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    Some(text(value))
}

fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::ArrayValue(a)) => {
            let items: Vec<String> = a.values.iter().map(text).collect();
            format!("[{}]", items.join(","))
        }
        other => format!("{other:?}"),
    }
}
