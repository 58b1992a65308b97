//! Feature distillation on the device (`kernels/distill.cu`): query attention and
//! projection-subtraction, the math of `cpu::distill`.
use super::launch::{alloc_f32, row_block, CudaError, DevSlice, DevSliceMut, Gpu, KernelArgs, LaunchConfig, Packed};

/// `x_star: [n × d]` and the weights `attn: [T]` of `a = softmax(q · Hᵀ)`, `x* = a · H` per
/// sequence; `h: [T × d]`, `q: [d]`.
pub fn query_attention_forward<D: Gpu + ?Sized>(
    dev: &D,
    x_star: DevSliceMut<'_, f32>,
    attn: DevSliceMut<'_, f32>,
    h: DevSlice<'_, f32>,
    seqs: Packed<'_>,
    q: DevSlice<'_, f32>,
) -> Result<(), CudaError> {
    query_attention_forward_with(dev, x_star, attn, h, seqs, q, row_block(q.len()))
}

fn query_attention_forward_with<D: Gpu + ?Sized>(
    dev: &D,
    mut x_star: DevSliceMut<'_, f32>,
    mut attn: DevSliceMut<'_, f32>,
    h: DevSlice<'_, f32>,
    seqs: Packed<'_>,
    q: DevSlice<'_, f32>,
    block: u32,
) -> Result<(), CudaError> {
    let d = q.len();
    assert!(h.len() == seqs.tokens() * d && x_star.len() == seqs.sequences() * d && attn.len() == seqs.tokens(), "query attention: wrong lengths");
    if seqs.sequences() == 0 {
        return Ok(());
    }
    let args = KernelArgs::new().output(&mut x_star).output(&mut attn).input(h).input(seqs.device).input(q).int(d);
    dev.launch("query_attention_forward", LaunchConfig::linear(seqs.sequences(), block, 0), args)
}

/// `out = x − (x·x* / ‖x*‖²) x*` row by row; `out, x, x_star: [n × d]`.
pub fn project_out_forward<D: Gpu + ?Sized>(
    dev: &D,
    out: DevSliceMut<'_, f32>,
    x: DevSlice<'_, f32>,
    x_star: DevSlice<'_, f32>,
    d: usize,
) -> Result<(), CudaError> {
    project_out_forward_with(dev, out, x, x_star, d, row_block(d))
}

fn project_out_forward_with<D: Gpu + ?Sized>(
    dev: &D,
    mut out: DevSliceMut<'_, f32>,
    x: DevSlice<'_, f32>,
    x_star: DevSlice<'_, f32>,
    d: usize,
    block: u32,
) -> Result<(), CudaError> {
    assert!(d > 0 && x.len().is_multiple_of(d) && x_star.len() == x.len() && out.len() == x.len(), "project out: wrong lengths");
    if x.is_empty() {
        return Ok(());
    }
    let args = KernelArgs::new().output(&mut out).input(x).input(x_star).int(d);
    dev.launch("project_out_forward", LaunchConfig::linear(x.len() / d, block, 0), args)
}

/// Backward of query attention, accumulating (`+=`) into `dq: [d]` and, when given,
/// `dh: [T × d]` (RE-Matching stops that gradient), from `d_x_star: [n × d]` and the forward's
/// `attn: [T]`.
#[allow(clippy::too_many_arguments)]
pub fn query_attention_backward<D: Gpu + ?Sized>(
    dev: &D,
    mut dq: DevSliceMut<'_, f32>,
    mut dh: Option<DevSliceMut<'_, f32>>,
    h: DevSlice<'_, f32>,
    seqs: Packed<'_>,
    q: DevSlice<'_, f32>,
    attn: DevSlice<'_, f32>,
    d_x_star: DevSlice<'_, f32>,
) -> Result<(), CudaError> {
    let d = q.len();
    assert!(
        h.len() == seqs.tokens() * d && attn.len() == seqs.tokens() && d_x_star.len() == seqs.sequences() * d && dq.len() == d,
        "query attention backward: wrong lengths"
    );
    assert!(dh.as_ref().is_none_or(|dh| dh.len() == h.len()), "query attention backward: dh is not [T × d]");
    if seqs.sequences() == 0 {
        return Ok(());
    }
    let mut dl = alloc_f32(dev, seqs.tokens())?;
    let args = KernelArgs::new()
        .output(&mut dq)
        .optional_output(dh.as_mut())
        .output(&mut dl.slice_mut())
        .input(h)
        .input(seqs.device)
        .input(q)
        .input(attn)
        .input(d_x_star)
        .int(d);
    dev.launch("query_attention_backward", LaunchConfig::linear(seqs.sequences(), row_block(d), 0), args)
}

