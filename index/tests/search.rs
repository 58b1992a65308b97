//! Search correctness: exact search against brute-force oracles, HNSW recall, f16 cost,
//! the scalar fallback, concurrent searching.

mod common;
use common::*;
use proptest::prelude::*;
use rmx_index::{BuildMode, HnswParams, Index, Precision, SearchMode};

fn exact_matches_oracle(vecs: &[Vec<f32>], queries: &[Vec<f32>], k: usize, precision: Precision) {
    let t = TmpDir::new("exact");
    let dir = t.join("idx");
    build(&dir, vecs, opts(precision, BuildMode::Exact));
    let idx = Index::open(&dir).unwrap();
    assert_eq!(idx.mode(), SearchMode::Exact);
    for q in queries {
        let got: Vec<(usize, f32)> = idx.search(q, k).unwrap().iter().map(|h| (h.row, h.score)).collect();
        // 1. bit-identical to the brute-force oracle on the same kernel: scores and order.
        assert_eq!(got, oracle(&idx, q, k));
        // 2. scores agree with an f64 computation on the original vectors.
        for h in &got {
            let exact: f64 = vecs[h.0].iter().zip(q).map(|(a, b)| *a as f64 * *b as f64).sum();
            let mag: f64 = vecs[h.0].iter().zip(q).map(|(a, b)| (*a as f64 * *b as f64).abs()).sum();
            // f16 rounds each component by ≤ 2^-11 relative; f32 accumulation error is tiny
            let tol = if precision == Precision::F16 { 1e-3 * mag + 1e-6 } else { 1e-5 * (mag + 1.0) };
            assert!((h.1 as f64 - exact).abs() <= tol, "score {} vs {exact}", h.1);
        }
        // the k-th best f64 score is matched up to rounding
        if precision == Precision::F32 && !got.is_empty() {
            let o = oracle_f64(vecs, q, k);
            assert!((got.last().unwrap().1 as f64 - o.last().unwrap().1).abs() < 1e-5);
        }
        // search_exact is the same thing
        let e: Vec<(usize, f32)> = idx.search_exact(q, k).unwrap().iter().map(|h| (h.row, h.score)).collect();
        assert_eq!(got, e);
    }
}

