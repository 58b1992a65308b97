//! Benchmark driver for rmx-index on data shared with `benches/compare_hnswlib.py`.
//!
//! ```text
//! bench_ann build  --base X.npy --out DIR [--threads 2] [--m 16] [--efc 200] [--precision f32|f16] [--mode hnsw|exact]
//! bench_ann query  --index DIR --queries Q.npy --gt GT.npy [--k 10] [--efs 16,32,64] [--exact]
//! bench_ann scale  --dir DIR [--sizes 80,11665,1000000] [--dim 1152] [--precision f16] [--m 8] [--efc 40]
//! bench_ann threshold [--sizes 1000,2000,5000,10000,20000] [--efc 100]   (exact vs HNSW by size)
//! ```
//! Every subcommand prints one JSON object on stdout. `.npy` files: little-endian f4 (vectors)
//! or i4 (ground truth), C order, 2-D.

use rmx_index::{BuildMode, HnswParams, Index, IndexOptions, IndexWriter, OpenOptions, Precision};
use std::collections::HashMap;
use std::time::Instant;

fn args() -> (String, HashMap<String, String>) {
    let mut it = std::env::args().skip(1);
    let cmd = it.next().unwrap_or_default();
    let mut m = HashMap::new();
    let rest: Vec<String> = it.collect();
    let mut i = 0;
    while i < rest.len() {
        let k = rest[i].trim_start_matches("--").to_string();
        if i + 1 < rest.len() && !rest[i + 1].starts_with("--") {
            m.insert(k, rest[i + 1].clone());
            i += 2;
        } else {
            m.insert(k, "1".into());
            i += 1;
        }
    }
    (cmd, m)
}

/// Map a 2-D .npy of f4 or i4 (little-endian, C order); returns the mapping, the data
/// offset, rows, cols and kind.
fn map_npy(path: &str) -> (memmap2::Mmap, usize, usize, usize, char) {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // SAFETY: benchmark input file, not modified while mapped.
    let b = unsafe { memmap2::Mmap::map(&f) }.unwrap();
    assert_eq!(&b[..6], b"\x93NUMPY", "{path}: not .npy");
    let (hlen, hstart) =
        if b[6] == 1 { (u16::from_le_bytes([b[8], b[9]]) as usize, 10) } else { (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12) };
    let h = std::str::from_utf8(&b[hstart..hstart + hlen]).unwrap();
    assert!(h.contains("'fortran_order': False"), "{path}: must be C order");
    let kind = if h.contains("<f4") {
        'f'
    } else if h.contains("<i4") {
        'i'
    } else {
        panic!("{path}: need <f4 or <i4, header {h}")
    };
    let s = &h[h.find("'shape': (").unwrap() + 10..];
    let s = &s[..s.find(')').unwrap()];
    let dims: Vec<usize> = s.split(',').filter(|x| !x.trim().is_empty()).map(|x| x.trim().parse().unwrap()).collect();
    let (rows, cols) = (dims[0], *dims.get(1).unwrap_or(&1));
    (b, hstart + hlen, rows, cols, kind)
}

/// Read a 2-D .npy as raw 4-byte words.
fn read_npy(path: &str) -> (Vec<u32>, usize, usize, char) {
    let (b, off, rows, cols, kind) = map_npy(path);
    let words = b[off..off + rows * cols * 4].chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
    (words, rows, cols, kind)
}

fn read_f32(path: &str) -> (Vec<f32>, usize, usize) {
    let (w, r, c, k) = read_npy(path);
    assert_eq!(k, 'f');
    (w.into_iter().map(f32::from_bits).collect(), r, c)
}

fn peak_rss_mb() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_maxrss as f64 / 1024.0
}