/// Backward of projection-subtraction, accumulating into `dx, d_x_star: [n × d]` from
/// `d_out: [n × d]`.
#[allow(clippy::too_many_arguments)]
pub fn project_out_backward<D: Gpu + ?Sized>(
    dev: &D,
    mut dx: DevSliceMut<'_, f32>,
    mut d_x_star: DevSliceMut<'_, f32>,
    x: DevSlice<'_, f32>,
    x_star: DevSlice<'_, f32>,
    d_out: DevSlice<'_, f32>,
    d: usize,
) -> Result<(), CudaError> {
    assert!(d > 0 && x.len().is_multiple_of(d), "project out backward: x is not [n × d]");
    assert!([x_star.len(), d_out.len(), dx.len(), d_x_star.len()].iter().all(|&l| l == x.len()), "project out backward: lengths differ");
    if x.is_empty() {
        return Ok(());
    }
    let args = KernelArgs::new().output(&mut dx).output(&mut d_x_star).input(x).input(x_star).input(d_out).int(d);
    dev.launch("project_out_backward", LaunchConfig::linear(x.len() / d, row_block(d), 0), args)
}

#[cfg(test)]
mod tests {
    use super::super::launch::{with_row_block, ROW_BLOCKS};
    use super::super::testing::{assert_near, bench, starts_u32, RAGGED};
    use super::*;
    use crate::backend::cpu::distill as cpu;
    use crate::testutil::*;

    #[test]
    fn query_attention_matches_the_cpu() {
        let Some(on) = bench() else { return };
        let lens = [3, 1, 6];
        let starts = starts_of(&lens);
        let dev_starts = starts_u32(&starts);
        let seqs = Packed::new(&starts, on.input(&dev_starts));
        let total = *starts.last().unwrap();
        for d in RAGGED {
            let mut rng = Rng::new(d as u64);
            let (h, q, g) = (rng.normals(total * d, 1.0), rng.normals(d, 1.0 / (d as f32).sqrt()), rng.normals(lens.len() * d, 1.0));
            let (mut xs, mut attn) = (vec![0.0; lens.len() * d], vec![0.0; total]);
            cpu::query_attention_forward(&h, &starts, &q, &mut xs, &mut attn);
            for block in ROW_BLOCKS {
                let (mut gxs, mut gattn) = (vec![0.0; lens.len() * d], vec![0.0; total]);
                query_attention_forward_with(on.dev(), on.output(&mut gxs).slice(), on.output(&mut gattn).slice(), on.input(&h), seqs, on.input(&q), block)
                    .unwrap();
                assert_near(&format!("x* d={d} block={block}"), &gxs, &xs, 1e-5, 1e-5);
                assert_near(&format!("attn d={d} block={block}"), &gattn, &attn, 1e-5, 1e-6);
            }
            let (mut dq, mut dh) = (vec![0.5f32; d], vec![0.25f32; total * d]);
            cpu::query_attention_backward(&h, &starts, &q, &attn, &g, &mut dq, Some(&mut dh));
            for block in ROW_BLOCKS {
                with_row_block(block, || {
                    let (mut gdq, mut gdh) = (vec![0.5f32; d], vec![0.25f32; total * d]);
                    query_attention_backward(
                        on.dev(),
                        on.output(&mut gdq).slice(),
                        Some(on.output(&mut gdh).slice()),
                        on.input(&h),
                        seqs,
                        on.input(&q),
                        on.input(&attn),
                        on.input(&g),
                    )
                    .unwrap();
                    assert_near(&format!("dq d={d} block={block}"), &gdq, &dq, 1e-4, 1e-5);
                    assert_near(&format!("dh d={d} block={block}"), &gdh, &dh, 1e-4, 1e-5);
                    let mut gdq2 = vec![0.5f32; d];
                    query_attention_backward(on.dev(), on.output(&mut gdq2).slice(), None, on.input(&h), seqs, on.input(&q), on.input(&attn), on.input(&g))
                        .unwrap();
                    assert_near(&format!("dq without dh d={d}"), &gdq2, &dq, 1e-4, 1e-5);
                });
            }
        }
    }

