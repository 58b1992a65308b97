//! Entity markers: the head entity is wrapped in `#` … `#`, the tail in `@` … `@`, inserted
//! at word level in surface order; the sentence is then tokenized and the marker positions
//! are read from the tokenizer's word → token mapping (never by searching for the marker's
//! token id, so a literal `#` or `@` in the text is harmless).
use super::tokenizer::TextTokenizer;
use crate::error::{Error, Result};
use std::ops::Range;

pub const HEAD_MARKER: &str = "#";
pub const TAIL_MARKER: &str = "@";

/// A sentence split into words with the word ranges of its two entities.
#[derive(Debug, Clone, PartialEq)]
pub struct WordInstance {
    pub words: Vec<String>,
    /// `[start, end)` word indices, non-empty, not overlapping.
    pub head: Range<usize>,
    pub tail: Range<usize>,
}

/// A tokenized, marked instance: what the RE-Matching input side consumes.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkedTokens {
    /// Token ids with `[CLS]` … `[SEP]` and the four markers.
    pub ids: Vec<u32>,
    /// Position of the opening `#` and of the opening `@`.
    pub head_marker: usize,
    pub tail_marker: usize,
    /// Tokens strictly between each entity's markers.
    pub head: Range<usize>,
    pub tail: Range<usize>,
}

impl WordInstance {
    /// Splits `text` into words around byte spans `head` and `tail`: the text outside the
    /// entities is split on whitespace; each entity becomes its own words.
    pub fn from_text(text: &str, head: Range<usize>, tail: Range<usize>) -> Result<WordInstance> {
        check_span("head", &head, text)?;
        check_span("tail", &tail, text)?;
        if head.start < tail.end && tail.start < head.end {
            return Err(Error::Input(format!("head span {head:?} and tail span {tail:?} overlap")));
        }
        let (first, second, head_first) = if head.start < tail.start { (&head, &tail, true) } else { (&tail, &head, false) };
        let mut words = Vec::new();
        let mut push = |piece: &str| -> Range<usize> {
            let start = words.len();
            words.extend(piece.split_whitespace().map(str::to_string));
            start..words.len()
        };
        push(&text[..first.start]);
        let a = push(&text[first.clone()]);
        push(&text[first.end..second.start]);
        let b = push(&text[second.clone()]);
        push(&text[second.end..]);
        let (head_words, tail_words) = if head_first { (a, b) } else { (b, a) };
        if head_words.is_empty() || tail_words.is_empty() {
            return Err(Error::Input("an entity span holds only whitespace".into()));
        }
        Ok(WordInstance { words, head: head_words, tail: tail_words })
    }

    /// Validates pre-split words with `[start, end)` word spans. Empty or whitespace words are
    /// allowed (they produce no tokens); an entity made only of them is rejected by `mark`.
    pub fn from_words(words: Vec<String>, head: Range<usize>, tail: Range<usize>) -> Result<WordInstance> {
        for (name, span) in [("h", &head), ("t", &tail)] {
            if span.start >= span.end || span.end > words.len() {
                return Err(Error::Input(format!("{name}.pos {span:?} is empty or beyond the {} tokens", words.len())));
            }
        }
        if head.start < tail.end && tail.start < head.end {
            return Err(Error::Input(format!("h.pos {head:?} and t.pos {tail:?} overlap")));
        }
        Ok(WordInstance { words, head, tail })
    }

    /// Inserts the markers, tokenizes, and locates markers and entity tokens. Inputs longer
    /// than `max_tokens` are rejected (never silently cut: an entity could be lost).
    pub fn mark(&self, tokenizer: &TextTokenizer, max_tokens: usize) -> Result<MarkedTokens> {
        let mut words: Vec<&str> = Vec::with_capacity(self.words.len() + 4);
        // Word index (in `words`) of each marker.
        let (mut head_open, mut head_close, mut tail_open, mut tail_close) = (0, 0, 0, 0);
        for (i, w) in self.words.iter().enumerate() {
            if i == self.head.start {
                head_open = words.len();
                words.push(HEAD_MARKER);
            }
            if i == self.tail.start {
                tail_open = words.len();
                words.push(TAIL_MARKER);
            }
            words.push(w);
            if i + 1 == self.head.end {
                head_close = words.len();
                words.push(HEAD_MARKER);
            }
            if i + 1 == self.tail.end {
                tail_close = words.len();
                words.push(TAIL_MARKER);
            }
        }
        let encoding = tokenizer.encode_words(&words)?;
        if encoding.ids.len() > max_tokens {
            return Err(Error::Input(format!("text is {} tokens long; the model takes at most {max_tokens}", encoding.ids.len())));
        }
        let first_token = |word: usize| encoding.word_ids.iter().position(|&w| w == Some(word as u32));
        let located = (|| {
            let (ho, hc, to, tc) = (first_token(head_open)?, first_token(head_close)?, first_token(tail_open)?, first_token(tail_close)?);
            Some(MarkedTokens { head_marker: ho, tail_marker: to, head: ho + 1..hc, tail: to + 1..tc, ids: encoding.ids.clone() })
        })();
        match located {
            Some(m) if !m.head.is_empty() && !m.tail.is_empty() => Ok(m),
            _ => Err(Error::Input("an entity produced no tokens".into())),
        }
    }
}

