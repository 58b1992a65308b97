//! Training and evaluation.
pub mod evaluate;
pub mod metrics;
