//! Local chat model: a llama- or qwen2-architecture GGUF run on the CPU with candle's quantized
//! llama or qwen2.
//!
//! The tokenizer is rebuilt from the GGUF metadata (`tokenizer.ggml.*`, gpt2-style byte-level
//! BPE) and the prompt is rendered from the GGUF `tokenizer.chat_template` with minijinja,
//! so a single `.gguf` file is all that is needed.

use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

mod gguf;
mod template;
mod tokenizer;

use super::catch_panic;
use anyhow::{Context, Result, anyhow, bail};
use candle_core::quantized::gguf_file::Content;
use candle_core::{Device, Tensor};
use candle_transformers::generation::LogitsProcessor;
use candle_transformers::models::quantized_llama::{self, MAX_SEQ_LEN};
use candle_transformers::models::quantized_qwen2;
use gguf::*;
use minijinja::Environment;
use minijinja::value::Value as JinjaValue;
use template::*;
use tokenizer::*;
use tokenizers::Tokenizer;

/// Prompt tokens are fed to the model in chunks of this many tokens, which bounds the memory
/// of the attention scores (heads x chunk x context floats) for long prompts.
const PREFILL_CHUNK: usize = 512;

/// One chat message (`role` is usually "system", "user" or "assistant").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Sampling options for [`LocalChatModel::chat`].
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Maximum number of new tokens (the model's end-of-turn token is not counted).
    pub max_tokens: usize,
    /// `None` or `<= 0` means greedy (argmax) decoding.
    pub temperature: Option<f64>,
    /// Nucleus sampling; only used when sampling with a temperature. `>= 1` means off.
    pub top_p: Option<f64>,
    /// Seed of the sampler's RNG: same seed + same options + same prompt = same text.
    pub seed: u64,
    /// Generation stops when any of these strings appears; the text is cut before it.
    pub stop: Vec<String>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_tokens: 256,
            temperature: None,
            top_p: None,
            seed: 0,
            stop: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// End-of-turn token or a stop string.
    Stop,
    /// `max_tokens` reached, or the context window is full.
    Length,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub text: String,
    pub input_tokens: usize,
    pub output_tokens: usize,
    pub finish_reason: FinishReason,
}

/// A loaded GGUF chat model. `Send + Sync`: load once, share behind an `Arc`; concurrent
/// [`chat`](Self::chat) calls each get their own KV cache (llama), or take turns (qwen2).
pub struct LocalChatModel {
    path: PathBuf,
    name: String,
    weights: Weights,
    tokenizer: Tokenizer,
    templates: Environment<'static>,
    bos_token: String,
    eos_token: String,
    /// BOS id to prepend to every prompt (GGUF `tokenizer.ggml.add_bos_token`).
    prepend_bos: Option<u32>,
    eos_ids: Vec<u32>,
    context_length: usize,
    device: Device,
}

impl std::fmt::Debug for LocalChatModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalChatModel")
            .field("path", &self.path)
            .field("name", &self.name)
            .field("architecture", &self.weights.arch())
            .field("context_length", &self.context_length)
            .field("eos_ids", &self.eos_ids)
            .finish_non_exhaustive()
    }
}

impl LocalChatModel {
    /// Loads a llama- or qwen2-architecture GGUF file (weights, tokenizer and chat template).
    pub fn load(gguf: &Path) -> Result<Self> {
        catch_panic(
            || format!("loading GGUF model {}", gguf.display()),
            || Self::load_inner(gguf),
        )
    }

