//! The fast GEMM against `gemm_reference`, on every instruction set this CPU runs; the bf16
//! GEMM against an f64 product of the bf16-rounded operands; the int8 GEMM against exact
//! integer products of the quantized operands.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rmx::backend::cpu::gemm::pack_int8::{quantize_column_i8, quantize_row_u8};
use rmx::backend::cpu::gemm::{gemm_packed, gemm_reference, gemm_with_isa, Epilogue, MatRef, PackedB};
use rmx::backend::cpu::simd::{int8_dot_supported, Bf16Kernel, Isa};
use std::sync::atomic::{AtomicU32, Ordering};

/// How an operand is laid out in memory.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// Row-major, rows padded to `cols + pad`.
    RowMajor { pad: usize },
    /// Transpose of a row-major matrix (a `Linear` weight seen as `Wᵀ`, or `Xᵀ`).
    Transposed,
    /// Both strides above 1 (a view of every other row and column of a bigger matrix).
    Strided,
}

fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![(0..3usize).prop_map(|pad| Layout::RowMajor { pad }), Just(Layout::Transposed), Just(Layout::Strided),]
}

/// Deterministic pseudo-random values in [-1, 1), some exactly zero.
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let x = (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
            if s.is_multiple_of(17) {
                0.0
            } else {
                x
            }
        })
        .collect()
}

/// Storage for a `rows × cols` operand in `layout`, and the strides to view it.
fn operand(rows: usize, cols: usize, layout: Layout, seed: u64) -> (Vec<f32>, usize, usize) {
    let (len, rs, cs) = match layout {
        Layout::RowMajor { pad } => (rows * (cols + pad), cols + pad, 1),
        Layout::Transposed => (rows * cols, 1, rows),
        Layout::Strided => (4 * rows * cols + 1, 2 * cols + 1, 2),
    };
    (values(len.max(1), seed), rs, cs)
}

/// Adds `bias[col]` and records, per element of C, how often it was visited and the value
/// it had at that moment (which must be the finished sum).
struct Recorder {
    n: usize,
    bias: Vec<f32>,
    visits: Vec<AtomicU32>,
    seen: Vec<AtomicU32>,
}

impl Epilogue for Recorder {
    fn apply(&self, row: usize, col0: usize, out: &mut [f32]) {
        for (j, x) in out.iter_mut().enumerate() {
            let e = row * self.n + col0 + j;
            self.visits[e].fetch_add(1, Ordering::Relaxed);
            self.seen[e].store(x.to_bits(), Ordering::Relaxed);
            *x += self.bias[col0 + j];
        }
    }
}

#[derive(Clone, Debug)]
struct Case {
    m: usize,
    k: usize,
    n: usize,
    a: Layout,
    b: Layout,
    ldc_pad: usize,
    accumulate: bool,
    threads: usize,
    seed: u64,
}

/// Sizes with the edges that matter: 1, odd, just around MR (4, 6, 12), NR (8, 16, 32)
/// and KC (256) multiples, plus arbitrary ones.
fn size(max: usize) -> impl Strategy<Value = usize> {
    prop_oneof![1..=max, prop::sample::select(vec![1usize, 2, 3, 5, 6, 7, 11, 12, 13, 15, 16, 17, 31, 32, 33, 37, 48]),]
}

fn depth() -> impl Strategy<Value = usize> {
    prop_oneof![0..=70usize, prop::sample::select(vec![0usize, 1, 2, 255, 256, 257, 384, 511, 513]),]
}

fn case() -> impl Strategy<Value = Case> {
    (size(90), depth(), size(110), layout(), layout(), 0..3usize, any::<bool>(), 1..=4usize, any::<u64>())
        .prop_map(|(m, k, n, a, b, ldc_pad, accumulate, threads, seed)| Case { m, k, n, a, b, ldc_pad, accumulate, threads, seed })
}

/// The operands of a case: A and B laid out as it says, and C's initial contents.
struct Inputs {
    case: Case,
    a: (Vec<f32>, usize, usize),
    b: (Vec<f32>, usize, usize),
    c0: Vec<f32>,
}

impl Inputs {
    fn new(case: &Case) -> Inputs {
        let Case { m, k, n, ldc_pad, seed, .. } = *case;
        Inputs { case: case.clone(), a: operand(m, k, case.a, seed), b: operand(k, n, case.b, seed ^ 1), c0: values(m * (n + ldc_pad), seed ^ 2) }
    }

