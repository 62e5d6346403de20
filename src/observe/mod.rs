//! Seeing inside a running agent: the event log (every event and execution
//! as a JSON line, in Apache Flink Agents' record shape), and reading it
//! back (`tree`: each run as a tree; `query`: jq over the records).

pub mod eventlog;
pub mod query;
pub mod tree;
