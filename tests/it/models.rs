//! Models and tools as host functions, the built-in chat/tool actions and
//! ReAct, against a scripted OpenAI/Anthropic-compatible server on loopback.

use crate::support::model_server::*;
use crate::support::*;
use serde_json::{Value, json};
use weir::event::types;
use weir::{ActionBuilder, Agent, AgentBuilder, Event};

fn errors(outputs: &[Event]) -> Vec<&Event> {
    outputs
        .iter()
        .filter(|e| e.event_type == types::ERROR)
        .collect()
}

fn connection(url: &str, provider: &str) -> Value {
    let base_url = if provider == "openai" {
        format!("{url}/v1")
    } else {
        url.to_string()
    };
    json!({ "provider": provider, "base_url": base_url, "max_retries": 2, "backoff_ms": 1, "timeout_ms": 3000 })
}

/// The misbehave component, an OpenAI connection to `url` and a chat model
/// `assistant` that may offer the tool `add`.
fn agent_with_model(url: &str, name: &str) -> AgentBuilder {
    Agent::builder(name)
        .component("m", component("guest_misbehave.wasm"))
        .resource("conn", "chat-model-connection", connection(url, "openai"))
        .resource(
            "assistant",
            "chat-model",
            json!({ "connection": "conn", "model": "gpt-test", "system_prompt": "Be brief.",
                    "options": { "temperature": 0.0, "max_tokens": 64 }, "tools": ["add"] }),
        )
}

