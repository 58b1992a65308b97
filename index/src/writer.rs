//! Building an index: [`IndexWriter`] streams records to a temporary sibling directory,
//! builds the graph, fsyncs, and renames the result into place.

use crate::blocks::{append_block_sums, BLOCK_SHIFT};
use crate::bytes::cast;
use crate::error::{io, Error, Result};
use crate::format::*;
use crate::hash::{xxh64, Xxh64};
use crate::hnsw::{self, BuildParams, Store, Vectors};
use crate::index::Info;
use half::f16;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Label-set size from which [`BuildMode::Auto`] builds an HNSW graph. Below it, exact
/// search (one matrix–vector product) is about as fast and is exact; measured on the
/// development machine (dim 1,152, f32, see `index/BENCHMARKS.md`).
pub const AUTO_HNSW_THRESHOLD: usize = 5_000;

/// Which search structure to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BuildMode {
    /// Exact below [`AUTO_HNSW_THRESHOLD`] relations, HNSW from there on.
    #[default]
    Auto,
    /// No graph: every search is exact.
    Exact,
    /// Always build the HNSW graph (searches re-rank its candidates exactly).
    Hnsw,
}

/// HNSW parameters (used when a graph is built).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HnswParams {
    /// Links per node on the upper levels (level 0 keeps up to `2·m`). 2..=256.
    pub m: usize,
    /// Candidate-list size while building.
    pub ef_construction: usize,
    /// Default candidate-list size of [`crate::Index::search`] (stored in the index).
    /// 128 by default: recall@10 ≥ 0.98 even on uniformly random data (the hardest case)
    /// of intrinsic dimension up to ~64; clustered data such as relation embeddings reach
    /// 0.99 with far less (see BENCHMARKS.md), so latency-bound callers can lower it.
    pub ef_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams { m: 16, ef_construction: 200, ef_search: 128 }
    }
}

/// Options of [`IndexWriter`].
#[derive(Clone, Debug)]
pub struct IndexOptions {
    /// Storage precision of the vectors.
    pub precision: Precision,
    /// Exact, HNSW, or chosen by size.
    pub mode: BuildMode,
    /// Graph parameters.
    pub hnsw: HnswParams,
    /// Opaque identification of the encoder that produced the vectors; checked by
    /// [`crate::Index::open_expecting`].
    pub fingerprint: String,
    /// Build threads; 0 = all available cores.
    pub threads: usize,
    /// Seed of the level draws (a single-threaded build is deterministic).
    pub seed: u64,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            precision: Precision::F32,
            mode: BuildMode::Auto,
            hnsw: HnswParams::default(),
            fingerprint: String::new(),
            threads: 0,
            seed: 0x0072_6d78,
        }
    }
}

/// Streams `(id, name, meta_json, vector)` records into a new index.
///
/// Vectors go straight to a data file in a temporary directory beside `dest` (so building
/// a large index does not hold the vectors in memory); [`IndexWriter::finish`] builds the
/// graph over the written file, fsyncs, and atomically replaces `dest`. Dropping the
/// writer or any error leaves `dest` untouched and removes the temporary directory.
pub struct IndexWriter {
    dest: PathBuf,
    tmp_dir: PathBuf,
    file_path: PathBuf,
    out: Option<BufWriter<File>>,
    dim: usize,
    opts: IndexOptions,
    header_len: usize,
    vec_hash: Xxh64,
    count: usize,
    heap: Vec<u8>,
    offsets: Vec<u64>,
    ids: HashMap<String, usize>,
    scratch: Vec<u8>,
    swept: Vec<PathBuf>,
    done: bool,
}

fn is_index_dir(p: &Path) -> bool {
    p.join(DATA_FILE).is_file()
}

fn dir_is_empty(p: &Path) -> bool {
    fs::read_dir(p).map(|mut d| d.next().is_none()).unwrap_or(false)
}

fn fsync_dir(p: &Path) -> Result<()> {
    File::open(p).and_then(|f| f.sync_all()).map_err(io(p))
}