    fn a(&self) -> MatRef<'_> {
        let (data, rs, cs) = &self.a;
        MatRef { data, rows: self.case.m, cols: self.case.k, rs: *rs, cs: *cs }
    }

    fn b(&self) -> MatRef<'_> {
        let (data, rs, cs) = &self.b;
        MatRef { data, rows: self.case.k, cols: self.case.n, rs: *rs, cs: *cs }
    }
}

impl Recorder {
    /// A fresh recording epilogue for `case` (its bias drawn from the case's seed).
    fn new(case: &Case) -> Recorder {
        let (m, n) = (case.m, case.n);
        Recorder {
            n,
            bias: values(n, case.seed ^ 3),
            visits: (0..m * n).map(|_| AtomicU32::new(0)).collect(),
            seen: (0..m * n).map(|_| AtomicU32::new(0)).collect(),
        }
    }
}

/// Runs `case` on `isa` and on the reference; panics with a description on any mismatch.
fn check(isa: Isa, case: &Case) {
    let Case { k, n, ldc_pad, accumulate, threads, .. } = *case;
    let inputs = Inputs::new(case);
    let (a, b, c0) = (inputs.a(), inputs.b(), &inputs.c0);
    let ldc = n + ldc_pad;
    let recorder = || Recorder::new(case);

    let (mut want, want_epi) = (c0.clone(), recorder());
    gemm_reference(a, b, &mut want, ldc, accumulate, &want_epi);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let (mut got, got_epi) = (c0.clone(), recorder());
    pool.install(|| gemm_with_isa(isa, a, b, &mut got, ldc, accumulate, &got_epi));
    compare(&format!("{isa:?} {case:?}"), case, a, b, c0, &want, &want_epi, &got, &got_epi);
    let packed = PackedB::with_isa(isa, b);
    assert_eq!(packed.shape(), (k, n));
    let (mut got, got_epi) = (c0.clone(), recorder());
    pool.install(|| gemm_packed(a, &packed, &mut got, ldc, accumulate, &got_epi));
    compare(&format!("{isa:?} packed B {case:?}"), case, a, b, c0, &want, &want_epi, &got, &got_epi);
}

/// Panics unless `got` (C after the product) and what its epilogue saw match the reference.
#[allow(clippy::too_many_arguments)]
fn compare(what: &str, case: &Case, a: MatRef, b: MatRef, c0: &[f32], want: &[f32], want_epi: &Recorder, got: &[f32], got_epi: &Recorder) {
    let Case { m, k, n, ldc_pad, accumulate, .. } = *case;
    let ldc = n + ldc_pad;
    for i in 0..m {
        for j in 0..ldc {
            let (g, w) = (got[i * ldc + j], want[i * ldc + j]);
            if j >= n {
                assert_eq!(g.to_bits(), c0[i * ldc + j].to_bits(), "{what}: padding C[{i},{j}] written");
                continue;
            }
            let e = i * n + j;
            let visits = got_epi.visits[e].load(Ordering::Relaxed);
            assert_eq!(visits, 1, "{what}: epilogue saw C[{i},{j}] {visits} times");
            let scale: f32 = (0..k).map(|p| (a.at(i, p) * b.at(p, j)).abs()).sum::<f32>() + if accumulate { c0[i * ldc + j].abs() } else { 0.0 };
            let tol = 1e-5 * (k as f32 + 1.0) * scale + 1e-6;
            let seen = f32::from_bits(got_epi.seen[e].load(Ordering::Relaxed));
            let want_seen = f32::from_bits(want_epi.seen[e].load(Ordering::Relaxed));
            assert!((seen - want_seen).abs() <= tol, "{what}: epilogue saw C[{i},{j}] = {seen}, finished sum is {want_seen}");
            assert!((g - w).abs() <= tol, "{what}: C[{i},{j}] = {g}, want {w} (tol {tol})");
        }
    }
}

/// Runs `body` if the CPU has `isa`, else says why the test is skipped.
fn on(isa: Isa, body: impl FnOnce()) {
    if Isa::available().contains(&isa) {
        body();
    } else {
        eprintln!("SKIPPED: this CPU cannot run {} kernels (available: {:?})", isa.name(), Isa::available());
    }
}

