//! Text → tokens: the tokenizer wrapper (and, for relation extraction, entity markers).
pub mod markers;
pub mod tokenizer;
