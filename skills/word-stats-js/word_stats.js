// Keeps word statistics per key in short-term memory: the JavaScript port of
// `skills/word-stats` (same event in, same output out).
//
// Listens to `words_tokenized` (`{"words": [...]}`), adds the words to the
// key's running counts (`stats.total_words`, `stats.sentences`,
// `stats.counts`), and emits an output event with this sentence's figures and
// the key's running totals. Config: `top` (default 3) sets how many of the
// most frequent words the output lists.

import { ActionError, action } from "weir-sdk";

action(
  { description: "Adds a sentence's words to the key's running statistics and emits them." },
  function count(event, ctx) {
    const words = event.payload?.words;
    if (!Array.isArray(words) || !words.every((w) => typeof w === "string")) {
      throw new ActionError("bad-payload", 'expected {"words": [string, ...]}');
    }
    const top = ctx.config("top", 3);
    const stm = ctx.shortTermMemory;

    // A Map: object keys that look like numbers would lose their order.
    const counts = new Map(Object.entries(stm.get("stats.counts", {})));
    for (const word of words) counts.set(word, (counts.get(word) ?? 0) + 1);
    const totalWords = stm.get("stats.total_words", 0) + words.length;
    const sentences = stm.get("stats.sentences", 0) + 1;
    stm.set("stats.counts", Object.fromEntries(counts));
    stm.set("stats.total_words", totalWords);
    stm.set("stats.sentences", sentences);

    // Most frequent first; ties in code-point order, as the Rust skill's.
    const ranked = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const topWords = ranked.slice(0, top).map(([word, count]) => ({ word, count }));

    const chars = ctx.sensoryMemory.get("sentence.chars");
    ctx.log.debug(`${words.length} words, ${totalWords} in total`);
    ctx.sendOutput({
      key: event.key,
      words: words.length,
      chars,
      sentences,
      total_words: totalWords,
      distinct_words: counts.size,
      top_words: topWords,
    });
  },
);
