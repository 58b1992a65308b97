//! On-disk format: round trips, corruption of every section, truncation, magic, version,
//! fingerprint, atomic replacement, duplicate ids, fuzzing.

mod common;
use common::*;
use proptest::prelude::*;
use rmx_index::{BuildMode, Error, HnswParams, Index, IndexWriter, Precision, SearchMode, DATA_FILE};
use std::path::Path;

fn small_vecs(seed: u64, n: usize, dim: usize) -> Vec<Vec<f32>> {
    let mut rng = Rng(seed);
    clustered_unit(&mut rng, n, 0, dim, 8).0
}

fn hnsw_opts(p: Precision) -> rmx_index::IndexOptions {
    let mut o = opts(p, BuildMode::Hnsw);
    o.hnsw = HnswParams { m: 6, ef_construction: 32, ef_search: 24 };
    o
}

fn data(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join(DATA_FILE)).unwrap()
}

fn write_data(dir: &Path, b: &[u8]) {
    std::fs::write(dir.join(DATA_FILE), b).unwrap();
}

/// Exercise everything that reads the mapping; must never panic.
fn exercise(idx: &Index) {
    let dim = idx.dim();
    let q: Vec<f32> = (0..dim).map(|i| ((i * 7 % 11) as f32 - 5.0) / 10.0).collect();
    let _ = idx.search(&q, 10);
    let _ = idx.search_with_ef(&q, 5, 200);
    let _ = idx.search_exact(&q, 10);
    for r in 0..idx.len().min(64) + 1 {
        if let Some(rel) = idx.relation(r) {
            let _ = idx.row_of(rel.id);
        }
        let _ = idx.vector(r);
    }
    let _ = idx.row_of("P3");
    let _ = idx.info().to_string();
}

#[test]
fn round_trip_f32_and_f16_exact_and_hnsw() {
    let vecs = small_vecs(1, 300, 24);
    for p in [Precision::F32, Precision::F16] {
        for mode in [BuildMode::Exact, BuildMode::Hnsw] {
            let t = TmpDir::new("rt");
            let dir = t.join("idx");
            let mut o = hnsw_opts(p);
            o.mode = mode;
            let info = build(&dir, &vecs, o);
            let idx = Index::open(&dir).unwrap();
            assert_eq!(idx.info(), info);
            idx.verify().unwrap();
            assert_eq!(idx.len(), 300);
            assert_eq!(idx.dim(), 24);
            assert_eq!(idx.precision(), p);
            assert_eq!(idx.fingerprint(), "test-encoder v1");
            assert_eq!(info.format_version, rmx_index::FORMAT_VERSION);
            assert_eq!(info.file_size, std::fs::metadata(dir.join(DATA_FILE)).unwrap().len());
            assert_eq!(idx.mode(), if mode == BuildMode::Exact { SearchMode::Exact } else { SearchMode::Hnsw });
            assert!(info.sections.iter().all(|s| s.offset % 64 == 0));
            for (i, v) in vecs.iter().enumerate() {
                let rel = idx.relation(i).unwrap();
                assert_eq!((rel.id, rel.name, rel.meta), (id(i).as_str(), name(i).as_str(), meta(i).as_str()));
                assert_eq!(idx.row_of(&id(i)), Some(i));
                assert_eq!(idx.relation_by_id(&id(i)).unwrap(), (i, rel));
                let back = idx.vector(i).unwrap();
                match p {
                    Precision::F32 => assert_eq!(&back, v),
                    Precision::F16 => {
                        let want: Vec<f32> = v.iter().map(|x| half::f16::from_f32(*x).to_f32()).collect();
                        assert_eq!(back, want);
                    }
                }
            }
            assert_eq!(idx.row_of("nope"), None);
            assert!(idx.relation(300).is_none() && idx.vector(300).is_none());
            let hits = idx.search(&vecs[17], 3).unwrap();
            assert_eq!(hits[0].row, 17);
            let s = info.to_string();
            assert!(s.contains("relations    300") && s.contains("test-encoder v1"), "{s}");
        }
    }
}

