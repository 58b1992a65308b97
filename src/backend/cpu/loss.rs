//! Training losses: softmax cross-entropy, RE-Matching's margin loss with the hardest
//! in-batch negative, and a contrastive (InfoNCE) alternative to it. Each `*_backward`
//! takes `d_loss`, the gradient of the (mean) loss (1 for the objective itself, a weight
//! when losses are summed), and accumulates (`+=`).

/// Mean softmax cross-entropy of `logits: [n × classes]` against `labels: [n]`:
/// `L = (1/n) Σ_i (logsumexp(z_i) − z_i,y_i)`. 0 for an empty batch.
pub fn cross_entropy_forward(logits: &[f32], classes: usize, labels: &[u32]) -> f32 {
    let n = check_logits(logits, classes, labels);
    if n == 0 {
        return 0.0;
    }
    let total: f64 = logits
        .chunks_exact(classes)
        .zip(labels)
        .map(|(z, &y)| {
            let max = z.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let lse = max + z.iter().map(|&v| (v - max).exp()).sum::<f32>().ln();
            (lse - z[y as usize]) as f64
        })
        .sum();
    (total / n as f64) as f32
}

/// Backward of [`cross_entropy_forward`]: `d_logits += d_loss · (softmax(z_i) − onehot(y_i)) / n`.
pub fn cross_entropy_backward(logits: &[f32], classes: usize, labels: &[u32], d_loss: f32, d_logits: &mut [f32]) {
    let n = check_logits(logits, classes, labels);
    assert_eq!(d_logits.len(), logits.len());
    if n == 0 {
        return;
    }
    let scale = d_loss / n as f32;
    for ((z, g), &y) in logits.chunks_exact(classes).zip(d_logits.chunks_exact_mut(classes)).zip(labels) {
        let max = z.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let sum: f32 = z.iter().map(|&v| (v - max).exp()).sum();
        for (c, (g, &v)) in g.iter_mut().zip(z).enumerate() {
            let p = (v - max).exp() / sum;
            *g += scale * (p - if c == y as usize { 1.0 } else { 0.0 });
        }
    }
}

fn check_logits(logits: &[f32], classes: usize, labels: &[u32]) -> usize {
    assert!(classes > 0 && logits.len() == labels.len() * classes, "logits are not [n × classes]");
    assert!(labels.iter().all(|&y| (y as usize) < classes), "label out of range");
    labels.len()
}

/// The hardest negative of a row: `(column, score)` of the largest score among the columns
/// marked in `negatives` (the first on ties), `None` when none is marked.
fn hardest_negative(row: &[f32], negatives: &[bool]) -> Option<(usize, f32)> {
    row.iter().zip(negatives).enumerate().filter(|&(_, (_, &neg))| neg).fold(None, |best, (j, (&s, _))| match best {
        Some((_, b)) if b >= s => best,
        _ => Some((j, s)),
    })
}

/// Per row: the loss term `max(0, γ − s_pos + max(0, s_neg))` and the hardest negative.
fn matching_term(row: &[f32], positive: usize, negatives: &[bool], gamma: f32) -> (f32, Option<(usize, f32)>) {
    let neg = hardest_negative(row, negatives);
    let neg_part = neg.map_or(0.0, |(_, s)| s.max(0.0));
    ((gamma - row[positive] + neg_part).max(0.0), neg)
}

fn check_scores(scores: &[f32], m: usize, positives: &[u32], negatives: &[bool]) -> usize {
    assert!(m > 0 && scores.len() == positives.len() * m, "scores are not [n × m]");
    assert_eq!(negatives.len(), scores.len(), "negative mask is not [n × m]");
    assert!(positives.iter().all(|&p| (p as usize) < m), "positive column out of range");
    assert!(positives.iter().zip(negatives.chunks_exact(m)).all(|(&p, neg)| !neg[p as usize]), "a sample's positive is marked as its negative");
    positives.len()
}