/// Drop the data file's pages from the page cache (they are clean), so the next open and
/// query read from disk: "cold-ish".
fn evict(dir: &std::path::Path) {
    use std::os::unix::io::AsRawFd;
    if let Ok(f) = std::fs::File::open(dir.join(rmx_index::DATA_FILE)) {
        // SAFETY: valid fd for the lifetime of `f`; fadvise does not touch memory.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
}

fn opts(a: &HashMap<String, String>) -> IndexOptions {
    let g = |k: &str, d: usize| a.get(k).map(|v| v.parse().unwrap()).unwrap_or(d);
    IndexOptions {
        precision: if a.get("precision").map(|s| s.as_str()) == Some("f16") { Precision::F16 } else { Precision::F32 },
        mode: match a.get("mode").map(|s| s.as_str()) {
            Some("exact") => BuildMode::Exact,
            Some("auto") => BuildMode::Auto,
            _ => BuildMode::Hnsw,
        },
        hnsw: HnswParams { m: g("m", 16), ef_construction: g("efc", 200), ef_search: g("ef", 64) },
        fingerprint: "bench".into(),
        threads: g("threads", 2),
        seed: 7,
    }
}

fn build(a: &HashMap<String, String>) {
    // The input is streamed from a mapping (row by row), not loaded, so peak RSS is the
    // writer's: the mapped index file being built + graph + metadata.
    let (map, off, n, d, kind) = map_npy(&a["base"]);
    assert_eq!(kind, 'f');
    let out = &a["out"];
    let t = Instant::now();
    let mut w = IndexWriter::create(out, d, opts(a)).unwrap();
    let mut row = vec![0f32; d];
    for i in 0..n {
        let b = &map[off + i * d * 4..off + (i + 1) * d * 4];
        for (x, c) in row.iter_mut().zip(b.chunks_exact(4)) {
            *x = f32::from_le_bytes(c.try_into().unwrap());
        }
        w.add(&format!("R{i}"), &format!("relation {i}"), "{}", &row).unwrap();
        if i % 4096 == 0 {
            // keep the input's pages out of our RSS
            // SAFETY: advisory only; the mapping stays valid (pages re-read on demand).
            unsafe { libc::madvise(map.as_ptr() as *mut libc::c_void, map.len(), libc::MADV_DONTNEED) };
        }
    }
    drop(map);
    let info = w.finish().unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!("{{\"build_s\": {secs:.3}, \"peak_rss_mb\": {:.1}, \"file_size\": {}, \"count\": {n}, \"dim\": {d}}}", peak_rss_mb(), info.file_size);
}

fn recall(hits: &[rmx_index::Hit], gt: &[u32]) -> f64 {
    let c = hits.iter().filter(|h| gt.contains(&(h.row as u32))).count();
    c as f64 / gt.len() as f64
}

fn query(a: &HashMap<String, String>) {
    let dir = std::path::PathBuf::from(&a["index"]);
    let (q, nq, d) = read_f32(&a["queries"]);
    let (gt, gn, gk, _) = read_npy(&a["gt"]);
    assert_eq!(gn, nq);
    let k: usize = a.get("k").map(|v| v.parse().unwrap()).unwrap_or(10).min(gk);
    evict(&dir);
    let t = Instant::now();
    let idx = Index::open(&dir).unwrap();
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let first = idx.search(&q[..d], k).unwrap();
    let first_ms = t.elapsed().as_secs_f64() * 1e3;
    assert!(!first.is_empty());
    // warm the page cache: one pass of exact search touches every vector.
    for i in 0..nq.min(3) {
        idx.search_exact(&q[i * d..i * d + d], k).unwrap();
    }
    let efs: Vec<usize> = a.get("efs").map(|s| s.split(',').map(|x| x.parse().unwrap()).collect()).unwrap_or(vec![16, 24, 32, 48, 64, 96, 128]);
    let mut rows = Vec::new();
    let run = |f: &dyn Fn(&[f32]) -> Vec<rmx_index::Hit>| -> (f64, f64) {
        // one warm-up pass, then a timed pass
        for i in 0..nq.min(200) {
            f(&q[i * d..i * d + d]);
        }
        let t = Instant::now();
        let mut r = 0.0;
        for i in 0..nq {
            let h = f(&q[i * d..i * d + d]);
            r += recall(&h, &gt[i * gk..i * gk + k]);
        }
        (nq as f64 / t.elapsed().as_secs_f64(), r / nq as f64)
    };
    for &ef in &efs {
        let (qps, rec) = run(&|x| idx.search_with_ef(x, k, ef).unwrap());
        rows.push(format!("{{\"ef\": {ef}, \"qps\": {qps:.1}, \"recall\": {rec:.5}}}"));
    }
    let exact = if a.contains_key("exact") {
        let (qps, rec) = run(&|x| idx.search_exact(x, k).unwrap());
        format!(", \"exact\": {{\"qps\": {qps:.1}, \"recall\": {rec:.5}}}")
    } else {
        String::new()
    };
    println!(
        "{{\"open_ms\": {open_ms:.3}, \"first_query_ms\": {first_ms:.3}, \"file_size\": {}, \"results\": [{}]{exact}}}",
        idx.info().file_size,
        rows.join(", ")
    );
}

/// Deterministic normalised vectors around `clusters` Gaussian centres.
fn synth(n: usize, d: usize, seed: u64) -> impl FnMut() -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let clusters = (n / 100).clamp(1, 1000);
    let mut normal = move || {
        let (u, v) = (next().max(1e-300), next());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    };
    let centres: Vec<f32> = (0..clusters * d).map(|_| normal()).collect();
    let mut i = 0usize;
    move || {
        let c = (i * 7919) % clusters;
        i += 1;
        let mut v: Vec<f32> = (0..d).map(|j| centres[c * d + j] + normal()).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        v
    }
}

