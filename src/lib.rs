//! rmx: zero-shot relation extraction by fine-grained semantic matching.
//!
//! Data path: text → tokens (`text`) → encoder (`model`, on `backend` kernels) → vectors.
pub mod backend;
pub mod calibration;
pub mod capi;
pub mod data;
pub mod engine;
pub mod error;
pub mod model;
pub mod open_set;
pub mod rng;
pub mod text;
pub mod train;

pub use error::{Error, Result};

#[cfg(test)]
pub(crate) mod testutil;
