//! Keeps word statistics per key in short-term memory.
//!
//! Listens to `words_tokenized` (`{"words": [...]}`), adds the words to the
//! key's running counts (`stats.total_words`, `stats.sentences`,
//! `stats.counts`), and emits an output event with this sentence's figures and
//! the key's running totals. Config: `top` (default 3) sets how many of the most
//! frequent words the output lists.

use serde::Deserialize;
use std::collections::BTreeMap;
use weir_sdk::{Event, Result, context, emit_output, json, log, memory};

#[derive(Deserialize)]
struct Words {
    words: Vec<String>,
}

fn count(event: Event) -> Result<()> {
    let Words { words } = event.payload()?;
    let top: usize = context::config("top")?.unwrap_or(3);
    let stm = memory::short_term();

    let mut counts: BTreeMap<String, u64> = stm.get("stats.counts")?.unwrap_or_default();
    for word in &words {
        *counts.entry(word.clone()).or_default() += 1;
    }
    let total_words = stm.get::<u64>("stats.total_words")?.unwrap_or(0) + words.len() as u64;
    let sentences = stm.get::<u64>("stats.sentences")?.unwrap_or(0) + 1;
    stm.set("stats.counts", &counts)?;
    stm.set("stats.total_words", &total_words)?;
    stm.set("stats.sentences", &sentences)?;

    // Most frequent first; ties in alphabetical order so output is deterministic.
    let mut ranked: Vec<(&String, &u64)> = counts.iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let top_words: Vec<_> = ranked
        .into_iter()
        .take(top)
        .map(|(w, n)| json!({ "word": w, "count": n }))
        .collect();

    let chars: Option<u64> = memory::sensory().get("sentence.chars")?;
    log::debug(&format!("{} words, {total_words} in total", words.len()));
    emit_output(&json!({
        "key": event.key,
        "words": words.len(),
        "chars": chars,
        "sentences": sentences,
        "total_words": total_words,
        "distinct_words": counts.len(),
        "top_words": top_words,
    }))?;
    Ok(())
}

weir_sdk::actions! {
    /// Adds a sentence's words to the key's running statistics and emits them.
    "count" => count,
}
