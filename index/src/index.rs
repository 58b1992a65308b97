//! Opening and searching a stored index, straight from the memory mapping.

use crate::blocks::{BlockStates, Guard};
use crate::bytes::cast;
use crate::error::{io, Error, Result};
use crate::format::*;
use crate::hash::xxh64;
use crate::hnsw::{self, FlatGraph, Scored, Scratch, Store, Vectors};
use half::f16;
use memmap2::Mmap;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One search result: the row of the relation and its score `q · r`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    pub row: usize,
    pub score: f32,
}

/// A relation's metadata, borrowed from the mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Relation<'a> {
    pub id: &'a str,
    pub name: &'a str,
    /// The caller's opaque JSON blob (stored verbatim).
    pub meta: &'a str,
}

/// Above this many bytes of metadata, `open` leaves the metadata blocks to be verified as
/// they are first read: every metadata access is bounds- and UTF-8-checked regardless.
pub const META_CHECK_ON_OPEN_MAX_BYTES: u64 = 16 << 20;

/// Options of [`Index::open_with`].
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// If set, opening fails with [`Error::ModelMismatch`] unless the index was built with
    /// exactly this encoder fingerprint.
    pub expected_fingerprint: Option<String>,
    /// Verify the checksums of the metadata sections (offsets, string heap, id table) on
    /// open, when they total at most [`META_CHECK_ON_OPEN_MAX_BYTES`] (≈ 100k relations;
    /// hashing them costs at most a few milliseconds), so that opening time stays bounded
    /// for any label-set size. Default true. Turning it off makes opening O(1) for any
    /// label-set size; each metadata block is then verified when first read, so a damaged
    /// one yields `None` from [`Index::relation`] (and an error from the searches and
    /// [`Index::read_relation`]) instead of an open error. Version-1 files, which have no
    /// block checksums, are verified whole on open whatever this says.
    pub verify_meta: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions { expected_fingerprint: None, verify_meta: true }
    }
}

/// One section as reported by [`Index::info`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionInfo {
    pub name: &'static str,
    pub offset: u64,
    pub len: u64,
    pub checksum: u64,
}

/// HNSW parameters as reported by [`Index::info`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HnswInfo {
    pub m: usize,
    pub m0: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
    pub max_level: usize,
    pub entry_point: usize,
}

/// What `rmx index inspect` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    pub path: PathBuf,
    pub format_version: u32,
    pub count: usize,
    pub dim: usize,
    pub precision: Precision,
    pub mode: SearchMode,
    pub fingerprint: String,
    pub hnsw: Option<HnswInfo>,
    pub header_len: usize,
    pub sections: Vec<SectionInfo>,
    pub file_size: u64,
}

impl Info {
    pub(crate) fn from_header(h: &Header, dir: &Path) -> Info {
        Info {
            path: dir.to_path_buf(),
            format_version: h.version,
            count: h.count,
            dim: h.dim,
            precision: h.precision,
            mode: h.mode,
            fingerprint: h.fingerprint.clone(),
            hnsw: (h.mode == SearchMode::Hnsw).then_some(HnswInfo {
                m: h.hnsw.m as usize,
                m0: h.hnsw.m0 as usize,
                ef_construction: h.hnsw.ef_construction as usize,
                ef_search: h.hnsw.ef_search as usize,
                max_level: h.hnsw.max_level as usize,
                entry_point: h.hnsw.entry_point as usize,
            }),
            header_len: h.header_len,
            sections: ALL_SECTIONS
                .iter()
                .map(|&s| {
                    let e = h.sections[s as usize];
                    SectionInfo { name: s.name(), offset: e.offset, len: e.len, checksum: e.checksum }
                })
                .collect(),
            file_size: h.file_len,
        }
    }
}

