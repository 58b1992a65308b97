//! GEMM microkernels: one register-blocked `R × NR` tile of `C (+)= A · B` over `kc` steps.
//!
//! The tile body is written once, generic over a SIMD vector type ([`Vector`]); each
//! instruction set instantiates it inside a `#[target_feature]` function so that the vector
//! operations inline to single instructions. `B` comes packed (`kc` rows of `NR` contiguous
//! floats); `A` is read through strides, so a row-major `A` needs no packing.

/// A SIMD vector of `f32` lanes. Every method is `unsafe`: the CPU must support the vector's
/// instruction set, and pointers must be valid for `LANES` floats.
pub(crate) trait Vector: Copy {
    const LANES: usize;
    unsafe fn zero() -> Self;
    unsafe fn splat(x: f32) -> Self;
    unsafe fn load(p: *const f32) -> Self;
    unsafe fn store(self, p: *mut f32);
    /// `self * b + acc`.
    unsafe fn mul_add(self, b: Self, acc: Self) -> Self;
    unsafe fn add(self, b: Self) -> Self;
}

/// Where a microkernel reads its strip of `A`: element `(r, p)` is at `ptr + r * rs + p * cs`.
#[derive(Clone, Copy)]
pub(crate) struct APanel {
    pub ptr: *const f32,
    pub rs: usize,
    pub cs: usize,
}

/// A family of microkernels: tiles of up to `MR` rows and exactly `NR` columns.
pub(crate) trait MicroKernel {
    const MR: usize;
    const NR: usize;
    /// `C[0..rows, 0..NR] (+)= A_strip · B_panel` (`+=` when `accumulate`).
    ///
    /// # Safety
    /// The CPU supports the kernel's instruction set; `1 <= rows <= MR`; `a` is readable at
    /// every `(r, p)`, `r < rows`, `p < kc`, and is either row-contiguous (`cs == 1`) or
    /// packed (`rs == 1`, `cs == rows`); `b` is readable for `kc * NR` floats; `c` is
    /// readable and writable at `r * ldc + j` for `r < rows`, `j < NR`.
    unsafe fn tile(rows: usize, kc: usize, a: APanel, b: *const f32, c: *mut f32, ldc: usize, accumulate: bool);
}

/// The tile body: `R × (NV · LANES)` accumulators held in registers, the depth loop
/// unrolled `U` times (AVX-512 uses 1: unrolling its 12 × 32 tile makes LLVM hoist the
/// broadcasts of later steps and spill them). `A` is either packed
/// (`PACKED`: `rs = 1`, `cs = R`) or read in place with contiguous rows (`cs = 1`); fixing
/// one stride at compile time keeps the address arithmetic out of the FMA loop.
///
/// # Safety
/// As [`MicroKernel::tile`] with `rows = R`, `NR = NV * V::LANES`, and `a` laid out as
/// `PACKED` says.
#[inline(always)]
unsafe fn tile<V: Vector, const R: usize, const NV: usize, const U: usize, const PACKED: bool>(
    kc: usize,
    a: APanel,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    // SAFETY: the caller guarantees the ISA and that every pointer below stays in bounds.
    unsafe {
        let mut acc = [[V::zero(); NV]; R];
        let mut p = 0;
        while p + U <= kc {
            for u in 0..U {
                step::<V, R, NV, PACKED>(&mut acc, a, b, p + u);
            }
            p += U;
        }
        while p < kc {
            step::<V, R, NV, PACKED>(&mut acc, a, b, p);
            p += 1;
        }
        for (r, acc) in acc.iter().enumerate() {
            for (v, &acc) in acc.iter().enumerate() {
                let p = c.add(r * ldc + v * V::LANES);
                let sum = if accumulate { V::load(p).add(acc) } else { acc };
                sum.store(p);
            }
        }
    }
}

