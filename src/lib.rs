//! weir runs event-driven AI agents with every action sandboxed in
//! WebAssembly.
//!
//! An [`Agent`] (from a TOML manifest or built in code) is compiled into an
//! [`AgentPlan`]; a [`Runtime`] then runs the plan over events: one
//! ActionTask per (event, action) in a fresh WebAssembly instance, events of
//! one key in order, different keys concurrently.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use weir::{Agent, AgentPlan, Event, Runtime};
//! use serde_json::json;
//!
//! let agent = Agent::from_manifest("examples/word-stats/agent.toml")?;
//! let plan = AgentPlan::from_agent(&agent).await?;
//! let mut run = Runtime::new(plan).start();
//! run.events.send(Event::input("alice", json!({"text": "hello world"}))).await?;
//! run.events.close();
//! while let Some(output) = run.outputs.recv().await {
//!     println!("{}", output.to_json_line());
//! }
//! let summary = run.finish().await?;
//! eprintln!("{summary}");
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod agent;
mod builtin;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
mod host;
pub mod journal;
pub mod limits;
pub mod memory;
pub mod observe;
pub mod plan;
pub mod resources;
pub mod runtime;
pub mod sandbox;
pub mod serve;
pub mod skill;
mod tools;
mod util;

pub use agent::{
    ActionBuilder, Agent, AgentBuilder, DirGrant, GrantSpec, Isolation, ManifestError, ReuseScope,
    RuntimeSettings, SkillUse,
};
pub use event::Event;
pub use host::http::HttpRule;
pub use host::{Capability, Denial, Grants, KeyMemory};
pub use limits::{Limit, LimitExceeded, LimitSettings, Limits};
pub use plan::{AgentPlan, PlanError};
pub use runtime::{EventSender, RunError, RunHandle, RunReport, RunSummary, Runtime, SendPermit};
pub use sandbox::{Sandbox, SandboxConfig};