impl std::fmt::Display for Info {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "index        {}", self.path.display())?;
        writeln!(f, "format       rmx index v{}", self.format_version)?;
        writeln!(f, "relations    {}", self.count)?;
        writeln!(f, "dim          {}", self.dim)?;
        writeln!(f, "precision    {}", self.precision)?;
        writeln!(f, "mode         {}", self.mode)?;
        if let Some(h) = &self.hnsw {
            writeln!(
                f,
                "hnsw         m={} m0={} ef_construction={} ef_search={} levels={} entry={}",
                h.m,
                h.m0,
                h.ef_construction,
                h.ef_search,
                h.max_level + 1,
                h.entry_point
            )?;
        }
        writeln!(f, "fingerprint  {:?}", self.fingerprint)?;
        writeln!(f, "file size    {} bytes", self.file_size)?;
        writeln!(f, "sections     header at 0, {} bytes", self.header_len)?;
        for s in &self.sections {
            writeln!(f, "             {:<19} at {:>12}, {:>12} bytes, xxh64 {:016x}", s.name, s.offset, s.len, s.checksum)?;
        }
        Ok(())
    }
}

/// An open index: a read-only memory mapping plus the decoded header. Opening reads and
/// checks the header (and, by default, the metadata checksums); nothing is deserialised and
/// nothing is allocated per relation, so opening costs the same for 80 or millions of
/// relations. Every other block is verified against its checksum the first time a search
/// or look-up reads it (remembered for the life of the `Index`): a block that fails makes
/// that search, and every later one, an [`Error::Corrupt`] naming its section. `Index` is
/// `Send + Sync`: search from as many threads as you like.
///
/// The data file must not be modified in place while it is open (rmx never does: it
/// replaces indexes by renaming a new directory into place).
pub struct Index {
    dir: PathBuf,
    file: PathBuf,
    map: Mmap,
    h: Header,
    /// `None` for a version-1 file (no block checksums; verified whole on open).
    blocks: Option<BlockStates>,
    pool: Mutex<Vec<Scratch>>,
}

/// Bounded top-k by (score desc, row asc).
struct TopK {
    k: usize,
    heap: BinaryHeap<Reverse<Scored>>,
}

impl TopK {
    fn new(k: usize) -> Self {
        TopK { k, heap: BinaryHeap::with_capacity(k + 1) }
    }
    #[inline]
    fn push(&mut self, s: Scored) {
        if self.heap.len() < self.k {
            self.heap.push(Reverse(s));
        } else if let Some(mut top) = self.heap.peek_mut() {
            if s > top.0 {
                *top = Reverse(s);
            }
        }
    }
    fn into_hits(self) -> Vec<Hit> {
        let mut v: Vec<Scored> = self.heap.into_iter().map(|r| r.0).collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v.into_iter().map(|s| Hit { row: s.id as usize, score: s.s }).collect()
    }
}

impl Index {
    /// Open the index directory `dir` (checks header and metadata).
    pub fn open(dir: impl AsRef<Path>) -> Result<Index> {
        Self::open_with(dir, &OpenOptions::default())
    }

    /// Open `dir`, failing with [`Error::ModelMismatch`] unless it was built by the encoder
    /// with this `fingerprint`.
    pub fn open_expecting(dir: impl AsRef<Path>, fingerprint: &str) -> Result<Index> {
        Self::open_with(dir, &OpenOptions { expected_fingerprint: Some(fingerprint.to_string()), ..OpenOptions::default() })
    }