/// Fixed shapes: the degenerate ones, and the model's (one sentence, a slice of a batch).
fn fixed_cases() -> Vec<Case> {
    let base = Case { m: 1, k: 1, n: 1, a: Layout::RowMajor { pad: 0 }, b: Layout::Transposed, ldc_pad: 0, accumulate: false, threads: 2, seed: 7 };
    let mut cases = vec![];
    for (m, k, n) in
        [(1, 1, 1), (1, 0, 1), (3, 0, 5), (1, 300, 1), (1, 384, 384), (37, 384, 384), (37, 1536, 384), (37, 384, 1536), (200, 384, 97), (97, 129, 300)]
    {
        for (a, b) in [(Layout::RowMajor { pad: 0 }, Layout::Transposed), (Layout::Transposed, Layout::RowMajor { pad: 0 }), (Layout::Strided, Layout::Strided)]
        {
            for accumulate in [false, true] {
                cases.push(Case { m, k, n, a, b, accumulate, ..base.clone() });
            }
        }
    }
    cases
}

fn fixed(isa: Isa) {
    for case in fixed_cases() {
        check(isa, &case);
    }
}

#[test]
fn scalar_fixed_shapes() {
    fixed(Isa::Scalar);
}

#[test]
fn avx2_fixed_shapes() {
    on(Isa::Avx2, || fixed(Isa::Avx2));
}

#[test]
fn avx512_fixed_shapes() {
    on(Isa::Avx512, || fixed(Isa::Avx512));
}

