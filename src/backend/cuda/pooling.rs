//! Mean pooling of packed sequences on the device (`kernels/pooling.cu`): `cpu::pooling`'s
//! sums in its order, so the same result; and rows scaled to unit norm (`kernels/cosine.cu`'s
//! `normalize_parts` with one part).
use super::launch::{alloc_f32, row_block, CudaError, DevSlice, DevSliceMut, Gpu, KernelArgs, LaunchConfig, Packed};

/// Every row of `x: [rows × d]` scaled to unit L2 norm in place (a zero row stays zero).
pub fn l2_normalize_rows<D: Gpu + ?Sized>(dev: &D, mut x: DevSliceMut<'_, f32>, d: usize) -> Result<(), CudaError> {
    assert!(d > 0 && x.len().is_multiple_of(d), "l2 normalize: x is not [rows × d]");
    let rows = x.len() / d;
    if rows == 0 {
        return Ok(());
    }
    let mut norms = alloc_f32(dev, rows)?;
    // In place (`out` and `x` one buffer): each thread rewrites only the columns it read.
    let args = KernelArgs::new().output(&mut x).output(&mut norms.slice_mut()).input(x.as_const()).optional_input::<f32>(None).int(d);
    let config = LaunchConfig { grid: [rows as u32, 1, 1], block: [row_block(d), 1, 1], shared_bytes: 0 };
    dev.launch("normalize_parts", config, args)
}

/// `out: [n_seqs × d]` = the mean of each sequence's rows of `h: [T × d]`.
pub fn mean_pool_forward<D: Gpu + ?Sized>(dev: &D, out: DevSliceMut<'_, f32>, h: DevSlice<'_, f32>, seqs: Packed<'_>, d: usize) -> Result<(), CudaError> {
    mean_pool_forward_with(dev, out, h, seqs, d, row_block(d))
}

fn mean_pool_forward_with<D: Gpu + ?Sized>(
    dev: &D,
    mut out: DevSliceMut<'_, f32>,
    h: DevSlice<'_, f32>,
    seqs: Packed<'_>,
    d: usize,
    block: u32,
) -> Result<(), CudaError> {
    assert!(out.len() == seqs.sequences() * d && h.len() == seqs.tokens() * d, "mean pool: out is not [n × d] or h not [T × d]");
    if out.is_empty() {
        return Ok(());
    }
    let args = KernelArgs::new().output(&mut out).input(h).input(seqs.device).int(d);
    dev.launch("mean_pool_forward", LaunchConfig::linear(seqs.sequences(), block, 0), args)
}

/// Backward: `dh[t] += d_out[s] / len(s)` for every row `t` of sequence `s`.
pub fn mean_pool_backward<D: Gpu + ?Sized>(
    dev: &D,
    mut dh: DevSliceMut<'_, f32>,
    d_out: DevSlice<'_, f32>,
    seqs: Packed<'_>,
    d: usize,
) -> Result<(), CudaError> {
    assert!(d_out.len() == seqs.sequences() * d && dh.len() == seqs.tokens() * d, "mean pool backward: wrong lengths");
    if dh.is_empty() {
        return Ok(());
    }
    let args = KernelArgs::new().output(&mut dh).input(d_out).input(seqs.device).int(seqs.sequences()).int(d);
    dev.launch("mean_pool_backward", LaunchConfig::linear(seqs.tokens(), row_block(d), 0), args)
}

#[cfg(test)]
mod tests {
    use super::super::launch::{with_row_block, ROW_BLOCKS};
    use super::super::testing::{bench, starts_u32, RAGGED};
    use super::*;
    use crate::backend::cpu::pooling as cpu;
    use crate::testutil::{starts_of, Rng};

    #[test]
    fn forward_and_backward_equal_the_cpu() {
        let Some(on) = bench() else { return };
        let starts = starts_of(&[3, 1, 6]);
        let dev_starts = starts_u32(&starts);
        let seqs = Packed::new(&starts, on.input(&dev_starts));
        for d in RAGGED {
            let mut rng = Rng::new(d as u64);
            let (h, g) = (rng.normals(10 * d, 1.0), rng.normals(3 * d, 1.0));
            let mut want = vec![0.0; 3 * d];
            cpu::mean_pool_forward(&h, &starts, d, &mut want);
            for block in ROW_BLOCKS {
                let mut got = vec![0.0; 3 * d];
                mean_pool_forward_with(on.dev(), on.output(&mut got).slice(), on.input(&h), seqs, d, block).unwrap();
                assert_eq!(got, want, "d={d} block={block}");
            }
            let mut want_dh = vec![0.5f32; 10 * d];
            cpu::mean_pool_backward(&g, &starts, d, &mut want_dh);
            for block in ROW_BLOCKS {
                with_row_block(block, || {
                    let mut dh = vec![0.5f32; 10 * d];
                    mean_pool_backward(on.dev(), on.output(&mut dh).slice(), on.input(&g), seqs, d).unwrap();
                    assert_eq!(dh, want_dh, "backward d={d}");
                });
            }
        }
    }
}
