//! The description side: three texts per relation, each embedded by the (frozen) sentence
//! encoder, combined into the relation's unit index vector.
//!
//! - `d_ctx`: the description;
//! - `d_h`: the head keywords, as "the entity types including " + keywords joined by " and "
//!   (the RE-Matching template, used with trained heads), or joined by " , " (the
//!   zero-training default, see `zero_shot`);
//! - `d_t`: the same for the tail keywords.
//!
//! Rule for a missing or empty keyword list: that part uses the description's embedding
//! (the entity is then compared with what the relation says), so every relation keeps three
//! parts and a unit vector.
use super::scoring::{combine_parts, PartWeights};
use super::sentence::SentenceEncoder;
use crate::data::descriptions::Relation;
use crate::error::Result;

pub const TYPE_TEMPLATE: &str = "the entity types including ";

/// How entity-type keywords become text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DescriptionStyle {
    #[default]
    /// "the entity types including A and B" (RE-Matching).
    TypeTemplate,
    /// "A , B" (the zero-training default).
    KeywordList,
}

/// The texts to embed for `relation`: description, head types, tail types (`None` = use the
/// description's embedding).
pub fn description_texts(relation: &Relation, style: DescriptionStyle) -> [Option<String>; 3] {
    let types = |words: &[String]| {
        (!words.is_empty()).then(|| match style {
            DescriptionStyle::TypeTemplate => format!("{TYPE_TEMPLATE}{}", words.join(" and ")),
            DescriptionStyle::KeywordList => words.join(super::zero_shot::KEYWORD_SEPARATOR),
        })
    };
    [Some(relation.description.clone()), types(&relation.head), types(&relation.tail)]
}

/// Unit vectors `[3d]` of `relations`, encoded `batch` relations at a time; `progress(n)` is
/// called after every batch with the number of relations done.
pub fn encode_relations(
    encoder: &SentenceEncoder,
    relations: &[Relation],
    style: DescriptionStyle,
    weights: PartWeights,
    batch: usize,
    mut progress: impl FnMut(usize),
) -> Result<Vec<Vec<f32>>> {
    let mut vectors = Vec::with_capacity(relations.len());
    for chunk in relations.chunks(batch.max(1)) {
        let texts: Vec<[Option<String>; 3]> = chunk.iter().map(|r| description_texts(r, style)).collect();
        let flat: Vec<&str> = texts.iter().flatten().flatten().map(String::as_str).collect();
        let mut embedded = encoder.embed_texts(&flat)?.into_iter();
        for t in &texts {
            let ctx = embedded.next().expect("one embedding per description");
            let head = if t[1].is_some() { embedded.next().expect("head embedding") } else { ctx.clone() };
            let tail = if t[2].is_some() { embedded.next().expect("tail embedding") } else { ctx.clone() };
            vectors.push(combine_parts([&ctx, &head, &tail], weights));
        }
        progress(vectors.len());
    }
    Ok(vectors)
}
