//! Linear layers on the device, `y = act(x·Wᵀ + b)`: one cuBLAS GEMM, then the epilogue
//! (`kernels/linear.cu`, `kernels/gelu.cu`); the math of `cpu::linear`. The bias and bias +
//! residual epilogues fuse into one cublasLt matmul ([`LtMatmul`]) instead; GELU stays our erf
//! kernel (cublasLt's GELU is the tanh form), and the bias gradient our reduction. The
//! inference forward also runs in bf16 ([`Weight::Bf16`]): weights rounded once
//! ([`round_to_bf16`]), the input rounded per product, f32 sums and epilogue.
use super::blas::{Gemm, LtMatmul, Op};
use super::gelu::{bias_gelu_forward, gelu_forward};
use super::launch::{alloc, CudaError, DevSlice, DevSliceMut, Gpu, KernelArgs, LaunchConfig, ELEMENTWISE_BLOCK};
use half::bf16;

/// What happens to `x·Wᵀ` before it is stored.
#[derive(Debug, Clone, Copy)]
pub enum Activation<'a> {
    /// `y = x·Wᵀ + b`
    Bias,
    /// `y = gelu(x·Wᵀ + b)`
    BiasGelu,
    /// `y = x·Wᵀ + b + residual`, `residual: [rows × out]`.
    BiasResidual(DevSlice<'a, f32>),
}

/// `(rows, in, out)` after checking `x: [rows × in]`, `w: [out × in]` (`w_len` values),
/// `b: [out]`, and, when given, `y: [rows × out]`.
fn shape(x_len: usize, w_len: usize, b_len: usize, y_len: Option<usize>) -> (usize, usize, usize) {
    let n = b_len;
    assert!(n > 0 && w_len.is_multiple_of(n), "linear: weight is not [out × in]");
    let k = w_len / n;
    assert!(k > 0 && x_len.is_multiple_of(k), "linear: input is not [rows × in]");
    let rows = x_len / k;
    assert!(y_len.is_none_or(|len| len == rows * n), "linear: output is not [rows × out]");
    (rows, k, n)
}

/// The GEMM of `y: [rows × out] = x: [rows × in] · w: [out × in]ᵀ`. Row-major `y = x·Wᵀ` ⇔
/// column-major `yᵀ (out × rows) = W·xᵀ`: A = W stored (in × out, op T), B = x stored
/// (in × rows, op N).
fn forward_product<'a, T>(y: DevSliceMut<'a, f32>, x: DevSlice<'a, T>, w: DevSlice<'a, T>, rows: usize, k: usize, n: usize) -> Gemm<'a, T> {
    Gemm {
        transa: Op::T,
        transb: Op::N,
        m: n,
        n: rows,
        k,
        alpha: 1.0,
        a: w,
        lda: k,
        stride_a: 0,
        b: x,
        ldb: k,
        stride_b: 0,
        beta: 0.0,
        c: y,
        ldc: n,
        stride_c: 0,
        batch: 1,
    }
}