/// Every column but the positive is a negative: the mask for [`matching_loss_forward`] when
/// each sample is matched against all relations of the batch.
pub fn all_other_columns(m: usize, positives: &[u32]) -> Vec<bool> {
    positives.iter().flat_map(|&p| (0..m).map(move |j| j != p as usize)).collect()
}

/// The matching loss with the hardest negative, mean over the batch:
/// `L = (1/n) Σ_i max(0, γ − s(i, r_i) + max(0, max_{j ∈ N_i} s(i, j)))`.
///
/// `scores: [n × m]` are the scores of the `n` samples against `m` distinct relations
/// (e.g. from `cosine_scores_forward`), `positives: [n]` the column of each sample's own
/// relation, `negatives: [n × m]` marks the candidate negatives `N_i` of each sample (never
/// its positive; an empty `N_i` makes the term `max(0, γ − s_pos)`). 0 for an empty batch.
pub fn matching_loss_forward(scores: &[f32], m: usize, positives: &[u32], negatives: &[bool], gamma: f32) -> f32 {
    mean_of_rows(scores, m, positives, negatives, |row, p, neg| matching_term(row, p, neg, gamma).0)
}

/// Backward of [`matching_loss_forward`], `d_scores += d_loss · ∂L/∂scores`: for a sample
/// whose term is positive, `−1/n` to its positive's score and, when the hardest negative's
/// score is positive, `+1/n` to that negative only (the subgradient 0 at the kinks).
pub fn matching_loss_backward(scores: &[f32], m: usize, positives: &[u32], negatives: &[bool], gamma: f32, d_loss: f32, d_scores: &mut [f32]) {
    for_each_row_gradient(scores, m, positives, negatives, d_scores, |row, p, neg, ds, n| {
        let g = d_loss / n as f32;
        let (term, hardest) = matching_term(row, p, neg, gamma);
        if term > 0.0 {
            ds[p] -= g;
            if let Some((j, s)) = hardest {
                if s > 0.0 {
                    ds[j] += g;
                }
            }
        }
    });
}

/// The contrastive (InfoNCE) matching loss, mean over the batch: each sample's softmax over
/// its positive and its candidate negatives at temperature `τ`,
/// `L = (1/n) Σ_i −log( e^{s(i,r_i)/τ} / Σ_{j ∈ {r_i} ∪ N_i} e^{s(i,j)/τ} )`.
/// Unlike the margin loss it never saturates and every negative gets a gradient in
/// proportion to how close it is. Arguments as [`matching_loss_forward`].
pub fn contrastive_loss_forward(scores: &[f32], m: usize, positives: &[u32], negatives: &[bool], temperature: f32) -> f32 {
    mean_of_rows(scores, m, positives, negatives, |row, p, neg| {
        let (max, sum) = candidate_softmax_norm(row, p, neg, temperature);
        max + sum.ln() - row[p] / temperature
    })
}

/// Backward of [`contrastive_loss_forward`]: `d_scores += d_loss · (softmax − onehot) / (n τ)`
/// over each row's candidates (0 outside them).
pub fn contrastive_loss_backward(scores: &[f32], m: usize, positives: &[u32], negatives: &[bool], temperature: f32, d_loss: f32, d_scores: &mut [f32]) {
    for_each_row_gradient(scores, m, positives, negatives, d_scores, |row, p, neg, ds, n| {
        let g = d_loss / (n as f32 * temperature);
        let (max, sum) = candidate_softmax_norm(row, p, neg, temperature);
        for (j, (d, &s)) in ds.iter_mut().zip(row).enumerate() {
            if j == p || neg[j] {
                let prob = (s / temperature - max).exp() / sum;
                *d += g * (prob - if j == p { 1.0 } else { 0.0 });
            }
        }
    });
}

