//! The BERT encoder for training: the forward pass keeps what the backward pass needs, the
//! backward pass runs the layers in reverse with the backend ops' `*_backward`, accumulating
//! every parameter gradient. Same packed layout and the same kernels as the inference
//! forward (`model::bert`). Optional hidden dropout (BERT's `hidden_dropout_prob` sites:
//! the embeddings' output and each block's two projections before their residual add);
//! attention-probability dropout is not applied.
use super::params::{Grads, LinearIds, NormIds, ParamId, ParamSet};
use crate::backend::cpu::attention::{attention_backward, attention_forward};
use crate::backend::cpu::dropout::{dropout_backward, dropout_forward};
use crate::backend::cpu::embedding::{embeddings_backward, embeddings_forward};
use crate::backend::cpu::gelu::gelu_backward;
use crate::backend::cpu::layernorm::{layernorm_backward, layernorm_forward_saving};
use crate::backend::cpu::linear::{linear_backward, linear_forward, linear_gelu_forward_saving, Activation};
use crate::model::bert::{Bert, BertLayer, LayerNorm, Linear, PackedBatch};
use crate::model::config::BertConfig;
use crate::model::weights::Tensor;
use rayon::prelude::*;

/// Hidden dropout of one training step: probability `p` and a key unique to the step (the
/// masks are recomputed from it in the backward pass). `p = 0` is the inference forward.
#[derive(Debug, Clone, Copy)]
pub struct Dropout {
    pub p: f32,
    pub key: u64,
}

impl Dropout {
    pub const OFF: Dropout = Dropout { p: 0.0, key: 0 };

    /// The mask key of dropout site `site` (0: embeddings, 1: attention output, 2: block
    /// output) of block `layer`.
    fn site_key(&self, layer: usize, site: u64) -> u64 {
        super::rng::Rng::new(self.key ^ ((layer as u64) << 8 | site)).next_u64()
    }

    fn on(&self) -> bool {
        self.p > 0.0
    }
}

/// `y: [rows × out] = dropout(x·Wᵀ + b) + residual` (the fused epilogue when dropout is off).
#[allow(clippy::too_many_arguments)]
fn linear_dropout_residual(x: &[f32], rows: usize, w: &[f32], b: &[f32], residual: &[f32], y: &mut [f32], p: f32, key: u64) {
    if p == 0.0 {
        return linear_forward(x, rows, w, b, y, Activation::BiasResidual(residual));
    }
    linear_forward(x, rows, w, b, y, Activation::Bias);
    dropout_forward(y, p, key);
    y.par_chunks_mut(16_384).zip(residual.par_chunks(16_384)).for_each(|(y, r)| y.iter_mut().zip(r).for_each(|(a, b)| *a += b));
}

/// Gradient through `dropout(·)` of `d_sum` into `out` (overwritten; a copy when off).
fn dropout_grad(d_sum: &[f32], p: f32, key: u64, out: &mut [f32]) {
    out.fill(0.0);
    dropout_backward(d_sum, p, key, out);
}

/// Parameter ids of one transformer block (names as in `model::bert::BertLayer`).
#[derive(Debug, Clone)]
pub struct LayerIds {
    pub query: LinearIds,
    pub key: LinearIds,
    pub value: LinearIds,
    pub attention_output: LinearIds,
    pub attention_norm: NormIds,
    pub intermediate: LinearIds,
    pub output: LinearIds,
    pub output_norm: NormIds,
}

/// The encoder's parameters inside a [`ParamSet`], under their Hugging Face names.
#[derive(Debug, Clone)]
pub struct EncoderIds {
    pub config: BertConfig,
    /// `[V × d]`
    pub word: ParamId,
    /// `[P × d]`
    pub position: ParamId,
    /// `[types × d]`
    pub token_type: ParamId,
    pub embeddings_norm: NormIds,
    pub layers: Vec<LayerIds>,
}

/// What the backward pass needs from one block's forward. All `[T × d]` unless noted.
struct LayerCache {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// attention output before its projection
    ctx: Vec<f32>,
    /// `ctx·Wᵀ + b + x`, the input of the attention LayerNorm, with its statistics `[T]`
    attention_sum: Vec<f32>,
    attention_mean: Vec<f32>,
    attention_rstd: Vec<f32>,
    /// attention LayerNorm output
    h: Vec<f32>,
    /// `[T × f]`: the intermediate pre-activation and `gelu(z)`
    z: Vec<f32>,
    g: Vec<f32>,
    /// `g·Wᵀ + b + h`, the input of the output LayerNorm, with its statistics `[T]`
    output_sum: Vec<f32>,
    output_mean: Vec<f32>,
    output_rstd: Vec<f32>,
}