impl IndexWriter {
    /// Start a new index at directory `dest` for vectors of dimension `dim`.
    pub fn create(dest: impl AsRef<Path>, dim: usize, opts: IndexOptions) -> Result<Self> {
        let dest = dest.as_ref().to_path_buf();
        if dim == 0 || dim > MAX_DIM {
            return Err(Error::Invalid(format!("dim {dim} not in 1..={MAX_DIM}")));
        }
        if opts.fingerprint.len() > MAX_FINGERPRINT {
            return Err(Error::Invalid(format!("fingerprint of {} bytes (max {MAX_FINGERPRINT})", opts.fingerprint.len())));
        }
        let h = &opts.hnsw;
        if h.m < 2 || h.m > MAX_M || h.ef_construction == 0 || h.ef_search == 0 {
            return Err(Error::Invalid(format!(
                "hnsw parameters m={} (2..={MAX_M}), ef_construction={}, ef_search={} (both ≥ 1)",
                h.m, h.ef_construction, h.ef_search
            )));
        }
        if dest.exists() && !(dest.is_dir() && (is_index_dir(&dest) || dir_is_empty(&dest))) {
            return Err(Error::DestinationOccupied { path: dest });
        }
        let name = dest.file_name().ok_or_else(|| Error::Invalid(format!("{}: not a directory name", dest.display())))?.to_string_lossy().into_owned();
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).map_err(io(&parent))?;
        let swept = sweep_stale_temporaries(&parent, &name);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let tmp_dir = parent.join(format!(".{name}.tmp-{}-{nanos}", std::process::id()));
        fs::create_dir(&tmp_dir).map_err(io(&tmp_dir))?;
        let file_path = tmp_dir.join(DATA_FILE);
        let mut w = IndexWriter {
            dest,
            tmp_dir,
            file_path: file_path.clone(),
            out: None,
            dim,
            header_len: header_len(opts.fingerprint.len()),
            opts,
            vec_hash: Xxh64::new(CHECKSUM_SEED),
            count: 0,
            heap: Vec::new(),
            offsets: Vec::new(),
            ids: HashMap::new(),
            scratch: Vec::new(),
            swept,
            done: false,
        };
        let f = OpenOptions::new().read(true).write(true).create_new(true).open(&file_path).map_err(io(&file_path))?;
        let mut out = BufWriter::with_capacity(1 << 20, f);
        // Header placeholder; the real header is written last.
        out.write_all(&vec![0u8; w.header_len]).map_err(io(&file_path))?;
        w.out = Some(out);
        Ok(w)
    }

    /// The temporary directories of earlier builds into the same destination, whose
    /// process is gone (killed mid-build), that `create` removed.
    pub fn swept(&self) -> &[PathBuf] {
        &self.swept
    }

    /// Number of records added so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True before the first [`IndexWriter::add`].
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Append a relation; returns its row. `meta_json` is stored verbatim (opaque).
    pub fn add(&mut self, id: &str, name: &str, meta_json: &str, vector: &[f32]) -> Result<usize> {
        if vector.len() != self.dim {
            return Err(Error::DimMismatch { what: format!("relation {id:?}"), expected: self.dim, got: vector.len() });
        }
        if let Some(position) = vector.iter().position(|x| !x.is_finite()) {
            return Err(Error::NonFinite { what: format!("relation {id:?}"), position });
        }
        if self.count >= u32::MAX as usize - 2 {
            return Err(Error::Invalid("too many relations (max 2^32 - 3)".into()));
        }
        if let Some(&first) = self.ids.get(id) {
            return Err(Error::DuplicateId { id: id.to_string(), first, second: self.count });
        }
        self.scratch.clear();
        match self.opts.precision {
            Precision::F32 => {
                for x in vector {
                    self.scratch.extend_from_slice(&x.to_le_bytes());
                }
            }
            Precision::F16 => {
                for x in vector {
                    self.scratch.extend_from_slice(&f16::from_f32(*x).to_le_bytes());
                }
            }
        }
        self.vec_hash.update(&self.scratch);
        let out = self.out.as_mut().expect("writer open");
        out.write_all(&self.scratch).map_err(io(&self.file_path))?;
        for s in [id, name, meta_json] {
            self.offsets.push(self.heap.len() as u64);
            self.heap.extend_from_slice(s.as_bytes());
        }
        self.ids.insert(id.to_string(), self.count);
        self.count += 1;
        Ok(self.count - 1)
    }

    /// Build the graph (if any), write everything, fsync and move the index into place,
    /// replacing an existing index at the destination only now that the build succeeded.
    pub fn finish(mut self) -> Result<Info> {
        // On error, Drop removes the temporary directory; `dest` was not touched.
        self.finish_inner()
    }

    fn finish_inner(&mut self) -> Result<Info> {
        let path = self.file_path.clone();
        let e = io(&path);
        let mode = match self.opts.mode {
            BuildMode::Exact => SearchMode::Exact,
            BuildMode::Hnsw => SearchMode::Hnsw,
            BuildMode::Auto if self.count >= AUTO_HNSW_THRESHOLD => SearchMode::Hnsw,
            BuildMode::Auto => SearchMode::Exact,
        };
        if mode == SearchMode::Hnsw && self.count == 0 {
            return Err(Error::Invalid("cannot build an HNSW graph over no vectors".into()));
        }
        let out = self.out.take().expect("writer open");
        let mut file = out.into_inner().map_err(|e| Error::Io { path: path.clone(), source: e.into_error() })?;
        let mut sections = [SectionEntry::default(); NSECTIONS];
        let vec_len = (self.count * self.dim * self.opts.precision.bytes()) as u64;
        sections[Section::Vectors as usize] = SectionEntry { offset: self.header_len as u64, len: vec_len, checksum: self.vec_hash.finish() };
        let mut pos = self.header_len as u64 + vec_len;

        // The graph is built over the vectors just written, read back through a mapping.
        let mut hnsw_hdr = HnswHeader::default();
        let built = if mode == SearchMode::Hnsw {
            file.flush().map_err(io(&path))?;
            // SAFETY: the file was created by this writer (create_new) in a fresh private
            // directory and nothing else writes it while this read-only mapping lives.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io(&path))?;
            let bytes = &map[self.header_len..self.header_len + vec_len as usize];
            let v = match self.opts.precision {
                Precision::F32 => Vectors::F32(cast::<f32>(bytes).expect("aligned")),
                Precision::F16 => Vectors::F16(cast::<f16>(bytes).expect("aligned")),
            };
            let store = Store::new(v, self.dim);
            let hp = self.opts.hnsw;
            let threads = if self.opts.threads == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { self.opts.threads };
            let b = hnsw::build(&store, BuildParams { m: hp.m, m0: 2 * hp.m, ef_construction: hp.ef_construction.max(hp.m), seed: self.opts.seed, threads });
            let ef_search = hp.ef_search;
            hnsw_hdr = HnswHeader {
                m: hp.m as u32,
                m0: 2 * hp.m as u32,
                ef_construction: hp.ef_construction as u32,
                ef_search: ef_search.min(u32::MAX as usize) as u32,
                entry_point: b.entry,
                max_level: b.max_level,
                upper_records: b.upper_records,
            };
            Some(b)
        } else {
            None
        };

        file.seek(SeekFrom::Start(pos)).map_err(io(&path))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);

        self.offsets.push(self.heap.len() as u64);
        let offsets = std::mem::take(&mut self.offsets);
        let table = self.id_table(&offsets);
        let heap = std::mem::take(&mut self.heap);
        let mut write = |s: Section, data: &[u8], out: &mut BufWriter<File>, sections: &mut [SectionEntry; NSECTIONS]| -> Result<()> {
            let start = align_up(pos);
            out.write_all(&[0u8; ALIGN][..(start - pos) as usize]).map_err(io(&path))?;
            out.write_all(data).map_err(io(&path))?;
            sections[s as usize] = SectionEntry { offset: start, len: data.len() as u64, checksum: xxh64(data, CHECKSUM_SEED) };
            pos = start + data.len() as u64;
            Ok(())
        };
        write(Section::MetaOffsets, &le_bytes_u64(&offsets), &mut out, &mut sections)?;
        write(Section::MetaHeap, &heap, &mut out, &mut sections)?;
        write(Section::IdTable, &le_bytes_u32(&table), &mut out, &mut sections)?;
        let empty: Vec<u32> = Vec::new();
        let (nodes, l0, upper) = match &built {
            Some(b) => (&b.nodes, &b.l0, &b.upper),
            None => (&empty, &empty, &empty),
        };
        write(Section::GraphNodes, &le_bytes_u32(nodes), &mut out, &mut sections)?;
        write(Section::GraphLevel0, &le_bytes_u32(l0), &mut out, &mut sections)?;
        write(Section::GraphUpper, &le_bytes_u32(upper), &mut out, &mut sections)?;
        drop(built);
        out.flush().map_err(io(&path))?;
        let block_sums = {
            // SAFETY: as for the graph build above: this writer's own file, which nothing
            // else writes while the mapping lives (it is dropped before the next write).
            let map = unsafe { memmap2::Mmap::map(out.get_ref()) }.map_err(io(&path))?;
            let mut sums = Vec::new();
            for s in DATA_SECTIONS {
                let e = sections[s as usize];
                append_block_sums(&map[e.offset as usize..(e.offset + e.len) as usize], BLOCK_SHIFT, &mut sums);
            }
            sums
        };
        write(Section::BlockSums, &block_sums, &mut out, &mut sections)?;
        let file_len = pos;
        let mut file = out.into_inner().map_err(|er| Error::Io { path: path.clone(), source: er.into_error() })?;
        let header = Header {
            version: FORMAT_VERSION,
            header_len: self.header_len,
            file_len,
            count: self.count,
            dim: self.dim,
            precision: self.opts.precision,
            mode,
            fingerprint: self.opts.fingerprint.clone(),
            hnsw: hnsw_hdr,
            block_shift: BLOCK_SHIFT,
            sections,
        };
        let hb = header.encode();
        debug_assert_eq!(hb.len(), self.header_len);
        file.seek(SeekFrom::Start(0)).map_err(io(&path))?;
        file.write_all(&hb).map_err(io(&path))?;
        file.set_len(file_len).map_err(io(&path))?;
        file.sync_all().map_err(e)?;
        drop(file);
        fsync_dir(&self.tmp_dir)?;
        install(&self.tmp_dir, &self.dest)?;
        self.done = true;
        Ok(Info::from_header(&header, &self.dest))
    }

    fn id_table(&self, offsets: &[u64]) -> Vec<u32> {
        let slots = id_table_slots(self.count);
        let mask = slots - 1;
        let mut t = vec![EMPTY; slots];
        for r in 0..self.count {
            let id = &self.heap[offsets[3 * r] as usize..offsets[3 * r + 1] as usize];
            let mut i = xxh64(id, ID_HASH_SEED) as usize & mask;
            while t[i] != EMPTY {
                i = (i + 1) & mask;
            }
            t[i] = r as u32;
        }
        t
    }
}

