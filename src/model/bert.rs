//! The BERT encoder: its parameters under their Hugging Face names, the inference forward
//! pass, and the one body of the embeddings and of a transformer block that inference and
//! training share (training keeps what its backward pass needs: `train::encoder`).
//!
//! Sequences of a batch are packed back to back into one `[T × d]` matrix (no padding), so
//! every matrix product runs over exactly the real tokens. The device's ops do the work
//! (the backend `B` the model is generic over); it may prepare the linear layers' weights for its products once the
//! model is in steady use (the CPU packs them into GEMM panels), in the model's
//! [`Precision`].
use super::config::BertConfig;
use super::params::{LinearIds, NormIds, ParamId, ParamSet};
use super::weights::WeightFile;
use crate::backend::{Activation, Backend};
use crate::error::{Error, Result};
use std::path::Path;
use std::sync::{Arc, Mutex};

pub use crate::backend::Precision;

/// Parameter ids of one transformer block (post-LayerNorm, as in BERT).
#[derive(Debug, Clone)]
pub struct LayerIds {
    /// `[d × d]` each
    pub query: LinearIds,
    pub key: LinearIds,
    pub value: LinearIds,
    /// `[d × d]`
    pub attention_output: LinearIds,
    pub attention_norm: NormIds,
    /// `[f × d]`
    pub intermediate: LinearIds,
    /// `[d × f]`
    pub output: LinearIds,
    pub output_norm: NormIds,
}

/// Where a block's linear layers sit in [`LayerIds::linears`] (and, `× 6 + layer`, among
/// the model's prepared weights).
const QUERY: usize = 0;
const KEY: usize = 1;
const VALUE: usize = 2;
const ATTENTION_OUTPUT: usize = 3;
const INTERMEDIATE: usize = 4;
const OUTPUT: usize = 5;

impl LayerIds {
    /// The six linear layers, in the order of the forward pass.
    pub fn linears(&self) -> [LinearIds; 6] {
        [self.query, self.key, self.value, self.attention_output, self.intermediate, self.output]
    }
}

/// The encoder's parameters inside a [`ParamSet`]: the one table of their Hugging Face
/// names (without a `bert.` prefix) and shapes.
#[derive(Debug, Clone)]
pub struct EncoderIds {
    /// `[V × d]`
    pub word: ParamId,
    /// `[P × d]`
    pub position: ParamId,
    /// `[types × d]`
    pub token_type: ParamId,
    pub embeddings_norm: NormIds,
    pub layers: Vec<LayerIds>,
}