/// Random cases on `isa` (shrunk to a minimal failing one on error).
fn random(isa: Isa) {
    let mut runner = TestRunner::new(Config::with_cases(96));
    let result = runner.run(&case(), |case| {
        check(isa, &case);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{}", e);
    }
}

#[test]
fn scalar_matches_reference() {
    random(Isa::Scalar);
}

#[test]
fn avx2_matches_reference() {
    on(Isa::Avx2, || random(Isa::Avx2));
}

#[test]
fn avx512_matches_reference() {
    on(Isa::Avx512, || random(Isa::Avx512));
}

/// `x` rounded to bf16 (to nearest, ties to even), as the bf16 kernel sees it.
fn bf16(x: f32) -> f32 {
    half::bf16::from_f32(x).to_f32()
}

/// The bf16 product's reference: both operands rounded to bf16, then one f64 dot product
/// per element of C, then the epilogue.
fn bf16_reference(a: MatRef, b: MatRef, c: &mut [f32], ldc: usize, accumulate: bool, epilogue: &dyn Epilogue) {
    for i in 0..a.rows {
        let row = &mut c[i * ldc..i * ldc + b.cols];
        for (j, out) in row.iter_mut().enumerate() {
            let sum: f64 = (0..a.cols).map(|p| f64::from(bf16(a.at(i, p))) * f64::from(bf16(b.at(p, j)))).sum();
            *out = if accumulate { (f64::from(*out) + sum) as f32 } else { sum as f32 };
        }
        epilogue.apply(i, 0, row);
    }
}

/// Runs `case` on a bf16 kernel (B pre-packed, the only form it takes) and on
/// [`bf16_reference`]. The sums are f32 on the kernel and f64 in the reference, so the
/// tolerance is the f32 one of [`compare`].
fn check_bf16(kernel: Bf16Kernel, case: &Case) {
    check_prepacked(&format!("bf16 {}", kernel.name()), case, bf16_reference, |b| {
        let packed = PackedB::bf16_with(kernel, b);
        assert!(packed.is_bf16());
        packed
    });
}

/// Runs `case` with B packed by `pack` (the only form reduced-precision kernels take) and
/// on `reference`, and compares them with [`compare`].
fn check_prepacked(what: &str, case: &Case, reference: fn(MatRef, MatRef, &mut [f32], usize, bool, &dyn Epilogue), pack: impl FnOnce(MatRef) -> PackedB) {
    let Case { k, n, ldc_pad, accumulate, threads, .. } = *case;
    let inputs = Inputs::new(case);
    let (a, b, c0) = (inputs.a(), inputs.b(), &inputs.c0);
    let ldc = n + ldc_pad;
    let recorder = || Recorder::new(case);
    let (mut want, want_epi) = (c0.clone(), recorder());
    reference(a, b, &mut want, ldc, accumulate, &want_epi);
    let packed = pack(b);
    assert_eq!(packed.shape(), (k, n));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let (mut got, got_epi) = (c0.clone(), recorder());
    pool.install(|| gemm_packed(a, &packed, &mut got, ldc, accumulate, &got_epi));
    compare(&format!("{what} {case:?}"), case, a, b, c0, &want, &want_epi, &got, &got_epi);
}

/// Runs `body` if the CPU can run `kernel`, else says why the test is skipped.
fn on_bf16(kernel: Bf16Kernel, body: impl FnOnce()) {
    if kernel.is_supported() {
        body();
    } else {
        let why = match kernel {
            Bf16Kernel::Avx512Bf16 => "this CPU has no AVX512-BF16 (the bf16 GEMM needs it)",
            Bf16Kernel::Amx => "this CPU or OS gives no AMX-BF16 tiles (or no AVX512-BF16)",
        };
        eprintln!("SKIPPED: {why}");
    }
}

/// The fixed cases plus odd depths (a half-empty last pair; depths not a multiple of 32,
/// AMX's step), rows below MR and around AMX's 16-row tiles, right-edge panels, several
/// depth blocks.
fn bf16_fixed(kernel: Bf16Kernel) {
    on_bf16(kernel, || {
        let mut cases = fixed_cases();
        let base = cases[0].clone();
        let shapes = [(1, 3, 1), (5, 7, 33), (11, 385, 31), (12, 1537, 65), (25, 1, 40), (13, 31, 32), (14, 33, 96)];
        let amx_shapes = [(16, 32, 32), (32, 64, 64), (37, 97, 70), (15, 800, 16), (33, 1535, 47), (64, 384, 100), (17, 33, 1)];
        for (m, k, n) in shapes.into_iter().chain(amx_shapes) {
            for accumulate in [false, true] {
                cases.push(Case { m, k, n, accumulate, ..base.clone() });
            }
        }
        for case in cases {
            check_bf16(kernel, &case);
        }
    });
}

#[test]
fn bf16_fixed_shapes() {
    bf16_fixed(Bf16Kernel::Avx512Bf16);
}

#[test]
fn amx_fixed_shapes() {
    bf16_fixed(Bf16Kernel::Amx);
}

fn bf16_random(kernel: Bf16Kernel) {
    on_bf16(kernel, || {
        let mut runner = TestRunner::new(Config::with_cases(96));
        if let Err(e) = runner.run(&case(), |case| {
            check_bf16(kernel, &case);
            Ok(())
        }) {
            panic!("{}", e);
        }
    });
}

#[test]
fn bf16_matches_reference() {
    bf16_random(Bf16Kernel::Avx512Bf16);
}

#[test]
fn amx_matches_reference() {
    bf16_random(Bf16Kernel::Amx);
}

/// The test can fail: the bf16 product is not the f32 one (rounding is real and visible).
#[test]
fn bf16_differs_from_f32_by_rounding() {
    on_bf16(Bf16Kernel::Avx512Bf16, || {
        let (m, k, n) = (12, 64, 32);
        let (a_data, b_data) = (values(m * k, 5), values(k * n, 6));
        let (a, b) = (MatRef::row_major(&a_data, m, k), MatRef::row_major(&b_data, k, n));
        let (mut exact, mut rounded) = (vec![0.0; m * n], vec![0.0; m * n]);
        gemm_reference(a, b, &mut exact, n, false, &rmx::backend::cpu::gemm::Plain);
        gemm_packed(a, &PackedB::bf16(b), &mut rounded, n, false, &rmx::backend::cpu::gemm::Plain);
        let worst = exact.iter().zip(&rounded).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(worst > 1e-4 && worst < 0.1, "max |f32 − bf16| = {worst}");
    });
}

/// The int8 product's reference: every row of A quantized by `quantize_row_u8`, every
/// column of B by `quantize_column_i8` (the definitions the kernel follows), one exact
/// integer dot product per element of C, dequantized in f64, then the epilogue.
fn int8_reference(a: MatRef, b: MatRef, c: &mut [f32], ldc: usize, accumulate: bool, epilogue: &dyn Epilogue) {
    let columns: Vec<(Vec<i8>, f32)> = (0..b.cols)
        .map(|j| {
            let x: Vec<f32> = (0..b.rows).map(|p| b.at(p, j)).collect();
            let mut q = vec![0i8; b.rows];
            let (scale, _) = quantize_column_i8(&x, &mut q);
            (q, scale)
        })
        .collect();
    for i in 0..a.rows {
        let x: Vec<f32> = (0..a.cols).map(|p| a.at(i, p)).collect();
        let mut q = vec![0u8; a.cols];
        let (scale, zero) = quantize_row_u8(&x, &mut q);
        let row = &mut c[i * ldc..i * ldc + b.cols];
        for (out, (qb, scale_b)) in row.iter_mut().zip(&columns) {
            let dot: i64 = q.iter().zip(qb).map(|(&qa, &qb)| (i64::from(qa) - i64::from(zero)) * i64::from(qb)).sum();
            let value = f64::from(scale) * f64::from(*scale_b) * dot as f64;
            *out = if accumulate { (f64::from(*out) + value) as f32 } else { value as f32 };
        }
        epilogue.apply(i, 0, row);
    }
}

/// Runs `case` on the int8 kernel (B pre-packed, the only form it takes) and on
/// [`int8_reference`]; they differ by f32 rounding of the dequantized sums only.
fn check_int8(case: &Case) {
    check_prepacked("int8", case, int8_reference, |b| {
        let packed = PackedB::int8(b);
        assert!(packed.is_int8());
        packed
    });
}

/// Runs `body` if the CPU has AVX512-VNNI, else says why the test is skipped.
fn on_int8(body: impl FnOnce()) {
    if int8_dot_supported() {
        body();
    } else {
        eprintln!("SKIPPED: this CPU has no AVX512-VNNI (the int8 GEMM needs it)");
    }
}

/// The fixed cases plus depths that leave a partial last quad, rows below MR, right-edge
/// panels, MiniLM's deepest product (k = 1536, one depth block).
#[test]
fn int8_fixed_shapes() {
    on_int8(|| {
        let mut cases = fixed_cases();
        let base = cases[0].clone();
        for (m, k, n) in [(1, 3, 1), (5, 7, 33), (11, 385, 31), (12, 1537, 65), (25, 1, 40), (13, 6, 32), (64, 1536, 100)] {
            for accumulate in [false, true] {
                cases.push(Case { m, k, n, accumulate, ..base.clone() });
            }
        }
        for case in cases {
            check_int8(&case);
        }
    });
}

#[test]
fn int8_matches_reference() {
    on_int8(|| {
        let mut runner = TestRunner::new(Config::with_cases(96));
        if let Err(e) = runner.run(&case(), |case| {
            check_int8(&case);
            Ok(())
        }) {
            panic!("{}", e);
        }
    });
}

/// The test can fail: the int8 product is not the f32 one, and it stays within the error
/// quantization allows: each operand off by at most half a step, so
/// `|C − A·B| ≤ Σ_p (|a_ip| · s_j + |b_pj| · s_i + s_i · s_j / 2) / 2`.
#[test]
fn int8_error_is_within_the_quantization_bound() {
    on_int8(|| {
        let (m, k, n) = (37, 384, 96);
        let (a_data, b_data) = (values(m * k, 11), values(k * n, 12));
        let (a, b) = (MatRef::row_major(&a_data, m, k), MatRef::row_major(&b_data, k, n));
        let (mut exact, mut quantized) = (vec![0.0; m * n], vec![0.0; m * n]);
        gemm_reference(a, b, &mut exact, n, false, &rmx::backend::cpu::gemm::Plain);
        gemm_packed(a, &PackedB::int8(b), &mut quantized, n, false, &rmx::backend::cpu::gemm::Plain);
        let mut worst = 0.0f32;
        for i in 0..m {
            let row: Vec<f32> = (0..k).map(|p| a.at(i, p)).collect();
            let scale_a = quantize_row_u8(&row, &mut vec![0; k]).0;
            for j in 0..n {
                let column: Vec<f32> = (0..k).map(|p| b.at(p, j)).collect();
                let scale_b = quantize_column_i8(&column, &mut vec![0; k]).0;
                let bound: f32 = (0..k).map(|p| row[p].abs() * scale_b + column[p].abs() * scale_a + scale_a * scale_b / 2.0).sum::<f32>() / 2.0;
                let error = (exact[i * n + j] - quantized[i * n + j]).abs();
                assert!(error <= bound * 1.001 + 1e-6, "C[{i},{j}]: |error| {error} > bound {bound}");
                worst = worst.max(error);
            }
        }
        assert!(worst > 1e-4, "max |f32 − int8| = {worst}: not quantized?");
    });
}

#[test]
#[should_panic(expected = "matrix view out of bounds")]
fn rejects_views_past_their_data() {
    let data = [0.0f32; 6];
    let a = MatRef { data: &data, rows: 2, cols: 3, rs: 4, cs: 1 };
    let b = MatRef::row_major(&data, 3, 2);
    let mut c = [0.0f32; 4];
    gemm_with_isa(Isa::Scalar, a, b, &mut c, 2, false, &rmx::backend::cpu::gemm::Plain);
}
