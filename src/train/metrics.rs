//! Evaluation metrics exactly as the reference code computes them (ZS-BERT's
//! `compute_macro_PRF`, used by RE-Matching): per gold class `c`, precision
//! `tp_c / predicted_c` (0 when never predicted) and recall `tp_c / gold_c`; the precisions
//! are summed over the gold classes and divided by the number of distinct *predicted*
//! classes, the recalls averaged over the gold classes, and `F1 = 2PR / (P + R)`.
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClassScores {
    pub relation: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub gold: usize,
    pub predicted: usize,
    pub correct: usize,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Scores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub accuracy: f64,
    pub per_relation: Vec<ClassScores>,
}

fn f1(p: f64, r: f64) -> f64 {
    if p + r > 0.0 {
        2.0 * p * r / (p + r)
    } else {
        0.0
    }
}

/// Scores of `predicted` against `gold` (same length, one label per example).
pub fn macro_scores(predicted: &[&str], gold: &[&str]) -> Scores {
    assert_eq!(predicted.len(), gold.len());
    let mut counts: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new(); // gold, predicted, correct
    for (&p, &g) in predicted.iter().zip(gold) {
        counts.entry(g).or_default().0 += 1;
        counts.entry(p).or_default().1 += 1;
        if p == g {
            counts.entry(g).or_default().2 += 1;
        }
    }
    let gold_classes: BTreeSet<&str> = gold.iter().copied().collect();
    let predicted_classes: BTreeSet<&str> = predicted.iter().copied().collect();
    let per_relation: Vec<ClassScores> = gold_classes
        .iter()
        .map(|&c| {
            let (g, p, tp) = counts[c];
            let precision = if p > 0 { tp as f64 / p as f64 } else { 0.0 };
            let recall = tp as f64 / g as f64;
            ClassScores { relation: c.to_string(), precision, recall, f1: f1(precision, recall), gold: g, predicted: p, correct: tp }
        })
        .collect();
    let precision = if predicted_classes.is_empty() { 0.0 } else { per_relation.iter().map(|c| c.precision).sum::<f64>() / predicted_classes.len() as f64 };
    let recall = if gold_classes.is_empty() { 0.0 } else { per_relation.iter().map(|c| c.recall).sum::<f64>() / gold_classes.len() as f64 };
    let correct = predicted.iter().zip(gold).filter(|(p, g)| p == g).count();
    let accuracy = if gold.is_empty() { 0.0 } else { correct as f64 / gold.len() as f64 };
    Scores { precision, recall, f1: f1(precision, recall), accuracy, per_relation }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_formula_by_hand() {
        // gold:      a a a b b c
        // predicted: a a b b d c   ('d' is predicted but never gold)
        let gold = ["a", "a", "a", "b", "b", "c"];
        let pred = ["a", "a", "b", "b", "d", "c"];
        let s = macro_scores(&pred, &gold);
        // precisions over gold classes: a 2/2, b 1/2, c 1/1 → sum 2.5, over 4 predicted classes.
        assert!((s.precision - 2.5 / 4.0).abs() < 1e-12);
        // recalls: a 2/3, b 1/2, c 1/1 → mean over 3 gold classes.
        assert!((s.recall - (2.0 / 3.0 + 0.5 + 1.0) / 3.0).abs() < 1e-12);
        assert!((s.f1 - 2.0 * s.precision * s.recall / (s.precision + s.recall)).abs() < 1e-12);
        assert!((s.accuracy - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(s.per_relation.len(), 3);
    }
}