fn arb_case() -> impl Strategy<Value = (Vec<Vec<f32>>, Vec<Vec<f32>>, usize)> {
    (1usize..40, 0usize..120, 0usize..15, 0u64..u64::MAX).prop_map(|(dim, n, k, seed)| {
        let mut rng = Rng(seed | 1);
        let mut vecs: Vec<Vec<f32>> = (0..n).map(|_| (0..dim).map(|_| rng.normal()).collect()).collect();
        // duplicates make exact ties: they must come out by row
        if n > 4 {
            for _ in 0..n / 4 {
                let (a, b) = (rng.below(n), rng.below(n));
                vecs[a] = vecs[b].clone();
            }
        }
        let queries = (0..3).map(|_| (0..dim).map(|_| rng.normal()).collect()).collect();
        (vecs, queries, k)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn exact_search_equals_brute_force((vecs, queries, k) in arb_case()) {
        if vecs.is_empty() {
            // dim cannot be taken from the vectors: exercised in `empty_index`
            return Ok(());
        }
        exact_matches_oracle(&vecs, &queries, k, Precision::F32);
    }

    #[test]
    fn exact_search_equals_brute_force_f16((vecs, queries, k) in arb_case()) {
        if vecs.is_empty() {
            return Ok(());
        }
        let vecs: Vec<Vec<f32>> = vecs.iter().map(|v| v.iter().map(|x| x.clamp(-60000.0, 60000.0)).collect()).collect();
        exact_matches_oracle(&vecs, &queries, k, Precision::F16);
    }
}

#[test]
fn empty_index() {
    let t = TmpDir::new("empty");
    let dir = t.join("idx");
    let w = rmx_index::IndexWriter::create(&dir, 16, opts(Precision::F32, BuildMode::Auto)).unwrap();
    w.finish().unwrap();
    let idx = Index::open(&dir).unwrap();
    assert!(idx.is_empty());
    assert!(idx.search(&[0.5; 16], 10).unwrap().is_empty());
    assert!(idx.relation(0).is_none());
    assert!(idx.row_of("P1").is_none());
    idx.verify().unwrap();
}

#[test]
fn query_errors() {
    let t = TmpDir::new("qerr");
    let dir = t.join("idx");
    let mut rng = Rng(3);
    build(&dir, &random_unit(&mut rng, 10, 8), opts(Precision::F32, BuildMode::Exact));
    let idx = Index::open(&dir).unwrap();
    let e = idx.search(&[0.0; 7], 3).unwrap_err();
    assert!(e.to_string().contains("dimension mismatch"), "{e}");
    let mut q = vec![0.0; 8];
    q[2] = f32::NAN;
    assert!(matches!(idx.search(&q, 3), Err(rmx_index::Error::NonFinite { position: 2, .. })));
    assert!(idx.search(&[0.1; 8], 0).unwrap().is_empty());
    assert_eq!(idx.search(&[0.1; 8], 100).unwrap().len(), 10);
}

/// Recall@10 of HNSW at its default settings against exact search.
fn hnsw_recall(vecs: &[Vec<f32>], queries: &[Vec<f32>], precision: Precision) -> f64 {
    let t = TmpDir::new("hnsw");
    let dir = t.join("idx");
    build(&dir, vecs, opts(precision, BuildMode::Hnsw));
    let idx = Index::open(&dir).unwrap();
    assert_eq!(idx.mode(), SearchMode::Hnsw);
    idx.verify().unwrap();
    // HNSW hits carry exact scores of the stored vectors.
    for q in queries.iter().take(5) {
        for h in idx.search(q, 10).unwrap() {
            assert_eq!(h.score, rmx_index::simd::dot(q, &idx.vector(h.row).unwrap()));
        }
    }
    recall_at(&idx, vecs, queries, 10)
}

/// Per-case floor of HNSW recall@10 on 100 queries. Recall is a random variable of the data
/// and of the parallel build's interleaving: over 600 cases of these two properties it
/// averaged 0.998, and its worst cases were 0.970–0.976 (1 in ≈ 150 below 0.98, which was
/// the floor before and made CI fail now and then). A broken graph scores far below.
const RECALL_FLOOR: f64 = 0.95;

proptest! {
    #![proptest_config(ProptestConfig { cases: 3, ..ProptestConfig::default() })]

    #[test]
    fn hnsw_recall_random(seed in 0u64..u64::MAX, n in 1500usize..3000, dim in 24usize..64) {
        let mut rng = Rng(seed | 1);
        let vecs = random_unit(&mut rng, n, dim);
        let queries = random_unit(&mut rng, 100, dim);
        let r = hnsw_recall(&vecs, &queries, Precision::F32);
        prop_assert!(r >= RECALL_FLOOR, "recall@10 {r} (seed={seed} n={n} dim={dim})");
    }

    #[test]
    fn hnsw_recall_clustered(seed in 0u64..u64::MAX, n in 1500usize..3000, dim in 24usize..96, clusters in 5usize..60) {
        let mut rng = Rng(seed | 1);
        let (vecs, queries) = clustered_unit(&mut rng, n, 100, dim, clusters);
        let r = hnsw_recall(&vecs, &queries, Precision::F32);
        prop_assert!(r >= RECALL_FLOOR, "recall@10 {r} (seed={seed} n={n} dim={dim} clusters={clusters})");
    }
}

#[test]
fn hnsw_small_and_forced_modes() {
    // forced HNSW on a tiny set, including a single vector
    for n in [1usize, 2, 5, 40] {
        let t = TmpDir::new("tiny");
        let dir = t.join("idx");
        let mut rng = Rng(n as u64 + 9);
        let vecs = random_unit(&mut rng, n, 12);
        build(&dir, &vecs, opts(Precision::F32, BuildMode::Hnsw));
        let idx = Index::open(&dir).unwrap();
        assert_eq!(idx.mode(), SearchMode::Hnsw);
        idx.verify().unwrap();
        let q = &vecs[0];
        let got = idx.search(q, 10).unwrap();
        let want: Vec<usize> = oracle(&idx, q, 10).into_iter().map(|x| x.0).collect();
        assert_eq!(got.iter().map(|h| h.row).collect::<Vec<_>>(), want);
    }
    // Auto picks exact below the threshold
    let t = TmpDir::new("auto");
    let dir = t.join("idx");
    let mut rng = Rng(5);
    build(&dir, &random_unit(&mut rng, 100, 8), opts(Precision::F32, BuildMode::Auto));
    assert_eq!(Index::open(&dir).unwrap().mode(), SearchMode::Exact);
}

#[test]
fn auto_builds_hnsw_above_threshold() {
    let t = TmpDir::new("auto-big");
    let dir = t.join("idx");
    let mut rng = Rng(6);
    let n = rmx_index::AUTO_HNSW_THRESHOLD;
    let mut o = opts(Precision::F16, BuildMode::Auto);
    o.hnsw = HnswParams { m: 8, ef_construction: 40, ef_search: 32 };
    build(&dir, &clustered_unit(&mut rng, n, 0, 8, 20).0, o);
    let idx = Index::open(&dir).unwrap();
    assert_eq!(idx.mode(), SearchMode::Hnsw);
    assert_eq!(idx.info().hnsw.unwrap().m, 8);
}

/// f16 storage: what it costs in score error and recall (printed; bounds asserted).
#[test]
fn f16_cost() {
    let mut rng = Rng(11);
    let dim = 384;
    let (vecs, queries) = clustered_unit(&mut rng, 3000, 100, dim, 30);
    let t = TmpDir::new("f16");
    let (d32, d16) = (t.join("f32"), t.join("f16"));
    build(&d32, &vecs, opts(Precision::F32, BuildMode::Hnsw));
    build(&d16, &vecs, opts(Precision::F16, BuildMode::Hnsw));
    let (i32_, i16_) = (Index::open(&d32).unwrap(), Index::open(&d16).unwrap());
    assert!(i16_.info().sections[0].len * 2 == i32_.info().sections[0].len);
    let mut max_err = 0f64;
    let mut exact_agree = 0usize;
    for q in &queries {
        let a = i32_.search_exact(q, 10).unwrap();
        let b = i16_.search_exact(q, 10).unwrap();
        exact_agree += b.iter().filter(|h| a.iter().any(|x| x.row == h.row)).count();
        for h in &b {
            let s32: f64 = vecs[h.row].iter().zip(q).map(|(x, y)| *x as f64 * *y as f64).sum();
            max_err = max_err.max((h.score as f64 - s32).abs());
        }
    }
    let r16 = recall_at(&i16_, &vecs, &queries, 10);
    let r32 = recall_at(&i32_, &vecs, &queries, 10);
    let agree = exact_agree as f64 / (10 * queries.len()) as f64;
    eprintln!("f16 cost (dim {dim}): max |score error| {max_err:.2e}, exact top-10 overlap with f32 {agree:.4}, hnsw recall f32 {r32:.4} f16 {r16:.4}");
    assert!(max_err < 1e-3);
    assert!(agree > 0.97);
    assert!(r16 >= 0.98);
}

#[test]
fn concurrent_search_from_8_threads() {
    let mut rng = Rng(21);
    let (vecs, queries) = clustered_unit(&mut rng, 2000, 64, 32, 20);
    let t = TmpDir::new("threads");
    let dir = t.join("idx");
    build(&dir, &vecs, opts(Precision::F32, BuildMode::Hnsw));
    let idx = Index::open(&dir).unwrap();
    let want: Vec<_> = queries.iter().map(|q| idx.search(q, 10).unwrap()).collect();
    std::thread::scope(|s| {
        for t in 0..8 {
            let (idx, queries, want) = (&idx, &queries, &want);
            s.spawn(move || {
                for r in 0..20 {
                    let i = (t * 7 + r) % queries.len();
                    assert_eq!(idx.search(&queries[i], 10).unwrap(), want[i]);
                }
            });
        }
    });
}

/// Run the exact-search property test again in a child process on the scalar kernels.
#[test]
fn scalar_fallback_full_search() {
    if std::env::var("RMX_INDEX_SIMD").is_ok() {
        return; // already the child (or CI forcing a path)
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .env("RMX_INDEX_SIMD", "scalar")
        .args(["--exact", "exact_search_equals_brute_force", "--test-threads", "1"])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{s}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(s.contains("1 passed"), "{s}");
    assert_eq!(rmx_index::simd::SCALAR.level, rmx_index::simd::Level::Scalar);
}
