//! The model: configuration, weights, the BERT encoder and what is built on it.
pub mod bert;
pub mod config;
pub mod description;
pub mod fingerprint;
pub mod heads;
pub mod hubness;
pub mod location;
pub mod params;
pub mod rematch;
pub mod scoring;
pub mod sentence;
pub mod weights;
pub mod zero_shot;
