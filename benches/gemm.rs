//! GEMM throughput on the all-MiniLM-L6-v2 shapes (d = 384, ffn = 1536), in GFLOP/s
//! (criterion's "elem/s" counts flops, 2mnk per product), plus the machine's FMA peak; on a
//! CPU with AVX512-BF16 also the bf16 GEMM (`_bf16_avx512bf16`, B pre-packed) and the
//! `vdpbf16ps` peak, and with AMX-BF16 the bf16 GEMM on AMX tiles (`_bf16_amx`); on a CPU
//! with AVX512-VNNI the int8 GEMM (`_int8`, 2mnk int8 "flops") and the `vpdpbusd` peak.
//!
//! `model_37` / `model_2048`: the 36 products of a whole all-MiniLM-L6-v2 forward in a row
//! (`_int8`: on the int8 kernel).
//!
//! `cargo bench --bench gemm`; `RMX_ISA=scalar|avx2|avx512` forces a kernel set.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rmx::backend::cpu::gemm::{gemm, gemm_packed, MatRef, PackedB, Plain};
use rmx::backend::cpu::parallel::with_team;
use rmx::backend::cpu::simd::{bf16_dot_supported, int8_dot_supported, Bf16Kernel, Isa};
use std::hint::black_box;
use std::time::Instant;

/// (m, k, n): a batch of 32 × 64 tokens, then one 37-token sentence; B is a `Linear` weight
/// `[n, k]` viewed transposed (packed per call, and pre-packed once: `_prepacked`).
const SHAPES: [(usize, usize, usize); 6] = [(2048, 384, 384), (2048, 384, 1536), (2048, 1536, 384), (37, 384, 384), (37, 384, 1536), (37, 1536, 384)];

fn filled(len: usize, seed: u32) -> Vec<f32> {
    (0..len).map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) as f32 / u32::MAX as f32 - 0.5).collect()
}

fn bench_gemm(c: &mut Criterion) {
    report_fma_peak();
    let mut group = c.benchmark_group(format!("gemm_{}", Isa::current().name()));
    group.sample_size(20).warm_up_time(std::time::Duration::from_secs(1));
    for (m, k, n) in SHAPES {
        let (x, w) = (filled(m * k, 1), filled(n * k, 2));
        let mut out = vec![0.0f32; m * n];
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        let (a, b) = (MatRef::row_major(&x, m, k), MatRef::transposed(&w, n, k));
        group.bench_function(format!("{m}x{k}x{n}"), |bench| {
            bench.iter(|| {
                gemm(a, b, &mut out, n, false, &Plain);
                black_box(&mut out);
            })
        });
        let packed = PackedB::new(b);
        group.bench_function(format!("{m}x{k}x{n}_prepacked"), |bench| {
            bench.iter(|| {
                gemm_packed(a, &packed, &mut out, n, false, &Plain);
                black_box(&mut out);
            })
        });
        for kernel in [Bf16Kernel::Avx512Bf16, Bf16Kernel::Amx].into_iter().filter(|k| k.is_supported()) {
            let packed = PackedB::bf16_with(kernel, b);
            group.bench_function(format!("{m}x{k}x{n}_bf16_{}", kernel.name()), |bench| {
                bench.iter(|| {
                    gemm_packed(a, &packed, &mut out, n, false, &Plain);
                    black_box(&mut out);
                })
            });
        }
        if int8_dot_supported() {
            let packed = PackedB::int8(b);
            group.bench_function(format!("{m}x{k}x{n}_int8"), |bench| {
                bench.iter(|| {
                    gemm_packed(a, &packed, &mut out, n, false, &Plain);
                    black_box(&mut out);
                })
            });
        }
    }
    group.finish();
}

/// The 36 products of one all-MiniLM-L6-v2 forward (6 layers × Q, K, V, output, FFN in,
/// FFN out), B pre-packed, one after another on a spinning team as the encoder runs them:
/// 42 MB of weights streamed per pass, so this is what one sentence's products cost
/// (`model_37`) beside a batch's (`model_2048`).
fn bench_model_sequence(c: &mut Criterion) {
    const LAYER: [(usize, usize); 6] = [(384, 384), (384, 384), (384, 384), (384, 384), (384, 1536), (1536, 384)];
    type Pack = fn(MatRef) -> PackedB;
    let packings: [(&str, Pack); 2] = [("", PackedB::new), ("_int8", PackedB::int8)];
    let mut group = c.benchmark_group(format!("gemm_{}", Isa::current().name()));
    group.sample_size(20).warm_up_time(std::time::Duration::from_secs(1));
    for ((suffix, pack), m) in packings.into_iter().filter(|(s, _)| s.is_empty() || int8_dot_supported()).flat_map(|p| [(p, 37), (p, 2048)]) {
        let weights: Vec<(usize, usize, PackedB)> = (0..6 * LAYER.len())
            .map(|i| {
                let (k, n) = LAYER[i % LAYER.len()];
                (k, n, pack(MatRef::transposed(&filled(n * k, i as u32), n, k)))
            })
            .collect();
        let x = filled(m * 1536, 7);
        let mut out = vec![0.0f32; m * 1536];
        group.throughput(Throughput::Elements(weights.iter().map(|(k, n, _)| (2 * m * k * n) as u64).sum()));
        group.bench_function(format!("model_{m}{suffix}"), |bench| {
            bench.iter(|| {
                with_team(|| {
                    for (k, n, w) in &weights {
                        gemm_packed(MatRef::row_major(&x[..m * k], m, *k), w, &mut out[..m * n], *n, false, &Plain);
                    }
                });
                black_box(&mut out);
            })
        });
    }
    group.finish();
}

