//! LayerNorm on the device (`kernels/layernorm.cu`); the math of `cpu::layernorm`.
use super::launch::{row_block as block_for, CudaError, DevSlice, DevSliceMut, Gpu, KernelArgs, LaunchConfig};

/// Blocks of the backward pass: each sums the parameter gradients of its share of rows.
fn backward_grid(rows: usize) -> usize {
    rows.clamp(1, 128)
}

/// Normalises every row of `x: [rows × d]` in place. `gamma, beta: [d]`.
pub fn layernorm_forward<D: Gpu + ?Sized>(
    dev: &D,
    mut x: DevSliceMut<'_, f32>,
    gamma: DevSlice<'_, f32>,
    beta: DevSlice<'_, f32>,
    d: usize,
    eps: f32,
) -> Result<(), CudaError> {
    let rows = check(x.len(), d, gamma, beta);
    let x_in = x.as_const().addr();
    // SAFETY: the kernel reads each element before it writes it, in the same thread.
    let x_in = unsafe { DevSlice::<f32>::from_raw(x_in, x.len()) };
    launch_forward(dev, &mut x, None, x_in, gamma, beta, rows, d, eps, block_for(d))
}

/// Training forward: `y = LayerNorm(x)` for `x, y: [rows × d]`, saving `mean, rstd: [rows]`.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_forward_saving<D: Gpu + ?Sized>(
    dev: &D,
    mut y: DevSliceMut<'_, f32>,
    mean: DevSliceMut<'_, f32>,
    rstd: DevSliceMut<'_, f32>,
    x: DevSlice<'_, f32>,
    gamma: DevSlice<'_, f32>,
    beta: DevSlice<'_, f32>,
    d: usize,
    eps: f32,
) -> Result<(), CudaError> {
    layernorm_forward_saving_with(dev, &mut y, mean, rstd, x, gamma, beta, d, eps, block_for(d))
}

#[allow(clippy::too_many_arguments)]
fn layernorm_forward_saving_with<D: Gpu + ?Sized>(
    dev: &D,
    y: &mut DevSliceMut<'_, f32>,
    mean: DevSliceMut<'_, f32>,
    rstd: DevSliceMut<'_, f32>,
    x: DevSlice<'_, f32>,
    gamma: DevSlice<'_, f32>,
    beta: DevSlice<'_, f32>,
    d: usize,
    eps: f32,
    block: u32,
) -> Result<(), CudaError> {
    let rows = check(x.len(), d, gamma, beta);
    assert!(y.len() == x.len() && mean.len() == rows && rstd.len() == rows, "layernorm: y, mean or rstd has the wrong length");
    launch_forward(dev, y, Some((mean, rstd)), x, gamma, beta, rows, d, eps, block)
}

#[allow(clippy::too_many_arguments)]
fn launch_forward<D: Gpu + ?Sized>(
    dev: &D,
    y: &mut DevSliceMut<'_, f32>,
    saved: Option<(DevSliceMut<'_, f32>, DevSliceMut<'_, f32>)>,
    x: DevSlice<'_, f32>,
    gamma: DevSlice<'_, f32>,
    beta: DevSlice<'_, f32>,
    rows: usize,
    d: usize,
    eps: f32,
    block: u32,
) -> Result<(), CudaError> {
    if rows == 0 {
        return Ok(());
    }
    let (mut mean, mut rstd) = saved.map_or((None, None), |(m, r)| (Some(m), Some(r)));
    let args =
        KernelArgs::new().output(y).optional_output(mean.as_mut()).optional_output(rstd.as_mut()).input(x).input(gamma).input(beta).int(rows).int(d).f32(eps);
    dev.launch("layernorm_forward", LaunchConfig::linear(rows, block, 0), args)
}

/// Backward of LayerNorm, accumulating (`+=`) into `dx: [rows × d]`, `dgamma, dbeta: [d]`
/// from `dy: [rows × d]` and the forward's `x`, `mean, rstd: [rows]`.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_backward<D: Gpu + ?Sized>(
    dev: &D,
    dx: DevSliceMut<'_, f32>,
    dgamma: DevSliceMut<'_, f32>,
    dbeta: DevSliceMut<'_, f32>,
    x: DevSlice<'_, f32>,
    dy: DevSlice<'_, f32>,
    gamma: DevSlice<'_, f32>,
    mean: DevSlice<'_, f32>,
    rstd: DevSlice<'_, f32>,
    d: usize,
) -> Result<(), CudaError> {
    let rows = x.len() / d.max(1);
    layernorm_backward_with(dev, dx, dgamma, dbeta, x, dy, gamma, mean, rstd, d, block_for(d), backward_grid(rows))
}

