//! Reading an event log back: each input's run as a tree (the input event,
//! the actions that handled it with their calls, timings and failures, the
//! events they emitted, and so on down), as Flink Agents'
//! `flink-agents-trace-tree` rebuilds it. Reads weir's logs and Flink
//! Agents' (JSON lines or pretty-printed records; a directory's
//! `events-*.log` files in name order).

use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Records read at most: the whole selection is held to link it.
pub const MAX_RECORDS: usize = 2_000_000;

/// Which runs to rebuild.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only the run of this input event.
    pub run: Option<String>,
    /// Only runs of this key.
    pub key: Option<String>,
}

impl Filter {
    fn keeps(&self, record: &Value) -> bool {
        let matches = |want: &Option<String>, field: &str| {
            want.as_deref()
                .is_none_or(|want| record[field].as_str() == Some(want))
        };
        matches(&self.run, "inputRunId") && matches(&self.key, "businessKey")
    }
}

/// The runs of a log, rebuilt, and what could not be placed.
#[derive(Debug, Serialize)]
pub struct Forest {
    /// The runs, in the order their inputs were logged.
    pub runs: Vec<Run>,
    /// Records that could not be linked or read, each saying why.
    pub warnings: Vec<String>,
}

/// One input's run.
#[derive(Debug, Serialize)]
pub struct Run {
    /// The input event's id.
    pub run: String,
    /// Its key.
    pub key: String,
    /// The agent that ran it.
    pub agent: String,
    /// Re-done after a crash (its records were logged again).
    pub recovered: bool,
    /// The input event, the root.
    pub input: EventNode,
}

/// An event and the actions that handled it.
#[derive(Debug, Serialize)]
pub struct EventNode {
    /// Its id.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// When it was logged (RFC 3339).
    pub timestamp: String,
    /// How many times it was logged (more than once after a crash).
    pub observations: u32,
    /// Its payload, as logged (STANDARD cuts long values); absent from
    /// logs without payloads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// The actions that handled it, by name.
    pub actions: Vec<ActionNode>,
}

/// An action's task on an event: its outcome, its host calls and the
/// events it emitted.
#[derive(Debug, Serialize)]
pub struct ActionNode {
    /// The action.
    pub name: String,
    /// `success`, `failed`, or `unknown` when its execution record is
    /// missing (not logged, or a Flink Agents log without them).
    pub status: String,
    /// How long its task took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its host calls, in order.
    pub calls: Vec<CallNode>,
    /// What else it did (memory writes, denials), in order.
    pub notes: Vec<Note>,
    /// The events it emitted.
    pub emitted: Vec<EventNode>,
}

/// A memory write or a denial in an action's task.
#[derive(Debug, Serialize)]
pub struct Note {
    /// Its record's event type (`_short_term_write_event`, ...).
    pub kind: String,
    /// What it says (the path and value written, the capability denied).
    pub details: Value,
}

/// A model, embedding or tool call an action made.
#[derive(Debug, Serialize)]
pub struct CallNode {
    /// `llm`, `embedding` or `tool`.
    pub kind: String,
    /// The model resource or tool.
    pub name: String,
    /// The model that answered, for a model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `success`, `failed` or `reused` (answered from the journal).
    pub status: String,
    /// How long it took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    /// A model's tokens in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// A model's tokens out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What was asked: a chat's messages, an embedding's texts, a tool's
    /// arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
    /// What came back: a chat's message, a tool's result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<Value>,
}

/// The log files at `path`: the file itself, or a directory's
/// `events-*.log` (then any `*.log`, `*.jsonl`) in name order.
pub fn log_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let named = |prefix: bool| -> Vec<PathBuf> {
        files
            .iter()
            .filter(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                (!prefix || name.starts_with("events-"))
                    && (name.ends_with(".log") || name.ends_with(".jsonl"))
            })
            .cloned()
            .collect()
    };
    let events = named(true);
    Ok(if events.is_empty() {
        named(false)
    } else {
        events
    })
}

