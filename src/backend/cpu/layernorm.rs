//! LayerNorm over the last dimension: `y = (x − mean) / sqrt(var + eps) · γ + β`.
//!
//! Training: [`layernorm_forward_saving`] writes `y` out of place (the backward pass needs the
//! input `x`) and saves `mean` and `rstd = 1/sqrt(var + eps)` per row;
//! [`layernorm_backward`] recomputes `x̂ = (x − mean)·rstd` from them.
use super::math::{lane_sum, LANES};
use super::parallel::{for_each_mut, for_each_row, rows_per_task};
use super::simd::multiversion;

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
fn layernorm_row_generic(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mean = lane_sum(row, |v| v) / n;
    let var = lane_sum(row, |v| (v - mean) * (v - mean)) / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((v, &g), &b) in row.iter_mut().zip(gamma).zip(beta) {
        *v = (*v - mean) * inv * g + b;
    }
}

/// Training forward: `y = LayerNorm(x)` for `x, y: [rows × d]`, saving `mean, rstd: [rows]`.
/// `y` equals [`layernorm_forward`]'s result bit for bit.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_forward_saving(x: &[f32], y: &mut [f32], d: usize, gamma: &[f32], beta: &[f32], eps: f32, mean: &mut [f32], rstd: &mut [f32]) {
    assert!(gamma.len() == d && beta.len() == d && d > 0);
    let rows = x.len() / d;
    assert!(x.len() == rows * d && y.len() == x.len() && mean.len() == rows && rstd.len() == rows);
    let per = rows_per_task(d);
    let mut tasks: Vec<_> = y.chunks_mut(per * d).zip(mean.chunks_mut(per)).zip(rstd.chunks_mut(per)).collect();
    for_each_mut(&mut tasks, |b, ((y, mean), rstd)| {
        let x = &x[b * per * d..b * per * d + y.len()];
        for (((y, x), m), r) in y.chunks_exact_mut(d).zip(x.chunks_exact(d)).zip(mean.iter_mut()).zip(rstd.iter_mut()) {
            (*m, *r) = layernorm_row_saving(x, y, gamma, beta, eps);
        }
    });
}

multiversion!(
    /// LayerNorm of one row out of place; returns `(mean, rstd)`.
    fn layernorm_row_saving / layernorm_row_saving_with_isa (x: &[f32], y: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) -> (f32, f32)
        => layernorm_row_saving_generic
);

#[inline(always)]
fn layernorm_row_saving_generic(x: &[f32], y: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) -> (f32, f32) {
    // The same operations in the same order as `layernorm_row_generic`.
    let n = x.len() as f32;
    let mean = lane_sum(x, |v| v) / n;
    let var = lane_sum(x, |v| (v - mean) * (v - mean)) / n;
    let inv = 1.0 / (var + eps).sqrt();
    for (((o, &v), &g), &b) in y.iter_mut().zip(x).zip(gamma).zip(beta) {
        *o = (v - mean) * inv * g + b;
    }
    (mean, inv)
}

/// Backward of LayerNorm, accumulating every gradient (`+=`). With `x̂ = (x − μ)·r`,
/// `r = 1/sqrt(var + eps)`, `g = dy ⊙ γ` per row:
///
/// - `dx += r · (g − mean(g) − x̂ · mean(g ⊙ x̂))`
/// - `dγ += Σ_rows dy ⊙ x̂`, `dβ += Σ_rows dy`
///
/// Shapes: `x, dy, dx: [rows × d]`, `mean, rstd: [rows]` (from [`layernorm_forward_saving`]),
/// `gamma, dgamma, dbeta: [d]`. The parameter sums are added block by block in a fixed
/// order (deterministic).
#[allow(clippy::too_many_arguments)]
pub fn layernorm_backward(x: &[f32], d: usize, gamma: &[f32], mean: &[f32], rstd: &[f32], dy: &[f32], dx: &mut [f32], dgamma: &mut [f32], dbeta: &mut [f32]) {
    assert!(gamma.len() == d && dgamma.len() == d && dbeta.len() == d && d > 0);
    let rows = x.len() / d;
    assert!(x.len() == rows * d && dy.len() == x.len() && dx.len() == x.len() && mean.len() == rows && rstd.len() == rows);
    let per = rows_per_task(d);
    let mut tasks: Vec<(&mut [f32], Vec<f32>)> = dx.chunks_mut(per * d).map(|dx| (dx, vec![0.0f32; 2 * d])).collect();
    for_each_mut(&mut tasks, |b, (dx, acc)| {
        let (r, e) = (b * per, b * per + dx.len() / d);
        let (dg, db) = acc.split_at_mut(d);
        layernorm_backward_rows(&x[r * d..e * d], &dy[r * d..e * d], &mean[r..e], &rstd[r..e], gamma, dx, dg, db);
    });
    for (_, p) in tasks {
        dgamma.iter_mut().zip(&p[..d]).for_each(|(a, v)| *a += v);
        dbeta.iter_mut().zip(&p[d..]).for_each(|(a, v)| *a += v);
    }
}

