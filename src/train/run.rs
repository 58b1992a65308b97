//! Training as one library call: [`run`] takes a [`TrainPlan`] (data, descriptions, the
//! held-out relations, the starting model, the recipe), trains epoch by epoch, validates
//! after each epoch when asked, writes the checkpoint with its training record, and tells
//! the caller what happens through a [`Progress`] callback (the CLI draws its progress bar
//! and prints from it).
use super::checkpoint::save_checkpoint;
use super::dataset::prepare_training;
use super::description_tower::DescriptionTower;
use super::evaluate::evaluate;
use super::metrics::Scores;
use super::objective::MatchingLoss;
use super::trainer::{StepReport, TrainSettings, Trainer};
use crate::backend::Backend;
use crate::data::descriptions::read_description_files;
use crate::data::fewrel::{read_labelled, read_split};
use crate::error::{Error, Result};
use crate::model::bert::Bert;
use crate::model::description::{description_texts, encode_relations};
use crate::model::heads::CheckpointSettings;
use crate::model::rematch::Matcher;
use crate::model::scoring::PartWeights;
use crate::model::sentence::SentenceEncoder;
use crate::text::tokenizer::TextTokenizer;
use std::path::PathBuf;

/// The relations held out from training (never a training relation nor a negative).
#[derive(Debug, Clone)]
pub enum HeldOut {
    /// These relation ids.
    Relations(Vec<String>),
    /// The "test" relations of a RE-Matching rel2id split file.
    Split(PathBuf),
}

/// Everything one training run needs.
#[derive(Debug, Clone)]
pub struct TrainPlan {
    /// Labelled sentences (FewRel's or RE-Matching's processed format), one or more files.
    pub data: Vec<PathBuf>,
    /// Relation description files (a relation takes its first description).
    pub descriptions: Vec<PathBuf>,
    pub held_out: HeldOut,
    /// The starting encoder: a model directory or a checkpoint trained without a trained
    /// description side (its description encoder is kept).
    pub model: PathBuf,
    /// The checkpoint directory to write (replaced atomically if it is a checkpoint).
    pub output: PathBuf,
    /// Labelled sentences to validate on after each epoch (the held-out relations' ones).
    pub validate: Option<PathBuf>,
    pub settings: TrainSettings,
}

/// What a run tells its caller, in order.
pub enum Progress<'a> {
    /// Something worth a line (e.g. a held-out relation without sentences).
    Note(String),
    /// A record that could not be used (`place: reason`).
    Rejected(&'a str),
    /// Training starts: `sentences` of `relations` training relations, `held_out` relations
    /// held out, `steps` optimizer steps per epoch (the last one maybe partial).
    Started { sentences: usize, relations: usize, held_out: usize, steps_per_epoch: usize },
    /// Epoch `epoch` (1-based) starts.
    Epoch(usize),
    /// One optimizer step is done.
    Step(&'a StepReport),
    /// The validation scores after epoch `epoch`.
    Validated { epoch: usize, scores: &'a Scores },
}

/// What a finished run did.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// Records rejected (data and descriptions).
    pub rejected: usize,
    /// Mean loss (matching + adversarial) of each epoch's steps.
    pub epoch_losses: Vec<f64>,
    pub sentences_per_second: f64,
}

impl TrainSettings {
    /// Refuses a recipe outside the ranges training is defined on.
    pub fn check(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidArgument(what));
        if self.batch_size == 0 || self.epochs == 0 {
            return bad("batch size and epochs must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout {} is outside [0, 1)", self.dropout));
        }
        if !(0.0..=0.5).contains(&self.objective.alpha) {
            return bad(format!("alpha {} is outside [0, 0.5]", self.objective.alpha));
        }
        if !(0.0..1.0).contains(&self.zero_shot_weight) {
            return bad(format!("zero-shot weight {} is outside [0, 1)", self.zero_shot_weight));
        }
        if let MatchingLoss::Contrastive { temperature } = self.objective.matching {
            if !(temperature > 0.0 && temperature.is_finite()) {
                return bad(format!("temperature {temperature} must be positive"));
            }
        }
        Ok(())
    }
}

