//! The BERT encoder in training: the forward pass is the inference body
//! (`Bert::block_forward`) told to keep what the backward pass needs; the backward pass runs
//! the blocks in reverse with the device's `*_backward` ops, accumulating every parameter
//! gradient. Optional hidden dropout (BERT's `hidden_dropout_prob` sites: the embeddings'
//! output and each block's two projections before their residual add); attention-probability
//! dropout is not applied.
use crate::backend::{Backend, Buf, Device as D};
use crate::model::bert::{Bert, BlockKeep, Dropout, LayerSaved, NormSaved, PackedBatch};
use crate::model::params::{Grads, LinearIds, NormIds};

/// The forward pass of a batch, kept for its backward pass.
pub struct EncoderCache {
    /// word + position + type embeddings `[T × d]` before their LayerNorm, with statistics
    embeddings: NormSaved,
    /// `states[i]`: the input of block `i` `[T × d]`; `states[L]`: the last hidden layer
    states: Vec<Buf>,
    layers: Vec<LayerSaved>,
}

impl EncoderCache {
    /// The last hidden layer `[T × d]`.
    pub fn hidden(&self) -> &[f32] {
        self.states.last().expect("at least the embeddings")
    }

    /// Bytes of activations held.
    pub fn bytes(&self) -> usize {
        let states: usize = self.states.iter().map(Vec::len).sum();
        4 * (self.embeddings.len() + states + self.layers.iter().map(LayerSaved::len).sum::<usize>())
    }
}

impl Bert {
    /// The training forward pass of a packed batch (ids and lengths checked by the caller,
    /// e.g. with [`Bert::check_batch`]'s rules at data loading).
    pub fn forward_train(&self, batch: &PackedBatch, dropout: Dropout) -> EncoderCache {
        let c = &self.config;
        let (t, d, f) = (batch.tokens(), c.hidden_size, c.intermediate_size);
        let mut embeddings = NormSaved::new(t, d);
        let mut x = D::zeros(t * d);
        self.embeddings_forward(batch, &mut x, Some((&mut embeddings, dropout)));
        let mut states = Vec::with_capacity(self.ids.layers.len() + 1);
        let mut layers = Vec::with_capacity(self.ids.layers.len());
        for i in 0..self.ids.layers.len() {
            states.push(x.clone());
            let mut saved = LayerSaved::new(t, d, f);
            self.block_forward(i, batch, &mut x, BlockKeep::Saved(&mut saved, dropout));
            layers.push(saved);
        }
        states.push(x);
        EncoderCache { embeddings, states, layers }
    }

    /// The backward pass from `d_hidden: [T × d]` (the gradient of the last hidden layer),
    /// accumulating into `grads`. `dropout` must be the forward pass's.
    pub fn backward(&self, batch: &PackedBatch, cache: &EncoderCache, d_hidden: &[f32], dropout: Dropout, grads: &mut Grads) {
        let c = &self.config;
        let (t, d, f) = (batch.tokens(), c.hidden_size, c.intermediate_size);
        let p = &self.params;
        assert_eq!(d_hidden.len(), t * d, "hidden-state gradient is not [T × d]");
        // Scratch, reused by every layer: [T × d] except dg, dz: [T × f].
        let mut dx = d_hidden.to_vec();
        let (mut d_sum, mut dh, mut d_ctx) = (D::zeros(t * d), D::zeros(t * d), D::zeros(t * d));
        let (mut dq, mut dk, mut dv) = (D::zeros(t * d), D::zeros(t * d), D::zeros(t * d));
        let (mut dg, mut dz) = (D::zeros(t * f), D::zeros(t * f));
        // the gradient behind a dropout site (only used when dropout is on)
        let mut d_dropped = if dropout.on() { D::zeros(t * d) } else { Vec::new() };
        let linear_back = |grads: &mut Grads, x: &[f32], ids: LinearIds, dy: &[f32], dx: Option<&mut [f32]>| {
            let [dw, db] = grads.many([ids.weight, ids.bias]);
            D::linear_backward(x, t, p.get(ids.weight), dy, dx, dw, db);
        };
        let norm_back = |grads: &mut Grads, saved: &NormSaved, ids: NormIds, dy: &[f32], dx: &mut [f32]| {
            let [dgamma, dbeta] = grads.many([ids.gamma, ids.beta]);
            dx.fill(0.0);
            D::layernorm_backward(&saved.sum, d, p.get(ids.gamma), &saved.mean, &saved.rstd, dy, dx, dgamma, dbeta);
        };
        // Gradient through `dropout(·)` of `d_sum` into `out` (overwritten).
        let dropout_grad = |d_sum: &[f32], key: u64, out: &mut [f32]| {
            out.fill(0.0);
            D::dropout_backward(d_sum, dropout.p, key, out);
        };

        for (l, (ids, lc)) in self.ids.layers.iter().zip(&cache.layers).enumerate().rev() {
            let x = &cache.states[l];
            // y = LN(output_sum), output_sum = dropout(g·Woᵀ + bo) + h
            norm_back(grads, &lc.output, ids.output_norm, &dx, &mut d_sum);
            dh.copy_from_slice(&d_sum);
            dg.fill(0.0);
            let d_out = if dropout.on() {
                dropout_grad(&d_sum, dropout.site_key(l, 2), &mut d_dropped);
                &d_dropped
            } else {
                &d_sum
            };
            linear_back(grads, &lc.g, ids.output, d_out, Some(&mut dg));
            // g = gelu(z), z = h·Wiᵀ + bi
            dz.fill(0.0);
            D::gelu_backward(&lc.z, &dg, &mut dz);
            linear_back(grads, &lc.h, ids.intermediate, &dz, Some(&mut dh));
            // h = LN(attention_sum), attention_sum = dropout(ctx·Waᵀ + ba) + x
            norm_back(grads, &lc.attention, ids.attention_norm, &dh, &mut d_sum);
            dx.copy_from_slice(&d_sum);
            d_ctx.fill(0.0);
            let d_attention = if dropout.on() {
                dropout_grad(&d_sum, dropout.site_key(l, 1), &mut d_dropped);
                &d_dropped
            } else {
                &d_sum
            };
            linear_back(grads, &lc.ctx, ids.attention_output, d_attention, Some(&mut d_ctx));
            for b in [&mut dq, &mut dk, &mut dv] {
                b.fill(0.0);
            }
            D::attention_backward(&lc.q, &lc.k, &lc.v, &batch.starts, c.num_attention_heads, &d_ctx, &mut dq, &mut dk, &mut dv);
            linear_back(grads, x, ids.query, &dq, Some(&mut dx));
            linear_back(grads, x, ids.key, &dk, Some(&mut dx));
            linear_back(grads, x, ids.value, &dv, Some(&mut dx));
        }
        // x0 = dropout(LN(embeddings))
        if dropout.on() {
            dropout_grad(&dx, dropout.site_key(0, 0), &mut d_dropped);
            std::mem::swap(&mut dx, &mut d_dropped);
        }
        norm_back(grads, &cache.embeddings, self.ids.embeddings_norm, &dx, &mut d_sum);
        let [d_word, d_position, d_type] = grads.many([self.ids.word, self.ids.position, self.ids.token_type]);
        D::embeddings_backward(&batch.ids, &batch.starts, &d_sum, d_word, d_position, &mut d_type[..d]);
    }
}
