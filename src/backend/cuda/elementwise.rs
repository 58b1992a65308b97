//! Element-wise layers without weights on the device (`kernels/elementwise.cu`): the residual
//! sum, `tanh`, the gradient reversal layer's backward, zeroing, and the strided copy behind
//! `concat_parts`/`split_parts`; the math of `cpu::activation` and the CPU backend's
//! element-wise ops. Tested against them through the backend (`backend::conformance`).
use super::launch::{CudaError, DevSlice, DevSliceMut, Gpu, KernelArgs, LaunchConfig, ELEMENTWISE_BLOCK};

fn grid(n: usize) -> LaunchConfig {
    LaunchConfig::elementwise(n, ELEMENTWISE_BLOCK)
}

/// `y += a·x` (`a = 1`: a residual sum; `a = −λ`: the gradient reversal layer's backward).
pub fn axpy<D: Gpu + ?Sized>(dev: &D, mut y: DevSliceMut<'_, f32>, x: DevSlice<'_, f32>, a: f32) -> Result<(), CudaError> {
    assert_eq!(y.len(), x.len(), "axpy: x and y differ in length");
    if x.is_empty() {
        return Ok(());
    }
    let n = x.len();
    dev.launch("axpy", grid(n), KernelArgs::new().output(&mut y).input(x).u64(n as u64).f32(a))
}

/// `x = 0`.
pub fn fill_zero<D: Gpu + ?Sized>(dev: &D, mut x: DevSliceMut<'_, f32>) -> Result<(), CudaError> {
    if x.is_empty() {
        return Ok(());
    }
    let n = x.len();
    dev.launch("fill", grid(n), KernelArgs::new().output(&mut x).u64(n as u64).f32(0.0))
}

/// `x ← tanh(x)` in place.
pub fn tanh_forward<D: Gpu + ?Sized>(dev: &D, mut x: DevSliceMut<'_, f32>) -> Result<(), CudaError> {
    if x.is_empty() {
        return Ok(());
    }
    let n = x.len();
    dev.launch("tanh_forward", grid(n), KernelArgs::new().output(&mut x).u64(n as u64))
}

/// From the output `y`: `dx += dy ⊙ (1 − y²)`.
pub fn tanh_backward<D: Gpu + ?Sized>(dev: &D, mut dx: DevSliceMut<'_, f32>, y: DevSlice<'_, f32>, dy: DevSlice<'_, f32>) -> Result<(), CudaError> {
    assert!(dy.len() == y.len() && dx.len() == y.len(), "tanh backward: lengths differ");
    if y.is_empty() {
        return Ok(());
    }
    let n = y.len();
    dev.launch("tanh_backward", grid(n), KernelArgs::new().output(&mut dx).input(y).input(dy).u64(n as u64))
}

/// `dst[r·dst_ld + c] = src[r·src_ld + c]` for `r < rows`, `c < cols`: a block of columns of
/// one row-major matrix into another.
pub fn copy_columns<D: Gpu + ?Sized>(
    dev: &D,
    mut dst: DevSliceMut<'_, f32>,
    dst_ld: usize,
    src: DevSlice<'_, f32>,
    src_ld: usize,
    rows: usize,
    cols: usize,
) -> Result<(), CudaError> {
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let reach = |ld: usize| (rows - 1) * ld + cols;
    assert!(cols <= dst_ld.min(src_ld) && reach(dst_ld) <= dst.len() && reach(src_ld) <= src.len(), "copy columns: a matrix exceeds its slice");
    let args = KernelArgs::new().output(&mut dst).u64(dst_ld as u64).input(src).u64(src_ld as u64).u64(rows as u64).int(cols);
    dev.launch("copy_columns", grid(rows * cols), args)
}
