//! Events: the unit that flows through an agent.
//!
//! The wire form (input and output JSON lines) is
//! `{"id", "type", "key", "payload", "upstream_id", "attributes"}`; on input
//! only `payload` is required.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Event types built into weir, with Apache Flink Agents' names.
pub mod types {
    /// Enters an agent run (Flink Agents' `InputEvent`).
    pub const INPUT: &str = "_input_event";
    /// Leaves the agent as a result (Flink Agents' `OutputEvent`).
    pub const OUTPUT: &str = "_output_event";
    /// Asks a chat model for a reply.
    pub const CHAT_REQUEST: &str = "_chat_request_event";
    /// A chat model's reply.
    pub const CHAT_RESPONSE: &str = "_chat_response_event";
    /// Asks for tool calls to run.
    pub const TOOL_REQUEST: &str = "_tool_request_event";
    /// The results of tool calls.
    pub const TOOL_RESPONSE: &str = "_tool_response_event";
    /// Asks for context from a vector store.
    pub const CONTEXT_RETRIEVAL_REQUEST: &str = "_context_retrieval_request_event";
    /// Context found in a vector store.
    pub const CONTEXT_RETRIEVAL_RESPONSE: &str = "_context_retrieval_response_event";
    /// An action failed; weir's own type, emitted by the host.
    pub const ERROR: &str = "_error_event";

    /// All built-in types.
    pub const ALL: &[&str] = &[
        INPUT,
        OUTPUT,
        CHAT_REQUEST,
        CHAT_RESPONSE,
        TOOL_REQUEST,
        TOOL_RESPONSE,
        CONTEXT_RETRIEVAL_REQUEST,
        CONTEXT_RETRIEVAL_RESPONSE,
        ERROR,
    ];

    /// True for names starting with `_`, which are reserved for built-in types.
    pub fn is_reserved(name: &str) -> bool {
        name.starts_with('_')
    }

    /// Why an event of `event_type` may not enter an agent from outside, if
    /// it may not. Built-in events other than `_input_event` act for the
    /// action that emitted them (a chat request uses its model grants, a
    /// tool request its tools): from input they would act for nobody, so
    /// only weir's actions emit them.
    pub fn input_problem(event_type: &str) -> Option<String> {
        if event_type.is_empty() {
            return Some("the event type must not be empty".into());
        }
        (is_reserved(event_type) && event_type != INPUT).then(|| {
            format!(
                "`{event_type}` events come only from the agent's actions, not from input; \
                 send `{INPUT}` (the default) or a type of your own (not starting with `_`)"
            )
        })
    }
}

/// An event flowing through an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id. Input events without one get `<key>#<seq>`-derived ids;
    /// emitted events get ids derived from their upstream event, so a replay
    /// produces the same ids.
    pub id: String,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The key: events of one key run in order.
    pub key: String,
    /// The payload, any JSON value.
    pub payload: serde_json::Value,
    /// The event whose action emitted this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_id: Option<String>,
    /// The action that emitted this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_action: Option<String>,
    /// Free-form string attributes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl Event {
    /// A new input event (`_input_event`) for `key`; the runtime assigns its id
    /// if `id` is empty.
    pub fn input(key: impl Into<String>, payload: serde_json::Value) -> Self {
        Event {
            id: String::new(),
            event_type: types::INPUT.to_string(),
            key: key.into(),
            payload,
            upstream_id: None,
            upstream_action: None,
            attributes: BTreeMap::new(),
        }
    }

    /// Sets the event type.
    pub fn with_type(mut self, event_type: impl Into<String>) -> Self {
        self.event_type = event_type.into();
        self
    }

    /// The event as one JSON line (without the newline).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("events always serialise")
    }

    /// A digest of what the event says, its id aside (type, key, payload,
    /// attributes, upstream): two submits of one id with different
    /// digests are two different events, not a retry.
    pub fn content_digest(&self) -> u64 {
        let mut hasher = Sha256::new();
        // A tuple is written as the JSON array of its fields (the digest
        // journals keep), without copying the payload into a value first.
        let content = (
            &self.event_type,
            &self.key,
            &self.payload,
            &self.upstream_id,
            &self.upstream_action,
            &self.attributes,
        );
        serde_json::to_writer(DigestWriter(&mut hasher), &content).expect("JSON serialises");
        let digest = hasher.finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
    }
}

