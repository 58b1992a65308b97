//! Matrix product `C (+)= A · B` for f32, with a fused epilogue.
//!
//! Interface (stable; the fast implementation lives behind it):
//! - `A` is `m × k`, `B` is `k × n`, both arbitrary strided views, so a transposed operand is
//!   only a view (a PyTorch `Linear` weight `W: [n, k]` is `B = Wᵀ` with `rs = 1, cs = k`).
//! - `C` is `m × n`, row-major with row stride `ldc`.
//! - The epilogue runs exactly once on every element of `C` after its sum is complete, while
//!   the block is still in cache (bias, bias+GELU, bias+residual, …).

/// A read-only strided matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major matrix `rows × cols`.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert!(data.len() >= rows * cols, "matrix view out of bounds");
        MatRef { data, rows, cols, rs: cols, cs: 1 }
    }

    /// The transpose of a row-major `rows × cols` matrix (a `cols × rows` view).
    pub fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert!(data.len() >= rows * cols, "matrix view out of bounds");
        MatRef { data, rows: cols, cols: rows, rs: 1, cs: cols }
    }

    #[inline]
    pub fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.rs + j * self.cs]
    }
}

/// Work applied to finished rows of `C`: `apply(row, col0, out)` gets `C[row, col0..col0+out.len()]`.
pub trait Epilogue: Sync {
    fn apply(&self, row: usize, col0: usize, out: &mut [f32]);
}

/// No epilogue.
pub struct Plain;

impl Epilogue for Plain {
    #[inline]
    fn apply(&self, _row: usize, _col0: usize, _out: &mut [f32]) {}
}

/// `C = A · B` (or `C += A · B` when `accumulate`), then the epilogue on every element.
pub fn gemm(a: MatRef, b: MatRef, c: &mut [f32], ldc: usize, accumulate: bool, epilogue: &dyn Epilogue) {
    gemm_reference(a, b, c, ldc, accumulate, epilogue)
}

/// The slow, obvious reference: one dot product per output element.
pub fn gemm_reference(a: MatRef, b: MatRef, c: &mut [f32], ldc: usize, accumulate: bool, epilogue: &dyn Epilogue) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "inner dimensions differ");
    assert!(m == 0 || c.len() >= (m - 1) * ldc + n, "C out of bounds");
    for i in 0..m {
        let row = &mut c[i * ldc..i * ldc + n];
        for (j, out) in row.iter_mut().enumerate() {
            let mut sum = 0.0f32;
            for p in 0..k {
                sum += a.at(i, p) * b.at(p, j);
            }
            *out = if accumulate { *out + sum } else { sum };
        }
        epilogue.apply(i, 0, row);
    }
}