    #[test]
    fn project_out_matches_the_cpu() {
        let Some(on) = bench() else { return };
        let n = 4;
        for d in RAGGED {
            let mut rng = Rng::new(d as u64 + 50);
            let (x, mut s, g) = (rng.normals(n * d, 1.0), rng.normals(n * d, 1.0), rng.normals(n * d, 1.0));
            s[..d].fill(0.0); // a zero x* removes nothing
            let mut want = vec![0.0; n * d];
            cpu::project_out_forward(&x, &s, d, &mut want);
            for block in ROW_BLOCKS {
                let mut got = vec![0.0; n * d];
                project_out_forward_with(on.dev(), on.output(&mut got).slice(), on.input(&x), on.input(&s), d, block).unwrap();
                assert_near(&format!("out d={d} block={block}"), &got, &want, 1e-5, 1e-5);
            }
            let (mut dx, mut ds) = (vec![0.5f32; n * d], vec![0.25f32; n * d]);
            cpu::project_out_backward(&x, &s, d, &g, &mut dx, &mut ds);
            for block in ROW_BLOCKS {
                with_row_block(block, || {
                    let (mut gdx, mut gds) = (vec![0.5f32; n * d], vec![0.25f32; n * d]);
                    project_out_backward(on.dev(), on.output(&mut gdx).slice(), on.output(&mut gds).slice(), on.input(&x), on.input(&s), on.input(&g), d)
                        .unwrap();
                    assert_near(&format!("dx d={d}"), &gdx, &dx, 1e-4, 1e-5);
                    assert_near(&format!("dx* d={d}"), &gds, &ds, 1e-4, 1e-5);
                });
            }
        }
    }

    /// Query attention then projection-subtraction, `x^p = x − proj(x, x*(q))`, by finite
    /// differences in `q` and `x` (the fused RE-Matching op end to end, with RE-Matching's
    /// stop-gradient on `H`).
    #[test]
    fn distillation_matches_finite_differences() {
        let Some(on) = bench() else { return };
        let (lens, d) = ([4usize, 1, 6], 9);
        let starts = starts_of(&lens);
        let dev_starts = starts_u32(&starts);
        let seqs = Packed::new(&starts, on.input(&dev_starts));
        let (n, total) = (lens.len(), *starts.last().unwrap());
        let mut rng = Rng::new(77);
        let (h, q, x, r) = (rng.normals(total * d, 1.0), rng.normals(d, 1.0), rng.normals(n * d, 1.0), rng.normals(n * d, 1.0));
        let h64 = to_f64(&h);
        let forward64 = |q: &[f64], x: &[f64]| {
            let mut out = Vec::new();
            for (s, w) in starts.windows(2).enumerate() {
                let logits: Vec<f64> = (w[0]..w[1]).map(|t| (0..d).map(|c| h64[t * d + c] * q[c]).sum()).collect();
                let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = logits.iter().map(|l| (l - max).exp()).sum();
                let xs: Vec<f64> = (0..d).map(|c| (w[0]..w[1]).zip(&logits).map(|(t, l)| (l - max).exp() / z * h64[t * d + c]).sum()).collect();
                let row = &x[s * d..(s + 1) * d];
                let k = row.iter().zip(&xs).map(|(a, b)| a * b).sum::<f64>() / xs.iter().map(|v| v * v).sum::<f64>();
                out.extend(row.iter().zip(&xs).map(|(a, b)| a - k * b));
            }
            out
        };
        let (q64, x64) = (to_f64(&q), to_f64(&x));
        let want_dq = numeric_grad(&q64, FD_STEP, |q| dot(&r, &forward64(q, &x64)));
        let want_dx = numeric_grad(&x64, FD_STEP, |x| dot(&r, &forward64(&q64, x)));

        let (mut xs, mut attn, mut out) = (vec![0.0; n * d], vec![0.0; total], vec![0.0; n * d]);
        query_attention_forward(on.dev(), on.output(&mut xs).slice(), on.output(&mut attn).slice(), on.input(&h), seqs, on.input(&q)).unwrap();
        project_out_forward(on.dev(), on.output(&mut out).slice(), on.input(&x), on.input(&xs), d).unwrap();
        assert_close("x^p", &out, &forward64(&q64, &x64), 1e-5, 1e-5);
        let (mut dx, mut dxs, mut dq) = (vec![0.0f32; n * d], vec![0.0f32; n * d], vec![0.0f32; d]);
        project_out_backward(on.dev(), on.output(&mut dx).slice(), on.output(&mut dxs).slice(), on.input(&x), on.input(&xs), on.input(&r), d).unwrap();
        query_attention_backward(on.dev(), on.output(&mut dq).slice(), None, on.input(&h), seqs, on.input(&q), on.input(&attn), on.input(&dxs)).unwrap();
        assert_grad("dx", &dx, &want_dx);
        assert_grad("dq", &dq, &want_dq);
    }
}
