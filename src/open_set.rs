//! Labelled sentences answered through an index, as `rmx query` answers them (the index's
//! own search, HNSW or exact): ranking metrics for large label sets, and "no relation" as an
//! answer — a sentence whose gold relation is not in the index is right only when its best
//! score falls below the threshold (FewRel 2.0's none-of-the-above setting).
use crate::calibration::{names_relation, BestAnswer};
use crate::data::fewrel::Example;
use crate::engine::Engine;
use crate::error::Result;
use crate::train::metrics::macro_scores;

/// The label "no relation" is counted under in the macro scores.
pub const NO_RELATION: &str = "no relation";

/// One sentence's answers: its gold relation, the ids of its `k` best relations (best
/// first) and the best score.
#[derive(Debug, Clone)]
pub struct Judged {
    pub gold: String,
    pub ranked: Vec<String>,
    pub best_score: f32,
    /// Whether the gold relation is in the index.
    pub answerable: bool,
}

impl Judged {
    /// The gold relation's rank (0 = first) among the `k` answers.
    pub fn rank(&self) -> Option<usize> {
        self.ranked.iter().position(|id| *id == self.gold)
    }

    pub fn best(&self) -> BestAnswer {
        BestAnswer { score: self.best_score, correct: self.rank() == Some(0), answerable: self.answerable }
    }
}

/// Answers `examples` with the `k` best relations of `engine`'s index, `batch` sentences per
/// encoder pass; `progress(done)` after each batch.
pub fn judge(engine: &Engine, examples: &[Example], k: usize, batch: usize, mut progress: impl FnMut(usize)) -> Result<Vec<Judged>> {
    let mut judged = Vec::with_capacity(examples.len());
    for chunk in examples.chunks(batch.max(1)) {
        let instances: Vec<_> = chunk.iter().map(|e| e.instance.clone()).collect();
        for (example, answer) in chunk.iter().zip(engine.query_batch(&instances, k.max(1))?) {
            let matches = answer?;
            judged.push(Judged {
                gold: example.relation.clone(),
                ranked: matches.iter().map(|m| m.id.to_string()).collect(),
                best_score: matches.first().map_or(f32::NEG_INFINITY, |m| m.score),
                answerable: engine.index.row_of(&example.relation).is_some(),
            });
        }
        progress(judged.len());
    }
    Ok(judged)
}

/// What `rmx eval --index` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OpenSetScores {
    pub sentences: usize,
    /// Sentences whose gold relation is in the index; the ranking metrics are over these.
    pub answerable: usize,
    pub top1: f64,
    pub top10: f64,
    /// Mean reciprocal rank of the gold relation, 0 when it is not among the `k` answers.
    pub mrr: f64,
    /// The answers per sentence the ranking metrics saw.
    pub k: usize,
    /// The threshold the "no relation" metrics used (`None`: none, every best answer counts).
    pub min_score: Option<f32>,
    /// Accuracy over all sentences with "no relation" as a class.
    pub accuracy: f64,
    /// Macro precision, recall and F1 over the gold classes, "no relation" among them.
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

pub fn open_set_scores(judged: &[Judged], k: usize, min_score: Option<f32>) -> OpenSetScores {
    let answerable: Vec<&Judged> = judged.iter().filter(|j| j.answerable).collect();
    let share = |hit: &dyn Fn(&Judged) -> f64| answerable.iter().map(|j| hit(j)).sum::<f64>() / answerable.len().max(1) as f64;
    let top1 = share(&|j| f64::from(u8::from(j.rank() == Some(0))));
    let top10 = share(&|j| f64::from(u8::from(j.rank().is_some_and(|r| r < 10))));
    let mrr = share(&|j| j.rank().map_or(0.0, |r| 1.0 / (r + 1) as f64));
    let predicted: Vec<&str> = judged
        .iter()
        .map(|j| if names_relation(j.best_score, min_score) { j.ranked.first().map_or(NO_RELATION, String::as_str) } else { NO_RELATION })
        .collect();
    let gold: Vec<&str> = judged.iter().map(|j| if j.answerable { j.gold.as_str() } else { NO_RELATION }).collect();
    let macro_ = macro_scores(&predicted, &gold);
    OpenSetScores {
        sentences: judged.len(),
        answerable: answerable.len(),
        top1,
        top10,
        mrr,
        k,
        min_score,
        accuracy: macro_.accuracy,
        precision: macro_.precision,
        recall: macro_.recall,
        f1: macro_.f1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(gold: &str, ranked: &[&str], best_score: f32, answerable: bool) -> Judged {
        Judged { gold: gold.into(), ranked: ranked.iter().map(|s| s.to_string()).collect(), best_score, answerable }
    }

    #[test]
    fn ranking_and_no_relation_metrics() {
        let all = [
            judged("P1", &["P1", "P2"], 0.9, true),
            judged("P2", &["P1", "P2"], 0.8, true),
            judged("P3", &["P1", "P2"], 0.2, false),
            judged("P3", &["P2", "P1"], 0.7, false),
        ];
        let s = open_set_scores(&all, 2, Some(0.5));
        assert_eq!((s.answerable, s.top1, s.top10, s.mrr), (2, 0.5, 1.0, 0.75));
        assert_eq!(s.accuracy, 0.5, "P1 right; P2 wrong (answered P1); P3 once right (below), once wrong (above)");
        let none = open_set_scores(&all, 2, None);
        assert_eq!(none.accuracy, 0.25, "without a threshold no sentence answers no relation");
        let strict = open_set_scores(&all, 2, Some(1.0));
        assert_eq!(strict.accuracy, 0.5, "above every score: only the unanswerable ones are right");
    }
}
