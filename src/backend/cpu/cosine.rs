//! The fine-grained matching score over `P` parts (RE-Matching: context, head, tail):
//! `s(a, b) = Σ_p w_p cos(a_p, b_p)` between query rows `a` and description rows `b`, each
//! the concatenation of `P` parts of `d` values.
//!
//! The backward pass gives `da` (the query side) and, when the description encoder is
//! trained too, `db`.
use super::gemm::{gemm, MatRef, Plain};
use super::parallel::{for_each_chunk, for_each_mut};

/// Each `d`-part of each row of `x` scaled to unit norm (times `weights[p]`), into `out`;
/// returns the parts' norms `[rows × P]`. A zero part stays zero.
fn normalize_parts(x: &[f32], d: usize, weights: &[f32], out: &mut [f32]) -> Vec<f32> {
    let width = d * weights.len();
    let mut norms = vec![0.0f32; x.len() / width.max(1) * weights.len()];
    let mut rows: Vec<(&mut [f32], &mut [f32])> = out.chunks_mut(width.max(1)).zip(norms.chunks_mut(weights.len().max(1))).collect();
    for_each_mut(&mut rows, |i, (o, norms)| {
        let x = &x[i * width..(i + 1) * width];
        for (p, (&w, norm)) in weights.iter().zip(norms.iter_mut()).enumerate() {
            let part = &x[p * d..(p + 1) * d];
            *norm = part.iter().map(|v| v * v).sum::<f32>().sqrt();
            let scale = if *norm > 0.0 { w / *norm } else { 0.0 };
            o[p * d..(p + 1) * d].iter_mut().zip(part).for_each(|(o, v)| *o = v * scale);
        }
    });
    norms
}

fn check(a: &[f32], b: &[f32], d: usize, weights: &[f32]) -> (usize, usize, usize) {
    let width = d * weights.len();
    assert!(width > 0, "no parts or empty parts");
    assert!(a.len().is_multiple_of(width) && b.len().is_multiple_of(width), "rows are not P·d long");
    (a.len() / width, b.len() / width, width)
}

/// `scores[i·m + j] = Σ_p weights[p] · cos(a_i,p, b_j,p)`: `a: [n × P·d]`,
/// `b: [m × P·d]`, `weights: [P]`, `scores: [n × m]`. A zero part has cosine 0.
pub fn cosine_scores_forward(a: &[f32], b: &[f32], d: usize, weights: &[f32], scores: &mut [f32]) {
    let (n, m, width) = check(a, b, d, weights);
    assert_eq!(scores.len(), n * m);
    let (mut an, mut bn) = (vec![0.0; a.len()], vec![0.0; b.len()]);
    normalize_parts(a, d, weights, &mut an);
    normalize_parts(b, d, &vec![1.0; weights.len()], &mut bn);
    gemm(MatRef::row_major(&an, n, width), MatRef::transposed(&bn, m, width), scores, m, false, &Plain);
}

/// Backward of [`cosine_scores_forward`]: `da += ∂(Σ d_scores ⊙ s)/∂a` and, when `db` is
/// given, `db += ∂(Σ d_scores ⊙ s)/∂b`. Shapes as in the forward, `d_scores: [n × m]`,
/// `da: [n × P·d]`, `db: [m × P·d]`.
pub fn cosine_scores_backward(a: &[f32], b: &[f32], d: usize, weights: &[f32], d_scores: &[f32], da: &mut [f32], db: Option<&mut [f32]>) {
    let (n, m, _) = check(a, b, d, weights);
    assert!(d_scores.len() == n * m && da.len() == a.len());
    first_side_backward(a, b, d, weights, d_scores, da);
    if let Some(db) = db {
        assert_eq!(db.len(), b.len());
        // The score is symmetric in its two sides, so b's gradient is the first side's
        // gradient of the transposed problem.
        let mut transposed = vec![0.0f32; n * m];
        for (i, row) in d_scores.chunks_exact(m).enumerate() {
            for (j, &g) in row.iter().enumerate() {
                transposed[j * n + i] = g;
            }
        }
        first_side_backward(b, a, d, weights, &transposed, db);
    }
}

