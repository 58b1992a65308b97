//! The GEMM contract our call sites are written against: `cublasSgemmStridedBatched`,
//! exactly, and its bf16 form (`cublasGemmStridedBatchedEx` with bf16 `A` and `B`, f32 `C`,
//! f32 compute: each product of two bf16 values is exact in f32 and summed in f32).
//! Column-major matrices; for batch `i`,
//! `C_i = α · op(A_i) · op(B_i) + β · C_i` with `op(A_i)`: `m × k`, `op(B_i)`: `k × n`,
//! `C_i`: `m × n`, `X_i = X + i · stride_x`, element `(r, c)` of a stored matrix at
//! `r + c · ld`. When `β = 0`, `C` is not read (it may hold NaN), as cuBLAS documents.
//!
//! The linear layers' forward uses cublasLt's matmul where its epilogue fuses ours
//! ([`LtMatmul`]): `D = α·op(A)·op(B) + β·C + bias`, with `C` another matrix than `D`.
//!
//! A row-major `[r × c]` matrix with row stride `ld` is the column-major `c × r` matrix with
//! leading dimension `ld`: row-major `C = A · B` is issued as column-major `Cᵀ = Bᵀ · Aᵀ`.
use super::launch::{CudaError, DevSlice, DevSliceMut};

/// `op(X)`: `X` as stored (`CUBLAS_OP_N`) or transposed (`CUBLAS_OP_T`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    N,
    T,
}

/// The arguments of one `cublasSgemmStridedBatched` call (the handle aside); with `T` =
/// `bf16`, of the bf16 call.
#[derive(Debug)]
pub struct Gemm<'a, T = f32> {
    pub transa: Op,
    pub transb: Op,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub alpha: f32,
    pub a: DevSlice<'a, T>,
    pub lda: usize,
    pub stride_a: usize,
    pub b: DevSlice<'a, T>,
    pub ldb: usize,
    pub stride_b: usize,
    pub beta: f32,
    pub c: DevSliceMut<'a, f32>,
    pub ldc: usize,
    pub stride_c: usize,
    pub batch: usize,
}

/// Rows and columns of `X` as stored when `op(X)` is `rows × cols`.
pub(crate) fn stored(op: Op, rows: usize, cols: usize) -> (usize, usize) {
    match op {
        Op::N => (rows, cols),
        Op::T => (cols, rows),
    }
}

/// One past the last element a stored `rows × cols` matrix with leading dimension `ld`
/// reaches in batch `batch − 1` (0 for an empty one).
fn extent(rows: usize, cols: usize, ld: usize, stride: usize, batch: usize) -> usize {
    if rows == 0 || cols == 0 || batch == 0 {
        0
    } else {
        (batch - 1) * stride + (cols - 1) * ld + rows
    }
}

impl<T> Gemm<'_, T> {
    /// cuBLAS's invalid-value conditions (leading dimensions shorter than a stored column,
    /// sizes beyond `int`), and what cuBLAS cannot check but the emulator can: every matrix of
    /// every batch lies inside its slice.
    pub fn check(&self) -> Result<(), CudaError> {
        let fits = |v: usize| i32::try_from(v).is_ok();
        if ![self.m, self.n, self.k, self.lda, self.ldb, self.ldc, self.batch].into_iter().all(fits) {
            return Err(CudaError::Gemm("a size exceeds a cuBLAS int".into()));
        }
        let (ar, ac) = stored(self.transa, self.m, self.k);
        let (br, bc) = stored(self.transb, self.k, self.n);
        for (name, ld, rows) in [("lda", self.lda, ar), ("ldb", self.ldb, br), ("ldc", self.ldc, self.m)] {
            if ld < rows.max(1) {
                return Err(CudaError::Gemm(format!("{name} = {ld} is below the {rows} rows of its stored matrix")));
            }
        }
        let reads_ab = self.k > 0;
        for (name, need, len) in [
            ("A", if reads_ab { extent(ar, ac, self.lda, self.stride_a, self.batch) } else { 0 }, self.a.len()),
            ("B", if reads_ab { extent(br, bc, self.ldb, self.stride_b, self.batch) } else { 0 }, self.b.len()),
            ("C", extent(self.m, self.n, self.ldc, self.stride_c, self.batch), self.c.len()),
        ] {
            if need > len {
                return Err(CudaError::Gemm(format!("{name} reaches element {need} of a {len}-element buffer")));
            }
        }
        Ok(())
    }
}

/// The arguments of one `cublasLtMatmul` call as the linear layers use it: the product of
/// `gemm` (one batch) written to `gemm.c` (cuBLASLt's `D`), plus `β·C` read from `c` (same
/// shape and leading dimension as `D`; `None`: `β` must be 0), plus `bias[r]` added to every
/// element of row `r` of `D` (`CUBLASLT_EPILOGUE_BIAS`; `bias: [m]`).
#[derive(Debug)]
pub struct LtMatmul<'a, T = f32> {
    pub gemm: Gemm<'a, T>,
    pub c: Option<DevSlice<'a, f32>>,
    pub bias: Option<DevSlice<'a, f32>>,
}

impl<T> LtMatmul<'_, T> {
    /// [`Gemm::check`], one batch, and `C` and the bias inside their slices.
    pub fn check(&self) -> Result<(), CudaError> {
        let g = &self.gemm;
        g.check()?;
        if g.batch != 1 {
            return Err(CudaError::Gemm(format!("cublasLt matmul of {} batches: only one is issued", g.batch)));
        }
        let need = extent(g.m, g.n, g.ldc, 0, 1);
        match self.c {
            Some(c) if need > c.len() => return Err(CudaError::Gemm(format!("C reaches element {need} of a {}-element buffer", c.len()))),
            None if g.beta != 0.0 => return Err(CudaError::Gemm("β ≠ 0 without a C".into())),
            _ => {}
        }
        match self.bias {
            Some(bias) if bias.len() != g.m => Err(CudaError::Gemm(format!("a bias of {} values for {} rows", bias.len(), g.m))),
            _ => Ok(()),
        }
    }
}
