//! Guest SDK for [weir](https://github.com/weir-agents/weir) actions.
//!
//! An action is a plain Rust function from an [`Event`] to [`Result<()>`]; the
//! [`actions!`] macro exports a set of them from one WebAssembly component
//! (target `wasm32-wasip2`, crate type `cdylib`). Inside an action, the host's
//! capabilities are plain functions: [`emit`], [`memory`], [`log`] and
//! [`context`].
//!
//! ```no_run
//! use serde::Deserialize;
//! use weir_sdk::{memory, Event, Result};
//!
//! #[derive(Deserialize)]
//! struct Sentence {
//!     text: String,
//! }
//!
//! /// Counts the words of each sentence and keeps a running total per key.
//! fn count(event: Event) -> Result<()> {
//!     let sentence: Sentence = event.payload()?;
//!     let words = sentence.text.split_whitespace().count() as u64;
//!     let total = memory::short_term().get::<u64>("total")?.unwrap_or(0) + words;
//!     memory::short_term().set("total", &total)?;
//!     weir_sdk::emit_output(&serde_json::json!({ "words": words, "total": total }))?;
//!     Ok(())
//! }
//!
//! weir_sdk::actions! {
//!     /// Counts words per sentence and in total for the key.
//!     "count" => count,
//! }
//! ```
//!
//! Build it with `cargo build --target wasm32-wasip2 --release`; the
//! component is `target/wasm32-wasip2/release/<crate>.wasm`.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "skill",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "export_handler",
        default_bindings_module: "weir_sdk::bindings",
    });
}

use bindings::weir::agent::types as wit;

pub use serde_json::{self, Value, json};

/// The event type that enters an agent run (Flink Agents' `InputEvent`).
pub const INPUT_EVENT: &str = "_input_event";
/// The event type that leaves the agent (Flink Agents' `OutputEvent`).
pub const OUTPUT_EVENT: &str = "_output_event";

/// The result type of actions and SDK calls.
pub type Result<T, E = ActionError> = std::result::Result<T, E>;

/// An event handed to an action.
#[derive(Debug, Clone)]
pub struct Event {
    /// Unique id assigned by the host.
    pub id: String,
    /// The event type.
    pub event_type: String,
    /// The key the event belongs to.
    pub key: String,
    /// The payload as JSON text; see [`Event::payload`].
    pub payload_json: String,
    /// The id of the event that caused this one, if any.
    pub upstream_id: Option<String>,
    /// Free-form string attributes.
    pub attributes: Vec<(String, String)>,
}

impl Event {
    /// Deserialize the payload into `T`. A payload of the wrong shape becomes
    /// an [`ActionError`] with code `bad-payload`.
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.payload_json).map_err(|e| {
            ActionError::new(
                "bad-payload",
                format!("payload of {} event {}: {e}", self.event_type, self.id),
            )
        })
    }

    /// The payload as a JSON value.
    pub fn payload_value(&self) -> Result<Value> {
        self.payload()
    }

    /// The value of attribute `name`, if set.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl From<wit::Event> for Event {
    fn from(e: wit::Event) -> Self {
        Event {
            id: e.id,
            event_type: e.event_type,
            key: e.key,
            payload_json: e.payload,
            upstream_id: e.upstream_id,
            attributes: e.attributes,
        }
    }
}

/// Why an action failed: a short code and a message. The host turns it into
/// an error event naming the action, the key and the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionError {
    /// Short machine-readable code, for example `bad-payload`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl ActionError {
    /// An error with `code` and `message`.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ActionError {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ActionError {}

impl From<serde_json::Error> for ActionError {
    fn from(e: serde_json::Error) -> Self {
        ActionError::new("json", e.to_string())
    }
}

impl From<wit::HostError> for ActionError {
    fn from(e: wit::HostError) -> Self {
        match e {
            wit::HostError::Denied(m) => ActionError::new("denied", m),
            wit::HostError::Invalid(m) => ActionError::new("invalid", m),
            wit::HostError::Limit(m) => ActionError::new("limit", m),
            wit::HostError::Failed(m) => ActionError::new("host-failed", m),
        }
    }
}

impl From<ActionError> for wit::ActionError {
    fn from(e: ActionError) -> Self {
        wit::ActionError {
            code: e.code,
            message: e.message,
        }
    }
}

/// Emit an event of `event_type` with `payload`. It is routed to the actions
/// listening to `event_type` once this action returns `Ok`. Returns its id.
pub fn emit<T: Serialize + ?Sized>(event_type: &str, payload: &T) -> Result<String> {
    emit_with_attributes(event_type, payload, &[])
}

