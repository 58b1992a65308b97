//! The RE-Matching model at inference: query vectors for marked sentences, relation vectors
//! for descriptions, both unit `3d` vectors whose inner product is the fine-grained score.
use super::bert::{Bert, PackedBatch, Precision};
use super::description::{self, DescriptionStyle};
use super::heads::{CheckpointSettings, Heads, HEADS_FILE};
use super::scoring::{combine_parts, PartWeights};
use super::sentence::SentenceEncoder;
use crate::backend::cpu::distill::{project_out_forward, query_attention_forward};
use crate::backend::cpu::entity_pool::{entity_pool_forward, EntityRows};
use crate::backend::cpu::linear::{linear_forward, Activation};
use super::zero_shot::{self, PlainQuery};
use crate::data::descriptions::Relation;
use crate::error::{Error, Result};
use crate::text::markers::{MarkedTokens, WordInstance};
use std::path::Path;

/// α of the reference method: weights (0.34, 0.33, 0.33).
pub const DEFAULT_ALPHA: f32 = 0.33;

/// How the query side turns encoder states into the three parts.
enum QuerySide {
    /// A trained checkpoint: its fine-tuned encoder and heads, and the description style it
    /// was trained against.
    Trained { bert: Bert, heads: Heads, style: DescriptionStyle },
    /// A plain pretrained sentence encoder, no training (see `zero_shot`).
    ZeroShot,
}

/// A validated, tokenized query, ready for `encode_queries`.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryInput {
    Marked(MarkedTokens),
    Plain(PlainQuery),
}

pub struct Matcher {
    query: QuerySide,
    /// The frozen description-side encoder (for a plain model, also the query encoder).
    pub description: SentenceEncoder,
    pub weights: PartWeights,
    fingerprint: String,
}

impl Matcher {
    /// A trained checkpoint (a directory with `rmx.json`) or a plain sentence encoder
    /// (zero-training default).
    pub fn load(dir: &Path) -> Result<Matcher> {
        match CheckpointSettings::load(dir)? {
            Some(settings) => {
                let description = SentenceEncoder::load(&dir.join(&settings.description_encoder))?;
                let bert = Bert::load(dir)?;
                let heads = Heads::load(&dir.join(HEADS_FILE), bert.config.hidden_size)?;
                let weights = PartWeights::from_alpha(settings.alpha);
                let mode = match settings.description_style {
                    DescriptionStyle::TypeTemplate => "trained",
                    DescriptionStyle::KeywordList => "trained-keyword-list",
                };
                let fingerprint = super::fingerprint::of_model(dir, mode, weights, &[&dir.join(&settings.description_encoder)])?;
                Ok(Matcher { query: QuerySide::Trained { bert, heads, style: settings.description_style }, description, weights, fingerprint })
            }
            None => {
                let description = SentenceEncoder::load(dir)?;
                let weights = zero_shot::WEIGHTS;
                let fingerprint = super::fingerprint::of_model(dir, "zero-shot-v1", weights, &[])?;
                Ok(Matcher { query: QuerySide::ZeroShot, description, weights, fingerprint })
            }
        }
    }

    /// A trained model held in memory (e.g. validation during training), not yet saved:
    /// its fingerprint names it as such, so no index is built with it by mistake.
    pub fn from_trained(bert: Bert, heads: Heads, description: SentenceEncoder, alpha: f32, style: DescriptionStyle) -> Matcher {
        let weights = PartWeights::from_alpha(alpha);
        let fingerprint = format!("trained-in-memory;weights={},{},{}", weights.context, weights.head, weights.tail);
        Matcher { query: QuerySide::Trained { bert, heads, style }, description, weights, fingerprint }
    }

