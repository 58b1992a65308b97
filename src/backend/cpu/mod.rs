//! CPU kernels. Each op's forward (and, for training, backward) sits in one file; each fast
//! kernel is tested against a slow, obvious reference beside it.
pub mod attention;
pub mod distill;
pub mod entity_pool;
pub mod embedding;
pub mod gelu;
pub mod gemm;
mod gemm_kernel;
mod gemm_pack;
pub mod layernorm;
pub mod linear;
pub mod math;
pub mod parallel;
pub mod pooling;
pub mod simd;
