//! `rmx train`: fine-tune the RE-Matching model on labelled sentences.
use super::Outcome;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rmx::backend::{Backend, OnDevice};
use rmx::model::description::DescriptionStyle;
use rmx::train::checkpoint::{check_output, DESCRIPTION_DIR};
use rmx::train::objective::{MatchingLoss, ObjectiveSettings};
use rmx::train::run::{run as run_training, HeldOut, Progress, TrainPlan, TrainSummary};
use rmx::train::soup::average_checkpoints;
use rmx::train::trainer::{Negatives, TrainSettings};
use rmx::{Error, Result};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// Train the RE-Matching model on labelled sentences.
///
/// The input encoder and its heads learn to match sentences of the training relations with
/// their descriptions; unseen relations are held out.
///
/// Training relations = every relation of --data that is not --unseen (or not a test
/// relation of --split). The description side embeds each description and "the entity
/// types including ..." for the head and tail keywords with the starting model's sentence
/// encoder; by default that encoder is trained too (--train-descriptions false keeps it
/// frozen, as the reference does). The checkpoint directory (-o) loads with `rmx query --model DIR`,
/// `rmx index build --model DIR` and `rmx eval --model DIR`; its model.safetensors keeps
/// Hugging Face names (PyTorch's BertModel loads it).
#[derive(Args)]
#[command(
    after_help = "Example (reduced FewRel protocol, m = 5):\n  rmx train --data ../shared/data/fewrel/val_wiki.json \\\n    --descriptions ../shared/data/rematching/fewrel/relation_description/relation_description_addsynonym_processed.json \\\n    --split ../shared/data/rematching/rel2id/fewrel_rel2id/fewrel_rel2id_5_ori.json --seed 42 -o fewrel-m5\n  rmx eval --model fewrel-m5 --data ../shared/data/fewrel/val_wiki.json --descriptions ... --split ...fewrel_rel2id_5_ori.json"
)]
pub struct TrainArgs {
    /// Labelled sentences: FewRel's format, or RE-Matching's processed format (a JSON list or
    /// JSON Lines of {"token", "h": {"pos"}, "t": {"pos"}, "relation"}). Repeat for several files.
    #[arg(long, value_name = "FILE", required = true)]
    data: Vec<PathBuf>,
    /// Relation descriptions: descriptions.jsonl, RE-Matching's description JSON or FewRel's
    /// pid2name.json. Repeat for several files: a relation takes its first description.
    #[arg(long, value_name = "FILE", required = true)]
    descriptions: Vec<PathBuf>,
    /// Relations held out from training, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "ID,ID,...", required_unless_present = "split", conflicts_with = "split")]
    unseen: Vec<String>,
    /// A RE-Matching rel2id split file: its "test" relations are held out.
    #[arg(long, value_name = "FILE")]
    split: Option<PathBuf>,
    /// Output checkpoint directory (replaced atomically if it is an existing checkpoint).
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
    /// Starting encoder (and starting description encoder); default: the default model.
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Passes over the training sentences.
    #[arg(long, default_value_t = TrainSettings::default().epochs, value_name = "N")]
    epochs: usize,
    /// Sentences per optimizer step (each sample's negatives are drawn from its batch).
    #[arg(long, default_value_t = TrainSettings::default().batch_size, value_name = "N")]
    batch_size: usize,
    /// Peak learning rate (linear warmup over the first 10 % of steps, then linear decay).
    #[arg(long, default_value_t = TrainSettings::default().lr, value_name = "LR")]
    lr: f64,
    /// Seed of the shuffles, negative draws and head initialisation. Several seeds
    /// (`--seed 42,43`) train once per seed and write the mean of the runs' weights (a model
    /// soup: one checkpoint, as fast to query as one run, and steadier than any one run).
    #[arg(long, value_delimiter = ',', default_values_t = [TrainSettings::default().seed], value_name = "N[,N...]")]
    seed: Vec<u64>,
    /// Candidate negatives per sample: N = the relations of N batch positions drawn at random
    /// (the reference), or "all" = every other relation of the batch. The hardest is used.
    #[arg(long, default_value = "7", value_name = "N|all", value_parser = parse_negatives)]
    negatives: Negatives,
    /// Learning rate of the new heads (context projection, distillation query, adversary)
    /// as a multiple of --lr.
    #[arg(long, default_value_t = TrainSettings::default().head_lr_scale, value_name = "X")]
    head_lr_scale: f64,
    /// Use every described relation that has no training sentence and is not held out as an
    /// extra candidate negative of every sample (descriptions only; no sentences).
    /// `--extra-negatives false` turns it off.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_value_t = TrainSettings::default().extra_negatives, default_missing_value = "true", action = clap::ArgAction::Set)]
    extra_negatives: bool,
    /// How head/tail type keywords become text on the description side: "the entity types
    /// including A and B" (type-template, RE-Matching) or "A , B" (keyword-list).
    #[arg(long, default_value = "type-template", value_name = "STYLE", value_parser = parse_style)]
    description_style: DescriptionStyle,
    /// Hidden dropout probability of the encoder while training (0 turns it off).
    #[arg(long, default_value_t = TrainSettings::default().dropout, value_name = "P")]
    dropout: f32,
    /// Matching loss: "margin" (RE-Matching's hinge against the hardest negative, γ = 0.06)
    /// or "contrastive" (softmax cross-entropy over the positive and the negatives).
    #[arg(long, default_value = "margin", value_name = "LOSS", value_parser = ["margin", "contrastive"])]
    loss: String,
    /// Temperature of the contrastive loss.
    #[arg(long, default_value_t = 0.05, value_name = "T")]
    temperature: f32,
    /// Weight β of the zero-training default in the checkpoint's score: an ensemble
    /// `(1−β)·trained + β·zero-shot` (computed with the frozen description encoder, which the
    /// checkpoint holds anyway); 0 = the trained model alone. `rmx eval --zero-shot-weight`
    /// measures another β on a checkpoint.
    #[arg(long, default_value_t = TrainSettings::default().zero_shot_weight, value_name = "B")]
    zero_shot_weight: f32,
    /// Train the description side too: a second encoder, started from the description
    /// encoder, embeds the training relations' texts in every step and learns from the
    /// matching loss (the reference keeps it frozen). The checkpoint then holds the trained
    /// description encoder and, for the zero-training part, the frozen one.
    /// `--train-descriptions false` keeps the description side frozen (the reference).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_value_t = TrainSettings::default().train_descriptions, default_missing_value = "true", action = clap::ArgAction::Set)]
    train_descriptions: bool,
    /// Weight α of each entity part of the score (the context part gets 1 − 2α).
    #[arg(long, default_value_t = TrainSettings::default().objective.alpha, value_name = "A")]
    alpha: f32,
    /// After each epoch, evaluate on the held-out relations' sentences of FILE (FewRel
    /// format; candidates = the held-out relations) and print macro F1.
    #[arg(long, value_name = "FILE")]
    validate: Option<PathBuf>,
    /// Write one JSON line per optimizer step (epoch, step, lr, losses, sentences/s) to FILE.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    #[command(flatten)]
    pub(super) device: super::Device,
}

