//! The OpenAI-compatible chat-completions and embeddings API (OpenAI, Ollama,
//! vLLM, llama.cpp server, LM Studio).

use super::api::*;
use super::http::{HttpSettings, post_json};
use serde_json::{Value, json};
use std::sync::Arc;

const PROVIDER: &str = "openai";

/// A client for one OpenAI-compatible server.
pub struct OpenAi {
    client: reqwest::Client,
    base_url: String,
    api_key: Option<String>,
    settings: HttpSettings,
}

impl OpenAi {
    /// `base_url` includes the API version path, e.g. `https://api.openai.com/v1`.
    pub fn new(
        client: reqwest::Client,
        base_url: &str,
        api_key: Option<String>,
        settings: HttpSettings,
    ) -> Arc<Self> {
        Arc::new(OpenAi {
            client,
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key,
            settings,
        })
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        match &self.api_key {
            Some(key) => vec![("authorization", format!("Bearer {key}"))],
            None => Vec::new(),
        }
    }
}

fn wire_message(m: &Message) -> Value {
    let mut out = json!({ "role": m.role, "content": m.content });
    if !m.tool_calls.is_empty() {
        out["tool_calls"] = m
            .tool_calls
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "type": "function",
                    "function": { "name": c.name, "arguments": c.arguments.to_string() },
                })
            })
            .collect();
    }
    if let Some(id) = &m.tool_call_id {
        out["tool_call_id"] = json!(id);
    }
    out
}

fn request_body(request: &ChatRequest) -> Value {
    let mut body = json!({
        "model": request.model,
        "messages": request.messages.iter().map(wire_message).collect::<Vec<_>>(),
    });
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| {
                json!({
                    "type": "function",
                    "function": { "name": t.name, "description": t.description, "parameters": t.parameters },
                })
            })
            .collect();
    }
    let o = &request.options;
    if let Some(t) = o.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(n) = o.max_tokens {
        body["max_tokens"] = json!(n);
    }
    if let Some(s) = o.seed {
        body["seed"] = json!(s);
    }
    if let Some(p) = o.top_p {
        body["top_p"] = json!(p);
    }
    if !o.stop.is_empty() {
        body["stop"] = json!(o.stop);
    }
    if let Some(schema) = &request.output_schema {
        body["response_format"] = json!({
            "type": "json_schema",
            "json_schema": { "name": "output", "schema": schema, "strict": true },
        });
    }
    body
}

