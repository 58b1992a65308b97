//! On-disk layout: header encoding/decoding and the structural checks done on open.
//! See `index/FORMAT.md` for the prose description.

use crate::blocks::{block_count, BLOCK_SHIFTS};
use crate::error::{Error, Result};
use crate::hash::xxh64;
use std::path::Path;

/// The data file inside an index directory.
pub const DATA_FILE: &str = "index.rmx";
/// First 8 bytes of the data file.
pub const MAGIC: [u8; 8] = *b"RMXINDEX";
/// The format version this build writes (and the newest it reads). Version 2 added the
/// block checksums; version 1 files are still read (verified whole on open).
pub const FORMAT_VERSION: u32 = 2;
/// Every section starts at a multiple of this (and so does the header's end).
pub const ALIGN: usize = 64;
/// Size of the fixed part of the header; the fingerprint follows it.
pub const FIXED_HEADER: usize = 512;
/// Longest fingerprint accepted.
pub const MAX_FINGERPRINT: usize = 64 * 1024;
/// Largest dimension accepted.
pub const MAX_DIM: usize = 1 << 16;
/// Largest M accepted (M0 ≤ 2·MAX_M).
pub const MAX_M: usize = 256;
/// Highest HNSW level.
pub const MAX_LEVEL: usize = 31;
/// Empty slot in the id hash table.
pub const EMPTY: u32 = u32::MAX;
/// Seed of the id hash.
pub const ID_HASH_SEED: u64 = 0x726d_782d_6964_7321;
/// Seed of all section checksums and of the header checksum.
pub const CHECKSUM_SEED: u64 = 0;

// Fixed header offsets.
const OFF_VERSION: usize = 8;
const OFF_HEADER_LEN: usize = 12;
const OFF_FILE_LEN: usize = 16;
const OFF_COUNT: usize = 24;
const OFF_DIM: usize = 32;
const OFF_PRECISION: usize = 36;
const OFF_MODE: usize = 37;
const OFF_FP_LEN: usize = 40;
const OFF_NSECTIONS: usize = 44;
const OFF_BLOCK_SHIFT: usize = 48;
const OFF_CHECKSUM: usize = 56;
const OFF_HNSW: usize = 64;
const OFF_SECTIONS: usize = 128;
const SECTION_ENTRY: usize = 32;

/// Storage precision of the vectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// 4 bytes per component.
    #[default]
    F32,
    /// IEEE half precision, 2 bytes per component (half the footprint).
    F16,
}

impl Precision {
    pub fn bytes(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 2,
        }
    }
    fn code(self) -> u8 {
        match self {
            Precision::F32 => 0,
            Precision::F16 => 1,
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        })
    }
}

/// How a stored index is searched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SearchMode {
    /// Brute force over all vectors.
    Exact,
    /// HNSW graph traversal, then exact re-ranking.
    Hnsw,
}

impl std::fmt::Display for SearchMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SearchMode::Exact => "exact",
            SearchMode::Hnsw => "hnsw",
        })
    }
}

/// The sections, in file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Section {
    Vectors = 0,
    MetaOffsets = 1,
    MetaHeap = 2,
    IdTable = 3,
    GraphNodes = 4,
    GraphLevel0 = 5,
    GraphUpper = 6,
    /// The checksums of every block of the sections above (format version 2 on).
    BlockSums = 7,
}

pub const NSECTIONS: usize = 8;
/// The sections holding the index's data (covered by block checksums).
pub const NDATA: usize = 7;
pub const ALL_SECTIONS: [Section; NSECTIONS] = [
    Section::Vectors,
    Section::MetaOffsets,
    Section::MetaHeap,
    Section::IdTable,
    Section::GraphNodes,
    Section::GraphLevel0,
    Section::GraphUpper,
    Section::BlockSums,
];
pub const DATA_SECTIONS: [Section; NDATA] =
    [Section::Vectors, Section::MetaOffsets, Section::MetaHeap, Section::IdTable, Section::GraphNodes, Section::GraphLevel0, Section::GraphUpper];

/// Number of sections in a file of format `version`.
fn sections_in(version: u32) -> usize {
    if version == 1 {
        NDATA
    } else {
        NSECTIONS
    }
}