/// Calls `each` with every record at `path` (a file, or a directory's log
/// files in name order) until it returns `Break`; what could not be read
/// is returned as warnings. Records stream: a file is never held whole.
pub fn for_each_record(
    path: &Path,
    mut each: impl FnMut(Value) -> anyhow::Result<std::ops::ControlFlow<()>>,
) -> anyhow::Result<Vec<String>> {
    let mut warnings = Vec::new();
    for file in log_files(path)? {
        let reader = std::io::BufReader::new(
            std::fs::File::open(&file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?,
        );
        let stream = serde_json::Deserializer::from_reader(reader).into_iter::<Value>();
        for (n, value) in stream.enumerate() {
            match value {
                Ok(record @ Value::Object(_)) => {
                    if each(record)?.is_break() {
                        return Ok(warnings);
                    }
                }
                Ok(_) => warnings.push(format!(
                    "{}: record {} is not a JSON object",
                    file.display(),
                    n + 1
                )),
                Err(e) => {
                    // The rest of the file cannot be framed: stop there.
                    warnings.push(format!(
                        "{}: line {}, column {}: not JSON ({e}); the rest of the file is skipped",
                        file.display(),
                        e.line(),
                        e.column()
                    ));
                    break;
                }
            }
        }
    }
    Ok(warnings)
}

/// Reads the records at `path` that `filter` keeps (at most
/// [`MAX_RECORDS`]); a record that is not a JSON object is a warning.
pub fn read(path: &Path, filter: &Filter) -> anyhow::Result<(Vec<Value>, Vec<String>)> {
    let mut records = Vec::new();
    let warnings = for_each_record(path, |record| {
        if filter.keeps(&record) {
            anyhow::ensure!(
                records.len() < MAX_RECORDS,
                "{}: more than {MAX_RECORDS} records match; narrow with --run or --key",
                path.display()
            );
            records.push(record);
        }
        Ok(std::ops::ControlFlow::Continue(()))
    })?;
    Ok((records, warnings))
}

fn text(record: &Value, field: &str) -> String {
    record[field].as_str().unwrap_or_default().to_string()
}

fn is_execution(record: &Value) -> bool {
    record["eventType"]
        .as_str()
        .is_some_and(|t| t.starts_with("_execution_"))
        && record["executionId"].is_string()
}

/// Rebuilds the runs of `records` (as [`read`] returns them).
pub fn build(records: &[Value], mut warnings: Vec<String>) -> Forest {
    // Events by id (the first of repeated ones, counted), executions by id.
    let mut events: Vec<&Value> = Vec::new();
    let mut seen: HashMap<&str, (usize, u32)> = HashMap::new();
    let mut executions: HashMap<&str, &Value> = HashMap::new();
    let mut calls: HashMap<&str, Vec<&Value>> = HashMap::new();
    let mut notes: HashMap<(&str, &str), Vec<&Value>> = HashMap::new();
    for record in records {
        let event_type = record["eventType"].as_str().unwrap_or_default();
        if crate::observe::eventlog::NOTE_TYPES.contains(&event_type) {
            if let (Some(event), Some(action)) = (
                record["upstreamEventId"].as_str(),
                record["upstreamActionName"].as_str(),
            ) {
                notes.entry((event, action)).or_default().push(record);
            }
            continue;
        }
        if is_execution(record) {
            let id = record["executionId"].as_str().unwrap_or_default();
            match record["parentExecutionId"].as_str() {
                Some(parent) => calls.entry(parent).or_default().push(record),
                None => {
                    // The terminal record wins over a start record.
                    executions.insert(id, record);
                }
            }
            continue;
        }
        let Some(id) = record["eventId"].as_str() else {
            warnings.push("a record without an eventId".to_string());
            continue;
        };
        match seen.get_mut(id) {
            Some((_, count)) => *count += 1,
            None => {
                seen.insert(id, (events.len(), 1));
                events.push(record);
            }
        }
    }
    // Children of each (event, action).
    let mut children: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    let mut roots = Vec::new();
    for (index, event) in events.iter().enumerate() {
        match (
            event["upstreamEventId"].as_str(),
            event["upstreamActionName"].as_str(),
        ) {
            (None, _) => roots.push(index),
            (Some(up), Some(action)) if seen.contains_key(up) => {
                children.entry((up, action)).or_default().push(index);
            }
            (Some(up), _) => warnings.push(format!(
                "event {} ({}) names upstream event {up}, which is not in the log",
                text(event, "eventId"),
                text(event, "eventType")
            )),
        }
    }
    // Actions per event: from the executions that handled it and the
    // events emitted under its name.
    let mut handled: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for execution in executions.values() {
        if execution["entityType"] == "action"
            && let Some(event) = execution["upstreamEventId"].as_str()
        {
            handled
                .entry(event)
                .or_default()
                .push(execution["entityName"].as_str().unwrap_or_default());
        }
    }
    for (event, action) in children.keys() {
        handled.entry(event).or_default().push(action);
    }
    let linker = Linker {
        events: &events,
        seen: &seen,
        children: &children,
        handled: &handled,
        executions: &executions,
        calls: &calls,
        notes: &notes,
    };
    let runs = roots
        .into_iter()
        .map(|index| {
            let input = events[index];
            Run {
                run: input["inputRunId"]
                    .as_str()
                    .map_or_else(|| text(input, "eventId"), str::to_string),
                key: text(input, "businessKey"),
                agent: text(input, "agentName"),
                recovered: input["recovered"] == true
                    || seen
                        .get(input["eventId"].as_str().unwrap_or_default())
                        .is_some_and(|(_, n)| *n > 1),
                input: linker.node(index, 0),
            }
        })
        .collect();
    Forest { runs, warnings }
}

/// How deep a tree is rebuilt: deeper events are left out (a routing loop
/// is cut by the runtime long before).
const MAX_TREE_DEPTH: usize = 256;

struct Linker<'a> {
    events: &'a [&'a Value],
    seen: &'a HashMap<&'a str, (usize, u32)>,
    children: &'a BTreeMap<(&'a str, &'a str), Vec<usize>>,
    handled: &'a BTreeMap<&'a str, Vec<&'a str>>,
    executions: &'a HashMap<&'a str, &'a Value>,
    calls: &'a HashMap<&'a str, Vec<&'a Value>>,
    notes: &'a HashMap<(&'a str, &'a str), Vec<&'a Value>>,
}