fn parse_style(s: &str) -> std::result::Result<DescriptionStyle, String> {
    match s {
        "type-template" => Ok(DescriptionStyle::TypeTemplate),
        "keyword-list" => Ok(DescriptionStyle::KeywordList),
        other => Err(format!("expected type-template or keyword-list, got {other:?}")),
    }
}

fn parse_negatives(s: &str) -> std::result::Result<Negatives, String> {
    match s {
        "all" => Ok(Negatives::AllInBatch),
        n => n.parse::<usize>().ok().filter(|&n| n > 0).map(Negatives::Drawn).ok_or_else(|| format!("expected a positive count or \"all\", got {n:?}")),
    }
}

/// Run on the device `--device` names (`cli::run`).
impl OnDevice for TrainArgs {
    type Output = Outcome;
    fn run<B: Backend>(self) -> Result<Outcome> {
        train::<B>(self)
    }
}

fn train<B: Backend>(args: TrainArgs) -> Result<Outcome> {
    let started = Instant::now();
    if !(args.temperature > 0.0 && args.temperature.is_finite()) {
        return Err(Error::InvalidArgument(format!("--temperature {} must be positive", args.temperature)));
    }
    let matching = match args.loss.as_str() {
        "contrastive" => MatchingLoss::Contrastive { temperature: args.temperature },
        _ => MatchingLoss::Margin,
    };
    let settings = TrainSettings {
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        seed: args.seed[0],
        negatives: args.negatives,
        dropout: args.dropout,
        head_lr_scale: args.head_lr_scale,
        description_style: args.description_style,
        zero_shot_weight: args.zero_shot_weight,
        train_descriptions: args.train_descriptions,
        extra_negatives: args.extra_negatives,
        objective: ObjectiveSettings { alpha: args.alpha, matching, ..ObjectiveSettings::default() },
        ..TrainSettings::default()
    };
    let plan = TrainPlan {
        data: args.data,
        descriptions: args.descriptions,
        held_out: match args.split {
            Some(split) => HeldOut::Split(split),
            None => HeldOut::Relations(args.unseen),
        },
        model: super::model_dir(args.model),
        output: args.output,
        validate: args.validate,
        settings,
    };
    let mut log = match &args.log {
        Some(path) => Some((path.as_path(), std::io::BufWriter::new(std::fs::File::create(path).map_err(|e| Error::io(path, e))?))),
        None => None,
    };
    let summary = match args.seed.as_slice() {
        [_] => train_run::<B>(&plan, &mut log)?,
        seeds => train_soup::<B>(&plan, seeds, &mut log)?,
    };
    eprintln!(
        "trained in {:.0} s ({:.1} sentences/s); mean loss per epoch {:?}; checkpoint {} (description encoder in {}/{DESCRIPTION_DIR})",
        started.elapsed().as_secs_f64(),
        summary.sentences_per_second,
        summary.epoch_losses.iter().map(|l| (l * 1e4).round() / 1e4).collect::<Vec<_>>(),
        plan.output.display(),
        plan.output.display()
    );
    Ok(Outcome { rejected: summary.rejected })
}

