//! Bidirectional multi-head self-attention over packed sequences:
//! `ctx_h = softmax(Q_h K_hᵀ / √dh) V_h` per sequence and head.
//!
//! Sequences are packed back to back (`starts[s]..starts[s+1]` are the rows of sequence
//! `s`), so no padding is stored or computed and no mask is needed: a token only sees the
//! tokens of its own sequence.
//!
//! Training: [`attention_backward`] recomputes each head's probabilities from `q, k` (as
//! FlashAttention does) instead of saving `heads × Σ len²` of them: one extra `Q·Kᵀ` per head,
//! no extra memory between the passes.
use super::gemm::{gemm, MatRef, Plain};
use super::math::{exp, lane_max, lane_sum};
use super::parallel::for_each_mut;
use super::simd::multiversion;

/// `q, k, v, ctx: [T × d]`, heads interleaved by column (head `h` owns columns
/// `h·dh .. (h+1)·dh`); `starts: [n_seqs + 1]`, increasing, `starts[n] = T`.
pub fn attention_forward(q: &[f32], k: &[f32], v: &[f32], starts: &[usize], heads: usize, ctx: &mut [f32]) {
    let total = *starts.last().unwrap_or(&0);
    let Some(d) = q.len().checked_div(total) else { return };
    assert!(d % heads == 0 && q.len() == total * d && k.len() == q.len() && v.len() == q.len() && ctx.len() == q.len());
    let dh = d / heads;

    // One task per (sequence, head), each writing its own contiguous block of a head-major
    // buffer laid out [sequence][head][row][dh]; the blocks tile [T × d] exactly.
    let mut head_major = vec![0.0f32; total * d];
    let mut tasks = Vec::with_capacity((starts.len() - 1) * heads);
    let mut rest: &mut [f32] = &mut head_major;
    for seq in starts.windows(2) {
        let len = seq[1] - seq[0];
        for h in 0..heads {
            let (block, tail) = rest.split_at_mut(len * dh);
            tasks.push((seq[0], len, h, block));
            rest = tail;
        }
    }
    let scale = 1.0 / (dh as f32).sqrt();
    for_each_mut(&mut tasks, |_, (start, len, h, out)| {
        head_attention(q, k, v, d, *start, *len, *h * dh, dh, scale, out);
    });

    // Back to token-major [T × d].
    let mut seq_blocks = Vec::with_capacity(starts.len() - 1);
    let mut rest: &mut [f32] = ctx;
    for seq in starts.windows(2) {
        let (block, tail) = rest.split_at_mut((seq[1] - seq[0]) * d);
        seq_blocks.push((seq[0], block));
        rest = tail;
    }
    for_each_mut(&mut seq_blocks, |_, (start, block)| {
        let len = block.len() / d;
        let src = &head_major[*start * d..(*start + len) * d];
        for h in 0..heads {
            let head = &src[h * len * dh..(h + 1) * len * dh];
            for i in 0..len {
                block[i * d + h * dh..i * d + (h + 1) * dh].copy_from_slice(&head[i * dh..(i + 1) * dh]);
            }
        }
    });
}

/// Attention of one head of one sequence: rows `start..start+len`, columns `col..col+dh` of
/// `q, k, v` (row stride `d`); writes `out: [len × dh]`. Two small products on strided views
/// of the head's columns and a row-wise softmax in between.
#[allow(clippy::too_many_arguments)]
fn head_attention(q: &[f32], k: &[f32], v: &[f32], d: usize, start: usize, len: usize, col: usize, dh: usize, scale: f32, out: &mut [f32]) {
    let rows = start * d..(start + len) * d;
    let (q, k, v) = (&q[rows.clone()], &k[rows.clone()], &v[rows]);
    // p: [len × len] = softmax(scale · Q_h K_hᵀ)
    let mut p = vec![0.0f32; len * len];
    gemm(head_view(q, col, len, dh, d, false), head_view(k, col, len, dh, d, true), &mut p, len, false, &Plain);
    for row in p.chunks_exact_mut(len) {
        softmax_scaled_row(row, scale);
    }
    // out: [len × dh] = P V_h
    gemm(MatRef::row_major(&p, len, len), head_view(v, col, len, dh, d, false), out, dh, false, &Plain);
}

