//! Packing for the GEMM: copies of `B` blocks into `NR`-wide panels and of `A` strips into
//! the layout the microkernels read, plus the aligned per-thread scratch they live in.
//!
//! Panels hold [`PanelElem`]s: `f32` for the f32 kernels, [`Bf16Pair`] (two depth steps
//! rounded to bf16) for the bf16 kernel, `Int8Quad` (four quantized depth steps,
//! [`super::pack_int8`]) for the int8 kernel.

use super::matrix::{APanel, MatRef};
use std::cell::Cell;
use std::ops::Range;

/// What packed panels hold, and how operands are packed into them.
///
/// # Safety
/// Implementors are 4 bytes with alignment at most 4, and every bit pattern is a valid
/// value: packed buffers are zeroed `f32` lines reinterpreted as `[Self]`.
pub(crate) unsafe trait PanelElem: Copy + Send + Sync + 'static {
    /// Depth steps one element covers (1 for `f32`, 2 for a [`Bf16Pair`]): a panel of depth
    /// `kc` has `kc.div_ceil(DEPTH)` rows of elements.
    const DEPTH: usize;

    /// Elements after the depth that hold quantization parameters: rows after each packed
    /// B panel, elements after each packed row of A (0 unless quantized: see
    /// [`super::pack_int8::Int8Quad`]). Kernels read them, never multiply them.
    const PARAMS: usize = 0;

    /// Packs `B[depth, cols]` into `ceil(cols.len() / nr)` panels of `rows` rows of `nr`
    /// elements (`rows >= depth.len().div_ceil(DEPTH) + PARAMS`: a kernel may want the depth padded),
    /// zero-padded past the last column and the last depth step. `avx2` enables the AVX2
    /// transposing copy where one applies.
    fn pack_b(b: MatRef, depth: Range<usize>, cols: Range<usize>, nr: usize, rows: usize, out: &mut [Self], avx2: bool);

    /// Elements of scratch [`PanelElem::a_strip`] needs for a strip of `rows` rows of
    /// `elems` elements of `a`.
    fn a_scratch_len(a: &MatRef, rows: usize, elems: usize) -> usize;

    /// The strip `A[r0..r0+rows, pc..pc+kc]` as the microkernels read it: in place when the
    /// layout allows, else packed into `scratch` (of at least `a_scratch_len(a, padded.0,
    /// padded.1)` elements) as `padded.0` rows of `padded.1` elements, zero past `rows` and
    /// past `kc` (kernels that work on whole hardware tiles read the padding).
    fn a_strip(a: MatRef, r0: usize, rows: usize, pc: usize, kc: usize, padded: (usize, usize), scratch: &mut [Self]) -> APanel<Self>;
}

// SAFETY: `f32` is 4 bytes, 4-aligned, and every bit pattern is a float.
unsafe impl PanelElem for f32 {
    const DEPTH: usize = 1;

    /// The f32 kernels pad nothing: `rows == depth.len()`.
    fn pack_b(b: MatRef, depth: Range<usize>, cols: Range<usize>, nr: usize, rows: usize, out: &mut [f32], avx2: bool) {
        debug_assert_eq!(rows, depth.len());
        pack_b(b, depth, cols, nr, out, avx2)
    }

    fn a_scratch_len(a: &MatRef, rows: usize, elems: usize) -> usize {
        if a.cs == 1 {
            0
        } else {
            rows * elems
        }
    }

    /// Rows with contiguous columns are read in place (`cs == 1`); any other layout is
    /// packed column by column (`rs == 1`, `cs == rows`). The f32 kernels pad nothing:
    /// `padded == (rows, kc)`.
    fn a_strip(a: MatRef, r0: usize, rows: usize, pc: usize, kc: usize, padded: (usize, usize), scratch: &mut [f32]) -> APanel<f32> {
        debug_assert_eq!(padded, (rows, kc));
        if a.cs == 1 {
            APanel { ptr: a.data[r0 * a.rs + pc..].as_ptr(), rs: a.rs, cs: 1 }
        } else {
            let out = &mut scratch[..rows * kc];
            pack_a(a, r0, rows, pc, kc, out);
            APanel { ptr: out.as_ptr(), rs: 1, cs: rows }
        }
    }
}