/// `da += ∂(Σ d_scores ⊙ s)/∂a`. With `â = a_p/‖a_p‖`, `b̂` likewise and
/// `G_i = Σ_j d_scores[i, j] b̂_j` (one product `[n × m] · [m × P·d]`):
///
/// `da_i,p += w_p (G_i,p − â_i,p (â_i,p · G_i,p)) / ‖a_i,p‖`
///
/// (zero parts get nothing).
fn first_side_backward(a: &[f32], b: &[f32], d: usize, weights: &[f32], d_scores: &[f32], da: &mut [f32]) {
    let (n, m, width) = check(a, b, d, weights);
    let ones = vec![1.0; weights.len()];
    let (mut an, mut bn) = (vec![0.0; a.len()], vec![0.0; b.len()]);
    let norms = normalize_parts(a, d, &ones, &mut an);
    normalize_parts(b, d, &ones, &mut bn);
    let mut g = vec![0.0f32; a.len()];
    gemm(MatRef::row_major(d_scores, n, m), MatRef::row_major(&bn, m, width), &mut g, width, false, &Plain);
    let parts = weights.len();
    for_each_chunk(da, width, |start, da| {
        let i = start / width;
        let (an, g, norms) = (&an[start..start + width], &g[start..start + width], &norms[i * parts..(i + 1) * parts]);
        for p in 0..parts {
            if norms[p] > 0.0 {
                let r = p * d..(p + 1) * d;
                let (da, an, g) = (&mut da[r.clone()], &an[r.clone()], &g[r]);
                let proj: f32 = an.iter().zip(g).map(|(x, y)| x * y).sum();
                let k = weights[p] / norms[p];
                for c in 0..d {
                    da[c] += k * (g[c] - an[c] * proj);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn scores64(a: &[f64], b: &[f32], d: usize, weights: &[f32]) -> Vec<f64> {
        let width = d * weights.len();
        let cos = |x: &[f64], y: &[f32]| {
            let dot: f64 = x.iter().zip(y).map(|(a, &b)| a * b as f64).sum();
            let nx = x.iter().map(|v| v * v).sum::<f64>().sqrt();
            let ny = y.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
            if nx > 0.0 && ny > 0.0 {
                dot / (nx * ny)
            } else {
                0.0
            }
        };
        let mut out = Vec::new();
        for ai in a.chunks(width) {
            for bj in b.chunks(width) {
                out.push(weights.iter().enumerate().map(|(p, &w)| w as f64 * cos(&ai[p * d..(p + 1) * d], &bj[p * d..(p + 1) * d])).sum());
            }
        }
        out
    }

    #[test]
    fn forward_and_backward_match_f64() {
        for (n, m, d, weights) in [(1, 1, 1, vec![1.0]), (3, 5, 7, vec![0.5, 0.2, 0.3]), (4, 2, 16, vec![0.6, 0.2, 0.2]), (2, 3, 9, vec![0.0, 0.7, 0.3])] {
            let parts = weights.len();
            let mut rng = Rng::new((n * 100 + m * 10 + d) as u64);
            let (a, b, r) = (rng.normals(n * parts * d, 1.5), rng.normals(m * parts * d, 1.0), rng.normals(n * m, 1.0));
            let a64 = to_f64(&a);
            let mut s = vec![0.0f32; n * m];
            cosine_scores_forward(&a, &b, d, &weights, &mut s);
            assert_close("scores", &s, &scores64(&a64, &b, d, &weights), 1e-5, 1e-5);
            let want = numeric_grad(&a64, FD_STEP, |a| dot(&r, &scores64(a, &b, d, &weights)));
            let (mut da, mut db) = (vec![0.25f32; a.len()], vec![0.5f32; b.len()]);
            cosine_scores_backward(&a, &b, d, &weights, &r, &mut da, Some(&mut db));
            da.iter_mut().for_each(|g| *g -= 0.25);
            db.iter_mut().for_each(|g| *g -= 0.5);
            assert_grad("da", &da, &want);
            // b's side: the scores of (b, a) are the transposed scores of (a, b)
            let r_transposed: Vec<f32> = (0..m * n).map(|k| r[(k % n) * m + k / n]).collect();
            let want_b = numeric_grad(&to_f64(&b), FD_STEP, |b| dot(&r_transposed, &scores64(b, &a, d, &weights)));
            assert_grad("db", &db, &want_b);
        }
    }

    #[test]
    fn zero_parts_score_and_get_nothing() {
        let a = [0.0, 0.0, 1.0, 2.0];
        let b = [1.0, 0.0, 2.0, 1.0];
        let mut s = [0.0];
        cosine_scores_forward(&a, &b, 2, &[0.5, 0.5], &mut s);
        assert!((s[0] - 0.5 * 0.8).abs() < 1e-6);
        let mut da = [0.0; 4];
        let mut db = [0.0; 4];
        cosine_scores_backward(&b, &a, 2, &[0.5, 0.5], &[1.0], &mut db, Some(&mut da));
        assert_eq!(&da[..2], &[0.0, 0.0]);
    }
}