impl Section {
    pub fn name(self) -> &'static str {
        match self {
            Section::Vectors => "vectors",
            Section::MetaOffsets => "meta offsets",
            Section::MetaHeap => "meta heap",
            Section::IdTable => "id table",
            Section::GraphNodes => "graph nodes",
            Section::GraphLevel0 => "graph level 0",
            Section::GraphUpper => "graph upper levels",
            Section::BlockSums => "block checksums",
        }
    }
}

/// Where a section lies and its checksum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SectionEntry {
    pub offset: u64,
    pub len: u64,
    pub checksum: u64,
}

/// HNSW parameters stored in the header (all zero for exact indexes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HnswHeader {
    pub m: u32,
    pub m0: u32,
    pub ef_construction: u32,
    pub ef_search: u32,
    pub entry_point: u32,
    pub max_level: u32,
    pub upper_records: u64,
}

/// The decoded header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    pub header_len: usize,
    pub file_len: u64,
    pub count: usize,
    pub dim: usize,
    pub precision: Precision,
    pub mode: SearchMode,
    pub fingerprint: String,
    pub hnsw: HnswHeader,
    /// log2 of the checksum block size; 0 in version 1 (no block checksums).
    pub block_shift: u32,
    /// In a version-1 file the block-checksum entry is empty, at the end of the file.
    pub sections: [SectionEntry; NSECTIONS],
}

pub fn align_up(x: u64) -> u64 {
    x.div_ceil(ALIGN as u64) * ALIGN as u64
}

/// Header length for a fingerprint of `fp_len` bytes.
pub fn header_len(fp_len: usize) -> usize {
    align_up((FIXED_HEADER + fp_len) as u64) as usize
}

/// Size of the id hash table (slots) for `count` relations: a power of two ≥ 2·count.
pub fn id_table_slots(count: usize) -> usize {
    (count * 2).max(2).next_power_of_two()
}

fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}
fn get_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}
fn get_u64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

impl Header {
    /// Serialise, computing the header checksum.
    pub fn encode(&self) -> Vec<u8> {
        let len = header_len(self.fingerprint.len());
        let mut b = vec![0u8; len];
        b[..8].copy_from_slice(&MAGIC);
        put_u32(&mut b, OFF_VERSION, self.version);
        put_u32(&mut b, OFF_HEADER_LEN, len as u32);
        put_u64(&mut b, OFF_FILE_LEN, self.file_len);
        put_u64(&mut b, OFF_COUNT, self.count as u64);
        put_u32(&mut b, OFF_DIM, self.dim as u32);
        b[OFF_PRECISION] = self.precision.code();
        b[OFF_MODE] = match self.mode {
            SearchMode::Exact => 0,
            SearchMode::Hnsw => 1,
        };
        put_u32(&mut b, OFF_FP_LEN, self.fingerprint.len() as u32);
        let nsections = sections_in(self.version);
        put_u32(&mut b, OFF_NSECTIONS, nsections as u32);
        put_u32(&mut b, OFF_BLOCK_SHIFT, self.block_shift);
        let h = &self.hnsw;
        put_u32(&mut b, OFF_HNSW, h.m);
        put_u32(&mut b, OFF_HNSW + 4, h.m0);
        put_u32(&mut b, OFF_HNSW + 8, h.ef_construction);
        put_u32(&mut b, OFF_HNSW + 12, h.ef_search);
        put_u32(&mut b, OFF_HNSW + 16, h.entry_point);
        put_u32(&mut b, OFF_HNSW + 20, h.max_level);
        put_u64(&mut b, OFF_HNSW + 24, h.upper_records);
        for (i, s) in self.sections.iter().enumerate().take(nsections) {
            let o = OFF_SECTIONS + i * SECTION_ENTRY;
            put_u32(&mut b, o, i as u32);
            put_u64(&mut b, o + 8, s.offset);
            put_u64(&mut b, o + 16, s.len);
            put_u64(&mut b, o + 24, s.checksum);
        }
        b[FIXED_HEADER..FIXED_HEADER + self.fingerprint.len()].copy_from_slice(self.fingerprint.as_bytes());
        let sum = xxh64(&b, CHECKSUM_SEED);
        put_u64(&mut b, OFF_CHECKSUM, sum);
        b
    }

