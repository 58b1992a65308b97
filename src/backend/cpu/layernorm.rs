//! LayerNorm over the last dimension: `y = (x − mean) / sqrt(var + eps) · γ + β`.
use super::parallel::for_each_row;
use super::simd::multiversion;

/// Lane count of the explicit reductions (one AVX-512 register, two AVX2 registers).
const LANES: usize = 16;

/// Normalises every row of `x: [rows × d]` in place. `gamma, beta: [d]`.
pub fn layernorm_forward(x: &mut [f32], d: usize, gamma: &[f32], beta: &[f32], eps: f32) {
    assert_eq!(gamma.len(), d);
    assert_eq!(beta.len(), d);
    for_each_row(x, d, |_, row| layernorm_row(row, gamma, beta, eps));
}

multiversion!(
    /// LayerNorm of one row in place (two-pass mean and variance, as PyTorch computes it).
    pub fn layernorm_row / layernorm_row_with_isa (row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32)
        => layernorm_row_generic
);

#[inline(always)]
fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut chunks = values.chunks_exact(LANES);
    for chunk in &mut chunks {
        for l in 0..LANES {
            acc[l] += f(chunk[l]);
        }
    }
    let mut total: f32 = acc.iter().sum();
    for &v in chunks.remainder() {
        total += f(v);
    }
    total
}

#[inline(always)]
fn layernorm_row_generic(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mean = lane_sum(row, |v| v) / n;
    let var = lane_sum(row, |v| (v - mean) * (v - mean)) / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((v, &g), &b) in row.iter_mut().zip(gamma).zip(beta) {
        *v = (*v - mean) * inv * g + b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::simd::Isa;
    use proptest::prelude::*;

    fn reference(row: &[f32], gamma: &[f32], beta: &[f32], eps: f64) -> Vec<f32> {
        let n = row.len() as f64;
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        row.iter()
            .zip(gamma.iter().zip(beta))
            .map(|(&v, (&g, &b))| ((v as f64 - mean) / (var + eps).sqrt() * g as f64 + b as f64) as f32)
            .collect()
    }

    proptest! {
        #[test]
        fn matches_reference_on_every_isa(d in 1usize..70, rows in 1usize..5, seed in any::<u64>()) {
            let mut rng = crate::testutil::Rng::new(seed);
            let x: Vec<f32> = (0..rows * d).map(|_| rng.normal() * 3.0 + 1.0).collect();
            let gamma: Vec<f32> = (0..d).map(|_| rng.normal()).collect();
            let beta: Vec<f32> = (0..d).map(|_| rng.normal()).collect();
            for isa in Isa::available() {
                let mut got = x.clone();
                for row in got.chunks_exact_mut(d) {
                    layernorm_row_with_isa(isa, row, &gamma, &beta, 1e-12);
                }
                for (r, row) in x.chunks_exact(d).enumerate() {
                    let want = reference(row, &gamma, &beta, 1e-12);
                    for c in 0..d {
                        let (g, w) = (got[r * d + c], want[c]);
                        prop_assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{isa:?} d={d} [{r},{c}] {g} vs {w}");
                    }
                }
            }
        }
    }

    #[test]
    fn parallel_rows_equal_serial_rows() {
        let mut rng = crate::testutil::Rng::new(7);
        let d = 33;
        let x: Vec<f32> = (0..1000 * d).map(|_| rng.normal()).collect();
        let gamma = vec![1.5f32; d];
        let beta = vec![-0.25f32; d];
        let mut parallel = x.clone();
        layernorm_forward(&mut parallel, d, &gamma, &beta, 1e-12);
        let mut serial = x;
        serial.chunks_exact_mut(d).for_each(|row| layernorm_row(row, &gamma, &beta, 1e-12));
        assert_eq!(parallel, serial);
    }
}
