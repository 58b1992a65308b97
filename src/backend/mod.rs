//! Compute backends: `cpu` (always built) and, with feature `cuda`, `cuda`.
pub mod cpu;
