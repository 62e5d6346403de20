//! Entry points for the fuzz targets (`fuzz/`) and their corpus replay
//! (`tests/it/fuzz_corpus.rs`) into parsers that are otherwise private. Not a
//! stable API.

use crate::resources::api::{ChatReply, ModelError};

/// An OpenAI-compatible chat completion body, as `post_json` reads it,
/// turned into a reply.
pub fn openai_reply(body: &[u8]) -> Result<ChatReply, ModelError> {
    let answer = reply_json(body)?;
    crate::resources::openai::parse_reply("fuzz", &answer)
}

/// An Anthropic messages body, as `post_json` reads it, turned into a
/// reply.
pub fn anthropic_reply(body: &[u8]) -> Result<ChatReply, ModelError> {
    let answer = reply_json(body)?;
    crate::resources::anthropic::parse_reply("fuzz", &answer)
}

fn reply_json(body: &[u8]) -> Result<serde_json::Value, ModelError> {
    serde_json::from_slice(body).map_err(|e| ModelError::Malformed {
        provider: "fuzz",
        url: "fuzz".into(),
        message: e.to_string(),
    })
}