/// Emit an event with string attributes.
pub fn emit_with_attributes<T: Serialize + ?Sized>(
    event_type: &str,
    payload: &T,
    attributes: &[(&str, &str)],
) -> Result<String> {
    let payload = serde_json::to_string(payload)?;
    let attributes: Vec<(String, String)> = attributes
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ok(bindings::weir::agent::events::emit(
        event_type,
        &payload,
        &attributes,
    )?)
}

/// Emit an output event: it leaves the agent as one of its results.
pub fn emit_output<T: Serialize + ?Sized>(payload: &T) -> Result<String> {
    emit(OUTPUT_EVENT, payload)
}

pub mod http;

/// What the action knows about its task: its name, the key, its config.
pub mod context {
    use super::*;
    use crate::bindings::weir::agent::context as host;

    /// The name the agent gives this action.
    pub fn action_name() -> String {
        host::action_name()
    }

    /// The key of the event being handled.
    pub fn key() -> String {
        host::key()
    }

    /// Config value `name` (the action's config, then the agent's), decoded
    /// into `T`; `None` when unset.
    pub fn config<T: DeserializeOwned>(name: &str) -> Result<Option<T>> {
        match host::config(name) {
            None => Ok(None),
            Some(json) => serde_json::from_str(&json)
                .map(Some)
                .map_err(|e| ActionError::new("bad-config", format!("config `{name}`: {e}"))),
        }
    }

    /// The whole merged config as a JSON object.
    pub fn config_all() -> Result<Value> {
        Ok(serde_json::from_str(&host::config_all())?)
    }

    /// A key naming this task's external effects: the same every time the
    /// task runs for the same input (after a crash too), different for
    /// every other task. In a tool, it names the tool call. Hand it to
    /// services that deduplicate requests; wasi:http requests carry it as
    /// `Idempotency-Key` already.
    pub fn idempotency_key() -> String {
        host::idempotency_key()
    }
}

/// Short-term (per key) and sensory (per run) memory.
pub mod memory {
    use super::*;
    use crate::bindings::weir::agent::memory as host;
    pub use host::Scope;

    /// A handle on one memory scope. Paths are dot-separated (`"a.b.c"`).
    #[derive(Debug, Clone, Copy)]
    pub struct Memory(Scope);

    /// Memory kept for the current key across agent runs.
    pub fn short_term() -> Memory {
        Memory(Scope::ShortTerm)
    }

    /// Memory kept for the current agent run only.
    pub fn sensory() -> Memory {
        Memory(Scope::Sensory)
    }

    impl Memory {
        /// The value at `path` decoded into `T`, or `None` if unset.
        pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>> {
            match host::get(self.0, path)? {
                None => Ok(None),
                Some(json) => serde_json::from_str(&json).map(Some).map_err(|e| {
                    ActionError::new("bad-memory", format!("memory value at `{path}`: {e}"))
                }),
            }
        }

        /// Store `value` at `path`, creating intermediate objects.
        pub fn set<T: Serialize + ?Sized>(&self, path: &str, value: &T) -> Result<()> {
            let json = serde_json::to_string(value)?;
            Ok(host::set(self.0, path, &json)?)
        }

        /// Remove the value at `path`; `true` if there was one.
        pub fn remove(&self, path: &str) -> Result<bool> {
            Ok(host::remove(self.0, path)?)
        }

        /// Field names of the object at `path`.
        pub fn field_names(&self, path: &str) -> Result<Vec<String>> {
            Ok(host::field_names(self.0, path)?)
        }
    }
}

/// Structured logging into the host's log, tagged with action, key and event.
pub mod log {
    use crate::bindings::weir::agent::log as host;
    pub use host::Level;

    /// Write a record at `level` with structured `fields`.
    pub fn write(level: Level, message: &str, fields: &[(&str, &str)]) {
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        host::write(level, message, &fields);
    }

    /// Log at debug level.
    pub fn debug(message: &str) {
        write(Level::Debug, message, &[]);
    }

    /// Log at info level.
    pub fn info(message: &str) {
        write(Level::Info, message, &[]);
    }

    /// Log at warn level.
    pub fn warn(message: &str) {
        write(Level::Warn, message, &[]);
    }

    /// Log at error level.
    pub fn error(message: &str) {
        write(Level::Error, message, &[]);
    }
}

/// Chat and embedding models, by the resource names the agent declares.
pub mod model {
    use super::*;
    use crate::bindings::weir::agent::model as host;
    pub use host::{ChatResponse, Message, ToolCall, Usage};

    impl Message {
        /// A message with `role` and `content`.
        pub fn new(role: &str, content: impl Into<String>) -> Self {
            Message {
                role: role.to_string(),
                content: content.into(),
                tool_calls: Vec::new(),
                tool_call_id: None,
            }
        }

        /// A system message.
        pub fn system(content: impl Into<String>) -> Self {
            Self::new("system", content)
        }

        /// A user message.
        pub fn user(content: impl Into<String>) -> Self {
            Self::new("user", content)
        }

