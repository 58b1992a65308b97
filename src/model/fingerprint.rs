//! A fingerprint of the model behind a set of vectors: an index records it, and querying it
//! with another model is an error. Cheap to compute at every start: small files are hashed
//! whole, weight files by their size, header and 64 evenly spaced 4 KiB samples.
use super::scoring::PartWeights;
use super::weights::map_read_only;
use crate::error::{Error, Result};
use rmx_index::xxh64;
use std::path::Path;

const SAMPLES: usize = 64;
const SAMPLE_BYTES: usize = 4096;

/// `"<mode>;weights=<c>,<h>,<t>;<16 hex digits>"` over the model directory `dir` (plus
/// `extra_dirs`), the mode and the part weights: readable in `rmx index inspect`, which
/// thereby also tells how an index's scores split into parts.
pub fn of_model(dir: &Path, mode: &str, weights: PartWeights, extra_dirs: &[&Path]) -> Result<String> {
    let mut acc = Vec::new();
    acc.extend_from_slice(mode.as_bytes());
    for w in [weights.context, weights.head, weights.tail] {
        acc.extend_from_slice(&w.to_le_bytes());
    }
    for d in std::iter::once(dir).chain(extra_dirs.iter().copied()) {
        for name in ["config.json", "tokenizer.json", "heads.safetensors"] {
            match std::fs::read(d.join(name)) {
                Ok(bytes) => acc.extend_from_slice(&xxh64(&bytes, 0).to_le_bytes()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(d.join(name), e)),
            }
        }
        acc.extend_from_slice(&sample_hash(&d.join("model.safetensors"))?.to_le_bytes());
    }
    Ok(format!("{mode};weights={},{},{};{:016x}", weights.context, weights.head, weights.tail, xxh64(&acc, 0)))
}

fn sample_hash(path: &Path) -> Result<u64> {
    let map = map_read_only(path)?;
    let mut acc = Vec::with_capacity((SAMPLES + 1) * 8 + 8);
    acc.extend_from_slice(&(map.len() as u64).to_le_bytes());
    acc.extend_from_slice(&xxh64(&map[..map.len().min(SAMPLE_BYTES)], 0).to_le_bytes());
    for i in 0..SAMPLES {
        let at = map.len() / SAMPLES * i;
        let piece = &map[at..(at + SAMPLE_BYTES).min(map.len())];
        acc.extend_from_slice(&xxh64(piece, 0).to_le_bytes());
    }
    Ok(xxh64(&acc, 0))
}