impl Linker<'_> {
    fn node(&self, index: usize, depth: usize) -> EventNode {
        let event = self.events[index];
        let id = event["eventId"].as_str().unwrap_or_default();
        let mut names: Vec<&str> = self.handled.get(id).cloned().unwrap_or_default();
        names.sort_unstable();
        names.dedup();
        let actions = if depth >= MAX_TREE_DEPTH {
            Vec::new()
        } else {
            names
                .into_iter()
                .map(|name| self.action(id, name, depth))
                .collect()
        };
        EventNode {
            event_id: id.to_string(),
            event_type: text(event, "eventType"),
            timestamp: text(event, "timestamp"),
            observations: self.seen.get(id).map_or(1, |(_, n)| *n),
            payload: event.get("payload").cloned(),
            actions,
        }
    }

    fn action(&self, event: &str, name: &str, depth: usize) -> ActionNode {
        let execution_id = format!("{event}/{name}");
        let execution = self
            .executions
            .get(execution_id.as_str())
            .copied()
            .or_else(|| {
                self.executions.values().copied().find(|e| {
                    e["entityType"] == "action"
                        && e["upstreamEventId"] == event
                        && e["entityName"] == name
                })
            });
        let (status, duration_ms, error) = match execution {
            Some(e) => outcome(e),
            None => ("unknown".to_string(), None, None),
        };
        let calls = execution
            .and_then(|e| e["executionId"].as_str())
            .and_then(|id| self.calls.get(id))
            .map(|calls| calls.iter().map(|c| call(c)).collect())
            .unwrap_or_default();
        let notes = self
            .notes
            .get(&(event, name))
            .map(|notes| {
                notes
                    .iter()
                    .map(|n| Note {
                        kind: text(n, "eventType"),
                        details: n["payload"].clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let emitted = self
            .children
            .get(&(event, name))
            .map(|children| children.iter().map(|i| self.node(*i, depth + 1)).collect())
            .unwrap_or_default();
        ActionNode {
            name: name.to_string(),
            status,
            duration_ms,
            error,
            calls,
            notes,
            emitted,
        }
    }
}

fn outcome(record: &Value) -> (String, Option<f64>, Option<String>) {
    let attributes = &record["eventAttributes"];
    let error = match (
        attributes["errorType"].as_str(),
        attributes["errorMessage"].as_str(),
    ) {
        (None, None) => None,
        (kind, message) => Some(format!(
            "{}: {}",
            kind.unwrap_or("error"),
            message.unwrap_or_default()
        )),
    };
    (
        record["status"].as_str().unwrap_or("unknown").to_string(),
        attributes["durationMs"].as_f64(),
        error,
    )
}

fn call(record: &Value) -> CallNode {
    let (status, duration_ms, error) = outcome(record);
    let attributes = &record["eventAttributes"];
    CallNode {
        kind: text(record, "entityType"),
        name: text(record, "entityName"),
        model: record["entityMetadata"]["model"]
            .as_str()
            .map(str::to_string),
        status,
        duration_ms,
        input_tokens: attributes["inputTokens"].as_u64(),
        output_tokens: attributes["outputTokens"].as_u64(),
        error,
        request: attributes.get("request").cloned(),
        reply: attributes.get("reply").cloned(),
    }
}

impl std::fmt::Display for Forest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for run in &self.runs {
            write!(f, "run {} (key {}, agent {})", run.run, run.key, run.agent)?;
            if run.recovered {
                write!(f, " [re-done after a crash]")?;
            }
            writeln!(f)?;
            write_event(f, &run.input, 1)?;
        }
        Ok(())
    }
}

fn write_event(
    f: &mut std::fmt::Formatter<'_>,
    node: &EventNode,
    depth: usize,
) -> std::fmt::Result {
    let pad = "  ".repeat(depth);
    write!(f, "{pad}{} ({})", node.event_type, node.event_id)?;
    if let Some(time) = node.timestamp.get(11..23) {
        write!(f, " at {time}")?;
    }
    if node.observations > 1 {
        write!(f, " [logged {} times]", node.observations)?;
    }
    writeln!(f)?;
    for action in &node.actions {
        write!(f, "{pad}  [action {}] {}", action.name, action.status)?;
        if let Some(ms) = action.duration_ms {
            write!(f, " {ms:.2} ms")?;
        }
        if let Some(error) = &action.error {
            write!(f, ": {}", crate::util::head(error, 200))?;
        }
        writeln!(f)?;
        for call in &action.calls {
            write!(f, "{pad}    {} {}: {}", call.kind, call.name, call.status)?;
            if let Some(ms) = call.duration_ms {
                write!(f, " {ms:.2} ms")?;
            }
            if let (Some(i), Some(o)) = (call.input_tokens, call.output_tokens) {
                write!(f, " ({i} tokens in, {o} out)")?;
            }
            if let Some(error) = &call.error {
                write!(f, ": {}", crate::util::head(error, 200))?;
            }
            writeln!(f)?;
        }
        for note in &action.notes {
            let details = note.details.to_string();
            writeln!(
                f,
                "{pad}    {} {}",
                note.kind.trim_start_matches('_').trim_end_matches("_event"),
                crate::util::head(&details, 160)
            )?;
        }
        for child in &action.emitted {
            write_event(f, child, depth + 2)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(id: &str, kind: &str, up: Option<(&str, &str)>) -> Value {
        let mut record = json!({
            "timestamp": "2026-12-04T12:00:00.000001Z", "logLevel": "STANDARD",
            "inputRunId": "in", "businessKey": "k", "agentName": "a",
            "eventId": id, "eventType": kind, "eventAttributes": {},
        });
        if let Some((event, action)) = up {
            record["upstreamEventId"] = json!(event);
            record["upstreamActionName"] = json!(action);
        }
        record
    }

    #[test]
    fn a_run_is_rebuilt_with_its_actions_calls_and_failures() {
        let records = vec![
            event("in", "_input_event", None),
            json!({"eventType": "_execution_finished_event", "executionId": "in/a1",
                   "entityType": "action", "entityName": "a1", "upstreamEventId": "in",
                   "status": "success", "eventAttributes": {"durationMs": 1.5}}),
            json!({"eventType": "_execution_finished_event", "executionId": "in/a1/1",
                   "parentExecutionId": "in/a1", "entityType": "llm", "entityName": "m",
                   "status": "success", "eventAttributes": {"durationMs": 9.0, "inputTokens": 3, "outputTokens": 4}}),
            event("mid", "middle", Some(("in", "a1"))),
            json!({"eventType": "_execution_failed_event", "executionId": "mid/a2",
                   "entityType": "action", "entityName": "a2", "upstreamEventId": "mid",
                   "status": "failed", "eventAttributes": {"errorType": "trap", "errorMessage": "boom"}}),
            event("err", "_error_event", Some(("mid", "a2"))),
            event("orphan", "x", Some(("nowhere", "a9"))),
            event("mid", "middle", Some(("in", "a1"))),
        ];
        let forest = build(&records, Vec::new());
        assert_eq!(forest.runs.len(), 1);
        assert_eq!(forest.warnings.len(), 1, "{:?}", forest.warnings);
        assert!(forest.warnings[0].contains("nowhere"));
        let run = &forest.runs[0];
        let a1 = &run.input.actions[0];
        assert_eq!((a1.name.as_str(), a1.status.as_str()), ("a1", "success"));
        assert_eq!(a1.calls[0].input_tokens, Some(3));
        let mid = &a1.emitted[0];
        assert_eq!(mid.observations, 2);
        let a2 = &mid.actions[0];
        assert_eq!(a2.status, "failed");
        assert_eq!(a2.error.as_deref(), Some("trap: boom"));
        assert_eq!(a2.emitted[0].event_type, "_error_event");
        let text = forest.to_string();
        assert!(text.contains("    [action a1] success 1.50 ms"), "{text}");
        assert!(
            text.contains("      llm m: success 9.00 ms (3 tokens in, 4 out)"),
            "{text}"
        );
        assert!(text.contains("[action a2] failed: trap: boom"), "{text}");
        assert!(text.contains("[logged 2 times]"), "{text}");
    }
}
