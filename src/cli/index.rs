//! `rmx index build|inspect|verify|calibrate`: the on-disk relation index.
use super::Outcome;
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rmx::backend::{on_device, Backend, OnDevice};
use rmx::calibration::{self, choose_threshold, Calibration};
use rmx::data::descriptions::{parse_descriptions, Parsed};
use rmx::data::fewrel::{per_relation, read_fewrel};
use rmx::engine::{build_index, BuildSettings, Engine};
use rmx::model::rematch::Matcher;
use rmx::open_set::judge;
use rmx::{Error, Result};
use rmx_index::{BuildMode, Index, Precision};
use serde_json::json;
use std::io::Read;
use std::path::PathBuf;

/// Build, inspect or verify a relation index.
#[derive(Args)]
pub struct IndexArgs {
    #[command(subcommand)]
    command: IndexCommand,
}

#[derive(Subcommand)]
enum IndexCommand {
    Build(BuildArgs),
    Inspect(InspectArgs),
    Verify(VerifyArgs),
    Calibrate(CalibrateArgs),
}

/// Encode relation descriptions into an index directory.
///
/// Input: descriptions.jsonl, one relation per line,
/// {"id":"P26","name":"spouse","description":"...","head":["person"],"tail":["person","spouse"]}
/// (name defaults to id; head/tail keyword lists are optional: a missing list makes that part
/// compare the entity with the description), or RE-Matching's JSON description list.
/// All or nothing: when any line is rejected, each is reported (file:line: reason), nothing is
/// written and the exit status is 1; --skip-invalid builds from the valid lines instead (still
/// exit 1). The index is written to a temporary directory and renamed into place: an existing
/// index at -o is replaced only when the new build succeeds.
#[derive(Args)]
#[command(
    after_help = "Example:\n  rmx index build relations.jsonl -o relations.rmx\n  cat relations.jsonl | rmx index build - -o relations.rmx --precision f16"
)]
struct BuildArgs {
    /// descriptions.jsonl (or RE-Matching's description JSON); `-` reads stdin.
    input: PathBuf,
    /// Index directory to create (or replace).
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
    /// Model directory (a trained checkpoint or a plain sentence encoder); default: the default model.
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Arithmetic of the encoder's linear layers, as `--precision` of `rmx embed` (that name
    /// is taken here by the vectors' storage).
    #[arg(long, default_value = "f32", value_name = "f32|bf16|int8")]
    encoder_precision: rmx::model::bert::Precision,
    /// Storage of the vectors: f32, or f16 (half the size; see the README for its cost).
    #[arg(long, value_enum, default_value_t = PrecisionArg::F32)]
    precision: PrecisionArg,
    /// Search structure: exact for small label sets, HNSW for large ones (auto picks by size).
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    search: ModeArg,
    /// Relations encoded per batch.
    #[arg(long, default_value_t = 32, value_name = "N")]
    batch_size: usize,
    /// When some lines are rejected, build from the valid ones (default: build nothing).
    #[arg(long)]
    skip_invalid: bool,
    #[command(flatten)]
    device: super::Device,
}

#[derive(Clone, Copy, ValueEnum)]
enum PrecisionArg {
    F32,
    F16,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Auto,
    Exact,
    Hnsw,
}

/// Show an index's format version, relation count, dimensions, model fingerprint, sizes and
/// search mode.
#[derive(Args)]
struct InspectArgs {
    /// Index directory built by `rmx index build`.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Choose the index's "no relation" threshold on labelled sentences and store it.
///
/// The sentences (FewRel's format) are answered through the index as `rmx query` answers
/// them. A sentence whose gold relation is in the index should answer it; one whose gold
/// relation is not should answer "no relation". The threshold with the highest accuracy on
/// both is stored in DIR/calibration.json and becomes `rmx query`'s default (`--min-score`
/// overrides it; `rmx index inspect` shows it). Use sentences that are not your test set:
/// other sentences of the same relations, or another corpus with the same relation ids.
#[derive(Args)]
#[command(
    after_help = "Example (calibrate on val_nyt's sentences, which share some FewRel relation ids):\n  rmx index calibrate relations.rmx --data ../shared/data/fewrel/val_nyt.json"
)]
struct CalibrateArgs {
    /// Index directory built by `rmx index build`.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Labelled sentences in FewRel's format.
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// Only the sentences at positions A..B within each relation (e.g. 600..700).
    #[arg(long, value_name = "A..B", value_parser = super::parse_range)]
    sentences: Option<std::ops::Range<usize>>,
    /// Model directory; must be the one the index was built with. Default: the default model.
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Sentences per encoder pass.
    #[arg(long, default_value_t = 64, value_name = "N")]
    batch_size: usize,
    #[command(flatten)]
    device: super::Device,
}