    /// Runs every encoder (query and description side) in `precision`. The fingerprint does
    /// not change: bf16 vectors stay within rounding of f32 ones and search the same index.
    pub fn set_precision(&mut self, precision: Precision) -> Result<()> {
        self.description.bert.set_precision(precision)?;
        if let QuerySide::Trained { bert, .. } = &mut self.query {
            bert.set_precision(precision)?;
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

    /// `3d`: the dimension of query and relation vectors.
    pub fn dim(&self) -> usize {
        3 * self.description.dim()
    }

    fn query_bert(&self) -> &Bert {
        match &self.query {
            QuerySide::Trained { bert, .. } => bert,
            QuerySide::ZeroShot => &self.description.bert,
        }
    }

    /// Validates and tokenizes one instance (rejects text longer than the model's positions).
    pub fn prepare(&self, instance: &WordInstance) -> Result<QueryInput> {
        let max_tokens = self.query_bert().config.max_position_embeddings;
        match self.query {
            QuerySide::Trained { .. } => Ok(QueryInput::Marked(instance.mark(&self.description.tokenizer, max_tokens)?)),
            QuerySide::ZeroShot => Ok(QueryInput::Plain(zero_shot::prepare(&self.description, instance, max_tokens)?)),
        }
    }

    /// Unit query vectors `[3d]` of prepared instances, encoded as one packed batch.
    pub fn encode_queries(&self, inputs: &[QueryInput]) -> Result<Vec<Vec<f32>>> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let (marked, plain): (Vec<_>, Vec<_>) = (
            inputs.iter().filter_map(|i| if let QueryInput::Marked(m) = i { Some(m) } else { None }).collect(),
            inputs.iter().filter_map(|i| if let QueryInput::Plain(p) = i { Some(p) } else { None }).collect(),
        );
        match &self.query {
            QuerySide::Trained { bert, heads, .. } if plain.is_empty() => trained_parts(bert, heads, &marked, self.weights),
            QuerySide::ZeroShot if marked.is_empty() => zero_shot::encode(&self.description, &plain),
            _ => Err(Error::Input("query inputs were prepared by another model".into())),
        }
    }

    /// Unit relation vectors `[3d]`, `batch` relations at a time, `progress(done)` after each.
    pub fn encode_relations(&self, relations: &[Relation], batch: usize, progress: impl FnMut(usize)) -> Result<Vec<Vec<f32>>> {
        let style = match self.query {
            QuerySide::Trained { style, .. } => style,
            QuerySide::ZeroShot => DescriptionStyle::KeywordList,
        };
        description::encode_relations(&self.description, relations, style, self.weights, batch, progress)
    }
}

/// The trained input side: `c = tanh(x − (x·x*/‖x*‖²) x*)` with `x = φ([H[#]; H[@]])` and
/// `x* = softmax(q·Hᵀ) H`; `h = tanh(maxpool H[head])`, `t = tanh(maxpool H[tail])`.
fn trained_parts(bert: &Bert, heads: &Heads, marked: &[&MarkedTokens], weights: PartWeights) -> Result<Vec<Vec<f32>>> {
    let batch = PackedBatch::new(&marked.iter().map(|m| &m.ids[..]).collect::<Vec<_>>());
    let rows: Vec<EntityRows> = marked
        .iter()
        .zip(&batch.starts)
        .map(|(m, &s)| EntityRows {
            head: s + m.head.start..s + m.head.end,
            tail: s + m.tail.start..s + m.tail.end,
            head_marker: s + m.head_marker,
            tail_marker: s + m.tail_marker,
        })
        .collect();
    let d = bert.config.hidden_size;
    let n = rows.len();
    // hidden: [T × d]
    let hidden = bert.forward(&batch)?;
    // eh, et: [n × d]; markers: [n × 2d]
    let (mut eh, mut et, mut markers, mut arg) = (vec![0.0; n * d], vec![0.0; n * d], vec![0.0; n * 2 * d], vec![0u32; n * 2 * d]);
    entity_pool_forward(&hidden, d, &rows, &mut eh, &mut et, &mut markers, &mut arg);
    // x: [n × d]
    let mut x = vec![0.0; n * d];
    linear_forward(&markers, n, heads.context.weight.data(), heads.context.bias.data(), &mut x, Activation::Bias);
    // x_star: [n × d]; attn: [T]
    let (mut x_star, mut attn) = (vec![0.0; n * d], vec![0.0; batch.tokens()]);
    query_attention_forward(&hidden, &batch.starts, heads.distill_query.data(), &mut x_star, &mut attn);
    let mut context = vec![0.0; n * d];
    project_out_forward(&x, &x_star, d, &mut context);
    for v in context.iter_mut().chain(eh.iter_mut()).chain(et.iter_mut()) {
        *v = v.tanh();
    }
    Ok((0..n)
        .map(|i| combine_parts([&context[i * d..(i + 1) * d], &eh[i * d..(i + 1) * d], &et[i * d..(i + 1) * d]], weights))
        .collect())
}
