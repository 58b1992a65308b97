//! The CPU behind the device seam: every op of [`Backend`] on host memory (`[f32]`), and the
//! CPU's own state: weights packed into GEMM panels ([`PackedWeights`]), the spinning team
//! a forward pass runs on, and the ISA checks of the precisions.
use super::gemm::{MatRef, PackedB};
use super::parallel::{for_each_chunk, for_each_mut, for_each_row, with_team, CHUNK};
use super::simd::{bf16_dot_supported, int8_dot_supported};
use super::{activation, attention, cosine, distill, dropout, embedding, entity_pool, gelu, layernorm, linear, loss, pooling};
use crate::backend::{Activation, AdamWStep, Backend, EntityRows, Precision, Tensor};
use crate::error::{Error, Result};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The CPU device: host memory, the kernels of `backend/cpu`.
pub struct Cpu;

/// The linear layers' weights packed for the GEMM kernels. In f32, made once the model has
/// run [`PACK_AFTER_TOKENS`] tokens: packing all of them (≈ 85 MB for all-MiniLM-L6-v2)
/// costs about what packing per product costs over that many tokens, so a one-off sentence
/// (`rmx embed`, `rmx query`) starts as fast as before and a batch is packed for at once.
/// In bf16 and int8, made at the first forward: those kernels only take packed weights.
#[derive(Default)]
pub struct PackedWeights {
    /// Per slot, its weight packed.
    linears: OnceLock<Vec<PackedLinear>>,
    /// Tokens run through the model so far (counted until the weights are packed).
    tokens: AtomicUsize,
}

pub const PACK_AFTER_TOKENS: usize = 2048;

impl PackedWeights {
    /// Whether the weights are packed.
    pub fn is_packed(&self) -> bool {
        self.linears.get().is_some()
    }
}

/// A linear weight packed once for the GEMM kernels, with the tensor it was packed from:
/// a weight replaced since then is used unpacked (in f32, whatever the model's precision).
struct PackedLinear {
    source: Tensor,
    packed: PackedB,
}

impl PackedLinear {
    fn new(weight: &Tensor, precision: Precision) -> PackedLinear {
        let (n, k) = (weight.shape()[0], weight.shape()[1]);
        let b = MatRef::transposed(weight.data(), n, k);
        let packed = match precision {
            Precision::F32 => PackedB::new(b),
            Precision::Bf16 => PackedB::bf16(b),
            Precision::Int8 => PackedB::int8(b),
        };
        PackedLinear { source: weight.clone(), packed }
    }

    /// The packed weight, if `weight` still is the tensor it was packed from (`source`
    /// keeps that tensor alive, so no other tensor can have its address).
    fn of(&self, weight: &Tensor) -> Option<&PackedB> {
        let (was, is) = (self.source.data(), weight.data());
        (was.as_ptr() == is.as_ptr() && was.len() == is.len()).then_some(&self.packed)
    }
}

impl Backend for Cpu {
    type Mem = [f32];
    type Buf = Vec<f32>;
    type Param = Tensor;
    type Prepared = PackedWeights;

    const KIND: crate::backend::DeviceKind = crate::backend::DeviceKind::Cpu;

    fn check_precision(precision: Precision) -> Result<()> {
        match precision {
            Precision::Bf16 if !bf16_dot_supported() => Err(Error::CpuUnsupported(
                "bf16 precision needs AVX512-BF16 dot products (Intel Cooper Lake / Sapphire Rapids or newer, AMD Zen 4 or newer); use f32".into(),
            )),
            Precision::Int8 if !int8_dot_supported() => Err(Error::CpuUnsupported(
                "int8 precision needs AVX512-VNNI byte dot products (Intel Cascade Lake or newer, AMD Zen 4 or newer); use f32".into(),
            )),
            _ => Ok(()),
        }
    }

    /// The whole pass runs on a spinning team of the pool's threads (`with_team`): its
    /// ≈ 55 parallel steps are shared by threads that stay awake between steps, instead of
    /// each step waking workers and parking them again.
    fn pass<R: Send>(f: impl FnOnce() -> R + Send) -> R {
        with_team(f)
    }

    fn sync() -> Result<()> {
        Ok(())
    }