    fn load_inner(gguf: &Path) -> Result<Self> {
        let shown = gguf.display().to_string();
        let mut file =
            File::open(gguf).map_err(|e| anyhow!("cannot open GGUF model file {shown}: {e}"))?;
        let file_len = file
            .metadata()
            .map_err(|e| anyhow!("cannot stat GGUF model file {shown}: {e}"))?
            .len();
        let ct = Content::read(&mut file).map_err(|e| {
            anyhow!("{shown} is not a valid GGUF file (corrupt or truncated header): {e}")
        })?;

        let arch_name = md_str(&ct, "general.architecture").unwrap_or("<missing>");
        let arch = Arch::from_gguf(arch_name).ok_or_else(|| {
            anyhow!(
                "{shown}: unsupported GGUF general.architecture `{arch_name}` (supported: {})",
                Arch::ALL.map(Arch::name).join(", ")
            )
        })?;
        check_tensor_extents(&ct, file_len)
            .map_err(|e| anyhow!("{shown} is truncated or corrupt: {e}"))?;
        check_hparams(&ct, arch).map_err(|e| anyhow!("{shown}: {e}"))?;

        let vocab = GgufVocab::from_content(&ct).map_err(|e| anyhow!("{shown}: {e}"))?;
        let tokenizer = vocab
            .build_tokenizer()
            .map_err(|e| anyhow!("{shown}: {e}"))?;

        let template_src = md_str(&ct, "tokenizer.chat_template")
            .ok_or_else(|| {
                anyhow!("{shown}: GGUF has no `tokenizer.chat_template` metadata, cannot format chat prompts")
            })?
            .to_string();
        let templates = build_template_env(template_src)
            .map_err(|e| anyhow!("{shown}: invalid `tokenizer.chat_template`: {e:#}"))?;

        let token_text = |id: Option<u32>| {
            id.and_then(|i| vocab.tokens.get(i as usize))
                .cloned()
                .unwrap_or_default()
        };
        let bos_id = md_u64(&ct, "tokenizer.ggml.bos_token_id").map(|v| v as u32);
        let eos_id = md_u64(&ct, "tokenizer.ggml.eos_token_id").map(|v| v as u32);
        let bos_token = token_text(bos_id);
        let eos_token = token_text(eos_id);
        let add_bos = md_bool(&ct, "tokenizer.ggml.add_bos_token").unwrap_or(false);
        let prepend_bos = if add_bos { bos_id } else { None };

        let mut eos_ids: Vec<u32> = Vec::new();
        let n_vocab = vocab.tokens.len() as u32;
        for id in [
            eos_id,
            md_u64(&ct, "tokenizer.ggml.eot_token_id").map(|v| v as u32),
        ]
        .into_iter()
        .flatten()
        {
            if id < n_vocab && !eos_ids.contains(&id) {
                eos_ids.push(id);
            }
        }
        for (i, t) in vocab.tokens.iter().enumerate() {
            if matches!(t.as_str(), "<|im_end|>" | "<|endoftext|>" | "<|eot_id|>")
                && !eos_ids.contains(&(i as u32))
            {
                eos_ids.push(i as u32);
            }
        }
        if eos_ids.is_empty() {
            bail!(
                "{shown}: no end-of-turn token (no `tokenizer.ggml.eos_token_id` and no <|im_end|>/<|endoftext|>/<|eot_id|> token)"
            );
        }

        let gguf_ctx = md_u64(&ct, &format!("{}.context_length", arch.name()));
        let context_length = match arch {
            // candle's quantized llama has rotary tables for MAX_SEQ_LEN positions.
            Arch::Llama => gguf_ctx
                .unwrap_or(MAX_SEQ_LEN as u64)
                .clamp(1, MAX_SEQ_LEN as u64),
            // candle's quantized qwen2 builds them for the GGUF context length (checked above).
            Arch::Qwen2 => gguf_ctx.unwrap_or(0).max(1),
        } as usize;
        let name = md_str(&ct, "general.name")
            .map(str::to_string)
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| {
                gguf.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| shown.clone())
            });

        let device = Device::Cpu;
        let weights = match requantize_for_cpu(&ct, arch, &mut file, &device)
            .map_err(|e| anyhow!("{shown}: cannot read model weights: {e}"))?
        {
            None => Weights::from_gguf(arch, ct, &mut file, &device),
            Some(buf) => {
                let mut cursor = std::io::Cursor::new(buf);
                Content::read(&mut cursor)
                    .and_then(|ct| Weights::from_gguf(arch, ct, &mut cursor, &device))
            }
        }
        .map_err(|e| anyhow!("{shown}: cannot load model weights: {e}"))?;

        Ok(Self {
            path: gguf.to_path_buf(),
            name,
            weights,
            tokenizer,
            templates,
            bos_token,
            eos_token,
            prepend_bos,
            eos_ids,
            context_length,
            device,
        })
    }

    /// GGUF `general.name`, else the file stem.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renders the GGUF chat template for `messages` with `add_generation_prompt = true`.
    pub fn render_prompt(&self, messages: &[ChatMessage]) -> Result<String> {
        let msgs: Vec<JinjaValue> = messages
            .iter()
            .map(|m| {
                JinjaValue::from_pairs([
                    ("role", JinjaValue::from(m.role.as_str())),
                    ("content", JinjaValue::from(m.content.as_str())),
                ])
            })
            .collect();
        let ctx = minijinja::context! {
            messages => msgs,
            add_generation_prompt => true,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
        };
        self.templates
            .get_template("chat")
            .and_then(|t| t.render(ctx))
            .map_err(|e| {
                anyhow!(
                    "{}: rendering the chat template failed: {e:#}",
                    self.path.display()
                )
            })
    }

    /// Tokenizes text exactly as a prompt is tokenized (special tokens in the text are
    /// recognised; BOS prepended only if the GGUF says `add_bos_token`).
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| anyhow!("{}: tokenization failed: {e}", self.path.display()))?;
        let mut ids = enc.get_ids().to_vec();
        if let Some(bos) = self.prepend_bos
            && ids.first() != Some(&bos)
        {
            ids.insert(0, bos);
        }
        Ok(ids)
    }

    /// Decodes token ids (special tokens skipped).
    pub fn detokenize(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| anyhow!("{}: detokenization failed: {e}", self.path.display()))
    }

    /// Generates the assistant's reply to `messages`. Blocking and CPU-bound.
    pub fn chat(&self, messages: &[ChatMessage], options: &GenerateOptions) -> Result<Generation> {
        let prompt = self.render_prompt(messages)?;
        let ids = self.tokenize(&prompt)?;
        catch_panic(
            || format!("{}: generation", self.path.display()),
            || self.generate(&ids, options),
        )
    }

    fn generate(&self, prompt: &[u32], options: &GenerateOptions) -> Result<Generation> {
        let shown = self.path.display();
        if prompt.is_empty() {
            bail!("{shown}: the rendered prompt is empty");
        }
        if prompt.len() > self.context_length {
            bail!(
                "{shown}: prompt is {} tokens, longer than the model's context window of {} tokens",
                prompt.len(),
                self.context_length
            );
        }
        // Greedy unless a positive temperature is given; top_p <= 0 also means greedy, >= 1 means off.
        let temperature = match (options.temperature, options.top_p) {
            (Some(t), _) if t.is_nan() => bail!("invalid temperature NaN"),
            (_, Some(p)) if p.is_nan() => bail!("invalid top_p NaN"),
            (Some(t), Some(p)) if t > 0.0 && p > 0.0 => Some(t),
            (Some(t), None) if t > 0.0 => Some(t),
            _ => None,
        };
        let top_p = options.top_p.filter(|p| *p < 1.0);
        let mut sampler = LogitsProcessor::new(options.seed, temperature, top_p);
        let stops: Vec<&str> = options
            .stop
            .iter()
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .collect();
        let max_stop_len = stops.iter().map(|s| s.len()).max().unwrap_or(0);

        let mut output: Vec<u32> = Vec::new();
        let done = |output: Vec<u32>, text: Option<String>, finish_reason| -> Result<Generation> {
            let text = match text {
                Some(text) => text,
                None => self.detokenize(&output)?,
            };
            Ok(Generation {
                text,
                input_tokens: prompt.len(),
                output_tokens: output.len(),
                finish_reason,
            })
        };
        if options.max_tokens == 0 {
            return done(output, None, FinishReason::Length);
        }

        // This call's model state, with an empty KV cache.
        let mut model = self.weights.session();
        let fwd_err = |e: candle_core::Error| anyhow!("{shown}: model forward pass failed: {e}");

        let mut pos = 0usize;
        let mut logits = None;
        for chunk in prompt.chunks(PREFILL_CHUNK) {
            let input = Tensor::new(chunk, &self.device)
                .and_then(|t| t.unsqueeze(0))
                .map_err(fwd_err)?;
            logits = Some(model.forward(&input, pos).map_err(fwd_err)?);
            pos += chunk.len();
        }
        let mut logits = logits.context("no logits after the prompt")?;

        // Streamed text, only maintained when there are stop strings to look for.
        let mut text = String::new();
        let mut stream = self.tokenizer.decode_stream(true);
        loop {
            let last = logits.squeeze(0).map_err(fwd_err)?;
            let next = sampler
                .sample(&last)
                .map_err(|e| anyhow!("{shown}: sampling failed: {e}"))?;
            if self.eos_ids.contains(&next) {
                return done(output, None, FinishReason::Stop);
            }
            output.push(next);
            if !stops.is_empty()
                && let Some(piece) = stream
                    .step(next)
                    .map_err(|e| anyhow!("{shown}: detokenization failed: {e}"))?
            {
                let mut from = text.len().saturating_sub(max_stop_len);
                while !text.is_char_boundary(from) {
                    from -= 1;
                }
                text.push_str(&piece);
                if let Some(cut) = stops
                    .iter()
                    .filter_map(|s| text[from..].find(s).map(|i| from + i))
                    .min()
                {
                    text.truncate(cut);
                    return done(output, Some(text), FinishReason::Stop);
                }
            }
            if output.len() >= options.max_tokens || pos >= self.context_length {
                return done(output, None, FinishReason::Length);
            }
            let input = Tensor::new(&[next], &self.device)
                .and_then(|t| t.unsqueeze(0))
                .map_err(fwd_err)?;
            logits = model.forward(&input, pos).map_err(fwd_err)?;
            pos += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Architectures

/// The supported GGUF `general.architecture`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arch {
    Llama,
    Qwen2,
}

impl Arch {
    const ALL: [Arch; 2] = [Arch::Llama, Arch::Qwen2];

    fn from_gguf(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The `general.architecture` value, also the prefix of the hyper-parameter keys
    /// (`llama.block_count`, `qwen2.block_count`, ...).
    fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
        }
    }
}

