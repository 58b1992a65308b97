//! The model: configuration, weights, the BERT encoder and what is built on it.
pub mod bert;
pub mod config;
pub mod location;
pub mod sentence;
pub mod weights;
