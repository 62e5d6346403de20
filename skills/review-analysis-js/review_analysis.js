// Product review analysis, after Apache Flink Agents' quickstart: the
// JavaScript port of `skills/review-analysis` (same events in, same outputs
// out; a test compares the three languages).
//
// A model scores each review from 1 to 5 and lists the reasons for
// dissatisfaction; the key's (product's) short-term memory aggregates the
// scores and reasons; every `suggest_every` reviews a model turns the
// aggregate into improvement suggestions.
//
// Input payload: `{"review_id": "...", "review": "..."}` keyed by product id.
// Config: `model` (the chat-model resource, required), `suggest_every`
// (default 3), `max_reasons` kept per product (default 20).

import { ActionError, action } from "weir-sdk";

/** The custom event that carries a product's aggregate to `suggest`. */
const PRODUCT_SUMMARY = "product_summary";

const SUGGESTION_PROMPT =
  "You help a product team. Given how customers rated a product and why they were " +
  "dissatisfied, suggest up to three concrete improvements, one per line.";

function modelName(ctx) {
  const model = ctx.config("model");
  if (typeof model !== "string") throw new ActionError("bad-config", "set `model` to a chat-model resource");
  return model;
}

/** The first digit 1-5 in the reply, or null. */
function parseScore(reply) {
  for (const c of reply) if (c >= "1" && c <= "5") return Number(c);
  return null;
}

/** Removes the characters of `set` from the start (and the end, with `both`) of `text`. */
function stripChars(text, set, both = true) {
  let start = 0;
  let end = text.length;
  while (start < end && set.includes(text[start])) start++;
  while (both && end > start && set.includes(text[end - 1])) end--;
  return text.slice(start, end);
}

/** Up to three complaints: the reply split on commas, semicolons and lines. */
function parseReasons(reply) {
  const reasons = [];
  for (const part of reply.replaceAll(";", ",").replaceAll("\n", ",").split(",")) {
    const reason = stripChars(part.trim(), "-*. ");
    if (reason && !reason.toLowerCase().startsWith("none")) reasons.push([...reason].slice(0, 80).join(""));
  }
  return reasons.slice(0, 3);
}

const ask = (ctx, model, question) => ctx.chat(model, [{ role: "user", content: question }]).content;

function average(aggregate) {
  const total = aggregate.scores.reduce((sum, n, i) => sum + (i + 1) * n, 0);
  return aggregate.reviews ? total / aggregate.reviews : 0;
}

/**
 * `x` with two decimals, ties to even on its exact binary value, as Rust's
 * `{:.2}` and Python's `:.2f` print it (toFixed would round ties up).
 */
function fixed2(x) {
  const exact = x.toFixed(60); // every digit of a double in this range
  const point = exact.indexOf(".");
  const rest = exact.slice(point + 3);
  const tie = /^50*$/.test(rest);
  if (!tie) return x.toFixed(2);
  const last = Number(exact[point + 2]);
  return last % 2 === 0 ? exact.slice(0, point + 3) : x.toFixed(2);
}

action(
  { description: "Scores a product review 1-5 with a model, lists dissatisfaction reasons, aggregates per product." },
  function analyze(event, ctx) {
    const review = event.payload;
    if (review === null || typeof review !== "object" || typeof review.review !== "string") {
      throw new ActionError("bad-payload", 'expected {"review_id": ..., "review": "..."}');
    }
    const model = modelName(ctx);
    const text = ask(
      ctx,
      model,
      `Review: ${review.review}\nOn a scale of 1 to 5, how satisfied is this customer? Reply with the number only.`,
    );
    const score = parseScore(text);
    if (score === null) {
      throw new ActionError("unparsable-reply", `no score 1-5 in the model's reply: ${JSON.stringify(text)}`);
    }
    const reasons = parseReasons(
      ask(
        ctx,
        model,
        `Review: ${review.review}\nWhat does this customer complain about? Answer in a few words, separated by commas, or say none.`,
      ),
    );

    const stm = ctx.shortTermMemory;
    const aggregate = stm.get("aggregate") ?? { reviews: 0, scores: [0, 0, 0, 0, 0], reasons: [] };
    aggregate.reviews += 1;
    aggregate.scores[score - 1] += 1;
    aggregate.reasons.push(...reasons);
    const keep = ctx.config("max_reasons", 20);
    if (aggregate.reasons.length > keep) aggregate.reasons = aggregate.reasons.slice(aggregate.reasons.length - keep);
    stm.set("aggregate", aggregate);

    ctx.sendOutput({
      kind: "review_analysis",
      product_id: event.key,
      review_id: review.review_id ?? event.id,
      score,
      reasons,
    });
    const every = ctx.config("suggest_every", 3);
    if (every > 0 && aggregate.reviews % every === 0) {
      ctx.log.info(`${aggregate.reviews} reviews of ${event.key}: asking for suggestions`);
      ctx.sendEvent(PRODUCT_SUMMARY, aggregate);
    }
  },
);

action(
  { description: "Turns a product's aggregated ratings and reasons into improvement suggestions." },
  function suggest(event, ctx) {
    const aggregate = event.payload;
    const avg = average(aggregate);
    const reasons = aggregate.reasons.length ? aggregate.reasons.join("; ") : "none";
    const summary =
      `Ratings from 1 to 5 (counts): [${aggregate.scores.join(", ")}]. Average: ${fixed2(avg)}. ` +
      `Reasons for dissatisfaction: ${reasons}.`;
    const reply = ctx.chat(modelName(ctx), [
      { role: "system", content: SUGGESTION_PROMPT },
      { role: "user", content: summary },
    ]);
    const suggestions = reply.content
      .split("\n")
      .map((line) => stripChars(line.trim(), "-* ", false))
      .filter((s) => s)
      .slice(0, 3);
    ctx.sendOutput({
      kind: "product_suggestions",
      product_id: event.key,
      reviews: aggregate.reviews,
      score_distribution: aggregate.scores,
      // Rust's f64::round: halves away from zero.
      average_score: Math.floor(avg * 100 + 0.5) / 100,
      suggestions,
    });
  },
);