/// The element types a linear product takes its operands in: f32, or bf16 (f32 sums).
trait Operand: Sized {
    fn gemm<D: Gpu + ?Sized>(dev: &D, call: Gemm<'_, Self>) -> Result<(), CudaError>;
    fn matmul_lt<D: Gpu + ?Sized>(dev: &D, call: LtMatmul<'_, Self>) -> Result<bool, CudaError>;
}

impl Operand for f32 {
    fn gemm<D: Gpu + ?Sized>(dev: &D, call: Gemm<'_, f32>) -> Result<(), CudaError> {
        dev.sgemm(call)
    }

    fn matmul_lt<D: Gpu + ?Sized>(dev: &D, call: LtMatmul<'_, f32>) -> Result<bool, CudaError> {
        dev.matmul_lt(call)
    }
}

impl Operand for bf16 {
    fn gemm<D: Gpu + ?Sized>(dev: &D, call: Gemm<'_, bf16>) -> Result<(), CudaError> {
        dev.gemm_bf16(call)
    }

    fn matmul_lt<D: Gpu + ?Sized>(dev: &D, call: LtMatmul<'_, bf16>) -> Result<bool, CudaError> {
        dev.matmul_lt_bf16(call)
    }
}

/// A linear layer's weight `[out × in]` as a product reads it: f32, or rounded to bf16 once
/// ([`round_to_bf16`]; the input is then rounded alike per product, the products of bf16
/// values summed in f32).
#[derive(Debug, Clone, Copy)]
pub enum Weight<'a> {
    F32(DevSlice<'a, f32>),
    Bf16(DevSlice<'a, bf16>),
}

/// `y: [rows × out] = act(x: [rows × in] · w: [out × in]ᵀ + b: [out])`, the epilogue in f32.
pub fn linear_forward<D: Gpu + ?Sized>(
    dev: &D,
    y: DevSliceMut<'_, f32>,
    x: DevSlice<'_, f32>,
    w: Weight<'_>,
    b: DevSlice<'_, f32>,
    activation: Activation<'_>,
) -> Result<(), CudaError> {
    match w {
        Weight::F32(w) => product(dev, y, x, w, b, activation),
        Weight::Bf16(w) => {
            // x_bf16: [rows × in]
            let mut x_bf16 = alloc::<bf16, _>(dev, x.len())?;
            round_to_bf16(dev, x_bf16.slice_mut(), x)?;
            product(dev, y, x_bf16.slice(), w, b, activation)
        }
    }
}

/// `y = act(x·Wᵀ + b)` on operands of one type: one cublasLt matmul where `act` fuses into
/// its epilogue (bias: `CUBLASLT_EPILOGUE_BIAS`; bias + residual: the residual as its `C`,
/// `β = 1`) and cublasLt has an algorithm for it; else the GEMM, then our epilogue kernel.
fn product<T: Operand + Copy, D: Gpu + ?Sized>(
    dev: &D,
    mut y: DevSliceMut<'_, f32>,
    x: DevSlice<'_, T>,
    w: DevSlice<'_, T>,
    b: DevSlice<'_, f32>,
    activation: Activation<'_>,
) -> Result<(), CudaError> {
    let (rows, k, n) = shape(x.len(), w.len(), b.len(), Some(y.len()));
    if rows == 0 {
        return Ok(());
    }
    let fused = match activation {
        Activation::Bias => Some(None),
        Activation::BiasResidual(residual) => {
            assert_eq!(residual.len(), y.len(), "linear: residual is not [rows × out]");
            Some(Some(residual))
        }
        Activation::BiasGelu => None,
    };
    if let Some(residual) = fused {
        let mut gemm = forward_product(y.reborrow(), x, w, rows, k, n);
        gemm.beta = if residual.is_some() { 1.0 } else { 0.0 };
        if T::matmul_lt(dev, LtMatmul { gemm, c: residual, bias: Some(b) })? {
            return Ok(());
        }
    }
    T::gemm(dev, forward_product(y.reborrow(), x, w, rows, k, n))?;
    epilogue(dev, y, b, activation)
}

/// `out = x` rounded to bf16, to nearest with ties to even (`out, x: [n]`).
pub fn round_to_bf16<D: Gpu + ?Sized>(dev: &D, mut out: DevSliceMut<'_, bf16>, x: DevSlice<'_, f32>) -> Result<(), CudaError> {
    assert_eq!(out.len(), x.len(), "round_to_bf16: lengths differ");
    let n = x.len();
    let args = KernelArgs::new().output(&mut out).input(x).u64(n as u64);
    dev.launch("round_to_bf16", LaunchConfig::elementwise(n, ELEMENTWISE_BLOCK), args)
}

/// `y = act(y + b)` on the product `y: [rows × out]`.
fn epilogue<D: Gpu + ?Sized>(dev: &D, y: DevSliceMut<'_, f32>, b: DevSlice<'_, f32>, activation: Activation<'_>) -> Result<(), CudaError> {
    match activation {
        Activation::BiasGelu => bias_gelu_forward(dev, y, b),
        Activation::Bias => bias_residual(dev, y, b, None),
        Activation::BiasResidual(residual) => bias_residual(dev, y, b, Some(residual)),
    }
}

fn bias_residual<D: Gpu + ?Sized>(dev: &D, mut y: DevSliceMut<'_, f32>, b: DevSlice<'_, f32>, residual: Option<DevSlice<'_, f32>>) -> Result<(), CudaError> {
    let n = y.len();
    let args = KernelArgs::new().output(&mut y).input(b).optional_input(residual).u64(n as u64).int(b.len());
    dev.launch("bias_residual_forward", LaunchConfig::elementwise(n, ELEMENTWISE_BLOCK), args)
}

/// Training forward of the GELU layer: `z = x·Wᵀ + b` (kept for the backward), `y = gelu(z)`.
pub fn linear_gelu_forward_saving<D: Gpu + ?Sized>(
    dev: &D,
    mut z: DevSliceMut<'_, f32>,
    y: DevSliceMut<'_, f32>,
    x: DevSlice<'_, f32>,
    w: DevSlice<'_, f32>,
    b: DevSlice<'_, f32>,
) -> Result<(), CudaError> {
    linear_forward(dev, z.reborrow(), x, Weight::F32(w), b, Activation::Bias)?;
    gelu_forward(dev, y, z.as_const())
}

/// Backward, accumulating (`+=`): `dx += dy·W` (skipped when `dx` is `None`),
/// `dw += dyᵀ·x`, `db += Σ_rows dy`. `x, dx: [rows × in]`, `w, dw: [out × in]`,
/// `dy: [rows × out]`, `db: [out]`.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward<D: Gpu + ?Sized>(
    dev: &D,
    dx: Option<DevSliceMut<'_, f32>>,
    dw: DevSliceMut<'_, f32>,
    mut db: DevSliceMut<'_, f32>,
    x: DevSlice<'_, f32>,
    w: DevSlice<'_, f32>,
    dy: DevSlice<'_, f32>,
) -> Result<(), CudaError> {
    let (rows, k, n) = shape(x.len(), w.len(), db.len(), None);
    assert!(dw.len() == w.len() && dy.len() == rows * n, "linear backward: dw is not [out × in] or dy not [rows × out]");
    if rows == 0 {
        return Ok(());
    }
    if let Some(dx) = dx {
        assert_eq!(dx.len(), x.len(), "linear backward: dx is not [rows × in]");
        // Row-major dx += dy·W  ⇔  column-major dxᵀ (in × rows) += Wᵀ·dyᵀ: both as stored.
        dev.sgemm(Gemm {
            transa: Op::N,
            transb: Op::N,
            m: k,
            n: rows,
            k: n,
            alpha: 1.0,
            a: w,
            lda: k,
            stride_a: 0,
            b: dy,
            ldb: n,
            stride_b: 0,
            beta: 1.0,
            c: dx,
            ldc: k,
            stride_c: 0,
            batch: 1,
        })?;
    }
    // Row-major dw += dyᵀ·x  ⇔  column-major dwᵀ (in × out) += xᵀ·dy: A = x stored (op N),
    // B = dy's column-major view dyᵀ (op T).
    dev.sgemm(Gemm {
        transa: Op::N,
        transb: Op::T,
        m: k,
        n,
        k: rows,
        alpha: 1.0,
        a: x,
        lda: k,
        stride_a: 0,
        b: dy,
        ldb: n,
        stride_b: 0,
        beta: 1.0,
        c: dw,
        ldc: k,
        stride_c: 0,
        batch: 1,
    })?;
    let block = 128;
    let args = KernelArgs::new().output(&mut db).input(dy).int(rows).int(n);
    dev.launch("bias_backward", LaunchConfig::linear(n.div_ceil(block as usize), block, 0), args)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_near, bench};
    use super::*;
    use crate::backend::cpu::linear as cpu;
    use crate::testutil::Rng;
    use half::bf16;

    /// `x` rounded to bf16 and back, by the `half` crate (to nearest, ties to even).
    fn rounded(x: &[f32]) -> Vec<f32> {
        x.iter().map(|&v| bf16::from_f32(v).to_f32()).collect()
    }

    #[test]
    fn bf16_rounding_is_to_nearest_even_bit_for_bit() {
        let Some(on) = bench() else { return };
        let mut x = Rng::new(16).normals(1000, 10.0);
        let ties = [1.0 + 2f32.powi(-8), 1.0 + 3.0 * 2f32.powi(-8), -(1.0 + 2f32.powi(-8))]; // halfway: down, up, down
        let specials = [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::MAX, f32::MIN_POSITIVE, 1e-40, -1e-45, f32::NAN, -f32::NAN];
        x.extend(ties.iter().chain(&specials));
        let mut got = vec![bf16::ZERO; x.len()];
        round_to_bf16(on.dev(), on.output(&mut got).slice(), on.input(&x)).unwrap();
        for (i, (&g, &v)) in got.iter().zip(&x).enumerate() {
            let want = bf16::from_f32(v);
            assert_eq!(g.to_bits(), want.to_bits(), "x[{i}] = {v:e}: device {g}, half {want}");
        }
        assert_eq!(got[1000..1003].iter().map(|v| v.to_f32()).collect::<Vec<_>>(), [1.0, 1.0 + 4.0 * 2f32.powi(-8), -1.0], "ties go to even");
    }

    #[test]
    fn bf16_forward_is_the_f32_product_of_rounded_operands() {
        let Some(on) = bench() else { return };
        for (rows, k, n) in [(1, 1, 1), (7, 31, 5), (3, 384, 385)] {
            let mut rng = Rng::new((rows * 1000 + k * 10 + n) as u64);
            let (x, w, b, res) = (rng.normals(rows * k, 1.0), rng.normals(n * k, 0.3), rng.normals(n, 1.0), rng.normals(rows * n, 1.0));
            let mut w_bf16 = vec![bf16::ZERO; w.len()];
            round_to_bf16(on.dev(), on.output(&mut w_bf16).slice(), on.input(&w)).unwrap();
            for (name, cpu_act, act) in [
                ("bias", cpu::Activation::Bias, Activation::Bias),
                ("bias+gelu", cpu::Activation::BiasGelu, Activation::BiasGelu),
                ("bias+residual", cpu::Activation::BiasResidual(res.as_slice()), Activation::BiasResidual(on.input(&res))),
            ] {
                let what = format!("{name} {rows}×{k}→{n}");
                let mut got = vec![f32::NAN; rows * n];
                linear_forward(on.dev(), on.output(&mut got).slice(), on.input(&x), Weight::Bf16(on.input(&w_bf16)), on.input(&b), act).unwrap();
                // The same operands rounded on the host: equal up to the order of the f32 sums.
                let mut want = vec![0.0; rows * n];
                cpu::linear_forward(&rounded(&x), rows, &rounded(&w), &b, &mut want, cpu_act);
                assert_near(&what, &got, &want, 1e-5, 1e-5);
                // Against f32 operands: within bf16's rounding (2⁻⁹ relative per operand),
                // and not equal to them (the operands really were rounded).
                let mut exact = vec![0.0; rows * n];
                cpu::linear_forward(&x, rows, &w, &b, &mut exact, cpu_act);
                let bound = 2.0 * 2f32.powi(-9) * (k as f32).sqrt() * 0.3 * 3.0;
                assert_near(&format!("{what} vs f32"), &got, &exact, 0.0, bound);
                if k > 1 {
                    assert!(got.iter().zip(&exact).any(|(g, e)| g != e), "{what}: equals the f32 product");
                }
            }
        }
    }

    /// A device whose cublasLt has no algorithm for anything: the linear layers then take
    /// their unfused route (the GEMM, then our epilogue kernel), as on a GPU where the
    /// heuristic finds none.
    struct WithoutLt<'a>(&'a dyn Gpu);