/// The transformer, by architecture.
enum Weights {
    /// Cloned for each call: the clone shares the weights (`Arc`s) and has its own KV cache.
    Llama(quantized_llama::ModelWeights),
    /// candle's quantized qwen2 model is not `Clone`: one instance, whose KV cache the calls on
    /// this model use one at a time. Its causal-mask cache, one u8 mask per (prefill chunk
    /// length, context length) seen, lives as long as the model.
    Qwen2(Mutex<quantized_qwen2::ModelWeights>),
}

/// One generation's model, with its own KV cache, empty at the start.
enum Session<'a> {
    Llama(Box<quantized_llama::ModelWeights>),
    Qwen2(MutexGuard<'a, quantized_qwen2::ModelWeights>),
}

impl Weights {
    fn from_gguf<R: Read + Seek>(
        arch: Arch,
        ct: Content,
        reader: &mut R,
        device: &Device,
    ) -> candle_core::Result<Self> {
        Ok(match arch {
            Arch::Llama => Weights::Llama(quantized_llama::ModelWeights::from_gguf(
                ct, reader, device,
            )?),
            Arch::Qwen2 => Weights::Qwen2(Mutex::new(quantized_qwen2::ModelWeights::from_gguf(
                ct, reader, device,
            )?)),
        })
    }

