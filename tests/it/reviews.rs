//! The product-review skill (Flink Agents' quickstart scenario) against a
//! scripted OpenAI-compatible server.

use crate::support::model_server::*;
use crate::support::*;
use serde_json::json;
use weir::event::types;
use weir::{ActionBuilder, Agent, Event};

pub(crate) fn review_agent(url: &str) -> Agent {
    review_agent_with(url, component("skill_review_analysis.wasm"))
}

/// The agent with its actions from `reviews`, a Rust, Python or JavaScript component.
fn review_agent_with(url: &str, reviews: std::path::PathBuf) -> Agent {
    Agent::builder("product-reviews")
        .component("reviews", reviews)
        .resource(
            "conn",
            "chat-model-connection",
            json!({ "provider": "openai", "base_url": format!("{url}/v1"), "max_retries": 0 }),
        )
        .resource(
            "review-model",
            "chat-model",
            json!({ "connection": "conn", "model": "m" }),
        )
        .action(
            ActionBuilder::new("analyze", "reviews")
                .listen(types::INPUT)
                .model("review-model"),
        )
        .action(
            ActionBuilder::new("suggest", "reviews")
                .listen("product_summary")
                .model("review-model"),
        )
        .config("model", json!("review-model"))
        .config("suggest_every", json!(3))
        .build()
}

pub(crate) fn review(id: &str, text: &str) -> Event {
    Event::input("p1", json!({ "review_id": id, "review": text }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviews_are_scored_aggregated_per_product_and_turned_into_suggestions() {
    let server = ModelServer::start().await;
    server.script([
        Reply::Json(openai_text("2", 40, 1)),
        Reply::Json(openai_text("battery dies fast, too heavy", 38, 6)),
        Reply::Json(openai_text("5", 10, 1)),
        Reply::Json(openai_text("None.", 10, 2)),
        Reply::Json(openai_text("I would say 1.", 11, 4)),
        Reply::Json(openai_text("Broke after a day", 10, 4)),
        Reply::Json(openai_text(
            "- Improve the battery\n- Make it lighter\n- Sturdier build",
            60,
            15,
        )),
    ]);
    let events = vec![
        review("r1", "The battery dies in an hour and it weighs a ton."),
        review("r2", "Love it!"),
        review("r3", "Broke after one day."),
    ];
    let (outputs, summary) = run(plan(&review_agent(&server.url)).await, events).await;
    assert_eq!(outputs.len(), 4, "{outputs:#?}");
    let p: Vec<_> = outputs.iter().map(|e| &e.payload).collect();
    assert_eq!(p[0]["score"], 2);
    assert_eq!(p[0]["reasons"], json!(["battery dies fast", "too heavy"]));
    assert_eq!(p[1]["score"], 5);
    assert_eq!(p[1]["reasons"], json!([]));
    assert_eq!(p[2]["score"], 1);
    assert_eq!(p[2]["review_id"], "r3");
    assert_eq!(p[3]["kind"], "product_suggestions");
    assert_eq!(p[3]["score_distribution"], json!([1, 1, 0, 0, 1]));
    assert_eq!(p[3]["average_score"], 2.67);
    assert_eq!(
        p[3]["suggestions"],
        json!(["Improve the battery", "Make it lighter", "Sturdier build"])
    );

    // The suggestion prompt carries the aggregate.
    let first = server.received()[0].body["messages"][0]["content"].clone();
    let first = first.as_str().unwrap();
    assert!(
        first.contains("The battery dies in an hour") && first.contains("1 to 5"),
        "{first}"
    );
    let last = &server.received()[6].body["messages"][1]["content"];
    let last = last.as_str().unwrap();
    assert!(
        last.contains("[1, 1, 0, 0, 1]")
            && last.contains("battery dies fast; too heavy; Broke after a day"),
        "{last}"
    );
    assert_eq!(summary.models["analyze"]["review-model"].input_tokens, 119);
    assert_eq!(summary.models["analyze"]["review-model"].calls, 6);
    assert_eq!(summary.models["suggest"]["review-model"].calls, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_without_a_score_is_an_error_event_and_changes_nothing() {
    let server = ModelServer::start().await;
    server.script([
        Reply::Json(openai_text("I cannot rate this.", 1, 1)),
        Reply::Json(openai_text("4", 1, 1)),
        Reply::Json(openai_text("none", 1, 1)),
    ]);
    let events = vec![review("r1", "meh"), review("r2", "good")];
    let (outputs, memory) = run_keeping_memory(
        weir::Runtime::new(plan(&review_agent(&server.url)).await),
        events,
    )
    .await;
    assert_eq!(outputs[0].payload["code"], "unparsable-reply");
    assert_eq!(outputs[1].payload["score"], 4);
    assert_eq!(memory["p1"]["aggregate"]["reviews"], 1);
}

/// The replies of the scripted model, for both runs below.
fn scripted_replies() -> Vec<Reply> {
    vec![
        Reply::Json(openai_text("2", 40, 1)),
        Reply::Json(openai_text("battery dies fast, too heavy; - loud.", 38, 6)),
        Reply::Json(openai_text("I cannot rate this.", 1, 1)),
        Reply::Json(openai_text("5", 10, 1)),
        Reply::Json(openai_text("None.", 10, 2)),
        Reply::Json(openai_text("I would say 1.", 11, 4)),
        Reply::Json(openai_text("Broke after a day\n\n* sharp edges", 10, 4)),
        Reply::Json(openai_text(
            "- Improve the battery\r\n- Make it lighter\n\n- Sturdier build\n- A fourth",
            60,
            15,
        )),
    ]
}

/// The Flink Agents quickstart scenario with its actions written in Python
/// (`skills/review-analysis-py`) and in JavaScript (`-js`): the same
/// outputs, error events and model requests as the Rust skill's, from the
/// same replies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_and_javascript_review_analyses_give_the_rust_ones_outputs_and_prompts() {
    let events = vec![
        review("r1", "The battery dies in an hour and it weighs a ton."),
        review("r2", "meh"),
        review("r3", "Love it!"),
        review("r4", "Broke after one day."),
    ];
    let mut results = Vec::new();
    for reviews in [
        component("skill_review_analysis.wasm"),
        python_component("skill_review_analysis_py.wasm"),
        js_component("skill_review_analysis_js.wasm"),
    ] {
        let server = ModelServer::start().await;
        server.script(scripted_replies());
        let (mut outputs, _) = run(
            plan(&review_agent_with(&server.url, reviews)).await,
            events.clone(),
        )
        .await;
        outputs.sort_by(|a, b| a.id.cmp(&b.id));
        let asked: Vec<_> = server.received().into_iter().map(|r| r.body).collect();
        results.push((outputs, asked));
    }
    let js = results.pop().unwrap();
    let (python, rust) = (results.pop().unwrap(), results.pop().unwrap());
    assert_eq!(rust.0.len(), 5, "{:#?}", rust.0);
    assert!(
        rust.0
            .iter()
            .any(|e| e.payload["code"] == "unparsable-reply"),
        "{:#?}",
        rust.0
    );
    assert_eq!(python.0, rust.0);
    assert_eq!(python.1, rust.1);
    assert_eq!(js.0, rust.0);
    assert_eq!(js.1, rust.1);
}
