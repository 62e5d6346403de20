"""Keeps word statistics per key in short-term memory: the Python port of
`skills/word-stats` (same event in, same output out).

Listens to `words_tokenized` (`{"words": [...]}`), adds the words to the key's
running counts (`stats.total_words`, `stats.sentences`, `stats.counts`), and
emits an output event with this sentence's figures and the key's running
totals. Config: `top` (default 3) sets how many of the most frequent words the
output lists.
"""

from weir_sdk import ActionError, Event, RunnerContext, action


@action(listen="words_tokenized")
def count(event: Event, ctx: RunnerContext) -> None:
    """Adds a sentence's words to the key's running statistics and emits them."""
    words = event.payload.get("words") if isinstance(event.payload, dict) else None
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise ActionError("bad-payload", "expected {\"words\": [string, ...]}")
    top = ctx.config("top", 3)
    stm = ctx.short_term_memory

    counts = stm.get("stats.counts", {})
    for word in words:
        counts[word] = counts.get(word, 0) + 1
    total_words = stm.get("stats.total_words", 0) + len(words)
    sentences = stm.get("stats.sentences", 0) + 1
    stm.set("stats.counts", counts)
    stm.set("stats.total_words", total_words)
    stm.set("stats.sentences", sentences)

    # Most frequent first; ties in alphabetical order so output is deterministic.
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    top_words = [{"word": w, "count": n} for w, n in ranked[:top]]

    chars = ctx.sensory_memory.get("sentence.chars")
    ctx.log.debug(f"{len(words)} words, {total_words} in total")
    ctx.send_output(
        {
            "key": event.key,
            "words": len(words),
            "chars": chars,
            "sentences": sentences,
            "total_words": total_words,
            "distinct_words": len(counts),
            "top_words": top_words,
        }
    )
