//! Test fixture: well- and badly-behaved actions for the host's tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use weir_sdk::{ActionError, Event, Result, emit, emit_output, json, memory, serde_json};

/// Emits the payload unchanged as output.
fn echo(event: Event) -> Result<()> {
    emit_output(&event.payload_value()?)?;
    Ok(())
}

/// Executes `unreachable`.
fn trap(_: Event) -> Result<()> {
    emit_output(&json!("emitted before the trap"))?;
    std::process::abort()
}

/// Panics with a message.
fn panic(event: Event) -> Result<()> {
    panic!("guest panicked on event {}", event.id)
}

/// Returns an action error after writing memory and emitting, which must both
/// be discarded.
fn fail(_: Event) -> Result<()> {
    memory::short_term().set("fail.written", &true)?;
    emit_output(&json!("emitted before failing"))?;
    Err(ActionError::new("refused", "this action always fails"))
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Increments a guest global; in a fresh instance it is always 1.
fn counter(_: Event) -> Result<()> {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst) + 1;
    emit_output(&json!({ "counter": n }))?;
    Ok(())
}

/// Appends the payload's `seq` to the key's `seen` list and outputs the list,
/// so a test can check per-key order.
fn order(event: Event) -> Result<()> {
    let payload = event.payload_value()?;
    let stm = memory::short_term();
    let mut seen: Vec<weir_sdk::Value> = stm.get("seen")?.unwrap_or_default();
    seen.push(payload["seq"].clone());
    stm.set("seen", &seen)?;
    if let Some(ms) = payload["sleep_ms"].as_u64() {
        std::thread::sleep(Duration::from_millis(ms));
    }
    emit_output(&json!({ "key": event.key, "seq": payload["seq"], "seen": seen }))?;
    Ok(())
}

/// Emits an event of its own type again: a routing loop.
fn ping_pong(event: Event) -> Result<()> {
    emit(&event.event_type, &json!({}))?;
    Ok(())
}

