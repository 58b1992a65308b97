//! Linear layers on the device, `y = act(x·Wᵀ + b)`: one cuBLAS GEMM, then the epilogue
//! (`kernels/linear.cu`, `kernels/gelu.cu`); the math of `cpu::linear`. (cublasLt's fused
//! epilogues would save the epilogue's pass over `y`; not used yet.)
use super::blas::{Gemm, Op};
use super::gelu::{bias_gelu_forward, gelu_forward};
use super::launch::{CudaError, DevSlice, DevSliceMut, Gpu, KernelArgs, LaunchConfig, ELEMENTWISE_BLOCK};

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

/// `(rows, in, out)` after checking `x: [rows × in]`, `w: [out × in]`, `b: [out]`.
fn shape(x: DevSlice<'_, f32>, w: DevSlice<'_, f32>, b_len: usize) -> (usize, usize, usize) {
    let n = b_len;
    assert!(n > 0 && w.len().is_multiple_of(n), "linear: weight is not [out × in]");
    let k = w.len() / n;
    assert!(k > 0 && x.len().is_multiple_of(k), "linear: input is not [rows × in]");
    (x.len() / k, k, n)
}

/// `y: [rows × out] = act(x: [rows × in] · w: [out × in]ᵀ + b: [out])`.
pub fn linear_forward<D: Gpu + ?Sized>(
    dev: &D,
    mut y: DevSliceMut<'_, f32>,
    x: DevSlice<'_, f32>,
    w: DevSlice<'_, f32>,
    b: DevSlice<'_, f32>,
    activation: Activation<'_>,
) -> Result<(), CudaError> {
    let (rows, k, n) = shape(x, w, b.len());
    assert_eq!(y.len(), rows * n, "linear: output is not [rows × out]");
    if rows == 0 {
        return Ok(());
    }
    // Row-major y = x·Wᵀ  ⇔  column-major yᵀ (out × rows) = W·xᵀ: A = W stored (in × out, op T),
    // B = x stored (in × rows, op N).
    dev.sgemm(Gemm {
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
        c: y.reborrow(),
        ldc: n,
        stride_c: 0,
        batch: 1,
    })?;
    match activation {
        Activation::BiasGelu => bias_gelu_forward(dev, y, b),
        Activation::Bias => bias_residual(dev, y, b, None),
        Activation::BiasResidual(residual) => {
            assert_eq!(residual.len(), rows * n, "linear: residual is not [rows × out]");
            bias_residual(dev, y, b, Some(residual))
        }
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
    linear_forward(dev, z.reborrow(), x, w, b, Activation::Bias)?;
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
    let (rows, k, n) = shape(x, w, db.len());
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
                linear_forward(on.dev(), on.output(&mut got).slice(), on.input(&x), on.input(&w), on.input(&b), act).unwrap();
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
