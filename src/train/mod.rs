//! Training and evaluation.
pub mod adamw;
pub mod checkpoint;
pub mod dataset;
pub mod description_tower;
pub mod encoder;
pub mod evaluate;
pub mod metrics;
pub mod objective;
pub mod run;
pub mod soup;
pub mod trainer;