#[test]
fn fingerprint_mismatch_is_a_clear_error() {
    let t = TmpDir::new("fp");
    let dir = t.join("idx");
    build(&dir, &small_vecs(2, 10, 8), opts(Precision::F32, BuildMode::Exact));
    Index::open_expecting(&dir, "test-encoder v1").unwrap();
    match Index::open_expecting(&dir, "other-model v2") {
        Err(Error::ModelMismatch { index, expected, .. }) => {
            assert_eq!(index, "test-encoder v1");
            assert_eq!(expected, "other-model v2");
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("opened"),
    }
    let msg = Index::open_expecting(&dir, "x").err().unwrap().to_string();
    assert!(msg.contains("test-encoder v1") && msg.contains("\"x\"") && msg.contains("idx"), "{msg}");
}

#[test]
fn duplicate_ids_rejected_naming_the_id() {
    let t = TmpDir::new("dup");
    let dir = t.join("idx");
    let mut w = IndexWriter::create(&dir, 4, opts(Precision::F32, BuildMode::Exact)).unwrap();
    w.add("P26", "spouse", "{}", &[1.0, 0.0, 0.0, 0.0]).unwrap();
    w.add("P22", "father", "{}", &[0.0, 1.0, 0.0, 0.0]).unwrap();
    let e = w.add("P26", "spouse again", "{}", &[0.0, 0.0, 1.0, 0.0]).unwrap_err();
    assert!(matches!(&e, Error::DuplicateId { id, first: 0, second: 2 } if id == "P26"), "{e}");
    assert!(e.to_string().contains("\"P26\""));
    // the writer is still usable and the rejected record is not stored
    w.add("P27", "x", "{}", &[0.0, 0.0, 1.0, 0.0]).unwrap();
    w.finish().unwrap();
    let idx = Index::open(&dir).unwrap();
    assert_eq!(idx.len(), 3);
    assert_eq!(idx.row_of("P27"), Some(2));
}

#[test]
fn bad_records_rejected() {
    let t = TmpDir::new("bad");
    let mut w = IndexWriter::create(t.join("idx"), 4, opts(Precision::F32, BuildMode::Exact)).unwrap();
    assert!(matches!(w.add("a", "", "", &[1.0; 3]), Err(Error::DimMismatch { expected: 4, got: 3, .. })));
    assert!(matches!(w.add("a", "", "", &[1.0, f32::INFINITY, 0.0, 0.0]), Err(Error::NonFinite { position: 1, .. })));
    assert!(IndexWriter::create(t.join("x"), 0, opts(Precision::F32, BuildMode::Exact)).is_err());
}

#[test]
fn wrong_magic_newer_version_truncated() {
    let t = TmpDir::new("magic");
    let dir = t.join("idx");
    build(&dir, &small_vecs(3, 50, 8), hnsw_opts(Precision::F32));
    let good = data(&dir);

    let mut b = good.clone();
    b[0] = b'X';
    write_data(&dir, &b);
    assert!(matches!(Index::open(&dir), Err(Error::BadMagic { .. })));

    let mut b = good.clone();
    b[8..12].copy_from_slice(&(rmx_index::FORMAT_VERSION + 1).to_le_bytes());
    write_data(&dir, &b);
    match Index::open(&dir) {
        Err(e @ Error::NewerVersion { found, supported, .. }) => {
            assert_eq!((found, supported), (rmx_index::FORMAT_VERSION + 1, rmx_index::FORMAT_VERSION));
            assert!(e.to_string().contains("newer"), "{e}")
        }
        other => panic!("{:?}", other.map(|_| ())),
    }

    for len in [0, 3, 8, 15, 100, 511, 512, 600, good.len() / 2, good.len() - 1] {
        write_data(&dir, &good[..len]);
        let e = Index::open(&dir).err().unwrap_or_else(|| panic!("opened truncated {len}"));
        assert!(matches!(e, Error::Corrupt { .. } | Error::BadMagic { .. }), "{len}: {e}");
    }
    write_data(&dir, &good);
    Index::open(&dir).unwrap().verify().unwrap();

    // not an index directory at all
    assert!(matches!(Index::open(t.join("missing")), Err(Error::Io { .. })));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn truncation_at_random_lengths_is_detected(cut in 0.0f64..1.0) {
        let t = TmpDir::new("trunc");
        let dir = t.join("idx");
        build(&dir, &small_vecs(4, 80, 8), hnsw_opts(Precision::F16));
        let good = data(&dir);
        let len = ((good.len() as f64) * cut) as usize;
        write_data(&dir, &good[..len]);
        prop_assert!(Index::open(&dir).is_err());
    }
}

/// One flipped byte in each section: header and metadata are caught on open; vectors, graph
/// and block checksums by the first search that reads the damaged block (an error naming
/// the section, never an answer) and by verify().
#[test]
fn flipped_byte_in_each_section_is_detected() {
    for p in [Precision::F32, Precision::F16] {
        let t = TmpDir::new("flip");
        let dir = t.join("idx");
        let info = build(&dir, &small_vecs(5, 200, 16), hnsw_opts(p));
        let good = data(&dir);
        let mut places: Vec<(&str, usize, usize)> = vec![("header", 0, info.header_len)];
        for s in &info.sections {
            places.push((s.name, s.offset as usize, s.len as usize));
        }
        for (name, off, len) in places {
            assert!(len > 0, "{name} empty");
            for pos in [off, off + len / 2, off + len - 1] {
                for bit in [0x01u8, 0x80] {
                    let mut b = good.clone();
                    b[pos] ^= bit;
                    write_data(&dir, &b);
                    let on_open = matches!(name, "header" | "meta offsets" | "meta heap" | "id table");
                    // The checksums of metadata blocks are read on open, the others later.
                    let either = name == "block checksums";
                    match Index::open(&dir) {
                        Err(e) => {
                            assert!(on_open || either, "{name}@{pos}: unexpected open error {e}");
                            assert!(!either || matches!(e, Error::Corrupt { section: "block checksums", .. }), "{e}");
                            let s = e.to_string();
                            assert!(s.contains("index.rmx") || s.contains("idx"), "{s}");
                        }
                        Ok(idx) => {
                            assert!(!on_open, "{name}@{pos}^{bit:#x}: not detected on open");
                            // Each of these sections is one block here, which the search reads.
                            let q = vec![0.25f32; idx.dim()];
                            match idx.search(&q, 10) {
                                Err(Error::Corrupt { section, .. }) => assert_eq!(section, name, "{name}@{pos}"),
                                other => panic!("{name}@{pos}^{bit:#x}: search gave {other:?}"),
                            }
                            assert!(matches!(idx.search_exact(&q, 3), Err(Error::Corrupt { .. })), "{name}@{pos}: later searches fail too");
                            exercise(&idx);
                            match idx.verify() {
                                Err(Error::Corrupt { section, .. }) => assert_eq!(section, name),
                                other => panic!("{name}@{pos}: verify gave {other:?}"),
                            }
                        }
                    }
                }
            }
        }
        write_data(&dir, &good);
        Index::open(&dir).unwrap().verify().unwrap();
    }
}

/// Rewrite the header checksum after editing header fields, so the structural checks
/// themselves (not the checksum) must reject bad values.
fn reseal(b: &mut [u8]) {
    let hlen = u32::from_le_bytes(b[12..16].try_into().unwrap()) as usize;
    let hlen = hlen.min(b.len());
    b[56..64].fill(0);
    let sum = rmx_index::xxh64(&b[..hlen], 0);
    b[56..64].copy_from_slice(&sum.to_le_bytes());
}

#[test]
fn structural_checks_reject_resealed_bad_headers() {
    let t = TmpDir::new("reseal");
    let dir = t.join("idx");
    build(&dir, &small_vecs(6, 100, 8), hnsw_opts(Precision::F32));
    let good = data(&dir);
    let edits: Vec<(&str, usize, Vec<u8>)> = vec![
        ("count", 24, 1_000_000u64.to_le_bytes().to_vec()),
        ("count", 24, 99u64.to_le_bytes().to_vec()),
        ("dim", 32, 9u32.to_le_bytes().to_vec()),
        ("dim", 32, 0u32.to_le_bytes().to_vec()),
        ("precision", 36, vec![7]),
        ("mode", 37, vec![9]),
        ("fp len", 40, 100_000u32.to_le_bytes().to_vec()),
        ("m", 64, 0u32.to_le_bytes().to_vec()),
        ("m0", 68, 1000u32.to_le_bytes().to_vec()),
        ("entry", 80, 100u32.to_le_bytes().to_vec()),
        ("max level", 84, 200u32.to_le_bytes().to_vec()),
        ("upper records", 88, u64::MAX.to_le_bytes().to_vec()),
        ("vectors offset", 128 + 8, 3u64.to_le_bytes().to_vec()),
        ("vectors len", 128 + 16, u64::MAX.to_le_bytes().to_vec()),
        ("graph offset", 128 + 5 * 32 + 8, (1u64 << 40).to_le_bytes().to_vec()),
        ("file len", 16, (good.len() as u64 + 64).to_le_bytes().to_vec()),
    ];
    for (what, off, bytes) in edits {
        let mut b = good.clone();
        b[off..off + bytes.len()].copy_from_slice(&bytes);
        reseal(&mut b);
        write_data(&dir, &b);
        assert!(matches!(Index::open(&dir), Err(Error::Corrupt { .. })), "{what}: accepted");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random byte flips anywhere (optionally with the header re-sealed): open may fail,
    /// but nothing panics, and a successful open is followed by searches and verify().
    #[test]
    fn fuzz_flips_never_panic(
        flips in proptest::collection::vec((0.0f64..1.0, 1u8..=255), 1..12),
        graph_only in any::<bool>(),
        resealed in any::<bool>(),
        f16 in any::<bool>(),
    ) {
        let t = TmpDir::new("fuzz");
        let dir = t.join("idx");
        let p = if f16 { Precision::F16 } else { Precision::F32 };
        let info = build(&dir, &small_vecs(7, 150, 12), hnsw_opts(p));
        let mut b = data(&dir);
        let (lo, hi) = if graph_only {
            (info.sections[4].offset as usize, b.len())
        } else {
            (0, b.len())
        };
        for (at, x) in flips {
            let pos = lo + ((hi - lo - 1) as f64 * at) as usize;
            if resealed && (56..64).contains(&pos) { continue; }
            b[pos] ^= x;
        }
        if resealed {
            reseal(&mut b);
        }
        write_data(&dir, &b);
        if let Ok(idx) = Index::open(&dir) {
            exercise(&idx);
            let _ = idx.verify();
        }
    }
}

#[test]
fn failed_rebuild_leaves_the_old_index_intact() {
    let t = TmpDir::new("atomic");
    let dir = t.join("idx");
    let old = small_vecs(8, 60, 8);
    build(&dir, &old, opts(Precision::F32, BuildMode::Exact));
    let before = data(&dir);

    // 1. a build abandoned after an error (duplicate id), writer dropped
    {
        let mut w = IndexWriter::create(&dir, 8, opts(Precision::F32, BuildMode::Exact)).unwrap();
        w.add("A", "", "{}", &old[0]).unwrap();
        assert!(w.add("A", "", "{}", &old[1]).is_err());
    }
    // 2. a build that fails inside finish() (HNSW over no vectors)
    let w = IndexWriter::create(&dir, 8, opts(Precision::F32, BuildMode::Hnsw)).unwrap();
    assert!(w.finish().is_err());
    // 3. a build with the wrong dimension for the records
    {
        let mut w = IndexWriter::create(&dir, 9, opts(Precision::F32, BuildMode::Exact)).unwrap();
        assert!(w.add("A", "", "{}", &old[0]).is_err());
    }
    assert_eq!(data(&dir), before);
    let idx = Index::open(&dir).unwrap();
    idx.verify().unwrap();
    assert_eq!(idx.len(), 60);
    // no temporary directories left behind
    let leftovers: Vec<_> = std::fs::read_dir(&t.0).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");

    // a successful rebuild replaces it, while the old mapping stays readable
    let new = small_vecs(9, 30, 8);
    build(&dir, &new, hnsw_opts(Precision::F16));
    assert_eq!(idx.len(), 60);
    assert_eq!(idx.relation(59).unwrap().id, "P59");
    let idx2 = Index::open(&dir).unwrap();
    assert_eq!((idx2.len(), idx2.precision()), (30, Precision::F16));
    let leftovers: Vec<_> = std::fs::read_dir(&t.0).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

#[test]
fn refuses_to_replace_a_non_index_directory() {
    let t = TmpDir::new("occupied");
    let dir = t.join("photos");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cat.jpg"), b"meow").unwrap();
    assert!(matches!(IndexWriter::create(&dir, 4, opts(Precision::F32, BuildMode::Exact)), Err(Error::DestinationOccupied { .. })));
    std::fs::write(t.join("file"), b"x").unwrap();
    assert!(IndexWriter::create(t.join("file"), 4, opts(Precision::F32, BuildMode::Exact)).is_err());
    assert_eq!(std::fs::read(dir.join("cat.jpg")).unwrap(), b"meow");
}

/// A damaged block fails only the reads that touch it: other rows of the same section are
/// still served, and every search that reads it reports the block.
#[test]
fn blocks_are_verified_when_first_read() {
    let t = TmpDir::new("blocks");
    let dir = t.join("idx");
    // 2,000 × 64 f32 = 500 KiB of vectors: many blocks (4 KiB as written; readers take others).
    let info = build(&dir, &small_vecs(6, 2000, 64), opts(Precision::F32, BuildMode::Exact));
    let vectors = &info.sections[0];
    let row_bytes = 64 * 4;
    let mut b = data(&dir);
    let damaged_row = 5 * (1 << rmx_index::BLOCK_SHIFT) / row_bytes + 3;
    b[vectors.offset as usize + damaged_row * row_bytes + 17] ^= 0x04;
    write_data(&dir, &b);
    let idx = Index::open(&dir).unwrap();
    assert!(idx.vector(0).is_some() && idx.vector(2000 - 1).is_some());
    assert!(idx.vector(damaged_row).is_none());
    match idx.search(&vec![0.125f32; 64], 5) {
        Err(e @ Error::Corrupt { section: "vectors", .. }) => assert!(e.to_string().contains("block 5"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(idx.verify().is_err());
    // A fresh index over the intact file answers.
    write_data(&dir, &data_of(&b, vectors.offset as usize + damaged_row * row_bytes + 17));
    let idx = Index::open(&dir).unwrap();
    assert_eq!(idx.search(&vec![0.125f32; 64], 5).unwrap().len(), 5);
    idx.verify().unwrap();
}

/// `b` with the bit flipped back at `pos`.
fn data_of(b: &[u8], pos: usize) -> Vec<u8> {
    let mut b = b.to_vec();
    b[pos] ^= 0x04;
    b
}

/// A version-1 file (no block checksums: this build's file without its last section) still
/// opens, verified whole on open, and answers as the version-2 file does; damage anywhere
/// fails the open.
#[test]
fn version_1_files_are_verified_on_open() {
    let t = TmpDir::new("v1");
    let dir = t.join("idx");
    let info = build(&dir, &small_vecs(7, 300, 16), hnsw_opts(Precision::F32));
    let q = vec![0.3f32; 16];
    let v2_answer = Index::open(&dir).unwrap().search(&q, 5).unwrap();
    let sums = &info.sections[7];
    assert_eq!(sums.name, "block checksums");
    let upper = &info.sections[6];
    let mut v1 = data(&dir)[..(upper.offset + upper.len) as usize].to_vec();
    v1[8..12].copy_from_slice(&1u32.to_le_bytes());
    let len = v1.len() as u64;
    v1[16..24].copy_from_slice(&len.to_le_bytes());
    v1[44..48].copy_from_slice(&7u32.to_le_bytes());
    v1[48..52].fill(0);
    v1[128 + 7 * 32..128 + 8 * 32].fill(0);
    reseal(&mut v1);
    write_data(&dir, &v1);
    let idx = Index::open(&dir).unwrap();
    assert_eq!(idx.info().format_version, 1);
    assert_eq!(idx.search(&q, 5).unwrap(), v2_answer);
    idx.verify().unwrap();
    let mut damaged = v1.clone();
    damaged[info.sections[0].offset as usize + 40] ^= 0x10;
    write_data(&dir, &damaged);
    assert!(matches!(Index::open(&dir), Err(Error::Corrupt { section: "vectors", .. })));
}

#[test]
fn open_without_meta_verification() {
    let t = TmpDir::new("lazy");
    let dir = t.join("idx");
    let info = build(&dir, &small_vecs(10, 40, 8), opts(Precision::F32, BuildMode::Exact));
    let mut b = data(&dir);
    let heap = &info.sections[2];
    // make one name invalid UTF-8
    let pos = heap.offset as usize + 3;
    b[pos] = 0xFF;
    write_data(&dir, &b);
    assert!(Index::open(&dir).is_err());
    let lazy = rmx_index::OpenOptions { expected_fingerprint: None, verify_meta: false };
    let idx = Index::open_with(&dir, &lazy).unwrap();
    exercise(&idx);
    assert!(idx.relation(0).is_none());
    assert!(matches!(idx.read_relation(0), Err(Error::Corrupt { section: "meta heap", .. })));
    assert!(idx.verify().is_err());
}
