//! rmx: zero-shot relation extraction by fine-grained semantic matching.
pub mod backend;

#[cfg(test)]
pub(crate) mod testutil;