    /// Open with explicit [`OpenOptions`].
    pub fn open_with(dir: impl AsRef<Path>, opts: &OpenOptions) -> Result<Index> {
        let dir = dir.as_ref().to_path_buf();
        let file = dir.join(DATA_FILE);
        let mut f = File::open(&file).map_err(io(&file))?;
        let len = f.metadata().map_err(io(&file))?.len();
        if len < FIXED_HEADER as u64 {
            // Too short to be an index: decode what is there for a precise error.
            let mut b = Vec::new();
            f.read_to_end(&mut b).map_err(io(&file))?;
            return Err(Header::decode(&file, &b).err().unwrap_or(Error::Corrupt {
                path: file,
                section: "header",
                reason: format!("file truncated to {len} bytes"),
            }));
        }
        // SAFETY: read-only shared mapping. rmx never modifies a published data file (new
        // indexes are renamed into place), and every access through the mapping is bounds-
        // checked against the validated header, so even a hostile file cannot make reads
        // leave the mapping. (External in-place modification while mapped is unsupported.)
        let map = unsafe { Mmap::map(&f) }.map_err(io(&file))?;
        let h = Header::decode(&file, &map)?;
        let blocks = (h.block_shift > 0).then(|| BlockStates::new(&h));
        let idx = Index { dir, file, map, h, blocks, pool: Mutex::new(Vec::new()) };
        if let Some(exp) = &opts.expected_fingerprint {
            if *exp != idx.h.fingerprint {
                return Err(Error::ModelMismatch { path: idx.dir.clone(), index: idx.h.fingerprint.clone(), expected: exp.clone() });
            }
        }
        // Typed views must be aligned (the mapping is page-aligned and sections 64-aligned,
        // so this only fails on a broken platform), and the offset table must start at 0
        // and end at the heap's length.
        let offs = idx.u64s(Section::MetaOffsets)?;
        let heap_len = idx.h.sections[Section::MetaHeap as usize].len;
        let ends_read = idx.intact(Section::MetaOffsets, 0, 8) && idx.intact(Section::MetaOffsets, (offs.len().max(1) - 1) * 8, offs.len() * 8);
        idx.check_intact()?;
        if !ends_read || offs.first() != Some(&0) || offs.last() != Some(&heap_len) {
            return Err(idx.corrupt(Section::MetaOffsets, "offset table does not span the heap"));
        }
        idx.u32s(Section::IdTable)?;
        idx.u32s(Section::GraphNodes)?;
        idx.u32s(Section::GraphLevel0)?;
        idx.u32s(Section::GraphUpper)?;
        idx.vectors()?;
        if idx.blocks.is_none() {
            // Version 1: no block checksums, so the only way to answer from checked data.
            idx.verify()?;
            return Ok(idx);
        }
        let meta_sections = [Section::MetaOffsets, Section::MetaHeap, Section::IdTable];
        let meta_bytes: u64 = meta_sections.iter().map(|&s| idx.h.sections[s as usize].len).sum();
        if opts.verify_meta && meta_bytes <= META_CHECK_ON_OPEN_MAX_BYTES {
            for s in meta_sections {
                idx.check_sum(s)?;
                idx.intact(s, 0, usize::MAX);
            }
            idx.check_intact()?;
        }
        Ok(idx)
    }

    fn corrupt(&self, s: Section, reason: impl Into<String>) -> Error {
        Error::Corrupt { path: self.file.clone(), section: s.name(), reason: reason.into() }
    }

