//! The encoder and its fused kernels (all-MiniLM-L6-v2 shapes, d = 384, ffn = 1536).
//!
//! `cargo bench --bench encoder` (kernels always; the whole encoder when the default model is
//! installed). `RMX_ISA=scalar|avx2|avx512` forces a kernel set.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rmx::backend::cpu::attention::attention_forward;
use rmx::backend::cpu::gelu::bias_gelu_forward;
use rmx::backend::cpu::layernorm::layernorm_forward;
use rmx::backend::cpu::linear::{linear_forward, Activation};
use rmx::backend::cpu::simd::Isa;
use rmx::backend::cpu::Cpu;
use rmx::model::bert::{Bert, PackedBatch};
use std::hint::black_box;

const D: usize = 384;
const FFN: usize = 1536;
const HEADS: usize = 12;

fn filled(len: usize, seed: u32) -> Vec<f32> {
    (0..len).map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) as f32 / u32::MAX as f32 - 0.5).collect()
}

fn kernels(c: &mut Criterion) {
    let mut g = c.benchmark_group(format!("kernels_{}", Isa::current().name()));
    g.sample_size(20);
    let tokens = 32 * 64;
    let starts: Vec<usize> = (0..=32).map(|s| s * 64).collect();
    let (gamma, beta) = (filled(D, 1), filled(D, 2));
    let x = filled(tokens * D, 3);
    g.throughput(Throughput::Elements((tokens * D) as u64));
    g.bench_function("layernorm_2048x384", |b| {
        let mut y = x.clone();
        b.iter(|| layernorm_forward(black_box(&mut y), D, &gamma, &beta, 1e-12))
    });
    let (inter, bias) = (filled(tokens * FFN, 4), filled(tokens * FFN, 5));
    g.throughput(Throughput::Elements((tokens * FFN) as u64));
    g.bench_function("bias_gelu_2048x1536", |b| {
        let mut y = inter.clone();
        b.iter(|| bias_gelu_forward(black_box(&mut y), &bias))
    });
    let (q, k, v) = (filled(tokens * D, 6), filled(tokens * D, 7), filled(tokens * D, 8));
    let mut ctx = vec![0.0; tokens * D];
    g.throughput(Throughput::Elements(tokens as u64));
    g.bench_function("attention_32x64_tokens", |b| b.iter(|| attention_forward(&q, &k, &v, &starts, HEADS, black_box(&mut ctx))));
    let (w, wb) = (filled(FFN * D, 9), filled(FFN, 10));
    let mut out = vec![0.0; tokens * FFN];
    g.throughput(Throughput::Elements((2 * tokens * D * FFN) as u64));
    g.bench_function("linear_bias_gelu_2048x384x1536_flops", |b| b.iter(|| linear_forward(&x, tokens, &w, &wb, black_box(&mut out), Activation::BiasGelu)));
    g.finish();
}

fn encoder(c: &mut Criterion) {
    let dir = rmx::model::location::default_model_dir();
    let Ok(bert) = Bert::<Cpu>::load(&dir) else {
        eprintln!("SKIPPED encoder bench: no model at {} (scripts/fetch-model.sh)", dir.display());
        return;
    };
    let seq = |len: usize, salt: u32| -> Vec<u32> {
        (0..len)
            .map(|i| {
                if i == 0 {
                    101
                } else if i + 1 == len {
                    102
                } else {
                    1000 + (i as u32 * 7919 + salt) % 28000
                }
            })
            .collect()
    };
    let mut g = c.benchmark_group(format!("encoder_{}", Isa::current().name()));
    g.sample_size(10);
    let batch = PackedBatch::new(&(0..32).map(|s| seq(64, s)).collect::<Vec<_>>());
    g.throughput(Throughput::Elements(batch.tokens() as u64));
    g.bench_function("minilm_batch_32x64_tokens", |b| b.iter(|| bert.forward(black_box(&batch)).unwrap()));
    let single = PackedBatch::new(&[seq(37, 0)]);
    g.throughput(Throughput::Elements(37));
    g.bench_function("minilm_single_37_tokens", |b| b.iter(|| bert.forward(black_box(&single)).unwrap()));
    g.finish();
}

criterion_group!(benches, kernels, encoder);
criterion_main!(benches);
