//! The BERT encoder, inference forward pass on the CPU.
//!
//! Sequences of a batch are packed back to back into one `[T × d]` matrix (no padding), so
//! every matrix product runs over exactly the real tokens. The linear layers' weights are
//! packed for the GEMM kernels once the model is in steady use ([`PackedWeights`]), in the
//! model's [`Precision`].
use super::config::BertConfig;
use super::weights::{Tensor, WeightFile};
use crate::backend::cpu::attention::attention_forward;
use crate::backend::cpu::embedding::embeddings_forward;
use crate::backend::cpu::gemm::{MatRef, PackedB};
use crate::backend::cpu::layernorm::layernorm_forward;
use crate::backend::cpu::linear::{linear_forward, linear_forward_packed, Activation};
use crate::backend::cpu::parallel::{for_each_mut, with_team};
use crate::backend::cpu::simd::{bf16_dot_supported, int8_dot_supported};
use crate::error::{Error, Result};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The arithmetic of the encoder's linear layers (≈ 80 % of its time); attention, softmax,
/// LayerNorm, GELU and the residual sums are f32 either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// f32: the PyTorch oracle's hidden states to 1e-4 (the default).
    #[default]
    F32,
    /// Weights and activations rounded to bf16, products summed in f32 (AMX tiles where the
    /// CPU and OS allow, else AVX512-BF16 dot products; CPUs without AVX512-BF16 refuse
    /// it: see `Bf16Kernel`). Costs accuracy: sentence embeddings keep a
    /// cosine ≥ 0.9995 with the f32 oracle's (`tests/encoder_golden.rs` measures it).
    Bf16,
    /// Weights quantized per output to int8, activations per token row to u8 (a scale and
    /// zero point each, computed on the fly), products summed exactly in i32 (AVX512-VNNI
    /// `vpdpbusd`; CPUs without it refuse it). Costs more accuracy than bf16: sentence
    /// embeddings keep a cosine ≥ 0.995 with the f32 oracle's (`tests/encoder_golden.rs`).
    Int8,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::Int8 => "int8",
        }
    }

    /// `Ok` if this CPU can run the precision, else why not.
    pub fn check_supported(self) -> Result<()> {
        match self {
            Precision::Bf16 if !bf16_dot_supported() => Err(Error::CpuUnsupported(
                "bf16 precision needs AVX512-BF16 dot products (Intel Cooper Lake / Sapphire Rapids or newer, AMD Zen 4 or newer); use f32".into(),
            )),
            Precision::Int8 if !int8_dot_supported() => Err(Error::CpuUnsupported(
                "int8 precision needs AVX512-VNNI byte dot products (Intel Cascade Lake or newer, AMD Zen 4 or newer); use f32".into(),
            )),
            _ => Ok(()),
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Precision, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            "int8" => Ok(Precision::Int8),
            _ => Err(format!("unknown precision {s:?} (expected f32, bf16 or int8)")),
        }
    }
}

/// A linear layer's parameters, PyTorch layout.
#[derive(Clone)]
pub struct Linear {
    /// `[out × in]`
    pub weight: Tensor,
    /// `[out]`
    pub bias: Tensor,
}

/// LayerNorm parameters.
#[derive(Clone)]
pub struct LayerNorm {
    /// `[d]`
    pub gamma: Tensor,
    /// `[d]`
    pub beta: Tensor,
}

/// One transformer block (post-LayerNorm, as in BERT).
#[derive(Clone)]
pub struct BertLayer {
    /// `[d × d]` each
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    /// `[d × d]`
    pub attention_output: Linear,
    pub attention_norm: LayerNorm,
    /// `[f × d]`
    pub intermediate: Linear,
    /// `[d × f]`
    pub output: Linear,
    pub output_norm: LayerNorm,
}

impl BertLayer {
    /// The six linear layers, in the order of the forward pass.
    fn linears(&self) -> [&Linear; 6] {
        [&self.query, &self.key, &self.value, &self.attention_output, &self.intermediate, &self.output]
    }
}

#[derive(Clone)]
pub struct Bert {
    pub config: BertConfig,
    /// `[V × d]`
    pub word_embeddings: Tensor,
    /// `[P × d]`
    pub position_embeddings: Tensor,
    /// `[types × d]`
    pub token_type_embeddings: Tensor,
    pub embeddings_norm: LayerNorm,
    pub layers: Vec<BertLayer>,
    precision: Precision,
    /// Shared by clones.
    packed: Arc<PackedWeights>,
    /// Kept per model, not shared by clones.
    activations: Activations,
}

