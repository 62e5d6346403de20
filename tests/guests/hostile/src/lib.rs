//! Test fixture: actions and tools that try to hurt the host, escape the
//! sandbox or exhaust it. Each reports what it managed to do as output, so a
//! test can check that it managed nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use weir_sdk::{ActionError, Event, Result, Value, emit, emit_output, json};

fn arg(event: &Event, name: &str) -> Result<Value> {
    Ok(event.payload_value()?[name].clone())
}

fn text_arg(event: &Event, name: &str) -> Result<String> {
    Ok(arg(event, name)?.as_str().unwrap_or_default().to_string())
}

/// Loops forever.
fn spin(_: Event) -> Result<()> {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

/// Allocates 1 MiB blocks, touching each, until the allocator fails.
fn memory_bomb(_: Event) -> Result<()> {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 1 << 20];
        block[4096] = 1;
        blocks.push(std::hint::black_box(block));
    }
}

#[inline(never)]
fn descend(depth: u64, pad: [u64; 16]) -> u64 {
    let pad = std::hint::black_box(pad);
    if depth == u64::MAX {
        return pad[0];
    }
    descend(depth + 1, pad) + pad[(depth % 16) as usize]
}

/// Recurses until the stack runs out.
fn recurse(_: Event) -> Result<()> {
    let n = descend(0, [1; 16]);
    emit_output(&json!(n))?;
    Ok(())
}

/// Executes `unreachable`.
fn trap(_: Event) -> Result<()> {
    std::process::abort()
}

/// Panics.
fn panic(_: Event) -> Result<()> {
    panic!("the hostile guest panicked")
}

/// Emits one payload of `mb` MiB.
fn big_output(event: Event) -> Result<()> {
    let mb = arg(&event, "mb")?.as_u64().unwrap_or(100) as usize;
    let text = "x".repeat(mb << 20);
    emit_output(&json!(text))?;
    Ok(())
}

/// Emits events forever, ignoring every error.
fn emit_storm(_: Event) -> Result<()> {
    let mut i: u64 = 0;
    loop {
        let _ = emit("storm", &json!({ "i": i }));
        i += 1;
    }
}

/// Writes 1 MiB values to short-term memory forever, ignoring errors.
fn memory_flood(_: Event) -> Result<()> {
    let block = "m".repeat(1 << 20);
    let mut i: u64 = 0;
    loop {
        let _ = weir_sdk::memory::short_term().set(&format!("flood.{i}"), &block);
        i += 1;
    }
}

/// Reads the file at `path`; outputs its length, or the error.
fn read_file(event: Event) -> Result<()> {
    let path = text_arg(&event, "path")?;
    let outcome = match std::fs::read(&path) {
        Ok(bytes) => {
            json!({ "read": bytes.len(), "text": String::from_utf8_lossy(&bytes[..bytes.len().min(64)]) })
        }
        Err(e) => json!({ "error": e.to_string() }),
    };
    emit_output(&outcome)?;
    Ok(())
}

/// Lists the directory at `path`.
fn list_dir(event: Event) -> Result<()> {
    let path = text_arg(&event, "path")?;
    let outcome = match std::fs::read_dir(&path) {
        Ok(entries) => {
            json!({ "entries": entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect::<Vec<_>>() })
        }
        Err(e) => json!({ "error": e.to_string() }),
    };
    emit_output(&outcome)?;
    Ok(())
}

/// Writes `text` to the file at `path`.
fn write_file(event: Event) -> Result<()> {
    let path = text_arg(&event, "path")?;
    let text = text_arg(&event, "text")?;
    let outcome = match std::fs::write(&path, text) {
        Ok(()) => json!({ "written": true }),
        Err(e) => json!({ "error": e.to_string() }),
    };
    emit_output(&outcome)?;
    Ok(())
}

/// Opens a TCP connection to `addr` and sends a line.
fn connect(event: Event) -> Result<()> {
    use std::io::Write;
    let addr = text_arg(&event, "addr")?;
    let outcome = match std::net::TcpStream::connect(&addr) {
        Ok(mut stream) => {
            let sent = stream.write_all(b"hello from the guest\n").is_ok();
            json!({ "connected": true, "sent": sent })
        }
        Err(e) => json!({ "error": e.to_string() }),
    };
    emit_output(&outcome)?;
    Ok(())
}

/// GETs `url`, following up to `follow` redirects itself; outputs the
/// status and body, or fails with the HTTP error.
fn http_get(event: Event) -> Result<()> {
    let mut url = text_arg(&event, "url")?;
    let mut follow = arg(&event, "follow")?.as_u64().unwrap_or(0);
    loop {
        let response = weir_sdk::http::get(&url)?;
        let location = response
            .headers
            .iter()
            .find(|(name, _)| name == "location")
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned());
        match location {
            Some(next) if (300..400).contains(&response.status) && follow > 0 => {
                follow -= 1;
                url = next;
            }
            _ => {
                emit_output(&json!({ "status": response.status, "body": response.text() }))?;
                return Ok(());
            }
        }
    }
}

