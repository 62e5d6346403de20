//! Resource limits of action and tool tasks.
//!
//! A manifest sets them agent-wide in `[limits]` and per action or component
//! in `limits = { ... }`; unset fields fall back to the agent's, then to
//! [`Limits::default`]. Every limit has a name (the manifest key) so that an
//! error event or the run summary says exactly which setting stopped a task.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Limits as a manifest writes them: every field optional, overlaid on the
/// agent-wide settings and then on the defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Linear memory of one instance, all its memories together, in MiB.
    pub memory_mb: Option<u64>,
    /// Guest CPU time of one task, in ms (epoch interruption).
    pub cpu_ms: Option<u64>,
    /// Fuel (roughly, wasm instructions) of one task; off unless set.
    pub fuel: Option<u64>,
    /// Wall-clock deadline of one task, host calls included, in ms.
    pub timeout_ms: Option<u64>,
    /// Events one task may emit.
    pub max_emits: Option<usize>,
    /// Largest event payload (JSON bytes) a task is given.
    pub max_payload_bytes: Option<usize>,
    /// Bytes one task may emit and write to memory, all together.
    pub max_output_bytes: Option<usize>,
    /// How deep tool calls may nest (an action calling a tool is depth 1).
    pub max_tool_depth: Option<u32>,
    /// Entries of the host's resource table (streams, pollables, HTTP
    /// requests and fields, ...) one task may hold at once.
    pub max_resources: Option<usize>,
    /// How deeply JSON a task hands the host (event payloads, memory values
    /// with their path's segments, tool results, model replies) may nest.
    pub max_nesting: Option<usize>,
    /// Bytes (of JSON) one key's short-term memory may hold.
    pub max_key_memory_bytes: Option<usize>,
}

impl LimitSettings {
    /// These settings, with unset fields taken from `base`.
    pub fn or(self, base: LimitSettings) -> LimitSettings {
        LimitSettings {
            memory_mb: self.memory_mb.or(base.memory_mb),
            cpu_ms: self.cpu_ms.or(base.cpu_ms),
            fuel: self.fuel.or(base.fuel),
            timeout_ms: self.timeout_ms.or(base.timeout_ms),
            max_emits: self.max_emits.or(base.max_emits),
            max_payload_bytes: self.max_payload_bytes.or(base.max_payload_bytes),
            max_output_bytes: self.max_output_bytes.or(base.max_output_bytes),
            max_tool_depth: self.max_tool_depth.or(base.max_tool_depth),
            max_resources: self.max_resources.or(base.max_resources),
            max_nesting: self.max_nesting.or(base.max_nesting),
            max_key_memory_bytes: self.max_key_memory_bytes.or(base.max_key_memory_bytes),
        }
    }

    /// The limits, with the defaults for unset fields.
    pub fn resolve(self) -> Limits {
        let d = Limits::default();
        Limits {
            memory_mb: self.memory_mb.unwrap_or(d.memory_mb),
            cpu_ms: self.cpu_ms.unwrap_or(d.cpu_ms),
            fuel: self.fuel,
            timeout_ms: self.timeout_ms.unwrap_or(d.timeout_ms),
            max_emits: self.max_emits.unwrap_or(d.max_emits),
            max_payload_bytes: self.max_payload_bytes.unwrap_or(d.max_payload_bytes),
            max_output_bytes: self.max_output_bytes.unwrap_or(d.max_output_bytes),
            max_tool_depth: self.max_tool_depth.unwrap_or(d.max_tool_depth),
            max_resources: self.max_resources.unwrap_or(d.max_resources),
            max_nesting: self.max_nesting.unwrap_or(d.max_nesting),
            max_key_memory_bytes: self.max_key_memory_bytes.unwrap_or(d.max_key_memory_bytes),
        }
    }
}

/// The limits one task runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Linear memory of one instance, in MiB (default 128).
    pub memory_mb: u64,
    /// Guest CPU time of one task, in ms (default 10,000).
    pub cpu_ms: u64,
    /// Fuel of one task; `None` (the default) does not meter fuel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Wall-clock deadline of one task, in ms (default 60,000).
    pub timeout_ms: u64,
    /// Events one task may emit (default 1,024).
    pub max_emits: usize,
    /// Largest payload a task is given, in bytes (default 16 MiB).
    pub max_payload_bytes: usize,
    /// Bytes one task may emit and write to memory in all (default 16 MiB).
    pub max_output_bytes: usize,
    /// Deepest nesting of tool calls (default 4).
    pub max_tool_depth: u32,
    /// Host resources one task may hold at once (default 10,000): each is
    /// host memory the guest's memory limit does not count.
    pub max_resources: usize,
    /// Deepest nesting of JSON a task hands the host (default 64, at most
    /// [`MAX_NESTING`]): a memory value counts its path's segments too.
    pub max_nesting: usize,
    /// Bytes (of JSON) the key's short-term memory may hold after a write
    /// (default 64 MiB): it lives as long as the key, and with a journal
    /// every commit writes it.
    pub max_key_memory_bytes: usize,
}

/// The highest `max_nesting` a plan accepts. Whatever a task hands the host
/// is stored inside a few more levels (a memory root, a journal record), and
/// must still read back under serde_json's limit of 128 levels; the host
/// never recurses deeper than that on guest-shaped data.
pub const MAX_NESTING: usize = 100;

/// Longest error message (from a guest, a tool) the host passes on, and
/// the longest error code: errors become events and tool answers, output
/// like any other.
pub(crate) const MAX_ERROR_MESSAGE_BYTES: usize = 64 << 10;
pub(crate) const MAX_ERROR_CODE_BYTES: usize = 128;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mb: 128,
            cpu_ms: 10_000,
            fuel: None,
            timeout_ms: 60_000,
            max_emits: 1024,
            max_payload_bytes: 16 << 20,
            max_output_bytes: 16 << 20,
            max_tool_depth: 4,
            max_resources: 10_000,
            max_nesting: 64,
            max_key_memory_bytes: 64 << 20,
        }
    }
}

