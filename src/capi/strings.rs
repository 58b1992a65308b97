//! C strings in and out: arguments read from C, and the NUL-terminated copies of the
//! index's relation ids and names that matches point to.
use super::error::Failure;
use rmx_index::Index;
use std::ffi::{c_char, CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The bytes of a C string argument (without its NUL), or a NULL-argument failure.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays alive and unchanged for `'a`.
pub unsafe fn c_bytes<'a>(ptr: *const c_char, argument: &str) -> Result<&'a [u8], Failure> {
    if ptr.is_null() {
        return Err(Failure::null(argument));
    }
    // SAFETY: non-NULL, and NUL-terminated and alive for 'a by the caller's contract.
    Ok(unsafe { CStr::from_ptr(ptr) }.to_bytes())
}

/// A path argument: any bytes but NUL (paths need not be UTF-8 on Unix).
///
/// # Safety
/// As for [`c_bytes`].
pub unsafe fn c_path<'a>(ptr: *const c_char, argument: &str) -> Result<&'a Path, Failure> {
    // SAFETY: forwarded contract.
    let bytes = unsafe { c_bytes(ptr, argument) }?;
    Ok(Path::new(OsStr::from_bytes(bytes)))
}

/// A text argument, which must be UTF-8.
///
/// # Safety
/// As for [`c_bytes`].
pub unsafe fn c_text<'a>(ptr: *const c_char, argument: &str) -> Result<&'a str, Failure> {
    // SAFETY: forwarded contract.
    let bytes = unsafe { c_bytes(ptr, argument) }?;
    std::str::from_utf8(bytes).map_err(|e| Failure::invalid(format!("{argument} is not valid UTF-8 ({e})")))
}

/// `id\0name\0` of every relation of an index, in row order, in one buffer built at open:
/// the index keeps its strings in the mapping without terminators. A string holding a NUL
/// (which JSON allows) reads as cut at that NUL from C.
pub struct StringTable {
    bytes: Box<[u8]>,
    /// Offsets of each row's id and name.
    starts: Box<[[usize; 2]]>,
}

impl StringTable {
    /// Copies the strings of every row; an unreadable row is the index's error (corrupt).
    pub fn of(index: &Index) -> rmx_index::Result<StringTable> {
        let mut bytes = Vec::new();
        let mut starts = Vec::with_capacity(index.len());
        for row in 0..index.len() {
            let r = index.read_relation(row)?;
            let mut at = [0; 2];
            for (slot, s) in at.iter_mut().zip([r.id, r.name]) {
                *slot = bytes.len();
                bytes.extend_from_slice(s.as_bytes());
                bytes.push(0);
            }
            starts.push(at);
        }
        Ok(StringTable { bytes: bytes.into_boxed_slice(), starts: starts.into_boxed_slice() })
    }

    /// The NUL-terminated id and name of `row`, valid while the table lives.
    pub fn get(&self, row: usize) -> Option<(*const c_char, *const c_char)> {
        let [id, name] = *self.starts.get(row)?;
        // Both offsets were taken from `bytes` while filling it: in bounds, NUL-terminated.
        Some((self.bytes[id..].as_ptr().cast(), self.bytes[name..].as_ptr().cast()))
    }
}
