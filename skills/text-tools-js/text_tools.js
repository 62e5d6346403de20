// Text tools for models and actions, written in JavaScript: `count_words`
// counts a text's words, `top_words` ranks them. The JavaScript port of
// skills/text-tools-py: the same schemas and results (a test compares them).

import { ActionError, tool } from "weir-sdk";

tool(
  {
    description: "Counts the words of a text.",
    parameters: {
      text: { type: "string", description: "The text to count." },
      min_length: { type: "integer", description: "Shortest word counted, in characters.", default: 1 },
    },
  },
  function count_words({ text, min_length = 1 }) {
    const words = text.split(/\s+/).filter((w) => w.length > 0 && [...w].length >= min_length);
    return { words: words.length, chars: [...text].length };
  },
);

tool(
  {
    name: "top_words",
    description: "Ranks words by how often they occur.",
    parameters: {
      words: { type: "array", items: { type: "string" }, description: "The words to rank." },
      top: { anyOf: [{ type: "integer" }, { type: "null" }], description: "How many to return (all by default).", default: null },
      order: { enum: ["count", "alpha"], description: "`count` (most frequent first) or `alpha`.", default: "count" },
    },
  },
  function rank({ words, top = null, order = "count" }) {
    if (top != null && top < 0) throw new ActionError("bad-arguments", "top must not be negative");
    const counts = new Map();
    for (const word of words) counts.set(word, (counts.get(word) ?? 0) + 1);
    const byWord = (a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
    const ranked = [...counts]
      .sort(order === "count" ? (a, b) => b[1] - a[1] || byWord(a, b) : byWord)
      .map(([word, count]) => ({ word, count }));
    return top == null ? ranked : ranked.slice(0, top);
  },
);