/// Two consecutive depth steps `(k, k + 1)` of one row of A or one column of B, each rounded
/// to bf16 (to nearest, ties to even), `k` in the low half: one 32-bit lane of a `vdpbf16ps`
/// operand. A depth past the end of the matrix is a zero.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(transparent)]
pub(crate) struct Bf16Pair(pub(crate) u32);

impl Bf16Pair {
    fn new(even: f32, odd: f32) -> Bf16Pair {
        let bits = |x: f32| u32::from(half::bf16::from_f32(x).to_bits());
        Bf16Pair(bits(even) | bits(odd) << 16)
    }
}

// SAFETY: `Bf16Pair` is a transparent `u32`: 4 bytes, 4-aligned, any bit pattern valid.
unsafe impl PanelElem for Bf16Pair {
    const DEPTH: usize = 2;

    /// Scalar (it runs once per weight, when the model packs its weights).
    fn pack_b(b: MatRef, depth: Range<usize>, cols: Range<usize>, nr: usize, pairs: usize, out: &mut [Bf16Pair], _avx2: bool) {
        debug_assert!(pairs >= depth.len().div_ceil(2));
        let at = |p: usize, j: usize| if p < depth.end { b.at(p, j) } else { 0.0 };
        for (q, panel) in out[..cols.len().div_ceil(nr) * pairs * nr].chunks_exact_mut(pairs * nr).enumerate() {
            let j0 = cols.start + q * nr;
            for jj in 0..nr {
                let j = j0 + jj;
                for p2 in 0..pairs {
                    let p = depth.start + 2 * p2;
                    panel[p2 * nr + jj] = if j < cols.end { Bf16Pair::new(at(p, j), at(p + 1, j)) } else { Bf16Pair(0) };
                }
            }
        }
    }

    fn a_scratch_len(_a: &MatRef, rows: usize, elems: usize) -> usize {
        rows * elems
    }

    /// Always converted: row `r` becomes `pairs = padded.1` pairs at `r · pairs` (`cs == 1`),
    /// so the kernel addresses the strip as it does an f32 A read in place. Contiguous rows
    /// are converted with `vcvtne2ps2bf16`, which flushes subnormal inputs to zero; other
    /// layouts element by element.
    fn a_strip(a: MatRef, r0: usize, rows: usize, pc: usize, kc: usize, padded: (usize, usize), scratch: &mut [Bf16Pair]) -> APanel<Bf16Pair> {
        let (padded_rows, pairs) = padded;
        debug_assert!(padded_rows >= rows && pairs >= kc.div_ceil(2));
        let out = &mut scratch[..padded_rows * pairs];
        let (out_rows, out_pad) = out.split_at_mut(rows * pairs);
        out_pad.fill(Bf16Pair(0));
        for (r, row) in out_rows.chunks_exact_mut(pairs).enumerate() {
            let i = r0 + r;
            let (row, pad) = row.split_at_mut(kc.div_ceil(2));
            pad.fill(Bf16Pair(0));
            if a.cs == 1 {
                convert_row(&a.data[i * a.rs + pc..i * a.rs + pc + kc], row);
            } else {
                let at = |p: usize| if p < kc { a.at(i, pc + p) } else { 0.0 };
                for (p2, pair) in row.iter_mut().enumerate() {
                    *pair = Bf16Pair::new(at(2 * p2), at(2 * p2 + 1));
                }
            }
        }
        APanel { ptr: out.as_ptr(), rs: pairs, cs: 1 }
    }
}

/// `out[p] = pair(src[2p], src[2p + 1])` (a missing last element is zero), on the
/// AVX512-BF16 converter.
///
/// # Panics
/// If the CPU lacks AVX512-BF16 (bf16 panels are only packed for the bf16 kernel, which
/// runs on such CPUs only) or `out` is not `src.len().div_ceil(2)` long.
fn convert_row(src: &[f32], out: &mut [Bf16Pair]) {
    assert!(crate::backend::cpu::simd::bf16_dot_supported(), "this CPU has no AVX512-BF16");
    assert_eq!(out.len(), src.len().div_ceil(2));
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX512-BF16 (with AVX-512F) checked above; the lengths agree.
    unsafe {
        x86::convert_row_avx512bf16(src, out)
    }
}

/// One cache line of floats: the unit of allocation, so packed panels are aligned.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// A 64-byte-aligned, zero-initialised buffer of floats.
#[derive(Default)]
pub(crate) struct Aligned(Vec<Line>);

