//! Product review analysis, after Apache Flink Agents' quickstart: a model
//! scores each review from 1 to 5 and lists the reasons for dissatisfaction;
//! the key's (product's) short-term memory aggregates the scores and reasons;
//! every `suggest_every` reviews a model turns the aggregate into improvement
//! suggestions.
//!
//! Input payload: `{"review_id": "...", "review": "..."}` keyed by product id.
//! Config: `model` (the chat-model resource, required), `suggest_every`
//! (default 3), `max_reasons` kept per product (default 20).
//!
//! Each review takes two short questions (the score, then the complaints) with
//! leniently parsed replies, so that small local models, which neither follow
//! output formats nor produce JSON reliably, still work; a larger model only
//! gives better answers.

use serde::{Deserialize, Serialize};
use weir_sdk::model::{self, Message};
use weir_sdk::{ActionError, Event, Result, context, emit, emit_output, json, log, memory};

/// The custom event that carries a product's aggregate to `suggest`.
pub const PRODUCT_SUMMARY: &str = "product_summary";

#[derive(Deserialize)]
struct Review {
    #[serde(default)]
    review_id: Option<String>,
    review: String,
}

#[derive(Default, Serialize, Deserialize)]
struct Aggregate {
    reviews: u64,
    /// Reviews per score, index 0 for score 1.
    scores: [u64; 5],
    /// Most recent reasons for dissatisfaction.
    reasons: Vec<String>,
}

impl Aggregate {
    fn average(&self) -> f64 {
        let total: u64 = self
            .scores
            .iter()
            .enumerate()
            .map(|(i, n)| (i as u64 + 1) * n)
            .sum();
        if self.reviews == 0 {
            0.0
        } else {
            total as f64 / self.reviews as f64
        }
    }
}

fn model_name() -> Result<String> {
    context::config::<String>("model")?
        .ok_or_else(|| ActionError::new("bad-config", "set `model` to a chat-model resource"))
}

fn score_prompt(review: &str) -> String {
    format!(
        "Review: {review}\nOn a scale of 1 to 5, how satisfied is this customer? Reply with the number only."
    )
}

fn reasons_prompt(review: &str) -> String {
    format!(
        "Review: {review}\nWhat does this customer complain about? Answer in a few words, separated by commas, or say none."
    )
}

/// The first digit 1-5 in the reply.
fn parse_score(reply: &str) -> Option<u8> {
    reply
        .chars()
        .find(|c| ('1'..='5').contains(c))
        .map(|c| c as u8 - b'0')
}

/// Up to three complaints: the reply split on commas, semicolons and lines.
fn parse_reasons(reply: &str) -> Vec<String> {
    reply
        .split([',', ';', '\n'])
        .map(|r| r.trim().trim_matches(['-', '*', '.', ' ']).to_string())
        .filter(|r| !r.is_empty() && !r.to_lowercase().starts_with("none"))
        .map(|r| r.chars().take(80).collect())
        .take(3)
        .collect()
}

fn ask(model: &str, question: String) -> Result<String> {
    Ok(model::chat(model, vec![Message::user(question)])
        .send()?
        .message
        .content)
}

fn analyze(event: Event) -> Result<()> {
    let review: Review = event.payload()?;
    let model = model_name()?;
    let text = ask(&model, score_prompt(&review.review))?;
    let score = parse_score(&text).ok_or_else(|| {
        ActionError::new(
            "unparsable-reply",
            format!("no score 1-5 in the model's reply: {text:?}"),
        )
    })?;
    let reasons = parse_reasons(&ask(&model, reasons_prompt(&review.review))?);

    let stm = memory::short_term();
    let mut aggregate: Aggregate = stm.get("aggregate")?.unwrap_or_default();
    aggregate.reviews += 1;
    aggregate.scores[score as usize - 1] += 1;
    aggregate.reasons.extend(reasons.iter().cloned());
    let keep: usize = context::config("max_reasons")?.unwrap_or(20);
    if aggregate.reasons.len() > keep {
        let extra = aggregate.reasons.len() - keep;
        aggregate.reasons.drain(..extra);
    }
    stm.set("aggregate", &aggregate)?;

    emit_output(&json!({
        "kind": "review_analysis",
        "product_id": event.key,
        "review_id": review.review_id.unwrap_or(event.id),
        "score": score,
        "reasons": reasons,
    }))?;
    let every: u64 = context::config("suggest_every")?.unwrap_or(3);
    if every > 0 && aggregate.reviews.is_multiple_of(every) {
        log::info(&format!(
            "{} reviews of {}: asking for suggestions",
            aggregate.reviews, event.key
        ));
        emit(PRODUCT_SUMMARY, &aggregate)?;
    }
    Ok(())
}

const SUGGESTION_PROMPT: &str = "You help a product team. Given how customers rated a product and why they were dissatisfied, suggest up to three concrete improvements, one per line.";

fn suggest(event: Event) -> Result<()> {
    let aggregate: Aggregate = event.payload()?;
    let summary = format!(
        "Ratings from 1 to 5 (counts): {:?}. Average: {:.2}. Reasons for dissatisfaction: {}.",
        aggregate.scores,
        aggregate.average(),
        if aggregate.reasons.is_empty() {
            "none".to_string()
        } else {
            aggregate.reasons.join("; ")
        }
    );
    let reply = model::chat(
        &model_name()?,
        vec![Message::system(SUGGESTION_PROMPT), Message::user(summary)],
    )
    .send()?;
    let suggestions: Vec<String> = reply
        .message
        .content
        .lines()
        .map(|l| l.trim().trim_start_matches(['-', '*', ' ']).to_string())
        .filter(|l| !l.is_empty())
        .take(3)
        .collect();
    emit_output(&json!({
        "kind": "product_suggestions",
        "product_id": event.key,
        "reviews": aggregate.reviews,
        "score_distribution": aggregate.scores,
        "average_score": (aggregate.average() * 100.0).round() / 100.0,
        "suggestions": suggestions,
    }))?;
    Ok(())
}

weir_sdk::actions! {
    /// Scores a product review 1-5 with a model, lists dissatisfaction reasons, aggregates per product.
    "analyze" => analyze,
    /// Turns a product's aggregated ratings and reasons into improvement suggestions.
    "suggest" => suggest,
}
