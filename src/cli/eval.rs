//! `rmx eval`: macro P/R/F1 and accuracy of a model on labelled FewRel-format data.
use super::Outcome;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rmx::backend::{on_device, Backend, OnDevice};
use rmx::data::descriptions::read_descriptions;
use rmx::data::fewrel::{per_relation, read_fewrel, read_split, Example};
use rmx::engine::Engine;
use rmx::model::rematch::Matcher;
use rmx::open_set::{judge, open_set_scores};
use rmx::train::evaluate::evaluate;
use rmx::{Error, Result};
use std::path::{Path, PathBuf};

/// Evaluate a model: macro precision, recall and F1 on labelled sentences.
///
/// The listed relations are both the candidates and the test set (unless --all-candidates).
///
/// With --index, the sentences are answered through an index instead, as `rmx query`
/// answers them (HNSW or exact, whatever the index uses), and the report is for large label
/// sets and for "no relation": top-1, top-10 and MRR over the sentences whose relation is in
/// the index, and accuracy and macro P/R/F1 over all sentences with "no relation" as a
/// class (a sentence whose relation is not in the index is right when its best score is
/// below the threshold: --min-score, else the index's calibrated one).
///
/// Metrics follow the reference code: per-relation precision summed and divided by the number
/// of distinct predicted relations, recall averaged over the gold relations, F1 = 2PR/(P+R).
#[derive(Args)]
#[command(
    after_help = "Example (reduced FewRel protocol, m = 5):\n  rmx eval --data ../shared/data/fewrel/val_wiki.json \\\n    --descriptions ../shared/data/rematching/fewrel/relation_description/relation_description_addsynonym_processed.json \\\n    --split ../shared/data/rematching/rel2id/fewrel_rel2id/fewrel_rel2id_5_ori.json\nExample (all Wikidata properties as candidates, 50 sentences per relation):\n  rmx index build ../shared/data/wikidata/all_wikidata_properties.json -o wikidata.rmx\n  rmx eval --index wikidata.rmx --data ../shared/data/fewrel/val_wiki.json --sentences 0..50"
)]
pub struct EvalArgs {
    /// Model directory (trained checkpoint or plain sentence encoder); default: the default model.
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    #[command(flatten)]
    precision: super::EncoderPrecision,
    #[command(flatten)]
    device: super::Device,
    /// Labelled sentences in FewRel's format.
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// Relation descriptions (descriptions.jsonl or RE-Matching's description JSON).
    #[arg(long, value_name = "FILE", required_unless_present = "index", conflicts_with = "index")]
    descriptions: Option<PathBuf>,
    /// Candidate and test relations, comma-separated (with --index: only the sentences of
    /// these relations).
    #[arg(long, value_delimiter = ',', required_unless_present_any = ["split", "index"], conflicts_with = "split")]
    relations: Vec<String>,
    /// Answer through this index (its relations are the candidates) and report ranking and
    /// "no relation" metrics; the model must be the one the index was built with.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["split", "all_candidates", "zero_shot_weight"])]
    index: Option<PathBuf>,
    /// Only the sentences at positions A..B within each relation (e.g. 0..50).
    #[arg(long, value_name = "A..B", value_parser = super::parse_range)]
    sentences: Option<std::ops::Range<usize>>,
    /// With --index: the "no relation" threshold (default: the index's calibrated one).
    #[arg(long, value_name = "S", allow_negative_numbers = true, requires = "index")]
    min_score: Option<f32>,
    /// With --index: answers per sentence (top-10 needs 10; MRR counts ranks up to K).
    #[arg(short, default_value_t = 100, value_name = "K", requires = "index")]
    k: usize,
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
    match &args.index {
        Some(index) => run_on_index(&args, index),
        None => on_device(args.device.kind, args),
    }
}

impl OnDevice for EvalArgs {
    type Output = Outcome;
    fn run<B: Backend>(self) -> Result<Outcome> {
        run_protocol::<B>(self)
    }
}

/// The reduced FewRel protocol: the test relations' sentences, those relations as candidates.
fn run_protocol<B: Backend>(args: EvalArgs) -> Result<Outcome> {
    let relations = match &args.split {
        Some(split) => read_split(split, "test")?,
        None => args.relations.clone(),
    };
    if relations.is_empty() {
        return Err(Error::InvalidData("no relations to evaluate".into()));
    }
    let descriptions = read_descriptions(args.descriptions.as_ref().expect("required without --index"))?;
    for reason in &descriptions.rejected {
        eprintln!("{reason}");
    }
    let examples = read_examples(&args)?;
    let mut matcher = Matcher::<B>::load_with(&super::model_dir(args.model), args.zero_shot_weight)?;
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

fn read_examples(args: &EvalArgs) -> Result<Vec<Example>> {
    let examples = read_fewrel(&args.data)?;
    Ok(match &args.sentences {
        Some(range) => per_relation(&examples, range),
        None => examples,
    })
}

/// `--index`: ranking and "no relation" metrics through the index.
fn run_on_index(args: &EvalArgs, index: &Path) -> Result<Outcome> {
    let mut engine = Engine::open_on(&super::model_dir(args.model.clone()), index, args.device.kind)?;
    engine.matcher.set_precision(args.precision.value)?;
    let mut examples = read_examples(args)?;
    if !args.relations.is_empty() {
        examples.retain(|e| args.relations.contains(&e.relation));
    }
    if examples.is_empty() {
        return Err(Error::InvalidData("no sentences to evaluate".into()));
    }
    let bar = ProgressBar::new(examples.len() as u64)
        .with_style(ProgressStyle::with_template("evaluating {bar:40} {pos}/{len} sentences [{elapsed_precise}, eta {eta}]").expect("valid template"));
    let judged = judge(&engine, &examples, args.k, args.batch_size, |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    let s = open_set_scores(&judged, args.k, engine.min_score(args.min_score));
    if args.json {
        println!("{}", serde_json::to_string(&s).expect("scores serialise"));
    } else {
        println!(
            "ranking        top-1 {:.4}  top-10 {:.4}  MRR@{} {:.4}  ({} of {} sentences have their relation among the index's {} relations)",
            s.top1,
            s.top10,
            s.k,
            s.mrr,
            s.answerable,
            s.sentences,
            engine.index.len()
        );
        let threshold = s.min_score.map_or("none".to_string(), |t| t.to_string());
        println!("no relation    accuracy {:.4}  macro P {:.4}  R {:.4}  F1 {:.4}  (min score {threshold})", s.accuracy, s.precision, s.recall, s.f1);
    }
    Ok(Outcome { rejected: 0 })
}
