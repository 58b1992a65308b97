//! Command-line interface: one file per subcommand.
mod bench;
mod embed;
mod eval;
mod index;
mod jsonl;
mod query;
mod train;

use clap::{Args, Parser, Subcommand};
use rmx::backend::{on_device, DeviceKind};
use rmx::model::bert::Precision;
use rmx::model::location::default_model_dir;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "rmx", version, about = "Zero-shot relation extraction by fine-grained semantic matching")]
#[command(long_about = "rmx answers which relation holds between two marked entities of a sentence by matching it \
against natural-language relation descriptions, including relations never seen in training.\n\n\
The default model (all-MiniLM-L6-v2) is looked up in $RMX_MODEL, else $RMX_HOME/models/all-MiniLM-L6-v2 \
(RMX_HOME defaults to $XDG_DATA_HOME/rmx or ~/.local/share/rmx); scripts/fetch-model.sh puts it there.\n\n\
Exit codes: 0 all done, 1 some input records rejected (each reported on stderr as file:line: reason), 2 fatal error.")]
pub struct Cli {
    /// Worker threads for the kernels (default: one per core).
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Embed(embed::EmbedArgs),
    Index(index::IndexArgs),
    Eval(eval::EvalArgs),
    Query(query::QueryArgs),
    Train(train::TrainArgs),
    Bench(bench::BenchArgs),
}

/// What a subcommand did: how many input records it had to reject.
pub struct Outcome {
    pub rejected: usize,
}

pub fn run(cli: Cli) -> rmx::Result<Outcome> {
    if let Some(n) = cli.threads {
        rayon::ThreadPoolBuilder::new().num_threads(n.max(1)).build_global().map_err(|e| rmx::Error::InvalidArgument(format!("--threads: {e}")))?;
    }
    match cli.command {
        Command::Embed(args) => on_device(args.device.kind, args),
        Command::Index(args) => index::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Query(args) => query::run(args),
        Command::Train(args) => on_device(args.device.kind, args),
        Command::Bench(args) => on_device(args.device.kind, args),
    }
}

/// The encoder's arithmetic, shared by the commands that run it for inference.
#[derive(Args)]
pub struct EncoderPrecision {
    /// Arithmetic of the encoder's linear layers: f32 (default; matches PyTorch); bf16
    /// (AVX512-BF16 CPUs only: faster where bf16 dot products outpace f32 FMAs; embeddings
    /// within cosine 0.9995 of f32); int8 (AVX512-VNNI CPUs only: weights and activations
    /// quantized, the fastest without AMX; embeddings within cosine 0.995 of f32).
    #[arg(long = "precision", default_value = "f32", value_name = "f32|bf16|int8")]
    pub value: Precision,
}

/// `--device`: where the model computes.
#[derive(Args)]
pub struct Device {
    /// Compute device: cpu (default) or cuda (GPU 0; needs an rmx built with `--features cuda`
    /// and an NVIDIA driver: without them rmx exits 2 saying which is missing). Also read from
    /// RMX_DEVICE.
    #[arg(long = "device", env = "RMX_DEVICE", default_value = "cpu", value_name = "cpu|cuda")]
    pub kind: DeviceKind,
}

/// `--model DIR`, or the default model's directory.
/// `A..B`: positions `[A, B)` within each relation (`rmx eval --sentences`, `rmx index
/// calibrate --sentences`).
pub fn parse_range(text: &str) -> std::result::Result<std::ops::Range<usize>, String> {
    let (a, b) = text.split_once("..").ok_or("expected A..B, e.g. 0..50")?;
    let (a, b): (usize, usize) = (a.trim().parse().map_err(|e| format!("{a:?}: {e}"))?, b.trim().parse().map_err(|e| format!("{b:?}: {e}"))?);
    if a >= b {
        return Err(format!("empty range {a}..{b}"));
    }
    Ok(a..b)
}

pub fn model_dir(flag: Option<PathBuf>) -> PathBuf {
    flag.unwrap_or_else(default_model_dir)
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every subcommand, nested ones included, with the path of names that reaches it.
    fn all_commands(cmd: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
        out.push((path.clone(), cmd.clone()));
        for sub in cmd.get_subcommands() {
            all_commands(sub, format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_and_argument_explains_itself() {
        let mut commands = Vec::new();
        all_commands(&Cli::command(), "rmx".into(), &mut commands);
        let mut silent = Vec::new();
        for (path, cmd) in commands.iter().filter(|(_, c)| c.get_name() != "help") {
            if cmd.get_about().is_none() {
                silent.push(path.clone());
            }
            for arg in cmd.get_arguments().filter(|a| !matches!(a.get_id().as_str(), "help" | "version")) {
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    silent.push(format!("{path} {}", arg.get_id()));
                }
            }
        }
        assert!(silent.is_empty(), "without help text: {silent:?}");
    }
}
