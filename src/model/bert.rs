//! The BERT encoder, inference forward pass on the CPU.
//!
//! Sequences of a batch are packed back to back into one `[T × d]` matrix (no padding), so
//! every matrix product runs over exactly the real tokens.
use super::config::BertConfig;
use super::weights::{Tensor, WeightFile};
use crate::backend::cpu::attention::attention_forward;
use crate::backend::cpu::embedding::embeddings_forward;
use crate::backend::cpu::layernorm::layernorm_forward;
use crate::backend::cpu::linear::{linear_forward, Activation};
use crate::error::{Error, Result};
use std::path::Path;

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
        Ok(Bert {
            word_embeddings: w.get("embeddings.word_embeddings.weight", &[config.vocab_size, d])?,
            position_embeddings: w.get("embeddings.position_embeddings.weight", &[config.max_position_embeddings, d])?,
            token_type_embeddings: w.get("embeddings.token_type_embeddings.weight", &[config.type_vocab_size, d])?,
            embeddings_norm: norm("embeddings.LayerNorm")?,
            layers,
            config,
        })
    }

    /// The last hidden layer `[T × d]` of a packed batch.
    pub fn forward(&self, batch: &PackedBatch) -> Result<Vec<f32>> {
        self.forward_inspect(batch, |_, _| {})
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

        // q, k, v, ctx, h: [T × d]; inter: [T × f]
        let (mut q, mut k, mut v) = (vec![0.0f32; t * d], vec![0.0f32; t * d], vec![0.0f32; t * d]);
        let (mut ctx, mut h) = (vec![0.0f32; t * d], vec![0.0f32; t * d]);
        let mut inter = vec![0.0f32; t * f];
        for (i, layer) in self.layers.iter().enumerate() {
            let lin = |x: &[f32], l: &Linear, y: &mut [f32], act: Activation| linear_forward(x, t, l.weight.data(), l.bias.data(), y, act);
            lin(&x, &layer.query, &mut q, Activation::Bias);
            lin(&x, &layer.key, &mut k, Activation::Bias);
            lin(&x, &layer.value, &mut v, Activation::Bias);
            attention_forward(&q, &k, &v, &batch.starts, c.num_attention_heads, &mut ctx);
            lin(&ctx, &layer.attention_output, &mut h, Activation::BiasResidual(&x));
            layernorm_forward(&mut h, d, layer.attention_norm.gamma.data(), layer.attention_norm.beta.data(), eps);
            lin(&h, &layer.intermediate, &mut inter, Activation::BiasGelu);
            lin(&inter, &layer.output, &mut x, Activation::BiasResidual(&h));
            layernorm_forward(&mut x, d, layer.output_norm.gamma.data(), layer.output_norm.beta.data(), eps);
            inspect(i + 1, &x);
        }
        Ok(x)
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