impl Aligned {
    /// At least `len` zeroed 4-byte elements.
    pub(crate) fn zeroed(len: usize) -> Self {
        Aligned(vec![Line([0.0; 16]); len.div_ceil(16)])
    }

    pub(crate) fn as_slice<T: PanelElem>(&self) -> &[T] {
        // SAFETY: `Line` is `repr(C)` around `[f32; 16]` with size 64 and no padding, so the
        // lines are exactly `16 * len` contiguous, initialised 4-byte values, which `T`
        // (4 bytes, alignment ≤ 4, any bit pattern valid) may view.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast::<T>(), self.0.len() * 16) }
    }

    pub(crate) fn as_mut_slice<T: PanelElem>(&mut self) -> &mut [T] {
        // SAFETY: as in `as_slice`, borrowed mutably once through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast::<T>(), self.0.len() * 16) }
    }
}

thread_local! {
    /// Packing scratch of the current thread, kept between calls.
    static SCRATCH: Cell<Aligned> = const { Cell::new(Aligned(Vec::new())) };
}

/// Runs `f` on at least `len` elements of 64-byte-aligned scratch owned by this thread.
///
/// The buffer is taken out of the thread-local while `f` runs, so a nested call (an
/// epilogue that itself multiplies) gets its own buffer instead of aliasing this one.
pub(crate) fn with_scratch<T: PanelElem, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    let mut buf = SCRATCH.take();
    if buf.as_slice::<T>().len() < len {
        buf = Aligned::zeroed(len);
    }
    let out = f(buf.as_mut_slice());
    SCRATCH.set(buf);
    out
}

/// Packs `B[depth, cols]` into `ceil(cols.len() / nr)` panels: panel `q`, row `p` holds
/// `B[depth.start + p, cols.start + q*nr..][..nr]` at `out[(q*kc + p)*nr..]` (`kc` the
/// depth), zero-padded past the last column. `avx2` enables the AVX2 transposing copy for
/// column-major `B` (`rs == 1`).
pub(crate) fn pack_b(b: MatRef, depth: Range<usize>, cols: Range<usize>, nr: usize, out: &mut [f32], avx2: bool) {
    let (pc, kc) = (depth.start, depth.len());
    for (q, out) in out[..cols.len().div_ceil(nr) * kc * nr].chunks_exact_mut(kc * nr).enumerate() {
        let j0 = cols.start + q * nr;
        let w = nr.min(cols.end - j0);
        if w == nr && b.cs == 1 {
            for (p, row) in out.chunks_exact_mut(nr).enumerate() {
                let start = (pc + p) * b.rs + j0;
                row.copy_from_slice(&b.data[start..start + nr]);
            }
        } else if w == nr && b.rs == 1 && avx2 && nr.is_multiple_of(8) {
            pack_transposed(&b.data[pc + j0 * b.cs..], b.cs, kc, nr, out);
        } else {
            for (p, row) in out.chunks_exact_mut(nr).enumerate() {
                for (j, x) in row.iter_mut().enumerate() {
                    *x = if j < w { b.at(pc + p, j0 + j) } else { 0.0 };
                }
            }
        }
    }
}

/// `out[p*nr + j] = src[j*cs + p]` for `p < kc`, `j < nr` (`nr` a multiple of 8), on AVX2.
#[cfg(target_arch = "x86_64")]
fn pack_transposed(src: &[f32], cs: usize, kc: usize, nr: usize, out: &mut [f32]) {
    assert!(nr.is_multiple_of(8) && out.len() >= kc * nr && src.len() >= (nr - 1) * cs + kc);
    // SAFETY: `pack_b` is only asked for the AVX2 copy when the CPU has AVX2 (its `avx2`
    // flag comes from the instruction set the caller checked), and the bounds hold.
    unsafe { x86::pack_transposed_avx2(src, cs, kc, nr, out) }
}

