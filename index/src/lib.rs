//! rmx-index: the on-disk, memory-mapped relation index (exact and HNSW search).
//!
//! One unit vector of dimension `dim` per relation, scored against a query by the plain
//! inner product. Small label sets are searched exactly (one matrix–vector product with
//! AVX2/FMA kernels); large ones through an HNSW graph stored in rmx's own layout and
//! searched straight from the mapping, with exact scores for the returned candidates.
//!
//! ```no_run
//! use rmx_index::{Index, IndexOptions, IndexWriter};
//! # fn main() -> rmx_index::Result<()> {
//! let opts = IndexOptions { fingerprint: "all-MiniLM-L6-v2@abc".into(), ..Default::default() };
//! let mut w = IndexWriter::create("relations.idx", 3, opts)?;
//! w.add("P26", "spouse", r#"{"description":"..."}"#, &[1.0, 0.0, 0.0])?;
//! w.add("P22", "father", "{}", &[0.0, 1.0, 0.0])?;
//! w.finish()?;
//!
//! let idx = Index::open_expecting("relations.idx", "all-MiniLM-L6-v2@abc")?;
//! for hit in idx.search(&[0.9, 0.1, 0.0], 1)? {
//!     let rel = idx.relation(hit.row).unwrap();
//!     println!("{} {} {:.3}", rel.id, rel.name, hit.score);
//! }
//! # Ok(()) }
//! ```
//!
//! The file format is described in `FORMAT.md` next to this crate's `Cargo.toml`.

mod blocks;
mod bytes;
mod error;
mod format;
mod hash;
mod hnsw;
mod index;
pub mod simd;
mod writer;

pub use blocks::BLOCK_SHIFT;
pub use error::{Error, Result};
pub use format::{Precision, SearchMode, DATA_FILE, FORMAT_VERSION};
pub use hash::xxh64;
pub use index::{Hit, HnswInfo, Index, Info, OpenOptions, Relation, SectionInfo, META_CHECK_ON_OPEN_MAX_BYTES};
pub use writer::{BuildMode, HnswParams, IndexOptions, IndexWriter, AUTO_HNSW_THRESHOLD};