/// Prints the FMA peak of one core and of all rayon threads, measured with independent
/// FMA chains (enough of them to cover latency × issue width): the best of many short runs,
/// so that a machine shared with other work still shows what its cores can do.
fn report_fma_peak() {
    let threads = rayon::current_num_threads();
    let one = fma_gflops(1);
    let all = fma_gflops(threads);
    eprintln!("FMA peak ({}): 1 thread {one:.1} GFLOP/s, {threads} threads {all:.1} GFLOP/s", Isa::current().name());
    #[cfg(target_arch = "x86_64")]
    if bf16_dot_supported() {
        // SAFETY (both): AVX512-BF16 checked just above.
        let one = peak_gflops(1, |iters| unsafe { x86::dpbf16_avx512(iters) });
        let all = peak_gflops(threads, |iters| unsafe { x86::dpbf16_avx512(iters) });
        eprintln!("vdpbf16ps peak: 1 thread {one:.1} GFLOP/s, {threads} threads {all:.1} GFLOP/s");
    }
    #[cfg(target_arch = "x86_64")]
    if int8_dot_supported() {
        // SAFETY (both): AVX512-VNNI checked just above.
        let one = peak_gflops(1, |iters| unsafe { x86::dpbusd_avx512(iters) });
        let all = peak_gflops(threads, |iters| unsafe { x86::dpbusd_avx512(iters) });
        eprintln!("vpdpbusd peak: 1 thread {one:.1} GOP/s, {threads} threads {all:.1} GOP/s");
    }
}

fn fma_gflops(threads: usize) -> f64 {
    peak_gflops(threads, fma_loop)
}

/// The best rate of `threads` threads running `kernel(iters)`, which returns its flops.
fn peak_gflops(threads: usize, kernel: impl Fn(u64) -> u64 + Sync) -> f64 {
    (0..200)
        .map(|_| {
            let start = Instant::now();
            let flops: u64 = rayon::broadcast(|ctx| if ctx.index() < threads { kernel(100_000) } else { 0 }).into_iter().sum();
            flops as f64 / start.elapsed().as_secs_f64() / 1e9
        })
        .fold(0.0, f64::max)
}

/// Runs `iters` rounds of the FMA loop of the best instruction set; returns the flops done.
fn fma_loop(iters: u64) -> u64 {
    match Isa::current() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            // SAFETY: `Isa::current` only reports AVX2 on a CPU with AVX2 and FMA.
            unsafe { x86::fma_avx2(iters) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            // SAFETY: `Isa::current` only reports AVX-512 on a CPU with AVX-512F.
            unsafe { x86::fma_avx512(iters) }
        }
        _ => {
            let mut acc = [1.0f32; 16];
            for _ in 0..iters {
                for a in &mut acc {
                    *a = black_box(*a) * 0.999_999 + 1e-7;
                }
            }
            black_box(acc);
            iters * 32
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::hint::black_box;

    /// 12 independent 8-lane FMA chains (Zen 3: latency 4 × 2 pipes needs ≥ 8).
    #[target_feature(enable = "avx2,fma")]
    pub fn fma_avx2(iters: u64) -> u64 {
        let (x, y) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
        let mut acc = [_mm256_set1_ps(1.0); 12];
        for _ in 0..iters {
            for a in &mut acc {
                *a = _mm256_fmadd_ps(*a, x, y);
            }
        }
        black_box(acc);
        iters * 12 * 8 * 2
    }

    /// 24 independent chains of 16-lane bf16 dot products (4 flops per lane: two depth steps).
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub fn dpbf16_avx512(iters: u64) -> u64 {
        let x = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.999), _mm512_set1_ps(0.999));
        let y = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3), _mm512_set1_ps(1e-3));
        let mut acc = [_mm512_set1_ps(1.0); 24];
        for _ in 0..iters {
            for a in &mut acc {
                *a = _mm512_dpbf16_ps(*a, x, y);
            }
        }
        black_box(acc);
        iters * 24 * 16 * 4
    }

    /// 24 independent chains of 16-lane byte dot products (8 ops per lane: four depth steps).
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub fn dpbusd_avx512(iters: u64) -> u64 {
        let (x, y) = (_mm512_set1_epi8(3), _mm512_set1_epi8(-2));
        let mut acc = [_mm512_setzero_si512(); 24];
        for _ in 0..iters {
            for a in &mut acc {
                *a = _mm512_dpbusd_epi32(*a, x, y);
            }
        }
        black_box(acc);
        iters * 24 * 16 * 8
    }

    /// 24 independent 16-lane FMA chains.
    #[target_feature(enable = "avx512f")]
    pub fn fma_avx512(iters: u64) -> u64 {
        let (x, y) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        let mut acc = [_mm512_set1_ps(1.0); 24];
        for _ in 0..iters {
            for a in &mut acc {
                *a = _mm512_fmadd_ps(*a, x, y);
            }
        }
        black_box(acc);
        iters * 24 * 16 * 2
    }
}

criterion_group!(benches, bench_gemm, bench_model_sequence);
criterion_main!(benches);
