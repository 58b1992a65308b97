//! Sentence embeddings as sentence-transformers computes them for all-MiniLM-L6-v2: the
//! mean of the last hidden layer over the tokens, L2-normalised.
use super::bert::{Bert, PackedBatch};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::text::tokenizer::TextTokenizer;
use std::path::{Path, PathBuf};

pub struct SentenceEncoder<B: Backend> {
    pub bert: Bert<B>,
    pub tokenizer: TextTokenizer,
    /// Longest input in tokens, special tokens included: `max_seq_length` of
    /// `sentence_bert_config.json` when present (256 for the default model), else the
    /// model's position count. Longer texts are truncated to it, as sentence-transformers does.
    pub max_tokens: usize,
    pub dir: PathBuf,
}

/// Token ids of one text, and whether it had to be cut to `max_tokens`.
pub struct Tokenized {
    pub ids: Vec<u32>,
    pub truncated_from: Option<usize>,
}

impl<B: Backend> SentenceEncoder<B> {
    pub fn load(dir: &Path) -> Result<SentenceEncoder<B>> {
        Self::load_sharing(dir, &[])
    }

    /// As [`load`](Self::load), reusing one of `known` when its `tokenizer.json` has the
    /// same text (the encoders of a checkpoint share one tokenizer).
    pub fn load_sharing(dir: &Path, known: &[&TextTokenizer]) -> Result<SentenceEncoder<B>> {
        if !dir.is_dir() {
            return Err(Error::model(dir, "model directory not found (run scripts/fetch-model.sh for the default model, or pass --model DIR)"));
        }
        let bert = Bert::load(dir)?;
        let tokenizer = TextTokenizer::load_sharing(&dir.join("tokenizer.json"), known)?;
        let positions = bert.config.max_position_embeddings;
        let max_tokens = read_max_seq_length(&dir.join("sentence_bert_config.json"))?.unwrap_or(positions).min(positions);
        Ok(SentenceEncoder { bert, tokenizer, max_tokens, dir: dir.to_path_buf() })
    }

    /// The same tokenizer and limits around another encoder (e.g. a trained copy).
    pub fn with_bert(&self, bert: Bert<B>) -> SentenceEncoder<B> {
        SentenceEncoder { bert, tokenizer: self.tokenizer.clone(), max_tokens: self.max_tokens, dir: self.dir.clone() }
    }

    pub fn dim(&self) -> usize {
        self.bert.config.hidden_size
    }

    /// Tokenizes `text`, keeping `[CLS]`, the first `max_tokens − 2` word pieces and `[SEP]`.
    pub fn tokenize(&self, text: &str) -> Result<Tokenized> {
        let mut ids = self.tokenizer.encode(text)?.ids;
        let n = ids.len();
        if n <= self.max_tokens {
            return Ok(Tokenized { ids, truncated_from: None });
        }
        let sep = *ids.last().expect("a truncated sequence is not empty");
        ids.truncate(self.max_tokens - 1);
        ids.push(sep);
        Ok(Tokenized { ids, truncated_from: Some(n) })
    }

    /// One unit-length embedding `[d]` per token sequence.
    pub fn embed_ids<S: AsRef<[u32]>>(&self, sequences: &[S]) -> Result<Vec<Vec<f32>>> {
        let batch = PackedBatch::new(sequences);
        let hidden = self.bert.forward(&batch)?;
        let d = self.dim();
        let mut pooled = B::zeros(batch.len() * d);
        B::mean_pool_forward(&hidden, &batch.starts, d, &mut pooled);
        B::l2_normalize_rows(&mut pooled, d);
        Ok(B::to_host(&pooled)?.chunks_exact(d).map(<[f32]>::to_vec).collect())
    }

    /// Embeddings of texts (truncated as `tokenize` says).
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let ids = texts.iter().map(|t| self.tokenize(t).map(|t| t.ids)).collect::<Result<Vec<_>>>()?;
        self.embed_ids(&ids)
    }
}

fn read_max_seq_length(path: &Path) -> Result<Option<usize>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::model(path, format!("invalid JSON: {e}")))?;
    match value.get("max_seq_length") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v.as_u64().filter(|&n| n >= 2).map(|n| Some(n as usize)).ok_or_else(|| Error::model(path, "max_seq_length must be an integer ≥ 2")),
    }
}