impl Drop for IndexWriter {
    fn drop(&mut self) {
        if !self.done {
            self.out = None;
            let _ = fs::remove_dir_all(&self.tmp_dir);
        }
    }
}

/// Removes the temporary directories (`.<name>.tmp-<pid>-<nanos>`, and the `.old` ones of
/// the rename-aside fallback) that builds into `parent/<name>` left behind when they were
/// killed: those whose process no longer runs. A running build's are left alone. Returns
/// what it removed; failures to remove are ignored (the next build tries again).
fn sweep_stale_temporaries(parent: &Path, name: &str) -> Vec<PathBuf> {
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = fs::read_dir(parent) else { return Vec::new() };
    let mut swept = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name.to_str().and_then(|f| f.strip_prefix(&prefix)).and_then(|rest| rest.split('-').next()?.parse::<u32>().ok()) else {
            continue;
        };
        let path = entry.path();
        if !process_alive(pid) && holds_only_data_file(&path) && fs::remove_dir_all(&path).is_ok() {
            swept.push(path);
        }
    }
    swept
}

/// True for a directory holding nothing but (at most) an index data file: what a build's
/// temporary directory holds, so nothing else is ever swept.
fn holds_only_data_file(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| entries.flatten().all(|e| e.file_name() == DATA_FILE && e.path().is_file()))
}

