//! Input formats: relation descriptions, query instances, FewRel data.
pub mod descriptions;
pub mod fewrel;
pub mod instance;