/// The mean over the batch of `term(row, positive, negatives)` (0 for an empty batch), after
/// checking the shapes: the forward of every matching loss.
fn mean_of_rows(scores: &[f32], m: usize, positives: &[u32], negatives: &[bool], term: impl Fn(&[f32], usize, &[bool]) -> f32) -> f32 {
    let n = check_scores(scores, m, positives, negatives);
    if n == 0 {
        return 0.0;
    }
    let total: f64 = scores.chunks_exact(m).zip(positives).zip(negatives.chunks_exact(m)).map(|((row, &p), neg)| term(row, p as usize, neg) as f64).sum();
    (total / n as f64) as f32
}

/// Calls `gradient(row, positive, negatives, d_row, n)` for every row of the batch of `n`,
/// after checking the shapes: the backward of every matching loss adds into `d_row`.
fn for_each_row_gradient(
    scores: &[f32],
    m: usize,
    positives: &[u32],
    negatives: &[bool],
    d_scores: &mut [f32],
    mut gradient: impl FnMut(&[f32], usize, &[bool], &mut [f32], usize),
) {
    let n = check_scores(scores, m, positives, negatives);
    assert_eq!(d_scores.len(), scores.len());
    for (((row, ds), &p), neg) in scores.chunks_exact(m).zip(d_scores.chunks_exact_mut(m)).zip(positives).zip(negatives.chunks_exact(m)) {
        gradient(row, p as usize, neg, ds, n);
    }
}

