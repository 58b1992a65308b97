//! The CUDA backend's ops: one launcher per op (`layernorm.rs` launches
//! `kernels/layernorm.cu`), with the CPU ops' names and llm.c's argument order (outputs first,
//! then inputs, shapes last), on device slices. They run on any [`Gpu`]: the emulator
//! (feature `cuda-emu`, the tests) or a CUDA context (feature `cuda`, [`runtime`]).
//! GEMMs go through cuBLAS's contract ([`blas`]). [`Cuda`] is the backend built on them
//! (`device.rs`, memory in `memory.rs`).
//!
//! Each launcher's tests run the kernel emulated against the CPU op of the same name
//! (`crate::backend::cpu`) on seeded random inputs, ragged shapes and every block size the
//! launcher can pick.
pub mod blas;
mod context;
mod device;
#[cfg(feature = "cuda-emu")]
pub mod emu;
pub mod launch;
pub mod memory;
#[cfg(feature = "cuda")]
pub mod runtime;

pub mod adamw;
pub mod attention;
pub mod cosine;
pub mod distill;
pub mod dropout;
pub mod elementwise;
pub mod embedding;
pub mod entity_pool;
pub mod gelu;
pub mod layernorm;
pub mod linear;
pub mod loss;
pub mod pooling;

#[cfg(test)]
mod testing;

pub use device::{Bf16Weights, Cuda};
pub use launch::{CudaError, DevSlice, DevSliceMut, DeviceBuffer, Gpu, KernelArgs, LaunchConfig, Packed};