impl EncoderIds {
    /// Names every encoder parameter of `config` with its shape, in a fixed order, and
    /// keeps the id `add(name, shape)` gives each.
    pub fn register(config: &BertConfig, add: &mut dyn FnMut(&str, &[usize]) -> Result<ParamId>) -> Result<EncoderIds> {
        let (d, f) = (config.hidden_size, config.intermediate_size);
        let linear = |add: &mut dyn FnMut(&str, &[usize]) -> Result<ParamId>, name: &str, out: usize, inp: usize| -> Result<LinearIds> {
            Ok(LinearIds { weight: add(&format!("{name}.weight"), &[out, inp])?, bias: add(&format!("{name}.bias"), &[out])? })
        };
        let norm = |add: &mut dyn FnMut(&str, &[usize]) -> Result<ParamId>, name: &str| -> Result<NormIds> {
            Ok(NormIds { gamma: add(&format!("{name}.weight"), &[d])?, beta: add(&format!("{name}.bias"), &[d])? })
        };
        let word = add("embeddings.word_embeddings.weight", &[config.vocab_size, d])?;
        let position = add("embeddings.position_embeddings.weight", &[config.max_position_embeddings, d])?;
        let token_type = add("embeddings.token_type_embeddings.weight", &[config.type_vocab_size, d])?;
        let embeddings_norm = norm(add, "embeddings.LayerNorm")?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let p = format!("encoder.layer.{i}");
                Ok(LayerIds {
                    query: linear(add, &format!("{p}.attention.self.query"), d, d)?,
                    key: linear(add, &format!("{p}.attention.self.key"), d, d)?,
                    value: linear(add, &format!("{p}.attention.self.value"), d, d)?,
                    attention_output: linear(add, &format!("{p}.attention.output.dense"), d, d)?,
                    attention_norm: norm(add, &format!("{p}.attention.output.LayerNorm"))?,
                    intermediate: linear(add, &format!("{p}.intermediate.dense"), f, d)?,
                    output: linear(add, &format!("{p}.output.dense"), d, f)?,
                    output_norm: norm(add, &format!("{p}.output.LayerNorm"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(EncoderIds { word, position, token_type, embeddings_norm, layers })
    }
}

/// A BERT encoder: its configuration, its parameters (which may hold more than the encoder's,
/// e.g. the heads being trained with it) and the ids of the encoder's among them.
pub struct Bert<B: Backend> {
    pub config: BertConfig,
    pub params: ParamSet<B>,
    pub ids: EncoderIds,
    precision: Precision,
    /// The device's prepared linear weights; shared by clones.
    prepared: Arc<B::Prepared>,
    /// Kept per model, not shared by clones.
    activations: Activations<B>,
}

impl<B: Backend> Clone for Bert<B> {
    fn clone(&self) -> Self {
        Bert {
            config: self.config.clone(),
            params: self.params.clone(),
            ids: self.ids.clone(),
            precision: self.precision,
            prepared: Arc::clone(&self.prepared),
            activations: Activations::default(),
        }
    }
}

/// The activation buffers of the forward pass, kept between calls while they are at most
/// [`KEEP_ACTIVATION_BYTES`]: fresh ones are zero pages the kernel faults in and clears on
/// first touch, ≈ 5 % of a 2,048-token batch. A forward that finds them in use (the same
/// model on another thread) allocates its own. A clone starts without any.
struct Activations<B: Backend>(Mutex<Option<B::Buf>>);

impl<B: Backend> Default for Activations<B> {
    fn default() -> Self {
        Activations(Mutex::new(None))
    }
}

/// 64 MiB: the buffers of batches up to ≈ 4,800 tokens (all-MiniLM-L6-v2).
const KEEP_ACTIVATION_BYTES: usize = 64 << 20;

impl<B: Backend> Activations<B> {
    /// Runs `f` on `len` elements of activation buffer (contents unspecified).
    fn with<R>(&self, len: usize, f: impl FnOnce(&mut B::Mem) -> R) -> R {
        let Ok(mut kept) = self.0.try_lock() else { return f(&mut B::zeros(len)) };
        let mut buf = match kept.take() {
            Some(buf) if B::len(&buf) >= len => buf,
            _ => B::zeros(len),
        };
        let out = f(B::slice_mut(&mut buf, 0..len));
        if B::len(&buf) * size_of::<f32>() <= KEEP_ACTIVATION_BYTES {
            *kept = Some(buf);
        }
        out
    }

    /// The number of values kept.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.0.lock().unwrap().as_ref().map_or(0, |buf| B::len(buf))
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

/// Hidden dropout of one training step: probability `p` and a key unique to the step (the
/// masks are recomputed from it in the backward pass). `p = 0` computes what inference does.
#[derive(Debug, Clone, Copy)]
pub struct Dropout {
    pub p: f32,
    pub key: u64,
}

impl Dropout {
    pub const OFF: Dropout = Dropout { p: 0.0, key: 0 };

    /// The mask key of dropout site `site` (0: embeddings, 1: attention output, 2: block
    /// output) of block `layer`.
    pub fn site_key(&self, layer: usize, site: u64) -> u64 {
        crate::rng::Rng::new(self.key ^ ((layer as u64) << 8 | site)).next_u64()
    }

    pub fn on(&self) -> bool {
        self.p > 0.0
    }
}

/// A LayerNorm's input `[T × d]` and its row statistics `mean, rstd: [T]`, kept for the
/// backward pass.
pub struct NormSaved<B: Backend> {
    pub sum: B::Buf,
    pub mean: B::Buf,
    pub rstd: B::Buf,
}

impl<B: Backend> NormSaved<B> {
    pub fn new(t: usize, d: usize) -> NormSaved<B> {
        NormSaved { sum: B::zeros(t * d), mean: B::zeros(t), rstd: B::zeros(t) }
    }

    pub fn len(&self) -> usize {
        B::len(&self.sum) + B::len(&self.mean) + B::len(&self.rstd)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the backward pass needs from one block's forward. All `[T × d]` unless noted.
pub struct LayerSaved<B: Backend> {
    pub q: B::Buf,
    pub k: B::Buf,
    pub v: B::Buf,
    /// attention output before its projection
    pub ctx: B::Buf,
    /// `dropout(ctx·Wᵀ + b) + x`, the input of the attention LayerNorm, with its statistics
    pub attention: NormSaved<B>,
    /// attention LayerNorm output
    pub h: B::Buf,
    /// `[T × f]`: the intermediate pre-activation and `gelu(z)`
    pub z: B::Buf,
    pub g: B::Buf,
    /// `dropout(g·Wᵀ + b) + h`, the input of the output LayerNorm, with its statistics
    pub output: NormSaved<B>,
}

impl<B: Backend> LayerSaved<B> {
    pub fn new(t: usize, d: usize, f: usize) -> LayerSaved<B> {
        let z = |n: usize| B::zeros(n);
        LayerSaved {
            q: z(t * d),
            k: z(t * d),
            v: z(t * d),
            ctx: z(t * d),
            attention: NormSaved::new(t, d),
            h: z(t * d),
            z: z(t * f),
            g: z(t * f),
            output: NormSaved::new(t, d),
        }
    }

    pub fn len(&self) -> usize {
        [&self.q, &self.k, &self.v, &self.ctx, &self.h, &self.z, &self.g].iter().map(|v| B::len(v)).sum::<usize>() + self.attention.len() + self.output.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where a block's forward writes its intermediate values: scratch buffers at inference,
/// kept ones in training.
pub enum BlockKeep<'a, B: Backend> {
    /// `q, k, v, ctx, h: [T × d]`, `inter: [T × f]`, overwritten by every block.
    Scratch([&'a mut B::Mem; 6]),
    /// Everything the backward pass needs, with the step's dropout.
    Saved(&'a mut LayerSaved<B>, Dropout),
}

impl<B: Backend> Bert<B> {
    /// Loads `config.json` and `model.safetensors` from a Hugging Face model directory; the
    /// weights are read on the host (mapped) and uploaded to the device once.
    pub fn load(dir: &Path) -> Result<Bert<B>> {
        let config = BertConfig::load(&dir.join("config.json"))?;
        let weights = WeightFile::open(&dir.join("model.safetensors"))?;
        Bert::from_weights(config, &weights)
    }

    pub fn from_weights(config: BertConfig, w: &WeightFile) -> Result<Bert<B>> {
        let mut params = ParamSet::default();
        let ids = EncoderIds::register(&config, &mut |name, shape| {
            // Old checkpoints name LayerNorm parameters gamma/beta.
            let legacy = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta");
            let stored = if w.contains(name) || !w.contains(&legacy) { name } else { &legacy };
            Ok(params.push_tensor(name, &w.get(stored, shape)?))
        })?;
        Ok(Bert::from_params(config, params, ids))
    }

    /// An encoder on `params` (e.g. a model being trained), computing in f32.
    pub fn from_params(config: BertConfig, params: ParamSet<B>, ids: EncoderIds) -> Bert<B> {
        Bert { config, params, ids, precision: Precision::F32, prepared: Arc::default(), activations: Activations::default() }
    }

    /// The same parameters (shared until either side changes one), with nothing prepared
    /// for the device and no kept buffers: e.g. a snapshot of a model being trained.
    pub fn snapshot(&self) -> Bert<B> {
        Bert::from_params(self.config.clone(), self.params.clone(), self.ids.clone())
    }

    /// Computes the linear layers in `precision` from now on (an error if the device cannot);
    /// weights prepared for the previous precision are dropped (clones keep theirs).
    pub fn set_precision(&mut self, precision: Precision) -> Result<()> {
        B::check_precision(precision)?;
        if precision != self.precision {
            self.precision = precision;
            self.prepared = Arc::default();
        }
        Ok(())
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// What the device has prepared for this model's products.
    pub fn prepared(&self) -> &B::Prepared {
        &self.prepared
    }

    /// The last hidden layer `[T × d]` of a packed batch, computed as one device pass.
    pub fn forward(&self, batch: &PackedBatch) -> Result<B::Buf> {
        B::pass(|| self.forward_inspect(batch, |_, _| {}))
    }

    /// The forward pass, showing `inspect(layer, hidden [T × d])` the embedding output
    /// (layer 0) and the output of every transformer block (layers 1..=L).
    pub fn forward_inspect(&self, batch: &PackedBatch, mut inspect: impl FnMut(usize, &B::Mem)) -> Result<B::Buf> {
        self.check_batch(batch)?;
        let c = &self.config;
        let (t, d, f) = (batch.tokens(), c.hidden_size, c.intermediate_size);

        // x: [T × d]
        let mut x = B::zeros(t * d);
        self.embeddings_forward(batch, &mut x, None);
        inspect(0, &x);

        self.activations.with(5 * t * d + t * f, |buffers| {
            // q, k, v, ctx, h: [T × d]; inter: [T × f]
            let (qkv, rest) = B::split_at_mut(buffers, 3 * t * d);
            let (q, kv) = B::split_at_mut(qkv, t * d);
            let (k, v) = B::split_at_mut(kv, t * d);
            let (ctx, rest) = B::split_at_mut(rest, t * d);
            let (h, inter) = B::split_at_mut(rest, t * d);
            B::prepare_linears(&self.prepared, self.precision, t, &|| self.linear_weights());
            let mut scratch = [q, k, v, ctx, h, inter];
            for i in 0..self.ids.layers.len() {
                let [q, k, v, ctx, h, inter] = &mut scratch;
                self.block_forward(i, batch, &mut x, BlockKeep::Scratch([&mut **q, &mut **k, &mut **v, &mut **ctx, &mut **h, &mut **inter]));
                inspect(i + 1, &x);
            }
        });
        Ok(x)
    }

    /// Every block's linear weights, in prepared-slot order (`6·layer + position`).
    fn linear_weights(&self) -> Vec<B::Param> {
        self.ids.layers.iter().flat_map(|l| l.linears()).map(|l| self.params.param(l.weight).clone()).collect()
    }

    /// `y = act(x·Wᵀ + b)` for linear layer `which` of block `layer`, with its prepared weight
    /// when the device has one.
    fn linear(&self, layer: usize, which: usize, x: &B::Mem, rows: usize, y: &mut B::Mem, act: Activation<B::Mem>) {
        let l = self.ids.layers[layer].linears()[which];
        B::linear_forward_prepared(&self.prepared, 6 * layer + which, x, rows, self.params.param(l.weight), self.params.get(l.bias), y, act);
    }

    /// `x: [T × d] = LayerNorm(word + position + type embeddings)`, then dropout; with
    /// `saved`, the LayerNorm's input and statistics are kept.
    pub fn embeddings_forward(&self, batch: &PackedBatch, x: &mut B::Mem, saved: Option<(&mut NormSaved<B>, Dropout)>) {
        let (d, eps) = (self.config.hidden_size, self.config.layer_norm_eps);
        let (p, n) = (&self.params, self.ids.embeddings_norm);
        let (word, position, type0) = (p.get(self.ids.word), p.get(self.ids.position), B::slice(p.get(self.ids.token_type), 0..d));
        match saved {
            None => {
                B::embeddings_forward(&batch.ids, &batch.starts, word, position, type0, x);
                B::layernorm_forward(x, d, p.get(n.gamma), p.get(n.beta), eps);
            }
            Some((s, dropout)) => {
                B::embeddings_forward(&batch.ids, &batch.starts, word, position, type0, &mut s.sum);
                B::layernorm_forward_saving(&s.sum, x, d, p.get(n.gamma), p.get(n.beta), eps, &mut s.mean, &mut s.rstd);
                B::dropout_forward(x, dropout.p, dropout.site_key(0, 0));
            }
        }
    }

    /// Transformer block `i` over `x: [T × d]`, in place: the one body of inference and
    /// training, which differ only in where intermediate values go (`keep`).
    ///
    /// ```text
    /// q, k, v = x·W{q,k,v}ᵀ + b        ctx = attention(q, k, v)
    /// h = LN(dropout(ctx·Waᵀ + ba) + x)
    /// x = LN(dropout(gelu(h·Wiᵀ + bi)·Woᵀ + bo) + h)
    /// ```
    pub fn block_forward(&self, i: usize, batch: &PackedBatch, x: &mut B::Mem, keep: BlockKeep<B>) {
        let (t, heads) = (batch.tokens(), self.config.num_attention_heads);
        let l = &self.ids.layers[i];
        let ([q, k, v, ctx, h, inter], saved) = match keep {
            BlockKeep::Scratch(buffers) => (buffers, None),
            BlockKeep::Saved(s, dropout) => {
                let LayerSaved { q, k, v, ctx, attention, h, z, g, output } = s;
                ([&mut **q, &mut **k, &mut **v, &mut **ctx, &mut **h, &mut **z], Some((attention, g, output, dropout)))
            }
        };
        self.linear(i, QUERY, x, t, q, Activation::Bias);
        self.linear(i, KEY, x, t, k, Activation::Bias);
        self.linear(i, VALUE, x, t, v, Activation::Bias);
        B::attention_forward(q, k, v, &batch.starts, heads, ctx);
        let (attention, g, output, dropout) = match saved {
            Some((a, g, o, dropout)) => (Some(a), Some(g), Some(o), dropout),
            None => (None, None, None, Dropout::OFF),
        };
        self.add_norm(i, ATTENTION_OUTPUT, ctx, x, h, l.attention_norm, attention.map(|s| (s, dropout.p, dropout.site_key(i, 1))));
        // inter: gelu(h·Wiᵀ + bi) at inference; in training the pre-activation z, and g.
        let activated: &B::Mem = match g {
            None => {
                self.linear(i, INTERMEDIATE, h, t, inter, Activation::BiasGelu);
                inter
            }
            Some(g) => {
                let ids = l.intermediate;
                B::linear_gelu_forward_saving(h, t, self.params.get(ids.weight), self.params.get(ids.bias), inter, g);
                g
            }
        };
        self.add_norm(i, OUTPUT, activated, h, x, l.output_norm, output.map(|s| (s, dropout.p, dropout.site_key(i, 2))));
    }

    /// `out = LN(dropout(input·Wᵀ + b) + residual)` for linear layer `which` of block `i`:
    /// at inference the sum is the fused epilogue's and is normalised in place; with
    /// `saved` (and its dropout probability and mask key) the sum and the LayerNorm's
    /// statistics are kept.
    #[allow(clippy::too_many_arguments)]
    fn add_norm(
        &self,
        i: usize,
        which: usize,
        input: &B::Mem,
        residual: &B::Mem,
        out: &mut B::Mem,
        norm: NormIds,
        saved: Option<(&mut NormSaved<B>, f32, u64)>,
    ) {
        let (t, d, eps) = (B::len(residual) / self.config.hidden_size, self.config.hidden_size, self.config.layer_norm_eps);
        let (gamma, beta) = (self.params.get(norm.gamma), self.params.get(norm.beta));
        match saved {
            None => {
                self.linear(i, which, input, t, out, Activation::BiasResidual(residual));
                B::layernorm_forward(out, d, gamma, beta, eps);
            }
            Some((s, p, key)) => {
                if p == 0.0 {
                    self.linear(i, which, input, t, &mut s.sum, Activation::BiasResidual(residual));
                } else {
                    self.linear(i, which, input, t, &mut s.sum, Activation::Bias);
                    B::dropout_forward(&mut s.sum, p, key);
                    B::add(&mut s.sum, residual);
                }
                B::layernorm_forward_saving(&s.sum, out, d, gamma, beta, eps, &mut s.mean, &mut s.rstd);
            }
        }
    }

    /// Rejects batches the model cannot take: unknown ids, sequences longer than its positions.
    pub fn check_batch(&self, batch: &PackedBatch) -> Result<()> {
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
pub(crate) mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;
    use crate::testutil::Rng;

    /// A random BERT with d = 8, 2 heads, ffn 16, 2 layers, 50 ids, on the device `B`.
    pub(crate) fn tiny_bert<B: Backend>(seed: u64) -> Bert<B> {
        let config: BertConfig = serde_json::from_str(
            r#"{"vocab_size": 50, "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2,
                "intermediate_size": 16, "max_position_embeddings": 64}"#,
        )
        .unwrap();
        let rng = &mut Rng::new(seed);
        let mut params = ParamSet::default();
        let ids = EncoderIds::register(&config, &mut |name, shape| {
            let scale = match name {
                n if n.starts_with("embeddings.") && !n.contains("LayerNorm") => 1.0,
                n if n.ends_with("LayerNorm.weight") => 1.0,
                n if n.ends_with(".bias") => 0.1,
                _ => 0.3,
            };
            Ok(params.push(name, shape, rng.normals(shape.iter().product(), scale)))
        })
        .unwrap();
        Bert::from_params(config, params, ids)
    }

    /// The states of `bert` for `batch`, on the host.
    fn states<B: Backend>(bert: &Bert<B>, batch: &PackedBatch) -> Vec<f32> {
        B::to_host(&bert.forward(batch).unwrap()).unwrap()
    }

    fn kept_activation_buffers_do_not_leak_into_later_batches<B: Backend>() {
        let small = PackedBatch::new(&[vec![1u32, 5, 7, 2], vec![3]]);
        let want = states(&tiny_bert::<B>(3), &small);
        let bert = tiny_bert::<B>(3);
        let big: Vec<Vec<u32>> = (0..9).map(|s| (0..40).map(|i| (s * 11 + i * 3) as u32 % 50).collect()).collect();
        bert.forward(&PackedBatch::new(&big)).unwrap();
        assert!(bert.activations.kept() > 5 * small.tokens() * 8, "the big batch's buffers are kept");
        assert_eq!(states(&bert, &small), want);
        // A clone starts with buffers of its own.
        assert_eq!(bert.clone().activations.kept(), 0);
    }

    #[test]
    fn kept_activation_buffers_do_not_leak_into_later_batches_cpu() {
        kept_activation_buffers_do_not_leak_into_later_batches::<Cpu>();
    }

    #[test]
    fn names_are_hugging_face_names_in_one_table() {
        let bert = tiny_bert::<Cpu>(1);
        let p = &bert.params;
        assert_eq!(p.name(bert.ids.word), "embeddings.word_embeddings.weight");
        assert_eq!(p.name(bert.ids.layers[1].intermediate.weight), "encoder.layer.1.intermediate.dense.weight");
        assert_eq!(p.name(bert.ids.layers[0].attention_norm.gamma), "encoder.layer.0.attention.output.LayerNorm.weight");
        assert_eq!(p.shape(bert.ids.layers[0].output.weight), &[8, 16]);
        assert_eq!(p.len(), 5 + 2 * 16);
    }
}
