//! The RE-Matching model at inference: query vectors for marked sentences, relation vectors
//! for descriptions, both unit `3d` vectors whose inner product is the fine-grained score.
//!
//! A trained checkpoint can also be an ensemble with the zero-training default (its
//! `zero_shot_weight` β > 0): both vectors are then the concatenation of the trained
//! model's `[3d]` block scaled by `√(1−β)` and the zero-training default's block (computed
//! with the checkpoint's frozen description encoder) scaled by `√β`, so their inner product
//! is `(1−β)·s_trained + β·s_zero_shot` and the index still holds unit vectors. A checkpoint
//! that trained its description encoder keeps the frozen one beside it for this part. The
//! zero-training block describes each relation as the zero-training default does
//! (`zero_shot::relation_texts`), with the hubness bias of the text-only relations
//! (`hubness`) as the vectors' last component, so every matcher's vectors end with it (0 for
//! relations with keyword lists and for a trained model alone).
use super::bert::{Bert, PackedBatch, Precision};
use super::description::{self, DescriptionStyle};
use super::heads::{CheckpointSettings, Heads, HEADS_FILE};
use super::hubness;
use super::scoring::{combine_parts, PartWeights};
use super::sentence::SentenceEncoder;
use super::zero_shot::{self, PlainQuery};
use crate::backend::{Activation, Backend, EntityRows};
use crate::data::descriptions::Relation;
use crate::error::{Error, Result};
use crate::text::markers::{MarkedTokens, WordInstance};
use std::path::Path;

/// α of the reference method: weights (0.34, 0.33, 0.33).
pub const DEFAULT_ALPHA: f32 = 0.33;

/// How the query side turns encoder states into the three parts.
#[allow(clippy::large_enum_variant)] // one per matcher: boxing the encoder would buy nothing
enum QuerySide<B: Backend> {
    /// A trained checkpoint: its fine-tuned encoder and heads, the description style it
    /// was trained against, and its share in an ensemble with the zero-training default
    /// (`1 − zero_shot_weight`); `frozen`: the pretrained encoder of the zero-training part
    /// when the description encoder was trained (else the description encoder is it).
    Trained { bert: Bert<B>, heads: Heads<B>, style: DescriptionStyle, zero_shot_weight: f32, frozen: Option<SentenceEncoder<B>> },
    /// A plain pretrained sentence encoder, no training (see `zero_shot`).
    ZeroShot,
}

/// A validated, tokenized query, ready for `encode_queries`.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryInput {
    Marked(MarkedTokens),
    Plain(PlainQuery),
    /// For an ensemble: the marked sentence and the plain query of the same instance.
    Both(MarkedTokens, PlainQuery),
}

/// The model on the device `B`: its weights are uploaded once, when it loads.
pub struct Matcher<B: Backend> {
    query: QuerySide<B>,
    /// The description-side encoder (for a plain model, also the query encoder).
    pub description: SentenceEncoder<B>,
    /// The weights of each `[3d]` block of the vectors (one block, or two for an ensemble),
    /// each scaled by its model's share.
    blocks: Vec<PartWeights>,
    fingerprint: String,
}

impl<B: Backend> Matcher<B> {
    /// A trained checkpoint (a directory with `rmx.json`) or a plain sentence encoder
    /// (zero-training default).
    pub fn load(dir: &Path) -> Result<Matcher<B>> {
        Self::load_with(dir, None)
    }

