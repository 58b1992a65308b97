//! The BERT encoder in training: the forward pass is the inference body
//! (`Bert::block_forward`) told to keep what the backward pass needs; the backward pass runs
//! the blocks in reverse with the device's `*_backward` ops, accumulating every parameter
//! gradient. Optional hidden dropout (BERT's `hidden_dropout_prob` sites: the embeddings'
//! output and each block's two projections before their residual add); attention-probability
//! dropout is not applied.
use crate::backend::Backend;
use crate::model::bert::{Bert, BlockKeep, Dropout, LayerSaved, NormSaved, PackedBatch};
use crate::model::params::{Grads, LinearIds, NormIds};

/// The forward pass of a batch, kept for its backward pass.
pub struct EncoderCache<B: Backend> {
    /// word + position + type embeddings `[T × d]` before their LayerNorm, with statistics
    embeddings: NormSaved<B>,
    /// `states[i]`: the input of block `i` `[T × d]`; `states[L]`: the last hidden layer
    states: Vec<B::Buf>,
    layers: Vec<LayerSaved<B>>,
}

impl<B: Backend> EncoderCache<B> {
    /// The last hidden layer `[T × d]`.
    pub fn hidden(&self) -> &B::Mem {
        self.states.last().expect("at least the embeddings")
    }

    /// Bytes of activations held.
    pub fn bytes(&self) -> usize {
        let states: usize = self.states.iter().map(|s| B::len(s)).sum();
        4 * (self.embeddings.len() + states + self.layers.iter().map(LayerSaved::len).sum::<usize>())
    }
}

/// `out = x` on the device (a concatenation of one part, which is a copy).
pub(crate) fn copy_into<B: Backend>(x: &B::Mem, out: &mut B::Mem) {
    B::concat_parts(&[x], B::len(x), out);
}

/// A device copy of `x`.
fn copy_of<B: Backend>(x: &B::Mem) -> B::Buf {
    let mut out = B::zeros(B::len(x));
    copy_into::<B>(x, &mut out);
    out
}

impl<B: Backend> Bert<B> {
    /// The training forward pass of a packed batch (ids and lengths checked by the caller,
    /// e.g. with [`Bert::check_batch`]'s rules at data loading).
    pub fn forward_train(&self, batch: &PackedBatch, dropout: Dropout) -> EncoderCache<B> {
        let c = &self.config;
        let (t, d, f) = (batch.tokens(), c.hidden_size, c.intermediate_size);
        let mut embeddings = NormSaved::new(t, d);
        let mut x = B::zeros(t * d);
        self.embeddings_forward(batch, &mut x, Some((&mut embeddings, dropout)));
        let mut states = Vec::with_capacity(self.ids.layers.len() + 1);
        let mut layers = Vec::with_capacity(self.ids.layers.len());
        for i in 0..self.ids.layers.len() {
            states.push(copy_of::<B>(&x));
            let mut saved = LayerSaved::new(t, d, f);
            self.block_forward(i, batch, &mut x, BlockKeep::Saved(&mut saved, dropout));
            layers.push(saved);
        }
        states.push(x);
        EncoderCache { embeddings, states, layers }
    }

    /// The backward pass from `d_hidden: [T × d]` (the gradient of the last hidden layer),
    /// accumulating into `grads`. `dropout` must be the forward pass's.
    pub fn backward(&self, batch: &PackedBatch, cache: &EncoderCache<B>, d_hidden: &B::Mem, dropout: Dropout, grads: &mut Grads<B>) {
        let c = &self.config;
        let (t, d, f) = (batch.tokens(), c.hidden_size, c.intermediate_size);
        let p = &self.params;
        assert_eq!(B::len(d_hidden), t * d, "hidden-state gradient is not [T × d]");
        // Scratch, reused by every layer: [T × d] except dg, dz: [T × f].
        let mut dx = copy_of::<B>(d_hidden);
        let (mut d_sum, mut dh, mut d_ctx) = (B::zeros(t * d), B::zeros(t * d), B::zeros(t * d));
        let (mut dq, mut dk, mut dv) = (B::zeros(t * d), B::zeros(t * d), B::zeros(t * d));
        let (mut dg, mut dz) = (B::zeros(t * f), B::zeros(t * f));
        // the gradient behind a dropout site (only used when dropout is on)
        let mut d_dropped = B::zeros(if dropout.on() { t * d } else { 0 });
        let linear_back = |grads: &mut Grads<B>, x: &B::Mem, ids: LinearIds, dy: &B::Mem, dx: Option<&mut B::Mem>| {
            let [dw, db] = grads.many([ids.weight, ids.bias]);
            B::linear_backward(x, t, p.get(ids.weight), dy, dx, dw, db);
        };
        let norm_back = |grads: &mut Grads<B>, saved: &NormSaved<B>, ids: NormIds, dy: &B::Mem, dx: &mut B::Mem| {
            let [dgamma, dbeta] = grads.many([ids.gamma, ids.beta]);
            B::fill_zero(dx);
            B::layernorm_backward(&saved.sum, d, p.get(ids.gamma), &saved.mean, &saved.rstd, dy, dx, dgamma, dbeta);
        };
        // Gradient through `dropout(·)` of `d_sum` into `out` (overwritten).
        let dropout_grad = |d_sum: &B::Mem, key: u64, out: &mut B::Mem| {
            B::fill_zero(out);
            B::dropout_backward(d_sum, dropout.p, key, out);
        };

        for (l, (ids, lc)) in self.ids.layers.iter().zip(&cache.layers).enumerate().rev() {
            let x = &cache.states[l];
            // y = LN(output_sum), output_sum = dropout(g·Woᵀ + bo) + h
            norm_back(grads, &lc.output, ids.output_norm, &dx, &mut d_sum);
            copy_into::<B>(&d_sum, &mut dh);
            B::fill_zero(&mut dg);
            let d_out = if dropout.on() {
                dropout_grad(&d_sum, dropout.site_key(l, 2), &mut d_dropped);
                &d_dropped
            } else {
                &d_sum
            };
            linear_back(grads, &lc.g, ids.output, d_out, Some(&mut dg));
            // g = gelu(z), z = h·Wiᵀ + bi
            B::fill_zero(&mut dz);
            B::gelu_backward(&lc.z, &dg, &mut dz);
            linear_back(grads, &lc.h, ids.intermediate, &dz, Some(&mut dh));
            // h = LN(attention_sum), attention_sum = dropout(ctx·Waᵀ + ba) + x
            norm_back(grads, &lc.attention, ids.attention_norm, &dh, &mut d_sum);
            copy_into::<B>(&d_sum, &mut dx);
            B::fill_zero(&mut d_ctx);
            let d_attention = if dropout.on() {
                dropout_grad(&d_sum, dropout.site_key(l, 1), &mut d_dropped);
                &d_dropped
            } else {
                &d_sum
            };
            linear_back(grads, &lc.ctx, ids.attention_output, d_attention, Some(&mut d_ctx));
            for b in [&mut dq, &mut dk, &mut dv] {
                B::fill_zero(b);
            }
            B::attention_backward(&lc.q, &lc.k, &lc.v, &batch.starts, c.num_attention_heads, &d_ctx, &mut dq, &mut dk, &mut dv);
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
        B::embeddings_backward(&batch.ids, &batch.starts, &d_sum, d_word, d_position, B::slice_mut(d_type, 0..d));
    }
}