#[allow(clippy::too_many_arguments)]
fn layernorm_backward_with<D: Gpu + ?Sized>(
    dev: &D,
    mut dx: DevSliceMut<'_, f32>,
    mut dgamma: DevSliceMut<'_, f32>,
    mut dbeta: DevSliceMut<'_, f32>,
    x: DevSlice<'_, f32>,
    dy: DevSlice<'_, f32>,
    gamma: DevSlice<'_, f32>,
    mean: DevSlice<'_, f32>,
    rstd: DevSlice<'_, f32>,
    d: usize,
    block: u32,
    grid: usize,
) -> Result<(), CudaError> {
    let rows = check(x.len(), d, gamma, gamma);
    assert!(dy.len() == x.len() && dx.len() == x.len() && mean.len() == rows && rstd.len() == rows, "layernorm backward: wrong lengths");
    assert!(dgamma.len() == d && dbeta.len() == d, "layernorm backward: dgamma or dbeta is not [d]");
    if rows == 0 {
        return Ok(());
    }
    let args =
        KernelArgs::new().output(&mut dx).output(&mut dgamma).output(&mut dbeta).input(x).input(dy).input(gamma).input(mean).input(rstd).int(rows).int(d);
    dev.launch("layernorm_backward", LaunchConfig::linear(grid.min(rows), block, 2 * d * 4), args)
}

/// Rows of `x`, after checking `d` and the parameter lengths.
fn check(x_len: usize, d: usize, gamma: DevSlice<'_, f32>, beta: DevSlice<'_, f32>) -> usize {
    assert!(d > 0 && x_len.is_multiple_of(d), "layernorm: x is not [rows × {d}]");
    assert!(gamma.len() == d && beta.len() == d, "layernorm: gamma or beta is not [d]");
    x_len / d
}

#[cfg(test)]
mod tests {
    use super::super::launch::ROW_BLOCKS;
    use super::super::testing::{assert_near, bench, RAGGED};
    use super::*;
    use crate::backend::cpu::layernorm as cpu;
    use crate::testutil::Rng;

    #[test]
    fn forward_and_backward_match_the_cpu_for_every_block_size() {
        let Some(on) = bench() else { return };
        let rows = 3;
        for d in RAGGED {
            let mut rng = Rng::new(d as u64);
            let (x, gamma, beta, dy) = (rng.normals(rows * d, 2.0), rng.normals(d, 1.0), rng.normals(d, 1.0), rng.normals(rows * d, 1.0));
            let eps = 1e-5;
            let (mut y, mut mean, mut rstd) = (vec![0.0; rows * d], vec![0.0; rows], vec![0.0; rows]);
            cpu::layernorm_forward_saving(&x, &mut y, d, &gamma, &beta, eps, &mut mean, &mut rstd);
            let (mut dx, mut dg, mut db) = (vec![0.5f32; rows * d], vec![0.25f32; d], vec![-0.25f32; d]);
            cpu::layernorm_backward(&x, d, &gamma, &mean, &rstd, &dy, &mut dx, &mut dg, &mut db);
            for block in ROW_BLOCKS {
                let (mut gy, mut gm, mut gr) = (vec![0.0; rows * d], vec![0.0; rows], vec![0.0; rows]);
                let (hx, hg, hb) = (on.input(&x), on.input(&gamma), on.input(&beta));
                layernorm_forward_saving_with(
                    on.dev(),
                    &mut on.output(&mut gy).slice(),
                    on.output(&mut gm).slice(),
                    on.output(&mut gr).slice(),
                    hx,
                    hg,
                    hb,
                    d,
                    eps,
                    block,
                )
                .unwrap();
                let at = format!("d={d} block={block}");
                assert_near(&format!("y {at}"), &gy, &y, 1e-5, 1e-5);
                assert_near(&format!("mean {at}"), &gm, &mean, 1e-5, 1e-6);
                assert_near(&format!("rstd {at}"), &gr, &rstd, 1e-5, 1e-6);
                for grid in [1, rows] {
                    let (mut gdx, mut gdg, mut gdb) = (vec![0.5f32; rows * d], vec![0.25f32; d], vec![-0.25f32; d]);
                    let (hdy, hm, hr) = (on.input(&dy), on.input(&mean), on.input(&rstd));
                    layernorm_backward_with(
                        on.dev(),
                        on.output(&mut gdx).slice(),
                        on.output(&mut gdg).slice(),
                        on.output(&mut gdb).slice(),
                        hx,
                        hdy,
                        hg,
                        hm,
                        hr,
                        d,
                        block,
                        grid,
                    )
                    .unwrap();
                    let at = format!("{at} grid={grid}");
                    assert_near(&format!("dx {at}"), &gdx, &dx, 1e-4, 1e-5);
                    assert_near(&format!("dgamma {at}"), &gdg, &dg, 1e-4, 1e-5);
                    assert_near(&format!("dbeta {at}"), &gdb, &db, 1e-4, 1e-5);
                }
            }
            // The in-place inference form equals the saving form.
            let mut inplace = x.clone();
            layernorm_forward(on.dev(), on.output(&mut inplace).slice(), on.input(&gamma), on.input(&beta), d, eps).unwrap();
            assert_near(&format!("in place d={d}"), &inplace, &y, 1e-5, 1e-5);
        }
    }
}
