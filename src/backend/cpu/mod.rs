//! CPU kernels. Each op's forward (and, for training, backward) sits in one file; each fast
//! kernel is tested against a slow, obvious reference beside it.
//!
//! Backward passes share their forward's name (`layernorm_forward` → `layernorm_backward`)
//! and **accumulate** into every gradient they write (`+=`, inputs and parameters alike), so
//! that fan-out (a residual, `H` read by several heads) needs no extra buffers; callers zero
//! gradient buffers before a step. Each backward is checked against central finite
//! differences of an f64 reference forward (`crate::testutil`).
pub mod activation;
pub mod attention;
pub mod cosine;
mod device;
pub mod distill;
pub mod dropout;
pub mod embedding;
pub mod entity_pool;
pub mod gelu;
pub mod gemm;
pub mod layernorm;
pub mod linear;
pub mod loss;
pub mod math;
pub mod parallel;
pub mod pooling;
pub mod simd;
mod team;

pub use device::{Cpu, PackedWeights, PACK_AFTER_TOKENS};
