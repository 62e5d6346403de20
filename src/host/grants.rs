//! What an action or tool may use ([`Grants`]), and what it was refused
//! ([`Denial`]): the manifest's grants, resolved at plan time.

use super::http::HttpRule;
use crate::agent::DirGrant;
use std::sync::Arc;

/// A host capability that an action can be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Its name, key and config.
    Context,
    /// Emitting events.
    Events,
    /// Short-term and sensory memory.
    Memory,
    /// Structured logging.
    Log,
    /// Chat and embedding models (each also granted by name).
    Model,
    /// Tools (each also granted by name).
    Tools,
}

impl Capability {
    /// Every capability, in declaration order (`ALL[c as usize] == c`).
    pub const ALL: [Capability; 6] = [
        Capability::Context,
        Capability::Events,
        Capability::Memory,
        Capability::Log,
        Capability::Model,
        Capability::Tools,
    ];

    const fn bit(self) -> u8 {
        1 << self as u8
    }

    /// Its name in error events and the summary.
    pub fn name(self) -> &'static str {
        match self {
            Capability::Context => "context",
            Capability::Events => "events",
            Capability::Memory => "memory",
            Capability::Log => "log",
            Capability::Model => "model",
            Capability::Tools => "tools",
        }
    }
}

/// What an action or tool may use: capabilities, models and tools by name,
/// outbound HTTP destinations, directories and environment variables.
/// Everything not listed is denied.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Grants {
    #[serde(skip)]
    capabilities: u8,
    /// Model resources it may call.
    pub models: std::collections::BTreeSet<String>,
    /// Tools it may call.
    pub tools: std::collections::BTreeSet<String>,
    /// Where it may send HTTP requests (wasi:http).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub http: Arc<[HttpRule]>,
    /// Host directories it sees, read-only unless `write`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dirs: Vec<DirGrant>,
    /// Environment variables it sees, by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Their values, read when the plan was made.
    #[serde(skip)]
    pub(crate) env_values: Vec<(String, String)>,
}

impl Grants {
    /// Context, events, memory and log: what every action gets; models and
    /// tools are granted by name.
    pub fn action_default() -> Grants {
        Grants {
            capabilities: Capability::Context.bit()
                | Capability::Events.bit()
                | Capability::Memory.bit()
                | Capability::Log.bit()
                | Capability::Model.bit()
                | Capability::Tools.bit(),
            ..Grants::default()
        }
    }

    /// Its context (the caller's key, its idempotency key), logging, and
    /// models and tools by name: what a tool gets.
    pub fn tool_default() -> Grants {
        Grants {
            capabilities: Capability::Context.bit()
                | Capability::Log.bit()
                | Capability::Model.bit()
                | Capability::Tools.bit(),
            ..Grants::default()
        }
    }

    /// Also grants what `spec` lists: HTTP rules are parsed, directories
    /// checked and environment values read now. Problems come back as
    /// (field, message).
    pub(crate) fn with(
        mut self,
        spec: &crate::agent::GrantSpec,
    ) -> Result<Grants, Vec<(&'static str, String)>> {
        let mut problems = Vec::new();
        self.models.extend(spec.models.iter().cloned());
        self.tools.extend(spec.tools.iter().cloned());
        let mut http = self.http.to_vec();
        for rule in &spec.http {
            match HttpRule::parse(rule) {
                Ok(rule) => http.push(rule),
                Err(message) => problems.push(("http", message)),
            }
        }
        self.http = http.into();
        for dir in &spec.dirs {
            if !dir.guest.starts_with('/') {
                problems.push((
                    "dirs",
                    format!("guest path `{}` must be absolute, like `/data`", dir.guest),
                ));
            } else if !dir.host.is_dir() {
                problems.push(("dirs", format!("{} is not a directory", dir.host.display())));
            } else {
                self.dirs.push(dir.clone());
            }
        }
        for name in &spec.env {
            if name.is_empty() || name.contains('=') {
                problems.push(("env", format!("`{name}` is not a variable name")));
                continue;
            }
            self.env.push(name.clone());
            if let Ok(value) = std::env::var(name) {
                self.env_values.push((name.clone(), value));
            }
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(problems)
        }
    }

    /// True if `capability` is granted.
    pub fn allows(&self, capability: Capability) -> bool {
        self.capabilities & capability.bit() != 0
    }
}

/// A request a task was refused: which capability, and what it asked for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Denial {
    /// The capability, for example `http` or `model`.
    pub capability: &'static str,
    /// What was asked for: a URL, a model or tool name, a host function.
    pub target: String,
}

impl Denial {
    pub(crate) fn new(capability: &'static str, target: impl Into<String>) -> Self {
        Denial {
            capability,
            target: target.into(),
        }
    }
}

/// Most denials kept per task (all are counted).
const MAX_DENIALS_KEPT: usize = 16;

/// The requests a task was refused: the first few, and how many per
/// capability. Every refusal is recorded through [`Denials::record`], by
/// the host-call path and by the wasi:http hooks alike.
#[derive(Debug, Default)]
pub(crate) struct Denials {
    kept: Vec<Denial>,
    counts: std::collections::BTreeMap<&'static str, u64>,
}

impl Denials {
    pub(crate) fn record(&mut self, denial: Denial) {
        *self.counts.entry(denial.capability).or_default() += 1;
        if self.kept.len() < MAX_DENIALS_KEPT {
            self.kept.push(denial);
        }
    }

    /// Takes over `other`'s denials (counted all, kept while there is room).
    pub(crate) fn absorb(&mut self, other: Denials) {
        for (capability, count) in other.counts {
            *self.counts.entry(capability).or_default() += count;
        }
        let room = MAX_DENIALS_KEPT.saturating_sub(self.kept.len());
        self.kept.extend(other.kept.into_iter().take(room));
    }

    /// The first few requests refused.
    pub(crate) fn kept(&self) -> &[Denial] {
        &self.kept
    }

    /// The first request refused.
    pub(crate) fn first(&self) -> Option<&Denial> {
        self.kept.first()
    }

    /// How many requests were refused, per capability.
    pub(crate) fn into_counts(self) -> std::collections::BTreeMap<&'static str, u64> {
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_beyond_those_kept_are_still_counted() {
        let mut task = Denials::default();
        let mut http = Denials::default();
        for i in 0..MAX_DENIALS_KEPT + 4 {
            task.record(Denial::new("model", format!("m{i}")));
            http.record(Denial::new("http", format!("h{i}")));
        }
        task.absorb(http);
        assert_eq!(task.first(), Some(&Denial::new("model", "m0")));
        assert_eq!(task.kept.len(), MAX_DENIALS_KEPT);
        let counts = task.into_counts();
        assert_eq!(counts["model"], MAX_DENIALS_KEPT as u64 + 4);
        assert_eq!(counts["http"], MAX_DENIALS_KEPT as u64 + 4);
    }
}
