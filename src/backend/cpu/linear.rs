//! Linear layer `y = x · Wᵀ + b` (PyTorch `nn.Linear`, `W: [out, in]`), with the element-wise
//! work that follows it fused into the matrix product's epilogue.
//!
//! Training: [`linear_backward`] gives `dX`, `dW`, `db` of the affine part. The fused
//! `BiasGelu` form cannot be differentiated from its output (GELU is not invertible), so
//! training runs [`linear_gelu_forward_saving`], which keeps the pre-activation
//! `z = x·Wᵀ + b` (one extra write and read of `[rows × out]`), and differentiates with
//! `gelu_backward(z, dy) → dz` then `linear_backward(…, dz, …)`. Inference keeps the fused
//! epilogue untouched. `BiasResidual` needs no backward of its own: `d residual = dy`.
use super::gelu::{bias_gelu_forward, gelu_forward};
use super::gemm::{gemm, gemm_packed, Epilogue, MatRef, PackedB, Plain};
use super::parallel::{for_each_chunk, CHUNK};

pub use crate::backend::Activation;

struct Fused<'a> {
    bias: &'a [f32],
    activation: &'a Activation<'a>,
    n: usize,
}

impl Epilogue for Fused<'_> {
    #[inline]
    fn apply(&self, row: usize, col0: usize, out: &mut [f32]) {
        let bias = &self.bias[col0..col0 + out.len()];
        match self.activation {
            Activation::Bias => out.iter_mut().zip(bias).for_each(|(v, b)| *v += b),
            Activation::BiasGelu => bias_gelu_forward(out, bias),
            Activation::BiasResidual(residual) => {
                let res = &residual[row * self.n + col0..row * self.n + col0 + out.len()];
                out.iter_mut().zip(bias).zip(res).for_each(|((v, b), r)| *v += b + r);
            }
        }
    }
}

/// `y: [rows × out] = act(x: [rows × in] · w: [out × in]ᵀ + b: [out])`.
pub fn linear_forward(x: &[f32], rows: usize, w: &[f32], b: &[f32], y: &mut [f32], activation: Activation) {
    let n = b.len();
    let k = w.len() / n;
    assert_eq!(w.len(), n * k, "weight is not [out × in]");
    fused_product(x, rows, k, b, y, activation, |x, y, epilogue| gemm(x, MatRef::transposed(w, n, k), y, n, false, epilogue));
}

/// [`linear_forward`] with the weight packed once for every call:
/// `w = PackedB::new(MatRef::transposed(weight, out, in))`. The same sums in the same order,
/// so the same result bit for bit.
pub fn linear_forward_packed(x: &[f32], rows: usize, w: &PackedB, b: &[f32], y: &mut [f32], activation: Activation) {
    let (k, n) = w.shape();
    assert_eq!(n, b.len(), "bias is not [out]");
    fused_product(x, rows, k, b, y, activation, |x, y, epilogue| gemm_packed(x, w, y, n, false, epilogue));
}

/// Checks the shapes of `y = act(x·Wᵀ + b)` and runs `product(x, y, epilogue)`, which
/// multiplies by `Wᵀ` with the activation as its epilogue.
fn fused_product(x: &[f32], rows: usize, k: usize, b: &[f32], y: &mut [f32], activation: Activation, product: impl FnOnce(MatRef, &mut [f32], &dyn Epilogue)) {
    let n = b.len();
    assert_eq!(x.len(), rows * k, "input is not [rows × in]");
    assert_eq!(y.len(), rows * n, "output is not [rows × out]");
    if let Activation::BiasResidual(residual) = activation {
        assert_eq!(residual.len(), rows * n, "residual is not [rows × out]");
    }
    product(MatRef::row_major(x, rows, k), y, &Fused { bias: b, activation: &activation, n });
}

/// Training form of `Activation::BiasGelu`: `z = x·Wᵀ + b` (saved for the backward pass) and
/// `y = gelu(z)`; `z, y: [rows × out]`. Equal to the fused forward up to rounding.
pub fn linear_gelu_forward_saving(x: &[f32], rows: usize, w: &[f32], b: &[f32], z: &mut [f32], y: &mut [f32]) {
    linear_forward(x, rows, w, b, z, Activation::Bias);
    assert_eq!(y.len(), z.len(), "output is not [rows × out]");
    for_each_chunk(y, CHUNK, |start, y| gelu_forward(&z[start..start + y.len()], y));
}