#[cfg(not(target_arch = "x86_64"))]
fn pack_transposed(_src: &[f32], _cs: usize, _kc: usize, _nr: usize, _out: &mut [f32]) {
    unreachable!("the AVX2 packer is only requested on x86-64")
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Bf16Pair;
    use std::arch::x86_64::*;

    /// See [`super::convert_row`]: 32 floats per `vcvtne2ps2bf16`, the tail masked.
    ///
    /// # Safety
    /// The CPU has AVX512-BF16 and AVX-512F; `out.len() == src.len().div_ceil(2)`.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn convert_row_avx512bf16(src: &[f32], out: &mut [Bf16Pair]) {
        let (s, o) = (src.as_ptr(), out.as_mut_ptr().cast::<i32>());
        let mut i = 0;
        // SAFETY: every access is inside `src` (`i + 32 <= len`, or masked to `len − i`
        // elements) and inside `out` (pairs `i/2..` of `len.div_ceil(2)`).
        unsafe {
            while i + 32 <= src.len() {
                let bf16 = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(s.add(i + 16)), _mm512_loadu_ps(s.add(i)));
                _mm512_storeu_si512(o.add(i / 2).cast(), std::mem::transmute::<__m512bh, __m512i>(bf16));
                i += 32;
            }
            let rest = src.len() - i;
            if rest > 0 {
                let mask = |n: usize| if n >= 16 { u16::MAX } else { (1u16 << n) - 1 };
                let lo = _mm512_maskz_loadu_ps(mask(rest), s.add(i));
                let hi = _mm512_maskz_loadu_ps(mask(rest.saturating_sub(16)), s.add(i + 16.min(rest)));
                let bf16 = _mm512_cvtne2ps_pbh(hi, lo);
                _mm512_mask_storeu_epi32(o.add(i / 2), mask(rest.div_ceil(2)), std::mem::transmute::<__m512bh, __m512i>(bf16));
            }
        }
    }

    /// See [`super::pack_transposed`]: 8 × 8 blocks transposed in registers, rows `t` and
    /// `t + 4` loaded into the two halves of one register so that only in-lane shuffles
    /// remain (16 per block instead of 24).
    ///
    /// # Safety
    /// The CPU has AVX2; `nr % 8 == 0`, `out.len() >= kc*nr`, `src.len() >= (nr-1)*cs + kc`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn pack_transposed_avx2(src: &[f32], cs: usize, kc: usize, nr: usize, out: &mut [f32]) {
        let (s, o) = (src.as_ptr(), out.as_mut_ptr());
        let kc8 = kc - kc % 8;
        for p in (0..kc8).step_by(8) {
            for j in (0..nr).step_by(8) {
                for half in [0, 4] {
                    // SAFETY: rows `j..j+8` of `src` hold `kc >= p+8` floats each, and
                    // `out` holds rows `p..p+8` of `nr >= j+8` floats (caller's bounds).
                    unsafe {
                        let row = |t: usize| s.add((j + t) * cs + p + half);
                        let x: [__m256; 4] = std::array::from_fn(|t| _mm256_loadu2_m128(row(t + 4), row(t)));
                        for (t, v) in transpose4x2(x).into_iter().enumerate() {
                            _mm256_storeu_ps(o.add((p + half + t) * nr + j), v);
                        }
                    }
                }
            }
        }
        for p in kc8..kc {
            for j in 0..nr {
                out[p * nr + j] = src[j * cs + p];
            }
        }
    }

    /// Transposes the two 4 × 4 matrices held in the low and the high lanes of `x`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn transpose4x2(x: [__m256; 4]) -> [__m256; 4] {
        let t0 = _mm256_unpacklo_ps(x[0], x[1]);
        let t1 = _mm256_unpackhi_ps(x[0], x[1]);
        let t2 = _mm256_unpacklo_ps(x[2], x[3]);
        let t3 = _mm256_unpackhi_ps(x[2], x[3]);
        [_mm256_shuffle_ps::<0x44>(t0, t2), _mm256_shuffle_ps::<0xEE>(t0, t2), _mm256_shuffle_ps::<0x44>(t1, t3), _mm256_shuffle_ps::<0xEE>(t1, t3)]
    }
}

/// Packs strip rows `r0..r0+rows` of `A[.., pc..pc+kc]` as `out[p*rows + r]`.
pub(crate) fn pack_a(a: MatRef, r0: usize, rows: usize, pc: usize, kc: usize, out: &mut [f32]) {
    for (p, col) in out[..kc * rows].chunks_exact_mut(rows).enumerate() {
        if a.rs == 1 {
            let start = r0 + (pc + p) * a.cs;
            col.copy_from_slice(&a.data[start..start + rows]);
        } else {
            for (r, x) in col.iter_mut().enumerate() {
                *x = a.at(r0 + r, pc + p);
            }
        }
    }
}