/// Feeds what is written into a hasher.
struct DigestWriter<'a>(&'a mut Sha256);

impl std::io::Write for DigestWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A deterministic id for the `index`-th event that `action` emitted while
/// handling `upstream`: the same inputs give the same id, so a replayed run
/// emits the same ids and sinks can deduplicate on them.
pub fn derived_id(upstream: &str, action: &str, index: usize) -> String {
    let mut hasher = Sha256::new();
    hasher.update(upstream.as_bytes());
    hasher.update([0]);
    hasher.update(action.as_bytes());
    hasher.update([0]);
    hasher.update((index as u64).to_le_bytes());
    hex_id(&hasher.finalize())
}

/// A deterministic id for the input event number `seq` of `key`.
pub fn input_id(key: &str, seq: u64) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"input\0");
    hasher.update(key.as_bytes());
    hasher.update([0]);
    hasher.update(seq.to_le_bytes());
    hex_id(&hasher.finalize())
}

/// The first [`ID_BYTES`] of a hash in lower-case hex. Ids are made for
/// every event: formatting byte by byte with `write!`, then `hex::encode`'s
/// char-at-a-time collect, each showed in profiles; this fills one buffer.
fn hex_id(bytes: &[u8]) -> String {
    let mut text = [0u8; 2 * ID_BYTES];
    hex::encode_to_slice(&bytes[..ID_BYTES], &mut text).expect("the buffer fits the bytes");
    String::from_utf8(text.to_vec()).expect("hex is ASCII")
}

/// Bytes of hash in an event id (32 hex digits).
const ID_BYTES: usize = 16;

/// One line of JSON-lines input. Only `payload` is required: `type` defaults
/// to `_input_event`, `key` to the empty key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputLine {
    #[serde(default)]
    id: Option<String>,
    #[serde(default, rename = "type")]
    event_type: Option<String>,
    #[serde(default)]
    key: Option<KeyValue>,
    payload: serde_json::Value,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

/// Keys may be given as strings or numbers.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum KeyValue {
    Text(String),
    Number(serde_json::Number),
}

/// Why an input line could not be read as an event.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}:{line}: {message}")]
pub struct InputError {
    /// Name of the input (file path or `<stdin>`).
    pub source_name: String,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

/// The longest key (or id) an input event may have, in bytes: keys are
/// held per key in memory, and both are written to the journal with every
/// commit.
pub const MAX_NAME_BYTES: usize = 1024;

/// Why input `event`'s key or id is too long to take, if it is.
pub fn name_problem(event: &Event) -> Option<String> {
    [("key", &event.key), ("id", &event.id)]
        .into_iter()
        .find(|(_, name)| name.len() > MAX_NAME_BYTES)
        .map(|(what, name)| {
            format!(
                "the {what} is {} bytes, over the limit of {MAX_NAME_BYTES}: use a shorter {what} \
                 (a digest of it, say)",
                name.len()
            )
        })
}

/// Parses one JSON line of input into an event. Blank lines give `Ok(None)`.
pub fn parse_input_line(
    text: &str,
    source_name: &str,
    line: usize,
) -> Result<Option<Event>, InputError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    input_event(serde_json::from_str(text), source_name, line).map(Some)
}

/// As [`parse_input_line`], for an input event already parsed as JSON (an
/// element of a JSON array a service was sent): checked the same way, with
/// the same errors, without writing it out and reading it again.
pub fn parse_input_value(
    value: serde_json::Value,
    source_name: &str,
    line: usize,
) -> Result<Event, InputError> {
    input_event(serde_json::from_value(value), source_name, line)
}