/// Whether process `pid` exists (on other systems than Linux: assumed, so nothing is swept).
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

fn le_bytes_u32(v: &[u32]) -> Vec<u8> {
    let mut b = Vec::with_capacity(v.len() * 4);
    for x in v {
        b.extend_from_slice(&x.to_le_bytes());
    }
    b
}

fn le_bytes_u64(v: &[u64]) -> Vec<u8> {
    let mut b = Vec::with_capacity(v.len() * 8);
    for x in v {
        b.extend_from_slice(&x.to_le_bytes());
    }
    b
}

/// Move the finished `tmp` directory to `dest`. An existing index at `dest` is swapped out
/// atomically (`renameat2(RENAME_EXCHANGE)` on Linux; elsewhere, or where the file system
/// refuses it, rename-aside then rename-into-place) and then removed.
fn install(tmp: &Path, dest: &Path) -> Result<()> {
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if fs::symlink_metadata(dest).is_err() {
        fs::rename(tmp, dest).map_err(io(dest))?;
        return fsync_dir(&parent);
    }
    if !(dest.is_dir() && (is_index_dir(dest) || dir_is_empty(dest))) {
        return Err(Error::DestinationOccupied { path: dest.to_path_buf() });
    }
    if exchange(tmp, dest) {
        // `tmp` now holds the old index.
        fsync_dir(&parent)?;
        let _ = fs::remove_dir_all(tmp);
        return Ok(());
    }
    let aside = tmp.with_extension("old");
    fs::rename(dest, &aside).map_err(io(dest))?;
    if let Err(err) = fs::rename(tmp, dest) {
        let _ = fs::rename(&aside, dest);
        return Err(Error::Io { path: dest.to_path_buf(), source: err });
    }
    fsync_dir(&parent)?;
    let _ = fs::remove_dir_all(&aside);
    Ok(())
}

#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> bool {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let (Ok(ca), Ok(cb)) = (CString::new(a.as_os_str().as_bytes()), CString::new(b.as_os_str().as_bytes())) else {
        return false;
    };
    const RENAME_EXCHANGE: libc::c_uint = 2;
    // SAFETY: both paths are valid NUL-terminated C strings that outlive the call;
    // renameat2 only reads them.
    let r = unsafe { libc::syscall(libc::SYS_renameat2, libc::AT_FDCWD, ca.as_ptr(), libc::AT_FDCWD, cb.as_ptr(), RENAME_EXCHANGE) };
    r == 0
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> bool {
    false
}