/// Backward of [`attention_forward`], accumulating (`+=`) into `dq, dk, dv: [T × d]` from
/// `d_ctx: [T × d]` (layouts as in the forward). Per sequence and head, with `s = 1/√dh`,
/// `P = softmax(s·Q Kᵀ)` recomputed and `dO = d_ctx` restricted to the head:
///
/// - `dV += Pᵀ · dO`
/// - `dP = dO · Vᵀ`, `dS = P ⊙ (dP − rowsum(dP ⊙ P))` (softmax backward)
/// - `dQ += s · dS · K`, `dK += s · dSᵀ · Q`
///
/// Sequences run in parallel (each owns its rows of `dq, dk, dv`), heads one after another
/// inside a sequence; the products are `gemm` calls on strided views of the head's columns.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(q: &[f32], k: &[f32], v: &[f32], starts: &[usize], heads: usize, d_ctx: &[f32], dq: &mut [f32], dk: &mut [f32], dv: &mut [f32]) {
    let total = *starts.last().unwrap_or(&0);
    let Some(d) = q.len().checked_div(total) else { return };
    assert!(d % heads == 0 && q.len() == total * d && k.len() == q.len() && v.len() == q.len());
    assert!(d_ctx.len() == q.len() && dq.len() == q.len() && dk.len() == q.len() && dv.len() == q.len());
    let dh = d / heads;
    let scale = 1.0 / (dh as f32).sqrt();

    let mut tasks = Vec::with_capacity(starts.len() - 1);
    let (mut rq, mut rk, mut rv): (&mut [f32], &mut [f32], &mut [f32]) = (dq, dk, dv);
    for seq in starts.windows(2) {
        let n = (seq[1] - seq[0]) * d;
        let (bq, tq) = rq.split_at_mut(n);
        let (bk, tk) = rk.split_at_mut(n);
        let (bv, tv) = rv.split_at_mut(n);
        tasks.push((seq[0], seq[1] - seq[0], bq, bk, bv));
        (rq, rk, rv) = (tq, tk, tv);
    }
    for_each_mut(&mut tasks, |_, (start, len, dq, dk, dv)| {
        let (start, len) = (*start, *len);
        if len == 0 {
            return;
        }
        let rows = start * d..(start + len) * d;
        let (q, k, v, d_ctx) = (&q[rows.clone()], &k[rows.clone()], &v[rows.clone()], &d_ctx[rows]);
        let mut p = vec![0.0f32; len * len];
        let mut dp = vec![0.0f32; len * len];
        for h in 0..heads {
            let col = h * dh;
            // P = softmax(s · Q_h K_hᵀ), row by row.
            gemm(head_view(q, col, len, dh, d, false), head_view(k, col, len, dh, d, true), &mut p, len, false, &Plain);
            for row in p.chunks_exact_mut(len) {
                softmax_scaled_row(row, scale);
            }
            // dV_h += Pᵀ dO_h
            gemm(MatRef::transposed(&p, len, len), head_view(d_ctx, col, len, dh, d, false), &mut dv[col..], d, true, &Plain);
            // dP = dO_h V_hᵀ, then dS = s · P ⊙ (dP − Σ_j P_ij dP_ij) in place.
            gemm(head_view(d_ctx, col, len, dh, d, false), head_view(v, col, len, dh, d, true), &mut dp, len, false, &Plain);
            for (dp, p) in dp.chunks_exact_mut(len).zip(p.chunks_exact(len)) {
                softmax_backward_row(dp, p, scale);
            }
            // dQ_h += dS K_h, dK_h += dSᵀ Q_h
            gemm(MatRef::row_major(&dp, len, len), head_view(k, col, len, dh, d, false), &mut dq[col..], d, true, &Plain);
            gemm(MatRef::transposed(&dp, len, len), head_view(q, col, len, dh, d, false), &mut dk[col..], d, true, &Plain);
        }
    });
}

/// Columns `col..col+dh` of a row-major `[len × d]` block as a `len × dh` view (or its
/// `dh × len` transpose).
fn head_view(m: &[f32], col: usize, len: usize, dh: usize, d: usize, transpose: bool) -> MatRef<'_> {
    let data = &m[col..];
    if transpose {
        MatRef { data, rows: dh, cols: len, rs: 1, cs: d }
    } else {
        MatRef { data, rows: len, cols: dh, rs: d, cs: 1 }
    }
}