/// The forward pass of a batch, kept for its backward pass.
pub struct EncoderCache {
    /// word + position + type embeddings `[T × d]` before their LayerNorm, with statistics
    embeddings: Vec<f32>,
    embeddings_mean: Vec<f32>,
    embeddings_rstd: Vec<f32>,
    /// `states[i]`: the input of block `i` `[T × d]`; `states[L]`: the last hidden layer
    states: Vec<Vec<f32>>,
    layers: Vec<LayerCache>,
}

impl EncoderCache {
    /// The last hidden layer `[T × d]`.
    pub fn hidden(&self) -> &[f32] {
        self.states.last().expect("at least the embeddings")
    }

    /// Bytes of activations held.
    pub fn bytes(&self) -> usize {
        let layer = |c: &LayerCache| {
            [&c.q, &c.k, &c.v, &c.ctx, &c.attention_sum, &c.attention_mean, &c.attention_rstd, &c.h, &c.z, &c.g, &c.output_sum, &c.output_mean, &c.output_rstd]
                .iter()
                .map(|v| v.len())
                .sum::<usize>()
        };
        let states: usize = self.states.iter().map(Vec::len).sum();
        4 * (self.embeddings.len() + self.embeddings_mean.len() + self.embeddings_rstd.len() + states + self.layers.iter().map(layer).sum::<usize>())
    }
}

fn owned(t: &Tensor) -> Vec<f32> {
    t.data().to_vec()
}