/// Verify every checksum of an index (vectors and graph included); exit 0 when intact.
#[derive(Args)]
struct VerifyArgs {
    /// Index directory built by `rmx index build`.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

pub fn run(args: IndexArgs) -> Result<Outcome> {
    match args.command {
        IndexCommand::Build(a) => on_device(a.device.kind, a),
        IndexCommand::Inspect(a) => inspect(a),
        IndexCommand::Calibrate(a) => calibrate(a),
        IndexCommand::Verify(a) => {
            Index::open(&a.dir)?.verify()?;
            println!("{}: ok", a.dir.display());
            Ok(Outcome { rejected: 0 })
        }
    }
}

impl OnDevice for BuildArgs {
    type Output = Outcome;
    fn run<B: Backend>(self) -> Result<Outcome> {
        build::<B>(self)
    }
}

fn read_input(input: &PathBuf) -> Result<Parsed> {
    if input.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| Error::io("<stdin>", e))?;
        parse_descriptions(&text, "<stdin>")
    } else {
        let text = std::fs::read_to_string(input).map_err(|e| Error::io(input, e))?;
        parse_descriptions(&text, &input.display().to_string())
    }
}

fn build<B: Backend>(args: BuildArgs) -> Result<Outcome> {
    let parsed = read_input(&args.input)?;
    for reason in &parsed.rejected {
        eprintln!("{reason}");
    }
    if parsed.relations.is_empty() {
        return Err(Error::InvalidData(format!("{}: no valid relations; the index was not built", args.input.display())));
    }
    if !parsed.rejected.is_empty() && !args.skip_invalid {
        eprintln!(
            "rmx: {} line(s) rejected; nothing was written to {} (fix them, or pass --skip-invalid to build from the other {})",
            parsed.rejected.len(),
            args.output.display(),
            parsed.relations.len()
        );
        return Ok(Outcome { rejected: parsed.rejected.len() });
    }
    let mut matcher = Matcher::<B>::load(&super::model_dir(args.model))?;
    matcher.set_precision(args.encoder_precision)?;
    let relations = &parsed.relations;
    let bar = ProgressBar::new(relations.len() as u64)
        .with_style(ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} relations [{elapsed_precise}, eta {eta}]").expect("valid progress template"));
    bar.set_message("encoding");
    let settings = BuildSettings {
        precision: match args.precision {
            PrecisionArg::F32 => Precision::F32,
            PrecisionArg::F16 => Precision::F16,
        },
        mode: match args.search {
            ModeArg::Auto => BuildMode::Auto,
            ModeArg::Exact => BuildMode::Exact,
            ModeArg::Hnsw => BuildMode::Hnsw,
        },
        batch: args.batch_size,
    };
    let built = build_index(&matcher, relations, &args.output, settings, |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    for dir in &built.swept {
        eprintln!("rmx: removed {}, left by an interrupted build", dir.display());
    }
    let info = built.info;
    eprintln!(
        "rmx: indexed {} relations into {} ({} search, {} bytes)",
        info.count,
        args.output.display(),
        format!("{:?}", info.mode).to_lowercase(),
        info.file_size
    );
    Ok(Outcome { rejected: parsed.rejected.len() })
}

fn calibrate(args: CalibrateArgs) -> Result<Outcome> {
    let engine = Engine::open_on(&super::model_dir(args.model), &args.dir, args.device.kind)?;
    let mut examples = read_fewrel(&args.data)?;
    if let Some(range) = &args.sentences {
        examples = per_relation(&examples, range);
    }
    if examples.is_empty() {
        return Err(Error::InvalidData(format!("{}: no sentences to calibrate on", args.data.display())));
    }
    let bar = ProgressBar::new(examples.len() as u64)
        .with_style(ProgressStyle::with_template("calibrating {bar:40} {pos}/{len} sentences [{elapsed_precise}, eta {eta}]").expect("valid template"));
    let judged = judge(&engine, &examples, 1, args.batch_size, |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    let best: Vec<_> = judged.iter().map(|j| j.best()).collect();
    let answerable = best.iter().filter(|b| b.answerable).count();
    if answerable == 0 || answerable == best.len() {
        eprintln!("rmx: warning: {} of the {} sentences have their relation in the index; a threshold needs both kinds", answerable, best.len());
    }
    let (min_score, accuracy) = choose_threshold(&best);
    let c = Calibration {
        min_score,
        fingerprint: engine.index.fingerprint().to_string(),
        relations: engine.index.len(),
        data: args.data.display().to_string(),
        answerable,
        unanswerable: best.len() - answerable,
        accuracy,
    };
    calibration::save(&args.dir, &c)?;
    println!("{}", serde_json::to_string(&c).expect("a calibration serialises"));
    Ok(Outcome { rejected: 0 })
}

fn inspect(args: InspectArgs) -> Result<Outcome> {
    let index = Index::open(&args.dir)?;
    let info = index.info();
    let calibrated = calibration::load(&args.dir, index.fingerprint(), index.len())?;
    let mode = format!("{:?}", info.mode).to_lowercase();
    let precision = format!("{:?}", info.precision).to_lowercase();
    if args.json {
        let sections: Vec<_> = info.sections.iter().map(|s| json!({"name": s.name, "offset": s.offset, "bytes": s.len})).collect();
        let hnsw = info.hnsw.map(|h| json!({"m": h.m, "m0": h.m0, "ef_construction": h.ef_construction, "ef_search": h.ef_search, "levels": h.max_level + 1}));
        println!(
            "{}",
            json!({
                "path": info.path, "format_version": info.format_version, "relations": info.count, "dim": info.dim,
                "precision": precision, "search": mode, "fingerprint": info.fingerprint, "file_bytes": info.file_size,
                "hnsw": hnsw, "sections": sections, "calibration": calibrated,
            })
        );
    } else {
        println!("index          {}", info.path.display());
        println!("format version {}", info.format_version);
        println!("relations      {}", info.count);
        // An ensemble with the zero-training default (mode "...+zero-shot-β") has a block per model.
        let models = if info.fingerprint.split(';').next().is_some_and(|mode| mode.contains("+zero-shot")) { 2 } else { 1 };
        // The zero-training default appends one hubness-bias component (model::hubness).
        let bias = info.dim % 3;
        let parts = info.dim - bias;
        let bias_note = if bias == 1 { " + 1 hubness bias" } else { "" };
        match models {
            1 => println!("dimensions     {} (3 parts × {}{bias_note})", info.dim, parts / 3),
            n => println!("dimensions     {} ({n} models × 3 parts × {}{bias_note})", info.dim, parts / (3 * n)),
        }
        println!("precision      {precision}");
        println!("search         {mode}");
        if let Some(h) = info.hnsw {
            println!("hnsw           M={} M0={} ef_construction={} ef_search={} levels={}", h.m, h.m0, h.ef_construction, h.ef_search, h.max_level + 1);
        }
        println!("fingerprint    {}", info.fingerprint);
        match &calibrated {
            Some(c) => println!(
                "min score      {} (calibrated on {}: {} sentences with their relation in the index, {} without; accuracy {:.4})",
                c.min_score, c.data, c.answerable, c.unanswerable, c.accuracy
            ),
            None => println!("min score      none (not calibrated: every best answer is a relation; see rmx index calibrate)"),
        }
        println!("file size      {} bytes", info.file_size);
        for s in &info.sections {
            println!("  section {:<12} {:>12} bytes at {}", s.name, s.len, s.offset);
        }
    }
    Ok(Outcome { rejected: 0 })
}
