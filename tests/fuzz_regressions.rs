//! Inputs on which a fuzz target (`fuzz/`, `scripts/fuzz.sh`) once crashed: each must now
//! give an error or a result, never a panic.
mod common;

use common::{fixture, TempDir};

/// `fuzz tokenizer`: a tokenizer.json whose decoder entry holds NUL bytes.
#[test]
fn tokenizer_with_nul_bytes_in_its_decoder() {
    let dir = TempDir::new("fuzz-tokenizer");
    let path = dir.join("tokenizer.json");
    std::fs::copy(fixture("fuzz/tokenizer-nul-bytes.json"), &path).unwrap();
    match rmx::text::tokenizer::TextTokenizer::load(&path) {
        Err(e @ rmx::Error::Model { .. }) => assert!(e.to_string().contains("invalid tokenizer"), "{e}"),
        other => panic!("expected an invalid-tokenizer error, got {:?}", other.map(|_| ())),
    }
}

/// `fuzz tokenizer`: a vocabulary with a hole (an id past the others) and the post-processor's
/// special token filed under another name (the tokenizers crate panicked at the first encoding).
#[test]
fn tokenizer_with_a_vocabulary_hole() {
    let dir = TempDir::new("fuzz-tokenizer-hole");
    let path = dir.join("tokenizer.json");
    std::fs::copy(fixture("fuzz/tokenizer-vocab-hole.json"), &path).unwrap();
    match rmx::text::tokenizer::TextTokenizer::load(&path) {
        Err(e @ rmx::Error::Model { .. }) => assert!(e.to_string().contains("invalid tokenizer"), "{e}"),
        other => panic!("expected an invalid-tokenizer error, got {:?}", other.map(|_| ())),
    }
}

/// `fuzz tokenizer`: an added token moved onto another token's id and two vocabulary entries
/// sharing an id (libFuzzer counts a panic even when rmx catches it: this one must load or
/// fail without one escaping).
#[test]
fn tokenizer_with_duplicate_ids() {
    let dir = TempDir::new("fuzz-tokenizer-dup");
    let path = dir.join("tokenizer.json");
    std::fs::copy(fixture("fuzz/tokenizer-duplicate-ids.json"), &path).unwrap();
    if let Ok(t) = rmx::text::tokenizer::TextTokenizer::load(&path) {
        let _ = t.encode("Marie Curie married Pierre Curie.");
        let _ = t.encode_words(&["Marie", "Curie", "married", "Pierre"]);
    }
}
