//! The 3-part matching score on the device, `s(a, b) = Σ_p w_p cos(a_p, b_p)`: parts scaled
//! to unit norm (`kernels/cosine.cu`), then one GEMM; the math of `cpu::cosine`.
use super::blas::{Gemm, Op};
use super::launch::{alloc_f32, row_block, CudaError, DevSlice, DevSliceMut, DeviceBuffer, Gpu, KernelArgs, LaunchConfig};

/// Rows of `x: [rows × P·d]` with each part scaled to `w_p/‖x_p‖` (`weights: None`: 1), and
/// the parts' norms `[rows × P]`.
fn normalize_parts<D: Gpu + ?Sized>(
    dev: &D,
    x: DevSlice<'_, f32>,
    d: usize,
    parts: usize,
    weights: Option<DevSlice<'_, f32>>,
    block: u32,
) -> Result<(DeviceBuffer<f32>, DeviceBuffer<f32>), CudaError> {
    let rows = x.len() / (parts * d);
    let (mut out, mut norms) = (alloc_f32(dev, x.len())?, alloc_f32(dev, rows * parts)?);
    if rows > 0 {
        let args = KernelArgs::new().output(&mut out.slice_mut()).output(&mut norms.slice_mut()).input(x).optional_input(weights).int(d);
        let config = LaunchConfig { grid: [rows as u32, parts as u32, 1], block: [block, 1, 1], shared_bytes: 0 };
        dev.launch("normalize_parts", config, args)?;
    }
    Ok((out, norms))
}

/// `(n, m, P·d)` after checking the shapes.
fn check(a: DevSlice<'_, f32>, b: DevSlice<'_, f32>, d: usize, weights: DevSlice<'_, f32>) -> (usize, usize, usize) {
    let width = d * weights.len();
    assert!(width > 0, "cosine scores: no parts or empty parts");
    assert!(a.len().is_multiple_of(width) && b.len().is_multiple_of(width), "cosine scores: rows are not P·d long");
    (a.len() / width, b.len() / width, width)
}

/// `scores: [n × m]`, `scores[i·m + j] = Σ_p w_p cos(a_i,p, b_j,p)` for `a: [n × P·d]`,
/// `b: [m × P·d]`, `weights: [P]`.
pub fn cosine_scores_forward<D: Gpu + ?Sized>(
    dev: &D,
    scores: DevSliceMut<'_, f32>,
    a: DevSlice<'_, f32>,
    b: DevSlice<'_, f32>,
    weights: DevSlice<'_, f32>,
    d: usize,
) -> Result<(), CudaError> {
    cosine_scores_forward_with(dev, scores, a, b, weights, d, row_block(d))
}

fn cosine_scores_forward_with<D: Gpu + ?Sized>(
    dev: &D,
    c: DevSliceMut<'_, f32>,
    a: DevSlice<'_, f32>,
    b: DevSlice<'_, f32>,
    weights: DevSlice<'_, f32>,
    d: usize,
    block: u32,
) -> Result<(), CudaError> {
    let (n, m, width) = check(a, b, d, weights);
    assert_eq!(c.len(), n * m, "cosine scores: scores is not [n × m]");
    let (an, _) = normalize_parts(dev, a, d, weights.len(), Some(weights), block)?;
    let (bn, _) = normalize_parts(dev, b, d, weights.len(), None, block)?;
    // Row-major scores = Â·B̂ᵀ  ⇔  column-major scoresᵀ (m × n) = B̂·Âᵀ: A = B̂ stored
    // (width × m, op T), B = Â stored (width × n, op N).
    let (a, b) = (bn.slice(), an.slice());
    dev.sgemm(Gemm {
        transa: Op::T,
        transb: Op::N,
        m,
        n,
        k: width,
        alpha: 1.0,
        a,
        lda: width,
        stride_a: 0,
        b,
        ldb: width,
        stride_b: 0,
        beta: 0.0,
        c,
        ldc: m,
        stride_c: 0,
        batch: 1,
    })
}

