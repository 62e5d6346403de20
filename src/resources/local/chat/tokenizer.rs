//! The tokenizer, rebuilt from the GGUF metadata (no `tokenizer.json`).

use super::gguf::{md_str, md_string_array, value_u64};
use anyhow::{Result, anyhow, bail};
use candle_core::quantized::gguf_file::{Content, Value as GgufValue};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

pub(super) struct GgufVocab {
    pub(super) tokens: Vec<String>,
    pub(super) token_types: Option<Vec<i64>>,
    pub(super) merges: Vec<(String, String)>,
    pub(super) pre: String,
}

/// llama.cpp token types (`tokenizer.ggml.token_type`).
pub(super) const TOKEN_TYPE_CONTROL: i64 = 3;
pub(super) const TOKEN_TYPE_USER_DEFINED: i64 = 4;

impl GgufVocab {
    pub(super) fn from_content(ct: &Content) -> Result<Self> {
        let model = md_str(ct, "tokenizer.ggml.model").unwrap_or("<missing>");
        if model != "gpt2" {
            bail!(
                "unsupported `tokenizer.ggml.model` `{model}` (only `gpt2` byte-level BPE is supported)"
            );
        }
        let tokens = md_string_array(ct, "tokenizer.ggml.tokens")?
            .ok_or_else(|| anyhow!("missing GGUF metadata `tokenizer.ggml.tokens`"))?;
        if tokens.is_empty() {
            bail!("`tokenizer.ggml.tokens` is empty");
        }
        let merges = md_string_array(ct, "tokenizer.ggml.merges")?
            .ok_or_else(|| anyhow!("missing GGUF metadata `tokenizer.ggml.merges`"))?
            .into_iter()
            .map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| anyhow!("invalid `tokenizer.ggml.merges` entry {m:?}"))
            })
            .collect::<Result<Vec<_>>>()?;
        let token_types = match ct.metadata.get("tokenizer.ggml.token_type") {
            None => None,
            Some(GgufValue::Array(items)) => Some(
                items
                    .iter()
                    .map(|v| match v {
                        GgufValue::I32(x) => Ok(*x as i64),
                        other => value_u64(other).map(|x| x as i64).ok_or_else(|| {
                            anyhow!("`tokenizer.ggml.token_type` has a non-integer element")
                        }),
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            Some(_) => bail!("`tokenizer.ggml.token_type` is not an array"),
        };
        if let Some(tt) = &token_types
            && tt.len() != tokens.len()
        {
            bail!(
                "`tokenizer.ggml.token_type` has {} entries but there are {} tokens",
                tt.len(),
                tokens.len()
            );
        }
        // llama.cpp treats a missing `pre` as "default".
        let pre = md_str(ct, "tokenizer.ggml.pre")
            .unwrap_or("default")
            .to_string();
        Ok(Self {
            tokens,
            token_types,
            merges,
            pre,
        })
    }

    /// Builds a HF `tokenizers` tokenizer equivalent to llama.cpp's BPE tokenizer for `pre`.
    pub(super) fn build_tokenizer(&self) -> Result<Tokenizer> {
        // GPT-2 regex as used by HF ByteLevel(use_regex=true); llama.cpp uses the same without the
        // trailing `|\s+`, which changes nothing since unmatched text becomes its own piece.
        const GPT2: &str =
            r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
        const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
        const QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
        let split = |re: &str| -> Result<PreTokenizerWrapper> {
            Ok(Split::new(
                SplitPattern::Regex(re.to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| anyhow!("bad pre-tokenizer regex: {e}"))?
            .into())
        };
        let bytes_only = || PreTokenizerWrapper::from(ByteLevel::new(false, true, false));

        let mut ignore_merges = false;
        let mut nfc = false;
        let pre_tokenizer: PreTokenizerWrapper = match self.pre.as_str() {
            // llama.cpp: "\p{N}" then the GPT-2 regex.
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone"
            | "minerva-7b" => Sequence::new(vec![
                Digits::new(true).into(),
                ByteLevel::new(false, true, true).into(),
            ])
            .into(),
            // llama.cpp: the GPT-2 regex alone.
            "gpt-2" | "mpt" | "olmo" | "jais" => ByteLevel::new(false, true, true).into(),
            // Llama 3 (HF tokenizer.json: Split(regex, Isolated) + ByteLevel(use_regex=false), ignore_merges).
            "llama3" | "llama-v3" | "llama-bpe" | "smaug-bpe" | "dbrx" => {
                ignore_merges = true;
                Sequence::new(vec![split(LLAMA3)?, bytes_only()]).into()
            }
            // Qwen2 (HF tokenizer.json: NFC normalizer, Split(regex, Isolated) + ByteLevel).
            "qwen2" | "stablelm2" => {
                nfc = true;
                Sequence::new(vec![split(QWEN2)?, bytes_only()]).into()
            }
            // llama.cpp's default BPE pre-tokenizer: four successive regex splits.
            "default" => Sequence::new(vec![
                split(r"[\p{P}\$\+<=>\^~\|]+")?,
                split(GPT2)?,
                split(r"\p{N}+")?,
                split(r"[0-9][0-9][0-9]")?,
                bytes_only(),
            ])
            .into(),
            other => bail!(
                "unsupported `tokenizer.ggml.pre` `{other}` (supported: smollm, starcoder, refact, command-r, \
                 codeshell, exaone, minerva-7b, gpt-2, mpt, olmo, jais, llama-bpe/llama3, smaug-bpe, dbrx, \
                 qwen2, stablelm2, default)"
            ),
        };

        let vocab: Vocab = self
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, self.merges.clone())
            .ignore_merges(ignore_merges)
            .build()
            .map_err(|e| anyhow!("cannot build BPE tokenizer from GGUF vocab/merges: {e}"))?;
        let mut tok = Tokenizer::new(bpe);
        if nfc {
            tok.with_normalizer(Some(NFC))
                .map_err(|e| anyhow!("tokenizer normalizer: {e}"))?;
        }
        tok.with_pre_tokenizer(Some(pre_tokenizer));
        tok.with_decoder(Some(ByteLevelDecoder::default()));

        if let Some(types) = &self.token_types {
            let special: Vec<AddedToken> = types
                .iter()
                .zip(&self.tokens)
                .filter(|(t, _)| **t == TOKEN_TYPE_CONTROL)
                .map(|(_, s)| AddedToken::from(s.clone(), true))
                .collect();
            let user: Vec<AddedToken> = types
                .iter()
                .zip(&self.tokens)
                .filter(|(t, _)| **t == TOKEN_TYPE_USER_DEFINED)
                .map(|(_, s)| AddedToken::from(s.clone(), false).normalized(false))
                .collect();
            tok.add_special_tokens(special)
                .map_err(|e| anyhow!("adding control tokens: {e}"))?;
            tok.add_tokens(user)
                .map_err(|e| anyhow!("adding user-defined tokens: {e}"))?;
        }
        Ok(tok)
    }
}