    fn zeros(n: usize) -> Vec<f32> {
        vec![0.0; n]
    }

    fn from_host(x: &[f32]) -> Vec<f32> {
        x.to_vec()
    }

    fn to_host(x: &[f32]) -> Result<Vec<f32>> {
        Ok(x.to_vec())
    }

    fn len(x: &[f32]) -> usize {
        x.len()
    }

    fn slice(x: &[f32], range: std::ops::Range<usize>) -> &[f32] {
        &x[range]
    }

    fn slice_mut(x: &mut [f32], range: std::ops::Range<usize>) -> &mut [f32] {
        &mut x[range]
    }

    fn split_at_mut(x: &mut [f32], mid: usize) -> (&mut [f32], &mut [f32]) {
        x.split_at_mut(mid)
    }

    fn fill_zero(x: &mut [f32]) {
        x.fill(0.0)
    }

    fn upload(t: &Tensor) -> Tensor {
        t.clone()
    }

    fn download(p: &Tensor, shape: &[usize]) -> Result<Tensor> {
        debug_assert_eq!(p.shape(), shape);
        Ok(p.clone())
    }

    fn param(p: &Tensor) -> &[f32] {
        p.data()
    }

    fn param_mut(p: &mut Tensor) -> &mut [f32] {
        p.data_mut()
    }

    fn embeddings_forward(ids: &[u32], starts: &[usize], word: &[f32], position: &[f32], token_type0: &[f32], out: &mut [f32]) {
        embedding::embeddings_forward(ids, starts, word, position, token_type0, out)
    }

    fn embeddings_backward(ids: &[u32], starts: &[usize], d_out: &[f32], d_word: &mut [f32], d_position: &mut [f32], d_token_type0: &mut [f32]) {
        embedding::embeddings_backward(ids, starts, d_out, d_word, d_position, d_token_type0);
    }

    fn linear_forward(x: &[f32], rows: usize, w: &[f32], b: &[f32], y: &mut [f32], act: Activation) {
        linear::linear_forward(x, rows, w, b, y, act)
    }

    /// Packs every weight in `precision` if it is not f32 or these `tokens` bring the
    /// model's count to [`PACK_AFTER_TOKENS`]. Packed in parallel outside the lock, then
    /// offered: a pool worker that waited inside `get_or_init` could steal another forward
    /// of this model, which would block on the same initialisation further up its own
    /// stack. Forwards racing here may each pack; one copy is kept.
    fn prepare_linears(state: &PackedWeights, precision: Precision, tokens: usize, linears: &dyn Fn() -> Vec<Tensor>) {
        if state.is_packed() {
            return;
        }
        let pack_after = if precision == Precision::F32 { PACK_AFTER_TOKENS } else { 0 };
        if state.tokens.fetch_add(tokens, Ordering::Relaxed) + tokens < pack_after {
            return;
        }
        let weights = linears();
        let mut packed: Vec<Option<PackedLinear>> = weights.iter().map(|_| None).collect();
        for_each_mut(&mut packed, |i, p| *p = Some(PackedLinear::new(&weights[i], precision)));
        let _ = state.linears.set(packed.into_iter().flatten().collect());
    }

    fn linear_forward_prepared(state: &PackedWeights, slot: usize, x: &[f32], rows: usize, w: &Tensor, b: &[f32], y: &mut [f32], act: Activation) {
        match state.linears.get().and_then(|p| p.get(slot)).and_then(|p| p.of(w)) {
            Some(packed) => linear::linear_forward_packed(x, rows, packed, b, y, act),
            None => linear::linear_forward(x, rows, w.data(), b, y, act),
        }
    }

    fn linear_gelu_forward_saving(x: &[f32], rows: usize, w: &[f32], b: &[f32], z: &mut [f32], y: &mut [f32]) {
        linear::linear_gelu_forward_saving(x, rows, w, b, z, y)
    }

    fn linear_backward(x: &[f32], rows: usize, w: &[f32], dy: &[f32], dx: Option<&mut [f32]>, dw: &mut [f32], db: &mut [f32]) {
        linear::linear_backward(x, rows, w, dy, dx, dw, db)
    }

    fn add(y: &mut [f32], x: &[f32]) {
        assert_eq!(y.len(), x.len());
        for_each_chunk(y, CHUNK, |start, y| y.iter_mut().zip(&x[start..]).for_each(|(a, b)| *a += b));
    }

