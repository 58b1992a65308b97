//! The trained description side (`rmx train --train-descriptions`): a second encoder,
//! started from the description encoder, that embeds the three texts of each training
//! relation of a batch (description, head types, tail types; mean pooling, as the frozen
//! side does) in every step and learns from the matching loss through them. Without it the
//! description vectors are computed once and stay fixed (the reference).
//!
//! ```text
//! P_r = meanpool(Enc_d(text_r,k))  for k = description, head types, tail types    [R × 3d]
//! s(i, r) = Σ_k w_k cos(part_i,k, P_r,k)   (the objective's scores; d s/d P from its backward)
//! ```
//!
//! The tower runs without dropout, with its own AdamW state and the input side's schedule.
//! Extra negatives (description-only relations) stay frozen vectors.
use super::adamw::{AdamW, AdamWSettings};
use super::encoder::EncoderCache;
use crate::backend::Backend;
use crate::model::bert::{Bert, Dropout, PackedBatch};

pub struct DescriptionTower<B: Backend> {
    /// The encoder being trained.
    pub bert: Bert<B>,
    optimizer: AdamW<B>,
    /// Token ids of each training relation's three texts, in label order.
    texts: Vec<[Vec<u32>; 3]>,
}

/// What one forward keeps for the backward pass.
pub struct TowerForward<B: Backend> {
    batch: PackedBatch,
    cache: EncoderCache<B>,
    /// `[R × 3d]`: per relation, the pooled description, head-type and tail-type texts.
    pub pooled: B::Buf,
}

impl<B: Backend> DescriptionTower<B> {
    /// Starts from `bert` (the description encoder); `texts[label]`: the token ids of that
    /// training relation's description, head-type and tail-type texts.
    pub fn new(bert: &Bert<B>, texts: Vec<[Vec<u32>; 3]>, adamw: AdamWSettings) -> DescriptionTower<B> {
        let bert = bert.snapshot();
        let optimizer = AdamW::new(&bert.params, adamw);
        DescriptionTower { bert, optimizer, texts }
    }

    pub fn relations(&self) -> usize {
        self.texts.len()
    }

    /// The description parts of the training relations `labels`, `[R × 3d]`.
    pub fn forward(&self, labels: &[u32]) -> TowerForward<B> {
        let d = self.bert.config.hidden_size;
        let sequences: Vec<&[u32]> = labels.iter().flat_map(|&l| self.texts[l as usize].iter().map(Vec::as_slice)).collect();
        let batch = PackedBatch::new(&sequences);
        let cache = self.bert.forward_train(&batch, Dropout::OFF);
        // pooled: [3R × d] = [R × 3d]
        let mut pooled = B::zeros(sequences.len() * d);
        B::mean_pool_forward(cache.hidden(), &batch.starts, d, &mut pooled);
        TowerForward { batch, cache, pooled }
    }

    /// The backward pass from `d_pooled: [R × 3d]` and one AdamW step at `lr`.
    pub fn backward_and_step(&mut self, forward: TowerForward<B>, d_pooled: &B::Mem, lr: f64) {
        let d = self.bert.config.hidden_size;
        assert_eq!(B::len(d_pooled), B::len(&forward.pooled));
        let mut d_hidden = B::zeros(B::len(forward.cache.hidden()));
        B::mean_pool_backward(d_pooled, &forward.batch.starts, d, &mut d_hidden);
        let mut grads = self.bert.params.zero_grads();
        self.bert.backward(&forward.batch, &forward.cache, &d_hidden, Dropout::OFF, &mut grads);
        drop(forward);
        self.optimizer.step(&mut self.bert.params, &grads, lr);
    }
}