/// Trains as `plan` says on the device `B` and writes the checkpoint. An error from
/// `progress` ends the run (at the latest when the current epoch ends) before anything is
/// written.
pub fn run<B: Backend>(plan: &TrainPlan, mut progress: impl FnMut(Progress) -> Result<()>) -> Result<TrainSummary> {
    let settings = &plan.settings;
    settings.check()?;
    let unseen = match &plan.held_out {
        HeldOut::Split(split) => read_split(split, "test")?,
        HeldOut::Relations(ids) => ids.clone(),
    };
    let descriptions = read_description_files(&plan.descriptions)?;
    let mut rejected: Vec<String> = descriptions.rejected.clone();
    let mut examples = Vec::new();
    for path in &plan.data {
        let labelled = read_labelled(path)?;
        rejected.extend(labelled.rejected);
        examples.extend(labelled.examples);
    }
    for id in unseen.iter().filter(|u| !examples.iter().any(|e| &e.relation == *u)) {
        progress(Progress::Note(format!("note: unseen relation {id} has no sentence in the data")))?;
    }

    // A trained checkpoint continues from its encoder and keeps its description encoder.
    let source = &plan.model;
    let description_dir = match CheckpointSettings::load(source)? {
        Some(s) if s.zero_shot_encoder.is_some() => {
            return Err(Error::InvalidArgument(format!(
                "{}: a checkpoint that trained its description side cannot be trained further; start from a plain encoder or a checkpoint trained without --train-descriptions",
                source.display()
            )))
        }
        Some(s) => source.join(s.description_encoder),
        None => source.clone(),
    };
    let description = SentenceEncoder::<B>::load(&description_dir)?;
    let bert = Bert::<B>::load(source)?;
    let tokenizer = TextTokenizer::load_sharing(&source.join("tokenizer.json"), &[&description.tokenizer])?;
    let prepared = prepare_training(&examples, &descriptions.relations, &unseen, &tokenizer, bert.config.max_position_embeddings)?;
    let data_names = plan.data.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join("+");
    rejected.extend(prepared.rejected.iter().map(|r| format!("{data_names}: {r}")));
    for r in &rejected {
        progress(Progress::Rejected(r))?;
    }
    let validation = match &plan.validate {
        Some(path) => Some(read_labelled(path)?.examples),
        None => None,
    };

    let weights = PartWeights::from_alpha(settings.objective.alpha);
    let vectors = encode_relations(&description, &prepared.relations, settings.description_style, weights, 64, |_| {})?;
    let n = prepared.set.sentences.len();
    let steps_per_epoch = n.div_ceil(settings.batch_size);
    progress(Progress::Started { sentences: n, relations: prepared.relations.len(), held_out: unseen.len(), steps_per_epoch })?;
    let extra: Vec<_> = if settings.extra_negatives {
        descriptions.relations.iter().filter(|r| !unseen.contains(&r.id) && !prepared.relations.iter().any(|t| t.id == r.id)).cloned().collect()
    } else {
        Vec::new()
    };
    let extra_vectors = encode_relations(&description, &extra, settings.description_style, weights, 64, |_| {})?;
    if settings.extra_negatives {
        progress(Progress::Note(format!("{} description-only relations are extra negatives", extra.len())))?;
    }
    let mut trainer = Trainer::new(&bert, vectors.concat(), settings.clone()).with_extra_negatives(extra_vectors.concat());
    if settings.train_descriptions {
        let texts = prepared
            .relations
            .iter()
            .map(|r| {
                let [text, head, tail] = description_texts(r, settings.description_style);
                let ids = |t: Option<String>| description.tokenize(t.as_deref().unwrap_or(&r.description)).map(|t| t.ids);
                Ok([ids(text)?, ids(head)?, ids(tail)?])
            })
            .collect::<Result<Vec<_>>>()?;
        trainer = trainer.with_description_tower(DescriptionTower::new(&description.bert, texts, settings.adamw));
    }
    drop(bert);

    let (mut epoch_losses, mut validation_scores) = (Vec::new(), Vec::new());
    let (mut sentences, mut seconds, mut peak_activations) = (0usize, 0.0f64, 0usize);
    for epoch in 1..=settings.epochs {
        progress(Progress::Epoch(epoch))?;
        let mut stopped = Ok(());
        let (mut epoch_loss, mut epoch_steps) = (0.0f64, 0usize);
        trainer.run_epoch(&prepared.set, epoch, |s: &StepReport| {
            epoch_loss += (s.matching + s.adversarial) as f64;
            epoch_steps += 1;
            sentences += s.sentences;
            seconds += s.seconds;
            peak_activations = peak_activations.max(s.activation_bytes);
            if stopped.is_ok() {
                stopped = progress(Progress::Step(s));
            }
        })?;
        stopped?;
        epoch_losses.push(epoch_loss / epoch_steps.max(1) as f64);
        if let Some(examples) = &validation {
            let scores = evaluate(&validation_matcher(&trainer, &description_dir)?, examples, &descriptions.relations, &unseen, false, 64, |_| {})?;
            progress(Progress::Validated { epoch, scores: &scores })?;
            validation_scores.push(
                serde_json::json!({"epoch": epoch, "f1": scores.f1, "precision": scores.precision, "recall": scores.recall, "accuracy": scores.accuracy}),
            );
        }
    }
    let record = serde_json::json!({
        "settings": settings,
        "data": plan.data,
        "descriptions": plan.descriptions,
        "unseen": unseen,
        "training_relations": prepared.relations.iter().map(|r| &r.id).collect::<Vec<_>>(),
        "extra_negative_relations": extra.iter().map(|r| &r.id).collect::<Vec<_>>(),
        "sentences": n,
        "mean_loss_per_epoch": epoch_losses,
        "sentences_per_second": sentences as f64 / seconds,
        "peak_activation_bytes": peak_activations,
        "validation": validation_scores,
    });
    save_checkpoint(&plan.output, &trainer, source, &description_dir, record)?;
    Ok(TrainSummary { rejected: rejected.len(), epoch_losses, sentences_per_second: sentences as f64 / seconds })
}

/// The model being trained, as inference sees it; with a trained description side, the
/// frozen description encoder serves the zero-training part.
fn validation_matcher<B: Backend>(trainer: &Trainer<B>, description_dir: &std::path::Path) -> Result<Matcher<B>> {
    let loaded = SentenceEncoder::load(description_dir)?;
    let (description_encoder, frozen) = match &trainer.description_tower {
        Some(tower) => (loaded.with_bert(tower.bert.snapshot()), Some(loaded)),
        None => (loaded, None),
    };
    let s = &trainer.settings;
    Matcher::from_trained(
        trainer.bert.snapshot(),
        trainer.heads.to_heads(&trainer.bert.params),
        description_encoder,
        frozen,
        s.objective.alpha,
        s.description_style,
        s.zero_shot_weight,
    )
}
