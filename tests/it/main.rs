//! weir's integration tests: one test binary (linking wasmtime once, not
//! once per file), one module per area, sharing `support`. The hostile-guest
//! suite (`tests/sandbox`) is a binary of its own: it measures its process's
//! memory.

mod support;

mod cli;
mod durable;
mod eventlog;
mod fuzz_corpus;
mod langs;
mod layers;
mod local;
mod models;
mod reconcile;
mod replay;
mod reviews;
mod runtime;
mod serve;
mod serve_durable;
mod serve_web;
mod skill_md;
mod skills;
mod telemetry;
