//! The RE-Matching training loop: shuffled batches of marked sentences of the training
//! relations, in-batch negatives drawn as the reference draws them, one forward/backward of
//! encoder + objective per batch, AdamW on a linear warmup/decay schedule. Everything random
//! comes from one seeded [`Rng`]: the same seed and data give the same losses.
use super::adamw::{linear_schedule, AdamW, AdamWSettings};
use super::description_tower::DescriptionTower;
use super::encoder::copy_into;
use super::objective::{HeadIds, Losses, ObjectiveSettings, Targets};
use crate::backend::Backend;
use crate::error::Result;
use crate::model::bert::{Bert, Dropout};
use crate::model::description::DescriptionStyle;
use crate::model::rematch::pack_marked;
use crate::rng::Rng;
use crate::text::markers::MarkedTokens;
use std::time::Instant;

/// The recipe. Defaults are the recommended one (see ARCHITECTURE.md, training).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainSettings {
    pub epochs: usize,
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    pub seed: u64,
    /// Warmup steps as a fraction of all steps.
    pub warmup_ratio: f64,
    /// How each sample's candidate negatives are chosen.
    pub negatives: Negatives,
    /// Learning rate of the freshly initialised heads, as a multiple of `lr`.
    pub head_lr_scale: f64,
    /// How entity-type keywords become description text (the checkpoint keeps it).
    pub description_style: DescriptionStyle,
    /// Hidden dropout probability of the encoder during training.
    pub dropout: f32,
    /// Weight of the zero-training default in the checkpoint's ensemble score (inference
    /// only; training does not see it).
    pub zero_shot_weight: f32,
    /// Train the description side too (a [`DescriptionTower`], which `rmx train` builds and
    /// attaches with [`Trainer::with_description_tower`] when this is set).
    #[serde(default)]
    pub train_descriptions: bool,
    /// Use the described relations without training sentences (and not held out) as extra
    /// candidate negatives (`rmx train` passes them to [`Trainer::with_extra_negatives`]).
    #[serde(default)]
    pub extra_negatives: bool,
    pub objective: ObjectiveSettings,
    pub adamw: AdamWSettings,
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            epochs: 3,
            batch_size: 128,
            lr: 8e-5,
            seed: 42,
            warmup_ratio: 0.1,
            negatives: Negatives::Drawn(7),
            head_lr_scale: 1.0,
            description_style: DescriptionStyle::TypeTemplate,
            dropout: 0.1,
            zero_shot_weight: 0.2,
            train_descriptions: true,
            extra_negatives: true,
            objective: ObjectiveSettings::default(),
            adamw: AdamWSettings::default(),
        }
    }
}

/// Candidate negatives of a sample (the loss uses the hardest of them).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Negatives {
    /// The reference's draw: this many distinct batch positions (itself included); their
    /// relations other than its own.
    Drawn(usize),
    /// Every other relation of the batch.
    AllInBatch,
}

/// Marked sentences with their training-relation index (a row of the relation vectors).
pub struct TrainingSet {
    pub sentences: Vec<MarkedTokens>,
    pub labels: Vec<u32>,
}

/// What one optimizer step did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepReport {
    pub epoch: usize,
    /// 1-based optimizer step.
    pub step: u64,
    pub total_steps: u64,
    pub lr: f64,
    pub matching: f32,
    pub adversarial: f32,
    pub sentences: usize,
    pub tokens: usize,
    /// Wall time of the step.
    pub seconds: f64,
    /// Bytes of activations the step kept for its backward pass.
    pub activation_bytes: usize,
}

pub struct Trainer<B: Backend> {
    /// The encoder being trained; its parameters hold the heads' too.
    pub bert: Bert<B>,
    pub heads: HeadIds,
    /// Frozen description vectors of the training relations, `[n_train × 3d]`.
    relation_vectors: Vec<f32>,
    /// Description vectors of relations with no training sentence, `[n_extra × 3d]`: extra
    /// candidate negatives of every sample (see [`Trainer::with_extra_negatives`]).
    extra_negatives: Vec<f32>,
    optimizer: AdamW<B>,
    /// The trained description side, when there is one (`with_description_tower`).
    pub description_tower: Option<DescriptionTower<B>>,
    pub settings: TrainSettings,
    rng: Rng,
}