    fn arch(&self) -> Arch {
        match self {
            Weights::Llama(_) => Arch::Llama,
            Weights::Qwen2(_) => Arch::Qwen2,
        }
    }

    /// Blocks while another call generates with a qwen2 model.
    fn session(&self) -> Session<'_> {
        match self {
            Weights::Llama(w) => {
                let mut model = Box::new(w.clone());
                model.clear_kv_cache();
                Session::Llama(model)
            }
            Weights::Qwen2(w) => {
                // A panic in an earlier generation poisons the lock; its cache is cleared here.
                let mut model = w.lock().unwrap_or_else(PoisonError::into_inner);
                model.clear_kv_cache();
                Session::Qwen2(model)
            }
        }
    }
}

impl Session<'_> {
    /// Logits of the last position of `input` (shape 1 x tokens), whose first token is at `pos`.
    fn forward(&mut self, input: &Tensor, pos: usize) -> candle_core::Result<Tensor> {
        match self {
            Session::Llama(model) => model.forward(input, pos),
            Session::Qwen2(model) => model.forward(input, pos),
        }
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        // The shared qwen2 instance keeps its KV cache: free it now, not at the next call.
        if let Session::Qwen2(model) = self {
            model.clear_kv_cache();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::gguf_file::{self, Value as GgufValue};
    use candle_core::quantized::{GgmlDType, QTensor};
    use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};

    fn splits(pre: &str, text: &str) -> Vec<String> {
        // Byte-level alphabet only: enough to build the tokenizer and exercise its pre-tokenizer.
        let tokens: Vec<String> = tokenizers::pre_tokenizers::byte_level::ByteLevel::alphabet()
            .into_iter()
            .map(String::from)
            .collect();
        let vocab = GgufVocab {
            tokens,
            token_types: None,
            merges: vec![],
            pre: pre.to_string(),
        };
        let tok = vocab.build_tokenizer().unwrap();
        let mut pts = PreTokenizedString::from(text);
        tok.get_pre_tokenizer()
            .unwrap()
            .pre_tokenize(&mut pts)
            .unwrap();
        let out: Vec<String> = pts
            .get_splits(OffsetReferential::Original, OffsetType::Byte)
            .into_iter()
            .map(|(s, _, _)| s.to_string())
            .collect();
        // Lossless: decoding the byte-level ids of the whole text gives the text back.
        let ids = tok.encode(text, false).unwrap().get_ids().to_vec();
        assert_eq!(tok.decode(&ids, false).unwrap(), text, "{pre}");
        out
    }

    /// Expected splits = llama.cpp's regex lists for each `tokenizer.ggml.pre`, checked against the
    /// same pipelines built with Python `tokenizers` 0.23.3.
    #[test]
    fn pre_tokenizer_splits() {
        let s = "Hello world 12345! It's  ok...\n\tdone";
        let cases: [(&str, &[&str]); 5] = [
            (
                "smollm",
                &[
                    "Hello", "Ġworld", "Ġ", "1", "2", "3", "4", "5", "!", "ĠIt", "'s", "Ġ", "Ġok",
                    "...", "Ċ", "ĉ", "done",
                ],
            ),
            (
                "gpt-2",
                &[
                    "Hello", "Ġworld", "Ġ12345", "!", "ĠIt", "'s", "Ġ", "Ġok", "...", "Ċ", "ĉ",
                    "done",
                ],
            ),
            (
                "llama-bpe",
                &[
                    "Hello", "Ġworld", "Ġ", "123", "45", "!", "ĠIt", "'s", "Ġ", "Ġok", "...Ċ",
                    "ĉdone",
                ],
            ),
            (
                "qwen2",
                &[
                    "Hello", "Ġworld", "Ġ", "1", "2", "3", "4", "5", "!", "ĠIt", "'s", "Ġ", "Ġok",
                    "...Ċ", "ĉdone",
                ],
            ),
            (
                "default",
                &[
                    "Hello", "Ġworld", "Ġ", "123", "45", "!", "ĠIt", "'", "s", "Ġ", "Ġok", "...",
                    "Ċ", "ĉ", "done",
                ],
            ),
        ];
        for (pre, want) in cases {
            assert_eq!(splits(pre, s), want, "pre={pre}");
        }
    }

    #[test]
    fn unsupported_pre_tokenizer_is_named() {
        let vocab = GgufVocab {
            tokens: vec!["a".into()],
            token_types: None,
            merges: vec![],
            pre: "deepseek-llm".into(),
        };
        let err = vocab.build_tokenizer().unwrap_err().to_string();
        assert!(
            err.contains("unsupported `tokenizer.ggml.pre` `deepseek-llm`"),
            "{err}"
        );
    }

    /// A GGUF file with `metadata` and one small f32 tensor.
    fn tiny_gguf(name: &str, metadata: &[(&str, GgufValue)]) -> PathBuf {
        let path = std::env::temp_dir().join(format!("weir-chat-{}-{name}", std::process::id()));
        let tensor = QTensor::quantize(
            &Tensor::zeros(32, candle_core::DType::F32, &Device::Cpu).unwrap(),
            GgmlDType::F32,
        )
        .unwrap();
        let metadata: Vec<(&str, &GgufValue)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
        let mut file = File::create(&path).unwrap();
        gguf_file::write(&mut file, &metadata, &[("t", &tensor)]).unwrap();
        path
    }

    #[test]
    fn unsupported_architecture_names_the_supported_ones() {
        let arch = |a: &str| ("general.architecture", GgufValue::String(a.into()));
        let path = tiny_gguf("gpt2.gguf", &[arch("gpt2")]);
        let err = LocalChatModel::load(&path).unwrap_err().to_string();
        let _ = std::fs::remove_file(&path);
        assert!(
            err.contains("unsupported GGUF general.architecture `gpt2` (supported: llama, qwen2)"),
            "{err}"
        );
        assert!(err.contains("gpt2.gguf"), "{err}");
    }

    #[test]
    fn qwen2_hyper_parameters_are_checked() {
        let arch = ("general.architecture", GgufValue::String("qwen2".into()));
        let u32s = |kv: &[(&'static str, u32)]| -> Vec<(&'static str, GgufValue)> {
            std::iter::once(arch.clone())
                .chain(kv.iter().map(|(k, v)| (*k, GgufValue::U32(*v))))
                .collect()
        };
        let base = [
            ("qwen2.attention.head_count", 14),
            ("qwen2.attention.head_count_kv", 2),
            ("qwen2.embedding_length", 896),
            ("qwen2.block_count", 24),
        ];
        let path = tiny_gguf("qwen-no-ctx.gguf", &u32s(&base));
        let err = LocalChatModel::load(&path).unwrap_err().to_string();
        let _ = std::fs::remove_file(&path);
        assert!(
            err.contains("missing or non-integer GGUF metadata `qwen2.context_length`"),
            "{err}"
        );
        let mut bad = base.to_vec();
        bad[1].1 = 3; // 14 heads do not share 3 KV heads
        bad.push(("qwen2.context_length", 32768));
        let path = tiny_gguf("qwen-bad-heads.gguf", &u32s(&bad));
        let err = LocalChatModel::load(&path).unwrap_err().to_string();
        let _ = std::fs::remove_file(&path);
        assert!(
            err.contains("inconsistent qwen2 hyper-parameters: head_count=14 head_count_kv=3"),
            "{err}"
        );
        // Consistent hyper-parameters get as far as the tokenizer.
        bad[1].1 = 2;
        let path = tiny_gguf("qwen-ok.gguf", &u32s(&bad));
        let err = LocalChatModel::load(&path).unwrap_err().to_string();
        let _ = std::fs::remove_file(&path);
        assert!(err.contains("tokenizer.ggml.model"), "{err}");
    }

    #[test]
    fn template_python_methods() {
        let env = build_template_env(
            "{{ raise_exception('x') if false else '' }}{{ ' a '.strip() }}|{{ 'abc'.startswith('ab') }}|\
             {% for k, v in {'r': 1}.items() %}{{ k }}={{ v }}{% endfor %}"
                .to_string(),
        )
        .unwrap();
        let out = env
            .get_template("chat")
            .unwrap()
            .render(minijinja::context! {})
            .unwrap();
        assert_eq!(out, "a|True|r=1"); // jinja2 prints Python booleans
        let env = build_template_env("{{ raise_exception('bad role') }}".to_string()).unwrap();
        let err = env
            .get_template("chat")
            .unwrap()
            .render(minijinja::context! {})
            .unwrap_err();
        assert!(err.to_string().contains("bad role"));
    }
}