/// The event an input line or value was read as, checked.
fn input_event(
    parsed: Result<InputLine, serde_json::Error>,
    source_name: &str,
    line: usize,
) -> Result<Event, InputError> {
    let error = |message: String| InputError {
        source_name: source_name.to_string(),
        line,
        message,
    };
    let parsed = parsed.map_err(|e| {
        error(format!(
            "not an input event ({e}); expected {{\"key\": ..., \"payload\": ...}}"
        ))
    })?;
    if let Some(event_type) = &parsed.event_type
        && let Some(problem) = types::input_problem(event_type)
    {
        return Err(error(format!("field `type`: {problem}")));
    }
    let key = match parsed.key {
        None => String::new(),
        Some(KeyValue::Text(s)) => s,
        Some(KeyValue::Number(n)) => n.to_string(),
    };
    Ok(Event {
        id: parsed.id.unwrap_or_default(),
        event_type: parsed
            .event_type
            .unwrap_or_else(|| types::INPUT.to_string()),
        key,
        payload: parsed.payload,
        upstream_id: None,
        upstream_action: None,
        attributes: parsed.attributes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_digest_is_that_of_the_fields_json_array_and_leaves_the_id_out() {
        // Journals keep this digest: its input must not change.
        let mut event = Event::input("k", serde_json::json!({"b": [1, 2.5], "a": "x"}));
        event.upstream_action = Some("act".into());
        event.attributes.insert("z".into(), "1".into());
        event.attributes.insert("y".into(), "2".into());
        let written = serde_json::json!([
            event.event_type,
            event.key,
            event.payload,
            event.upstream_id,
            event.upstream_action,
            event.attributes,
        ])
        .to_string();
        let digest = Sha256::digest(written.as_bytes());
        let expected = u64::from_le_bytes(digest[..8].try_into().unwrap());
        assert_eq!(event.content_digest(), expected);
        let mut other = event.clone();
        other.id = "another".into();
        assert_eq!(other.content_digest(), expected, "the id is left out");
        other.payload["a"] = "y".into();
        assert_ne!(other.content_digest(), expected);
    }

    #[test]
    fn input_line_defaults() {
        let e = parse_input_line(r#"{"key": 7, "payload": {"text": "hi"}}"#, "in", 1)
            .unwrap()
            .unwrap();
        assert_eq!(e.key, "7");
        assert_eq!(e.event_type, types::INPUT);
        assert_eq!(e.payload["text"], "hi");
        assert!(e.id.is_empty());
    }

    #[test]
    fn input_line_errors_name_the_line() {
        let err = parse_input_line("{not json", "events.jsonl", 12).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("events.jsonl:12: not an input event")
        );
        let err = parse_input_line(r#"{"key": "a", "paylod": 1}"#, "in", 3).unwrap_err();
        assert!(err.message.contains("paylod"), "{err}");
        assert!(parse_input_line("   ", "in", 4).unwrap().is_none());
    }

    #[test]
    fn built_in_events_other_than_input_are_refused_from_input() {
        for event_type in types::ALL.iter().filter(|t| **t != types::INPUT) {
            let line = format!(r#"{{"type": "{event_type}", "payload": {{}}}}"#);
            let err = parse_input_line(&line, "in.jsonl", 2).unwrap_err();
            assert!(
                err.to_string().starts_with("in.jsonl:2: field `type`:")
                    && err.message.contains("come only from the agent's actions"),
                "{err}"
            );
        }
        // Reserved names that are not built-in types are refused too.
        assert!(parse_input_line(r#"{"type": "_x", "payload": 1}"#, "in", 1).is_err());
        assert!(parse_input_line(r#"{"type": "", "payload": 1}"#, "in", 1).is_err());
        let ok = parse_input_line(r#"{"type": "order.created", "payload": 1}"#, "in", 1);
        assert_eq!(ok.unwrap().unwrap().event_type, "order.created");
    }

    #[test]
    fn derived_ids_are_deterministic_and_distinct() {
        assert_eq!(derived_id("a", "x", 0), derived_id("a", "x", 0));
        assert_ne!(derived_id("a", "x", 0), derived_id("a", "x", 1));
        assert_ne!(derived_id("a", "x", 0), derived_id("a", "y", 0));
        assert_eq!(derived_id("a", "x", 0).len(), 32);
        assert_ne!(input_id("k", 1), input_id("k", 2));
    }
}
