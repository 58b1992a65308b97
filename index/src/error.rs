//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong building, opening or querying an index.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system error on `path`.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file does not start with the rmx index magic bytes.
    #[error("{}: not an rmx index (bad magic bytes)", path.display())]
    BadMagic { path: PathBuf },

    /// The index was written by a newer rmx (format version `found` > `supported`).
    #[error(
        "{}: index format version {found} is newer than this rmx supports (up to {supported}); upgrade rmx or rebuild the index",
        path.display()
    )]
    NewerVersion { path: PathBuf, found: u32, supported: u32 },

    /// A structural check or a checksum failed: the named section is damaged.
    #[error("{}: corrupt index: {section}: {reason}", path.display())]
    Corrupt { path: PathBuf, section: &'static str, reason: String },

    /// The index was built by a different encoder than the one the caller uses.
    #[error(
        "{}: index was built with encoder {index:?} but {expected:?} was expected; rebuild the index with this model",
        path.display()
    )]
    ModelMismatch {
        path: PathBuf,
        /// The fingerprint stored in the index.
        index: String,
        /// The fingerprint the caller expected.
        expected: String,
    },

    /// Two records share a relation id.
    #[error("duplicate relation id {id:?} (rows {first} and {second})")]
    DuplicateId { id: String, first: usize, second: usize },

    /// A vector (record or query) has the wrong length.
    #[error("{what}: dimension mismatch: the index has dim {expected}, got {got}")]
    DimMismatch { what: String, expected: usize, got: usize },

    /// A vector (record or query) holds NaN or an infinity.
    #[error("{what}: vector holds a non-finite value at position {position}")]
    NonFinite { what: String, position: usize },

    /// An option or argument is out of range.
    #[error("invalid argument: {0}")]
    Invalid(String),

    /// The destination exists and is not an rmx index directory (it is never replaced).
    #[error("{}: destination exists and is not an rmx index directory; refusing to replace it", path.display())]
    DestinationOccupied { path: PathBuf },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