fn scale(a: &HashMap<String, String>) {
    let root = std::path::PathBuf::from(a.get("dir").cloned().unwrap_or("/tmp/rmx-scale".into()));
    let d: usize = a.get("dim").map(|v| v.parse().unwrap()).unwrap_or(1152);
    let sizes: Vec<usize> = a.get("sizes").map(|s| s.split(',').map(|x| x.parse().unwrap()).collect()).unwrap_or(vec![80, 11_665, 1_000_000]);
    let mut out = Vec::new();
    for &n in &sizes {
        let dir = root.join(format!("n{n}"));
        let mut o = opts(a);
        if !a.contains_key("mode") {
            o.mode = BuildMode::Auto;
        }
        let mut build_s = 0.0;
        if !dir.join(rmx_index::DATA_FILE).exists() || a.contains_key("rebuild") {
            let t = Instant::now();
            let mut w = IndexWriter::create(&dir, d, o).unwrap();
            let mut gen = synth(n, d, 1);
            for i in 0..n {
                let meta =
                    format!("{{\"description\":\"synthetic relation number {i} for the open-time benchmark\",\"head\":[\"entity\"],\"tail\":[\"entity\"]}}");
                w.add(&format!("R{i}"), &format!("relation {i}"), &meta, &gen()).unwrap();
            }
            w.finish().unwrap();
            build_s = t.elapsed().as_secs_f64();
        }
        let q = synth(n, d, 1)();
        let mut rec = Vec::new();
        for verify_meta in [true, false] {
            let mut cold = (0.0, 0.0);
            let mut warm = (0.0, 0.0);
            for (pass, slot) in [(0, &mut cold), (1, &mut warm)] {
                if pass == 0 {
                    evict(&dir);
                }
                let t = Instant::now();
                let idx = Index::open_with(&dir, &OpenOptions { expected_fingerprint: None, verify_meta }).unwrap();
                let open = t.elapsed().as_secs_f64() * 1e3;
                let t = Instant::now();
                let h = idx.search(&q, 10).unwrap();
                let qms = t.elapsed().as_secs_f64() * 1e3;
                std::hint::black_box(h);
                *slot = (open, qms);
            }
            rec.push(format!(
                "{{\"verify_meta\": {verify_meta}, \"cold_open_ms\": {:.3}, \"cold_query_ms\": {:.3}, \"warm_open_ms\": {:.3}, \"warm_query_ms\": {:.3}}}",
                cold.0, cold.1, warm.0, warm.1
            ));
        }
        let idx = Index::open(&dir).unwrap();
        out.push(format!(
            "{{\"n\": {n}, \"dim\": {d}, \"mode\": \"{}\", \"precision\": \"{}\", \"file_size\": {}, \"build_s\": {build_s:.2}, \"runs\": [{}]}}",
            idx.mode(),
            idx.precision(),
            idx.info().file_size,
            rec.join(", ")
        ));
    }
    println!("[{}]", out.join(",\n "));
}

