//! Compute backends: `cpu` (always built) and, with feature `cuda` (GPU) or `cuda-emu`
//! (the same kernels emulated on the CPU, for tests), `cuda`.
pub mod cpu;
#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
pub mod cuda;