/// Backward: `da += ∂(Σ d_scores ⊙ s)/∂a` and, when `db` is given, the same for `b`.
/// Shapes as the forward, `d_scores: [n × m]`.
#[allow(clippy::too_many_arguments)]
pub fn cosine_scores_backward<D: Gpu + ?Sized>(
    dev: &D,
    da: DevSliceMut<'_, f32>,
    db: Option<DevSliceMut<'_, f32>>,
    a: DevSlice<'_, f32>,
    b: DevSlice<'_, f32>,
    weights: DevSlice<'_, f32>,
    d_scores: DevSlice<'_, f32>,
    d: usize,
) -> Result<(), CudaError> {
    let (n, m, width) = check(a, b, d, weights);
    assert!(d_scores.len() == n * m && da.len() == a.len() && db.as_ref().is_none_or(|db| db.len() == b.len()), "cosine scores backward: wrong lengths");
    let parts = weights.len();
    let block = row_block(d);
    let (an, a_norms) = normalize_parts(dev, a, d, parts, None, block)?;
    let (bn, b_norms) = normalize_parts(dev, b, d, parts, None, block)?;
    // G_a = d_scores·B̂ ([n × width])  ⇔  G_aᵀ = B̂ᵀ·d_scoresᵀ: both as stored.
    let mut g = alloc_f32(dev, n * width)?;
    let gs = g.slice_mut();
    dev.sgemm(Gemm {
        transa: Op::N,
        transb: Op::N,
        m: width,
        n,
        k: m,
        alpha: 1.0,
        a: bn.slice(),
        lda: width,
        stride_a: 0,
        b: d_scores,
        ldb: m,
        stride_b: 0,
        beta: 0.0,
        c: gs,
        ldc: width,
        stride_c: 0,
        batch: 1,
    })?;
    parts_backward(dev, da, an.slice(), g.slice(), a_norms.slice(), weights, n, d, block)?;
    if let Some(db) = db {
        // G_b = d_scoresᵀ·Â ([m × width])  ⇔  G_bᵀ = Âᵀ·d_scores: A = Â (op N), B = d_scores'
        // column-major view d_scoresᵀ (op T).
        let mut g = alloc_f32(dev, m * width)?;
        let gs = g.slice_mut();
        dev.sgemm(Gemm {
            transa: Op::N,
            transb: Op::T,
            m: width,
            n: m,
            k: n,
            alpha: 1.0,
            a: an.slice(),
            lda: width,
            stride_a: 0,
            b: d_scores,
            ldb: m,
            stride_b: 0,
            beta: 0.0,
            c: gs,
            ldc: width,
            stride_c: 0,
            batch: 1,
        })?;
        parts_backward(dev, db, bn.slice(), g.slice(), b_norms.slice(), weights, m, d, block)?;
    }
    Ok(())
}

/// `dx_p += w_p (G_p − x̂_p (x̂_p · G_p)) / ‖x_p‖` for `rows` rows.
#[allow(clippy::too_many_arguments)]
fn parts_backward<D: Gpu + ?Sized>(
    dev: &D,
    mut dx: DevSliceMut<'_, f32>,
    unit: DevSlice<'_, f32>,
    g: DevSlice<'_, f32>,
    norms: DevSlice<'_, f32>,
    weights: DevSlice<'_, f32>,
    rows: usize,
    d: usize,
    block: u32,
) -> Result<(), CudaError> {
    if rows == 0 {
        return Ok(());
    }
    let args = KernelArgs::new().output(&mut dx).input(unit).input(g).input(norms).input(weights).int(d);
    dev.launch("cosine_parts_backward", LaunchConfig { grid: [rows as u32, weights.len() as u32, 1], block: [block, 1, 1], shared_bytes: 0 }, args)
}