multiversion!(
    /// [`layernorm_backward`] over a block of rows; `dg, db` receive the block's sums.
    fn layernorm_backward_rows / layernorm_backward_rows_with_isa (
        x: &[f32], dy: &[f32], mean: &[f32], rstd: &[f32], gamma: &[f32], dx: &mut [f32], dg: &mut [f32], db: &mut [f32]
    ) => layernorm_backward_rows_generic
);

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn layernorm_backward_rows_generic(x: &[f32], dy: &[f32], mean: &[f32], rstd: &[f32], gamma: &[f32], dx: &mut [f32], dg: &mut [f32], db: &mut [f32]) {
    let d = gamma.len();
    let n = d as f32;
    for (r, ((x, dy), dx)) in x.chunks_exact(d).zip(dy.chunks_exact(d)).zip(dx.chunks_exact_mut(d)).enumerate() {
        let (mu, rs) = (mean[r], rstd[r]);
        // Σ g and Σ g·x̂ with lane arrays (vectorisable), g = dy·γ.
        let mut s1 = [0.0f32; LANES];
        let mut s2 = [0.0f32; LANES];
        let mut c = 0;
        while c + LANES <= d {
            for l in 0..LANES {
                let g = dy[c + l] * gamma[c + l];
                s1[l] += g;
                s2[l] += g * (x[c + l] - mu) * rs;
            }
            c += LANES;
        }
        let (mut sum_g, mut sum_gx) = (s1.iter().sum::<f32>(), s2.iter().sum::<f32>());
        for c in c..d {
            let g = dy[c] * gamma[c];
            sum_g += g;
            sum_gx += g * (x[c] - mu) * rs;
        }
        let (mean_g, mean_gx) = (sum_g / n, sum_gx / n);
        for c in 0..d {
            let xh = (x[c] - mu) * rs;
            dx[c] += rs * (dy[c] * gamma[c] - mean_g - xh * mean_gx);
            dg[c] += dy[c] * xh;
            db[c] += dy[c];
        }
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
        row.iter().zip(gamma.iter().zip(beta)).map(|(&v, (&g, &b))| ((v as f64 - mean) / (var + eps).sqrt() * g as f64 + b as f64) as f32).collect()
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

    fn reference64(x: &[f64], d: usize, gamma: &[f64], beta: &[f64], eps: f64) -> Vec<f64> {
        let mut y = Vec::with_capacity(x.len());
        for row in x.chunks_exact(d) {
            let mean = row.iter().sum::<f64>() / d as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
            y.extend(row.iter().zip(gamma.iter().zip(beta)).map(|(v, (g, b))| (v - mean) / (var + eps).sqrt() * g + b));
        }
        y
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn backward_matches_finite_differences(d in 1usize..40, rows in 1usize..5, seed in any::<u64>()) {
            use crate::testutil::*;
            let mut rng = Rng::new(seed);
            // eps = 1e-5 keeps d = 1 (x̂ = 0, var = 0) differentiable with a finite rstd.
            let eps = 1e-5;
            let x: Vec<f32> = (0..rows * d).map(|_| rng.normal() * 2.0 + 0.5).collect();
            let (gamma, beta, r) = (rng.normals(d, 1.0), rng.normals(d, 1.0), rng.normals(rows * d, 1.0));
            let (x64, g64, b64) = (to_f64(&x), to_f64(&gamma), to_f64(&beta));
            let want_dx = numeric_grad(&x64, FD_STEP, |x| dot(&r, &reference64(x, d, &g64, &b64, eps as f64)));
            let want_dg = numeric_grad(&g64, FD_STEP, |g| dot(&r, &reference64(&x64, d, g, &b64, eps as f64)));
            let want_db = numeric_grad(&b64, FD_STEP, |b| dot(&r, &reference64(&x64, d, &g64, b, eps as f64)));

            let (mut y, mut mean, mut rstd) = (vec![0.0; rows * d], vec![0.0; rows], vec![0.0; rows]);
            layernorm_forward_saving(&x, &mut y, d, &gamma, &beta, eps, &mut mean, &mut rstd);
            let mut inplace = x.clone();
            layernorm_forward(&mut inplace, d, &gamma, &beta, eps);
            prop_assert_eq!(&y, &inplace);
            for isa in Isa::available() {
                let (mut dx, mut dg, mut db) = (vec![0.25f32; rows * d], vec![0.0f32; d], vec![0.0f32; d]);
                layernorm_backward_rows_with_isa(isa, &x, &r, &mean, &rstd, &gamma, &mut dx, &mut dg, &mut db);
                dx.iter_mut().for_each(|g| *g -= 0.25);
                // Gradients scale with rstd (≈ 1/2 here); FD is exact to ~1e-9.
                assert_grad("dx", &dx, &want_dx);
                assert_grad("dgamma", &dg, &want_dg);
                assert_grad("dbeta", &db, &want_db);
            }
            let (mut dx, mut dg, mut db) = (vec![0.0f32; rows * d], vec![1.0f32; d], vec![-1.0f32; d]);
            layernorm_backward(&x, d, &gamma, &mean, &rstd, &r, &mut dx, &mut dg, &mut db);
            dg.iter_mut().for_each(|g| *g -= 1.0);
            db.iter_mut().for_each(|g| *g += 1.0);
            assert_grad("dx", &dx, &want_dx);
            assert_grad("dgamma", &dg, &want_dg);
            assert_grad("dbeta", &db, &want_db);
        }
    }

    #[test]
    fn backward_of_many_rows_matches_f64() {
        // Enough rows for several parallel blocks; f64 closed form as the reference.
        use crate::testutil::*;
        let (rows, d) = (700, 53);
        let mut rng = Rng::new(9);
        let (x, gamma, beta, dy) = (rng.normals(rows * d, 3.0), rng.normals(d, 1.0), rng.normals(d, 1.0), rng.normals(rows * d, 1.0));
        let (mut y, mut mean, mut rstd) = (vec![0.0; rows * d], vec![0.0; rows], vec![0.0; rows]);
        layernorm_forward_saving(&x, &mut y, d, &gamma, &beta, 1e-12, &mut mean, &mut rstd);
        let (mut dx, mut dg, mut db) = (vec![0.0f32; rows * d], vec![0.0f32; d], vec![0.0f32; d]);
        layernorm_backward(&x, d, &gamma, &mean, &rstd, &dy, &mut dx, &mut dg, &mut db);
        let (mut want_dx, mut want_dg, mut want_db) = (vec![0.0f64; rows * d], vec![0.0f64; d], vec![0.0f64; d]);
        for i in 0..rows {
            let row = &x[i * d..(i + 1) * d];
            let mu = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
            let rs = 1.0 / (row.iter().map(|&v| (v as f64 - mu).powi(2)).sum::<f64>() / d as f64 + 1e-12).sqrt();
            let xh: Vec<f64> = row.iter().map(|&v| (v as f64 - mu) * rs).collect();
            let g: Vec<f64> = (0..d).map(|c| dy[i * d + c] as f64 * gamma[c] as f64).collect();
            let mg = g.iter().sum::<f64>() / d as f64;
            let mgx = g.iter().zip(&xh).map(|(a, b)| a * b).sum::<f64>() / d as f64;
            for c in 0..d {
                want_dx[i * d + c] = rs * (g[c] - mg - xh[c] * mgx);
                want_dg[c] += dy[i * d + c] as f64 * xh[c];
                want_db[c] += dy[i * d + c] as f64;
            }
        }
        assert_close("dx", &dx, &want_dx, 1e-3, 1e-4);
        assert_close("dgamma", &dg, &want_dg, 1e-4, 1e-3);
        assert_close("dbeta", &db, &want_db, 1e-4, 1e-3);
    }
}
