//! Inputs on which a fuzz target (`fuzz/`, `scripts/fuzz.sh`) once crashed: each must now
//! give an error or a result, never a panic.
mod common;

use common::{fixture, TempDir};
use rmx::text::tokenizer::TextTokenizer;

/// Loads `tests/fixtures/fuzz/NAME` as a model's tokenizer.json and, if that succeeds,
/// tokenizes with it.
fn load_tokenizer(name: &str) -> rmx::Result<TextTokenizer> {
    let dir = TempDir::new("fuzz-tokenizer");
    let path = dir.join("tokenizer.json");
    std::fs::copy(fixture(&format!("fuzz/{name}")), &path).unwrap();
    let t = TextTokenizer::load(&path)?;
    let _ = t.encode("Marie Curie married Pierre Curie.");
    let _ = t.encode_words(&["Marie", "Curie", "married", "Pierre"]);
    Ok(t)
}

fn assert_invalid_tokenizer(result: rmx::Result<TextTokenizer>) {
    match result {
        Err(e @ rmx::Error::Model { .. }) => assert!(e.to_string().contains("invalid tokenizer"), "{e}"),
        other => panic!("expected an invalid-tokenizer error, got {:?}", other.map(|_| ())),
    }
}

/// `fuzz tokenizer`: a tokenizer.json whose decoder entry holds NUL bytes.
#[test]
fn tokenizer_with_nul_bytes_in_its_decoder() {
    assert_invalid_tokenizer(load_tokenizer("tokenizer-nul-bytes.json"));
}

/// `fuzz tokenizer`: a vocabulary with a hole (an id past the others) and the post-processor's
/// special token filed under another name (the tokenizers crate panicked at the first encoding).
#[test]
fn tokenizer_with_a_vocabulary_hole() {
    assert_invalid_tokenizer(load_tokenizer("tokenizer-vocab-hole.json"));
}

/// `fuzz tokenizer`: an added token moved onto another token's id and two vocabulary entries
/// sharing an id (libFuzzer counts a panic even when rmx catches it: this one must load or
/// fail without one escaping).
#[test]
fn tokenizer_with_duplicate_ids() {
    let _ = load_tokenizer("tokenizer-duplicate-ids.json");
}
