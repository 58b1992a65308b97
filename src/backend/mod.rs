//! Compute backends: `cpu`, the only one so far.
pub mod cpu;