    /// The guard of section `s`'s blocks (`None` for a version-1 file, verified on open).
    fn guard(&self, s: Section) -> Option<Guard<'_>> {
        self.blocks.as_ref().map(|b| b.guard(s, self.bytes(s), self.bytes(Section::BlockSums)))
    }

    /// True when bytes `start..end` of section `s` (clamped to it) lie in intact blocks.
    fn intact(&self, s: Section, start: usize, end: usize) -> bool {
        self.guard(s).is_none_or(|g| g.ok(start, end.min(self.bytes(s).len())))
    }

    /// `Err(Corrupt)` once any block read so far has failed its checksum: the section named
    /// is the damaged block's, or the block-checksum table itself when that is what fails.
    pub fn check_intact(&self) -> Result<()> {
        let Some((section, reason)) = self.blocks.as_ref().and_then(|b| b.failure()) else {
            return Ok(());
        };
        self.check_sum(Section::BlockSums)?;
        Err(self.corrupt(*section, reason.clone()))
    }

    fn bytes(&self, s: Section) -> &[u8] {
        let e = self.h.sections[s as usize];
        // In bounds: checked by Header::decode against the mapping's length.
        &self.map[e.offset as usize..(e.offset + e.len) as usize]
    }

    fn u32s(&self, s: Section) -> Result<&[u32]> {
        cast::<u32>(self.bytes(s)).ok_or_else(|| self.corrupt(s, "misaligned"))
    }

    fn u64s(&self, s: Section) -> Result<&[u64]> {
        cast::<u64>(self.bytes(s)).ok_or_else(|| self.corrupt(s, "misaligned"))
    }

    fn vectors(&self) -> Result<Vectors<'_>> {
        let b = self.bytes(Section::Vectors);
        let bad = || self.corrupt(Section::Vectors, "misaligned");
        Ok(match self.h.precision {
            Precision::F32 => Vectors::F32(cast::<f32>(b).ok_or_else(bad)?),
            Precision::F16 => Vectors::F16(cast::<f16>(b).ok_or_else(bad)?),
        })
    }

    /// The vectors, each row read only once its blocks are verified.
    fn store(&self) -> Store<'_> {
        let v = self.vectors().expect("checked on open");
        match self.guard(Section::Vectors) {
            Some(g) => Store::guarded(v, self.h.dim, g),
            None => Store::new(v, self.h.dim),
        }
    }

    fn check_sum(&self, s: Section) -> Result<()> {
        let e = self.h.sections[s as usize];
        let got = xxh64(self.bytes(s), CHECKSUM_SEED);
        if got != e.checksum {
            return Err(self.corrupt(s, format!("checksum mismatch (stored {:016x}, computed {got:016x})", e.checksum)));
        }
        Ok(())
    }

    /// Number of relations.
    pub fn len(&self) -> usize {
        self.h.count
    }

    /// True for an index of no relations.
    pub fn is_empty(&self) -> bool {
        self.h.count == 0
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.h.dim
    }

    /// How [`Index::search`] searches.
    pub fn mode(&self) -> SearchMode {
        self.h.mode
    }

    /// Storage precision.
    pub fn precision(&self) -> Precision {
        self.h.precision
    }

    /// The encoder fingerprint the index was built with.
    pub fn fingerprint(&self) -> &str {
        &self.h.fingerprint
    }

    /// The index directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Format version, sizes, parameters: what `rmx index inspect` prints (`Display`).
    pub fn info(&self) -> Info {
        Info::from_header(&self.h, &self.dir)
    }

    /// Metadata of `row`, borrowed from the mapping. `None` if `row >= len()`, or if the
    /// entry's blocks fail their checksums (then [`Index::check_intact`] says which) or the
    /// entry is malformed.
    pub fn relation(&self, row: usize) -> Option<Relation<'_>> {
        let offs = self.u64s(Section::MetaOffsets).ok()?;
        if row >= self.h.count || !self.intact(Section::MetaOffsets, 3 * row * 8, (3 * row + 4) * 8) {
            return None;
        }
        let o = offs.get(3 * row..3 * row + 4)?;
        let heap = self.bytes(Section::MetaHeap);
        let (start, end) = (usize::try_from(o[0]).ok()?, usize::try_from(o[3]).ok()?);
        if !self.intact(Section::MetaHeap, start, end) {
            return None;
        }
        let get = |a: u64, b: u64| -> Option<&str> {
            let (a, b) = (usize::try_from(a).ok()?, usize::try_from(b).ok()?);
            std::str::from_utf8(heap.get(a..b)?).ok()
        };
        Some(Relation { id: get(o[0], o[1])?, name: get(o[1], o[2])?, meta: get(o[2], o[3])? })
    }

    /// As [`Index::relation`], with the reason when there is none: [`Error::Invalid`] for a
    /// row out of range, [`Error::Corrupt`] naming the damaged section otherwise.
    pub fn read_relation(&self, row: usize) -> Result<Relation<'_>> {
        if row >= self.h.count {
            return Err(Error::Invalid(format!("row {row} out of range (the index holds {})", self.h.count)));
        }
        match self.relation(row) {
            Some(r) => Ok(r),
            None => {
                self.check_intact()?;
                Err(self.corrupt(Section::MetaHeap, format!("row {row}: offsets or text malformed")))
            }
        }
    }

    /// Row of the relation with this id (hash lookup in the mapped id table).
    pub fn row_of(&self, id: &str) -> Option<usize> {
        let t = self.u32s(Section::IdTable).ok()?;
        if t.is_empty() {
            return None;
        }
        let mask = t.len() - 1; // power of two: checked on open
        let mut i = xxh64(id.as_bytes(), ID_HASH_SEED) as usize & mask;
        for _ in 0..t.len() {
            if !self.intact(Section::IdTable, i * 4, i * 4 + 4) {
                return None;
            }
            let r = t[i];
            if r == EMPTY {
                return None;
            }
            if (r as usize) < self.h.count && self.relation(r as usize).is_some_and(|x| x.id == id) {
                return Some(r as usize);
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// The relation with this id, with its row.
    pub fn relation_by_id(&self, id: &str) -> Option<(usize, Relation<'_>)> {
        let r = self.row_of(id)?;
        Some((r, self.relation(r)?))
    }

    /// The stored vector of `row`, as f32 (converted from f16 if stored so). `None` if
    /// `row >= len()` or its blocks fail their checksums.
    pub fn vector(&self, row: usize) -> Option<Vec<f32>> {
        let d = self.h.dim;
        let row_bytes = d * self.h.precision.bytes();
        if row >= self.h.count || !self.intact(Section::Vectors, row * row_bytes, (row + 1) * row_bytes) {
            return None;
        }
        Some(match self.vectors().ok()? {
            Vectors::F32(v) => v[row * d..row * d + d].to_vec(),
            Vectors::F16(v) => {
                let mut out = vec![0f32; d];
                (crate::simd::kernels().f16_to_f32)(&v[row * d..row * d + d], &mut out);
                out
            }
        })
    }

    /// As [`Index::vector`], with the reason when there is none: [`Error::Invalid`] for a
    /// row out of range, [`Error::Corrupt`] when its blocks fail their checksums.
    pub fn read_vector(&self, row: usize) -> Result<Vec<f32>> {
        if row >= self.h.count {
            return Err(Error::Invalid(format!("row {row} out of range (the index holds {})", self.h.count)));
        }
        self.vector(row).ok_or(()).or_else(|()| {
            self.check_intact()?;
            Err(self.corrupt(Section::Vectors, format!("row {row} unreadable")))
        })
    }

    fn check_query(&self, q: &[f32]) -> Result<()> {
        if q.len() != self.h.dim {
            return Err(Error::DimMismatch { what: "query".into(), expected: self.h.dim, got: q.len() });
        }
        if let Some(position) = q.iter().position(|x| !x.is_finite()) {
            return Err(Error::NonFinite { what: "query".into(), position });
        }
        Ok(())
    }

    /// The `k` best relations for `query`, by score `query · r` descending (ties: lower
    /// row first). Exact for exact indexes; HNSW with the stored default `ef` otherwise.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>> {
        self.search_with_ef(query, k, self.h.hnsw.ef_search as usize)
    }

    /// As [`Index::search`] with an explicit HNSW candidate-list size (`max(ef, k)` is
    /// used; ignored by exact indexes). Larger is slower and more accurate.
    pub fn search_with_ef(&self, query: &[f32], k: usize, ef: usize) -> Result<Vec<Hit>> {
        self.check_query(query)?;
        let hits = match self.h.mode {
            SearchMode::Exact => self.exact(query, k),
            SearchMode::Hnsw => self.hnsw(query, k, ef.max(k)),
        };
        self.check_intact()?;
        Ok(hits)
    }

    /// Exact search whatever the index mode (one pass over all vectors).
    pub fn search_exact(&self, query: &[f32], k: usize) -> Result<Vec<Hit>> {
        self.check_query(query)?;
        let hits = self.exact(query, k);
        self.check_intact()?;
        Ok(hits)
    }

    /// Every vector is read, so the whole section is verified first (once per process),
    /// then scored without a check per row.
    fn exact(&self, q: &[f32], k: usize) -> Vec<Hit> {
        let n = self.h.count;
        if k == 0 || n == 0 || !self.intact(Section::Vectors, 0, usize::MAX) {
            return Vec::new();
        }
        let st = Store::new(self.vectors().expect("checked on open"), self.h.dim);
        let mut top = TopK::new(k.min(n));
        for r in 0..n {
            top.push(Scored { s: st.score(q, r), id: r as u32 });
        }
        top.into_hits()
    }

    fn hnsw(&self, q: &[f32], k: usize, ef: usize) -> Vec<Hit> {
        if k == 0 || self.h.count == 0 {
            return Vec::new();
        }
        let st = self.store();
        let g = self.graph();
        let mut sc = self.pool.lock().map(|mut p| p.pop()).unwrap_or(None).unwrap_or_default();
        let found = hnsw::search(&g, &st, q, self.h.hnsw.entry_point, self.h.hnsw.max_level as usize, ef, &mut sc);
        if let Ok(mut p) = self.pool.lock() {
            p.push(sc);
        }
        // The candidates carry exact scores against the stored vectors; keep the k best in
        // the documented order (score desc, row asc).
        found.into_iter().take(k).map(|s| Hit { row: s.id as usize, score: s.s }).collect()
    }

    fn graph(&self) -> FlatGraph<'_> {
        FlatGraph {
            nodes: self.u32s(Section::GraphNodes).unwrap_or(&[]),
            l0: self.u32s(Section::GraphLevel0).unwrap_or(&[]),
            upper: self.u32s(Section::GraphUpper).unwrap_or(&[]),
            m: self.h.hnsw.m as usize,
            m0: self.h.hnsw.m0 as usize,
            guards: match (self.guard(Section::GraphNodes), self.guard(Section::GraphLevel0), self.guard(Section::GraphUpper)) {
                (Some(a), Some(b), Some(c)) => Some([a, b, c]),
                _ => None,
            },
        }
    }

    /// Full verification: every section's checksum (vectors and graph included) and every
    /// structural invariant (offsets, UTF-8, id table, neighbour ids, counts, levels).
    /// Reads the whole file.
    pub fn verify(&self) -> Result<()> {
        for s in ALL_SECTIONS {
            self.check_sum(s)?;
        }
        for s in DATA_SECTIONS {
            self.intact(s, 0, usize::MAX);
        }
        self.check_intact()?;
        let n = self.h.count;
        // Metadata: monotone offsets within the heap, UTF-8 strings, ids found by lookup.
        let offs = self.u64s(Section::MetaOffsets)?;
        let heap_len = self.h.sections[Section::MetaHeap as usize].len;
        if offs.windows(2).any(|w| w[0] > w[1]) || offs.last() != Some(&heap_len) {
            return Err(self.corrupt(Section::MetaOffsets, "offsets not increasing within the heap"));
        }
        for r in 0..n {
            let rel = self.relation(r).ok_or_else(|| self.corrupt(Section::MetaHeap, format!("row {r}: not UTF-8")))?;
            if self.row_of(rel.id) != Some(r) {
                return Err(self.corrupt(Section::IdTable, format!("row {r} (id {:?}) not found by id", rel.id)));
            }
        }
        let t = self.u32s(Section::IdTable)?;
        let used = t.iter().filter(|&&r| r != EMPTY).count();
        if used != n || t.iter().any(|&r| r != EMPTY && r as usize >= n) {
            return Err(self.corrupt(Section::IdTable, "entries do not match the rows"));
        }
        if self.h.mode == SearchMode::Hnsw {
            self.verify_graph()?;
        }
        Ok(())
    }

    fn verify_graph(&self) -> Result<()> {
        let n = self.h.count;
        let hh = self.h.hnsw;
        let (m, m0) = (hh.m as usize, hh.m0 as usize);
        let g = self.graph();
        let mut records = 0u64;
        for i in 0..n {
            let (lvl, start) = (g.nodes[2 * i] as u64, g.nodes[2 * i + 1] as u64);
            if lvl > hh.max_level as u64 {
                return Err(self.corrupt(Section::GraphNodes, format!("node {i}: level {lvl} > max")));
            }
            if lvl > 0 {
                if start != records {
                    return Err(self.corrupt(Section::GraphNodes, format!("node {i}: bad record start")));
                }
                records += lvl;
            }
        }
        if records != hh.upper_records {
            return Err(self.corrupt(Section::GraphNodes, "record count mismatch"));
        }
        if g.nodes[2 * hh.entry_point as usize] != hh.max_level {
            return Err(self.corrupt(Section::GraphNodes, "entry point is not on the top level"));
        }
        let check = |rec: &[u32], cap: usize, s: Section, what: &str| -> Result<()> {
            for (j, r) in rec.chunks_exact(cap + 1).enumerate() {
                let c = r[0] as usize;
                if c > cap || r[1..1 + c].iter().any(|&x| x as usize >= n) {
                    return Err(self.corrupt(s, format!("{what} {j}: bad count or neighbour id")));
                }
            }
            Ok(())
        };
        check(g.l0, m0, Section::GraphLevel0, "node")?;
        check(g.upper, m, Section::GraphUpper, "record")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn assert_send_sync<T: Send + Sync>() {}
    #[test]
    fn index_is_send_sync() {
        assert_send_sync::<Index>();
    }
}
