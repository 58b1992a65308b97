//! Status codes: one per failure class, and the mapping from the library's errors to them.
use crate::error::Error;
use std::ffi::{c_char, c_int, CStr};

/// What an entry point did. `RMX_OK` is 0; every other value is a failure class, with the
/// detail of this thread's last failure in `rmx_last_error()`. New codes may be added in
/// later versions (treat an unknown one like `RMX_ERR_UNKNOWN`).
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum rmx_status {
    /// Success: the outputs were written.
    RMX_OK = 0,
    /// A required pointer argument was NULL.
    RMX_ERR_NULL_ARGUMENT = 1,
    /// An argument is out of range or malformed: `k` = 0, a text that is not valid UTF-8, an
    /// entity span that is empty, beyond the text, not on a character boundary, overlapping
    /// the other entity or holding only whitespace, a text longer than the model takes,
    /// `n * k` overflowing, an unknown build option.
    RMX_ERR_INVALID_ARGUMENT = 2,
    /// A file or directory could not be read or written (missing, permissions, disk full),
    /// or the index destination exists and is not an rmx index directory.
    RMX_ERR_IO = 3,
    /// The model directory is unusable (missing files, bad config or tokenizer, wrong tensor
    /// shapes, a checkpoint's `rmx.json` invalid or out of range), or the model produced a
    /// non-finite vector.
    RMX_ERR_MODEL = 4,
    /// The index is damaged: not an rmx index, truncated, or a checksum failed (at open, or
    /// for a block of the index a query reads: no answer is computed from a damaged block).
    RMX_ERR_INDEX_CORRUPT = 5,
    /// The index was written by a newer rmx (format version not supported).
    RMX_ERR_INDEX_VERSION = 6,
    /// The index was built with another model (encoder fingerprint or dimension differs).
    RMX_ERR_MODEL_MISMATCH = 7,
    /// The descriptions file holds no usable relation (empty, in no known format, or every
    /// record rejected); nothing was built.
    RMX_ERR_INVALID_INPUT = 8,
    /// Some records of the descriptions file were rejected (as `rmx index build` exiting 1);
    /// `rmx_last_error()` lists them, one `file:line: reason` per line. By default nothing
    /// was built and an existing index at the destination is untouched; with
    /// `RMX_BUILD_SKIP_INVALID` the index WAS built from the other records.
    RMX_ERR_REJECTED = 9,
    /// A bug: rmx panicked. The call was abandoned; the engine stays usable.
    RMX_ERR_PANIC = 10,
    /// Any other failure.
    RMX_ERR_UNKNOWN = 11,
    /// The compute device cannot be used or failed: `RMX_DEVICE_CUDA` without an NVIDIA
    /// driver, without a GPU, or from a library built without CUDA (`rmx_last_error()` says
    /// which, in one line); a GPU error during a call; a CPU without the instructions a
    /// precision needs.
    RMX_ERR_DEVICE = 12,
}

use rmx_status::*;

/// Every status, in order of value (for `rmx_status_str` and tests).
pub(crate) const ALL: [rmx_status; 13] = [
    RMX_OK,
    RMX_ERR_NULL_ARGUMENT,
    RMX_ERR_INVALID_ARGUMENT,
    RMX_ERR_IO,
    RMX_ERR_MODEL,
    RMX_ERR_INDEX_CORRUPT,
    RMX_ERR_INDEX_VERSION,
    RMX_ERR_MODEL_MISMATCH,
    RMX_ERR_INVALID_INPUT,
    RMX_ERR_REJECTED,
    RMX_ERR_PANIC,
    RMX_ERR_UNKNOWN,
    RMX_ERR_DEVICE,
];

/// A static NUL-terminated description of `status` (any integer: unknown values included).
pub fn describe(status: c_int) -> &'static CStr {
    let Some(&s) = usize::try_from(status).ok().and_then(|i| ALL.get(i)) else {
        return c"unknown status";
    };
    match s {
        RMX_OK => c"ok",
        RMX_ERR_NULL_ARGUMENT => c"a required pointer argument is NULL",
        RMX_ERR_INVALID_ARGUMENT => c"invalid argument",
        RMX_ERR_IO => c"file or directory cannot be read or written",
        RMX_ERR_MODEL => c"model directory is unusable",
        RMX_ERR_INDEX_CORRUPT => c"index is corrupt",
        RMX_ERR_INDEX_VERSION => c"index format version is not supported",
        RMX_ERR_MODEL_MISMATCH => c"index was built with another model",
        RMX_ERR_INVALID_INPUT => c"descriptions hold no usable relation",
        RMX_ERR_REJECTED => c"some records were rejected",
        RMX_ERR_PANIC => c"internal error (panic)",
        RMX_ERR_UNKNOWN => c"unknown error",
        RMX_ERR_DEVICE => c"compute device unavailable or failed",
    }
}

pub fn describe_ptr(status: c_int) -> *const c_char {
    describe(status).as_ptr()
}

/// The failure class of a library error: one status per variant (for the index's errors,
/// per index variant). A record here is an instance passed by the caller, so an invalid
/// record is an invalid argument.
pub fn classify(e: &Error) -> rmx_status {
    use rmx_index::Error as I;
    match e {
        Error::Io { .. } => RMX_ERR_IO,
        Error::Model { .. } => RMX_ERR_MODEL,
        Error::Input(_) | Error::InvalidArgument(_) => RMX_ERR_INVALID_ARGUMENT,
        Error::InvalidData(_) => RMX_ERR_INVALID_INPUT,
        Error::ModelMismatch(_) => RMX_ERR_MODEL_MISMATCH,
        Error::CpuUnsupported(_) | Error::Device(_) => RMX_ERR_DEVICE,
        Error::Index(i) => match i {
            I::Io { .. } | I::DestinationOccupied { .. } => RMX_ERR_IO,
            I::BadMagic { .. } | I::Corrupt { .. } => RMX_ERR_INDEX_CORRUPT,
            I::NewerVersion { .. } => RMX_ERR_INDEX_VERSION,
            I::ModelMismatch { .. } | I::DimMismatch { .. } => RMX_ERR_MODEL_MISMATCH,
            I::NonFinite { .. } => RMX_ERR_MODEL,
            I::DuplicateId { .. } => RMX_ERR_INVALID_INPUT,
            I::Invalid(_) => RMX_ERR_INVALID_ARGUMENT,
            _ => RMX_ERR_UNKNOWN,
        },
    }
}