fn check_span(name: &str, span: &Range<usize>, text: &str) -> Result<()> {
    if span.start >= span.end || span.end > text.len() {
        return Err(Error::Input(format!("{name} span {span:?} is empty or outside the text ({} bytes)", text.len())));
    }
    if !text.is_char_boundary(span.start) || !text.is_char_boundary(span.end) {
        return Err(Error::Input(format!("{name} span {span:?} does not fall on character boundaries")));
    }
    Ok(())
}

/// The byte span of the only occurrence of `entity` in `text`.
pub fn find_unique(text: &str, entity: &str, name: &str) -> Result<Range<usize>> {
    if entity.trim().is_empty() {
        return Err(Error::Input(format!("{name} entity is empty")));
    }
    let mut found = text.match_indices(entity);
    match (found.next(), found.next()) {
        (Some((start, _)), None) => Ok(start..start + entity.len()),
        (None, _) => Err(Error::Input(format!("{name} entity {entity:?} does not occur in the text"))),
        (Some(_), Some(_)) => Err(Error::Input(format!(
            "{name} entity {entity:?} occurs {} times in the text; give a character span instead",
            text.match_indices(entity).count()
        ))),
    }
}

/// Byte span of the character span `[start, end)` (Unicode scalar values) of `text`.
pub fn char_span_to_bytes(text: &str, start: usize, end: usize, name: &str) -> Result<Range<usize>> {
    let chars = text.chars().count();
    if start >= end || end > chars {
        return Err(Error::Input(format!("{name} span [{start}, {end}) is empty or outside the text ({chars} characters)")));
    }
    let byte_at = |c: usize| text.char_indices().nth(c).map_or(text.len(), |(b, _)| b);
    Ok(byte_at(start)..byte_at(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_around_entities_in_surface_order() {
        let text = "Marie Curie married Pierre Curie in 1895.";
        let w = WordInstance::from_text(text, 20..32, 0..11).unwrap();
        assert_eq!(w.words, ["Marie", "Curie", "married", "Pierre", "Curie", "in", "1895."]);
        assert_eq!((w.head.clone(), w.tail.clone()), (3..5, 0..2));
    }

    #[test]
    fn entity_inside_a_word_is_split_out() {
        let w = WordInstance::from_text("Curie's husband", 0..5, 8..15).unwrap();
        assert_eq!(w.words, ["Curie", "'s", "husband"]);
        assert_eq!((w.head, w.tail), (0..1, 2..3));
    }

    #[test]
    fn bad_spans_are_input_errors() {
        let text = "ab cd";
        assert!(WordInstance::from_text(text, 0..2, 1..4).is_err()); // overlap
        assert!(WordInstance::from_text(text, 0..9, 3..5).is_err()); // out of range
        assert!(WordInstance::from_text(text, 2..3, 3..5).is_err()); // whitespace only
        assert!(WordInstance::from_text("é x", 0..1, 3..4).is_err()); // not a char boundary
        assert!(WordInstance::from_words(vec!["a".into(), "b".into()], 0..1, 1..3).is_err());
        assert!(WordInstance::from_words(vec!["a".into(), "b".into()], 0..2, 1..2).is_err());
    }

    #[test]
    fn unique_occurrence_and_char_spans() {
        assert_eq!(find_unique("a bob b", "bob", "head").unwrap(), 2..5);
        assert!(find_unique("bob and bob", "bob", "head").unwrap_err().to_string().contains("2 times"));
        assert!(find_unique("alice", "bob", "head").is_err());
        assert_eq!(char_span_to_bytes("Zoë a", 0, 3, "head").unwrap(), 0..4);
        assert_eq!(char_span_to_bytes("Zoë a", 4, 5, "head").unwrap(), 5..6);
        assert!(char_span_to_bytes("Zoë", 2, 9, "head").is_err());
    }
}
