//! The embedded provider: chat and embedding models run in-process on the
//! CPU with candle, from model files, with no server.
//!
//! Each model file is loaded once per process, on its first call, on a
//! blocking thread, and shared by every resource and task that uses it.
//! Generation runs on blocking threads too, so the async workers stay free.
//!
//! Threads: candle's quantized matmuls use a spin-waiting pool sized by
//! `CANDLE_NUM_THREADS`, read once. On a busy 2-core machine two spinning
//! threads collapse (3-9 instead of ~65 tokens/s), so the `weir` binary sets
//! `CANDLE_NUM_THREADS=1` unless it is set; embedders should do the same
//! before starting threads.

mod chat;
mod embed;

pub(crate) use chat::{ChatMessage, FinishReason, GenerateOptions, LocalChatModel};
pub(crate) use embed::LocalEmbeddingModel;

use super::api::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::OnceCell;

/// Default of `max_tokens` when neither the setup nor the call sets it.
const DEFAULT_MAX_TOKENS: u32 = 256;

const PROVIDER: &str = "local";

/// A model that is loaded once, by whoever asks first.
type Slot<M> = Arc<OnceCell<Arc<M>>>;

/// Loaded models by file, shared by the whole process.
struct Loaded<M> {
    models: OnceLock<Mutex<HashMap<PathBuf, Slot<M>>>>,
}

impl<M: Send + Sync + 'static> Loaded<M> {
    const fn new() -> Self {
        Loaded {
            models: OnceLock::new(),
        }
    }

    /// The model at `path`, loading it on a blocking thread the first time.
    async fn get(
        &self,
        path: &Path,
        load: fn(&Path) -> anyhow::Result<M>,
    ) -> Result<Arc<M>, ModelError> {
        let cell = self
            .models
            .get_or_init(Default::default)
            .lock()
            .expect("model cache lock")
            .entry(path.to_path_buf())
            .or_default()
            .clone();
        let path = path.to_path_buf();
        cell.get_or_try_init(|| async move {
            let shown = path.display().to_string();
            tokio::task::spawn_blocking(move || load(&path))
                .await
                .map_err(|e| ModelError::Invalid(format!("loading {shown} panicked: {e}")))?
                .map(Arc::new)
                .map_err(|e| ModelError::Invalid(format!("{e:#}")))
        })
        .await
        .cloned()
    }
}

/// Runs `f`, turning a panic inside candle or tokenizers into an error that
/// says what was being done.
fn catch_panic<T>(
    what: impl FnOnce() -> String,
    f: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(anyhow::anyhow!("{}: internal panic: {message}", what()))
        }
    }
}

/// The loaded models are shared across tasks and threads.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<LocalChatModel>();
    shared::<LocalEmbeddingModel>();
};

static CHAT_MODELS: Loaded<LocalChatModel> = Loaded::new();
static EMBEDDING_MODELS: Loaded<LocalEmbeddingModel> = Loaded::new();

/// The embedded provider; `ChatRequest::model` and the embedding model name
/// are model file paths.
pub struct Local;

impl Local {
    /// The provider (stateless: the models are cached per process).
    pub fn new() -> Arc<Local> {
        static LOCAL: OnceLock<Arc<Local>> = OnceLock::new();
        LOCAL.get_or_init(|| Arc::new(Local)).clone()
    }
}

fn failed(e: anyhow::Error) -> ModelError {
    ModelError::Unavailable {
        provider: PROVIDER,
        url: "in-process".into(),
        message: format!("{e:#}"),
        attempts: 1,
    }
}

impl ChatProvider for Arc<Local> {
    fn chat(&self, request: ChatRequest) -> BoxFuture<Result<ChatReply, ModelError>> {
        Box::pin(async move {
            let model = CHAT_MODELS
                .get(Path::new(&request.model), LocalChatModel::load)
                .await?;
            if !request.tools.is_empty() {
                tracing::debug!(model = %request.model, "the embedded provider does not call tools; tools not offered");
            }
            let mut messages: Vec<ChatMessage> = request
                .messages
                .iter()
                .map(|m| ChatMessage::new(m.role.clone(), m.content.clone()))
                .collect();
            if let Some(schema) = &request.output_schema {
                messages.insert(
                    0,
                    ChatMessage::new(
                        "system",
                        format!(
                            "Answer with only a JSON value that follows this JSON Schema:\n{schema}"
                        ),
                    ),
                );
            }
            let o = &request.options;
            let options = GenerateOptions {
                max_tokens: o.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS) as usize,
                temperature: o.temperature.filter(|t| *t > 0.0),
                top_p: o.top_p,
                seed: o.seed.unwrap_or(0),
                stop: o.stop.clone(),
            };
            let generation = {
                let model = model.clone();
                tokio::task::spawn_blocking(move || model.chat(&messages, &options))
                    .await
                    .map_err(|e| failed(anyhow::anyhow!("generation panicked: {e}")))?
                    .map_err(failed)?
            };
            Ok(ChatReply {
                message: Message::new("assistant", generation.text),
                finish_reason: match generation.finish_reason {
                    FinishReason::Stop => "stop",
                    FinishReason::Length => "length",
                }
                .to_string(),
                usage: Usage {
                    input_tokens: generation.input_tokens as u64,
                    output_tokens: generation.output_tokens as u64,
                },
                model: model.name().to_string(),
            })
        })
    }
}

impl EmbeddingProvider for Arc<Local> {
    fn embed(
        &self,
        model: String,
        texts: Vec<String>,
    ) -> BoxFuture<Result<Embeddings, ModelError>> {
        Box::pin(async move {
            let embedder = EMBEDDING_MODELS
                .get(Path::new(&model), LocalEmbeddingModel::load)
                .await?;
            tokio::task::spawn_blocking(move || embedder.embed(&texts))
                .await
                .map_err(|e| failed(anyhow::anyhow!("embedding panicked: {e}")))?
                .map(|vectors| Embeddings { vectors, tokens: 0 })
                .map_err(failed)
        })
    }
}