    /// Decode and check the header of a data file whose bytes are `file`. Performs every
    /// structural check that makes later accesses in bounds (see FORMAT.md, "Checks").
    pub fn decode(path: &Path, file: &[u8]) -> Result<Header> {
        let corrupt = |reason: String| Error::Corrupt { path: path.to_path_buf(), section: "header", reason };
        if file.len() < 16 || file[..8] != MAGIC {
            if file.len() < 8 && MAGIC.starts_with(file) {
                return Err(corrupt(format!("file truncated to {} bytes", file.len())));
            }
            return Err(Error::BadMagic { path: path.to_path_buf() });
        }
        let version = get_u32(file, OFF_VERSION);
        if version > FORMAT_VERSION {
            return Err(Error::NewerVersion { path: path.to_path_buf(), found: version, supported: FORMAT_VERSION });
        }
        if version == 0 {
            return Err(corrupt("format version 0".into()));
        }
        if file.len() < FIXED_HEADER {
            return Err(corrupt(format!("file truncated to {} bytes", file.len())));
        }
        let hlen = get_u32(file, OFF_HEADER_LEN) as usize;
        if hlen < FIXED_HEADER || hlen % ALIGN != 0 || hlen > FIXED_HEADER + MAX_FINGERPRINT + ALIGN || hlen > file.len() {
            return Err(corrupt(format!("header length {hlen} invalid for a file of {} bytes", file.len())));
        }
        let mut hb = file[..hlen].to_vec();
        let stored = get_u64(&hb, OFF_CHECKSUM);
        put_u64(&mut hb, OFF_CHECKSUM, 0);
        let sum = xxh64(&hb, CHECKSUM_SEED);
        if sum != stored {
            return Err(corrupt(format!("checksum mismatch (stored {stored:016x}, computed {sum:016x})")));
        }
        let file_len = get_u64(&hb, OFF_FILE_LEN);
        if file_len != file.len() as u64 {
            return Err(corrupt(format!("file is {} bytes, header says {file_len} (truncated or extended)", file.len())));
        }
        let count = get_u64(&hb, OFF_COUNT);
        if count >= u32::MAX as u64 {
            return Err(corrupt(format!("count {count} too large")));
        }
        let count = count as usize;
        let dim = get_u32(&hb, OFF_DIM) as usize;
        if dim == 0 || dim > MAX_DIM {
            return Err(corrupt(format!("dim {dim} out of range")));
        }
        let precision = match hb[OFF_PRECISION] {
            0 => Precision::F32,
            1 => Precision::F16,
            p => return Err(corrupt(format!("unknown precision code {p}"))),
        };
        let mode = match hb[OFF_MODE] {
            0 => SearchMode::Exact,
            1 => SearchMode::Hnsw,
            m => return Err(corrupt(format!("unknown mode code {m}"))),
        };
        let fp_len = get_u32(&hb, OFF_FP_LEN) as usize;
        if fp_len > hlen - FIXED_HEADER {
            return Err(corrupt(format!("fingerprint length {fp_len} exceeds the header")));
        }
        let fingerprint = std::str::from_utf8(&hb[FIXED_HEADER..FIXED_HEADER + fp_len]).map_err(|_| corrupt("fingerprint is not UTF-8".into()))?.to_string();
        let nsections = sections_in(version);
        if get_u32(&hb, OFF_NSECTIONS) as usize != nsections {
            return Err(corrupt("unexpected number of sections".into()));
        }
        let block_shift = get_u32(&hb, OFF_BLOCK_SHIFT);
        if version >= 2 && !BLOCK_SHIFTS.contains(&block_shift) {
            return Err(corrupt(format!("block size 2^{block_shift} out of range")));
        }
        let hnsw = HnswHeader {
            m: get_u32(&hb, OFF_HNSW),
            m0: get_u32(&hb, OFF_HNSW + 4),
            ef_construction: get_u32(&hb, OFF_HNSW + 8),
            ef_search: get_u32(&hb, OFF_HNSW + 12),
            entry_point: get_u32(&hb, OFF_HNSW + 16),
            max_level: get_u32(&hb, OFF_HNSW + 20),
            upper_records: get_u64(&hb, OFF_HNSW + 24),
        };
        let mut sections = [SectionEntry::default(); NSECTIONS];
        let mut prev_end = hlen as u64;
        for (i, s) in sections.iter_mut().enumerate().take(nsections) {
            let o = OFF_SECTIONS + i * SECTION_ENTRY;
            let name = ALL_SECTIONS[i].name();
            if get_u32(&hb, o) as usize != i {
                return Err(corrupt(format!("section table entry {i} mislabelled")));
            }
            s.offset = get_u64(&hb, o + 8);
            s.len = get_u64(&hb, o + 16);
            s.checksum = get_u64(&hb, o + 24);
            let end = s.offset.checked_add(s.len);
            if s.offset % ALIGN as u64 != 0 || s.offset < prev_end || end.is_none_or(|e| e > file_len) {
                return Err(corrupt(format!("section {name} at {}+{} is misaligned, overlapping or past the end", s.offset, s.len)));
            }
            prev_end = end.unwrap();
        }
        if nsections < NSECTIONS {
            sections[Section::BlockSums as usize] = SectionEntry { offset: prev_end, len: 0, checksum: xxh64(&[], CHECKSUM_SEED) };
        }
        let block_shift = if version >= 2 { block_shift } else { 0 };
        let h = Header { version, header_len: hlen, file_len, count, dim, precision, mode, fingerprint, hnsw, block_shift, sections };
        h.check_sizes().map_err(|(section, reason)| Error::Corrupt { path: path.to_path_buf(), section, reason })?;
        Ok(h)
    }