pub(crate) fn parse_reply(url: &str, answer: &Value) -> Result<ChatReply, ModelError> {
    let malformed = |message: String| ModelError::Malformed {
        provider: PROVIDER,
        url: url.to_string(),
        message,
    };
    let choice = answer["choices"]
        .get(0)
        .ok_or_else(|| malformed("no `choices[0]`".into()))?;
    let message = &choice["message"];
    if !message.is_object() {
        return Err(malformed("no `choices[0].message`".into()));
    }
    let mut tool_calls = Vec::new();
    if let Some(calls) = message["tool_calls"].as_array() {
        for (i, call) in calls.iter().enumerate() {
            let function = &call["function"];
            let name = function["name"]
                .as_str()
                .filter(|name| !name.is_empty())
                .ok_or_else(|| malformed(format!("tool_calls[{i}] has no function name")))?;
            let arguments = match &function["arguments"] {
                Value::String(text) if text.trim().is_empty() => json!({}),
                Value::String(text) => match serde_json::from_str(text) {
                    Ok(object @ Value::Object(_)) => object,
                    Ok(_) => {
                        return Err(malformed(format!(
                            "tool_calls[{i}] arguments are not a JSON object"
                        )));
                    }
                    Err(e) => {
                        return Err(malformed(format!(
                            "tool_calls[{i}] arguments are not JSON: {e}"
                        )));
                    }
                },
                Value::Object(_) => function["arguments"].clone(),
                _ => json!({}),
            };
            tool_calls.push(ToolCall {
                id: call["id"]
                    .as_str()
                    .map_or_else(|| format!("call_{i}"), str::to_string),
                name: name.to_string(),
                arguments,
            });
        }
    }
    let finish_reason = match choice["finish_reason"].as_str() {
        Some("tool_calls") => "tool-calls".to_string(),
        Some(other) => other.to_string(),
        None if !tool_calls.is_empty() => "tool-calls".to_string(),
        None => "stop".to_string(),
    };
    Ok(ChatReply {
        message: Message {
            role: "assistant".into(),
            content: message["content"].as_str().unwrap_or_default().to_string(),
            tool_calls,
            tool_call_id: None,
        },
        finish_reason,
        usage: Usage {
            input_tokens: answer["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
            output_tokens: answer["usage"]["completion_tokens"].as_u64().unwrap_or(0),
        },
        model: answer["model"].as_str().unwrap_or_default().to_string(),
    })
}

impl ChatProvider for Arc<OpenAi> {
    fn chat(&self, request: ChatRequest) -> BoxFuture<Result<ChatReply, ModelError>> {
        let this = self.clone();
        Box::pin(async move {
            let url = format!("{}/chat/completions", this.base_url);
            let answer = post_json(
                &this.client,
                PROVIDER,
                &url,
                &this.headers(),
                &request_body(&request),
                &this.settings,
            )
            .await?;
            parse_reply(&url, &answer)
        })
    }
}

impl EmbeddingProvider for Arc<OpenAi> {
    fn embed(
        &self,
        model: String,
        texts: Vec<String>,
    ) -> BoxFuture<Result<Embeddings, ModelError>> {
        let this = self.clone();
        Box::pin(async move {
            let url = format!("{}/embeddings", this.base_url);
            let body = json!({ "model": model, "input": texts });
            let answer = post_json(
                &this.client,
                PROVIDER,
                &url,
                &this.headers(),
                &body,
                &this.settings,
            )
            .await?;
            let malformed = |message: String| ModelError::Malformed {
                provider: PROVIDER,
                url: url.clone(),
                message,
            };
            let data = answer["data"]
                .as_array()
                .ok_or_else(|| malformed("no `data` array".into()))?;
            let mut vectors: Vec<(u64, Vec<f32>)> = Vec::with_capacity(data.len());
            for (i, item) in data.iter().enumerate() {
                let vector = item["embedding"]
                    .as_array()
                    .ok_or_else(|| malformed(format!("data[{i}] has no embedding")))?
                    .iter()
                    .map(|x| x.as_f64().map(|x| x as f32))
                    .collect::<Option<Vec<f32>>>()
                    .ok_or_else(|| malformed(format!("data[{i}] has a non-number")))?;
                vectors.push((item["index"].as_u64().unwrap_or(i as u64), vector));
            }
            if vectors.len() != texts.len() {
                return Err(malformed(format!(
                    "{} embeddings for {} texts",
                    vectors.len(),
                    texts.len()
                )));
            }
            vectors.sort_by_key(|(index, _)| *index);
            let tokens = answer["usage"]["prompt_tokens"].as_u64().unwrap_or(0);
            Ok(Embeddings {
                vectors: vectors.into_iter().map(|(_, v)| v).collect(),
                tokens,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `openai_reply` fuzz target: a tool call's arguments
    /// are a JSON object (as `ToolCall` promises), and it has a name.
    #[test]
    fn tool_calls_have_a_name_and_object_arguments() {
        let reply = |name: &str, arguments: &str| {
            parse_reply(
                "u",
                &json!({"choices": [{"message": {"tool_calls": [
                    {"function": {"name": name, "arguments": arguments}}
                ]}}]}),
            )
        };
        for arguments in ["[1]", "5", "\"text\"", "null", "true"] {
            assert!(
                matches!(reply("f", arguments), Err(ModelError::Malformed { .. })),
                "{arguments}"
            );
        }
        assert!(matches!(reply("", "{}"), Err(ModelError::Malformed { .. })));
        let ok = reply("f", "{\"a\": 1}").unwrap();
        assert_eq!(ok.message.tool_calls[0].arguments, json!({"a": 1}));
        assert_eq!(ok.finish_reason, "tool-calls");
        let empty = reply("f", " ").unwrap();
        assert_eq!(empty.message.tool_calls[0].arguments, json!({}));
    }
}
