//! An index data file of arbitrary bytes, opened (with and without the metadata checks) and
//! searched every way. The first input byte picks what is done to the rest first: nothing,
//! the header checksum recomputed, or every checksum recomputed (damage no checksum sees).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rmx_index::{Index, OpenOptions};
use std::sync::OnceLock;

fn dir() -> &'static std::path::Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| rmx_fuzz::scratch_dir("index"))
}

fn exercise(idx: &Index) {
    let q: Vec<f32> = (0..idx.dim()).map(|i| ((i * 7 % 11) as f32 - 5.0) / 10.0).collect();
    let _ = idx.search(&q, 10);
    let _ = idx.search_with_ef(&q, 5, 64);
    let _ = idx.search_exact(&q, 3);
    for row in 0..idx.len().min(16) + 1 {
        if let Some(r) = idx.relation(row) {
            let _ = idx.row_of(r.id);
        }
        let _ = idx.read_relation(row);
        let _ = idx.read_vector(row);
    }
    let _ = idx.row_of("R1");
    let _ = idx.info().to_string();
    let _ = idx.verify();
    let _ = idx.check_intact();
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut bytes = rest.to_vec();
    match mode % 3 {
        0 => {}
        1 => rmx_fuzz::reseal_header(&mut bytes),
        _ => rmx_fuzz::reseal_all(&mut bytes),
    }
    std::fs::write(dir().join(rmx_index::DATA_FILE), &bytes).expect("write scratch index");
    for verify_meta in [true, false] {
        if let Ok(idx) = Index::open_with(dir(), &OpenOptions { expected_fingerprint: None, verify_meta }) {
            exercise(&idx);
        }
    }
});
