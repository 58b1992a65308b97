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

/// The three cosines behind a score: `q·r` part by part, divided by the part's weight.
pub fn part_cosines(query: &[f32], relation: &[f32], weights: PartWeights) -> [f32; 3] {
    let d = query.len() / 3;
    let mut cos = [0.0; 3];
    for (p, w) in weights.all().into_iter().enumerate() {
        let dot: f32 = query[p * d..(p + 1) * d].iter().zip(&relation[p * d..(p + 1) * d]).map(|(a, b)| a * b).sum();
        cos[p] = if w > 0.0 { dot / w } else { 0.0 };
    }
    cos
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
        let parts = part_cosines(&q, &r, w);
        assert!((parts[0] - cos(&c, &dc)).abs() < 1e-5 && (parts[2] - cos(&t, &dt)).abs() < 1e-5);
    }
}
