//! The Anthropic messages API.

use super::api::*;
use super::http::{HttpSettings, post_json};
use serde_json::{Value, json};
use std::sync::Arc;

const PROVIDER: &str = "anthropic";
const API_VERSION: &str = "2023-06-01";
/// The API requires `max_tokens`; used when neither setup nor call sets it.
const DEFAULT_MAX_TOKENS: u32 = 1024;

/// A client for the Anthropic messages API.
pub struct Anthropic {
    client: reqwest::Client,
    base_url: String,
    api_key: Option<String>,
    settings: HttpSettings,
}

impl Anthropic {
    /// `base_url` without the version path, e.g. `https://api.anthropic.com`.
    pub fn new(
        client: reqwest::Client,
        base_url: &str,
        api_key: Option<String>,
        settings: HttpSettings,
    ) -> Arc<Self> {
        Arc::new(Anthropic {
            client,
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key,
            settings,
        })
    }
}

/// Anthropic takes the system prompt apart, tool results as user messages
/// with `tool_result` blocks, and tool calls as `tool_use` blocks.
fn request_body(request: &ChatRequest) -> Value {
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for m in &request.messages {
        match m.role.as_str() {
            "system" => system.push(m.content.clone()),
            "tool" => messages.push(json!({
                "role": "user",
                "content": [{
                    "type": "tool_result",
                    "tool_use_id": m.tool_call_id.clone().unwrap_or_default(),
                    "content": m.content,
                }],
            })),
            role => {
                let mut blocks = Vec::new();
                if !m.content.is_empty() {
                    blocks.push(json!({ "type": "text", "text": m.content }));
                }
                for call in &m.tool_calls {
                    blocks.push(json!({
                        "type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments,
                    }));
                }
                messages.push(json!({ "role": role, "content": blocks }));
            }
        }
    }
    if let Some(schema) = &request.output_schema {
        system.push(format!(
            "Answer with only a JSON value that follows this JSON Schema, and nothing else:\n{schema}"
        ));
    }
    let o = &request.options;
    let mut body = json!({
        "model": request.model,
        "max_tokens": o.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        "messages": messages,
    });
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| json!({ "name": t.name, "description": t.description, "input_schema": t.parameters }))
            .collect();
    }
    if let Some(t) = o.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(p) = o.top_p {
        body["top_p"] = json!(p);
    }
    if !o.stop.is_empty() {
        body["stop_sequences"] = json!(o.stop);
    }
    body
}

pub(crate) fn parse_reply(url: &str, answer: &Value) -> Result<ChatReply, ModelError> {
    let malformed = |message: String| ModelError::Malformed {
        provider: PROVIDER,
        url: url.to_string(),
        message,
    };
    let blocks = answer["content"]
        .as_array()
        .ok_or_else(|| malformed("no `content` array".into()))?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or_default()),
            Some("tool_use") => {
                let name = block["name"]
                    .as_str()
                    .filter(|name| !name.is_empty())
                    .ok_or_else(|| malformed(format!("content[{i}] has no tool name")))?;
                // A tool call's arguments are an object; none is `{}`.
                let arguments = match &block["input"] {
                    Value::Null => json!({}),
                    object @ Value::Object(_) => object.clone(),
                    _ => {
                        return Err(malformed(format!(
                            "content[{i}] input is not a JSON object"
                        )));
                    }
                };
                tool_calls.push(ToolCall {
                    id: block["id"]
                        .as_str()
                        .map_or_else(|| format!("toolu_{i}"), str::to_string),
                    name: name.to_string(),
                    arguments,
                });
            }
            _ => {}
        }
    }
    let finish_reason = match answer["stop_reason"].as_str() {
        Some("tool_use") => "tool-calls",
        Some("max_tokens") => "length",
        _ => "stop",
    };
    Ok(ChatReply {
        message: Message {
            role: "assistant".into(),
            content: text,
            tool_calls,
            tool_call_id: None,
        },
        finish_reason: finish_reason.to_string(),
        usage: Usage {
            input_tokens: answer["usage"]["input_tokens"].as_u64().unwrap_or(0),
            output_tokens: answer["usage"]["output_tokens"].as_u64().unwrap_or(0),
        },
        model: answer["model"].as_str().unwrap_or_default().to_string(),
    })
}

impl ChatProvider for Arc<Anthropic> {
    fn chat(&self, request: ChatRequest) -> BoxFuture<Result<ChatReply, ModelError>> {
        let this = self.clone();
        Box::pin(async move {
            let url = format!("{}/v1/messages", this.base_url);
            let mut headers = vec![("anthropic-version", API_VERSION.to_string())];
            if let Some(key) = &this.api_key {
                headers.push(("x-api-key", key.clone()));
            }
            let answer = post_json(
                &this.client,
                PROVIDER,
                &url,
                &headers,
                &request_body(&request),
                &this.settings,
            )
            .await?;
            parse_reply(&url, &answer)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `anthropic_reply` fuzz target: a `tool_use` block
    /// without a name, or with an input that is not an object, is
    /// malformed (`ToolCall` promises object arguments); no input is `{}`.
    #[test]
    fn tool_uses_have_a_name_and_object_input() {
        let reply = |block: Value| parse_reply("u", &json!({"content": [block]}));
        for block in [
            json!({"type": "tool_use", "input": {}}),
            json!({"type": "tool_use", "name": "", "input": {}}),
            json!({"type": "tool_use", "name": "f", "input": [1]}),
            json!({"type": "tool_use", "name": "f", "input": "x"}),
        ] {
            assert!(
                matches!(reply(block.clone()), Err(ModelError::Malformed { .. })),
                "{block}"
            );
        }
        let ok = reply(json!({"type": "tool_use", "id": "t", "name": "f"})).unwrap();
        assert_eq!(ok.message.tool_calls[0].arguments, json!({}));
        assert_eq!(ok.message.tool_calls[0].id, "t");
    }
}