impl<B: Backend> Trainer<B> {
    /// Starts from `bert` with fresh heads; `relation_vectors: [n_train × 3d]`.
    pub fn new(bert: &Bert<B>, relation_vectors: Vec<f32>, settings: TrainSettings) -> Trainer<B> {
        let d = bert.config.hidden_size;
        assert!(!relation_vectors.is_empty() && relation_vectors.len().is_multiple_of(3 * d), "relation vectors are not [n × 3d]");
        let mut rng = Rng::new(settings.seed);
        let mut bert = bert.snapshot();
        let heads = HeadIds::init(&mut bert.params, d, relation_vectors.len() / (3 * d), &mut rng);
        let mut optimizer = AdamW::new(&bert.params, settings.adamw);
        for id in heads.ids() {
            optimizer.set_lr_scale(id, settings.head_lr_scale);
        }
        Trainer { bert, heads, relation_vectors, extra_negatives: Vec::new(), optimizer, description_tower: None, settings, rng }
    }

    /// Adds description vectors `[n × 3d]` of relations that have no training sentence (never
    /// a held-out one) as candidate negatives of every sample: the hardest negative is then
    /// sought among more relations than a batch holds.
    pub fn with_extra_negatives(mut self, vectors: Vec<f32>) -> Trainer<B> {
        assert!(vectors.len().is_multiple_of(3 * self.heads.d), "extra negatives are not [n × 3d]");
        self.extra_negatives = vectors;
        self
    }

    /// Trains the description side too: `tower` embeds the training relations' texts in
    /// every step (see [`DescriptionTower`]); one tower relation per training relation.
    pub fn with_description_tower(mut self, tower: DescriptionTower<B>) -> Trainer<B> {
        assert_eq!(tower.relations(), self.relation_vectors.len() / (3 * self.heads.d), "one tower relation per training relation");
        self.description_tower = Some(tower);
        self
    }

    /// Optimizer steps of a whole run, as the reference counts them (`len · epochs / batch`,
    /// rounded down; a last partial batch per epoch runs past it at lr 0).
    pub fn total_steps(&self, examples: usize) -> u64 {
        (examples * self.settings.epochs / self.settings.batch_size.max(1)) as u64
    }

    /// Runs every epoch; `on_step` sees each step. An error: the device failed.
    pub fn train(&mut self, data: &TrainingSet, mut on_step: impl FnMut(&StepReport)) -> Result<()> {
        for epoch in 1..=self.settings.epochs {
            self.run_epoch(data, epoch, &mut on_step)?;
        }
        Ok(())
    }

    /// One pass over `data` in a fresh shuffled order (epoch `epoch`, 1-based). An error:
    /// the device failed.
    pub fn run_epoch(&mut self, data: &TrainingSet, epoch: usize, mut on_step: impl FnMut(&StepReport)) -> Result<()> {
        assert_eq!(data.sentences.len(), data.labels.len());
        let total = self.total_steps(data.sentences.len());
        let warmup = total as f64 * self.settings.warmup_ratio;
        let mut order: Vec<usize> = (0..data.sentences.len()).collect();
        self.rng.shuffle(&mut order);
        for chunk in order.chunks(self.settings.batch_size.max(1)) {
            let started = Instant::now();
            let lr = self.settings.lr * linear_schedule(self.optimizer.steps(), warmup, total);
            let (losses, tokens, activation_bytes) = self.step(data, chunk, lr)?;
            on_step(&StepReport {
                epoch,
                step: self.optimizer.steps(),
                total_steps: total,
                lr,
                matching: losses.matching,
                adversarial: losses.adversarial,
                sentences: chunk.len(),
                tokens,
                seconds: started.elapsed().as_secs_f64(),
                activation_bytes,
            });
        }
        Ok(())
    }