    /// As [`Matcher::load`], with the checkpoint's ensemble weight β replaced by
    /// `zero_shot_weight` when given (e.g. to measure another β); an error for a plain model.
    pub fn load_with(dir: &Path, zero_shot_weight: Option<f32>) -> Result<Matcher<B>> {
        match CheckpointSettings::load(dir)? {
            Some(settings) => {
                if let Some(beta) = zero_shot_weight {
                    check_zero_shot_weight(beta).map_err(Error::InvalidArgument)?;
                }
                let beta = zero_shot_weight.unwrap_or(settings.zero_shot_weight);
                let description = SentenceEncoder::load(&dir.join(&settings.description_encoder))?;
                let frozen = settings.zero_shot_encoder.as_ref().map(|d| SentenceEncoder::load_sharing(&dir.join(d), &[&description.tokenizer])).transpose()?;
                let bert = Bert::load(dir)?;
                let heads = Heads::load(&dir.join(HEADS_FILE), bert.config.hidden_size)?;
                let blocks = trained_blocks(settings.alpha, beta);
                let style = match settings.description_style {
                    DescriptionStyle::TypeTemplate => "trained",
                    DescriptionStyle::KeywordList => "trained-keyword-list",
                };
                let mode = if beta > 0.0 { format!("{style}+zero-shot-{beta}") } else { style.to_string() };
                let mut encoders = vec![dir.join(&settings.description_encoder)];
                encoders.extend(settings.zero_shot_encoder.as_ref().map(|d| dir.join(d)));
                let encoders: Vec<&Path> = encoders.iter().map(|p| p.as_path()).collect();
                let fingerprint = super::fingerprint::of_model(dir, &mode, PartWeights::sum(&blocks), &encoders)?;
                let query = QuerySide::Trained { bert, heads, style: settings.description_style, zero_shot_weight: beta, frozen };
                Ok(Matcher { query, description, blocks, fingerprint })
            }
            None if zero_shot_weight.is_some() => {
                Err(Error::InvalidArgument(format!("{}: a zero-shot weight needs a trained checkpoint (this is a plain encoder)", dir.display())))
            }
            None => {
                let description = SentenceEncoder::load(dir)?;
                let weights = zero_shot::WEIGHTS;
                let fingerprint = super::fingerprint::of_model(dir, "zero-shot-v2", weights, &[])?;
                Ok(Matcher { query: QuerySide::ZeroShot, description, blocks: vec![weights], fingerprint })
            }
        }
    }

    /// A trained model held in memory (e.g. validation during training), not yet saved:
    /// its fingerprint names it as such, so no index is built with it by mistake. `frozen`:
    /// the pretrained encoder of the zero-training part when `description` was trained.
    #[allow(clippy::too_many_arguments)]
    pub fn from_trained(
        bert: Bert<B>,
        heads: Heads<B>,
        description: SentenceEncoder<B>,
        frozen: Option<SentenceEncoder<B>>,
        alpha: f32,
        style: DescriptionStyle,
        zero_shot_weight: f32,
    ) -> Result<Matcher<B>> {
        check_zero_shot_weight(zero_shot_weight).map_err(Error::InvalidArgument)?;
        let blocks = trained_blocks(alpha, zero_shot_weight);
        let w = PartWeights::sum(&blocks);
        let fingerprint = format!("trained-in-memory+zero-shot-{zero_shot_weight};weights={},{},{}", w.context, w.head, w.tail);
        Ok(Matcher { query: QuerySide::Trained { bert, heads, style, zero_shot_weight, frozen }, description, blocks, fingerprint })
    }

    /// Runs every encoder (query and description side) in `precision`. The fingerprint does
    /// not change: bf16 vectors stay within rounding of f32 ones and search the same index.
    pub fn set_precision(&mut self, precision: Precision) -> Result<()> {
        self.description.bert.set_precision(precision)?;
        if let QuerySide::Trained { bert, frozen, .. } = &mut self.query {
            bert.set_precision(precision)?;
            if let Some(frozen) = frozen {
                frozen.bert.set_precision(precision)?;
            }
        }
        Ok(())
    }

