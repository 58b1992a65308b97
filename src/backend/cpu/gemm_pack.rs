//! Packing for the GEMM: copies of `B` blocks into `NR`-wide panels and of `A` strips into
//! the layout the microkernels read, plus the aligned per-thread scratch they live in.

use super::gemm::MatRef;
use std::cell::Cell;
use std::ops::Range;

/// One cache line of floats: the unit of allocation, so packed panels are aligned.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// A 64-byte-aligned, zero-initialised buffer of floats.
#[derive(Default)]
pub(crate) struct Aligned(Vec<Line>);

impl Aligned {
    pub(crate) fn zeroed(len: usize) -> Self {
        Aligned(vec![Line([0.0; 16]); len.div_ceil(16)])
    }

    pub(crate) fn as_slice(&self) -> &[f32] {
        // SAFETY: `Line` is `repr(C)` around `[f32; 16]` with size 64 and no padding, so the
        // lines are exactly `16 * len` contiguous, initialised floats.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast::<f32>(), self.0.len() * 16) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as in `as_slice`, borrowed mutably once through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast::<f32>(), self.0.len() * 16) }
    }
}

thread_local! {
    /// Packing scratch of the current thread, kept between calls.
    static SCRATCH: Cell<Aligned> = const { Cell::new(Aligned(Vec::new())) };
}

/// Runs `f` on at least `len` floats of 64-byte-aligned scratch owned by this thread.
///
/// The buffer is taken out of the thread-local while `f` runs, so a nested call (an
/// epilogue that itself multiplies) gets its own buffer instead of aliasing this one.
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = SCRATCH.take();
    if buf.as_slice().len() < len {
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
        } else if w == nr && b.rs == 1 && avx2 && nr % 8 == 0 {
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
    assert!(nr % 8 == 0 && out.len() >= kc * nr && src.len() >= (nr - 1) * cs + kc);
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
    use std::arch::x86_64::*;

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
        [
            _mm256_shuffle_ps::<0x44>(t0, t2),
            _mm256_shuffle_ps::<0xEE>(t0, t2),
            _mm256_shuffle_ps::<0x44>(t1, t3),
            _mm256_shuffle_ps::<0xEE>(t1, t3),
        ]
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
