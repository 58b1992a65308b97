//! The description side: three texts per relation, each embedded by the (frozen) sentence
//! encoder, combined into the relation's unit index vector.
//!
//! - `d_ctx`: the description ("label: description" for a labelled relation described by
//!   text alone, e.g. a Wikidata property);
//! - `d_h`: the head keywords, as "the entity types including " + keywords joined by " and "
//!   (the RE-Matching template, used with trained heads), or joined by " , " (the
//!   zero-training default, see `zero_shot`);
//! - `d_t`: the same for the tail keywords.
//!
//! Rule for a missing or empty keyword list: that part uses the description's embedding
//! (the entity is then compared with what the relation says), so every relation keeps three
//! parts and a unit vector. (The zero-training default treats a relation with no keyword
//! list at all differently: `zero_shot::relation_texts`.)
use super::scoring::{combine_parts, PartWeights};
use super::sentence::SentenceEncoder;
use crate::backend::Backend;
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
    [Some(labelled_description(relation).unwrap_or_else(|| relation.description.clone())), types(&relation.head), types(&relation.tail)]
}

/// "label: description" for a relation described by text alone (no keyword list on either
/// side) that has a label (a name other than its id); `None` otherwise. Labels name the
/// relation the way the words between two entities do ("born in" ~ "place of birth").
pub fn labelled_description(relation: &Relation) -> Option<String> {
    let text_only = relation.head.is_empty() && relation.tail.is_empty();
    let labelled = !relation.name.trim().is_empty() && relation.name != relation.id;
    (text_only && labelled).then(|| format!("{}: {}", relation.name, relation.description))
}

/// The texts whose embeddings, summed, make each of a relation's three parts (context,
/// head, tail); an empty list makes a zero part.
pub type PartTexts = [Vec<String>; 3];

/// [`description_texts`] as part texts: a missing keyword list becomes the description.
pub fn part_texts(relation: &Relation, style: DescriptionStyle) -> PartTexts {
    let [text, head, tail] = description_texts(relation, style);
    let text = text.expect("a relation always has a description");
    let or_text = |part: Option<String>| vec![part.unwrap_or_else(|| text.clone())];
    [vec![text.clone()], or_text(head), or_text(tail)]
}

/// Unit vectors `[3d]` of `relations`, encoded `batch` relations at a time; `progress(n)` is
/// called after every batch with the number of relations done.
pub fn encode_relations<B: Backend>(
    encoder: &SentenceEncoder<B>,
    relations: &[Relation],
    style: DescriptionStyle,
    weights: PartWeights,
    batch: usize,
    progress: impl FnMut(usize),
) -> Result<Vec<Vec<f32>>> {
    encode_part_texts(encoder, relations, |r| part_texts(r, style), weights, batch, progress)
}

/// Vectors `[3d]` of `relations` whose parts are made by `texts` (unit unless a part is
/// zero); each distinct text of a relation is embedded once.
pub fn encode_part_texts<B: Backend>(
    encoder: &SentenceEncoder<B>,
    relations: &[Relation],
    texts: impl Fn(&Relation) -> PartTexts,
    weights: PartWeights,
    batch: usize,
    mut progress: impl FnMut(usize),
) -> Result<Vec<Vec<f32>>> {
    let d = encoder.dim();
    let mut vectors = Vec::with_capacity(relations.len());
    for chunk in relations.chunks(batch.max(1)) {
        let parts: Vec<PartTexts> = chunk.iter().map(&texts).collect();
        let distinct: Vec<Vec<&str>> = parts
            .iter()
            .map(|p| {
                let mut seen: Vec<&str> = Vec::new();
                for t in p.iter().flatten().map(String::as_str) {
                    if !seen.contains(&t) {
                        seen.push(t);
                    }
                }
                seen
            })
            .collect();
        let flat: Vec<&str> = distinct.iter().flatten().copied().collect();
        let embedded = encoder.embed_texts(&flat)?;
        let mut at = 0;
        for (p, own) in parts.iter().zip(&distinct) {
            let rows = &embedded[at..at + own.len()];
            at += own.len();
            let sum = |list: &[String]| {
                let mut part = vec![0.0f32; d];
                for t in list {
                    let row = &rows[own.iter().position(|o| o == t).expect("every text was embedded")];
                    part.iter_mut().zip(row).for_each(|(s, v)| *s += v);
                }
                part
            };
            vectors.push(combine_parts([&sum(&p[0]), &sum(&p[1]), &sum(&p[2])], weights));
        }
        progress(vectors.len());
    }
    Ok(vectors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relation(id: &str, name: &str, head: &[&str]) -> Relation {
        let head = head.iter().map(|s| s.to_string()).collect();
        Relation { id: id.into(), name: name.into(), description: "birth location".into(), head, tail: Vec::new() }
    }

    #[test]
    fn a_labelled_text_only_relation_is_described_with_its_label() {
        let text = |r: &Relation| description_texts(r, DescriptionStyle::TypeTemplate)[0].clone().unwrap();
        assert_eq!(text(&relation("P19", "place of birth", &[])), "place of birth: birth location");
        assert_eq!(text(&relation("P19", "P19", &[])), "birth location", "no label: the description");
        assert_eq!(text(&relation("P19", " ", &[])), "birth location");
        assert_eq!(text(&relation("P19", "place of birth", &["person"])), "birth location", "keywords: the description, as in RE-Matching");
    }
}