impl EncoderIds {
    /// Copies a loaded encoder's weights into `params` under Hugging Face names (no `bert.`
    /// prefix) and returns their ids.
    pub fn from_bert(bert: &Bert, params: &mut ParamSet) -> EncoderIds {
        let linear = |params: &mut ParamSet, name: &str, l: &Linear| LinearIds {
            weight: params.push(&format!("{name}.weight"), l.weight.shape(), owned(&l.weight)),
            bias: params.push(&format!("{name}.bias"), l.bias.shape(), owned(&l.bias)),
        };
        let norm = |params: &mut ParamSet, name: &str, n: &LayerNorm| NormIds {
            gamma: params.push(&format!("{name}.weight"), n.gamma.shape(), owned(&n.gamma)),
            beta: params.push(&format!("{name}.bias"), n.beta.shape(), owned(&n.beta)),
        };
        let word = params.push("embeddings.word_embeddings.weight", bert.word_embeddings.shape(), owned(&bert.word_embeddings));
        let position = params.push("embeddings.position_embeddings.weight", bert.position_embeddings.shape(), owned(&bert.position_embeddings));
        let token_type = params.push("embeddings.token_type_embeddings.weight", bert.token_type_embeddings.shape(), owned(&bert.token_type_embeddings));
        let embeddings_norm = norm(params, "embeddings.LayerNorm", &bert.embeddings_norm);
        let layers = bert
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let p = format!("encoder.layer.{i}");
                LayerIds {
                    query: linear(params, &format!("{p}.attention.self.query"), &l.query),
                    key: linear(params, &format!("{p}.attention.self.key"), &l.key),
                    value: linear(params, &format!("{p}.attention.self.value"), &l.value),
                    attention_output: linear(params, &format!("{p}.attention.output.dense"), &l.attention_output),
                    attention_norm: norm(params, &format!("{p}.attention.output.LayerNorm"), &l.attention_norm),
                    intermediate: linear(params, &format!("{p}.intermediate.dense"), &l.intermediate),
                    output: linear(params, &format!("{p}.output.dense"), &l.output),
                    output_norm: norm(params, &format!("{p}.output.LayerNorm"), &l.output_norm),
                }
            })
            .collect();
        EncoderIds { config: bert.config.clone(), word, position, token_type, embeddings_norm, layers }
    }

    /// An inference encoder with the current values of the parameters (copied).
    pub fn to_bert(&self, p: &ParamSet) -> Bert {
        let t = |id: ParamId| Tensor::from_vec(p.get(id).to_vec(), p.shape(id).to_vec());
        let linear = |l: LinearIds| Linear { weight: t(l.weight), bias: t(l.bias) };
        let norm = |n: NormIds| LayerNorm { gamma: t(n.gamma), beta: t(n.beta) };
        let layers = self
            .layers
            .iter()
            .map(|l| BertLayer {
                query: linear(l.query),
                key: linear(l.key),
                value: linear(l.value),
                attention_output: linear(l.attention_output),
                attention_norm: norm(l.attention_norm),
                intermediate: linear(l.intermediate),
                output: linear(l.output),
                output_norm: norm(l.output_norm),
            })
            .collect();
        Bert::from_parts(t(self.word), t(self.position), t(self.token_type), norm(self.embeddings_norm), layers, self.config.clone())
    }

    /// The forward pass of a packed batch (ids and lengths checked by the caller, e.g. with
    /// `Bert::check_batch`'s rules at data loading).
    pub fn forward(&self, p: &ParamSet, batch: &PackedBatch, dropout: Dropout) -> EncoderCache {
        let c = &self.config;
        let (t, d, f, eps) = (batch.tokens(), c.hidden_size, c.intermediate_size, c.layer_norm_eps);
        let zeros = |n: usize| vec![0.0f32; n];

        // embeddings: [T × d]
        let mut embeddings = zeros(t * d);
        embeddings_forward(&batch.ids, &batch.starts, p.get(self.word), p.get(self.position), &p.get(self.token_type)[..d], &mut embeddings);
        let (mut embeddings_mean, mut embeddings_rstd, mut x) = (zeros(t), zeros(t), zeros(t * d));
        let n = &self.embeddings_norm;
        layernorm_forward_saving(&embeddings, &mut x, d, p.get(n.gamma), p.get(n.beta), eps, &mut embeddings_mean, &mut embeddings_rstd);
        dropout_forward(&mut x, dropout.p, dropout.site_key(0, 0));

        let mut states = Vec::with_capacity(self.layers.len() + 1);
        let mut layers = Vec::with_capacity(self.layers.len());
        for (i, l) in self.layers.iter().enumerate() {
            let lin = |x: &[f32], ids: LinearIds, y: &mut [f32], act: Activation| linear_forward(x, t, p.get(ids.weight), p.get(ids.bias), y, act);
            let (mut q, mut k, mut v, mut ctx) = (zeros(t * d), zeros(t * d), zeros(t * d), zeros(t * d));
            lin(&x, l.query, &mut q, Activation::Bias);
            lin(&x, l.key, &mut k, Activation::Bias);
            lin(&x, l.value, &mut v, Activation::Bias);
            attention_forward(&q, &k, &v, &batch.starts, c.num_attention_heads, &mut ctx);
            let mut attention_sum = zeros(t * d);
            let ao = l.attention_output;
            linear_dropout_residual(&ctx, t, p.get(ao.weight), p.get(ao.bias), &x, &mut attention_sum, dropout.p, dropout.site_key(i, 1));
            let (mut attention_mean, mut attention_rstd, mut h) = (zeros(t), zeros(t), zeros(t * d));
            let an = &l.attention_norm;
            layernorm_forward_saving(&attention_sum, &mut h, d, p.get(an.gamma), p.get(an.beta), eps, &mut attention_mean, &mut attention_rstd);
            let (mut z, mut g) = (zeros(t * f), zeros(t * f));
            linear_gelu_forward_saving(&h, t, p.get(l.intermediate.weight), p.get(l.intermediate.bias), &mut z, &mut g);
            let mut output_sum = zeros(t * d);
            linear_dropout_residual(&g, t, p.get(l.output.weight), p.get(l.output.bias), &h, &mut output_sum, dropout.p, dropout.site_key(i, 2));
            let (mut output_mean, mut output_rstd, mut y) = (zeros(t), zeros(t), zeros(t * d));
            let on = &l.output_norm;
            layernorm_forward_saving(&output_sum, &mut y, d, p.get(on.gamma), p.get(on.beta), eps, &mut output_mean, &mut output_rstd);
            states.push(std::mem::replace(&mut x, y));
            layers.push(LayerCache { q, k, v, ctx, attention_sum, attention_mean, attention_rstd, h, z, g, output_sum, output_mean, output_rstd });
        }
        states.push(x);
        EncoderCache { embeddings, embeddings_mean, embeddings_rstd, states, layers }
    }

    /// The backward pass from `d_hidden: [T × d]` (the gradient of the last hidden layer),
    /// accumulating into `grads`.
    /// `dropout` must be the forward pass's.
    pub fn backward(&self, p: &ParamSet, batch: &PackedBatch, cache: &EncoderCache, d_hidden: &[f32], dropout: Dropout, grads: &mut Grads) {
        let c = &self.config;
        let (t, d, f) = (batch.tokens(), c.hidden_size, c.intermediate_size);
        assert_eq!(d_hidden.len(), t * d, "hidden-state gradient is not [T × d]");
        // Scratch, reused by every layer: [T × d] except dg, dz: [T × f].
        let mut dx = d_hidden.to_vec();
        let (mut d_sum, mut dh, mut d_ctx) = (vec![0.0f32; t * d], vec![0.0f32; t * d], vec![0.0f32; t * d]);
        let (mut dq, mut dk, mut dv) = (vec![0.0f32; t * d], vec![0.0f32; t * d], vec![0.0f32; t * d]);
        let (mut dg, mut dz) = (vec![0.0f32; t * f], vec![0.0f32; t * f]);
        // the gradient behind a dropout site (only used when dropout is on)
        let mut d_dropped = if dropout.on() { vec![0.0f32; t * d] } else { Vec::new() };
        let linear_back = |grads: &mut Grads, x: &[f32], ids: LinearIds, dy: &[f32], dx: Option<&mut [f32]>| {
            let [dw, db] = grads.many([ids.weight, ids.bias]);
            linear_backward(x, t, p.get(ids.weight), dy, dx, dw, db);
        };
        let norm_back = |grads: &mut Grads, x: &[f32], ids: NormIds, mean: &[f32], rstd: &[f32], dy: &[f32], dx: &mut [f32]| {
            let [dgamma, dbeta] = grads.many([ids.gamma, ids.beta]);
            dx.fill(0.0);
            layernorm_backward(x, d, p.get(ids.gamma), mean, rstd, dy, dx, dgamma, dbeta);
        };

        for (l, (ids, lc)) in self.layers.iter().zip(&cache.layers).enumerate().rev() {
            let x = &cache.states[l];
            // y = LN(output_sum), output_sum = g·Woᵀ + bo + h
            norm_back(grads, &lc.output_sum, ids.output_norm, &lc.output_mean, &lc.output_rstd, &dx, &mut d_sum);
            dh.copy_from_slice(&d_sum);
            dg.fill(0.0);
            let d_out = if dropout.on() {
                dropout_grad(&d_sum, dropout.p, dropout.site_key(l, 2), &mut d_dropped);
                &d_dropped
            } else {
                &d_sum
            };
            linear_back(grads, &lc.g, ids.output, d_out, Some(&mut dg));
            // g = gelu(z), z = h·Wiᵀ + bi
            dz.fill(0.0);
            dz.par_chunks_mut(16_384).zip(lc.z.par_chunks(16_384)).zip(dg.par_chunks(16_384)).for_each(|((dz, z), dg)| gelu_backward(z, dg, dz));
            linear_back(grads, &lc.h, ids.intermediate, &dz, Some(&mut dh));
            // h = LN(attention_sum), attention_sum = ctx·Waᵀ + ba + x
            norm_back(grads, &lc.attention_sum, ids.attention_norm, &lc.attention_mean, &lc.attention_rstd, &dh, &mut d_sum);
            dx.copy_from_slice(&d_sum);
            d_ctx.fill(0.0);
            let d_attention = if dropout.on() {
                dropout_grad(&d_sum, dropout.p, dropout.site_key(l, 1), &mut d_dropped);
                &d_dropped
            } else {
                &d_sum
            };
            linear_back(grads, &lc.ctx, ids.attention_output, d_attention, Some(&mut d_ctx));
            for b in [&mut dq, &mut dk, &mut dv] {
                b.fill(0.0);
            }
            attention_backward(&lc.q, &lc.k, &lc.v, &batch.starts, c.num_attention_heads, &d_ctx, &mut dq, &mut dk, &mut dv);
            linear_back(grads, x, ids.query, &dq, Some(&mut dx));
            linear_back(grads, x, ids.key, &dk, Some(&mut dx));
            linear_back(grads, x, ids.value, &dv, Some(&mut dx));
        }
        // x0 = dropout(LN(embeddings))
        if dropout.on() {
            dropout_grad(&dx, dropout.p, dropout.site_key(0, 0), &mut d_dropped);
            std::mem::swap(&mut dx, &mut d_dropped);
        }
        norm_back(grads, &cache.embeddings, self.embeddings_norm, &cache.embeddings_mean, &cache.embeddings_rstd, &dx, &mut d_sum);
        let [d_word, d_position, d_type] = grads.many([self.word, self.position, self.token_type]);
        embeddings_backward(&batch.ids, &batch.starts, &d_sum, d_word, d_position, &mut d_type[..d]);
    }
}