/// POSTs `size` bytes to `url`; outputs the status and body.
fn http_post(event: Event) -> Result<()> {
    let url = text_arg(&event, "url")?;
    let size = arg(&event, "size")?.as_u64().unwrap_or(0) as usize;
    let body = vec![b'z'; size];
    let response =
        weir_sdk::http::request("POST", &url, &[("content-type", "text/plain")], Some(&body))?;
    emit_output(&json!({ "status": response.status, "body": response.text() }))?;
    Ok(())
}

/// Outputs the environment variable `name` and how many variables it sees.
fn env(event: Event) -> Result<()> {
    let name = text_arg(&event, "name")?;
    emit_output(&json!({
        "value": std::env::var(&name).ok(),
        "count": std::env::vars().count(),
    }))?;
    Ok(())
}

/// Asks the chat model `model`.
fn ask(event: Event) -> Result<()> {
    use weir_sdk::model::{self, Message};
    let name = text_arg(&event, "model")?;
    let reply = model::chat(&name, vec![Message::user("hello")]).send()?;
    emit_output(&json!({ "content": reply.message.content }))?;
    Ok(())
}

/// Calls tool `tool` with `arguments`.
fn use_tool(event: Event) -> Result<()> {
    let name = text_arg(&event, "tool")?;
    let result: Value = weir_sdk::tools::call(&name, &arg(&event, "arguments")?)?;
    emit_output(&json!({ "result": result }))?;
    Ok(())
}

/// Sleeps `ms` in a host call (WASI clocks), where epochs cannot stop it.
fn sleep(event: Event) -> Result<()> {
    let ms = arg(&event, "ms")?.as_u64().unwrap_or(0);
    std::thread::sleep(std::time::Duration::from_millis(ms));
    emit_output(&json!({ "slept": ms }))?;
    Ok(())
}

/// Counts `n` iterations of a loop, then outputs the count.
fn count(event: Event) -> Result<()> {
    let n = arg(&event, "n")?.as_u64().unwrap_or(0);
    let mut x: u64 = 0;
    for _ in 0..n {
        x = std::hint::black_box(x + 1);
    }
    emit_output(&json!({ "counted": x }))?;
    Ok(())
}

static TASKS: AtomicU64 = AtomicU64::new(0);

/// Outputs how many tasks this instance has run (1 in a fresh instance),
/// then traps if asked to.
fn instance_tasks(event: Event) -> Result<()> {
    let n = TASKS.fetch_add(1, Ordering::SeqCst) + 1;
    if arg(&event, "trap")?.as_bool() == Some(true) {
        std::process::abort();
    }
    emit_output(&json!({ "key": event.key, "tasks": n }))?;
    Ok(())
}

/// Emits an event of type `type` with payload `payload`.
fn emit_as(event: Event) -> Result<()> {
    emit(&text_arg(&event, "type")?, &arg(&event, "payload")?)?;
    Ok(())
}

/// Writes memory at a path of `segments` segments a value `depth` levels
/// deep (built as text, so the guest never recurses on it), or emits such a
/// payload with `emit`; outputs what the host answered.
fn deep(event: Event) -> Result<()> {
    let segments = arg(&event, "segments")?.as_u64().unwrap_or(1) as usize;
    let depth = arg(&event, "depth")?.as_u64().unwrap_or(1) as usize;
    let value = format!("{}0{}", "[".repeat(depth - 1), "]".repeat(depth - 1));
    if arg(&event, "emit")?.as_bool().unwrap_or(false) {
        emit("deep", &weir_sdk::serde_json::from_str::<Value>(&value)?)?;
        return Ok(());
    }
    let path = vec!["a"; segments].join(".");
    use weir_sdk::bindings::weir::agent::memory;
    let answer = memory::set(memory::Scope::ShortTerm, &path, &value);
    emit_output(&json!({ "set": answer.map_err(|e| format!("{e:?}")).err() }))?;
    Ok(())
}

/// Emits `n` events of `type`, each with the payload it was given: an
/// action that listens to `type` fans out without end.
fn fan_out(event: Event) -> Result<()> {
    let event_type = text_arg(&event, "type")?;
    let n = arg(&event, "n")?.as_u64().unwrap_or(1);
    let payload = event.payload_value()?;
    for _ in 0..n {
        emit(&event_type, &payload)?;
    }
    Ok(())
}

/// Asks `wasi:random` for `len` bytes, `times` times; outputs the total.
fn random(event: Event) -> Result<()> {
    let len = arg(&event, "len")?.as_u64().unwrap_or(16);
    let times = arg(&event, "times")?.as_u64().unwrap_or(1);
    let mut total = 0;
    for _ in 0..times {
        total += wasip2::random::random::get_random_bytes(len).len();
    }
    emit_output(&json!({ "read": total }))?;
    Ok(())
}