/// One depth step of [`tile`]: `acc += A[.., p] · B[p, ..]`.
///
/// # Safety
/// As [`tile`], for this `p < kc`.
#[inline(always)]
unsafe fn step<V: Vector, const R: usize, const NV: usize, const PACKED: bool>(
    acc: &mut [[V; NV]; R],
    a: APanel,
    b: *const f32,
    p: usize,
) {
    // SAFETY: forwarded contract.
    unsafe {
        let mut bv = [V::zero(); NV];
        for (v, bv) in bv.iter_mut().enumerate() {
            *bv = V::load(b.add((p * NV + v) * V::LANES));
        }
        for (r, acc) in acc.iter_mut().enumerate() {
            let x = V::splat(*a.ptr.add(if PACKED { p * R + r } else { r * a.rs + p }));
            for (acc, bv) in acc.iter_mut().zip(bv) {
                *acc = x.mul_add(bv, *acc);
            }
        }
    }
}

/// [`tile`] for either layout of `A`, chosen at run time.
///
/// # Safety
/// As [`MicroKernel::tile`] with `rows = R`, `NR = NV * V::LANES`.
#[inline(always)]
unsafe fn tile_any<V: Vector, const R: usize, const NV: usize, const U: usize>(
    kc: usize,
    a: APanel,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    // SAFETY: forwarded contract; the branch picks the layout `a` has.
    unsafe {
        if a.cs == 1 {
            tile::<V, R, NV, U, false>(kc, a, b, c, ldc, accumulate)
        } else {
            debug_assert!(a.rs == 1 && a.cs == R, "A strip neither packed nor row-contiguous");
            tile::<V, R, NV, U, true>(kc, a, b, c, ldc, accumulate)
        }
    }
}

/// Evaluates `$call` with the const `$R` bound to the run-time row count `$rows`, for each
/// of the listed literals.
macro_rules! dispatch_rows {
    ($rows:expr, [$($r:literal)*], $R:ident => $call:expr) => {
        match $rows {
            $($r => {
                const $R: usize = $r;
                $call
            })*
            rows => unreachable!("tile of {rows} rows"),
        }
    };
}

/// Four portable lanes: plain Rust arithmetic the compiler maps onto whatever SIMD the
/// target has (SSE2 on any x86-64, NEON on aarch64).
#[derive(Clone, Copy)]
pub(crate) struct F32x4([f32; 4]);

impl Vector for F32x4 {
    const LANES: usize = 4;
    #[inline(always)]
    unsafe fn zero() -> Self {
        F32x4([0.0; 4])
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        F32x4([x; 4])
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees `p` is readable for 4 floats.
        F32x4(unsafe { p.cast::<[f32; 4]>().read_unaligned() })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees `p` is writable for 4 floats.
        unsafe { p.cast::<[f32; 4]>().write_unaligned(self.0) }
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, acc: Self) -> Self {
        // Not `f32::mul_add`: without hardware FMA that is a slow library call.
        F32x4(std::array::from_fn(|i| self.0[i] * b.0[i] + acc.0[i]))
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        F32x4(std::array::from_fn(|i| self.0[i] + b.0[i]))
    }
}

/// The portable kernel, `MR × 4·NV`. The scalar path uses `Portable<4, 2>`; tests also run
/// it at the AVX-512 geometry to cover the blocking logic of that path on any machine.
pub(crate) struct Portable<const MR: usize, const NV: usize>;