    /// Every section's length must be exactly what count/dim/params imply.
    fn check_sizes(&self) -> std::result::Result<(), (&'static str, String)> {
        let n = self.count as u64;
        let expect = |s: Section, want: Option<u64>| -> std::result::Result<(), (&'static str, String)> {
            let got = self.sections[s as usize].len;
            match want {
                Some(w) if w == got => Ok(()),
                _ => Err((s.name(), format!("length {got}, expected {want:?}"))),
            }
        };
        expect(Section::Vectors, n.checked_mul(self.dim as u64).and_then(|x| x.checked_mul(self.precision.bytes() as u64)))?;
        expect(Section::MetaOffsets, Some((3 * n + 1) * 8))?;
        expect(Section::IdTable, Some(id_table_slots(self.count) as u64 * 4))?;
        if self.version >= 2 {
            let blocks: u64 = DATA_SECTIONS.iter().map(|&s| block_count(self.sections[s as usize].len, self.block_shift)).sum();
            expect(Section::BlockSums, Some(blocks * 8))?;
        }
        match self.mode {
            SearchMode::Exact => {
                expect(Section::GraphNodes, Some(0))?;
                expect(Section::GraphLevel0, Some(0))?;
                expect(Section::GraphUpper, Some(0))?;
            }
            SearchMode::Hnsw => {
                let h = &self.hnsw;
                let bad = |r: String| Err(("header (hnsw)", r));
                if self.count == 0 {
                    return bad("hnsw index with no vectors".into());
                }
                if h.m < 2 || h.m as usize > MAX_M || h.m0 < h.m || h.m0 as usize > 2 * MAX_M {
                    return bad(format!("m={} m0={} out of range", h.m, h.m0));
                }
                if h.entry_point as usize >= self.count {
                    return bad(format!("entry point {} ≥ count {}", h.entry_point, self.count));
                }
                if h.max_level as usize > MAX_LEVEL {
                    return bad(format!("max level {} > {MAX_LEVEL}", h.max_level));
                }
                if h.upper_records > n * MAX_LEVEL as u64 || h.upper_records > u32::MAX as u64 {
                    return bad(format!("{} upper records for {n} nodes", h.upper_records));
                }
                expect(Section::GraphNodes, Some(n * 8))?;
                expect(Section::GraphLevel0, Some(n * (1 + h.m0 as u64) * 4))?;
                expect(Section::GraphUpper, Some(h.upper_records * (1 + h.m as u64) * 4))?;
            }
        }
        Ok(())
    }
}
