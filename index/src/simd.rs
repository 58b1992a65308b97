//! Inner-product kernels: AVX2+FMA (and F16C for half precision) chosen at run time with
//! `is_x86_feature_detected!`, with a portable scalar fallback.
//!
//! Setting the environment variable `RMX_INDEX_SIMD=scalar` before the first search forces
//! the scalar kernels (used by CI to run the whole test suite on the fallback path).

use half::f16;
use std::sync::OnceLock;

/// Which kernel family is in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Scalar,
    /// AVX2 + FMA + F16C.
    Avx2,
}

/// The kernel table, chosen once per process.
#[derive(Clone, Copy)]
pub struct Kernels {
    pub level: Level,
    /// `q · v` for a stored f32 vector.
    pub dot_f32: fn(&[f32], &[f32]) -> f32,
    /// `q · v` for a stored f16 vector (raw bits).
    pub dot_f16: fn(&[f32], &[f16]) -> f32,
    /// f16 → f32 conversion of a whole slice (`src.len() == dst.len()`).
    pub f16_to_f32: fn(&[f16], &mut [f32]),
}

static KERNELS: OnceLock<Kernels> = OnceLock::new();

/// The scalar kernels (always available; also tested against the SIMD ones).
pub const SCALAR: Kernels = Kernels { level: Level::Scalar, dot_f32: dot_f32_scalar, dot_f16: dot_f16_scalar, f16_to_f32: f16_to_f32_scalar };

/// The best kernels for this CPU (detected once).
#[inline]
pub fn kernels() -> &'static Kernels {
    KERNELS.get_or_init(detect)
}

fn detect() -> Kernels {
    if std::env::var("RMX_INDEX_SIMD").map(|v| v == "scalar").unwrap_or(false) {
        return SCALAR;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(k) = avx2::kernels() {
            return k;
        }
    }
    SCALAR
}

/// The AVX2 kernels if this CPU has AVX2, FMA and F16C.
pub fn avx2_kernels() -> Option<Kernels> {
    #[cfg(target_arch = "x86_64")]
    {
        avx2::kernels()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// Dot product with the process-wide kernels.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    (kernels().dot_f32)(a, b)
}

/// Scalar f32 dot product, 8 independent accumulators (the compiler vectorises it with
/// SSE2 on x86-64 even without run-time detection).
pub fn dot_f32_scalar(a: &[f32], b: &[f32]) -> f32 {
    dot_scalar(a, b, |y| y)
}

/// Scalar f32·f16 dot product.
pub fn dot_f16_scalar(a: &[f32], b: &[f16]) -> f32 {
    dot_scalar(a, b, f16::to_f32)
}

/// `Σ a[i]·widen(b[i])` with 8 independent accumulators, summed in a fixed order.
#[inline(always)]
fn dot_scalar<T: Copy>(a: &[f32], b: &[T], widen: impl Fn(T) -> f32) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * widen(y[i]);
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, &y) in ra.iter().zip(rb) {
        s += x * widen(y);
    }
    s
}

/// Scalar f16 → f32 conversion.
pub fn f16_to_f32_scalar(src: &[f16], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s.to_f32();
    }
}