impl Limits {
    /// The memory limit in bytes.
    pub fn memory_bytes(&self) -> usize {
        usize::try_from(self.memory_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }

    /// The CPU budget.
    pub fn cpu(&self) -> Duration {
        Duration::from_millis(self.cpu_ms)
    }

    /// The wall-clock deadline.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The configured value of `limit`.
    pub fn value(&self, limit: Limit) -> u64 {
        match limit {
            Limit::MemoryMb => self.memory_mb,
            Limit::CpuMs => self.cpu_ms,
            Limit::Fuel => self.fuel.unwrap_or(u64::MAX),
            Limit::TimeoutMs => self.timeout_ms,
            Limit::MaxEmits => self.max_emits as u64,
            Limit::MaxPayloadBytes => self.max_payload_bytes as u64,
            Limit::MaxOutputBytes => self.max_output_bytes as u64,
            Limit::MaxToolDepth => u64::from(self.max_tool_depth),
            Limit::MaxResources => self.max_resources as u64,
            Limit::MaxNesting => self.max_nesting as u64,
            Limit::MaxKeyMemoryBytes => self.max_key_memory_bytes as u64,
        }
    }

    /// The error for reaching `limit`, with what was asked for.
    pub(crate) fn exceeded(&self, limit: Limit, detail: impl Into<String>) -> LimitExceeded {
        LimitExceeded {
            limit,
            value: self.value(limit),
            detail: detail.into(),
        }
    }
}

/// One of the limits, named as in the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Limit {
    MemoryMb,
    CpuMs,
    Fuel,
    TimeoutMs,
    MaxEmits,
    MaxPayloadBytes,
    MaxOutputBytes,
    MaxToolDepth,
    MaxResources,
    MaxNesting,
    MaxKeyMemoryBytes,
}

impl Limit {
    /// The manifest key, for example `memory_mb`.
    pub fn name(self) -> &'static str {
        match self {
            Limit::MemoryMb => "memory_mb",
            Limit::CpuMs => "cpu_ms",
            Limit::Fuel => "fuel",
            Limit::TimeoutMs => "timeout_ms",
            Limit::MaxEmits => "max_emits",
            Limit::MaxPayloadBytes => "max_payload_bytes",
            Limit::MaxOutputBytes => "max_output_bytes",
            Limit::MaxToolDepth => "max_tool_depth",
            Limit::MaxResources => "max_resources",
            Limit::MaxNesting => "max_nesting",
            Limit::MaxKeyMemoryBytes => "max_key_memory_bytes",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A task reached one of its limits and was stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("limit `{limit}` ({value}) reached: {detail}")]
pub struct LimitExceeded {
    /// Which limit.
    pub limit: Limit,
    /// Its configured value.
    pub value: u64,
    /// What the task was doing when it hit the limit.
    pub detail: String,
}

/// How deeply `value` nests: 1 for a scalar, one more per array or object
/// around it. Walks with its own stack, so a value of any depth is measured
/// without recursing on the host's.
pub fn nesting(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    fn flat<'a>(mut children: impl Iterator<Item = &'a Value>) -> bool {
        children.all(|v| !matches!(v, Value::Array(_) | Value::Object(_)))
    }
    // Most payloads are a scalar or one flat object: measured without
    // allocating.
    match value {
        Value::Array(items) if flat(items.iter()) => return 1 + usize::from(!items.is_empty()),
        Value::Object(map) if flat(map.values()) => return 1 + usize::from(!map.is_empty()),
        Value::Array(_) | Value::Object(_) => {}
        _ => return 1,
    }
    let mut deepest = 0;
    let mut pending = vec![(value, 1usize)];
    while let Some((value, depth)) = pending.pop() {
        deepest = deepest.max(depth);
        match value {
            Value::Array(items) => pending.extend(items.iter().map(|v| (v, depth + 1))),
            Value::Object(map) => pending.extend(map.values().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_counts_levels() {
        use serde_json::json;
        assert_eq!(nesting(&json!(1)), 1);
        assert_eq!(nesting(&json!([])), 1);
        assert_eq!(nesting(&json!({"a": 1, "b": "x"})), 2);
        assert_eq!(nesting(&json!({"a": {}})), 2);
        assert_eq!(nesting(&json!({"a": [1, {"b": [2]}]})), 5);
        let mut deep = json!(0);
        for _ in 0..1000 {
            deep = json!([deep]);
        }
        assert_eq!(nesting(&deep), 1001);
    }

    #[test]
    fn settings_overlay_then_default() {
        let agent = LimitSettings {
            memory_mb: Some(64),
            cpu_ms: Some(500),
            ..Default::default()
        };
        let action = LimitSettings {
            cpu_ms: Some(50),
            fuel: Some(1_000),
            ..Default::default()
        };
        let limits = action.or(agent).resolve();
        assert_eq!(limits.memory_mb, 64);
        assert_eq!(limits.cpu_ms, 50);
        assert_eq!(limits.fuel, Some(1_000));
        assert_eq!(limits.timeout_ms, Limits::default().timeout_ms);
        assert_eq!(limits.memory_bytes(), 64 << 20);
        let e = limits.exceeded(Limit::MaxEmits, "emit #1025");
        assert_eq!(e.value, 1024);
        assert_eq!(
            e.to_string(),
            "limit `max_emits` (1024) reached: emit #1025"
        );
    }
}
