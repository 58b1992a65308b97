//! The AVX512-VNNI int8 GEMM microkernel. It sums in i32 and dequantizes as it stores,
//! with parameters that travel inside the packed panels, so it lives apart from the
//! f32-accumulating vector kernels of [`super::kernel`]; it plugs into the same driver
//! through [`MicroKernel`].
use super::kernel::{dispatch_rows, MicroKernel};
use super::matrix::APanel;
use super::pack_int8::Int8Quad;
use std::arch::x86_64::*;

/// AVX512-VNNI int8: 12 × 32 (24 i32 accumulators, 2 B vectors of 16 column quads, one
/// broadcast row quad), each `vpdpbusd` four depth steps of `u8` A times `i8` B summed
/// exactly in i32; then dequantized with the parameters that follow the depth
/// ([`Int8Quad`]): `C (+)= s_i · s_j · (acc − z_i · Σ_p q_pj)`.
pub(crate) struct Avx512Vnni;

/// # Safety
/// As [`MicroKernel::tile`] with `rows = R`, `s` quads of depth and A a quantized strip
/// (`cs == 1`, `rs >= s + 2`), on a CPU with AVX512-VNNI.
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn vnni_tile<const R: usize>(s: usize, a: APanel<Int8Quad>, b: *const Int8Quad, c: *mut f32, ldc: usize, accumulate: bool) {
    debug_assert!(a.cs == 1 && a.rs >= s + 2);
    // SAFETY: the caller guarantees the ISA; A rows hold `s` quads then scale and zero
    // point, B holds `s` rows of 32 quads then a row of scales and a row of sums, and C
    // is writable at `r · ldc + j`, `r < R`, `j < 32`.
    unsafe {
        let mut acc = [[_mm512_setzero_si512(); 2]; R];
        for p in 0..s {
            let b0 = _mm512_loadu_si512(b.add(p * 32).cast());
            let b1 = _mm512_loadu_si512(b.add(p * 32 + 16).cast());
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_epi32((*a.ptr.add(r * a.rs + p)).0 as i32);
                acc[0] = _mm512_dpbusd_epi32(acc[0], x, b0);
                acc[1] = _mm512_dpbusd_epi32(acc[1], x, b1);
            }
        }
        let params = b.add(s * 32);
        let scale_b = [_mm512_loadu_ps(params.cast()), _mm512_loadu_ps(params.add(16).cast())];
        let sum_b = [_mm512_loadu_si512(params.add(32).cast()), _mm512_loadu_si512(params.add(48).cast())];
        for (r, acc) in acc.iter().enumerate() {
            let row = a.ptr.add(r * a.rs + s);
            let scale_a = _mm512_set1_ps(f32::from_bits((*row).0));
            let zero_a = _mm512_set1_epi32((*row.add(1)).0 as i32);
            for v in 0..2 {
                let exact = _mm512_sub_epi32(acc[v], _mm512_mullo_epi32(zero_a, sum_b[v]));
                let x = _mm512_mul_ps(_mm512_cvtepi32_ps(exact), _mm512_mul_ps(scale_a, scale_b[v]));
                let p = c.add(r * ldc + v * 16);
                _mm512_storeu_ps(p, if accumulate { _mm512_add_ps(_mm512_loadu_ps(p), x) } else { x });
            }
        }
    }
}

impl MicroKernel for Avx512Vnni {
    const MR: usize = 12;
    const NR: usize = 32;
    type Elem = Int8Quad;
    /// One depth block, whatever the depth: the quantization is per whole row of A and
    /// column of B. A panel is 4× denser than f32's (48 KiB at depth 1536, MiniLM's
    /// largest) and streams from L2.
    const B_PANEL_BYTES: usize = usize::MAX / 4;
    #[inline]
    unsafe fn tile(rows: usize, kc: usize, a: APanel<Int8Quad>, b: *const Int8Quad, c: *mut f32, ldc: usize, accumulate: bool) {
        let s = kc.div_ceil(4);
        // SAFETY: forwarded contract (A strips of this element are always quantized,
        // with their parameters after `s` quads).
        unsafe { dispatch_rows!(rows, [1 2 3 4 5 6 7 8 9 10 11 12], R => vnni_tile::<R>(s, a, b, c, ldc, accumulate)) }
    }
}
