//! Dropout on the device (`kernels/dropout.cu`) with the CPU op's counter-based mask:
//! bit for bit `cpu::dropout`'s result.
use super::launch::{CudaError, DevSlice, DevSliceMut, Gpu, KernelArgs, LaunchConfig, ELEMENTWISE_BLOCK};

/// The mask's threshold and the kept values' scale, computed as the CPU op does.
fn mask_parameters(p: f32) -> (u64, f32) {
    assert!((0.0..1.0).contains(&p), "dropout probability {p} is outside [0, 1)");
    ((p as f64 * u64::MAX as f64) as u64, 1.0 / (1.0 - p))
}

/// `x ← dropout(x)` in place with the mask of `(p, key)`.
pub fn dropout_forward<D: Gpu + ?Sized>(dev: &D, x: DevSliceMut<'_, f32>, p: f32, key: u64) -> Result<(), CudaError> {
    dropout_forward_with(dev, x, p, key, ELEMENTWISE_BLOCK)
}

fn dropout_forward_with<D: Gpu + ?Sized>(dev: &D, mut x: DevSliceMut<'_, f32>, p: f32, key: u64, block: u32) -> Result<(), CudaError> {
    let (threshold, scale) = mask_parameters(p);
    if p == 0.0 || x.is_empty() {
        return Ok(());
    }
    let n = x.len();
    let args = KernelArgs::new().output(&mut x).u64(n as u64).u64(threshold).f32(scale).u64(key);
    dev.launch("dropout_forward", LaunchConfig::elementwise(n, block), args)
}

/// Backward with the same `(p, key)`: `dx += mask ⊙ dy / (1 − p)`.
pub fn dropout_backward<D: Gpu + ?Sized>(dev: &D, mut dx: DevSliceMut<'_, f32>, dy: DevSlice<'_, f32>, p: f32, key: u64) -> Result<(), CudaError> {
    assert_eq!(dx.len(), dy.len(), "dropout backward: dx and dy differ in length");
    let (threshold, scale) = mask_parameters(p);
    if dy.is_empty() {
        return Ok(());
    }
    let args = KernelArgs::new().output(&mut dx).input(dy).u64(dy.len() as u64).u64(threshold).f32(scale).u64(key);
    dev.launch("dropout_backward", LaunchConfig::elementwise(dy.len(), ELEMENTWISE_BLOCK), args)
}

#[cfg(test)]
mod tests {
    use super::super::testing::bench;
    use super::*;
    use crate::backend::cpu::dropout as cpu;
    use crate::testutil::Rng;

    #[test]
    fn the_mask_and_values_are_the_cpus_bit_for_bit() {
        let Some(on) = bench() else { return };
        let mut rng = Rng::new(1);
        for (n, p, key) in [(1usize, 0.5f32, 3u64), (385, 0.1, 7), (5000, 0.3, u64::MAX), (64, 0.0, 9)] {
            let x = rng.normals(n, 1.0);
            let mut want = x.clone();
            cpu::dropout_forward(&mut want, p, key);
            for block in [32, ELEMENTWISE_BLOCK] {
                let mut got = x.clone();
                dropout_forward_with(on.dev(), on.output(&mut got).slice(), p, key, block).unwrap();
                assert_eq!(got, want, "n={n} p={p} block={block}");
            }
            let mut want_dx = vec![0.5f32; n];
            cpu::dropout_backward(&x, p, key, &mut want_dx);
            let mut dx = vec![0.5f32; n];
            dropout_backward(on.dev(), on.output(&mut dx).slice(), on.input(&x), p, key).unwrap();
            assert_eq!(dx, want_dx, "backward n={n} p={p}");
        }
    }
}
