//! Evaluation of a model on labelled data: every example is matched against every candidate
//! relation (exact scores, no index) and the best one is the prediction.
use super::metrics::{macro_scores, Scores};
use crate::backend::Backend;
use crate::data::descriptions::Relation;
use crate::data::fewrel::Example;
use crate::error::{Error, Result};
use crate::model::rematch::Matcher;

/// Predicts a relation for each example among `candidates`; `batch` sentences per encoder
/// pass; `progress(done)` after each batch.
pub fn predict<B: Backend>(
    matcher: &Matcher<B>,
    examples: &[Example],
    candidates: &[Relation],
    batch: usize,
    mut progress: impl FnMut(usize),
) -> Result<Vec<usize>> {
    let relation_vectors = matcher.encode_relations(candidates, batch, |_| {})?;
    let mut predictions = Vec::with_capacity(examples.len());
    for chunk in examples.chunks(batch.max(1)) {
        let prepared = chunk.iter().map(|e| matcher.prepare(&e.instance)).collect::<Result<Vec<_>>>()?;
        for q in matcher.encode_queries(&prepared)? {
            let scores = relation_vectors.iter().map(|r| r.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>());
            let best = scores.enumerate().fold((0, f32::NEG_INFINITY), |best, (i, s)| if s > best.1 { (i, s) } else { best });
            predictions.push(best.0);
        }
        progress(predictions.len());
    }
    Ok(predictions)
}

/// Macro P/R/F1 and accuracy of `matcher` on the examples of `relations`, with those
/// relations as the candidates, or with every described relation when `all_candidates`.
pub fn evaluate<B: Backend>(
    matcher: &Matcher<B>,
    examples: &[Example],
    descriptions: &[Relation],
    relations: &[String],
    all_candidates: bool,
    batch: usize,
    progress: impl FnMut(usize),
) -> Result<Scores> {
    let candidate_ids: Vec<String> = if all_candidates { descriptions.iter().map(|r| r.id.clone()).collect() } else { relations.to_vec() };
    let candidates = candidate_ids
        .iter()
        .map(|id| descriptions.iter().find(|r| &r.id == id).cloned().ok_or_else(|| Error::InvalidData(format!("relation {id} has no description"))))
        .collect::<Result<Vec<_>>>()?;
    let test: Vec<Example> = examples.iter().filter(|e| relations.contains(&e.relation)).cloned().collect();
    if test.is_empty() {
        return Err(Error::InvalidData("no examples of the listed relations in the data".into()));
    }
    let predicted = predict(matcher, &test, &candidates, batch, progress)?;
    let predicted: Vec<&str> = predicted.iter().map(|&i| candidates[i].id.as_str()).collect();
    let gold: Vec<&str> = test.iter().map(|e| e.relation.as_str()).collect();
    Ok(macro_scores(&predicted, &gold))
}
