//! `rmx bench`: encoder throughput and latency on synthetic token sequences.
use super::Outcome;
use clap::Args;
use rmx::backend::cpu::simd::{Bf16Kernel, Isa};
use rmx::backend::{Backend, DeviceKind, OnDevice};
use rmx::model::bert::{Bert, PackedBatch, Precision};
use rmx::Result;
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

/// Measure the encoder's throughput and latency.
///
/// Times a batch of `--batch-size` sequences of `--seq-len` tokens (throughput) and one
/// sequence of `--single-len` tokens (latency) on synthetic token ids. Prints one JSON line.
#[derive(Args)]
pub struct BenchArgs {
    /// Model directory; default: the default model.
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Sequences in the throughput batch.
    #[arg(long, default_value_t = 32, value_name = "N")]
    batch_size: usize,
    /// Tokens per sequence of the throughput batch.
    #[arg(long, default_value_t = 64, value_name = "N")]
    seq_len: usize,
    /// Tokens of the latency sequence.
    #[arg(long, default_value_t = 37, value_name = "N")]
    single_len: usize,
    /// Timed repetitions of the batch (after one warm-up run).
    #[arg(long, default_value_t = 20, value_name = "N")]
    iters: usize,
    /// Timed repetitions of the one sequence (after one warm-up run); its median is reported.
    #[arg(long, default_value_t = 50, value_name = "N")]
    single_iters: usize,
    #[command(flatten)]
    precision: super::EncoderPrecision,
    #[command(flatten)]
    pub(super) device: super::Device,
}

/// Run on the device `--device` names (`cli::run`).
impl OnDevice for BenchArgs {
    type Output = Outcome;
    fn run<B: Backend>(self) -> Result<Outcome> {
        bench::<B>(self)
    }
}

fn bench<B: Backend>(args: BenchArgs) -> Result<Outcome> {
    let mut bert = Bert::<B>::load(&super::model_dir(args.model))?;
    bert.set_precision(args.precision.value)?;
    let vocab = bert.config.vocab_size as u64;
    // Deterministic ids in the ordinary vocabulary range, framed by [CLS] … [SEP].
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut sequence = |len: usize| -> Vec<u32> {
        (0..len)
            .map(|i| match i {
                0 => 101,
                _ if i + 1 == len => 102,
                _ => {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (1000 + state % (vocab - 1000)) as u32
                }
            })
            .collect()
    };
    let batch = PackedBatch::new(&(0..args.batch_size).map(|_| sequence(args.seq_len)).collect::<Vec<_>>());
    let single = PackedBatch::new(&[sequence(args.single_len)]);
    // A forward is done when the device says so.
    let batch_s = median_seconds(args.iters, || bert.forward(&batch).and_then(|_| B::sync()))?;
    let single_s = median_seconds(args.single_iters, || bert.forward(&single).and_then(|_| B::sync()))?;
    println!(
        "{}",
        json!({
            "batch_size": args.batch_size,
            "seq_len": args.seq_len,
            "batch_ms": batch_s * 1e3,
            "batch_tokens_per_s": batch.tokens() as f64 / batch_s,
            "single_seq_len": args.single_len,
            "single_latency_ms": single_s * 1e3,
            "device": B::KIND.name(),
            "isa": Isa::current().name(),
            "precision": bert.precision().name(),
            // Which CPU bf16 kernel the linear layers ran on (null in f32 and on CUDA: cuBLAS).
            "bf16_kernel": (bert.precision() == Precision::Bf16 && B::KIND == DeviceKind::Cpu).then(Bf16Kernel::current).flatten().map(Bf16Kernel::name),
            "threads": rayon::current_num_threads(),
        })
    );
    Ok(Outcome { rejected: 0 })
}

/// Median wall time of `iters` runs of `f`, after one warm-up run.
fn median_seconds(iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters.max(1) {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}
