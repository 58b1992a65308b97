//! The library's error type. Every failure names what it concerns (a path, a line) and why,
//! and its variant says which class of failure it is: the C ABI maps each variant to one
//! status (`capi::status::classify`) without looking at messages.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// A model directory is unusable (missing file, bad config, wrong tensor shape, a
    /// checkpoint's `rmx.json` out of range, …).
    #[error("{}: {reason}", path.display())]
    Model { path: PathBuf, reason: String },
    /// One input record (a query instance, a line) is invalid; the others can still be
    /// processed.
    #[error("{0}")]
    Input(String),
    /// A data file as a whole holds nothing usable (empty, every record rejected, not in
    /// any known format); nothing was done with it.
    #[error("{0}")]
    InvalidData(String),
    /// An option or argument is out of range (a thread count, a weight, a destination that
    /// cannot be used).
    #[error("{0}")]
    InvalidArgument(String),
    /// The index and the model do not belong together (dimensions differ).
    #[error("{0}")]
    ModelMismatch(String),
    /// The relation index failed (open, build, search, verify).
    #[error(transparent)]
    Index(#[from] rmx_index::Error),
    /// An option this CPU cannot run (e.g. bf16 precision without AVX512-BF16).
    #[error("not supported on this CPU: {0}")]
    CpuUnsupported(String),
    /// The compute device failed or cannot be used (no driver, no GPU, a failed kernel
    /// launch or allocation, an option the device does not compute).
    #[error("device: {0}")]
    Device(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    pub fn model(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Model { path: path.into(), reason: reason.into() }
    }
}