    /// Identifies the model and scoring that vectors come from; an index records it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn is_trained(&self) -> bool {
        matches!(self.query, QuerySide::Trained { .. })
    }

    /// The weights of the vectors' `[3d]` blocks (see [`part_cosines`](super::scoring::part_cosines)).
    pub fn blocks(&self) -> &[PartWeights] {
        &self.blocks
    }

    /// The weights of the three parts of the score (summed over an ensemble's models).
    pub fn weights(&self) -> PartWeights {
        PartWeights::sum(&self.blocks)
    }

    /// The dimension of query and relation vectors: `3d` per block, plus one component for
    /// the zero-training block's hubness bias of text-only relations (`hubness`; 0 for a
    /// trained model alone).
    pub fn dim(&self) -> usize {
        self.parts_dim() + 1
    }

    /// `3d` per block: the leading components of the vectors, which hold the parts.
    pub fn parts_dim(&self) -> usize {
        3 * self.description.dim() * self.blocks.len()
    }

    /// The encoder of the zero-training part (the pretrained one).
    fn zero_shot_encoder(&self) -> &SentenceEncoder<B> {
        match &self.query {
            QuerySide::Trained { frozen: Some(frozen), .. } => frozen,
            _ => &self.description,
        }
    }

    fn query_bert(&self) -> &Bert<B> {
        match &self.query {
            QuerySide::Trained { bert, .. } => bert,
            QuerySide::ZeroShot => &self.description.bert,
        }
    }

    /// Validates and tokenizes one instance (rejects text longer than the model's positions).
    pub fn prepare(&self, instance: &WordInstance) -> Result<QueryInput> {
        let max_tokens = self.query_bert().config.max_position_embeddings;
        let plain = || zero_shot::prepare(self.zero_shot_encoder(), instance, max_tokens);
        match self.query {
            QuerySide::Trained { zero_shot_weight, .. } => {
                let marked = instance.mark(&self.description.tokenizer, max_tokens)?;
                Ok(if zero_shot_weight > 0.0 { QueryInput::Both(marked, plain()?) } else { QueryInput::Marked(marked) })
            }
            QuerySide::ZeroShot => Ok(QueryInput::Plain(plain()?)),
        }
    }

    /// Unit query vectors of prepared instances, encoded as one packed batch (per model).
    pub fn encode_queries(&self, inputs: &[QueryInput]) -> Result<Vec<Vec<f32>>> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let foreign = || Error::InvalidArgument("query inputs were prepared by another model".into());
        let mut queries = match &self.query {
            QuerySide::Trained { bert, heads, zero_shot_weight, .. } if *zero_shot_weight > 0.0 => {
                let (marked, plain): (Vec<_>, Vec<_>) = inputs
                    .iter()
                    .map(|i| if let QueryInput::Both(m, p) = i { Some((m, p)) } else { None })
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(foreign)?
                    .into_iter()
                    .unzip();
                let trained = trained_parts(bert, heads, &marked, self.blocks[0])?;
                let zero = zero_shot::encode(self.zero_shot_encoder(), &plain, self.blocks[1])?;
                trained.into_iter().zip(zero).map(|(t, z)| [t, z].concat()).collect()
            }
            QuerySide::Trained { bert, heads, .. } => {
                let marked =
                    inputs.iter().map(|i| if let QueryInput::Marked(m) = i { Some(m) } else { None }).collect::<Option<Vec<_>>>().ok_or_else(foreign)?;
                trained_parts(bert, heads, &marked, self.blocks[0])?
            }
            QuerySide::ZeroShot => {
                let plain = inputs.iter().map(|i| if let QueryInput::Plain(p) = i { Some(p) } else { None }).collect::<Option<Vec<_>>>().ok_or_else(foreign)?;
                zero_shot::encode(&self.description, &plain, self.blocks[0])?
            }
        };
        queries.iter_mut().for_each(hubness::append_query_constant);
        Ok(queries)
    }

    /// Unit relation vectors, `batch` relations at a time, `progress(done)` after each.
    pub fn encode_relations(&self, relations: &[Relation], batch: usize, mut progress: impl FnMut(usize)) -> Result<Vec<Vec<f32>>> {
        let encode =
            |encoder, style, weights, progress: &mut dyn FnMut(usize)| description::encode_relations(encoder, relations, style, weights, batch, progress);
        // The zero-training block with its hubness bias last (the trained block is not
        // centred: measured worse, docs/large-label-sets.md).
        let zero_shot_relations = |encoder, weights, progress: &mut dyn FnMut(usize)| -> Result<Vec<Vec<f32>>> {
            let mut vectors = description::encode_part_texts(encoder, relations, zero_shot::relation_texts, weights, batch, progress)?;
            let text_only: Vec<bool> = relations.iter().map(zero_shot::is_text_only).collect();
            hubness::append_biases(&mut vectors, &text_only, hubness::STRENGTH);
            Ok(vectors)
        };
        match self.query {
            QuerySide::Trained { style, zero_shot_weight, .. } if zero_shot_weight > 0.0 => {
                let trained = encode(&self.description, style, self.blocks[0], &mut |_| {})?;
                let zero = zero_shot_relations(self.zero_shot_encoder(), self.blocks[1], &mut progress)?;
                Ok(trained.into_iter().zip(zero).map(|(t, z)| [t, z].concat()).collect())
            }
            QuerySide::Trained { style, .. } => {
                let mut vectors = encode(&self.description, style, self.blocks[0], &mut progress)?;
                vectors.iter_mut().for_each(|v| v.push(0.0)); // no zero-training block: no bias
                Ok(vectors)
            }
            QuerySide::ZeroShot => zero_shot_relations(&self.description, self.blocks[0], &mut progress),
        }
    }
}