/// `(max, Σ exp(s/τ − max))` over a row's candidates (the positive and the marked negatives).
fn candidate_softmax_norm(row: &[f32], positive: usize, negatives: &[bool], temperature: f32) -> (f32, f32) {
    let candidates = || row.iter().enumerate().filter(move |&(j, _)| j == positive || negatives[j]).map(move |(_, &s)| s / temperature);
    let max = candidates().fold(f32::NEG_INFINITY, f32::max);
    (max, candidates().map(|z| (z - max).exp()).sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use crate::train::objective::MATCHING_MARGIN;

    fn cross_entropy64(z: &[f64], classes: usize, labels: &[u32]) -> f64 {
        let n = labels.len() as f64;
        z.chunks(classes)
            .zip(labels)
            .map(|(z, &y)| {
                let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln() - z[y as usize]
            })
            .sum::<f64>()
            / n
    }

    #[test]
    fn cross_entropy_matches_f64_and_finite_differences() {
        for (n, classes) in [(1, 1), (1, 2), (5, 3), (7, 11)] {
            let mut rng = Rng::new((n * 31 + classes) as u64);
            let logits = rng.normals(n * classes, 3.0);
            let labels: Vec<u32> = (0..n).map(|_| rng.below(classes) as u32).collect();
            let z64 = to_f64(&logits);
            let loss = cross_entropy_forward(&logits, classes, &labels);
            assert_close("loss", &[loss], &[cross_entropy64(&z64, classes, &labels)], 1e-5, 1e-5);
            let d_loss = 0.75;
            let want = numeric_grad(&z64, FD_STEP, |z| d_loss * cross_entropy64(z, classes, &labels));
            let mut dz = vec![1.0f32; logits.len()];
            cross_entropy_backward(&logits, classes, &labels, d_loss as f32, &mut dz);
            dz.iter_mut().for_each(|g| *g -= 1.0);
            assert_grad("dlogits", &dz, &want);
        }
        assert_eq!(cross_entropy_forward(&[], 3, &[]), 0.0);
    }

    fn matching64(s: &[f64], m: usize, positives: &[u32], negatives: &[bool], gamma: f64) -> f64 {
        let terms: Vec<f64> = s
            .chunks(m)
            .zip(positives)
            .zip(negatives.chunks(m))
            .map(|((row, &p), neg)| {
                let top = row.iter().zip(neg).filter(|(_, &n)| n).map(|(&v, _)| v).fold(0.0, f64::max);
                (gamma - row[p as usize] + top).max(0.0)
            })
            .collect();
        terms.iter().sum::<f64>() / terms.len() as f64
    }

    /// Scores away from every kink (ties among negatives, `max_neg = 0`, a zero term), so that
    /// finite differences are well defined, covering each case of the loss. With `sparse`,
    /// each non-positive column is a negative with probability ½ (so some rows have none),
    /// else every other column is.
    fn kink_free_scores(n: usize, m: usize, sparse: bool, seed: u64) -> (Vec<f32>, Vec<u32>, Vec<bool>) {
        for attempt in 0.. {
            let mut rng = Rng::new(seed * 1000 + attempt);
            let s: Vec<f32> = (0..n * m).map(|_| rng.uniform() * 0.6 - 0.3).collect();
            let positives: Vec<u32> = (0..n).map(|_| rng.below(m) as u32).collect();
            let mut negatives = all_other_columns(m, &positives);
            if sparse {
                negatives.iter_mut().for_each(|v| *v &= rng.uniform() < 0.5);
            }
            let mut ok = true;
            let (mut inactive, mut active_pos_neg, mut active_neg_neg) = (false, false, false);
            for ((row, &p), neg) in s.chunks(m).zip(&positives).zip(negatives.chunks(m)) {
                let mut negs: Vec<f32> = row.iter().zip(neg).filter(|(_, &n)| n).map(|(&v, _)| v).collect();
                negs.sort_by(f32::total_cmp);
                let top = negs.last().copied();
                let term = MATCHING_MARGIN - row[p as usize] + top.map_or(0.0, |v| v.max(0.0));
                ok &= term.abs() > 1e-3 && top.is_none_or(|v| v.abs() > 1e-3);
                ok &= negs.windows(2).all(|w| w[1] - w[0] > 1e-4);
                inactive |= term < 0.0;
                active_pos_neg |= term > 0.0 && top.is_some_and(|v| v > 0.0);
                active_neg_neg |= term > 0.0 && top.is_some_and(|v| v < 0.0);
            }
            if ok && (m == 1 || (inactive && active_pos_neg && active_neg_neg)) {
                return (s, positives, negatives);
            }
        }
        unreachable!()
    }

    #[test]
    fn matching_loss_matches_f64_and_finite_differences() {
        for (n, m) in [(1, 1), (6, 2), (12, 5), (9, 9), (16, 6)] {
            for sparse in [false, true] {
                let (s, positives, negatives) = kink_free_scores(n, m, sparse, (n * 10 + m) as u64);
                let s64 = to_f64(&s);
                let gamma = MATCHING_MARGIN as f64;
                let loss = matching_loss_forward(&s, m, &positives, &negatives, MATCHING_MARGIN);
                assert_close("loss", &[loss], &[matching64(&s64, m, &positives, &negatives, gamma)], 1e-5, 1e-6);
                let want = numeric_grad(&s64, FD_STEP, |s| 2.0 * matching64(s, m, &positives, &negatives, gamma));
                let mut ds = vec![0.0f32; s.len()];
                matching_loss_backward(&s, m, &positives, &negatives, MATCHING_MARGIN, 2.0, &mut ds);
                assert_grad("dscores", &ds, &want);
                // Gradient reaches at most two columns per row: the positive and the hardest
                // negative, never a column outside the mask.
                for ((row, neg), &p) in ds.chunks(m).zip(negatives.chunks(m)).zip(&positives) {
                    assert!(row.iter().filter(|&&g| g != 0.0).count() <= 2);
                    assert!(row.iter().zip(neg).enumerate().all(|(j, (&g, &n))| g == 0.0 || n || j == p as usize));
                }
            }
        }
    }

    fn contrastive64(s: &[f64], m: usize, positives: &[u32], negatives: &[bool], tau: f64) -> f64 {
        let terms: Vec<f64> = s
            .chunks(m)
            .zip(positives)
            .zip(negatives.chunks(m))
            .map(|((row, &p), neg)| {
                let z: Vec<f64> = (0..m).filter(|&j| j == p as usize || neg[j]).map(|j| row[j] / tau).collect();
                let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln() - row[p as usize] / tau
            })
            .collect();
        terms.iter().sum::<f64>() / terms.len() as f64
    }

    #[test]
    fn contrastive_loss_matches_f64_and_finite_differences() {
        for (n, m) in [(1, 1), (6, 2), (12, 5), (9, 9), (16, 6)] {
            for (sparse, tau) in [(false, 0.05f32), (true, 0.05), (false, 1.0), (true, 0.3)] {
                let (s, positives, negatives) = kink_free_scores(n, m, sparse, (n * 10 + m) as u64);
                let s64 = to_f64(&s);
                let loss = contrastive_loss_forward(&s, m, &positives, &negatives, tau);
                assert_close("loss", &[loss], &[contrastive64(&s64, m, &positives, &negatives, tau as f64)], 1e-5, 1e-5);
                let want = numeric_grad(&s64, FD_STEP, |s| 0.5 * contrastive64(s, m, &positives, &negatives, tau as f64));
                let mut ds = vec![0.0f32; s.len()];
                contrastive_loss_backward(&s, m, &positives, &negatives, tau, 0.5, &mut ds);
                assert_grad("dscores", &ds, &want);
                // No gradient outside each row's candidates; a row's gradients sum to 0.
                for ((row, neg), &p) in ds.chunks(m).zip(negatives.chunks(m)).zip(&positives) {
                    assert!(row.iter().zip(neg).enumerate().all(|(j, (&g, &n))| g == 0.0 || n || j == p as usize));
                    assert!(row.iter().sum::<f32>().abs() < 1e-4);
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "positive is marked")]
    fn a_positive_cannot_be_its_own_negative() {
        matching_loss_forward(&[0.1, 0.2], 2, &[0], &[true, true], MATCHING_MARGIN);
    }

    #[test]
    fn matching_loss_through_cosine_scores() {
        // The training objective end to end on the query side: a → scores → loss.
        use crate::backend::cpu::cosine::{cosine_scores_backward, cosine_scores_forward};
        let (n, m, d, weights) = (5, 4, 6, [0.5f32, 0.25, 0.25]);
        let mut rng = Rng::new(8);
        let (a, b) = (rng.normals(n * 3 * d, 1.0), rng.normals(m * 3 * d, 1.0));
        let positives: Vec<u32> = (0..n).map(|i| (i % m) as u32).collect();
        let negatives = all_other_columns(m, &positives);
        let loss64 = |a: &[f64]| {
            // f64 scores through an f64 cosine, then the f64 loss.
            let cos = |x: &[f64], y: &[f32]| {
                let dot: f64 = x.iter().zip(y).map(|(a, &b)| a * b as f64).sum();
                dot / (x.iter().map(|v| v * v).sum::<f64>().sqrt() * y.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt())
            };
            let mut s64 = vec![0.0f64; n * m];
            for i in 0..n {
                for j in 0..m {
                    s64[i * m + j] =
                        (0..3).map(|p| weights[p] as f64 * cos(&a[(i * 3 + p) * d..(i * 3 + p + 1) * d], &b[(j * 3 + p) * d..(j * 3 + p + 1) * d])).sum();
                }
            }
            matching64(&s64, m, &positives, &negatives, MATCHING_MARGIN as f64)
        };
        let want = numeric_grad(&to_f64(&a), FD_STEP, loss64);
        let mut s = vec![0.0f32; n * m];
        cosine_scores_forward(&a, &b, d, &weights, &mut s);
        assert!(matching_loss_forward(&s, m, &positives, &negatives, MATCHING_MARGIN) > 0.0, "the test needs an active loss");
        let mut ds = vec![0.0f32; n * m];
        matching_loss_backward(&s, m, &positives, &negatives, MATCHING_MARGIN, 1.0, &mut ds);
        let mut da = vec![0.0f32; a.len()];
        cosine_scores_backward(&a, &b, d, &weights, &ds, &mut da, None);
        assert_grad("da", &da, &want);
    }
}
