//! Linear layer `y = x · Wᵀ + b` (PyTorch `nn.Linear`, `W: [out, in]`), with the element-wise
//! work that follows it fused into the matrix product's epilogue.
use super::gelu::bias_gelu_forward;
use super::gemm::{gemm, Epilogue, MatRef};

/// What happens to `x · Wᵀ` before it is stored.
pub enum Activation<'a> {
    /// `y = x·Wᵀ + b`
    Bias,
    /// `y = gelu(x·Wᵀ + b)`
    BiasGelu,
    /// `y = x·Wᵀ + b + residual`, `residual: [rows × out]` (the input of a LayerNorm).
    BiasResidual(&'a [f32]),
}

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
    assert_eq!(x.len(), rows * k, "input is not [rows × in]");
    assert_eq!(y.len(), rows * n, "output is not [rows × out]");
    if let Activation::BiasResidual(residual) = activation {
        assert_eq!(residual.len(), rows * n, "residual is not [rows × out]");
    }
    let epilogue = Fused { bias: b, activation: &activation, n };
    gemm(MatRef::row_major(x, rows, k), MatRef::transposed(w, n, k), y, n, false, &epilogue);
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

        let mut y = vec![0.0; rows * n];
        linear_forward(&x, rows, &w, &b, &mut y, Activation::Bias);
        y.iter().zip(&want).for_each(|(g, w)| assert!((*g as f64 - w).abs() < 1e-4, "{g} vs {w}"));

        linear_forward(&x, rows, &w, &b, &mut y, Activation::BiasGelu);
        y.iter().zip(&want).for_each(|(g, w)| assert!((*g as f64 - gelu(*w)).abs() < 1e-4, "{g} vs {}", gelu(*w)));

        linear_forward(&x, rows, &w, &b, &mut y, Activation::BiasResidual(&residual));
        for i in 0..rows * n {
            assert!((y[i] as f64 - (want[i] + residual[i] as f64)).abs() < 1e-4);
        }
    }
}
