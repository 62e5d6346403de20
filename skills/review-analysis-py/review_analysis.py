"""Product review analysis, after Apache Flink Agents' quickstart: the Python
port of `skills/review-analysis` (same events in, same outputs out).

A model scores each review from 1 to 5 and lists the reasons for
dissatisfaction; the key's (product's) short-term memory aggregates the scores
and reasons; every `suggest_every` reviews a model turns the aggregate into
improvement suggestions.

Input payload: `{"review_id": "...", "review": "..."}` keyed by product id.
Config: `model` (the chat-model resource, required), `suggest_every`
(default 3), `max_reasons` kept per product (default 20).

Each review takes two short questions (the score, then the complaints) with
leniently parsed replies, so that small local models, which neither follow
output formats nor produce JSON reliably, still work.
"""

import json
import math
from typing import List, Optional

from weir_sdk import ActionError, Event, Message, RunnerContext, action

#: The custom event that carries a product's aggregate to `suggest`.
PRODUCT_SUMMARY = "product_summary"

SUGGESTION_PROMPT = (
    "You help a product team. Given how customers rated a product and why they were "
    "dissatisfied, suggest up to three concrete improvements, one per line."
)


def model_name(ctx: RunnerContext) -> str:
    model = ctx.config("model")
    if not isinstance(model, str):
        raise ActionError("bad-config", "set `model` to a chat-model resource")
    return model


def parse_score(reply: str) -> Optional[int]:
    """The first digit 1-5 in the reply."""
    for c in reply:
        if "1" <= c <= "5":
            return int(c)
    return None


def parse_reasons(reply: str) -> List[str]:
    """Up to three complaints: the reply split on commas, semicolons and lines."""
    reasons = []
    for part in reply.replace(";", ",").replace("\n", ",").split(","):
        reason = part.strip().strip("-*. ")
        if reason and not reason.lower().startswith("none"):
            reasons.append(reason[:80])
    return reasons[:3]


def ask(ctx: RunnerContext, model: str, question: str) -> str:
    return ctx.chat(model, [Message("user", question)]).content


def average(aggregate: dict) -> float:
    reviews = aggregate["reviews"]
    total = sum((i + 1) * n for i, n in enumerate(aggregate["scores"]))
    return total / reviews if reviews else 0.0


@action
def analyze(event: Event, ctx: RunnerContext) -> None:
    """Scores a product review 1-5 with a model, lists dissatisfaction reasons, aggregates per product."""
    review = event.payload
    if not isinstance(review, dict) or not isinstance(review.get("review"), str):
        raise ActionError("bad-payload", 'expected {"review_id": ..., "review": "..."}')
    model = model_name(ctx)
    text = ask(ctx, model, f"Review: {review['review']}\nOn a scale of 1 to 5, how satisfied is this customer? Reply with the number only.")
    score = parse_score(text)
    if score is None:
        quoted = json.dumps(text, ensure_ascii=False)  # as Rust's `{:?}` quotes it
        raise ActionError("unparsable-reply", f"no score 1-5 in the model's reply: {quoted}")
    reasons = parse_reasons(
        ask(ctx, model, f"Review: {review['review']}\nWhat does this customer complain about? Answer in a few words, separated by commas, or say none.")
    )

    stm = ctx.short_term_memory
    aggregate = stm.get("aggregate") or {"reviews": 0, "scores": [0] * 5, "reasons": []}
    aggregate["reviews"] += 1
    aggregate["scores"][score - 1] += 1
    aggregate["reasons"].extend(reasons)
    keep = ctx.config("max_reasons", 20)
    if len(aggregate["reasons"]) > keep:
        aggregate["reasons"] = aggregate["reasons"][len(aggregate["reasons"]) - keep :]
    stm.set("aggregate", aggregate)

    ctx.send_output(
        {
            "kind": "review_analysis",
            "product_id": event.key,
            "review_id": review["review_id"] if review.get("review_id") is not None else event.id,
            "score": score,
            "reasons": reasons,
        }
    )
    every = ctx.config("suggest_every", 3)
    if every > 0 and aggregate["reviews"] % every == 0:
        ctx.log.info(f"{aggregate['reviews']} reviews of {event.key}: asking for suggestions")
        ctx.send_event(PRODUCT_SUMMARY, aggregate)


@action
def suggest(event: Event, ctx: RunnerContext) -> None:
    """Turns a product's aggregated ratings and reasons into improvement suggestions."""
    aggregate = event.payload
    avg = average(aggregate)
    reasons = "; ".join(aggregate["reasons"]) if aggregate["reasons"] else "none"
    summary = (
        f"Ratings from 1 to 5 (counts): {aggregate['scores']}. Average: {avg:.2f}. "
        f"Reasons for dissatisfaction: {reasons}."
    )
    reply = ctx.chat(model_name(ctx), [Message("system", SUGGESTION_PROMPT), Message("user", summary)])
    suggestions = [line.strip().lstrip("-* ") for line in reply.content.split("\n")]
    suggestions = [s for s in suggestions if s][:3]
    ctx.send_output(
        {
            "kind": "product_suggestions",
            "product_id": event.key,
            "reviews": aggregate["reviews"],
            "score_distribution": aggregate["scores"],
            # Rust's f64::round: halves away from zero.
            "average_score": math.floor(avg * 100.0 + 0.5) / 100.0,
            "suggestions": suggestions,
        }
    )
