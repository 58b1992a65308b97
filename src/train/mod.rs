//! Training and evaluation.
pub mod evaluate;
pub mod metrics;
pub mod adamw;
pub mod encoder;
pub mod objective;
pub mod params;
pub mod rng;
pub mod trainer;
pub mod checkpoint;
pub mod dataset;
pub mod description_tower;