fn ask(model: &str, question: &str) -> Event {
    Event::input("k", json!({ "model": model, "question": question }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_calls_a_granted_chat_model() {
    let server = ModelServer::start().await;
    server.script([Reply::Json(openai_text("Paris.", 21, 2))]);
    let agent = agent_with_model(&server.url, "ask")
        .action(
            ActionBuilder::new("ask", "m")
                .listen(types::INPUT)
                .model("assistant"),
        )
        .build();
    let (outputs, summary) = run(
        plan(&agent).await,
        vec![ask("assistant", "Capital of France?")],
    )
    .await;
    assert!(errors(&outputs).is_empty(), "{outputs:#?}");
    assert_eq!(
        outputs[0].payload,
        json!({ "content": "Paris.", "finish_reason": "stop", "input_tokens": 21,
                "output_tokens": 2, "model": "scripted-model" })
    );
    let request = &server.received()[0];
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(request.body["model"], "gpt-test");
    assert_eq!(request.body["temperature"], 0.0);
    assert_eq!(request.body["max_tokens"], 64);
    assert_eq!(
        request.body["messages"][0],
        json!({ "role": "system", "content": "Be brief." })
    );
    assert_eq!(
        request.body["messages"][1],
        json!({ "role": "user", "content": "Capital of France?" })
    );
    assert!(
        request.body.get("tools").is_none(),
        "tools offered without use_tools"
    );
    let stats = &summary.models["ask"]["assistant"];
    assert_eq!(
        (stats.calls, stats.input_tokens, stats.output_tokens),
        (1, 21, 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_not_granted_is_denied_and_never_called() {
    let server = ModelServer::start().await;
    let agent = agent_with_model(&server.url, "denied")
        .action(ActionBuilder::new("ask", "m").listen(types::INPUT))
        .build();
    let (outputs, _) = run(plan(&agent).await, vec![ask("assistant", "hi")]).await;
    let error = &errors(&outputs)[0].payload;
    assert_eq!(error["code"], "denied");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("not granted model `assistant`"),
        "{error}"
    );
    assert_eq!(server.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_are_retried_then_reported() {
    let server = ModelServer::start().await;
    server.script([
        Reply::Status(429, Some(0), "slow down".into()),
        Reply::Status(503, None, "overloaded".into()),
        Reply::Json(openai_text("third time lucky", 1, 1)),
        // The second event: three 500s exhaust max_retries = 2.
        Reply::Status(500, None, "boom 1".into()),
        Reply::Status(500, None, "boom 2".into()),
        Reply::Status(500, None, "boom 3".into()),
        // The third: a 400 is not retried.
        Reply::Status(400, None, "{\"error\": \"bad request\"}".into()),
        // The fourth: 200 with a body that is not JSON.
        Reply::Garbage("<html>oops</html>".into()),
    ]);
    let agent = agent_with_model(&server.url, "retries")
        .action(
            ActionBuilder::new("ask", "m")
                .listen(types::INPUT)
                .model("assistant"),
        )
        .build();
    let events = (0..4).map(|i| ask("assistant", &format!("q{i}"))).collect();
    let (outputs, summary) = run(plan(&agent).await, events).await;
    assert_eq!(outputs.len(), 4);
    assert_eq!(outputs[0].payload["content"], "third time lucky");
    let message = |i: usize| outputs[i].payload["message"].as_str().unwrap().to_string();
    assert!(
        message(1).contains("HTTP 500: boom 3 (after 3 attempts)"),
        "{}",
        message(1)
    );
    assert!(message(2).contains("HTTP 400"), "{}", message(2));
    assert!(message(3).contains("malformed response"), "{}", message(3));
    assert_eq!(server.count(), 8);
    assert_eq!(summary.models["ask"]["assistant"].failures, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_ends_or_stalls_is_cut_with_a_clear_error() {
    let server = ModelServer::start().await;
    server.script([
        // 64 KiB of whitespace a millisecond, forever: cut at the size
        // limit, long before the 3 s deadline.
        Reply::Endless,
        // The start of an answer, then silence: cut at the deadline.
        Reply::Stalled("{\"choices\": [".into()),
    ]);
    let agent = agent_with_model(&server.url, "endless")
        .action(
            ActionBuilder::new("ask", "m")
                .listen(types::INPUT)
                .model("assistant"),
        )
        .build();
    let events = vec![ask("assistant", "q1"), ask("assistant", "q2")];
    let (outputs, _) = run(plan(&agent).await, events).await;
    let message = |i: usize| outputs[i].payload["message"].as_str().unwrap().to_string();
    assert_eq!(outputs.len(), 2, "{outputs:#?}");
    assert!(
        message(0).contains("the response is over the 33554432 byte limit"),
        "{}",
        message(0)
    );
    assert!(
        message(1).contains("the response did not arrive within 3 s"),
        "{}",
        message(1)
    );
    // Neither is retried: the server answered, badly.
    assert_eq!(server.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_gives_an_error_event_and_other_keys_go_on() {
    // Nothing listens on this port once the listener is dropped.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let agent = agent_with_model(&dead, "dead")
        .action(
            ActionBuilder::new("ask", "m")
                .listen(types::INPUT)
                .model("assistant"),
        )
        .action(ActionBuilder::new("echo", "m").listen("plain"))
        .build();
    let events = vec![
        ask("assistant", "anyone?"),
        Event::input("other", json!({ "fine": true })).with_type("plain"),
    ];
    let (outputs, _) = run(plan(&agent).await, events).await;
    let error = outputs.iter().find(|e| e.key == "k").unwrap();
    assert_eq!(error.payload["code"], "host-failed");
    assert!(
        error.payload["message"]
            .as_str()
            .unwrap()
            .contains("after 3 attempts"),
        "{}",
        error.payload
    );
    assert_eq!(
        outputs.iter().find(|e| e.key == "other").unwrap().payload,
        json!({ "fine": true })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_model_does_not_block_other_keys() {
    let server = ModelServer::start().await;
    server.script([Reply::Delayed(
        std::time::Duration::from_millis(1500),
        Box::new(Reply::Json(openai_text("late", 1, 1))),
    )]);
    let agent = agent_with_model(&server.url, "slow")
        .action(
            ActionBuilder::new("ask", "m")
                .listen(types::INPUT)
                .model("assistant"),
        )
        .action(ActionBuilder::new("echo", "m").listen("plain"))
        .build();
    let mut events = vec![ask("assistant", "take your time")];
    events.extend((0..30).map(|i| Event::input(format!("fast-{i}"), json!(i)).with_type("plain")));
    let (outputs, _) = run(plan(&agent).await, events).await;
    assert_eq!(outputs.len(), 31);
    assert_eq!(outputs.last().unwrap().payload["content"], "late");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_anthropic_messages_api() {
    let server = ModelServer::start().await;
    server.script([Reply::Json(anthropic_text("Bonjour."))]);
    // SAFETY: no other thread of this test binary reads this variable.
    unsafe { std::env::set_var("WEIR_TEST_ANTHROPIC_KEY", "sk-ant-test") };
    let mut conn = connection(&server.url, "anthropic");
    conn["api_key_env"] = json!("WEIR_TEST_ANTHROPIC_KEY");
    let agent = Agent::builder("anthropic")
        .component("m", component("guest_misbehave.wasm"))
        .resource("claude-conn", "chat-model-connection", conn)
        .resource("claude", "chat-model", json!({ "connection": "claude-conn", "model": "claude-test", "system_prompt": "Answer in French." }))
        .action(ActionBuilder::new("ask", "m").listen(types::INPUT).model("claude"))
        .build();
    let (outputs, summary) = run(plan(&agent).await, vec![ask("claude", "Hello?")]).await;
    assert_eq!(outputs[0].payload["content"], "Bonjour.", "{outputs:#?}");
    let request = &server.received()[0];
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.headers["x-api-key"], "sk-ant-test");
    assert_eq!(request.headers["anthropic-version"], "2023-06-01");
    assert_eq!(request.body["system"], "Answer in French.");
    assert_eq!(request.body["max_tokens"], 1024);
    assert_eq!(
        request.body["messages"],
        json!([{ "role": "user", "content": [{ "type": "text", "text": "Hello?" }] }])
    );
    assert_eq!(summary.models["ask"]["claude"].input_tokens, 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_through_an_embedding_model() {
    let server = ModelServer::start().await;
    server.script([Reply::Json(openai_embeddings(2, 4))]);
    let agent = Agent::builder("embed")
        .component("m", component("guest_misbehave.wasm"))
        .resource(
            "conn",
            "embedding-model-connection",
            connection(&server.url, "openai"),
        )
        .resource(
            "embedder",
            "embedding-model",
            json!({ "connection": "conn", "model": "text-embed-test" }),
        )
        .action(
            ActionBuilder::new("embed", "m")
                .listen(types::INPUT)
                .model("embedder"),
        )
        .build();
    let event = Event::input("k", json!({ "model": "embedder", "texts": ["a", "b"] }));
    let (outputs, _) = run(plan(&agent).await, vec![event]).await;
    assert_eq!(
        outputs[0].payload,
        json!({ "count": 2, "dims": 4, "first": [0.0, 0.25, 0.5, 0.75] })
    );
    assert_eq!(
        server.received()[0].body,
        json!({ "model": "text-embed-test", "input": ["a", "b"] })
    );
}

pub(crate) fn tool_agent(grant: &[&str]) -> Agent {
    let mut action = ActionBuilder::new("use-tool", "m").listen(types::INPUT);
    for tool in grant {
        action = action.tool(*tool);
    }
    Agent::builder("tools")
        .component("m", component("guest_misbehave.wasm"))
        .action(action)
        .build()
}

pub(crate) fn use_tool(tool: &str, arguments: Value) -> Event {
    Event::input("k", json!({ "tool": tool, "arguments": arguments }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_call_granted_tools_with_checked_arguments() {
    let plan = plan(&tool_agent(&["add", "explode"])).await;
    assert_eq!(
        plan.tools
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        vec!["add", "explode", "fetch"]
    );
    let events = vec![
        use_tool("add", json!({ "a": 2, "b": 40 })),
        use_tool("add", json!({ "a": "two", "b": 40 })),
        use_tool("add", json!({ "a": 1 })),
        use_tool("explode", json!({})),
        use_tool("add", json!({ "a": 0.5, "b": 0.25 })),
    ];
    let (outputs, _) = run(plan, events).await;
    assert_eq!(outputs[0].payload, json!({ "result": { "sum": 42.0 } }));
    let message = |i: usize| outputs[i].payload["message"].as_str().unwrap().to_string();
    assert!(
        message(1).contains("do not match its schema") && message(1).contains("/a"),
        "{}",
        message(1)
    );
    assert!(
        message(2).contains("\"b\" is a required property"),
        "{}",
        message(2)
    );
    assert!(
        message(3).contains("tool `explode` trapped") && message(3).contains("the tool exploded"),
        "{}",
        message(3)
    );
    assert_eq!(outputs[4].payload, json!({ "result": { "sum": 0.75 } }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_not_granted_is_denied_and_unknown_tools_fail_the_plan() {
    let (outputs, _) = run(
        plan(&tool_agent(&[])).await,
        vec![use_tool("add", json!({ "a": 1, "b": 2 }))],
    )
    .await;
    assert_eq!(outputs[0].payload["code"], "denied");

    let err = weir::AgentPlan::from_agent_in(&tool_agent(&["subtract"]), sandbox())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(
            "actions.use-tool.tools: no component provides a tool `subtract` (tools: add, explode, fetch)"
        ),
        "{err}"
    );
}

fn react_agent(url: &str, max_steps: u32, schema: Option<Value>) -> Agent {
    agent_with_model(url, "react")
        .react(
            "assistant",
            Some("Question: {input}".into()),
            schema,
            max_steps,
        )
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn react_calls_tools_until_the_model_answers_in_the_schema() {
    let server = ModelServer::start().await;
    server.script([
        Reply::Json(openai_tool_call("call_1", "add", json!({ "a": 2, "b": 3 }))),
        Reply::Json(openai_text("{\"answer\": 5}", 30, 6)),
    ]);
    let schema = json!({ "type": "object", "properties": { "answer": { "type": "number" } }, "required": ["answer"] });
    let plan = plan(&react_agent(&server.url, 4, Some(schema.clone()))).await;
    let (outputs, summary) = run(plan, vec![Event::input("k", json!("What is 2 + 3?"))]).await;
    assert_eq!(outputs.len(), 1, "{outputs:#?}");
    assert_eq!(outputs[0].event_type, types::OUTPUT);
    assert_eq!(outputs[0].payload, json!({ "answer": 5 }));

    let requests = server.received();
    assert_eq!(requests.len(), 2);
    let first = &requests[0].body;
    assert_eq!(first["messages"][1]["content"], "Question: What is 2 + 3?");
    assert_eq!(first["tools"][0]["function"]["name"], "add");
    assert_eq!(first["response_format"]["json_schema"]["schema"], schema);
    // The second call carries the tool call and its result.
    let second = &requests[1].body["messages"];
    assert_eq!(second[2]["tool_calls"][0]["id"], "call_1");
    assert_eq!(
        second[3],
        json!({ "role": "tool", "content": "{\"sum\":5.0}", "tool_call_id": "call_1" })
    );
    assert_eq!(summary.actions["tool_call_action"].runs, 1);
    assert_eq!(summary.models["chat_model_action"]["assistant"].calls, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_looping_on_tool_calls_is_cut_at_the_step_limit() {
    let server = ModelServer::start().await;
    server.fallback(Reply::Json(openai_tool_call(
        "again",
        "add",
        json!({ "a": 1, "b": 1 }),
    )));
    let plan = plan(&react_agent(&server.url, 3, None)).await;
    let events = vec![
        Event::input("looping", json!("loop")),
        Event::input("k2", json!("x")).with_type("unrelated"),
    ];
    let (outputs, _) = run(plan, events).await;
    let error = errors(&outputs)[0];
    assert_eq!(error.payload["code"], "step-limit");
    assert!(
        error.payload["message"]
            .as_str()
            .unwrap()
            .contains("limit of 3 model calls"),
        "{}",
        error.payload
    );
    assert_eq!(server.count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_outside_the_output_schema_is_an_error() {
    let server = ModelServer::start().await;
    server.script([Reply::Json(openai_text("five", 1, 1))]);
    let schema = json!({ "type": "object", "required": ["answer"] });
    let plan = plan(&react_agent(&server.url, 4, Some(schema))).await;
    let (outputs, _) = run(plan, vec![Event::input("k", json!("2+3?"))]).await;
    let error = &errors(&outputs)[0].payload;
    assert_eq!(error["code"], "invalid");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("reply is not JSON"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_resources_are_checked_at_plan_time() {
    let agent = Agent::builder("bad")
        .component("m", component("guest_misbehave.wasm"))
        .resource(
            "conn",
            "chat-model-connection",
            json!({ "provider": "openia" }),
        )
        .resource(
            "a",
            "chat-model",
            json!({ "connection": "nope", "model": "m", "tools": ["mul"] }),
        )
        .resource(
            "b",
            "chat-model",
            json!({ "connection": "conn", "model": "m", "temprature": 1 }),
        )
        .action(
            ActionBuilder::new("ask", "m")
                .listen(types::INPUT)
                .model("c"),
        )
        .build();
    let err = weir::AgentPlan::from_agent_in(&agent, sandbox())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("resources.conn: unknown provider `openia`"),
        "{err}"
    );
    assert!(
        err.contains("resources.a.connection: no chat-model-connection resource named `nope`"),
        "{err}"
    );
    assert!(
        err.contains("resources.a.tools: no component provides a tool `mul`"),
        "{err}"
    );
    assert!(
        err.contains("resources.b: unknown field `temprature`"),
        "{err}"
    );
    assert!(
        err.contains("actions.ask.models: no chat-model or embedding-model resource named `c`"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tool_calls_from_the_model_become_error_events() {
    let server = ModelServer::start().await;
    server.script([
        Reply::Json(openai_tool_call(
            "c1",
            "multiply",
            json!({ "a": 2, "b": 3 }),
        )),
        Reply::Json(openai_tool_call("c2", "add", json!({ "a": "two" }))),
    ]);
    let plan = plan(&react_agent(&server.url, 4, None)).await;
    // One key, so the two inputs meet the script in order.
    let events = vec![
        Event::input("k", json!("q1")),
        Event::input("k", json!("q2")),
    ];
    let (outputs, _) = run(plan, events).await;
    assert_eq!(outputs.len(), 2, "{outputs:#?}");
    let error = |i: usize, code: &str| {
        let e = &outputs[i];
        assert_eq!(e.event_type, types::ERROR);
        assert_eq!(e.payload["code"], code);
        e.payload["message"].as_str().unwrap().to_string()
    };
    // A name the request did not offer stops the exchange before any tool.
    let unknown = error(0, "tool-not-offered");
    assert!(
        unknown.contains("tool `multiply`, which its request did not offer (offered: add)"),
        "{unknown}"
    );
    let bad = error(1, "tool-failed");
    assert!(
        bad.contains("`c2` (add)") && bad.contains("do not match its schema"),
        "{bad}"
    );
    assert_eq!(server.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn react_over_the_anthropic_api_round_trips_tool_use() {
    let server = ModelServer::start().await;
    server.script([
        Reply::Json(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "scripted-claude",
            "content": [
                { "type": "text", "text": "Let me add." },
                { "type": "tool_use", "id": "toolu_1", "name": "add", "input": { "a": 20, "b": 22 } },
            ],
            "stop_reason": "tool_use",
            "usage": { "input_tokens": 30, "output_tokens": 9 },
        })),
        Reply::Json(anthropic_text("The answer is 42.")),
    ]);
    let agent = Agent::builder("react-anthropic")
        .component("m", component("guest_misbehave.wasm"))
        .resource(
            "conn",
            "chat-model-connection",
            connection(&server.url, "anthropic"),
        )
        .resource(
            "claude",
            "chat-model",
            json!({ "connection": "conn", "model": "claude-test", "tools": ["add"] }),
        )
        .react("claude", None, None, 4)
        .build();
    let (outputs, _) = run(
        plan(&agent).await,
        vec![Event::input("k", json!("What is 20 + 22?"))],
    )
    .await;
    assert_eq!(outputs.len(), 1, "{outputs:#?}");
    assert_eq!(outputs[0].payload, json!("The answer is 42."));
    let requests = server.received();
    assert_eq!(requests[0].body["tools"][0]["name"], "add");
    assert_eq!(
        requests[0].body["tools"][0]["input_schema"]["required"],
        json!(["a", "b"])
    );
    let messages = &requests[1].body["messages"];
    assert_eq!(
        messages[1],
        json!({ "role": "assistant", "content": [
            { "type": "text", "text": "Let me add." },
            { "type": "tool_use", "id": "toolu_1", "name": "add", "input": { "a": 20, "b": 22 } },
        ] })
    );
    assert_eq!(
        messages[2],
        json!({ "role": "user", "content": [
            { "type": "tool_result", "tool_use_id": "toolu_1", "content": "{\"sum\":42.0}" },
        ] })
    );
}
