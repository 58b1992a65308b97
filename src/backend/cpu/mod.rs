//! CPU kernels. Each op's forward (and, for training, backward) sits in one file.
pub mod gemm;
pub mod simd;
