//! Criterion benches: kernels (scalar vs AVX2), exact search at 80 / 1,000 / 11,665
//! relations (f32 and f16), HNSW search at 5,000, and open cost.
//!
//! `cargo bench -p rmx-index --bench search` (indexes are built under the temp dir).
//! The 100k comparison with hnswlib is `benches/compare_hnswlib.py`; open cost up to 1M
//! relations is `cargo run --release -p rmx-index --example bench_ann -- scale`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use half::f16;
use rmx_index::{BuildMode, HnswParams, Index, IndexOptions, IndexWriter, Precision};
use std::hint::black_box;
use std::path::PathBuf;

const DIM: usize = 1152;

struct Rng(u64);
impl Rng {
    fn normal(&mut self) -> f32 {
        let mut u = || {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        };
        let (a, b) = (u().max(1e-300), u());
        ((-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()) as f32
    }
}

/// Clustered unit vectors (100 per cluster), deterministic.
fn data(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut r = Rng(seed * 2 + 1);
    let clusters = (n / 100).max(1);
    let centres: Vec<Vec<f32>> = (0..clusters).map(|_| (0..DIM).map(|_| r.normal()).collect()).collect();
    (0..n)
        .map(|i| {
            let mut v: Vec<f32> = centres[i % clusters].iter().map(|c| c + r.normal()).collect();
            let s = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= s);
            v
        })
        .collect()
}

fn build(n: usize, precision: Precision, mode: BuildMode) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rmx-index-bench-{n}-{precision}-{mode:?}"));
    if Index::open(&dir).map(|i| i.len() == n).unwrap_or(false) {
        return dir;
    }
    let opts =
        IndexOptions { precision, mode, hnsw: HnswParams { m: 16, ef_construction: 100, ef_search: 128 }, fingerprint: "bench".into(), threads: 2, seed: 1 };
    let mut w = IndexWriter::create(&dir, DIM, opts).unwrap();
    for (i, v) in data(n, 1).iter().enumerate() {
        w.add(&format!("P{i}"), &format!("rel {i}"), "{}", v).unwrap();
    }
    w.finish().unwrap();
    dir
}

fn kernels(c: &mut Criterion) {
    let mut g = c.benchmark_group("dot_1152");
    let v = data(2, 9);
    let (a, b) = (&v[0], &v[1]);
    let bh: Vec<f16> = b.iter().map(|x| f16::from_f32(*x)).collect();
    g.throughput(Throughput::Elements(DIM as u64));
    g.bench_function("f32_scalar", |x| x.iter(|| rmx_index::simd::dot_f32_scalar(black_box(a), black_box(b))));
    g.bench_function("f16_scalar", |x| x.iter(|| rmx_index::simd::dot_f16_scalar(black_box(a), black_box(&bh))));
    if let Some(k) = rmx_index::simd::avx2_kernels() {
        g.bench_function("f32_avx2", |x| x.iter(|| (k.dot_f32)(black_box(a), black_box(b))));
        g.bench_function("f16_avx2_f16c", |x| x.iter(|| (k.dot_f16)(black_box(a), black_box(&bh))));
    }
    g.finish();
}

fn exact(c: &mut Criterion) {
    let q = data(1, 77).pop().unwrap();
    let mut g = c.benchmark_group("exact_search_k10");
    for n in [80usize, 1000, 11_665] {
        for p in [Precision::F32, Precision::F16] {
            let idx = Index::open(build(n, p, BuildMode::Exact)).unwrap();
            g.throughput(Throughput::Elements(n as u64));
            g.bench_with_input(BenchmarkId::new(format!("{p}"), n), &n, |x, _| x.iter(|| idx.search(black_box(&q), 10).unwrap()));
        }
    }
    g.finish();
}

fn hnsw(c: &mut Criterion) {
    let n = 5000;
    let queries = data(64, 5);
    let mut g = c.benchmark_group("hnsw_search_k10_n5000");
    for p in [Precision::F32, Precision::F16] {
        let idx = Index::open(build(n, p, BuildMode::Hnsw)).unwrap();
        for ef in [32usize, 128] {
            g.bench_function(format!("{p}_ef{ef}"), |x| {
                let mut i = 0;
                x.iter(|| {
                    i = (i + 1) % queries.len();
                    idx.search_with_ef(black_box(&queries[i]), 10, ef).unwrap()
                })
            });
        }
        g.bench_function(format!("{p}_exact"), |x| {
            let mut i = 0;
            x.iter(|| {
                i = (i + 1) % queries.len();
                idx.search_exact(black_box(&queries[i]), 10).unwrap()
            })
        });
    }
    g.finish();
}

fn open(c: &mut Criterion) {
    let mut g = c.benchmark_group("open");
    for (n, mode) in [(80usize, BuildMode::Exact), (11_665, BuildMode::Exact), (5000, BuildMode::Hnsw)] {
        let dir = build(n, Precision::F32, mode);
        g.bench_function(format!("{n}_{mode:?}"), |x| x.iter(|| Index::open(black_box(&dir)).unwrap()));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = kernels, exact, hnsw, open
}
criterion_main!(benches);