type Log<'a> = Option<(&'a std::path::Path, std::io::BufWriter<std::fs::File>)>;

/// One run per seed into hidden siblings of the output, then their mean into the output
/// (the runs are removed). The summary is the last run's.
fn train_soup<B: Backend>(plan: &TrainPlan, seeds: &[u64], log: &mut Log) -> Result<TrainSummary> {
    if let Some(seed) = seeds.iter().enumerate().find_map(|(i, s)| seeds[..i].contains(s).then_some(s)) {
        return Err(Error::InvalidArgument(format!("--seed {seed} is given twice")));
    }
    check_output(&plan.output)?;
    let name = plan
        .output
        .file_name()
        .ok_or_else(|| Error::InvalidArgument(format!("{}: not a directory name", plan.output.display())))?
        .to_string_lossy()
        .into_owned();
    let runs: Vec<PathBuf> = seeds.iter().map(|s| plan.output.with_file_name(format!(".{name}.seed-{s}"))).collect();
    let result = (|| {
        let mut summary = None;
        for (i, (&seed, run)) in seeds.iter().zip(&runs).enumerate() {
            eprintln!("run {} of {} (seed {seed}) into {}", i + 1, seeds.len(), run.display());
            let one = TrainPlan { output: run.clone(), settings: TrainSettings { seed, ..plan.settings.clone() }, ..plan.clone() };
            summary = Some(train_run::<B>(&one, log)?);
        }
        eprintln!("averaging the {} runs' weights into {}", seeds.len(), plan.output.display());
        average_checkpoints(&runs, &plan.output, serde_json::json!({ "seeds": seeds }))?;
        Ok(summary.expect("at least two seeds"))
    })();
    for run in &runs {
        let _ = std::fs::remove_dir_all(run);
    }
    result
}

/// One training run, with its progress bar and log lines.
fn train_run<B: Backend>(plan: &TrainPlan, log: &mut Log) -> Result<TrainSummary> {
    let (epochs, batch_size) = (plan.settings.epochs, plan.settings.batch_size);
    let bar = ProgressBar::hidden();
    let (mut sentences, mut seconds) = (0usize, 0.0f64);
    let mut epoch = 0;
    let summary = run_training::<B>(plan, |p| {
        match p {
            Progress::Note(line) => eprintln!("{line}"),
            Progress::Rejected(line) => eprintln!("{line}"),
            Progress::Started { sentences, relations, held_out, steps_per_epoch } => {
                eprintln!(
                    "training on {sentences} sentences of {relations} relations ({held_out} held out), {epochs} epochs, batch {batch_size}, lr {}, seed {}",
                    plan.settings.lr, plan.settings.seed
                );
                bar.set_length((steps_per_epoch * epochs) as u64);
                bar.set_style(
                    ProgressStyle::with_template("epoch {prefix} {bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise}, eta {eta}]").expect("valid template"),
                );
                bar.set_draw_target(ProgressDrawTarget::stderr());
            }
            Progress::Epoch(e) => {
                epoch = e;
                bar.set_prefix(format!("{e}/{epochs}"));
            }
            Progress::Step(s) => {
                sentences += s.sentences;
                seconds += s.seconds;
                bar.set_message(format!(
                    "loss {:.4} (match {:.4}, adv {:.3})  {:.1} sent/s",
                    s.matching + s.adversarial,
                    s.matching,
                    s.adversarial,
                    sentences as f64 / seconds
                ));
                bar.inc(1);
                if let Some((path, w)) = log.as_mut() {
                    writeln!(w, "{}", serde_json::to_string(s).expect("report serialises")).and_then(|()| w.flush()).map_err(|e| Error::io(*path, e))?;
                }
                if bar.is_hidden() && s.step.is_multiple_of(10) {
                    eprintln!(
                        "epoch {epoch} step {}/{}: loss {:.4} (match {:.4}, adv {:.3}), {:.1} sent/s",
                        s.step,
                        s.total_steps,
                        s.matching + s.adversarial,
                        s.matching,
                        s.adversarial,
                        sentences as f64 / seconds
                    );
                }
            }
            Progress::Validated { epoch, scores } => bar.suspend(|| {
                eprintln!(
                    "epoch {epoch}: validation macro F1 {:.4} (P {:.4}, R {:.4}), accuracy {:.4}",
                    scores.f1, scores.precision, scores.recall, scores.accuracy
                )
            }),
        }
        Ok(())
    });
    bar.finish_and_clear();
    summary
}