multiversion!(
    /// `row ← softmax(scale · row)` (max-subtracted, `math::exp` as in the forward).
    fn softmax_scaled_row / softmax_scaled_row_with_isa (row: &mut [f32], scale: f32) => softmax_scaled_row_generic
);

#[inline(always)]
fn softmax_scaled_row_generic(row: &mut [f32], scale: f32) {
    let max = lane_max(row) * scale;
    row.iter_mut().for_each(|s| *s = exp(*s * scale - max));
    let inv = 1.0 / lane_sum(row, |s| s);
    row.iter_mut().for_each(|s| *s *= inv);
}

multiversion!(
    /// `dp ← scale · p ⊙ (dp − Σ p ⊙ dp)`: the gradient of the softmax's logits (times `scale`).
    fn softmax_backward_row / softmax_backward_row_with_isa (dp: &mut [f32], p: &[f32], scale: f32) => softmax_backward_row_generic
);

#[inline(always)]
fn softmax_backward_row_generic(dp: &mut [f32], p: &[f32], scale: f32) {
    let dot: f32 = dp.iter().zip(p).map(|(a, b)| a * b).sum();
    dp.iter_mut().zip(p).for_each(|(g, &p)| *g = scale * p * (*g - dot));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::simd::Isa;
    use proptest::prelude::*;

    /// The textbook formula in f64, sequence by sequence and head by head.
    fn reference(q: &[f32], k: &[f32], v: &[f32], starts: &[usize], heads: usize) -> Vec<f64> {
        let wide = |x: &[f32]| x.iter().map(|&v| v as f64).collect::<Vec<f64>>();
        reference64(&wide(q), &wide(k), &wide(v), starts, heads)
    }

    proptest! {
        #[test]
        fn packed_matches_reference(lens in proptest::collection::vec(1usize..20, 1..5), heads in 1usize..4, dh in 1usize..9, seed in any::<u64>()) {
            let mut rng = crate::testutil::Rng::new(seed);
            let mut starts = vec![0];
            for l in &lens { starts.push(starts.last().unwrap() + l); }
            let total = *starts.last().unwrap();
            let d = heads * dh;
            let gen = |rng: &mut crate::testutil::Rng| (0..total * d).map(|_| rng.normal() * 2.0).collect::<Vec<f32>>();
            let (q, k, v) = (gen(&mut rng), gen(&mut rng), gen(&mut rng));
            let want = reference(&q, &k, &v, &starts, heads);
            let mut got = vec![0.0f32; total * d];
            attention_forward(&q, &k, &v, &starts, heads, &mut got);
            for i in 0..total * d {
                prop_assert!((got[i] as f64 - want[i]).abs() < 2e-5 * (1.0 + want[i].abs()), "[{i}] {} vs {}", got[i], want[i]);
            }
            // Every instruction set computes the same softmax.
            for isa in Isa::available() {
                let x = &q[..lens[0]];
                let mut row = x.to_vec();
                softmax_scaled_row_with_isa(isa, &mut row, 0.7);
                let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
                let z: f64 = x.iter().map(|&v| ((v as f64 - max) * 0.7).exp()).sum();
                for (r, &v) in row.iter().zip(x) {
                    prop_assert!((*r as f64 - ((v as f64 - max) * 0.7).exp() / z).abs() < 1e-6);
                }
            }
        }
    }

    /// The reference on f64 inputs (also used for finite differences).
    fn reference64(q: &[f64], k: &[f64], v: &[f64], starts: &[usize], heads: usize) -> Vec<f64> {
        let total = *starts.last().unwrap();
        let d = q.len() / total;
        let dh = d / heads;
        let mut out = vec![0.0f64; total * d];
        for seq in starts.windows(2) {
            for h in 0..heads {
                for i in seq[0]..seq[1] {
                    let logits: Vec<f64> =
                        (seq[0]..seq[1]).map(|j| (0..dh).map(|c| q[i * d + h * dh + c] * k[j * d + h * dh + c]).sum::<f64>() / (dh as f64).sqrt()).collect();
                    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = logits.iter().map(|l| (l - max).exp()).sum();
                    for (jj, j) in (seq[0]..seq[1]).enumerate() {
                        let p = (logits[jj] - max).exp() / z;
                        for c in 0..dh {
                            out[i * d + h * dh + c] += p * v[j * d + h * dh + c];
                        }
                    }
                }
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn backward_matches_finite_differences(
            lens in proptest::collection::vec(1usize..7, 1..4), heads in 1usize..4, dh in 1usize..6, seed in any::<u64>()
        ) {
            use crate::testutil::*;
            let mut rng = Rng::new(seed);
            let starts = starts_of(&lens);
            let total = *starts.last().unwrap();
            let d = heads * dh;
            let (q, k, v, r) = (rng.normals(total * d, 1.0), rng.normals(total * d, 1.0), rng.normals(total * d, 1.0), rng.normals(total * d, 1.0));
            let (q64, k64, v64) = (to_f64(&q), to_f64(&k), to_f64(&v));
            let want_dq = numeric_grad(&q64, FD_STEP, |q| dot(&r, &reference64(q, &k64, &v64, &starts, heads)));
            let want_dk = numeric_grad(&k64, FD_STEP, |k| dot(&r, &reference64(&q64, k, &v64, &starts, heads)));
            let want_dv = numeric_grad(&v64, FD_STEP, |v| dot(&r, &reference64(&q64, &k64, v, &starts, heads)));
            let (mut dq, mut dk, mut dv) = (vec![0.5f32; total * d], vec![0.0f32; total * d], vec![0.0f32; total * d]);
            attention_backward(&q, &k, &v, &starts, heads, &r, &mut dq, &mut dk, &mut dv);
            dq.iter_mut().for_each(|g| *g -= 0.5);
            assert_grad("dq", &dq, &want_dq);
            assert_grad("dk", &dk, &want_dk);
            assert_grad("dv", &dv, &want_dv);
        }
    }

    #[test]
    fn backward_of_long_sequences_matches_f64() {
        // Long enough for the gemm's parallel paths; f64 closed-form backward as the reference.
        use crate::testutil::*;
        let (lens, heads, dh) = ([150usize, 1, 97], 3, 20);
        let starts = starts_of(&lens);
        let total = *starts.last().unwrap();
        let d = heads * dh;
        let mut rng = Rng::new(31);
        let (q, k, v, g) = (rng.normals(total * d, 1.0), rng.normals(total * d, 1.0), rng.normals(total * d, 1.0), rng.normals(total * d, 1.0));
        let (mut dq, mut dk, mut dv) = (vec![0.0f32; total * d], vec![0.0f32; total * d], vec![0.0f32; total * d]);
        attention_backward(&q, &k, &v, &starts, heads, &g, &mut dq, &mut dk, &mut dv);
        let (mut wq, mut wk, mut wv) = (vec![0.0f64; total * d], vec![0.0f64; total * d], vec![0.0f64; total * d]);
        let s = 1.0 / (dh as f64).sqrt();
        let at = |m: &[f32], i: usize, h: usize, c: usize| m[i * d + h * dh + c] as f64;
        for seq in starts.windows(2) {
            let rows: Vec<usize> = (seq[0]..seq[1]).collect();
            for h in 0..heads {
                for &i in &rows {
                    let logits: Vec<f64> = rows.iter().map(|&j| s * (0..dh).map(|c| at(&q, i, h, c) * at(&k, j, h, c)).sum::<f64>()).collect();
                    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = logits.iter().map(|l| (l - max).exp()).sum();
                    let p: Vec<f64> = logits.iter().map(|l| (l - max).exp() / z).collect();
                    let dp: Vec<f64> = rows.iter().map(|&j| (0..dh).map(|c| at(&g, i, h, c) * at(&v, j, h, c)).sum()).collect();
                    let dot: f64 = p.iter().zip(&dp).map(|(a, b)| a * b).sum();
                    for (jj, &j) in rows.iter().enumerate() {
                        let ds = s * p[jj] * (dp[jj] - dot);
                        for c in 0..dh {
                            wv[j * d + h * dh + c] += p[jj] * at(&g, i, h, c);
                            wq[i * d + h * dh + c] += ds * at(&k, j, h, c);
                            wk[j * d + h * dh + c] += ds * at(&q, i, h, c);
                        }
                    }
                }
            }
        }
        assert_close("dq", &dq, &wq, 1e-3, 1e-4);
        assert_close("dk", &dk, &wk, 1e-3, 1e-4);
        assert_close("dv", &dv, &wv, 1e-3, 1e-4);
    }
}