/// The activation buffers of the forward pass, kept between calls while they are at most
/// [`KEEP_ACTIVATION_BYTES`]: fresh ones are zero pages the kernel faults in and clears on
/// first touch, ≈ 5 % of a 2,048-token batch. A forward that finds them in use (the same
/// model on another thread) allocates its own.
#[derive(Default)]
struct Activations(Mutex<Vec<f32>>);

/// 64 MiB: the buffers of batches up to ≈ 4,800 tokens (all-MiniLM-L6-v2).
const KEEP_ACTIVATION_BYTES: usize = 64 << 20;

impl Activations {
    /// Runs `f` on `len` elements of activation buffer (contents unspecified).
    fn with<R>(&self, len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
        let Ok(mut kept) = self.0.try_lock() else { return f(&mut vec![0.0; len]) };
        let mut buf = std::mem::take(&mut *kept);
        if buf.len() < len {
            buf = vec![0.0; len];
        }
        let out = f(&mut buf[..len]);
        if buf.len() * size_of::<f32>() <= KEEP_ACTIVATION_BYTES {
            *kept = buf;
        }
        out
    }
}

impl Clone for Activations {
    fn clone(&self) -> Self {
        Activations::default()
    }
}

/// The linear layers' weights packed for the GEMM kernels. In f32, made once the model has
/// run [`PACK_AFTER_TOKENS`] tokens: packing all of them (≈ 85 MB for all-MiniLM-L6-v2)
/// costs about what packing per product costs over that many tokens, so a one-off sentence
/// (`rmx embed`, `rmx query`) starts as fast as before and a batch is packed for at once.
/// In bf16 and int8, made at the first forward: those kernels only take packed weights.
#[derive(Default)]
struct PackedWeights {
    /// Per layer, its [`BertLayer::linears`] packed.
    layers: OnceLock<Vec<[PackedLinear; 6]>>,
    /// Tokens run through the model so far (counted until the weights are packed).
    tokens: AtomicUsize,
}

const PACK_AFTER_TOKENS: usize = 2048;

impl PackedWeights {
    /// The packed weights, packing them now in `precision` if it is not f32 or a forward of
    /// `tokens` more tokens reaches [`PACK_AFTER_TOKENS`]; `None` while it does not.
    fn for_forward(&self, layers: &[BertLayer], tokens: usize, precision: Precision) -> Option<&[[PackedLinear; 6]]> {
        let pack_after = if precision == Precision::F32 { PACK_AFTER_TOKENS } else { 0 };
        if self.layers.get().is_none() && self.tokens.fetch_add(tokens, Ordering::Relaxed) + tokens < pack_after {
            return None;
        }
        if self.layers.get().is_none() {
            // Packed in parallel outside the lock, then offered: a pool worker that waited
            // inside `get_or_init` could steal another forward of this model, which would
            // block on the same initialisation further up its own stack. Forwards racing
            // here may each pack; one copy is kept.
            let mut packed: Vec<Option<[PackedLinear; 6]>> = layers.iter().map(|_| None).collect();
            for_each_mut(&mut packed, |i, p| *p = Some(layers[i].linears().map(|w| PackedLinear::new(w, precision))));
            let _ = self.layers.set(packed.into_iter().flatten().collect());
        }
        self.layers.get().map(Vec::as_slice)
    }
}

/// A `Linear` weight packed once for the GEMM kernels, with the tensor it was packed from:
/// the layer fields are public, and a weight replaced since then is used unpacked (in f32,
/// whatever the model's precision).
struct PackedLinear {
    source: Tensor,
    packed: PackedB,
}

impl PackedLinear {
    fn new(linear: &Linear, precision: Precision) -> PackedLinear {
        let w = linear.weight.data();
        let n = linear.bias.data().len();
        let k = w.len().checked_div(n).unwrap_or(0);
        let b = MatRef::transposed(w, n, k);
        let packed = match precision {
            Precision::F32 => PackedB::new(b),
            Precision::Bf16 => PackedB::bf16(b),
            Precision::Int8 => PackedB::int8(b),
        };
        PackedLinear { source: linear.weight.clone(), packed }
    }

    /// The packed weight, if `linear` still holds the tensor it was packed from (`source`
    /// keeps that tensor alive, so no other tensor can have its address).
    fn of(&self, linear: &Linear) -> Option<&PackedB> {
        let (was, is) = (self.source.data(), linear.weight.data());
        (was.as_ptr() == is.as_ptr() && was.len() == is.len()).then_some(&self.packed)
    }
}

