//! Feature distillation of the RE-Matching input side.
//!
//! - Query attention: one learned vector `q: [d]` attends over the rows of each sequence,
//!   `a = softmax(q · Hᵀ)`, `x* = a · H` (the relation-irrelevant feature).
//! - Projection-subtraction: `x^p = x − (x·x* / ‖x*‖²) x*` removes `x*`'s direction from `x`.
//!
//! Training: RE-Matching's distillation attention reads `sg(H)` (stop-gradient), so the
//! gradient of `x*` reaches the query `q` only; [`query_attention_backward`] can also give
//! `dH` for generality, which RE-Matching training does not ask for.
use super::parallel::{for_each_chunk, for_each_mut};

/// `x_star: [n × d]` and the attention weights `attn: [T]` (per sequence, summing to 1).
pub fn query_attention_forward(h: &[f32], starts: &[usize], q: &[f32], x_star: &mut [f32], attn: &mut [f32]) {
    let d = q.len();
    let n = starts.len() - 1;
    let total = *starts.last().unwrap_or(&0);
    assert!(h.len() == total * d && x_star.len() == n * d && attn.len() == total);
    let mut tasks = Vec::with_capacity(n);
    let mut rest: &mut [f32] = attn;
    for (s, xs) in starts.windows(2).zip(x_star.chunks_mut(d.max(1))) {
        let (block, tail) = rest.split_at_mut(s[1] - s[0]);
        tasks.push((xs, block));
        rest = tail;
    }
    for_each_mut(&mut tasks, |i, (xs, a)| {
        let s = &starts[i..i + 2];
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
    for_each_chunk(out, d, |start, o| {
        let (x, s) = (&x[start..start + o.len()], &x_star[start..start + o.len()]);
        let dot: f32 = x.iter().zip(s).map(|(a, b)| a * b).sum();
        let norm2: f32 = s.iter().map(|v| v * v).sum();
        let k = if norm2 > 0.0 { dot / norm2 } else { 0.0 };
        o.iter_mut().zip(x).zip(s).for_each(|((o, x), s)| *o = x - k * s);
    });
}

/// Backward of [`query_attention_forward`], accumulating (`+=`). Per sequence, with
/// `a = softmax(l)`, `l_t = q·H_t`, `x* = Σ_t a_t H_t` and `g = d_x*`:
///
/// - `da_t = g·H_t`, `dl_t = a_t (da_t − Σ_u a_u da_u)`
/// - `dq += Σ_t dl_t H_t`
/// - `dH_t += a_t g + dl_t q` (only when `dh` is given; RE-Matching stops this gradient)
///
/// `h, dh: [T × d]`, `q, dq: [d]`, `attn: [T]` (the forward's weights), `d_x_star: [n × d]`.
/// The per-sequence contributions to `dq` are added in sequence order (deterministic).
pub fn query_attention_backward(h: &[f32], starts: &[usize], q: &[f32], attn: &[f32], d_x_star: &[f32], dq: &mut [f32], dh: Option<&mut [f32]>) {
    let d = q.len();
    let n = starts.len() - 1;
    let total = *starts.last().unwrap_or(&0);
    assert!(h.len() == total * d && attn.len() == total && d_x_star.len() == n * d && dq.len() == d);
    // dl: [T], the gradient of the logits.
    let mut dl = vec![0.0f32; total];
    let mut dl_blocks = Vec::with_capacity(n);
    let mut rest: &mut [f32] = &mut dl;
    for s in starts.windows(2) {
        let (block, tail) = rest.split_at_mut(s[1] - s[0]);
        dl_blocks.push(block);
        rest = tail;
    }
    let mut tasks: Vec<(&mut [f32], Vec<f32>)> = dl_blocks.into_iter().map(|dl| (dl, vec![0.0f32; d])).collect();
    for_each_mut(&mut tasks, |si, (dl, dq)| {
        let (s, g) = (&starts[si..si + 2], &d_x_star[si * d..(si + 1) * d]);
        let (rows, a) = (&h[s[0] * d..s[1] * d], &attn[s[0]..s[1]]);
        for (o, row) in dl.iter_mut().zip(rows.chunks_exact(d)) {
            *o = row.iter().zip(g).map(|(x, y)| x * y).sum();
        }
        let mean: f32 = dl.iter().zip(a).map(|(x, y)| x * y).sum();
        dl.iter_mut().zip(a).for_each(|(o, &ai)| *o = ai * (*o - mean));
        for (&l, row) in dl.iter().zip(rows.chunks_exact(d)) {
            dq.iter_mut().zip(row).for_each(|(o, v)| *o += l * v);
        }
    });
    for (_, p) in &tasks {
        dq.iter_mut().zip(p).for_each(|(o, v)| *o += v);
    }
    drop(tasks);
    if let Some(dh) = dh {
        assert_eq!(dh.len(), total * d);
        for (si, s) in starts.windows(2).enumerate() {
            let g = &d_x_star[si * d..(si + 1) * d];
            for t in s[0]..s[1] {
                let row = &mut dh[t * d..(t + 1) * d];
                row.iter_mut().zip(g).zip(q).for_each(|((o, &gc), &qc)| *o += attn[t] * gc + dl[t] * qc);
            }
        }
    }
}

/// Backward of [`project_out_forward`], accumulating (`+=`). Per row, with `s = x*`,
/// `k = (x·s)/‖s‖²` and `g = d_out`:
///
/// - `dx += g − (g·s/‖s‖²) s`
/// - `ds += −k g − (g·s/‖s‖²)(x − 2k s)`
///
/// `x, x_star, d_out, dx, d_x_star: [n × d]`. Where `s = 0` the forward removes nothing, so
/// `dx += g` and `ds` gets nothing (the forward is not differentiable there).
pub fn project_out_backward(x: &[f32], x_star: &[f32], d: usize, d_out: &[f32], dx: &mut [f32], d_x_star: &mut [f32]) {
    assert!(x.len() == x_star.len() && d_out.len() == x.len() && dx.len() == x.len() && d_x_star.len() == x.len());
    let d = d.max(1);
    let mut rows: Vec<(&mut [f32], &mut [f32])> = dx.chunks_mut(d).zip(d_x_star.chunks_mut(d)).collect();
    for_each_mut(&mut rows, |i, (dx, ds)| {
        let r = i * d..(i + 1) * d;
        let (x, s, g) = (&x[r.clone()], &x_star[r.clone()], &d_out[r]);
        let norm2: f32 = s.iter().map(|v| v * v).sum();
        if norm2 > 0.0 {
            let k = x.iter().zip(s).map(|(a, b)| a * b).sum::<f32>() / norm2;
            let gs = g.iter().zip(s).map(|(a, b)| a * b).sum::<f32>() / norm2;
            for c in 0..d {
                dx[c] += g[c] - gs * s[c];
                ds[c] += -k * g[c] - gs * (x[c] - 2.0 * k * s[c]);
            }
        } else {
            dx.iter_mut().zip(g).for_each(|(o, v)| *o += v);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

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

    fn query_attention64(h: &[f64], starts: &[usize], q: &[f64]) -> Vec<f64> {
        let d = q.len();
        let mut out = Vec::new();
        for w in starts.windows(2) {
            let logits: Vec<f64> = (w[0]..w[1]).map(|t| (0..d).map(|c| h[t * d + c] * q[c]).sum()).collect();
            let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = logits.iter().map(|l| (l - max).exp()).sum();
            out.extend((0..d).map(|c| (w[0]..w[1]).zip(&logits).map(|(t, l)| (l - max).exp() / z * h[t * d + c]).sum::<f64>()));
        }
        out
    }

    fn project_out64(x: &[f64], s: &[f64], d: usize) -> Vec<f64> {
        x.chunks(d)
            .zip(s.chunks(d))
            .flat_map(|(x, s)| {
                let k = x.iter().zip(s).map(|(a, b)| a * b).sum::<f64>() / s.iter().map(|v| v * v).sum::<f64>();
                x.iter().zip(s).map(move |(a, b)| a - k * b).collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn query_attention_backward_matches_finite_differences() {
        for (lens, d) in [(vec![1], 1), (vec![3, 1, 5], 7), (vec![12, 2], 9)] {
            let starts = starts_of(&lens);
            let total = *starts.last().unwrap();
            let mut rng = Rng::new(d as u64 * 3);
            let (h, q, r) = (rng.normals(total * d, 1.0), rng.normals(d, 1.0), rng.normals(lens.len() * d, 1.0));
            let (h64, q64) = (to_f64(&h), to_f64(&q));
            let want_dq = numeric_grad(&q64, FD_STEP, |q| dot(&r, &query_attention64(&h64, &starts, q)));
            let want_dh = numeric_grad(&h64, FD_STEP, |h| dot(&r, &query_attention64(h, &starts, &q64)));
            let (mut xs, mut attn) = (vec![0.0; lens.len() * d], vec![0.0; total]);
            query_attention_forward(&h, &starts, &q, &mut xs, &mut attn);
            // With the stop-gradient (RE-Matching): dq only.
            let mut dq = vec![1.0f32; d];
            query_attention_backward(&h, &starts, &q, &attn, &r, &mut dq, None);
            dq.iter_mut().for_each(|g| *g -= 1.0);
            assert_grad("dq", &dq, &want_dq);
            // For generality: dH as well, and the same dq.
            let (mut dq2, mut dh) = (vec![0.0f32; d], vec![0.0f32; total * d]);
            query_attention_backward(&h, &starts, &q, &attn, &r, &mut dq2, Some(&mut dh));
            assert_grad("dq (with dh)", &dq2, &want_dq);
            assert_grad("dh", &dh, &want_dh);
        }
    }

    #[test]
    fn project_out_backward_matches_finite_differences() {
        for (n, d) in [(1, 1), (1, 2), (3, 5), (4, 17)] {
            let mut rng = Rng::new(n as u64 * 100 + d as u64);
            let (x, s, r) = (rng.normals(n * d, 1.0), rng.normals(n * d, 1.0), rng.normals(n * d, 1.0));
            let (x64, s64) = (to_f64(&x), to_f64(&s));
            let want_dx = numeric_grad(&x64, FD_STEP, |x| dot(&r, &project_out64(x, &s64, d)));
            let want_ds = numeric_grad(&s64, FD_STEP, |s| dot(&r, &project_out64(&x64, s, d)));
            let (mut dx, mut ds) = (vec![0.0f32; n * d], vec![0.0f32; n * d]);
            project_out_backward(&x, &s, d, &r, &mut dx, &mut ds);
            assert_grad("dx", &dx, &want_dx);
            assert_grad("ds", &ds, &want_ds);
        }
        // s = 0: identity for x, nothing for s.
        let (mut dx, mut ds) = ([0.0f32; 2], [0.0f32; 2]);
        project_out_backward(&[1.0, 2.0], &[0.0, 0.0], 2, &[3.0, 4.0], &mut dx, &mut ds);
        assert_eq!((dx, ds), ([3.0, 4.0], [0.0, 0.0]));
    }
}
