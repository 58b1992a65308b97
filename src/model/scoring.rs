//! The fine-grained score as one inner product.
//!
//! `s(x, r) = w_c·cos(c, d_ctx) + w_h·cos(h, d_h) + w_t·cos(t, d_t)`, `w = (1−2α, α, α)`.
//! With unit vectors, `q = [√w_c ĉ, √w_h ĥ, √w_t t̂]` and `r = [√w_c d̂_ctx, √w_h d̂_h, √w_t d̂_t]`
//! give `s = q·r` and `‖r‖ = 1`, so the index stores `r` and any vector search computes `s`.

/// The weights of the three parts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartWeights {
    pub context: f32,
    pub head: f32,
    pub tail: f32,
}

impl PartWeights {
    /// `(1 − 2α, α, α)`.
    pub fn from_alpha(alpha: f32) -> PartWeights {
        PartWeights { context: 1.0 - 2.0 * alpha, head: alpha, tail: alpha }
    }

    /// Each weight times `share` (a block's share of an ensemble score).
    pub fn scaled(self, share: f32) -> PartWeights {
        PartWeights { context: self.context * share, head: self.head * share, tail: self.tail * share }
    }

    /// Part by part sums: the weights of the parts of an ensemble's score.
    pub fn sum(blocks: &[PartWeights]) -> PartWeights {
        blocks.iter().fold(PartWeights { context: 0.0, head: 0.0, tail: 0.0 }, |a, b| PartWeights {
            context: a.context + b.context,
            head: a.head + b.head,
            tail: a.tail + b.tail,
        })
    }

    fn all(&self) -> [f32; 3] {
        [self.context, self.head, self.tail]
    }
}

/// `[√w_c â, √w_h b̂, √w_t ĉ]` from three `d`-vectors (a zero part stays zero).
pub fn combine_parts(parts: [&[f32]; 3], weights: PartWeights) -> Vec<f32> {
    let mut out = Vec::with_capacity(parts[0].len() * 3);
    for (part, w) in parts.into_iter().zip(weights.all()) {
        let norm = part.iter().map(|v| v * v).sum::<f32>().sqrt();
        let scale = if norm > 0.0 { w.max(0.0).sqrt() / norm } else { 0.0 };
        out.extend(part.iter().map(|v| v * scale));
    }
    out
}

/// The three cosines behind a score. The vectors are made of `blocks.len()` blocks of
/// `[3d]`, each combined with its block's weights (one block for a single model; an
/// ensemble has one per model): the cosine of a part is the weight-averaged cosine of that
/// part over the blocks, so that `score = Σ_p W_p · cos_p` with `W = PartWeights::sum(blocks)`.
pub fn part_cosines(query: &[f32], relation: &[f32], blocks: &[PartWeights]) -> [f32; 3] {
    let d = query.len() / (3 * blocks.len());
    let mut dots = [0.0; 3];
    for (b, weights) in blocks.iter().enumerate() {
        for (p, w) in weights.all().into_iter().enumerate() {
            let range = (3 * b + p) * d..(3 * b + p + 1) * d;
            if w > 0.0 {
                dots[p] += query[range.clone()].iter().zip(&relation[range]).map(|(a, b)| a * b).sum::<f32>();
            }
        }
    }
    let total = PartWeights::sum(blocks).all();
    std::array::from_fn(|p| if total[p] > 0.0 { dots[p] / total[p] } else { 0.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        dot / (a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt())
    }

    #[test]
    fn inner_product_is_the_weighted_sum_of_cosines() {
        let mut rng = crate::testutil::Rng::new(1);
        let mut v = || (0..8).map(|_| rng.normal()).collect::<Vec<f32>>();
        let (c, h, t, dc, dh, dt) = (v(), v(), v(), v(), v(), v());
        let w = PartWeights::from_alpha(0.33);
        let q = combine_parts([&c, &h, &t], w);
        let r = combine_parts([&dc, &dh, &dt], w);
        let norm_r: f32 = r.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm_r - 1.0).abs() < 1e-5);
        let score: f32 = q.iter().zip(&r).map(|(a, b)| a * b).sum();
        let want = 0.34 * cos(&c, &dc) + 0.33 * cos(&h, &dh) + 0.33 * cos(&t, &dt);
        assert!((score - want).abs() < 1e-5, "{score} vs {want}");
        let parts = part_cosines(&q, &r, &[w]);
        assert!((parts[0] - cos(&c, &dc)).abs() < 1e-5 && (parts[2] - cos(&t, &dt)).abs() < 1e-5);
    }

    #[test]
    fn an_ensemble_score_is_the_weighted_sum_of_its_models_scores() {
        let mut rng = crate::testutil::Rng::new(2);
        let mut v = || (0..8).map(|_| rng.normal()).collect::<Vec<f32>>();
        let (a, b) = ([v(), v(), v()], [v(), v(), v()]);
        let (da, db) = ([v(), v(), v()], [v(), v(), v()]);
        let (wa, wb, beta) = (PartWeights::from_alpha(0.33), PartWeights { context: 0.5, head: 0.2, tail: 0.3 }, 0.25f32);
        let blocks = [wa.scaled(1.0 - beta), wb.scaled(beta)];
        let parts = |x: &[Vec<f32>; 3], w| combine_parts([&x[0], &x[1], &x[2]], w);
        let q = [parts(&a, blocks[0]), parts(&b, blocks[1])].concat();
        let r = [parts(&da, blocks[0]), parts(&db, blocks[1])].concat();
        assert!((r.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5, "relation vectors stay unit");
        let score: f32 = q.iter().zip(&r).map(|(x, y)| x * y).sum();
        let score_a: f32 = (0..3).map(|p| wa.all()[p] * cos(&a[p], &da[p])).sum();
        let score_b: f32 = (0..3).map(|p| wb.all()[p] * cos(&b[p], &db[p])).sum();
        assert!((score - ((1.0 - beta) * score_a + beta * score_b)).abs() < 1e-5);
        let cosines = part_cosines(&q, &r, &blocks);
        let total = PartWeights::sum(&blocks);
        let recombined = total.context * cosines[0] + total.head * cosines[1] + total.tail * cosines[2];
        assert!((recombined - score).abs() < 1e-5, "parts explain the score: {recombined} vs {score}");
        let want_head = ((1.0 - beta) * wa.head * cos(&a[1], &da[1]) + beta * wb.head * cos(&b[1], &db[1])) / total.head;
        assert!((cosines[1] - want_head).abs() < 1e-5);
    }
}
