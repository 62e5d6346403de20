// The side-by-side benchmark's agents (../shared/bench/flink-agents-sbs,
// benches/langs.sh) as weir actions in JavaScript: the same functions Apache
// Flink Agents runs natively there (upper-case a sentence, count its words),
// one per variant.

import { action } from "weir-sdk";

const textOf = (event) => (typeof event.payload === "string" ? event.payload : JSON.stringify(event.payload));
const countWords = (text) => text.split(/\s+/).filter((w) => w).length;

action({ description: "Input -> output." }, function single(event, ctx) {
  const text = textOf(event);
  ctx.sendOutput({ upper: text.toUpperCase(), words: countWords(text) });
});

action({ description: "Input -> `bench_processed`." }, function first(event, ctx) {
  const text = textOf(event);
  ctx.sendEvent("bench_processed", { upper: text.toUpperCase(), text });
});

action({ description: "`bench_processed` -> output." }, function second(event, ctx) {
  const value = event.payload;
  ctx.sendOutput({ upper: value.upper, words: countWords(value.text) });
});

action({ description: "Input -> output, with a running word total in short-term memory." }, function memory(event, ctx) {
  const text = textOf(event);
  const words = countWords(text);
  const stm = ctx.shortTermMemory;
  const total = stm.get("total_words", 0) + words;
  stm.set("total_words", total);
  ctx.sendOutput({ upper: text.toUpperCase(), words, total_words: total });
});
