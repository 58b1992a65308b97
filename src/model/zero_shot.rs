//! The zero-training default: RE-Matching's three-part score computed from a plain
//! pretrained sentence encoder, with no trained heads.
//!
//! Chosen by measurement on FewRel val_wiki (all 11,200 sentences; see ARCHITECTURE.md):
//! - context `c`: the mean of the sentence's last hidden states over the word pieces of the
//!   words strictly between the two entities (the words spanning both entities when they are
//!   adjacent); the sentence is encoded without markers (pretrained marker states carry no
//!   relation information);
//! - head `h` / tail `t`: the sentence embedding of the entity's words alone;
//! - description side: `d_ctx` = the description, `d_h`/`d_t` = the keyword list joined by
//!   " , " (a plain list beats the "the entity types including" template here);
//! - weights (context, head, tail) = (0.5, 0.2, 0.3).
//!
//! A relation described by text alone (no keyword list on either side, e.g. Wikidata's
//! properties: a label and a description) is matched differently, chosen by measurement on
//! FewRel val_wiki against all 11,665 Wikidata properties (docs/large-label-sets.md):
//! - `d_ctx` = "label: description" embedded as one text (the words between the entities
//!   name the relation the way a label does: "born in" ~ "place of birth");
//! - `d_h` = nothing (a zero part: an entity compared with a whole description rewards any
//!   description that mentions a person);
//! - `d_t` = the label (Wikidata's labels mostly name the object: "place of birth", "sport");
//! - a hubness correction (`hubness`): each such relation's score is lowered by its
//!   similarity to the mean of the label set, so that the dense clusters of near-identical
//!   descriptions ("… identifier for a person in the X database") stop winning every query.
//!
//! A relation whose name is only its id (no label) uses its description for `d_t` too.
//!
//! All `3n` sequences of a batch (sentences, heads, tails) run in one packed encoder pass.
use super::bert::PackedBatch;
use super::description::{labelled_description, part_texts, DescriptionStyle, PartTexts};
use super::scoring::{combine_parts, PartWeights};
use super::sentence::SentenceEncoder;
use crate::backend::Backend;
use crate::data::descriptions::Relation;
use crate::error::{Error, Result};
use crate::text::markers::WordInstance;

pub const WEIGHTS: PartWeights = PartWeights { context: 0.5, head: 0.2, tail: 0.3 };
pub const KEYWORD_SEPARATOR: &str = " , ";

/// Whether `relation` is described by text alone (no entity-type keywords on either side).
pub fn is_text_only(relation: &Relation) -> bool {
    relation.head.is_empty() && relation.tail.is_empty()
}

/// The texts of a relation's three parts in the zero-training default (see the module notes).
pub fn relation_texts(relation: &Relation) -> PartTexts {
    if !is_text_only(relation) {
        return part_texts(relation, DescriptionStyle::KeywordList);
    }
    match labelled_description(relation) {
        Some(text) => [vec![text], Vec::new(), vec![relation.name.clone()]],
        None => [vec![relation.description.clone()], Vec::new(), vec![relation.description.clone()]],
    }
}

/// One tokenized query of the zero-training default.
#[derive(Debug, Clone, PartialEq)]
pub struct PlainQuery {
    /// The sentence without markers, `[CLS]` … `[SEP]`.
    pub sentence: Vec<u32>,
    /// Positions in `sentence` whose states average into `c` (non-empty).
    pub context: Vec<usize>,
    pub head: Vec<u32>,
    pub tail: Vec<u32>,
}