/// The blocks of a trained model with entity weight `alpha`, in an ensemble with the
/// zero-training default of weight `zero_shot_weight` when that is positive.
fn trained_blocks(alpha: f32, zero_shot_weight: f32) -> Vec<PartWeights> {
    let trained = PartWeights::from_alpha(alpha);
    if zero_shot_weight > 0.0 {
        vec![trained.scaled(1.0 - zero_shot_weight), zero_shot::WEIGHTS.scaled(zero_shot_weight)]
    } else {
        vec![trained]
    }
}

/// `Err(reason)` unless β is in [0, 1).
pub(crate) fn check_zero_shot_weight(beta: f32) -> std::result::Result<(), String> {
    if (0.0..1.0).contains(&beta) {
        Ok(())
    } else {
        Err(format!("zero-shot weight {beta} is outside [0, 1)"))
    }
}

/// `marked` packed into one batch, with each sentence's entity and marker rows in it.
pub fn pack_marked(marked: &[&MarkedTokens]) -> (PackedBatch, Vec<EntityRows>) {
    let batch = PackedBatch::new(&marked.iter().map(|m| &m.ids[..]).collect::<Vec<_>>());
    let rows = marked
        .iter()
        .zip(&batch.starts)
        .map(|(m, &s)| EntityRows {
            head: s + m.head.start..s + m.head.end,
            tail: s + m.tail.start..s + m.tail.end,
            head_marker: s + m.head_marker,
            tail_marker: s + m.tail_marker,
        })
        .collect();
    (batch, rows)
}

/// The trained input side: `c = tanh(x − (x·x*/‖x*‖²) x*)` with `x = φ([H[#]; H[@]])` and
/// `x* = softmax(q·Hᵀ) H`; `h = tanh(maxpool H[head])`, `t = tanh(maxpool H[tail])`.
fn trained_parts<B: Backend>(bert: &Bert<B>, heads: &Heads<B>, marked: &[&MarkedTokens], weights: PartWeights) -> Result<Vec<Vec<f32>>> {
    let (batch, rows) = pack_marked(marked);
    let d = bert.config.hidden_size;
    let n = rows.len();
    // hidden: [T × d]
    let hidden = bert.forward(&batch)?;
    // eh, et: [n × d]; markers: [n × 2d]
    let (mut eh, mut et, mut markers, mut arg) = (B::zeros(n * d), B::zeros(n * d), B::zeros(n * 2 * d), vec![0u32; n * 2 * d]);
    B::entity_pool_forward(&hidden, d, &rows, &mut eh, &mut et, &mut markers, &mut arg);
    // x: [n × d]
    let mut x = B::zeros(n * d);
    B::linear_forward(&markers, n, B::param(&heads.context.weight), B::param(&heads.context.bias), &mut x, Activation::Bias);
    // x_star: [n × d]; attn: [T]
    let (mut x_star, mut attn) = (B::zeros(n * d), B::zeros(batch.tokens()));
    B::query_attention_forward(&hidden, &batch.starts, B::param(&heads.distill_query), &mut x_star, &mut attn);
    let mut context = B::zeros(n * d);
    B::project_out_forward(&x, &x_star, d, &mut context);
    for part in [&mut context, &mut eh, &mut et] {
        B::tanh_forward(part);
    }
    let (context, eh, et) = (B::to_host(&context)?, B::to_host(&eh)?, B::to_host(&et)?);
    Ok((0..n).map(|i| combine_parts([&context[i * d..(i + 1) * d], &eh[i * d..(i + 1) * d], &et[i * d..(i + 1) * d]], weights)).collect())
}