    impl Gpu for WithoutLt<'_> {
        fn launch(&self, kernel: &'static str, config: LaunchConfig, args: KernelArgs) -> Result<(), CudaError> {
            self.0.launch(kernel, config, args)
        }
        fn sgemm(&self, call: Gemm<'_>) -> Result<(), CudaError> {
            self.0.sgemm(call)
        }
        fn gemm_bf16(&self, call: Gemm<'_, bf16>) -> Result<(), CudaError> {
            self.0.gemm_bf16(call)
        }
        fn matmul_lt(&self, _: LtMatmul<'_>) -> Result<bool, CudaError> {
            Ok(false)
        }
        fn matmul_lt_bf16(&self, _: LtMatmul<'_, bf16>) -> Result<bool, CudaError> {
            Ok(false)
        }
        fn alloc_zeroed(&self, bytes: usize) -> Result<super::super::launch::DeviceBuffer<u8>, CudaError> {
            self.0.alloc_zeroed(bytes)
        }
        fn upload_bytes(&self, data: &[u8]) -> Result<super::super::launch::DeviceBuffer<u8>, CudaError> {
            self.0.upload_bytes(data)
        }
        fn download_bytes(&self, src: DevSlice<'_, u8>, dst: &mut [u8]) -> Result<(), CudaError> {
            self.0.download_bytes(src, dst)
        }
        fn copy_bytes(&self, dst: DevSliceMut<'_, u8>, src: DevSlice<'_, u8>) -> Result<(), CudaError> {
            self.0.copy_bytes(dst, src)
        }
        fn synchronize(&self) -> Result<(), CudaError> {
            self.0.synchronize()
        }
    }

    #[test]
    fn the_unfused_forward_matches_the_cpu() {
        let Some(on) = bench() else { return };
        let dev = WithoutLt(on.dev());
        for (rows, k, n) in [(1, 1, 1), (7, 31, 5), (3, 17, 385)] {
            let mut rng = Rng::new((rows * 1000 + k * 10 + n) as u64);
            let (x, w, b, res) = (rng.normals(rows * k, 1.0), rng.normals(n * k, 0.3), rng.normals(n, 1.0), rng.normals(rows * n, 1.0));
            let w_bf16: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
            for (name, cpu_act, act) in [
                ("bias", cpu::Activation::Bias, Activation::Bias),
                ("bias+residual", cpu::Activation::BiasResidual(res.as_slice()), Activation::BiasResidual(on.input(&res))),
            ] {
                let mut want = vec![0.0; rows * n];
                cpu::linear_forward(&x, rows, &w, &b, &mut want, cpu_act);
                let mut got = vec![f32::NAN; rows * n];
                linear_forward(&dev, on.output(&mut got).slice(), on.input(&x), Weight::F32(on.input(&w)), on.input(&b), act).unwrap();
                assert_near(&format!("{name} {rows}×{k}→{n}"), &got, &want, 1e-5, 1e-5);
                cpu::linear_forward(&rounded(&x), rows, &rounded(&w), &b, &mut want, cpu_act);
                linear_forward(&dev, on.output(&mut got).slice(), on.input(&x), Weight::Bf16(on.input(&w_bf16)), on.input(&b), act).unwrap();
                assert_near(&format!("bf16 {name} {rows}×{k}→{n}"), &got, &want, 1e-5, 1e-5);
            }
        }
    }

    #[test]
    fn forward_and_backward_match_the_cpu() {
        let Some(on) = bench() else { return };
        for (rows, k, n) in [(1, 1, 1), (7, 31, 5), (3, 17, 385)] {
            let mut rng = Rng::new((rows * 1000 + k * 10 + n) as u64);
            let (x, w, b, res, dy) =
                (rng.normals(rows * k, 1.0), rng.normals(n * k, 0.3), rng.normals(n, 1.0), rng.normals(rows * n, 1.0), rng.normals(rows * n, 1.0));
            for (name, cpu_act, act) in [
                ("bias", cpu::Activation::Bias, Activation::Bias),
                ("bias+gelu", cpu::Activation::BiasGelu, Activation::BiasGelu),
                ("bias+residual", cpu::Activation::BiasResidual(res.as_slice()), Activation::BiasResidual(on.input(&res))),
            ] {
                let mut want = vec![0.0; rows * n];
                cpu::linear_forward(&x, rows, &w, &b, &mut want, cpu_act);
                let mut got = vec![f32::NAN; rows * n];
                linear_forward(on.dev(), on.output(&mut got).slice(), on.input(&x), Weight::F32(on.input(&w)), on.input(&b), act).unwrap();
                assert_near(&format!("{name} {rows}×{k}→{n}"), &got, &want, 1e-5, 1e-5);
            }
            let (mut z, mut y) = (vec![0.0; rows * n], vec![0.0; rows * n]);
            cpu::linear_gelu_forward_saving(&x, rows, &w, &b, &mut z, &mut y);
            let (mut gz, mut gy) = (vec![0.0; rows * n], vec![0.0; rows * n]);
            linear_gelu_forward_saving(on.dev(), on.output(&mut gz).slice(), on.output(&mut gy).slice(), on.input(&x), on.input(&w), on.input(&b)).unwrap();
            assert_near("z", &gz, &z, 1e-5, 1e-5);
            assert_near("gelu(z)", &gy, &y, 1e-5, 1e-5);
            let (mut dx, mut dw, mut db) = (vec![0.5f32; rows * k], vec![0.25f32; n * k], vec![-0.5f32; n]);
            cpu::linear_backward(&x, rows, &w, &dy, Some(&mut dx), &mut dw, &mut db);
            let (mut gdx, mut gdw, mut gdb) = (vec![0.5f32; rows * k], vec![0.25f32; n * k], vec![-0.5f32; n]);
            linear_backward(
                on.dev(),
                Some(on.output(&mut gdx).slice()),
                on.output(&mut gdw).slice(),
                on.output(&mut gdb).slice(),
                on.input(&x),
                on.input(&w),
                on.input(&dy),
            )
            .unwrap();
            assert_near("dx", &gdx, &dx, 1e-4, 1e-5);
            assert_near("dw", &gdw, &dw, 1e-4, 1e-5);
            assert_near("db", &gdb, &db, 1e-4, 1e-5);
        }
    }
}