        /// An assistant message.
        pub fn assistant(content: impl Into<String>) -> Self {
            Self::new("assistant", content)
        }

        /// The answer to tool call `id`.
        pub fn tool(id: impl Into<String>, content: impl Into<String>) -> Self {
            Message {
                tool_call_id: Some(id.into()),
                ..Self::new("tool", content)
            }
        }
    }

    /// A chat call being built; [`Chat::send`] makes it.
    #[derive(Debug, Clone)]
    pub struct Chat {
        request: host::ChatRequest,
    }

    /// Starts a chat call to the chat-model resource `model`.
    pub fn chat(model: &str, messages: Vec<Message>) -> Chat {
        Chat {
            request: host::ChatRequest {
                model: model.to_string(),
                messages,
                options: None,
                output_schema: None,
                use_tools: false,
            },
        }
    }

    impl Chat {
        /// Overrides options (`temperature`, `max_tokens`, `seed`, ...).
        pub fn options(mut self, options: &Value) -> Self {
            self.request.options = Some(options.to_string());
            self
        }

        /// Asks for content following this JSON Schema.
        pub fn output_schema(mut self, schema: &Value) -> Self {
            self.request.output_schema = Some(schema.to_string());
            self
        }

        /// Offers the model the tools its resource lists.
        pub fn with_tools(mut self) -> Self {
            self.request.use_tools = true;
            self
        }

        /// Makes the call.
        pub fn send(self) -> Result<ChatResponse> {
            Ok(host::chat(&self.request)?)
        }
    }

    /// Embeds `texts` with the embedding-model resource `model`.
    pub fn embed(model: &str, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        Ok(host::embed(model, texts)?)
    }
}

/// Calling tools by name.
pub mod tools {
    use super::*;
    use crate::bindings::weir::agent::tools as host;
    pub use crate::bindings::weir::agent::types::ToolSpec;

    /// The tools this action may call.
    pub fn available() -> Vec<ToolSpec> {
        host::available()
    }

    /// Calls tool `name` with `arguments` (a JSON object) and decodes its
    /// result.
    pub fn call<A: Serialize + ?Sized, R: DeserializeOwned>(
        name: &str,
        arguments: &A,
    ) -> Result<R> {
        let arguments = serde_json::to_string(arguments)?;
        let result = host::call(name, &arguments)?;
        serde_json::from_str(&result).map_err(|e| {
            ActionError::new("bad-tool-result", format!("result of tool `{name}`: {e}"))
        })
    }
}

#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::exports::weir::agent::handler::{ActionInfo, Guest as Handler};
    pub use crate::bindings::exports::weir::agent::reconciler::{Guest as Reconciler, Reconciled};
    pub use crate::bindings::exports::weir::agent::tool_provider::Guest as ToolProvider;
    pub use crate::bindings::weir::agent::types::{ActionError, Event, ToolSpec};
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    /// Runs one action function on a wit event.
    pub fn run(
        action: fn(crate::Event) -> crate::Result<()>,
        event: Event,
    ) -> Result<(), ActionError> {
        action(event.into()).map_err(Into::into)
    }

    /// Tool `name`'s JSON arguments, decoded.
    fn arguments<A: DeserializeOwned>(name: &str, arguments: &str) -> Result<A, ActionError> {
        serde_json::from_str(arguments).map_err(|e| ActionError {
            code: "bad-arguments".into(),
            message: format!("arguments of tool `{name}`: {e}"),
        })
    }

    /// A tool's result as JSON text.
    fn result_json<R: Serialize>(result: &R) -> Result<String, ActionError> {
        serde_json::to_string(result).map_err(|e| ActionError {
            code: "json".into(),
            message: e.to_string(),
        })
    }

    /// Runs one tool function on JSON arguments.
    pub fn call_tool<A: DeserializeOwned, R: Serialize>(
        name: &str,
        tool: fn(A) -> crate::Result<R>,
        arguments: &str,
    ) -> Result<String, ActionError> {
        let result = tool(self::arguments(name, arguments)?).map_err(ActionError::from)?;
        result_json(&result)
    }

    /// Runs one reconciler function on an interrupted call's JSON arguments.
    pub fn reconcile_tool<A: DeserializeOwned, R: Serialize>(
        name: &str,
        reconciler: fn(A, &str) -> crate::Result<Option<R>>,
        arguments: &str,
        idempotency_key: &str,
    ) -> Result<Reconciled, ActionError> {
        let arguments = self::arguments(name, arguments)?;
        match reconciler(arguments, idempotency_key).map_err(ActionError::from)? {
            None => Ok(Reconciled::NotDone),
            Some(result) => result_json(&result).map(Reconciled::Done),
        }
    }

    /// Joins doc lines into a description.
    pub fn description(lines: &[&str]) -> String {
        lines
            .iter()
            .map(|l| l.trim())
            .collect::<Vec<_>>()
            .join(" ")
            .trim()
            .to_string()
    }

    /// Error for a name this component does not carry.
    pub fn unknown(kind: &str, name: &str) -> ActionError {
        ActionError {
            code: format!("unknown-{kind}"),
            message: format!("this component carries no {kind} `{name}`"),
        }
    }
}