    fn concat_parts(parts: &[&[f32]], d: usize, out: &mut [f32]) {
        let width = parts.len() * d;
        assert!(parts.iter().all(|p| p.len() * parts.len() == out.len()), "parts are not [n × d] for out [n × P·d]");
        for (i, row) in out.chunks_exact_mut(width.max(1)).enumerate() {
            for (p, part) in parts.iter().enumerate() {
                row[p * d..(p + 1) * d].copy_from_slice(&part[i * d..(i + 1) * d]);
            }
        }
    }

    fn split_parts(x: &[f32], d: usize, parts: &mut [&mut [f32]]) {
        let width = parts.len() * d;
        assert!(parts.iter().all(|p| p.len() * parts.len() == x.len()), "parts are not [n × d] for x [n × P·d]");
        for (i, row) in x.chunks_exact(width.max(1)).enumerate() {
            for (p, part) in parts.iter_mut().enumerate() {
                part[i * d..(i + 1) * d].copy_from_slice(&row[p * d..(p + 1) * d]);
            }
        }
    }

    fn attention_forward(q: &[f32], k: &[f32], v: &[f32], starts: &[usize], heads: usize, ctx: &mut [f32]) {
        attention::attention_forward(q, k, v, starts, heads, ctx)
    }

    fn attention_backward(q: &[f32], k: &[f32], v: &[f32], starts: &[usize], heads: usize, d_ctx: &[f32], dq: &mut [f32], dk: &mut [f32], dv: &mut [f32]) {
        attention::attention_backward(q, k, v, starts, heads, d_ctx, dq, dk, dv)
    }

    fn layernorm_forward(x: &mut [f32], d: usize, gamma: &[f32], beta: &[f32], eps: f32) {
        layernorm::layernorm_forward(x, d, gamma, beta, eps)
    }

    fn layernorm_forward_saving(x: &[f32], y: &mut [f32], d: usize, gamma: &[f32], beta: &[f32], eps: f32, mean: &mut [f32], rstd: &mut [f32]) {
        layernorm::layernorm_forward_saving(x, y, d, gamma, beta, eps, mean, rstd)
    }

    fn layernorm_backward(x: &[f32], d: usize, gamma: &[f32], mean: &[f32], rstd: &[f32], dy: &[f32], dx: &mut [f32], dgamma: &mut [f32], dbeta: &mut [f32]) {
        layernorm::layernorm_backward(x, d, gamma, mean, rstd, dy, dx, dgamma, dbeta)
    }

    fn gelu_backward(z: &[f32], dy: &[f32], dz: &mut [f32]) {
        assert!(z.len() == dy.len() && dz.len() == z.len());
        for_each_chunk(dz, CHUNK, |start, dz| gelu::gelu_backward(&z[start..start + dz.len()], &dy[start..start + dz.len()], dz));
    }

    fn dropout_forward(x: &mut [f32], p: f32, key: u64) {
        dropout::dropout_forward(x, p, key)
    }

    fn dropout_backward(dy: &[f32], p: f32, key: u64, dx: &mut [f32]) {
        dropout::dropout_backward(dy, p, key, dx)
    }

    fn tanh_forward(x: &mut [f32]) {
        activation::tanh_forward(x)
    }