/// Token sequences packed back to back: sequence `s` is `ids[starts[s]..starts[s+1]]`.
#[derive(Debug, Clone, Default)]
pub struct PackedBatch {
    pub ids: Vec<u32>,
    /// `[n_seqs + 1]`, starting at 0
    pub starts: Vec<usize>,
}

impl PackedBatch {
    pub fn new<S: AsRef<[u32]>>(sequences: &[S]) -> PackedBatch {
        let mut batch = PackedBatch { ids: Vec::new(), starts: vec![0] };
        for s in sequences {
            batch.ids.extend_from_slice(s.as_ref());
            batch.starts.push(batch.ids.len());
        }
        batch
    }

    pub fn len(&self) -> usize {
        self.starts.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn tokens(&self) -> usize {
        self.ids.len()
    }
}

impl Bert {
    /// Loads `config.json` and `model.safetensors` from a Hugging Face model directory.
    pub fn load(dir: &Path) -> Result<Bert> {
        let config = BertConfig::load(&dir.join("config.json"))?;
        let weights = WeightFile::open(&dir.join("model.safetensors"))?;
        Bert::from_weights(config, &weights)
    }

    pub fn from_weights(config: BertConfig, w: &WeightFile) -> Result<Bert> {
        let (d, f) = (config.hidden_size, config.intermediate_size);
        let linear = |name: &str, out: usize, inp: usize| -> Result<Linear> {
            Ok(Linear { weight: w.get(&format!("{name}.weight"), &[out, inp])?, bias: w.get(&format!("{name}.bias"), &[out])? })
        };
        let norm = |name: &str| -> Result<LayerNorm> {
            // Old checkpoints name LayerNorm parameters gamma/beta.
            let pick = |new: &str, old: &str| if w.contains(&format!("{name}.{new}")) { new.to_string() } else { old.to_string() };
            Ok(LayerNorm {
                gamma: w.get(&format!("{name}.{}", pick("weight", "gamma")), &[d])?,
                beta: w.get(&format!("{name}.{}", pick("bias", "beta")), &[d])?,
            })
        };
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let p = format!("encoder.layer.{i}");
                Ok(BertLayer {
                    query: linear(&format!("{p}.attention.self.query"), d, d)?,
                    key: linear(&format!("{p}.attention.self.key"), d, d)?,
                    value: linear(&format!("{p}.attention.self.value"), d, d)?,
                    attention_output: linear(&format!("{p}.attention.output.dense"), d, d)?,
                    attention_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                    intermediate: linear(&format!("{p}.intermediate.dense"), f, d)?,
                    output: linear(&format!("{p}.output.dense"), d, f)?,
                    output_norm: norm(&format!("{p}.output.LayerNorm"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Bert::from_parts(
            w.get("embeddings.word_embeddings.weight", &[config.vocab_size, d])?,
            w.get("embeddings.position_embeddings.weight", &[config.max_position_embeddings, d])?,
            w.get("embeddings.token_type_embeddings.weight", &[config.type_vocab_size, d])?,
            norm("embeddings.LayerNorm")?,
            layers,
            config,
        ))
    }

    /// An encoder from its tensors (shapes as in the fields' comments; e.g. a model being
    /// trained, copied out of the trainer's parameters).
    pub fn from_parts(
        word_embeddings: Tensor,
        position_embeddings: Tensor,
        token_type_embeddings: Tensor,
        embeddings_norm: LayerNorm,
        layers: Vec<BertLayer>,
        config: BertConfig,
    ) -> Bert {
        Bert {
            word_embeddings,
            position_embeddings,
            token_type_embeddings,
            embeddings_norm,
            layers,
            config,
            precision: Precision::F32,
            packed: Arc::default(),
            activations: Activations::default(),
        }
    }

    /// Computes the linear layers in `precision` from now on (an error if the CPU cannot);
    /// weights packed for the previous precision are dropped (clones keep theirs).
    pub fn set_precision(&mut self, precision: Precision) -> Result<()> {
        precision.check_supported()?;
        if precision != self.precision {
            self.precision = precision;
            self.packed = Arc::default();
        }
        Ok(())
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The last hidden layer `[T × d]` of a packed batch.
    ///
    /// The whole pass runs on a spinning team of the pool's threads (`with_team`): its
    /// ≈ 55 parallel steps are shared by threads that stay awake between steps, instead of
    /// each step waking workers and parking them again.
    pub fn forward(&self, batch: &PackedBatch) -> Result<Vec<f32>> {
        with_team(|| self.forward_inspect(batch, |_, _| {}))
    }

    /// The forward pass, showing `inspect(layer, hidden [T × d])` the embedding output
    /// (layer 0) and the output of every transformer block (layers 1..=L).
    pub fn forward_inspect(&self, batch: &PackedBatch, mut inspect: impl FnMut(usize, &[f32])) -> Result<Vec<f32>> {
        self.check_batch(batch)?;
        let c = &self.config;
        let (t, d, f) = (batch.tokens(), c.hidden_size, c.intermediate_size);
        let eps = c.layer_norm_eps;

        // x: [T × d]
        let mut x = vec![0.0f32; t * d];
        let type0 = &self.token_type_embeddings.data()[..d];
        embeddings_forward(&batch.ids, &batch.starts, self.word_embeddings.data(), self.position_embeddings.data(), type0, &mut x);
        let n = &self.embeddings_norm;
        layernorm_forward(&mut x, d, n.gamma.data(), n.beta.data(), eps);
        inspect(0, &x);

        self.activations.with(5 * t * d + t * f, |buffers| {
            // q, k, v, ctx, h: [T × d]; inter: [T × f]
            let (qkv, rest) = buffers.split_at_mut(3 * t * d);
            let (q, kv) = qkv.split_at_mut(t * d);
            let (k, v) = kv.split_at_mut(t * d);
            let (ctx, rest) = rest.split_at_mut(t * d);
            let (h, inter) = rest.split_at_mut(t * d);
            self.layers_forward(batch, &mut x, [q, k, v, ctx, h, inter], &mut inspect);
        });
        Ok(x)
    }

    /// The transformer blocks over `x: [T × d]`, in place, on the given activation buffers.
    fn layers_forward(&self, batch: &PackedBatch, x: &mut [f32], buffers: [&mut [f32]; 6], inspect: &mut impl FnMut(usize, &[f32])) {
        let c = &self.config;
        let (t, d, eps) = (batch.tokens(), c.hidden_size, c.layer_norm_eps);
        let [q, k, v, ctx, h, inter] = buffers;
        let packed = self.packed.for_forward(&self.layers, t, self.precision);
        for (i, layer) in self.layers.iter().enumerate() {
            let [pq, pk, pv, po, pi, pout] = packed.and_then(|p| p.get(i)).map_or([None; 6], |p| p.each_ref().map(Some));
            let lin = |l: &Linear, p: Option<&PackedLinear>, x: &[f32], y: &mut [f32], act: Activation| match p.and_then(|p| p.of(l)) {
                Some(w) => linear_forward_packed(x, t, w, l.bias.data(), y, act),
                None => linear_forward(x, t, l.weight.data(), l.bias.data(), y, act),
            };
            lin(&layer.query, pq, x, q, Activation::Bias);
            lin(&layer.key, pk, x, k, Activation::Bias);
            lin(&layer.value, pv, x, v, Activation::Bias);
            attention_forward(q, k, v, &batch.starts, c.num_attention_heads, ctx);
            lin(&layer.attention_output, po, ctx, h, Activation::BiasResidual(x));
            layernorm_forward(h, d, layer.attention_norm.gamma.data(), layer.attention_norm.beta.data(), eps);
            lin(&layer.intermediate, pi, h, inter, Activation::BiasGelu);
            lin(&layer.output, pout, inter, x, Activation::BiasResidual(h));
            layernorm_forward(x, d, layer.output_norm.gamma.data(), layer.output_norm.beta.data(), eps);
            inspect(i + 1, x);
        }
    }

    /// Rejects batches the model cannot take: unknown ids, sequences longer than its positions.
    fn check_batch(&self, batch: &PackedBatch) -> Result<()> {
        let c = &self.config;
        if let Some(&id) = batch.ids.iter().find(|&&id| id as usize >= c.vocab_size) {
            return Err(Error::Input(format!("token id {id} is outside the vocabulary ({} ids)", c.vocab_size)));
        }
        if let Some(len) = batch.starts.windows(2).map(|s| s[1] - s[0]).find(|&l| l > c.max_position_embeddings) {
            return Err(Error::Input(format!("sequence of {len} tokens exceeds the model's {} positions", c.max_position_embeddings)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;

    fn tensor(rng: &mut Rng, shape: &[usize], scale: f32) -> Tensor {
        Tensor::from_vec(rng.normals(shape.iter().product(), scale), shape.to_vec())
    }

    fn linear(rng: &mut Rng, out: usize, inp: usize) -> Linear {
        Linear { weight: tensor(rng, &[out, inp], 0.3), bias: tensor(rng, &[out], 0.1) }
    }

    fn norm(rng: &mut Rng, d: usize) -> LayerNorm {
        LayerNorm { gamma: tensor(rng, &[d], 1.0), beta: tensor(rng, &[d], 0.1) }
    }

    /// A random BERT with d = 8, 2 heads, ffn 16, 2 layers, 50 ids.
    fn tiny_bert(seed: u64) -> Bert {
        let config: BertConfig = serde_json::from_str(
            r#"{"vocab_size": 50, "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2,
                "intermediate_size": 16, "max_position_embeddings": 64}"#,
        )
        .unwrap();
        let rng = &mut Rng::new(seed);
        let (d, f) = (config.hidden_size, config.intermediate_size);
        let layers = (0..config.num_hidden_layers)
            .map(|_| BertLayer {
                query: linear(rng, d, d),
                key: linear(rng, d, d),
                value: linear(rng, d, d),
                attention_output: linear(rng, d, d),
                attention_norm: norm(rng, d),
                intermediate: linear(rng, f, d),
                output: linear(rng, d, f),
                output_norm: norm(rng, d),
            })
            .collect();
        Bert {
            word_embeddings: tensor(rng, &[config.vocab_size, d], 1.0),
            position_embeddings: tensor(rng, &[config.max_position_embeddings, d], 1.0),
            token_type_embeddings: tensor(rng, &[config.type_vocab_size, d], 1.0),
            embeddings_norm: norm(rng, d),
            layers,
            config,
            precision: Precision::F32,
            packed: Arc::default(),
            activations: Activations::default(),
        }
    }

    #[test]
    fn kept_activation_buffers_do_not_leak_into_later_batches() {
        let small = PackedBatch::new(&[vec![1u32, 5, 7, 2], vec![3]]);
        let want = tiny_bert(3).forward(&small).unwrap();
        let bert = tiny_bert(3);
        let big: Vec<Vec<u32>> = (0..9).map(|s| (0..40).map(|i| (s * 11 + i * 3) as u32 % 50).collect()).collect();
        bert.forward(&PackedBatch::new(&big)).unwrap();
        assert!(bert.activations.0.lock().unwrap().len() > 5 * small.tokens() * 8, "the big batch's buffers are kept");
        assert_eq!(bert.forward(&small).unwrap(), want);
        // A clone starts with buffers of its own.
        assert!(bert.clone().activations.0.lock().unwrap().is_empty());
    }

    /// Threads that start forwards of one model while its weights get packed all get the
    /// one-thread answer. (The deadlock `PackedWeights::for_forward` avoids needs a worker
    /// to steal a forward mid-packing, rarely hit with this tiny model; the C ABI's
    /// eight-thread test on the real one hit it once.)
    #[test]
    fn concurrent_forwards_while_the_weights_get_packed() {
        let seqs: Vec<Vec<u32>> = (0..PACK_AFTER_TOKENS / 32).map(|s| (0..32).map(|i| (s * 5 + i) as u32 % 50).collect()).collect();
        let batch = PackedBatch::new(&seqs);
        let want = tiny_bert(4).forward(&batch).unwrap();
        for _ in 0..10 {
            let bert = tiny_bert(4);
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
        let bert = tiny_bert(1);
        let small = PackedBatch::new(&[vec![1u32, 5, 7, 2], vec![3, 4]]);
        let unpacked = bert.forward(&small).unwrap();
        assert!(bert.packed.layers.get().is_none());
        // A batch that reaches PACK_AFTER_TOKENS packs the weights; the states do not change.
        let seqs: Vec<Vec<u32>> = (0..PACK_AFTER_TOKENS / 64).map(|s| (0..64).map(|i| (s * 7 + i) as u32 % 50).collect()).collect();
        bert.forward(&PackedBatch::new(&seqs)).unwrap();
        assert!(bert.packed.layers.get().is_some());
        assert_eq!(bert.forward(&small).unwrap(), unpacked);

        // A clone shares the packed weights; a weight replaced in it is used as it is now.
        let other = tiny_bert(2).layers[1].intermediate.clone();
        let mut changed = bert.clone();
        changed.layers[1].intermediate = other.clone();
        let mut fresh = tiny_bert(1);
        fresh.layers[1].intermediate = other;
        let want = fresh.forward(&small).unwrap();
        assert!(fresh.packed.layers.get().is_none());
        assert_ne!(want, unpacked);
        assert_eq!(changed.forward(&small).unwrap(), want);
    }
}
