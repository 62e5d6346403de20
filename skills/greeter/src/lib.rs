//! Greets visitors and counts their visits per key: the skill of the guide
//! in `skills/README.md`.

use serde::Deserialize;
use weir_sdk::{ActionError, Event, Result, context, emit_output, json, log, memory};

#[derive(Deserialize)]
struct Visit {
    name: String,
}

fn greet(event: Event) -> Result<()> {
    // The payload, decoded with serde; a wrong shape becomes a `bad-payload` error event.
    let visit: Visit = event.payload()?;
    if visit.name.is_empty() {
        return Err(ActionError::new("empty-name", "a visit needs a name"));
    }
    // Config: the action's own `config = {...}` first, then the agent's `[config]`.
    let greeting: String = context::config("greeting")?.unwrap_or_else(|| "Hello".into());
    // Short-term memory: per key, kept across runs. Paths are dot-separated.
    let visits = memory::short_term().get::<u64>("visits")?.unwrap_or(0) + 1;
    memory::short_term().set("visits", &visits)?;
    log::info(&format!("visit {visits} of {}", event.key));
    emit_output(&json!({ "text": format!("{greeting}, {}! Visit #{visits}", visit.name) }))?;
    Ok(())
}

weir_sdk::actions! {
    /// Greets a visitor and counts their visits.
    "greet" => greet,
}
