//! Splits the text of each input event into normalised words.
//!
//! Input payload: `{"text": "..."}` or a bare JSON string.
//! Emits `words_tokenized` with `{"words": [...]}` and records the sentence's
//! length in sensory memory (`sentence.chars`) for later actions of the run.
//!
//! Config: `min_length` (default 1) drops shorter words; `lowercase` (default
//! true) folds case.

use serde::Deserialize;
use weir_sdk::{ActionError, Event, Result, context, emit, json, memory};

/// The event this action emits.
pub const WORDS_TOKENIZED: &str = "words_tokenized";

#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    Text { text: String },
    Bare(String),
}

fn tokenize(event: Event) -> Result<()> {
    let text = match event.payload::<Input>()? {
        Input::Text { text } | Input::Bare(text) => text,
    };
    let min_length: usize = context::config("min_length")?.unwrap_or(1);
    let lowercase: bool = context::config("lowercase")?.unwrap_or(true);
    if min_length == 0 {
        return Err(ActionError::new(
            "bad-config",
            "min_length must be at least 1",
        ));
    }

    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .map(|w| w.trim_matches('\''))
        .filter(|w| w.chars().count() >= min_length)
        .map(|w| {
            if lowercase {
                w.to_lowercase()
            } else {
                w.to_string()
            }
        })
        .collect();

    memory::sensory().set("sentence.chars", &text.chars().count())?;
    emit(WORDS_TOKENIZED, &json!({ "words": words }))?;
    Ok(())
}

weir_sdk::actions! {
    /// Splits the text of an input event into words and emits `words_tokenized`.
    "tokenize" => tokenize,
}
