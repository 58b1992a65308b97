#![allow(dead_code)]
//! Shared helpers for the integration tests.

use rmx_index::{BuildMode, HnswParams, Index, IndexOptions, IndexWriter, Precision};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A temporary directory removed on drop.
pub struct TmpDir(pub PathBuf);

impl TmpDir {
    pub fn new(tag: &str) -> TmpDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!("rmx-index-test-{}-{tag}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TmpDir(p)
    }
    pub fn join(&self, s: &str) -> PathBuf {
        self.0.join(s)
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// xorshift64* generator (deterministic, no dependency).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn normal(&mut self) -> f32 {
        let u = self.uniform().max(1e-300);
        let v = self.uniform();
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

pub fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// `n` unit vectors, uniformly random directions.
pub fn random_unit(rng: &mut Rng, n: usize, dim: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| {
            let mut v: Vec<f32> = (0..dim).map(|_| rng.normal()).collect();
            normalize(&mut v);
            v
        })
        .collect()
}

/// `n` data and `nq` query unit vectors around the same `clusters` Gaussian centres (noise
/// comparable to the centre).
pub fn clustered_unit(rng: &mut Rng, n: usize, nq: usize, dim: usize, clusters: usize) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let centres = random_unit(rng, clusters, dim);
    let sigma = 1.0 / (dim as f32).sqrt();
    let mut all: Vec<Vec<f32>> = (0..n + nq)
        .map(|_| {
            let c = &centres[rng.below(clusters)];
            let mut v: Vec<f32> = c.iter().map(|x| x + sigma * rng.normal()).collect();
            normalize(&mut v);
            v
        })
        .collect();
    let q = all.split_off(n);
    (all, q)
}

pub fn opts(precision: Precision, mode: BuildMode) -> IndexOptions {
    IndexOptions { precision, mode, hnsw: HnswParams::default(), fingerprint: "test-encoder v1".into(), threads: 2, seed: 1 }
}

pub fn id(i: usize) -> String {
    format!("P{i}")
}
pub fn name(i: usize) -> String {
    format!("relation number {i} ✓")
}
pub fn meta(i: usize) -> String {
    format!("{{\"description\":\"synthetic {i}\",\"head\":[\"person\"],\"tail\":[]}}")
}

/// Build an index at `dir` from `vecs` with the standard ids/names/metas.
pub fn build(dir: &Path, vecs: &[Vec<f32>], o: IndexOptions) -> rmx_index::Info {
    let dim = vecs.first().map(|v| v.len()).unwrap_or(8);
    let mut w = IndexWriter::create(dir, dim, o).unwrap();
    for (i, v) in vecs.iter().enumerate() {
        assert_eq!(w.add(&id(i), &name(i), &meta(i), v).unwrap(), i);
    }
    w.finish().unwrap()
}

/// Exact top-k oracle on the index's own stored vectors and dot kernel (bit-identical
/// scores): sort by score desc, row asc.
pub fn oracle(idx: &Index, q: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut all: Vec<(usize, f32)> = (0..idx.len()).map(|r| (r, rmx_index::simd::dot(q, &idx.vector(r).unwrap()))).collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

/// Exact top-k in f64 on the given (unquantised) vectors.
pub fn oracle_f64(vecs: &[Vec<f32>], q: &[f32], k: usize) -> Vec<(usize, f64)> {
    let mut all: Vec<(usize, f64)> = vecs.iter().enumerate().map(|(r, v)| (r, v.iter().zip(q).map(|(a, b)| *a as f64 * *b as f64).sum())).collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

pub fn recall_at(idx: &Index, vecs: &[Vec<f32>], queries: &[Vec<f32>], k: usize) -> f64 {
    let mut hit = 0usize;
    for q in queries {
        let truth: Vec<usize> = oracle(idx, q, k).into_iter().map(|x| x.0).collect();
        let got = idx.search(q, k).unwrap();
        assert!(got.windows(2).all(|w| w[0].score >= w[1].score));
        hit += got.iter().filter(|h| truth.contains(&h.row)).count();
    }
    let _ = vecs;
    hit as f64 / (k * queries.len()) as f64
}