/// Export a skill's actions and tools from this component; use it once per
/// crate. Every section is optional.
///
/// An action maps the name an agent manifest uses (`export = "name"`) to a
/// function `fn(Event) -> Result<()>`. A tool maps its name and the JSON
/// Schema of its arguments to a function `fn(Args) -> Result<Output>`, where
/// `Args: Deserialize` and `Output: Serialize`. Doc comments become
/// descriptions, which models read for tools.
///
/// `effects` names the tools whose calls change the world in a way that must
/// not be repeated blindly (a payment, an email), each with a reconciler
/// `fn(Args, idempotency_key: &str) -> Result<Option<Output>>`. Under durable
/// execution, a call interrupted by a crash is not repeated: the reconciler
/// finds out whether it took effect (`Some(output)`) or not (`None`, and the
/// host calls the tool again). Give services the task's
/// [`context::idempotency_key`] so the reconciler can look the call up.
///
/// ```ignore
/// weir_sdk::skill! {
///     actions {
///         /// Splits text into words.
///         "tokenize" => tokenize,
///     }
///     tools {
///         /// Adds two numbers.
///         "add" (r#"{"type": "object", "properties": {"a": {"type": "number"},
///             "b": {"type": "number"}}, "required": ["a", "b"]}"#) => add,
///     }
///     effects {
///         "charge" => find_charge,
///     }
/// }
/// ```
#[macro_export]
macro_rules! skill {
    (
        $(actions {
            $( $(#[doc = $adoc:literal])* $aname:literal => $afunc:path ),* $(,)?
        })?
        $(tools {
            $( $(#[doc = $tdoc:literal])* $tname:literal ($schema:expr) => $tfunc:path ),* $(,)?
        })?
        $(effects {
            $( $ename:literal => $efunc:path ),* $(,)?
        })?
    ) => {
        struct __WeirSkill;

        impl $crate::__private::Handler for __WeirSkill {
            fn actions() -> ::std::vec::Vec<$crate::__private::ActionInfo> {
                ::std::vec![$($(
                    $crate::__private::ActionInfo {
                        name: ::std::string::String::from($aname),
                        description: $crate::__private::description(&[$($adoc),*]),
                    }
                ),*)?]
            }

            fn handle(
                action: ::std::string::String,
                event: $crate::__private::Event,
            ) -> ::std::result::Result<(), $crate::__private::ActionError> {
                match action.as_str() {
                    $($($aname => $crate::__private::run($afunc, event),)*)?
                    other => ::std::result::Result::Err($crate::__private::unknown("action", other)),
                }
            }
        }

        impl $crate::__private::ToolProvider for __WeirSkill {
            fn tools() -> ::std::vec::Vec<$crate::__private::ToolSpec> {
                ::std::vec![$($(
                    $crate::__private::ToolSpec {
                        name: ::std::string::String::from($tname),
                        description: $crate::__private::description(&[$($tdoc),*]),
                        parameters: ::std::string::String::from($schema),
                    }
                ),*)?]
            }

            fn call(
                name: ::std::string::String,
                arguments: ::std::string::String,
            ) -> ::std::result::Result<::std::string::String, $crate::__private::ActionError> {
                match name.as_str() {
                    $($($tname => $crate::__private::call_tool($tname, $tfunc, &arguments),)*)?
                    other => ::std::result::Result::Err($crate::__private::unknown("tool", other)),
                }
            }
        }

        impl $crate::__private::Reconciler for __WeirSkill {
            fn effects() -> ::std::vec::Vec<::std::string::String> {
                ::std::vec![$($(::std::string::String::from($ename)),*)?]
            }

            fn reconcile(
                name: ::std::string::String,
                arguments: ::std::string::String,
                idempotency_key: ::std::string::String,
            ) -> ::std::result::Result<$crate::__private::Reconciled, $crate::__private::ActionError> {
                match name.as_str() {
                    $($($ename => $crate::__private::reconcile_tool($ename, $efunc, &arguments, &idempotency_key),)*)?
                    other => ::std::result::Result::Err($crate::__private::unknown("effect", other)),
                }
            }
        }

        $crate::bindings::export_handler!(__WeirSkill with_types_in $crate::bindings);
    };
}

/// Export actions only: `actions! { "name" => function, ... }` is
/// `skill! { actions { ... } }`.
#[macro_export]
macro_rules! actions {
    ($($body:tt)*) => {
        $crate::skill! { actions { $($body)* } }
    };
}