/// Backward of `y = x·Wᵀ + b`, accumulating every gradient (`+=`):
///
/// - `dX += dY · W`   (`[rows × out] · [out × in]`; skipped when `dx` is `None`, e.g. for
///   the first layer's input ids),
/// - `dW += dYᵀ · X`  (`[out × rows] · [rows × in]`),
/// - `db += Σ_rows dY`.
///
/// Shapes: `x, dx: [rows × in]`, `w, dw: [out × in]`, `dy: [rows × out]`, `db: [out]`.
pub fn linear_backward(x: &[f32], rows: usize, w: &[f32], dy: &[f32], dx: Option<&mut [f32]>, dw: &mut [f32], db: &mut [f32]) {
    let n = db.len();
    let k = w.len().checked_div(n).unwrap_or(0);
    assert_eq!(w.len(), n * k, "weight is not [out × in]");
    assert_eq!(dw.len(), w.len(), "weight gradient is not [out × in]");
    assert_eq!(x.len(), rows * k, "input is not [rows × in]");
    assert_eq!(dy.len(), rows * n, "output gradient is not [rows × out]");
    if let Some(dx) = dx {
        assert_eq!(dx.len(), rows * k, "input gradient is not [rows × in]");
        gemm(MatRef::row_major(dy, rows, n), MatRef::row_major(w, n, k), dx, k, true, &Plain);
    }
    gemm(MatRef::transposed(dy, rows, n), MatRef::row_major(x, rows, k), dw, k, true, &Plain);
    super::parallel::column_sums(dy, n, db);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &[f32], rows: usize, w: &[f32], b: &[f32]) -> Vec<f64> {
        let n = b.len();
        let k = w.len() / n;
        let mut y = vec![0.0; rows * n];
        for i in 0..rows {
            for j in 0..n {
                y[i * n + j] = b[j] as f64 + (0..k).map(|p| x[i * k + p] as f64 * w[j * k + p] as f64).sum::<f64>();
            }
        }
        y
    }

    #[test]
    fn every_activation_matches_reference() {
        let mut rng = crate::testutil::Rng::new(3);
        let (rows, k, n) = (13, 37, 29);
        let x: Vec<f32> = (0..rows * k).map(|_| rng.normal()).collect();
        let w: Vec<f32> = (0..n * k).map(|_| rng.normal() * 0.2).collect();
        let b: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
        let residual: Vec<f32> = (0..rows * n).map(|_| rng.normal()).collect();
        let want = reference(&x, rows, &w, &b);
        let gelu = |v: f64| v * 0.5 * (1.0 + crate::backend::cpu::math::erf((v / std::f64::consts::SQRT_2) as f32) as f64);

        let packed = PackedB::new(MatRef::transposed(&w, n, k));
        // Each activation by the plain and the pre-packed path, which agree bit for bit.
        let run = |activation: Activation| {
            let (mut y, mut y_packed) = (vec![0.0; rows * n], vec![0.0; rows * n]);
            linear_forward(&x, rows, &w, &b, &mut y, activation);
            linear_forward_packed(&x, rows, &packed, &b, &mut y_packed, activation);
            assert_eq!(y, y_packed);
            y
        };

        let y = run(Activation::Bias);
        y.iter().zip(&want).for_each(|(g, w)| assert!((*g as f64 - w).abs() < 1e-4, "{g} vs {w}"));

        let y = run(Activation::BiasGelu);
        y.iter().zip(&want).for_each(|(g, w)| assert!((*g as f64 - gelu(*w)).abs() < 1e-4, "{g} vs {}", gelu(*w)));

        let y = run(Activation::BiasResidual(&residual));
        for i in 0..rows * n {
            assert!((y[i] as f64 - (want[i] + residual[i] as f64)).abs() < 1e-4);
        }
    }

    /// The f64 reference of `linear_forward(…, Bias)` and its composition with GELU.
    fn reference64(x: &[f64], rows: usize, w: &[f64], b: &[f64], gelu: bool) -> Vec<f64> {
        let n = b.len();
        let k = w.len() / n;
        let mut y = vec![0.0; rows * n];
        for i in 0..rows {
            for j in 0..n {
                let z = b[j] + (0..k).map(|p| x[i * k + p] * w[j * k + p]).sum::<f64>();
                y[i * n + j] = if gelu { crate::testutil::gelu(z) } else { z };
            }
        }
        y
    }

    fn check_backward(rows: usize, k: usize, n: usize, with_gelu: bool, seed: u64) {
        use crate::testutil::*;
        let mut rng = Rng::new(seed);
        let x = rng.normals(rows * k, 1.0);
        let w = rng.normals(n * k, 0.5);
        let b = rng.normals(n, 1.0);
        let r = rng.normals(rows * n, 1.0);
        let (x64, w64, b64) = (to_f64(&x), to_f64(&w), to_f64(&b));
        let want_dx = numeric_grad(&x64, FD_STEP, |x| dot(&r, &reference64(x, rows, &w64, &b64, with_gelu)));
        let want_dw = numeric_grad(&w64, FD_STEP, |w| dot(&r, &reference64(&x64, rows, w, &b64, with_gelu)));
        let want_db = numeric_grad(&b64, FD_STEP, |b| dot(&r, &reference64(&x64, rows, &w64, b, with_gelu)));

        // Gradients accumulate: start from a known offset and subtract it afterwards.
        let (mut dx, mut dw, mut db) = (vec![1.0f32; rows * k], vec![-2.0f32; n * k], vec![3.0f32; n]);
        let dz = if with_gelu {
            let (mut z, mut y) = (vec![0.0; rows * n], vec![0.0; rows * n]);
            linear_gelu_forward_saving(&x, rows, &w, &b, &mut z, &mut y);
            let mut fused = vec![0.0; rows * n];
            linear_forward(&x, rows, &w, &b, &mut fused, Activation::BiasGelu);
            assert_close("saving forward", &y, &to_f64(&fused), 1e-6, 1e-6);
            let mut dz = vec![0.0; rows * n];
            crate::backend::cpu::gelu::gelu_backward(&z, &r, &mut dz);
            dz
        } else {
            r.clone()
        };
        linear_backward(&x, rows, &w, &dz, Some(&mut dx), &mut dw, &mut db);
        dx.iter_mut().for_each(|g| *g -= 1.0);
        dw.iter_mut().for_each(|g| *g += 2.0);
        db.iter_mut().for_each(|g| *g -= 3.0);
        assert_grad("dx", &dx, &want_dx);
        assert_grad("dw", &dw, &want_dw);
        assert_grad("db", &db, &want_db);

        // Without dx the parameter gradients are the same.
        let (mut dw2, mut db2) = (vec![0.0f32; n * k], vec![0.0f32; n]);
        linear_backward(&x, rows, &w, &dz, None, &mut dw2, &mut db2);
        assert_grad("dw (no dx)", &dw2, &want_dw);
        assert_grad("db (no dx)", &db2, &want_db);
    }

    #[test]
    fn backward_matches_finite_differences_on_odd_shapes() {
        for (i, &(rows, k, n)) in [(1, 1, 1), (1, 9, 5), (7, 13, 3), (3, 1, 17), (13, 37, 29)].iter().enumerate() {
            check_backward(rows, k, n, false, i as u64);
            check_backward(rows, k, n, true, 100 + i as u64);
        }
    }

    #[test]
    fn backward_of_a_large_product_matches_f64() {
        // Shapes past the gemm's blocking and threading thresholds, against f64 formulas.
        use crate::testutil::*;
        let (rows, k, n) = (150, 97, 131);
        let mut rng = Rng::new(77);
        let (x, w, dy) = (rng.normals(rows * k, 1.0), rng.normals(n * k, 1.0), rng.normals(rows * n, 1.0));
        let (mut dx, mut dw, mut db) = (vec![0.0; rows * k], vec![0.0; n * k], vec![0.0; n]);
        linear_backward(&x, rows, &w, &dy, Some(&mut dx), &mut dw, &mut db);
        let mut want_dx = vec![0.0; rows * k];
        let mut want_dw = vec![0.0; n * k];
        let mut want_db = vec![0.0; n];
        for i in 0..rows {
            for j in 0..n {
                let g = dy[i * n + j] as f64;
                want_db[j] += g;
                for p in 0..k {
                    want_dx[i * k + p] += g * w[j * k + p] as f64;
                    want_dw[j * k + p] += g * x[i * k + p] as f64;
                }
            }
        }
        assert_close("dx", &dx, &want_dx, 1e-4, 1e-4);
        assert_close("dw", &dw, &want_dw, 1e-4, 1e-4);
        assert_close("db", &db, &want_db, 1e-4, 1e-4);
    }
}
