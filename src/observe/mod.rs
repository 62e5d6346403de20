//! Seeing inside a running agent: the event log (every event and execution
//! as a JSON line, in Apache Flink Agents' record shape), and reading it
//! back (`tree`: each run as a tree; `query`: jq over the records), and
//! OpenTelemetry traces and metrics (`telemetry`).

pub mod eventlog;
pub mod query;
pub mod telemetry;
pub mod tree;