impl<const MR: usize, const NV: usize> MicroKernel for Portable<MR, NV> {
    const MR: usize = MR;
    const NR: usize = 4 * NV;
    #[inline]
    unsafe fn tile(rows: usize, kc: usize, a: APanel, b: *const f32, c: *mut f32, ldc: usize, accumulate: bool) {
        debug_assert!(rows <= MR);
        // SAFETY: forwarded contract; portable code needs no particular ISA.
        unsafe {
            dispatch_rows!(rows, [1 2 3 4 5 6 7 8 9 10 11 12], R => tile_any::<F32x4, R, NV, 4>(kc, a, b, c, ldc, accumulate))
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{tile_any, APanel, MicroKernel, Vector};
    use std::arch::x86_64::*;

    #[derive(Clone, Copy)]
    pub(crate) struct F32x8(__m256);

    impl Vector for F32x8 {
        const LANES: usize = 8;
        #[inline(always)]
        unsafe fn zero() -> Self {
            // SAFETY: the caller guarantees AVX.
            F32x8(unsafe { _mm256_setzero_ps() })
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            // SAFETY: the caller guarantees AVX.
            F32x8(unsafe { _mm256_set1_ps(x) })
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            // SAFETY: the caller guarantees AVX and 8 readable floats at `p`.
            F32x8(unsafe { _mm256_loadu_ps(p) })
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            // SAFETY: the caller guarantees AVX and 8 writable floats at `p`.
            unsafe { _mm256_storeu_ps(p, self.0) }
        }
        #[inline(always)]
        unsafe fn mul_add(self, b: Self, acc: Self) -> Self {
            // SAFETY: the caller guarantees FMA.
            F32x8(unsafe { _mm256_fmadd_ps(self.0, b.0, acc.0) })
        }
        #[inline(always)]
        unsafe fn add(self, b: Self) -> Self {
            // SAFETY: the caller guarantees AVX.
            F32x8(unsafe { _mm256_add_ps(self.0, b.0) })
        }
    }

    #[derive(Clone, Copy)]
    pub(crate) struct F32x16(__m512);

    impl Vector for F32x16 {
        const LANES: usize = 16;
        #[inline(always)]
        unsafe fn zero() -> Self {
            // SAFETY: the caller guarantees AVX-512F.
            F32x16(unsafe { _mm512_setzero_ps() })
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            // SAFETY: the caller guarantees AVX-512F.
            F32x16(unsafe { _mm512_set1_ps(x) })
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            // SAFETY: the caller guarantees AVX-512F and 16 readable floats at `p`.
            F32x16(unsafe { _mm512_loadu_ps(p) })
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            // SAFETY: the caller guarantees AVX-512F and 16 writable floats at `p`.
            unsafe { _mm512_storeu_ps(p, self.0) }
        }
        #[inline(always)]
        unsafe fn mul_add(self, b: Self, acc: Self) -> Self {
            // SAFETY: the caller guarantees AVX-512F (which includes 512-bit FMA).
            F32x16(unsafe { _mm512_fmadd_ps(self.0, b.0, acc.0) })
        }
        #[inline(always)]
        unsafe fn add(self, b: Self) -> Self {
            // SAFETY: the caller guarantees AVX-512F.
            F32x16(unsafe { _mm512_add_ps(self.0, b.0) })
        }
    }

    /// AVX2 + FMA: 6 × 16 (12 accumulators, 2 B vectors, 1 broadcast of 16 registers).
    pub(crate) struct Avx2;

    /// # Safety
    /// As [`MicroKernel::tile`] with `rows = R`, on a CPU with AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2_tile<const R: usize>(
        kc: usize,
        a: APanel,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
    ) {
        // SAFETY: forwarded contract; this function enables the ISA the vectors need.
        unsafe { tile_any::<F32x8, R, 2, 4>(kc, a, b, c, ldc, accumulate) }
    }

    impl MicroKernel for Avx2 {
        const MR: usize = 6;
        const NR: usize = 16;
        #[inline]
        unsafe fn tile(rows: usize, kc: usize, a: APanel, b: *const f32, c: *mut f32, ldc: usize, accumulate: bool) {
            // SAFETY: forwarded contract.
            unsafe { dispatch_rows!(rows, [1 2 3 4 5 6], R => avx2_tile::<R>(kc, a, b, c, ldc, accumulate)) }
        }
    }

    /// AVX-512F: 12 × 32 (24 accumulators, 2 B vectors, 1 broadcast of 32 registers).
    pub(crate) struct Avx512;

    /// # Safety
    /// As [`MicroKernel::tile`] with `rows = R`, on a CPU with AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_tile<const R: usize>(
        kc: usize,
        a: APanel,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
    ) {
        // SAFETY: forwarded contract; this function enables the ISA the vectors need.
        unsafe { tile_any::<F32x16, R, 2, 1>(kc, a, b, c, ldc, accumulate) }
    }

    impl MicroKernel for Avx512 {
        const MR: usize = 12;
        const NR: usize = 32;
        #[inline]
        unsafe fn tile(rows: usize, kc: usize, a: APanel, b: *const f32, c: *mut f32, ldc: usize, accumulate: bool) {
            // SAFETY: forwarded contract.
            unsafe {
                dispatch_rows!(rows, [1 2 3 4 5 6 7 8 9 10 11 12], R => avx512_tile::<R>(kc, a, b, c, ldc, accumulate))
            }
        }
    }
}