    /// One optimizer step on the sentences `batch` of `data`, all on the device; returns the
    /// losses, the tokens and the activation bytes, or the device's error.
    fn step(&mut self, data: &TrainingSet, batch: &[usize], lr: f64) -> Result<(Losses, usize, usize)> {
        let d = self.heads.d;
        let sentences: Vec<&MarkedTokens> = batch.iter().map(|&i| &data.sentences[i]).collect();
        let (packed, rows) = pack_marked(&sentences);

        // The batch's relation table: its distinct relations in order of appearance.
        let train_label: Vec<u32> = batch.iter().map(|&i| data.labels[i]).collect();
        let mut table: Vec<u32> = Vec::new();
        let relation: Vec<u32> = train_label
            .iter()
            .map(|l| match table.iter().position(|t| t == l) {
                Some(c) => c as u32,
                None => {
                    table.push(*l);
                    (table.len() - 1) as u32
                }
            })
            .collect();
        let mut fixed: Vec<f32> = table.iter().flat_map(|&l| &self.relation_vectors[l as usize * 3 * d..(l as usize + 1) * 3 * d]).copied().collect();
        fixed.extend_from_slice(&self.extra_negatives);
        // descriptions: [(R + extra) × 3d]
        let mut descriptions = B::from_host(&fixed);
        let negatives = self.draw_negatives(&relation, table.len(), self.extra_negatives.len() / (3 * d));
        let settings = self.settings.objective;
        let dropout = Dropout { p: self.settings.dropout, key: self.rng.next_u64() };
        // A trained description side replaces the batch relations' fixed vectors.
        let tower_forward = self.description_tower.as_ref().map(|tower| tower.forward(&table));
        if let Some(f) = &tower_forward {
            copy_into::<B>(&f.pooled, B::slice_mut(&mut descriptions, 0..B::len(&f.pooled)));
        }
        let targets = Targets {
            starts: &packed.starts,
            rows: &rows,
            descriptions: &*descriptions,
            relation: &relation,
            negatives: &negatives,
            train_label: &train_label,
        };
        let cache = self.bert.forward_train(&packed, dropout);
        let (losses, head_cache) = self.heads.forward(&self.bert.params, cache.hidden(), &targets, &settings);
        let mut grads = self.bert.params.zero_grads();
        let mut d_hidden = B::zeros(B::len(cache.hidden()));
        // d_descriptions: [(R + extra) × 3d]; only the batch relations' rows are used.
        let mut d_descriptions = tower_forward.as_ref().map(|_| B::zeros(B::len(&descriptions)));
        self.heads.backward(&self.bert.params, cache.hidden(), &targets, &settings, &head_cache, &mut grads, &mut d_hidden, d_descriptions.as_deref_mut());
        self.bert.backward(&packed, &cache, &d_hidden, dropout, &mut grads);
        let activation_bytes = cache.bytes();
        drop(cache);
        self.optimizer.step(&mut self.bert.params, &grads, lr);
        if let (Some(tower), Some(f), Some(dd)) = (self.description_tower.as_mut(), tower_forward, d_descriptions) {
            let rows = B::len(&f.pooled);
            tower.backward_and_step(f, B::slice(&dd, 0..rows), lr);
        }
        B::sync()?;
        Ok((losses, packed.tokens(), activation_bytes))
    }

    /// `[B × (R + extra)]`: the candidate negatives of each sample among the batch's `R`
    /// relations (see [`Negatives`]), and all `extra` description-only relations.
    fn draw_negatives(&mut self, relation: &[u32], r: usize, extra: usize) -> Vec<bool> {
        let (b, width) = (relation.len(), r + extra);
        let mut mask = vec![false; b * width];
        for (i, &own) in relation.iter().enumerate() {
            let (row, extras) = mask[i * width..(i + 1) * width].split_at_mut(r);
            extras.fill(true);
            match self.settings.negatives {
                Negatives::Drawn(k) => {
                    for j in self.rng.sample(b, k) {
                        row[relation[j] as usize] = true;
                    }
                }
                Negatives::AllInBatch => row.fill(true),
            }
            row[own as usize] = false;
        }
        mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;

    fn tiny_trainer(negatives: Negatives) -> Trainer<Cpu> {
        let bert = Bert::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_bert")).unwrap();
        let d = bert.config.hidden_size;
        let settings = TrainSettings { negatives, ..TrainSettings::default() };
        Trainer::new(&bert, vec![0.5; 3 * 3 * d], settings).with_extra_negatives(vec![0.25; 2 * 3 * d])
    }

    #[test]
    fn negatives_exclude_the_own_relation_and_include_every_extra() {
        let relation = [0u32, 1, 0, 2, 1, 0, 0, 2, 1];
        let (r, extra) = (3, 2);
        let mut all = tiny_trainer(Negatives::AllInBatch);
        let mask = all.draw_negatives(&relation, r, extra);
        assert_eq!(mask.len(), relation.len() * (r + extra));
        for (i, row) in mask.chunks(r + extra).enumerate() {
            for (j, &neg) in row.iter().enumerate() {
                assert_eq!(neg, j != relation[i] as usize, "all in batch: sample {i}, column {j}");
            }
        }
        let mut drawn = tiny_trainer(Negatives::Drawn(2));
        let mask = drawn.draw_negatives(&relation, r, extra);
        for (i, row) in mask.chunks(r + extra).enumerate() {
            assert!(!row[relation[i] as usize], "never its own relation");
            assert!(row[r..].iter().all(|&n| n), "every extra relation");
            assert!(row[..r].iter().filter(|&&n| n).count() <= 2, "at most the relations of 2 drawn positions");
        }
    }
}
