//! Seeing inside a running agent: the event log (every event and execution
//! as a JSON line, in Apache Flink Agents' record shape).

pub mod eventlog;
pub mod tree;
