//! Bidirectional multi-head self-attention over packed sequences:
//! `ctx_h = softmax(Q_h K_hᵀ / √dh) V_h` per sequence and head.
//!
//! Sequences are packed back to back (`starts[s]..starts[s+1]` are the rows of sequence
//! `s`), so no padding is stored or computed and no mask is needed: a token only sees the
//! tokens of its own sequence.
use super::simd::multiversion;
use rayon::prelude::*;

/// `q, k, v, ctx: [T × d]`, heads interleaved by column (head `h` owns columns
/// `h·dh .. (h+1)·dh`); `starts: [n_seqs + 1]`, increasing, `starts[n] = T`.
pub fn attention_forward(q: &[f32], k: &[f32], v: &[f32], starts: &[usize], heads: usize, ctx: &mut [f32]) {
    let total = *starts.last().unwrap_or(&0);
    let d = if total == 0 { return } else { q.len() / total };
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
    tasks.into_par_iter().for_each(|(start, len, h, out)| {
        head_attention(q, k, v, d, start, len, h * dh, dh, scale, out);
    });

    // Back to token-major [T × d].
    let mut seq_blocks = Vec::with_capacity(starts.len() - 1);
    let mut rest: &mut [f32] = ctx;
    for seq in starts.windows(2) {
        let (block, tail) = rest.split_at_mut((seq[1] - seq[0]) * d);
        seq_blocks.push((seq[0], block));
        rest = tail;
    }
    seq_blocks.into_par_iter().for_each(|(start, block)| {
        let len = block.len() / d;
        let src = &head_major[start * d..(start + len) * d];
        for h in 0..heads {
            let head = &src[h * len * dh..(h + 1) * len * dh];
            for i in 0..len {
                block[i * d + h * dh..i * d + (h + 1) * dh].copy_from_slice(&head[i * dh..(i + 1) * dh]);
            }
        }
    });
}

multiversion!(
    /// Attention of one head of one sequence: rows `start..start+len`, columns `col..col+dh`
    /// of `q, k, v` (row stride `d`); writes `out: [len × dh]`.
    fn head_attention / head_attention_with_isa (
        q: &[f32], k: &[f32], v: &[f32], d: usize, start: usize, len: usize, col: usize, dh: usize, scale: f32,
        out: &mut [f32]
    ) => head_attention_generic
);

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn head_attention_generic(
    q: &[f32], k: &[f32], v: &[f32], d: usize, start: usize, len: usize, col: usize, dh: usize, scale: f32,
    out: &mut [f32],
) {
    // K_hᵀ: [dh × len] so that one query's scores are `dh` contiguous axpys over the keys.
    let mut kt = vec![0.0f32; dh * len];
    for j in 0..len {
        let row = &k[(start + j) * d + col..(start + j) * d + col + dh];
        for c in 0..dh {
            kt[c * len + j] = row[c];
        }
    }
    let mut scores = vec![0.0f32; len];
    for i in 0..len {
        let qi = &q[(start + i) * d + col..(start + i) * d + col + dh];
        scores.fill(0.0);
        for c in 0..dh {
            let qc = qi[c] * scale;
            for (s, &kv) in scores.iter_mut().zip(&kt[c * len..(c + 1) * len]) {
                *s += qc * kv;
            }
        }
        let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
        let mut sum = 0.0f32;
        for s in scores.iter_mut() {
            *s = super::math::exp(*s - max);
            sum += *s;
        }
        let inv = 1.0 / sum;
        let o = &mut out[i * dh..(i + 1) * dh];
        o.fill(0.0);
        for (j, &p) in scores.iter().enumerate() {
            let p = p * inv;
            let vj = &v[(start + j) * d + col..(start + j) * d + col + dh];
            for (oc, &vc) in o.iter_mut().zip(vj) {
                *oc += p * vc;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::simd::Isa;
    use proptest::prelude::*;

    /// Padded-batch attention with an explicit mask, in f64: the textbook formula.
    fn reference(q: &[f32], k: &[f32], v: &[f32], starts: &[usize], heads: usize) -> Vec<f64> {
        let total = *starts.last().unwrap();
        let d = q.len() / total;
        let dh = d / heads;
        let mut out = vec![0.0f64; total * d];
        for seq in starts.windows(2) {
            for h in 0..heads {
                for i in seq[0]..seq[1] {
                    let logits: Vec<f64> = (seq[0]..seq[1])
                        .map(|j| (0..dh).map(|c| q[i * d + h * dh + c] as f64 * k[j * d + h * dh + c] as f64).sum::<f64>() / (dh as f64).sqrt())
                        .collect();
                    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = logits.iter().map(|l| (l - max).exp()).sum();
                    for (jj, j) in (seq[0]..seq[1]).enumerate() {
                        let p = (logits[jj] - max).exp() / z;
                        for c in 0..dh {
                            out[i * d + h * dh + c] += p * v[j * d + h * dh + c] as f64;
                        }
                    }
                }
            }
        }
        out
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
            // Every instruction set computes the same head.
            for isa in Isa::available() {
                let mut one = vec![0.0f32; lens[0] * dh];
                head_attention_with_isa(isa, &q, &k, &v, d, 0, lens[0], 0, dh, 1.0 / (dh as f32).sqrt(), &mut one);
                for i in 0..lens[0] {
                    for c in 0..dh {
                        prop_assert!((one[i * dh + c] as f64 - want[i * d + c]).abs() < 2e-5 * (1.0 + want[i * d + c].abs()));
                    }
                }
            }
        }
    }
}