/// Loops forever.
fn spin(_: Event) -> Result<()> {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

/// Writes the payload's `value` to short-term and sensory memory at `path`,
/// then outputs what both scopes hold at `read`.
fn remember(event: Event) -> Result<()> {
    let payload = event.payload_value()?;
    let path = payload["path"].as_str().unwrap_or("");
    if !path.is_empty() {
        memory::short_term().set(path, &payload["value"])?;
        memory::sensory().set(path, &payload["value"])?;
    }
    let read = payload["read"].as_str().unwrap_or("");
    let stm: Option<weir_sdk::Value> = memory::short_term().get(read)?;
    let sensory: Option<weir_sdk::Value> = memory::sensory().get(read)?;
    emit_output(&json!({ "short_term": stm, "sensory": sensory }))?;
    Ok(())
}

#[derive(serde::Deserialize)]
struct AddArgs {
    a: f64,
    b: f64,
}

/// Tool: adds two numbers.
fn add(args: AddArgs) -> Result<weir_sdk::Value> {
    Ok(json!({ "sum": args.a + args.b }))
}

/// Tool: panics.
fn explode(_: weir_sdk::Value) -> Result<()> {
    panic!("the tool exploded")
}

#[derive(serde::Deserialize)]
struct FetchArgs {
    url: String,
}

/// Tool: GETs a URL (wasi:http); its status and body.
fn fetch(args: FetchArgs) -> Result<weir_sdk::Value> {
    let response = weir_sdk::http::get(&args.url)?;
    Ok(json!({ "status": response.status, "body": response.text() }))
}

/// Calls the tool named in the payload with the payload's `arguments` and
/// outputs the result.
fn use_tool(event: Event) -> Result<()> {
    let payload = event.payload_value()?;
    let name = payload["tool"].as_str().unwrap_or_default();
    let result: weir_sdk::Value = weir_sdk::tools::call(name, &payload["arguments"])?;
    emit_output(&json!({ "result": result }))?;
    Ok(())
}

/// Asks the chat model named in the payload, and outputs the reply.
fn ask(event: Event) -> Result<()> {
    use weir_sdk::model::{self, Message};
    let payload = event.payload_value()?;
    let model_name = payload["model"].as_str().unwrap_or_default();
    let question = payload["question"].as_str().unwrap_or_default();
    let mut chat = model::chat(model_name, vec![Message::user(question)]);
    if !payload["options"].is_null() {
        chat = chat.options(&payload["options"]);
    }
    let reply = chat.send()?;
    emit_output(&json!({
        "content": reply.message.content,
        "finish_reason": reply.finish_reason,
        "input_tokens": reply.usage.input_tokens,
        "output_tokens": reply.usage.output_tokens,
        "model": reply.model,
    }))?;
    Ok(())
}

/// Reads the wall clock and a random number, asks the model with them, then
/// asks again: a re-run must see the same values to replay the first call.
fn stamp(event: Event) -> Result<()> {
    use weir_sdk::model::{self, Message};
    let payload = event.payload_value()?;
    let model_name = payload["model"].as_str().unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
        .to_string();
    let random = wasip2::random::random::get_random_u64().to_string();
    let question = format!("stamp {nanos} {random}");
    model::chat(model_name, vec![Message::user(question)]).send()?;
    let second = format!("second {}", event.key);
    model::chat(model_name, vec![Message::user(second)]).send()?;
    emit_output(&json!({ "stamp": nanos, "random": random }))?;
    Ok(())
}

/// GETs the payload's `url`, then asks the model: a re-run must get the
/// recorded response rather than asking the server again.
fn fetch_then_ask(event: Event) -> Result<()> {
    use weir_sdk::model::{self, Message};
    let payload = event.payload_value()?;
    let fetched = weir_sdk::http::get(payload["url"].as_str().unwrap_or_default())?.text();
    let model_name = payload["model"].as_str().unwrap_or_default();
    let reply = model::chat(model_name, vec![Message::user(fetched.clone())]).send()?;
    emit_output(&json!({ "fetched": fetched, "answer": reply.message.content }))?;
    Ok(())
}

/// Embeds the payload's `texts` with its `model`; outputs the vectors' count
/// and length.
fn embed(event: Event) -> Result<()> {
    let payload = event.payload_value()?;
    let texts: Vec<String> = serde_json::from_value(payload["texts"].clone())?;
    let vectors = weir_sdk::model::embed(payload["model"].as_str().unwrap_or_default(), &texts)?;
    emit_output(
        &json!({ "count": vectors.len(), "dims": vectors.first().map_or(0, Vec::len), "first": vectors.first() }),
    )?;
    Ok(())
}

weir_sdk::skill! {
    actions {
        /// Emits the payload as output.
        "echo" => echo,
        /// Traps.
        "trap" => trap,
        /// Panics.
        "panic" => panic,
        /// Fails after writing memory and emitting.
        "fail" => fail,
        /// Outputs a guest global counter.
        "counter" => counter,
        /// Records arrival order per key.
        "order" => order,
        /// Re-emits its own event type.
        "ping-pong" => ping_pong,
        /// Loops forever.
        "spin" => spin,
        /// Writes and reads both memory scopes.
        "remember" => remember,
        /// Calls a tool.
        "use-tool" => use_tool,
        /// Asks a chat model.
        "ask" => ask,
        /// Asks a chat model with the time and a random number.
        "stamp" => stamp,
        /// Fetches a URL, then asks a chat model.
        "fetch-then-ask" => fetch_then_ask,
        /// Embeds texts.
        "embed" => embed,
    }
    tools {
        /// Adds two numbers.
        "add" (r#"{"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}"#) => add,
        /// Panics.
        "explode" (r#"{"type": "object"}"#) => explode,
        /// GETs a URL.
        "fetch" (r#"{"type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"]}"#) => fetch,
    }
}
