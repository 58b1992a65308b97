//! The model's WordPiece tokenizer (`tokenizer.json`), with its padding and truncation off:
//! rmx packs sequences itself and decides about over-long input explicitly.
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use tokenizers::Tokenizer;

#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    path: PathBuf,
}

/// One tokenized text, special tokens included.
#[derive(Debug, Clone)]
pub struct Encoding {
    pub ids: Vec<u32>,
    /// Byte offsets of each token in the text (in its word, for pre-split input);
    /// `(0, 0)` for special tokens.
    pub offsets: Vec<(usize, usize)>,
    /// The word each token came from; `None` for special tokens.
    pub word_ids: Vec<Option<u32>>,
}

impl TextTokenizer {
    pub fn load(path: &Path) -> Result<TextTokenizer> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        // Checked as JSON first: the tokenizers crate panics on a syntax error inside its
        // decoder entry (found by fuzzing: tests/fuzz_regressions.rs).
        serde_json::from_str::<serde::de::IgnoredAny>(&text).map_err(|e| Error::model(path, format!("invalid tokenizer: {e}")))?;
        let mut inner: Tokenizer = text.parse().map_err(|e| Error::model(path, format!("invalid tokenizer: {e}")))?;
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| Error::model(path, format!("cannot switch truncation off: {e}")))?;
        // The tokenizers crate does not check that its post-processor's special tokens exist
        // and panics at the first encoding instead (found by fuzzing): try one here, so a
        // broken file is a model error at load, never a panic later.
        let probe = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.encode("a b", true).is_ok()));
        if probe.is_err() {
            return Err(Error::model(path, "invalid tokenizer: encoding a probe sentence failed (a special token of the post-processor is missing?)"));
        }
        Ok(TextTokenizer { inner, path: path.to_path_buf() })
    }

    /// Tokenizes running text.
    pub fn encode(&self, text: &str) -> Result<Encoding> {
        let encoding = self.inner.encode(text, true).map_err(|e| self.error(e))?;
        Ok(Self::convert(encoding))
    }

    /// Tokenizes text already split into words (each word is further split by the
    /// tokenizer's pre-tokenizer and WordPiece); `word_ids` index into `words`.
    pub fn encode_words(&self, words: &[&str]) -> Result<Encoding> {
        let encoding = self.inner.encode(words, true).map_err(|e| self.error(e))?;
        Ok(Self::convert(encoding))
    }

    fn convert(encoding: tokenizers::Encoding) -> Encoding {
        Encoding { ids: encoding.get_ids().to_vec(), offsets: encoding.get_offsets().to_vec(), word_ids: encoding.get_word_ids().to_vec() }
    }

    fn error(&self, e: tokenizers::Error) -> Error {
        Error::model(&self.path, format!("tokenization failed: {e}"))
    }

    /// The id of a special token such as `[SEP]`.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
}