/// Hint the CPU to start loading the first `bytes` of `ptr` into cache (no-op off x86-64).
#[inline(always)]
pub fn prefetch(ptr: *const u8, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let mut off = 0;
        while off < bytes {
            // SAFETY: prefetch never faults, whatever the address; `wrapping_add` keeps the
            // pointer arithmetic defined even past the end of the allocation.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(ptr.wrapping_add(off) as *const i8) };
            off += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (ptr, bytes);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Kernels, Level};
    use half::f16;
    use std::arch::x86_64::*;

    pub fn kernels() -> Option<Kernels> {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c") {
            Some(Kernels { level: Level::Avx2, dot_f32, dot_f16, f16_to_f32 })
        } else {
            None
        }
    }

    fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: this function is only reachable through the table built by `kernels()`,
        // which checked avx2, fma and f16c at run time.
        unsafe { dot_f32_impl(a, b) }
    }

    fn dot_f16(a: &[f32], b: &[f16]) -> f32 {
        // SAFETY: as above (features checked before the table is handed out).
        unsafe { dot_f16_impl(a, b) }
    }

    fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
        // SAFETY: as above (features checked before the table is handed out).
        unsafe { f16_to_f32_impl(src, dst) }
    }

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps::<1>(v);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<0x55>(s, s));
        _mm_cvtss_f32(s)
    }

    /// SAFETY: requires AVX2 and FMA. All loads stay within `[0, n)` of both slices.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_f32_impl(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut acc2 = _mm256_setzero_ps();
        let mut acc3 = _mm256_setzero_ps();
        let mut i = 0;
        while i + 32 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 8)), _mm256_loadu_ps(pb.add(i + 8)), acc1);
            acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 16)), _mm256_loadu_ps(pb.add(i + 16)), acc2);
            acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 24)), _mm256_loadu_ps(pb.add(i + 24)), acc3);
            i += 32;
        }
        while i + 8 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            i += 8;
        }
        let mut s = hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
        while i < n {
            s += *pa.add(i) * *pb.add(i);
            i += 1;
        }
        s
    }

    /// SAFETY: requires AVX2, FMA and F16C. All loads stay within `[0, n)` of both slices
    /// (8 halves = 16 bytes per `_mm_loadu_si128`).
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_f16_impl(a: &[f32], b: &[f16]) -> f32 {
        let n = a.len().min(b.len());
        let pa = a.as_ptr();
        let pb = b.as_ptr() as *const u16;
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut acc2 = _mm256_setzero_ps();
        let mut acc3 = _mm256_setzero_ps();
        let mut i = 0;
        macro_rules! h {
            ($p:expr) => {
                _mm256_cvtph_ps(_mm_loadu_si128($p as *const __m128i))
            };
        }
        while i + 32 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), h!(pb.add(i)), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 8)), h!(pb.add(i + 8)), acc1);
            acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 16)), h!(pb.add(i + 16)), acc2);
            acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 24)), h!(pb.add(i + 24)), acc3);
            i += 32;
        }
        while i + 8 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), h!(pb.add(i)), acc0);
            i += 8;
        }
        let mut s = hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
        while i < n {
            s += *pa.add(i) * b[i].to_f32();
            i += 1;
        }
        s
    }

    /// SAFETY: requires F16C and AVX. Loads/stores stay within `[0, n)`.
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn f16_to_f32_impl(src: &[f16], dst: &mut [f32]) {
        let n = src.len().min(dst.len());
        let ps = src.as_ptr() as *const u16;
        let pd = dst.as_mut_ptr();
        let mut i = 0;
        while i + 8 <= n {
            _mm256_storeu_ps(pd.add(i), _mm256_cvtph_ps(_mm_loadu_si128(ps.add(i) as *const __m128i)));
            i += 8;
        }
        while i < n {
            *pd.add(i) = src[i].to_f32();
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn reference(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }

    fn check(k: &Kernels) {
        for n in [0, 1, 7, 8, 9, 31, 32, 33, 100, 384, 1152, 1155] {
            let a = data(n, 1);
            let b = data(n, 2);
            let bh: Vec<f16> = b.iter().map(|&x| f16::from_f32(x)).collect();
            let bh32: Vec<f32> = bh.iter().map(|x| x.to_f32()).collect();
            let tol = 1e-5 * (n as f64 + 1.0);
            let r = reference(&a, &b);
            assert!(((k.dot_f32)(&a, &b) as f64 - r).abs() < tol, "{:?} f32 n={n}", k.level);
            let rh = reference(&a, &bh32);
            assert!(((k.dot_f16)(&a, &bh) as f64 - rh).abs() < tol, "{:?} f16 n={n}", k.level);
            let mut out = vec![0f32; n];
            (k.f16_to_f32)(&bh, &mut out);
            assert_eq!(out, bh32);
        }
    }

    #[test]
    fn scalar_kernels_match_reference() {
        check(&SCALAR);
    }

    #[test]
    fn simd_kernels_match_reference() {
        if let Some(k) = avx2_kernels() {
            check(&k);
        } else {
            eprintln!("AVX2/FMA/F16C not available: SIMD kernels not tested on this CPU");
        }
    }
}
