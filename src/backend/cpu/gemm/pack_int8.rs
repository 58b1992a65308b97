//! int8 operands of the VNNI GEMM: the quantization of `A` rows and `B` columns and the
//! packed layout that carries their parameters.
//!
//! `vpdpbusd` multiplies unsigned bytes by signed bytes, four depth steps per 32-bit lane,
//! and sums them exactly in i32. So:
//! - a column `j` of `B` (a weight column, fixed) is quantized symmetrically to `i8`:
//!   `b ≈ s_j · q`, `s_j = max|b| / 127`, `q ∈ [−127, 127]`;
//! - a row `i` of `A` (activations, new every call) asymmetrically to `u8`:
//!   `a ≈ s_i · (q − z_i)`, `s_i = (max(a, 0) − min(a, 0)) / 255`, `z_i` the `u8` that
//!   stands for 0, so a row of all-positive values (after GELU) or of one sign keeps all
//!   255 steps for its range;
//! - `C[i, j] = s_i · s_j · (Σ_p q_ip · q_pj − z_i · Σ_p q_pj)`, the integer part exact.
//!
//! Each row of `A` and each column of `B` is quantized as a whole (the int8 kernel takes
//! the whole depth as one block), rounding to nearest, ties to even. The parameters travel
//! with the data, as [`PanelElem::PARAMS`] = 2 elements after the depth: after a packed
//! `A` row its scale (f32 bits) and zero point; after a packed `B` panel a row of its
//! columns' scales and a row of their sums `Σ_p q_pj`.

use super::matrix::{APanel, MatRef};
use super::pack::PanelElem;
use std::ops::Range;

/// Four consecutive depth steps of one row of `A` (as `u8`) or one column of `B` (as
/// `i8`), step `4p + t` in byte `t` (little-endian): one 32-bit lane of a `vpdpbusd`
/// operand. Also a quantization parameter's slot (an f32 or i32 in the same 4 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(transparent)]
pub(crate) struct Int8Quad(pub(crate) u32);

impl Int8Quad {
    fn from_bytes(bytes: [u8; 4]) -> Int8Quad {
        Int8Quad(u32::from_le_bytes(bytes))
    }
}