/// Tokenizes an instance; text longer than `max_tokens` is an input error.
pub fn prepare<B: Backend>(encoder: &SentenceEncoder<B>, instance: &WordInstance, max_tokens: usize) -> Result<PlainQuery> {
    let words: Vec<&str> = instance.words.iter().map(String::as_str).collect();
    let encoding = encoder.tokenizer.encode_words(&words)?;
    if encoding.ids.len() > max_tokens {
        return Err(Error::Input(format!("text is {} tokens long; the model takes at most {max_tokens}", encoding.ids.len())));
    }
    let (first, second) = if instance.head.start < instance.tail.start { (&instance.head, &instance.tail) } else { (&instance.tail, &instance.head) };
    let select = |lo: usize, hi: usize| -> Vec<usize> {
        let in_range = |w: &Option<u32>| w.is_some_and(|w| (lo..hi).contains(&(w as usize)));
        encoding.word_ids.iter().enumerate().filter(|(_, w)| in_range(w)).map(|(i, _)| i).collect()
    };
    let mut context = select(first.end, second.start);
    if context.is_empty() {
        context = select(first.start, second.end);
    }
    if context.is_empty() {
        return Err(Error::Input("the entities produced no tokens".into()));
    }
    let entity = |span: &std::ops::Range<usize>| encoder.tokenize(&instance.words[span.clone()].join(" ")).map(|t| t.ids);
    Ok(PlainQuery { sentence: encoding.ids, context, head: entity(&instance.head)?, tail: entity(&instance.tail)? })
}

/// Query vectors `[3d]` combined with `weights` (unit for [`WEIGHTS`]). What comes to the
/// host: the pooled entity rows and each sentence's context rows.
pub fn encode<B: Backend>(encoder: &SentenceEncoder<B>, queries: &[&PlainQuery], weights: PartWeights) -> Result<Vec<Vec<f32>>> {
    let n = queries.len();
    let sequences: Vec<&[u32]> =
        queries.iter().map(|q| &q.sentence[..]).chain(queries.iter().map(|q| &q.head[..])).chain(queries.iter().map(|q| &q.tail[..])).collect();
    let batch = PackedBatch::new(&sequences);
    // hidden: [T × d]
    let hidden = encoder.bert.forward(&batch)?;
    let d = encoder.dim();
    // pooled: [3n × d] (only the entity rows [2n × d] come to the host)
    let mut pooled = B::zeros(3 * n * d);
    B::mean_pool_forward(&hidden, &batch.starts, d, &mut pooled);
    let entities = B::to_host(B::slice(&pooled, n * d..3 * n * d))?;
    queries
        .iter()
        .enumerate()
        .map(|(i, q)| {
            // The rows from the first context position to the last, on the host.
            let (first, end) = (q.context.iter().min().map_or(0, |&p| p), q.context.iter().max().map_or(0, |&p| p + 1));
            let span = B::to_host(B::slice(&hidden, (batch.starts[i] + first) * d..(batch.starts[i] + end) * d))?;
            let mut context = vec![0.0f32; d];
            for &p in &q.context {
                let row = &span[(p - first) * d..][..d];
                context.iter_mut().zip(row).for_each(|(c, v)| *c += v);
            }
            let head = &entities[i * d..][..d];
            let tail = &entities[(n + i) * d..][..d];
            Ok(combine_parts([&context, head, tail], weights))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relation(name: &str, head: &[&str], tail: &[&str]) -> Relation {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect();
        Relation { id: "P19".into(), name: name.into(), description: "birth location".into(), head: words(head), tail: words(tail) }
    }

    #[test]
    fn text_only_relations_match_label_and_description() {
        let texts = |r: &Relation| relation_texts(r).map(|p| p.join("|"));
        assert_eq!(texts(&relation("place of birth", &[], &[])), ["place of birth: birth location", "", "place of birth"]);
        assert_eq!(texts(&relation("P19", &[], &[])), ["birth location", "", "birth location"], "no label: the description");
        assert_eq!(texts(&relation("place of birth", &["person"], &[])), ["birth location", "person", "birth location"], "keywords: as before");
        assert_eq!(texts(&relation("place of birth", &["person"], &["city", "town"])), ["birth location", "person", "city , town"]);
    }
}
