//! Feature distillation of the RE-Matching input side.
//!
//! - Query attention: one learned vector `q: [d]` attends over the rows of each sequence,
//!   `a = softmax(q · Hᵀ)`, `x* = a · H` (the relation-irrelevant feature).
//! - Projection-subtraction: `x^p = x − (x·x* / ‖x*‖²) x*` removes `x*`'s direction from `x`.
use rayon::prelude::*;

/// `x_star: [n × d]` and the attention weights `attn: [T]` (per sequence, summing to 1).
pub fn query_attention_forward(h: &[f32], starts: &[usize], q: &[f32], x_star: &mut [f32], attn: &mut [f32]) {
    let d = q.len();
    let n = starts.len() - 1;
    let total = *starts.last().unwrap_or(&0);
    assert!(h.len() == total * d && x_star.len() == n * d && attn.len() == total);
    let mut attn_blocks = Vec::with_capacity(n);
    let mut rest: &mut [f32] = attn;
    for s in starts.windows(2) {
        let (block, tail) = rest.split_at_mut(s[1] - s[0]);
        attn_blocks.push(block);
        rest = tail;
    }
    x_star.par_chunks_mut(d).zip(attn_blocks.into_par_iter()).zip(starts.par_windows(2)).for_each(|((xs, a), s)| {
        let rows = &h[s[0] * d..s[1] * d];
        for (ai, row) in a.iter_mut().zip(rows.chunks_exact(d)) {
            *ai = row.iter().zip(q).map(|(x, y)| x * y).sum();
        }
        let max = a.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let mut sum = 0.0;
        for ai in a.iter_mut() {
            *ai = (*ai - max).exp();
            sum += *ai;
        }
        xs.fill(0.0);
        for (ai, row) in a.iter_mut().zip(rows.chunks_exact(d)) {
            *ai /= sum;
            xs.iter_mut().zip(row).for_each(|(o, v)| *o += *ai * v);
        }
    });
}

/// `out = x − (x·x* / ‖x*‖²) x*` row by row (`x, x_star, out: [n × d]`). A zero `x*` row
/// removes nothing.
pub fn project_out_forward(x: &[f32], x_star: &[f32], d: usize, out: &mut [f32]) {
    assert!(x.len() == x_star.len() && out.len() == x.len());
    out.par_chunks_mut(d).zip(x.par_chunks(d)).zip(x_star.par_chunks(d)).for_each(|((o, x), s)| {
        let dot: f32 = x.iter().zip(s).map(|(a, b)| a * b).sum();
        let norm2: f32 = s.iter().map(|v| v * v).sum();
        let k = if norm2 > 0.0 { dot / norm2 } else { 0.0 };
        o.iter_mut().zip(x).zip(s).for_each(|((o, x), s)| *o = x - k * s);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_attention_matches_reference() {
        let mut rng = crate::testutil::Rng::new(5);
        let d = 7;
        let starts = [0, 3, 4, 9];
        let h: Vec<f32> = (0..9 * d).map(|_| rng.normal()).collect();
        let q: Vec<f32> = (0..d).map(|_| rng.normal()).collect();
        let (mut xs, mut attn) = (vec![0.0; 3 * d], vec![0.0; 9]);
        query_attention_forward(&h, &starts, &q, &mut xs, &mut attn);
        for (s, w) in starts.windows(2).enumerate() {
            let logits: Vec<f64> = (w[0]..w[1]).map(|t| (0..d).map(|c| h[t * d + c] as f64 * q[c] as f64).sum()).collect();
            let z: f64 = logits.iter().map(|l| l.exp()).sum();
            for c in 0..d {
                let want: f64 = (w[0]..w[1]).zip(&logits).map(|(t, l)| l.exp() / z * h[t * d + c] as f64).sum();
                assert!((xs[s * d + c] as f64 - want).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn projection_removes_the_direction() {
        let x = [3.0, 4.0, 0.0, 1.0, 1.0, 1.0];
        let s = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let mut out = [0.0; 6];
        project_out_forward(&x, &s, 3, &mut out);
        assert_eq!(out, [0.0, 4.0, 0.0, 1.0, 1.0, 1.0]);
        let dot: f32 = out[..3].iter().zip(&s[..3]).map(|(a, b)| a * b).sum();
        assert_eq!(dot, 0.0);
    }
}