    fn tanh_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) {
        activation::tanh_backward(y, dy, dx)
    }

    fn grl_backward(dy: &[f32], lambda: f32, dx: &mut [f32]) {
        activation::grl_backward(dy, lambda, dx)
    }

    fn mean_pool_forward(h: &[f32], starts: &[usize], d: usize, out: &mut [f32]) {
        pooling::mean_pool_forward(h, starts, d, out)
    }

    fn mean_pool_backward(d_out: &[f32], starts: &[usize], d: usize, dh: &mut [f32]) {
        pooling::mean_pool_backward(d_out, starts, d, dh)
    }

    fn l2_normalize_rows(x: &mut [f32], d: usize) {
        for_each_row(x, d, |_, row| pooling::l2_normalize(row));
    }

    fn entity_pool_forward(h: &[f32], d: usize, rows: &[EntityRows], heads: &mut [f32], tails: &mut [f32], markers: &mut [f32], argmax: &mut [u32]) {
        entity_pool::entity_pool_forward(h, d, rows, heads, tails, markers, argmax)
    }

    fn entity_pool_backward(d: usize, rows: &[EntityRows], argmax: &[u32], d_heads: &[f32], d_tails: &[f32], d_markers: &[f32], dh: &mut [f32]) {
        entity_pool::entity_pool_backward(d, rows, argmax, d_heads, d_tails, d_markers, dh)
    }

    fn query_attention_forward(h: &[f32], starts: &[usize], q: &[f32], x_star: &mut [f32], attn: &mut [f32]) {
        distill::query_attention_forward(h, starts, q, x_star, attn)
    }

    fn query_attention_backward(h: &[f32], starts: &[usize], q: &[f32], attn: &[f32], d_x_star: &[f32], dq: &mut [f32], dh: Option<&mut [f32]>) {
        distill::query_attention_backward(h, starts, q, attn, d_x_star, dq, dh)
    }

    fn project_out_forward(x: &[f32], x_star: &[f32], d: usize, out: &mut [f32]) {
        distill::project_out_forward(x, x_star, d, out)
    }

    fn project_out_backward(x: &[f32], x_star: &[f32], d: usize, d_out: &[f32], dx: &mut [f32], d_x_star: &mut [f32]) {
        distill::project_out_backward(x, x_star, d, d_out, dx, d_x_star)
    }

    fn cosine_scores_forward(a: &[f32], b: &[f32], d: usize, weights: &[f32], scores: &mut [f32]) {
        cosine::cosine_scores_forward(a, b, d, weights, scores)
    }

    fn cosine_scores_backward(a: &[f32], b: &[f32], d: usize, weights: &[f32], d_scores: &[f32], da: &mut [f32], db: Option<&mut [f32]>) {
        cosine::cosine_scores_backward(a, b, d, weights, d_scores, da, db)
    }

    fn cross_entropy_forward(logits: &[f32], classes: usize, labels: &[u32]) -> f32 {
        loss::cross_entropy_forward(logits, classes, labels)
    }

    fn cross_entropy_backward(logits: &[f32], classes: usize, labels: &[u32], d_loss: f32, d_logits: &mut [f32]) {
        loss::cross_entropy_backward(logits, classes, labels, d_loss, d_logits)
    }

    fn matching_loss_forward(scores: &[f32], m: usize, positives: &[u32], negatives: &[bool], gamma: f32) -> f32 {
        loss::matching_loss_forward(scores, m, positives, negatives, gamma)
    }

    fn matching_loss_backward(scores: &[f32], m: usize, positives: &[u32], negatives: &[bool], gamma: f32, d_loss: f32, d_scores: &mut [f32]) {
        loss::matching_loss_backward(scores, m, positives, negatives, gamma, d_loss, d_scores)
    }

    fn contrastive_loss_forward(scores: &[f32], m: usize, positives: &[u32], negatives: &[bool], temperature: f32) -> f32 {
        loss::contrastive_loss_forward(scores, m, positives, negatives, temperature)
    }

    fn contrastive_loss_backward(scores: &[f32], m: usize, positives: &[u32], negatives: &[bool], temperature: f32, d_loss: f32, d_scores: &mut [f32]) {
        loss::contrastive_loss_backward(scores, m, positives, negatives, temperature, d_loss, d_scores)
    }

    fn adamw_step(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: AdamWStep) {
        assert!(g.len() == p.len() && m.len() == p.len() && v.len() == p.len());
        let mut tasks: Vec<_> = p.chunks_mut(CHUNK).zip(m.chunks_mut(CHUNK)).zip(v.chunks_mut(CHUNK)).collect();
        for_each_mut(&mut tasks, |c, ((p, m), v)| {
            for (((p, &g), m), v) in p.iter_mut().zip(&g[c * CHUNK..]).zip(m.iter_mut()).zip(v.iter_mut()) {
                *p *= s.decay;
                *m = s.beta1 * *m + (1.0 - s.beta1) * g;
                *v = s.beta2 * *v + (1.0 - s.beta2) * g * g;
                *p -= s.step_size * *m / (v.sqrt() / s.bias2_sqrt + s.eps);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::bert::tests::tiny_bert;
    use crate::model::bert::PackedBatch;

    #[test]
    fn split_parts_undoes_concat_parts() {
        let (a, b, c): (Vec<f32>, Vec<f32>, Vec<f32>) =
            ((0..6).map(|v| v as f32).collect(), (10..16).map(|v| v as f32).collect(), (20..26).map(|v| v as f32).collect());
        let mut joined = vec![0.0; 18];
        Cpu::concat_parts(&[&a, &b, &c], 2, &mut joined);
        assert_eq!(&joined[..6], &[0.0, 1.0, 10.0, 11.0, 20.0, 21.0], "row 0: a | b | c");
        let (mut x, mut y, mut z) = (vec![0.0; 6], vec![0.0; 6], vec![0.0; 6]);
        Cpu::split_parts(&joined, 2, &mut [&mut x, &mut y, &mut z]);
        assert_eq!((x, y, z), (a, b, c));
    }

    /// Threads that start forwards of one model while its weights get packed all get the
    /// one-thread answer. (The deadlock `prepare_linears` avoids needs a worker to steal a
    /// forward mid-packing, rarely hit with this tiny model; the C ABI's eight-thread test
    /// on the real one hit it once.)
    #[test]
    fn concurrent_forwards_while_the_weights_get_packed() {
        let seqs: Vec<Vec<u32>> = (0..PACK_AFTER_TOKENS / 32).map(|s| (0..32).map(|i| (s * 5 + i) as u32 % 50).collect()).collect();
        let batch = PackedBatch::new(&seqs);
        let want = tiny_bert::<Cpu>(4).forward(&batch).unwrap();
        for _ in 0..10 {
            let bert = tiny_bert::<Cpu>(4);
            std::thread::scope(|s| {
                let runs: Vec<_> = (0..8).map(|_| s.spawn(|| bert.forward(&batch).unwrap())).collect();
                for run in runs {
                    assert_eq!(run.join().unwrap(), want);
                }
            });
        }
    }

    #[test]
    fn packed_weights_give_the_same_states_and_replaced_weights_are_noticed() {
        let bert = tiny_bert::<Cpu>(1);
        let small = PackedBatch::new(&[vec![1u32, 5, 7, 2], vec![3, 4]]);
        let unpacked = bert.forward(&small).unwrap();
        let packed = |b: &crate::model::bert::Bert<Cpu>| b.prepared().is_packed();
        assert!(!packed(&bert));
        // A batch that reaches PACK_AFTER_TOKENS packs the weights; the states do not change.
        let seqs: Vec<Vec<u32>> = (0..PACK_AFTER_TOKENS / 64).map(|s| (0..64).map(|i| (s * 7 + i) as u32 % 50).collect()).collect();
        bert.forward(&PackedBatch::new(&seqs)).unwrap();
        assert!(packed(&bert));
        assert_eq!(bert.forward(&small).unwrap(), unpacked);

        // A clone shares the packed weights; a weight replaced in it is used as it is now.
        let other = tiny_bert::<Cpu>(2);
        let layer = |b: &crate::model::bert::Bert<Cpu>| b.ids.layers[1].intermediate;
        let replace = |b: &mut crate::model::bert::Bert<Cpu>| {
            let (to, from) = (layer(b), layer(&other));
            b.params.set(to.weight, other.params.param(from.weight));
            b.params.set(to.bias, other.params.param(from.bias));
        };
        let mut changed = bert.clone();
        replace(&mut changed);
        let mut fresh = tiny_bert::<Cpu>(1);
        replace(&mut fresh);
        let want = fresh.forward(&small).unwrap();
        assert!(!packed(&fresh));
        assert_ne!(want, unpacked);
        assert_eq!(changed.forward(&small).unwrap(), want);
        // A weight changed in place (training) is noticed too: it is copied away from the packed one.
        let mut trained = bert.clone();
        let id = trained.ids.layers[0].query.weight;
        trained.params.get_mut(id)[0] += 1.0;
        let mut reference = tiny_bert::<Cpu>(1);
        reference.params.get_mut(id)[0] += 1.0;
        assert_eq!(trained.forward(&small).unwrap(), reference.forward(&small).unwrap());
    }
}