#[cfg(test)]
mod tests {
    use super::super::launch::{with_row_block, ROW_BLOCKS};
    use super::super::testing::{assert_near, bench, RAGGED};
    use super::*;
    use crate::backend::cpu::cosine as cpu;
    use crate::testutil::*;

    #[test]
    fn forward_and_backward_match_the_cpu() {
        let Some(on) = bench() else { return };
        let weights = [0.5f32, 0.2, 0.3];
        let (n, m) = (2, 3);
        for d in RAGGED {
            let mut rng = Rng::new(d as u64);
            let (mut a, b, r) = (rng.normals(n * 3 * d, 1.5), rng.normals(m * 3 * d, 1.0), rng.normals(n * m, 1.0));
            a[d..2 * d].fill(0.0); // a zero part: cosine 0, no gradient
            let mut want = vec![0.0; n * m];
            cpu::cosine_scores_forward(&a, &b, d, &weights, &mut want);
            for block in ROW_BLOCKS {
                let mut got = vec![0.0; n * m];
                cosine_scores_forward_with(on.dev(), on.output(&mut got).slice(), on.input(&a), on.input(&b), on.input(&weights), d, block).unwrap();
                assert_near(&format!("scores d={d} block={block}"), &got, &want, 1e-5, 1e-5);
            }
            let (mut da, mut db) = (vec![0.25f32; a.len()], vec![0.5f32; b.len()]);
            cpu::cosine_scores_backward(&a, &b, d, &weights, &r, &mut da, Some(&mut db));
            for block in ROW_BLOCKS {
                with_row_block(block, || {
                    let (mut gda, mut gdb) = (vec![0.25f32; a.len()], vec![0.5f32; b.len()]);
                    cosine_scores_backward(
                        on.dev(),
                        on.output(&mut gda).slice(),
                        Some(on.output(&mut gdb).slice()),
                        on.input(&a),
                        on.input(&b),
                        on.input(&weights),
                        on.input(&r),
                        d,
                    )
                    .unwrap();
                    assert_near(&format!("da d={d}"), &gda, &da, 1e-4, 1e-5);
                    assert_near(&format!("db d={d}"), &gdb, &db, 1e-4, 1e-5);
                });
            }
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        let Some(on) = bench() else { return };
        let (n, m, d, weights) = (4, 3, 7, [0.6f32, 0.2, 0.2]);
        let mut rng = Rng::new(12);
        let (a, b, r) = (rng.normals(n * 3 * d, 1.0), rng.normals(m * 3 * d, 1.0), rng.normals(n * m, 1.0));
        let scores64 = |a: &[f64], b: &[f64]| {
            let cos = |x: &[f64], y: &[f64]| {
                x.iter().zip(y).map(|(p, q)| p * q).sum::<f64>() / (x.iter().map(|v| v * v).sum::<f64>() * y.iter().map(|v| v * v).sum::<f64>()).sqrt()
            };
            let mut s = Vec::new();
            for i in 0..n {
                for j in 0..m {
                    s.push((0..3).map(|p| weights[p] as f64 * cos(&a[(i * 3 + p) * d..][..d], &b[(j * 3 + p) * d..][..d])).sum());
                }
            }
            s
        };
        let (a64, b64) = (to_f64(&a), to_f64(&b));
        let want_a = numeric_grad(&a64, FD_STEP, |a| dot(&r, &scores64(a, &b64)));
        let want_b = numeric_grad(&b64, FD_STEP, |b| dot(&r, &scores64(&a64, b)));
        let (mut da, mut db) = (vec![0.0f32; a.len()], vec![0.0f32; b.len()]);
        cosine_scores_backward(
            on.dev(),
            on.output(&mut da).slice(),
            Some(on.output(&mut db).slice()),
            on.input(&a),
            on.input(&b),
            on.input(&weights),
            on.input(&r),
            d,
        )
        .unwrap();
        assert_grad("da", &da, &want_a);
        assert_grad("db", &db, &want_b);
    }
}
