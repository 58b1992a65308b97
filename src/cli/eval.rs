//! `rmx eval`: macro P/R/F1 and accuracy of a model on labelled FewRel-format data.
use super::Outcome;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rmx::data::descriptions::read_descriptions;
use rmx::data::fewrel::{read_fewrel, read_split};
use rmx::model::rematch::Matcher;
use rmx::train::evaluate::evaluate;
use rmx::{Error, Result};
use std::path::PathBuf;

/// Evaluate a model: macro precision, recall and F1 on labelled sentences.
///
/// The listed relations are both the candidates and the test set (unless --all-candidates).
///
/// Metrics follow the reference code: per-relation precision summed and divided by the number
/// of distinct predicted relations, recall averaged over the gold relations, F1 = 2PR/(P+R).
#[derive(Args)]
#[command(
    after_help = "Example (reduced FewRel protocol, m = 5):\n  rmx eval --data ../shared/data/fewrel/val_wiki.json \\\n    --descriptions ../shared/data/rematching/fewrel/relation_description/relation_description_addsynonym_processed.json \\\n    --split ../shared/data/rematching/rel2id/fewrel_rel2id/fewrel_rel2id_5_ori.json"
)]
pub struct EvalArgs {
    /// Model directory (trained checkpoint or plain sentence encoder); default: the default model.
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    #[command(flatten)]
    precision: super::EncoderPrecision,
    /// Labelled sentences in FewRel's format.
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// Relation descriptions (descriptions.jsonl or RE-Matching's description JSON).
    #[arg(long, value_name = "FILE")]
    descriptions: PathBuf,
    /// Candidate and test relations, comma-separated.
    #[arg(long, value_delimiter = ',', required_unless_present = "split", conflicts_with = "split")]
    relations: Vec<String>,
    /// A RE-Matching rel2id split file: its "test" relations are used.
    #[arg(long, value_name = "FILE")]
    split: Option<PathBuf>,
    /// Use every relation of the descriptions file as a candidate (the listed relations are
    /// still the test set).
    #[arg(long)]
    all_candidates: bool,
    /// For a trained checkpoint: score as an ensemble with the zero-training default of this
    /// weight β, `(1−β)·trained + β·zero-shot`, instead of the checkpoint's own β (0 = the
    /// trained model alone).
    #[arg(long, value_name = "B")]
    zero_shot_weight: Option<f32>,
    /// Print one JSON object (precision, recall, f1, accuracy, per_relation) instead of a table.
    #[arg(long)]
    json: bool,
    /// Sentences per encoder pass.
    #[arg(long, default_value_t = 64, value_name = "N")]
    batch_size: usize,
}

pub fn run(args: EvalArgs) -> Result<Outcome> {
    let relations = match &args.split {
        Some(split) => read_split(split, "test")?,
        None => args.relations.clone(),
    };
    if relations.is_empty() {
        return Err(Error::InvalidData("no relations to evaluate".into()));
    }
    let descriptions = read_descriptions(&args.descriptions)?;
    for reason in &descriptions.rejected {
        eprintln!("{reason}");
    }
    let examples = read_fewrel(&args.data)?;
    let mut matcher = Matcher::load_with(&super::model_dir(args.model), args.zero_shot_weight)?;
    matcher.set_precision(args.precision.value)?;
    let total = examples.iter().filter(|e| relations.contains(&e.relation)).count();
    let bar = ProgressBar::new(total as u64)
        .with_style(ProgressStyle::with_template("evaluating {bar:40} {pos}/{len} sentences [{elapsed_precise}, eta {eta}]").expect("valid template"));
    let scores =
        evaluate(&matcher, &examples, &descriptions.relations, &relations, args.all_candidates, args.batch_size, |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&scores).expect("scores serialise"));
    } else {
        println!("{:<10} {:>9} {:>9} {:>9} {:>6} {:>9}", "relation", "precision", "recall", "f1", "gold", "predicted");
        for c in &scores.per_relation {
            println!("{:<10} {:>9.4} {:>9.4} {:>9.4} {:>6} {:>9}", c.relation, c.precision, c.recall, c.f1, c.gold, c.predicted);
        }
        println!(
            "macro      P {:.4}  R {:.4}  F1 {:.4}  accuracy {:.4}  ({} sentences, {} relations)",
            scores.precision,
            scores.recall,
            scores.f1,
            scores.accuracy,
            total,
            relations.len()
        );
    }
    Ok(Outcome { rejected: descriptions.rejected.len() })
}
