//! CPU kernels. Each op's forward (and, for training, backward) sits in one file.
pub mod gemm;
mod gemm_kernel;
mod gemm_pack;
pub mod simd;