/// Exact vs HNSW query time by label-set size (to choose AUTO_HNSW_THRESHOLD).
fn threshold(a: &HashMap<String, String>) {
    let root = std::path::PathBuf::from(a.get("dir").cloned().unwrap_or("/tmp/rmx-threshold".into()));
    let d: usize = a.get("dim").map(|v| v.parse().unwrap()).unwrap_or(1152);
    let sizes: Vec<usize> = a.get("sizes").map(|s| s.split(',').map(|x| x.parse().unwrap()).collect()).unwrap_or(vec![1000, 2000, 5000, 10_000, 20_000]);
    let nq = 200;
    let mut out = Vec::new();
    for &n in &sizes {
        let dir = root.join(format!("n{n}-d{d}"));
        let mut gen = synth(n, d, 3);
        let vecs: Vec<Vec<f32>> = (0..n).map(|_| gen()).collect();
        let queries: Vec<Vec<f32>> = (0..nq).map(|_| gen()).collect();
        let mut build_s = 0.0;
        if !dir.join(rmx_index::DATA_FILE).exists() {
            let t = Instant::now();
            let mut w = IndexWriter::create(&dir, d, opts(a)).unwrap();
            for (i, v) in vecs.iter().enumerate() {
                w.add(&format!("R{i}"), "", "{}", v).unwrap();
            }
            w.finish().unwrap();
            build_s = t.elapsed().as_secs_f64();
        }
        let idx = Index::open(&dir).unwrap();
        let truth: Vec<Vec<usize>> = queries.iter().map(|q| idx.search_exact(q, 10).unwrap().iter().map(|h| h.row).collect()).collect();
        let time = |f: &dyn Fn(&[f32]) -> Vec<rmx_index::Hit>| -> (f64, f64) {
            for q in queries.iter().take(20) {
                f(q);
            }
            let t = Instant::now();
            let mut hit = 0;
            for (q, tr) in queries.iter().zip(&truth) {
                hit += f(q).iter().filter(|h| tr.contains(&h.row)).count();
            }
            (nq as f64 / t.elapsed().as_secs_f64(), hit as f64 / (10 * nq) as f64)
        };
        let (eq, _) = time(&|q| idx.search_exact(q, 10).unwrap());
        let mut row = format!("{{\"n\": {n}, \"build_s\": {build_s:.1}, \"exact_qps\": {eq:.0}");
        for ef in [32usize, 64, 128] {
            let (hq, hr) = time(&|q| idx.search_with_ef(q, 10, ef).unwrap());
            row += &format!(", \"hnsw_ef{ef}_qps\": {hq:.0}, \"hnsw_ef{ef}_recall\": {hr:.4}");
        }
        row += "}";
        eprintln!("{row}");
        out.push(row);
    }
    println!("[{}]", out.join(",\n "));
}

fn main() {
    let (cmd, a) = args();
    match cmd.as_str() {
        "build" => build(&a),
        "query" => query(&a),
        "scale" => scale(&a),
        "threshold" => threshold(&a),
        _ => {
            eprintln!("usage: bench_ann build|query|scale ... (see the source header)");
            std::process::exit(2);
        }
    }
}
