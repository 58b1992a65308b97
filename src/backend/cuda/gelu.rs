//! GELU (exact erf form) on the device (`kernels/gelu.cu`); the math of `cpu::gelu`.
use super::launch::{CudaError, DevSlice, DevSliceMut, Gpu, KernelArgs, LaunchConfig, ELEMENTWISE_BLOCK};

/// `x ← gelu(x + bias[column])` in place; `x: [rows × bias.len()]`. (The CPU op takes a
/// bias as long as `x`; here the bias is the linear layer's, broadcast over rows.)
pub fn bias_gelu_forward<D: Gpu + ?Sized>(dev: &D, mut x: DevSliceMut<'_, f32>, bias: DevSlice<'_, f32>) -> Result<(), CudaError> {
    assert!(!bias.is_empty() && x.len().is_multiple_of(bias.len()), "bias_gelu: x is not [rows × bias.len()]");
    // SAFETY: each element is read before it is written, by the same thread.
    let input = unsafe { DevSlice::<f32>::from_raw(x.addr(), x.len()) };
    launch_forward(dev, &mut x, input, Some(bias), bias.len(), ELEMENTWISE_BLOCK)
}

/// `y = gelu(z)` out of place (training keeps `z` for [`gelu_backward`]); `z, y`: same length.
pub fn gelu_forward<D: Gpu + ?Sized>(dev: &D, mut y: DevSliceMut<'_, f32>, z: DevSlice<'_, f32>) -> Result<(), CudaError> {
    assert_eq!(y.len(), z.len(), "gelu: y and z differ in length");
    launch_forward(dev, &mut y, z, None, 1, ELEMENTWISE_BLOCK)
}

fn launch_forward<D: Gpu + ?Sized>(
    dev: &D,
    y: &mut DevSliceMut<'_, f32>,
    x: DevSlice<'_, f32>,
    bias: Option<DevSlice<'_, f32>>,
    cols: usize,
    block: u32,
) -> Result<(), CudaError> {
    if x.is_empty() {
        return Ok(());
    }
    let n = x.len();
    let args = KernelArgs::new().output(y).input(x).optional_input(bias).u64(n as u64).int(cols);
    dev.launch("bias_gelu_forward", LaunchConfig::elementwise(n, block), args)
}

/// `dz += dy ⊙ gelu'(z)`; `z, dy, dz`: same length.
pub fn gelu_backward<D: Gpu + ?Sized>(dev: &D, dz: DevSliceMut<'_, f32>, z: DevSlice<'_, f32>, dy: DevSlice<'_, f32>) -> Result<(), CudaError> {
    gelu_backward_with(dev, dz, z, dy, ELEMENTWISE_BLOCK)
}

fn gelu_backward_with<D: Gpu + ?Sized>(
    dev: &D,
    mut dz: DevSliceMut<'_, f32>,
    z: DevSlice<'_, f32>,
    dy: DevSlice<'_, f32>,
    block: u32,
) -> Result<(), CudaError> {
    assert!(z.len() == dy.len() && dz.len() == z.len(), "gelu backward: lengths differ");
    if z.is_empty() {
        return Ok(());
    }
    let args = KernelArgs::new().output(&mut dz).input(z).input(dy).u64(z.len() as u64);
    dev.launch("gelu_backward", LaunchConfig::elementwise(z.len(), block), args)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_near, bench, RAGGED};
    use super::*;
    use crate::backend::cpu::gelu as cpu;
    use crate::testutil::Rng;

    #[test]
    fn forward_and_backward_match_the_cpu() {
        let Some(on) = bench() else { return };
        let rows = 3;
        for cols in RAGGED {
            let mut rng = Rng::new(cols as u64);
            let (x, bias, dy) = (rng.normals(rows * cols, 3.0), rng.normals(cols, 1.0), rng.normals(rows * cols, 1.0));
            let mut want = x.clone();
            cpu::bias_gelu_forward(&mut want, &bias.repeat(rows));
            let mut got = x.clone();
            bias_gelu_forward(on.dev(), on.output(&mut got).slice(), on.input(&bias)).unwrap();
            assert_near("bias_gelu", &got, &want, 2e-6, 2e-6);
            let mut want_y = vec![0.0; x.len()];
            cpu::gelu_forward(&x, &mut want_y);
            let mut y = vec![0.0; x.len()];
            gelu_forward(on.dev(), on.output(&mut y).slice(), on.input(&x)).unwrap();
            assert_near("gelu", &y, &want_y, 2e-6, 2e-6);
            let mut want_dz = vec![0.5f32; x.len()];
            cpu::gelu_backward(&x, &dy, &mut want_dz);
            // Grid-stride: a small block and a full one (one launch may cover several passes).
            for block in [32, ELEMENTWISE_BLOCK] {
                let mut dz = vec![0.5f32; x.len()];
                gelu_backward_with(on.dev(), on.output(&mut dz).slice(), on.input(&x), on.input(&dy), block).unwrap();
                assert_near("dz", &dz, &want_dz, 2e-6, 2e-6);
            }
        }
    }
}