/// Asymmetric `u8` quantization of one row of `A`: `out[p]` is `x[p]` in steps of the
/// returned scale above the returned zero point (`x ≈ scale · (out − zero)`). A row of
/// zeros (or one whose range is not finite) gets scale 0 and zero point 0.
pub fn quantize_row_u8(x: &[f32], out: &mut [u8]) -> (f32, i32) {
    assert_eq!(x.len(), out.len(), "row and output lengths differ");
    let (lo, hi) = x.iter().fold((0.0f32, 0.0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let (scale, inv, zero) = row_params(lo, hi);
    for (o, &v) in out.iter_mut().zip(x) {
        *o = quantize_u8(v, inv, zero);
    }
    (scale, zero)
}

/// The parameters of a row whose values lie in `[lo, hi]` (`lo <= 0 <= hi`): scale,
/// its reciprocal and the zero point.
fn row_params(lo: f32, hi: f32) -> (f32, f32, i32) {
    let range = hi - lo;
    if !(range > 0.0 && range.is_finite()) {
        return (0.0, 0.0, 0);
    }
    let scale = range / 255.0;
    let inv = 1.0 / scale;
    let zero = (-lo * inv).round_ties_even().clamp(0.0, 255.0) as i32;
    (scale, inv, zero)
}

/// One value of a row: `clamp(round(v · inv) + zero, 0, 255)` (what `vcvtps2dq`,
/// `vpaddd`, `vpmaxsd` and `vpmovusdb` compute; a NaN becomes 0).
#[inline]
fn quantize_u8(v: f32, inv: f32, zero: i32) -> u8 {
    let q = (v * inv).round_ties_even();
    if q.is_nan() {
        return 0;
    }
    (q + zero as f32).clamp(0.0, 255.0) as u8
}

/// Symmetric `i8` quantization of one column of `B`: `out[p] ≈ x[p] / scale`, in
/// `[−127, 127]`. Returns the scale (0 for a column of zeros) and `Σ out[p]`.
pub fn quantize_column_i8(x: &[f32], out: &mut [i8]) -> (f32, i32) {
    assert_eq!(x.len(), out.len(), "column and output lengths differ");
    let max = x.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
    if !(max > 0.0 && max.is_finite()) {
        out.fill(0);
        return (0.0, 0);
    }
    let scale = max / 127.0;
    let inv = 1.0 / scale;
    let mut sum = 0;
    for (o, &v) in out.iter_mut().zip(x) {
        *o = (v * inv).round_ties_even().clamp(-127.0, 127.0) as i8;
        sum += i32::from(*o);
    }
    (scale, sum)
}

// SAFETY: `Int8Quad` is a transparent `u32`: 4 bytes, 4-aligned, any bit pattern valid.
unsafe impl PanelElem for Int8Quad {
    const DEPTH: usize = 4;
    const PARAMS: usize = 2;

    /// Each column quantized over `depth` (scalar: it runs once per weight, when the model
    /// packs its weights); rows `quads..` of a panel: scales, then sums.
    fn pack_b(b: MatRef, depth: Range<usize>, cols: Range<usize>, nr: usize, rows: usize, out: &mut [Int8Quad], _avx2: bool) {
        let quads = rows - Self::PARAMS;
        debug_assert!(quads >= depth.len().div_ceil(4));
        let mut column = vec![0.0f32; depth.len()];
        let mut q = vec![0i8; 4 * quads];
        for (p, panel) in out[..cols.len().div_ceil(nr) * rows * nr].chunks_exact_mut(rows * nr).enumerate() {
            for jj in 0..nr {
                let j = cols.start + p * nr + jj;
                let (scale, sum) = if j < cols.end {
                    for (x, d) in column.iter_mut().zip(depth.clone()) {
                        *x = b.at(d, j);
                    }
                    quantize_column_i8(&column, &mut q[..depth.len()])
                } else {
                    q.fill(0);
                    (0.0, 0)
                };
                for (p4, bytes) in q.chunks_exact(4).enumerate() {
                    panel[p4 * nr + jj] = Int8Quad::from_bytes(std::array::from_fn(|t| bytes[t] as u8));
                }
                panel[quads * nr + jj] = Int8Quad(scale.to_bits());
                panel[(quads + 1) * nr + jj] = Int8Quad(sum as u32);
            }
        }
    }

    fn a_scratch_len(_a: &MatRef, rows: usize, elems: usize) -> usize {
        rows * elems
    }

    /// Always quantized: row `r` becomes `padded.1 − 2` quads, then its scale and zero
    /// point, at `r · padded.1` (`cs == 1`). Contiguous rows are quantized with AVX-512
    /// where the CPU has it (the same values as [`quantize_row_u8`], bit for bit).
    fn a_strip(a: MatRef, r0: usize, rows: usize, pc: usize, kc: usize, padded: (usize, usize), scratch: &mut [Int8Quad]) -> APanel<Int8Quad> {
        let (padded_rows, elems) = padded;
        let quads = elems - Self::PARAMS;
        debug_assert!(padded_rows >= rows && quads >= kc.div_ceil(4));
        let out = &mut scratch[..padded_rows * elems];
        let (out_rows, out_pad) = out.split_at_mut(rows * elems);
        out_pad.fill(Int8Quad(0));
        let mut gathered = Vec::new();
        let mut bytes = vec![0u8; 4 * quads];
        for (r, row) in out_rows.chunks_exact_mut(elems).enumerate() {
            let i = r0 + r;
            let src = if a.cs == 1 {
                &a.data[i * a.rs + pc..i * a.rs + pc + kc]
            } else {
                gathered.clear();
                gathered.extend((pc..pc + kc).map(|p| a.at(i, p)));
                &gathered[..]
            };
            let (scale, zero) = quantize_row(src, &mut bytes[..kc]);
            bytes[kc..].fill(0);
            for (quad, b) in row[..quads].iter_mut().zip(bytes.chunks_exact(4)) {
                *quad = Int8Quad::from_bytes([b[0], b[1], b[2], b[3]]);
            }
            row[quads] = Int8Quad(scale.to_bits());
            row[quads + 1] = Int8Quad(zero as u32);
        }
        APanel { ptr: out.as_ptr(), rs: elems, cs: 1 }
    }
}

/// [`quantize_row_u8`], on AVX-512 where the CPU has it.
fn quantize_row(x: &[f32], out: &mut [u8]) -> (f32, i32) {
    #[cfg(target_arch = "x86_64")]
    if crate::backend::cpu::simd::Isa::Avx512.is_supported() {
        // SAFETY: AVX-512F checked just above; the lengths are checked inside.
        return unsafe { x86::quantize_row_u8_avx512(x, out) };
    }
    quantize_row_u8(x, out)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// [`super::quantize_row_u8`] on 16 lanes: the same operations in the same order
    /// (min/max, then `round(v · inv) + zero` clamped), so the same bytes.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn quantize_row_u8_avx512(x: &[f32], out: &mut [u8]) -> (f32, i32) {
        assert_eq!(x.len(), out.len(), "row and output lengths differ");
        let n = x.len();
        let mask = |i: usize| if n - i >= 16 { u16::MAX } else { (1u16 << (n - i)) - 1 };
        let (mut lo, mut hi) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut i = 0;
        while i < n {
            // SAFETY: the mask limits the load to `x[i..n]`; masked-off lanes read as 0.0,
            // which the range already holds.
            let v = unsafe { _mm512_maskz_loadu_ps(mask(i), x.as_ptr().add(i)) };
            // With a NaN operand `vminps`/`vmaxps` return the second one: NaNs are skipped,
            // as `f32::min`/`max` skip them in the scalar fold.
            lo = _mm512_min_ps(v, lo);
            hi = _mm512_max_ps(v, hi);
            i += 16;
        }
        let (scale, inv, zero) = super::row_params(_mm512_reduce_min_ps(lo), _mm512_reduce_max_ps(hi));
        let (inv_v, zero_v, zeros) = (_mm512_set1_ps(inv), _mm512_set1_epi32(zero), _mm512_setzero_si512());
        let mut i = 0;
        while i < n {
            let m = mask(i);
            // SAFETY: as above; the store writes the `m` lanes' bytes, inside `out[i..n]`.
            unsafe {
                let v = _mm512_maskz_loadu_ps(m, x.as_ptr().add(i));
                // Round to nearest even (the default mode); NaN becomes i32::MIN, then 0.
                let q = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v, inv_v)), zero_v);
                let q = _mm512_max_epi32(q, zeros);
                _mm512_mask_cvtusepi32_storeu_epi8(out.as_mut_ptr().add(i).cast(), m, q);
            }
            i += 16;
        }
        (scale, zero)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows with the edges: empty, all zero, one sign, both signs, NaN, ties, lengths
    /// around the 16-lane vectors.
    fn rows() -> Vec<Vec<f32>> {
        let mut rows = vec![vec![], vec![0.0; 5], vec![0.5, 1.0, 2.0], vec![-3.0, -1.0], vec![f32::NAN, 1.0, -1.0]];
        rows.push((0..255).map(|i| i as f32 * 0.5).collect());
        for n in [1, 15, 16, 17, 33, 384] {
            rows.push((0..n).map(|i| ((i * 37 % 101) as f32 - 40.0) / 7.0).collect());
        }
        rows
    }

    #[test]
    fn row_quantization_round_trips_within_half_a_step() {
        for x in rows().into_iter().filter(|x| x.iter().all(|v| v.is_finite())) {
            let mut q = vec![0u8; x.len()];
            let (scale, zero) = quantize_row_u8(&x, &mut q);
            for (&v, &q) in x.iter().zip(&q) {
                let back = scale * (i32::from(q) - zero) as f32;
                assert!((back - v).abs() <= 0.5 * scale * 1.0001 + 1e-6, "{v} -> {q} -> {back} (scale {scale}, zero {zero})");
            }
            if x.contains(&0.0) {
                let (i, _) = x.iter().enumerate().find(|(_, &v)| v == 0.0).unwrap();
                assert_eq!(i32::from(q[i]), zero, "0.0 must be exactly the zero point");
            }
        }
    }

    #[test]
    fn column_quantization_round_trips_within_half_a_step() {
        let x: Vec<f32> = (0..100).map(|i| ((i * 13 % 29) as f32 - 14.0) / 3.0).collect();
        let mut q = vec![0i8; x.len()];
        let (scale, sum) = quantize_column_i8(&x, &mut q);
        assert_eq!(sum, q.iter().map(|&q| i32::from(q)).sum::<i32>());
        assert!(q.iter().any(|&q| q.abs() == 127));
        for (&v, &q) in x.iter().zip(&q) {
            assert!((scale * f32::from(q) - v).abs() <= 0.5 * scale * 1.0001);
        }
        assert_eq!(quantize_column_i8(&[0.0, 0.0], &mut [1, 1]), (0.0, 0));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_row_quantization_equals_scalar() {
        if !crate::backend::cpu::simd::Isa::Avx512.is_supported() {
            eprintln!("SKIPPED: this CPU has no AVX-512F");
            return;
        }
        for x in rows() {
            let (mut want, mut got) = (vec![7u8; x.len()], vec![9u8; x.len()]);
            let want_params = quantize_row_u8(&x, &mut want);
            // SAFETY: AVX-512F checked above.
            let got_params = unsafe { x86::quantize_row_u8_avx512(&x, &mut got) };
            assert_eq!((got, got_params), (want, want_params), "row {x:?}");
        }
    }
}
