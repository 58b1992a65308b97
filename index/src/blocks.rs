//! Block checksums: each data section is cut into blocks of `1 << shift` bytes (4 KiB as
//! written), each with its XXH64 in the block-checksum section. A reader verifies a block
//! the first time it touches it and remembers the outcome for the life of the `Index`, so
//! opening stays O(1) and no answer is computed from a block that fails.

use crate::format::{Header, Section, CHECKSUM_SEED, DATA_SECTIONS, NDATA};
use crate::hash::xxh64;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// log2 of the block size this build writes: 4 KiB, one page. An HNSW search reads a few
/// thousand scattered rows, and with 64 KiB blocks it hashed nearly the whole vectors
/// section on a process's first query (11,665 × 1,153 f32: 54 MB, ≈ 7 ms); with page-sized
/// blocks it hashes the pages it reads. The table costs 8 bytes per 4 KiB (0.2 %).
pub const BLOCK_SHIFT: u32 = 12;
/// Block sizes a reader accepts: 4 KiB ..= 16 MiB.
pub const BLOCK_SHIFTS: std::ops::RangeInclusive<u32> = 12..=24;

const UNCHECKED: u8 = 0;
const GOOD: u8 = 1;
const BAD: u8 = 2;

/// Number of blocks of a section of `len` bytes.
pub fn block_count(len: u64, shift: u32) -> u64 {
    len.div_ceil(1 << shift)
}

/// Appends the block checksums of one section's bytes to `out` (little-endian u64s).
pub fn append_block_sums(section: &[u8], shift: u32, out: &mut Vec<u8>) {
    for block in section.chunks(1 << shift) {
        out.extend_from_slice(&xxh64(block, CHECKSUM_SEED).to_le_bytes());
    }
}

/// Where the first failed block was found: its section and what failed.
pub(crate) type Failure = (Section, String);

/// The verification state of every block of an open index.
pub(crate) struct BlockStates {
    shift: u32,
    /// Index of each data section's first block in `states` (and in the checksum table).
    first: [usize; NDATA + 1],
    states: Box<[AtomicU8]>,
    /// The first failure seen; once set, every later search fails with it.
    failure: OnceLock<Failure>,
}

impl BlockStates {
    /// Unchecked states for the blocks `h` describes (its sizes are validated already).
    pub fn new(h: &Header) -> BlockStates {
        let mut first = [0usize; NDATA + 1];
        for (i, &s) in DATA_SECTIONS.iter().enumerate() {
            first[i + 1] = first[i] + block_count(h.sections[s as usize].len, h.block_shift) as usize;
        }
        // One byte per 4 KiB of data: zeroed memory, no work per relation.
        let states = std::iter::repeat_with(|| AtomicU8::new(UNCHECKED)).take(first[NDATA]).collect();
        BlockStates { shift: h.block_shift, first, states, failure: OnceLock::new() }
    }

    /// The guard of section `s`, whose bytes are `data`, checked against `table` (the whole
    /// block-checksum section).
    pub fn guard<'a>(&'a self, s: Section, data: &'a [u8], table: &'a [u8]) -> Guard<'a> {
        let i = s as usize;
        let (a, b) = (self.first[i], self.first[i + 1]);
        Guard { data, sums: table.get(a * 8..b * 8).unwrap_or(&[]), states: &self.states[a..b], shift: self.shift, section: s, failure: &self.failure }
    }

    /// The first failure seen, if any.
    pub fn failure(&self) -> Option<&Failure> {
        self.failure.get()
    }
}

/// The blocks of one section, borrowed for one search.
#[derive(Clone, Copy)]
pub(crate) struct Guard<'a> {
    data: &'a [u8],
    sums: &'a [u8],
    states: &'a [AtomicU8],
    shift: u32,
    section: Section,
    failure: &'a OnceLock<Failure>,
}

impl Guard<'_> {
    /// True when every block holding bytes `start..end` of the section is intact (each is
    /// verified on first use). After one block has been verified this is a load and a
    /// compare per block.
    #[inline(always)]
    pub fn ok(&self, start: usize, end: usize) -> bool {
        if end <= start {
            return true;
        }
        let (mut i, last) = (start >> self.shift, (end - 1) >> self.shift);
        loop {
            let good = matches!(self.states.get(i), Some(s) if s.load(Ordering::Relaxed) == GOOD);
            if !good && !self.verify(i) {
                return false;
            }
            if i >= last {
                return true;
            }
            i += 1;
        }
    }

    /// Hashes block `i` and records the outcome (racing threads compute the same one). A
    /// block past the section's end holds nothing to verify: the bounds-checked read that
    /// follows finds nothing there either.
    #[cold]
    #[inline(never)]
    fn verify(&self, i: usize) -> bool {
        let Some(state) = self.states.get(i) else {
            return true;
        };
        match state.load(Ordering::Relaxed) {
            GOOD => return true,
            BAD => return false,
            _ => {}
        }
        let size = 1usize << self.shift;
        let block = &self.data[i * size..((i + 1) * size).min(self.data.len())];
        let stored = self.sums.get(i * 8..i * 8 + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
        let computed = xxh64(block, CHECKSUM_SEED);
        if stored == Some(computed) {
            state.store(GOOD, Ordering::Relaxed);
            return true;
        }
        state.store(BAD, Ordering::Relaxed);
        let start = i * size;
        self.fail(format!(
            "block {i} (bytes {start}..{} of the section) fails its checksum (stored {}, computed {computed:016x}); rebuild the index",
            start + block.len(),
            stored.map_or("none".into(), |s| format!("{s:016x}"))
        ))
    }

    fn fail(&self, reason: String) -> bool {
        let _ = self.failure.set((self.section, reason));
        false
    }
}
