//! Helpers shared by the fuzz targets: a scratch copy of the tiny fixture model whose files
//! a target overwrites, and the resealing of a mutated index file's checksums (so the
//! fuzzer reaches the checks and searches behind them, not only the checksum tests).
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A per-process copy of `tests/fixtures/tiny_bert` in a scratch directory.
pub struct ScratchModel {
    dir: PathBuf,
}

impl ScratchModel {
    pub fn get() -> &'static ScratchModel {
        static MODEL: OnceLock<ScratchModel> = OnceLock::new();
        MODEL.get_or_init(|| {
            let dir = scratch_dir("model");
            let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny_bert");
            for entry in std::fs::read_dir(&fixture).expect("tiny model fixture") {
                let path = entry.expect("fixture entry").path();
                std::fs::copy(&path, dir.join(path.file_name().expect("file name"))).expect("copy fixture");
            }
            ScratchModel { dir }
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Replaces the model's file `name` with `bytes`.
    pub fn write(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.dir.join(name), bytes).expect("write scratch model file");
    }
}

/// A fresh directory for this process under the system's temp dir.
pub fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rmx-fuzz-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The input cut at its first NUL byte: (before, after); after is empty without one.
pub fn split(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    if let Some(s) = b.get_mut(at..at + 8) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

/// Recomputes the header checksum (format 1 and 2 layout: header length at 12, checksum at
/// 56, over the header with that field zeroed). Does nothing to a file too short for it.
pub fn reseal_header(b: &mut [u8]) {
    let Some(hlen) = u32_at(b, 12).map(|h| h as usize) else { return };
    if hlen < 64 || hlen > b.len() {
        return;
    }
    put_u64(b, 56, 0);
    let sum = rmx_index::xxh64(&b[..hlen], 0);
    put_u64(b, 56, sum);
}

/// Recomputes every section's XXH64 and, in a format-2 file, the block checksums, then the
/// header checksum: a file whose damage no checksum reveals.
pub fn reseal_all(b: &mut [u8]) {
    let sections = u32_at(b, 44).unwrap_or(0).min(8) as usize;
    let shift = u32_at(b, 48).unwrap_or(0);
    let entry = |b: &[u8], i: usize| -> Option<(usize, usize)> {
        let (off, len) = (u64_at(b, 128 + 32 * i + 8)?, u64_at(b, 128 + 32 * i + 16)?);
        let end = off.checked_add(len)?;
        (end <= b.len() as u64).then_some((off as usize, len as usize))
    };
    if sections == 8 && (12..=24).contains(&shift) {
        if let Some((table_off, table_len)) = entry(b, 7) {
            let mut sums = Vec::new();
            for i in 0..7 {
                if let Some((off, len)) = entry(b, i) {
                    for block in b[off..off + len].chunks(1 << shift) {
                        sums.extend_from_slice(&rmx_index::xxh64(block, 0).to_le_bytes());
                    }
                }
            }
            let n = sums.len().min(table_len);
            b[table_off..table_off + n].copy_from_slice(&sums[..n]);
        }
    }
    for i in 0..sections {
        if let Some((off, len)) = entry(b, i) {
            let sum = rmx_index::xxh64(&b[off..off + len], 0);
            put_u64(b, 128 + 32 * i + 24, sum);
        }
    }
    reseal_header(b);
}