/// Fails with an error whose code and message are `size` bytes long.
fn fail_loud(event: Event) -> Result<()> {
    let size = arg(&event, "size")?.as_u64().unwrap_or(1) as usize;
    Err(ActionError::new("c".repeat(size), "m".repeat(size)))
}

/// Keeps `size` more bytes in the key's short-term memory, under the
/// event's id: run after run, the key's memory grows.
fn hoard_memory(event: Event) -> Result<()> {
    let size = arg(&event, "size")?.as_u64().unwrap_or(1) as usize;
    let memory = weir_sdk::memory::short_term();
    memory.set(&format!("hoard.{}", event.id), &"h".repeat(size))?;
    emit_output(&json!({ "kept": memory.field_names("hoard")?.len() }))?;
    Ok(())
}

/// Emits the payload unchanged as output.
fn echo(event: Event) -> Result<()> {
    emit_output(&event.payload_value()?)?;
    Ok(())
}

#[derive(serde::Deserialize)]
struct NestArgs {
    levels: u32,
}

/// Tool: calls itself `levels` more times; returns the depth reached.
fn nest(args: NestArgs) -> Result<Value> {
    if args.levels == 0 {
        return Ok(json!({ "levels_left": 0 }));
    }
    let inner: Value = weir_sdk::tools::call("nest", &json!({ "levels": args.levels - 1 }))?;
    Ok(json!({ "inner": inner }))
}

/// Tool: spins forever.
fn slow(_: Value) -> Result<Value> {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
        if x == u64::MAX {
            return Err(ActionError::new("never", "unreachable"));
        }
    }
}

/// Tool: GETs `url` (the tool's component may be granted hosts).
fn fetch(args: Value) -> Result<Value> {
    let url = args["url"].as_str().unwrap_or_default();
    let response = weir_sdk::http::get(url)?;
    Ok(json!({ "status": response.status, "body": response.text() }))
}

/// Holds `n` host resources (clock pollables) at once, or ever more when
/// `n` is not given, and reports how many it held.
fn hoard_handles(event: Event) -> Result<()> {
    let n = arg(&event, "n")?.as_u64().unwrap_or(u64::MAX) as usize;
    let mut held = Vec::new();
    while held.len() < n {
        held.push(wasip2::clocks::monotonic_clock::subscribe_duration(
            1_000_000_000,
        ));
    }
    emit_output(&json!({ "held": held.len() }))?;
    Ok(())
}

weir_sdk::skill! {
    actions {
        /// Loops forever.
        "spin" => spin,
        /// Allocates until refused.
        "memory-bomb" => memory_bomb,
        /// Recurses until the stack overflows.
        "recurse" => recurse,
        /// Traps.
        "trap" => trap,
        /// Panics.
        "panic" => panic,
        /// Emits one huge payload.
        "big-output" => big_output,
        /// Emits forever.
        "emit-storm" => emit_storm,
        /// Floods short-term memory.
        "memory-flood" => memory_flood,
        /// Holds host resources until refused.
        "hoard-handles" => hoard_handles,
        /// Reads a file.
        "read-file" => read_file,
        /// Lists a directory.
        "list-dir" => list_dir,
        /// Writes a file.
        "write-file" => write_file,
        /// Opens a TCP connection.
        "connect" => connect,
        /// Sends an HTTP GET.
        "http-get" => http_get,
        /// Sends an HTTP POST.
        "http-post" => http_post,
        /// Reads an environment variable.
        "env" => env,
        /// Calls a chat model.
        "ask" => ask,
        /// Calls a tool.
        "use-tool" => use_tool,
        /// Sleeps in a host call.
        "sleep" => sleep,
        /// Burns a known amount of CPU.
        "count" => count,
        /// Counts the tasks its instance ran.
        "instance-tasks" => instance_tasks,
        /// Echoes its payload.
        "echo" => echo,
        /// Emits an event of any type.
        "emit-as" => emit_as,
        /// Writes deeply nested memory, or emits a deep payload.
        "deep" => deep,
        /// Emits many events of one type.
        "fan-out" => fan_out,
        /// Reads random bytes.
        "random" => random,
        /// Fails with a huge error.
        "fail-loud" => fail_loud,
        /// Grows the key's memory run after run.
        "hoard-memory" => hoard_memory,
    }
    tools {
        /// Calls itself.
        "nest" (r#"{"type": "object", "properties": {"levels": {"type": "integer"}}, "required": ["levels"]}"#) => nest,
        /// Never returns.
        "slow" (r#"{"type": "object"}"#) => slow,
        /// Fetches a URL.
        "fetch" (r#"{"type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"]}"#) => fetch,
    }
}
