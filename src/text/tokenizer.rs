//! The model's WordPiece tokenizer (`tokenizer.json`), with its padding and truncation off:
//! rmx packs sequences itself and decides about over-long input explicitly.
use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::{AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper, Tokenizer};

/// Cheap to clone: the encoders of one checkpoint share one tokenizer.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Arc<Tokenizer>,
    path: PathBuf,
    /// XXH64 of the file's text: equal files give the same tokenizer (`load_sharing`).
    text_hash: u64,
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
        Self::load_sharing(path, &[])
    }

    /// As [`load`](Self::load), but a file with the same text as one of `known`'s gives a
    /// clone of it instead of a second parse (a checkpoint's encoders share one tokenizer).
    pub fn load_sharing(path: &Path, known: &[&TextTokenizer]) -> Result<TextTokenizer> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let text_hash = rmx_index::xxh64(text.as_bytes(), 0);
        if let Some(same) = known.iter().find(|k| k.text_hash == text_hash) {
            return Ok(TextTokenizer { inner: Arc::clone(&same.inner), path: path.to_path_buf(), text_hash });
        }
        // Checked as JSON first: the tokenizers crate panics on a syntax error inside its
        // decoder entry (found by fuzzing: tests/fuzz_regressions.rs).
        serde_json::from_str::<serde::de::IgnoredAny>(&text).map_err(|e| Error::model(path, format!("invalid tokenizer: {e}")))?;
        let parsed = match read_wordpiece(&text) {
            Some(tokenizer) => Ok(tokenizer),
            None => text.parse::<Tokenizer>(),
        };
        let mut inner = parsed.map_err(|e| Error::model(path, format!("invalid tokenizer: {e}")))?;
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| Error::model(path, format!("cannot switch truncation off: {e}")))?;
        // The tokenizers crate does not check that its post-processor's special tokens exist
        // and panics at the first encoding instead (found by fuzzing): try one here, so a
        // broken file is a model error at load, never a panic later.
        let probe = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.encode("a b", true).is_ok()));
        if probe.is_err() {
            return Err(Error::model(path, "invalid tokenizer: encoding a probe sentence failed (a special token of the post-processor is missing?)"));
        }
        Ok(TextTokenizer { inner: Arc::new(inner), path: path.to_path_buf(), text_hash })
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

/// `tokenizer.json` with a WordPiece model (every BERT tokenizer), read field by field.
/// The tokenizers crate reads its model entry through two buffered copies (serde's untagged
/// enum, then a map of JSON values), which made reading the 30k-entry vocabulary the largest
/// share of a one-sentence `rmx query`; here `WordPiece`'s own reader fills its hash map
/// straight from the text. Truncation and padding are not read: rmx switches both off.
#[derive(Deserialize)]
struct WordPieceFile {
    version: Option<String>,
    #[serde(default)]
    added_tokens: Vec<AddedTokenWithId>,
    normalizer: Option<NormalizerWrapper>,
    pre_tokenizer: Option<PreTokenizerWrapper>,
    post_processor: Option<PostProcessorWrapper>,
    decoder: Option<DecoderWrapper>,
    model: WordPiece,
}

#[derive(Deserialize)]
struct AddedTokenWithId {
    #[serde(flatten)]
    token: AddedToken,
}

/// The tokenizer the crate's reader builds from `text`, or `None` when `text` is not a
/// version-1.0 WordPiece tokenizer this reader understands (the caller then uses the
/// crate's reader, which also words the error). Built in the crate's order: the model,
/// the pipeline, then the added tokens (whose ids the vocabulary gives).
fn read_wordpiece(text: &str) -> Option<Tokenizer> {
    let file: WordPieceFile = serde_json::from_str(text).ok()?;
    if file.version.as_deref() != Some("1.0") {
        return None;
    }
    let mut tokenizer = Tokenizer::new(file.model);
    tokenizer.with_normalizer(file.normalizer).with_pre_tokenizer(file.pre_tokenizer).with_post_processor(file.post_processor).with_decoder(file.decoder);
    let added: Vec<AddedToken> = file.added_tokens.into_iter().map(|t| t.token).collect();
    tokenizer.add_tokens(&added);
    Some(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_tokenizers() -> Vec<PathBuf> {
        let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_bert/tokenizer.json");
        let default = crate::model::location::default_model_dir().join("tokenizer.json");
        if !default.is_file() {
            eprintln!("SKIPPED (in part): default model not found at {}", default.display());
        }
        std::iter::once(tiny).chain(default.is_file().then_some(default)).collect()
    }

    #[test]
    fn the_wordpiece_reader_builds_the_tokenizer_the_crate_builds() {
        for path in fixture_tokenizers() {
            let text = std::fs::read_to_string(&path).unwrap();
            let fast = read_wordpiece(&text).expect("a WordPiece tokenizer");
            let mut crate_read: Tokenizer = text.parse().unwrap();
            // Not read by design: rmx switches both off.
            crate_read.with_padding(None);
            crate_read.with_truncation(None).unwrap();
            // The serialisation holds every part: model and vocabulary, pipeline, added tokens.
            assert_eq!(fast.to_string(false).unwrap(), crate_read.to_string(false).unwrap(), "{}", path.display());
            for probe in ["Marie Curie was born in Warsaw.", "[CLS] naïve   café [MASK] x [SEP]", "unaffable ### 東京"] {
                assert_eq!(fast.encode(probe, true).unwrap().get_ids(), crate_read.encode(probe, true).unwrap().get_ids(), "{probe}");
            }
        }
    }

    #[test]
    fn other_models_and_versions_go_to_the_crate_reader() {
        let text = std::fs::read_to_string(&fixture_tokenizers()[0]).unwrap();
        let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
        json["version"] = "2.0".into();
        assert!(read_wordpiece(&json.to_string()).is_none());
        json["version"] = "1.0".into();
        json["model"]["type"] = "WordLevel".into();
        assert!(read_wordpiece(&json.to_string()).is_none());
        assert!(read_wordpiece(&text).is_some());
    }

    #[test]
    fn a_file_with_the_same_text_shares_the_tokenizer() {
        let path = &fixture_tokenizers()[0];
        let first = TextTokenizer::load(path).unwrap();
        let again = TextTokenizer::load_sharing(path, &[&first]).unwrap();
        assert!(Arc::ptr_eq(&first.inner, &again.inner));
        let dir = std::env::temp_dir().join(format!("rmx-tok-share-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let other = dir.join("tokenizer.json");
        std::fs::write(&other, std::fs::read_to_string(path).unwrap() + "\n").unwrap();
        let different = TextTokenizer::load_sharing(&other, &[&first]).unwrap();
        assert!(!Arc::ptr_eq(&first.inner, &different.inner));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
