//! The device seam. Model and trainer types are generic over a [`Backend`] `B` and name no
//! backend themselves; a backend implements every op (forward and backward side by side, one
//! signature for every device) on memory of its own (`Backend::Mem`: `[f32]` in host memory
//! for the CPU), so that a whole forward and backward pass can stay on the device: a model's
//! parameters are uploaded once when it loads (`Backend::upload`), the encoder, the heads and
//! the trainer hand ops device memory, and results go to the host only where they leave the
//! model (`Backend::to_host`).
//!
//! Backends: `cpu`, and `cuda::Cuda` (features `cuda`, `cuda-emu`: the CUDA ops' launchers
//! behind the same trait, docs/cuda.md). ARCHITECTURE.md,
//! "The device seam", says how a backend plugs in; `conformance` (tests) checks one against
//! the CPU's.
mod choice;
#[cfg(all(test, any(feature = "cuda", feature = "cuda-emu")))]
mod conformance;
pub mod cpu;
#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
pub mod cuda;
pub mod tensor;

use crate::error::Result;
pub use choice::{on_device, DeviceKind, OnDevice};
pub use tensor::Tensor;

/// The arithmetic of the encoder's linear layers (≈ 80 % of its time); attention, softmax,
/// LayerNorm, GELU and the residual sums are f32 either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// f32: the PyTorch oracle's hidden states to 1e-4 (the default).
    #[default]
    F32,
    /// Weights and activations rounded to bf16, products summed in f32 (on the CPU: AMX
    /// tiles where the CPU and OS allow, else AVX512-BF16 dot products; CPUs without
    /// AVX512-BF16 refuse it). Costs accuracy: sentence embeddings keep a cosine ≥ 0.9995
    /// with the f32 oracle's (`tests/encoder_golden.rs` measures it).
    Bf16,
    /// Weights quantized per output to int8, activations per token row to u8 (a scale and
    /// zero point each, computed on the fly), products summed exactly in i32 (on the CPU:
    /// AVX512-VNNI `vpdpbusd`; CPUs without it refuse it). Costs more accuracy than bf16:
    /// sentence embeddings keep a cosine ≥ 0.995 with the f32 oracle's.
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

/// What happens to `x · Wᵀ` of a linear layer before it is stored (its fused epilogue).
pub enum Activation<'a, M: ?Sized = [f32]> {
    /// `y = x·Wᵀ + b`
    Bias,
    /// `y = gelu(x·Wᵀ + b)`
    BiasGelu,
    /// `y = x·Wᵀ + b + residual`, `residual: [rows × out]` (the input of a LayerNorm).
    BiasResidual(&'a M),
}

impl<M: ?Sized> Clone for Activation<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M: ?Sized> Copy for Activation<'_, M> {}

/// Row indices into the packed hidden states `H` of one instance (RE-Matching's entity
/// spans and marker tokens).
#[derive(Debug, Clone, PartialEq)]
pub struct EntityRows {
    pub head: std::ops::Range<usize>,
    pub tail: std::ops::Range<usize>,
    pub head_marker: usize,
    pub tail_marker: usize,
}

/// AdamW's constants of one update (see `train::adamw`).
#[derive(Debug, Clone, Copy)]
pub struct AdamWStep {
    /// `1 − lr·weight_decay`
    pub decay: f32,
    /// `lr / (1 − β₁ᵏ)`
    pub step_size: f32,
    pub beta1: f32,
    pub beta2: f32,
    /// `√(1 − β₂ᵏ)`
    pub bias2_sqrt: f32,
    pub eps: f32,
}

/// A compute device: its memory and every op the model and the trainer run, forward and
/// backward side by side. Backward ops **accumulate** (`+=`) into every gradient they write.
/// Shapes are row-major and named in each op's doc; `starts` are the packed batch's
/// sequence offsets (`[n_seqs + 1]`, host memory: they steer the work, like a kernel
/// launch's arguments).
#[allow(clippy::too_many_arguments)]
pub trait Backend: Sized + Send + Sync + 'static {
    /// Device memory: a run of f32 values (`[f32]` on the CPU).
    type Mem: ?Sized + Sync;
    /// An owned run of device memory (`Vec<f32>` on the CPU).
    type Buf: std::ops::DerefMut<Target = Self::Mem> + Send + Sync;
    /// A parameter tensor resident on the device (the CPU: the host [`Tensor`] itself,
    /// borrowed from the mapped weight file until first written). A clone shares the values
    /// until either side writes them ([`Backend::param_mut`]).
    type Param: Clone + Send + Sync;
    /// Per-model state of the inference path's linear layers, made by
    /// [`Backend::prepare_linears`] (the CPU: weights packed into GEMM panels).
    type Prepared: Default + Send + Sync;

    /// The device as a user names it (`--device`).
    const KIND: DeviceKind;

    /// `Ok` if the device can compute linear layers in `precision`.
    fn check_precision(precision: Precision) -> Result<()>;
    /// Runs one inference pass `f` (the CPU: on a spinning team of the pool's threads).
    fn pass<R: Send>(f: impl FnOnce() -> R + Send) -> R;
    /// Waits for the work queued so far and returns the first error any op met since the
    /// last call (ops do not return errors: like CUDA's, a device error is sticky and shows
    /// here and in [`Backend::to_host`]; the CPU has none).
    fn sync() -> Result<()>;

    // --- memory ---
    /// `n` zeros in device memory.
    fn zeros(n: usize) -> Self::Buf;
    /// A device copy of host values.
    fn from_host(x: &[f32]) -> Self::Buf;
    /// Copies device memory to the host (the CPU: a copy); the first error of the work
    /// queued before it, if any ([`Backend::sync`]).
    fn to_host(x: &Self::Mem) -> Result<Vec<f32>>;
    /// The number of f32 values in `x`.
    fn len(x: &Self::Mem) -> usize;
    /// Values `range` of `x`.
    fn slice(x: &Self::Mem, range: std::ops::Range<usize>) -> &Self::Mem;
    fn slice_mut(x: &mut Self::Mem, range: std::ops::Range<usize>) -> &mut Self::Mem;
    /// `x[..mid]` and `x[mid..]`.
    fn split_at_mut(x: &mut Self::Mem, mid: usize) -> (&mut Self::Mem, &mut Self::Mem);
    /// `x = 0`.
    fn fill_zero(x: &mut Self::Mem);

    // --- parameters ---
    /// The device's copy of a host tensor (the CPU: the tensor, shared).
    fn upload(t: &Tensor) -> Self::Param;
    /// A host copy of a parameter of shape `shape` (the CPU: the tensor, shared).
    fn download(p: &Self::Param, shape: &[usize]) -> Result<Tensor>;
    fn param(p: &Self::Param) -> &Self::Mem;
    /// The values to change in place (copied first if shared with a clone or a file).
    fn param_mut(p: &mut Self::Param) -> &mut Self::Mem;

    // --- embeddings ---
    /// `out: [T × d] = word[ids] + position[p] + token_type0` (positions restart per sequence).
    fn embeddings_forward(ids: &[u32], starts: &[usize], word: &Self::Mem, position: &Self::Mem, token_type0: &Self::Mem, out: &mut Self::Mem);
    fn embeddings_backward(ids: &[u32], starts: &[usize], d_out: &Self::Mem, d_word: &mut Self::Mem, d_position: &mut Self::Mem, d_token_type0: &mut Self::Mem);

    // --- linear layers ---
    /// `y: [rows × out] = act(x: [rows × in] · w: [out × in]ᵀ + b: [out])`.
    fn linear_forward(x: &Self::Mem, rows: usize, w: &Self::Mem, b: &Self::Mem, y: &mut Self::Mem, act: Activation<Self::Mem>);
    /// Prepares the weights `linears()` (each `[out × in]`) for [`Backend::linear_forward_prepared`]
    /// in `precision`, when the device finds it worth it for passes of `tokens` tokens.
    fn prepare_linears(state: &Self::Prepared, precision: Precision, tokens: usize, linears: &dyn Fn() -> Vec<Self::Param>);
    /// [`Backend::linear_forward`] with weight `slot` of `state` when it is prepared from `w`
    /// (in the prepared precision), else with `w` in f32.
    fn linear_forward_prepared(
        state: &Self::Prepared,
        slot: usize,
        x: &Self::Mem,
        rows: usize,
        w: &Self::Param,
        b: &Self::Mem,
        y: &mut Self::Mem,
        act: Activation<Self::Mem>,
    );
    /// The training form of `Activation::BiasGelu`: `z = x·Wᵀ + b` (kept) and `y = gelu(z)`.
    fn linear_gelu_forward_saving(x: &Self::Mem, rows: usize, w: &Self::Mem, b: &Self::Mem, z: &mut Self::Mem, y: &mut Self::Mem);
    /// `dx += dy·W` (unless `None`), `dw += dyᵀ·x`, `db += Σ_rows dy`.
    fn linear_backward(x: &Self::Mem, rows: usize, w: &Self::Mem, dy: &Self::Mem, dx: Option<&mut Self::Mem>, dw: &mut Self::Mem, db: &mut Self::Mem);
    /// `y += x`, element-wise (a residual added after dropout).
    fn add(y: &mut Self::Mem, x: &Self::Mem);
    /// Rows side by side: row `i` of `out: [n × P·d]` is row `i` of each `parts[p]: [n × d]`.
    fn concat_parts(parts: &[&Self::Mem], d: usize, out: &mut Self::Mem);
    /// The inverse of [`Backend::concat_parts`]: `parts[p]` (overwritten) gets columns
    /// `p·d..(p+1)·d` of `x: [n × P·d]`.
    fn split_parts(x: &Self::Mem, d: usize, parts: &mut [&mut Self::Mem]);

    // --- attention ---
    /// Multi-head self-attention per packed sequence: `q, k, v, ctx: [T × d]`.
    fn attention_forward(q: &Self::Mem, k: &Self::Mem, v: &Self::Mem, starts: &[usize], heads: usize, ctx: &mut Self::Mem);
    fn attention_backward(
        q: &Self::Mem,
        k: &Self::Mem,
        v: &Self::Mem,
        starts: &[usize],
        heads: usize,
        d_ctx: &Self::Mem,
        dq: &mut Self::Mem,
        dk: &mut Self::Mem,
        dv: &mut Self::Mem,
    );

    // --- LayerNorm ---
    /// Every row of `x: [rows × d]` normalised in place.
    fn layernorm_forward(x: &mut Self::Mem, d: usize, gamma: &Self::Mem, beta: &Self::Mem, eps: f32);
    /// `y = LayerNorm(x)` out of place, keeping `mean, rstd: [rows]` (`y` equals the in-place form's).
    fn layernorm_forward_saving(
        x: &Self::Mem,
        y: &mut Self::Mem,
        d: usize,
        gamma: &Self::Mem,
        beta: &Self::Mem,
        eps: f32,
        mean: &mut Self::Mem,
        rstd: &mut Self::Mem,
    );
    fn layernorm_backward(
        x: &Self::Mem,
        d: usize,
        gamma: &Self::Mem,
        mean: &Self::Mem,
        rstd: &Self::Mem,
        dy: &Self::Mem,
        dx: &mut Self::Mem,
        dgamma: &mut Self::Mem,
        dbeta: &mut Self::Mem,
    );

    // --- GELU, dropout, tanh, gradient reversal ---
    /// `dz += gelu'(z) ⊙ dy` (GELU's forward is fused into the linear layers).
    fn gelu_backward(z: &Self::Mem, dy: &Self::Mem, dz: &mut Self::Mem);
    /// Inverted dropout in place with the mask of `(p, key)` (a pure function of the key and
    /// the element index, recomputed by the backward).
    fn dropout_forward(x: &mut Self::Mem, p: f32, key: u64);
    fn dropout_backward(dy: &Self::Mem, p: f32, key: u64, dx: &mut Self::Mem);
    fn tanh_forward(x: &mut Self::Mem);
    /// From the output `y`: `dx += dy ⊙ (1 − y²)`.
    fn tanh_backward(y: &Self::Mem, dy: &Self::Mem, dx: &mut Self::Mem);
    /// The gradient reversal layer's backward: `dx += −λ·dy` (its forward is the identity).
    fn grl_backward(dy: &Self::Mem, lambda: f32, dx: &mut Self::Mem);

    // --- pooling ---
    /// Mean of each sequence's rows: `h: [T × d]` → `out: [n_seqs × d]`.
    fn mean_pool_forward(h: &Self::Mem, starts: &[usize], d: usize, out: &mut Self::Mem);
    fn mean_pool_backward(d_out: &Self::Mem, starts: &[usize], d: usize, dh: &mut Self::Mem);
    /// Every row of `x: [rows × d]` scaled to unit L2 norm (a zero row stays zero).
    fn l2_normalize_rows(x: &mut Self::Mem, d: usize);

    // --- RE-Matching's input side ---
    /// Entity max-pools `heads, tails: [n × d]` and marker rows `markers: [n × 2d]` of
    /// `h: [T × d]`; `argmax: [n × 2d]` (the rows the maxima came from) for the backward.
    fn entity_pool_forward(
        h: &Self::Mem,
        d: usize,
        rows: &[EntityRows],
        heads: &mut Self::Mem,
        tails: &mut Self::Mem,
        markers: &mut Self::Mem,
        argmax: &mut [u32],
    );
    fn entity_pool_backward(d: usize, rows: &[EntityRows], argmax: &[u32], d_heads: &Self::Mem, d_tails: &Self::Mem, d_markers: &Self::Mem, dh: &mut Self::Mem);
    /// `x* = softmax(q·Hᵀ)·H` per sequence: `x_star: [n × d]`, `attn: [T]`.
    fn query_attention_forward(h: &Self::Mem, starts: &[usize], q: &Self::Mem, x_star: &mut Self::Mem, attn: &mut Self::Mem);
    fn query_attention_backward(
        h: &Self::Mem,
        starts: &[usize],
        q: &Self::Mem,
        attn: &Self::Mem,
        d_x_star: &Self::Mem,
        dq: &mut Self::Mem,
        dh: Option<&mut Self::Mem>,
    );
    /// `out = x − (x·x*/‖x*‖²)·x*` per row of `[n × d]`.
    fn project_out_forward(x: &Self::Mem, x_star: &Self::Mem, d: usize, out: &mut Self::Mem);
    fn project_out_backward(x: &Self::Mem, x_star: &Self::Mem, d: usize, d_out: &Self::Mem, dx: &mut Self::Mem, d_x_star: &mut Self::Mem);
    /// `scores[i·m + j] = Σ_p weights[p]·cos(a_i,p, b_j,p)` over `P` parts of `d`.
    fn cosine_scores_forward(a: &Self::Mem, b: &Self::Mem, d: usize, weights: &[f32], scores: &mut Self::Mem);
    fn cosine_scores_backward(a: &Self::Mem, b: &Self::Mem, d: usize, weights: &[f32], d_scores: &Self::Mem, da: &mut Self::Mem, db: Option<&mut Self::Mem>);

    // --- losses (the loss value comes back to the host) ---
    /// Mean cross-entropy of `logits: [n × classes]` against `labels: [n]`.
    fn cross_entropy_forward(logits: &Self::Mem, classes: usize, labels: &[u32]) -> f32;
    fn cross_entropy_backward(logits: &Self::Mem, classes: usize, labels: &[u32], d_loss: f32, d_logits: &mut Self::Mem);
    /// RE-Matching's hinge against the hardest candidate negative, margin `gamma`.
    fn matching_loss_forward(scores: &Self::Mem, m: usize, positives: &[u32], negatives: &[bool], gamma: f32) -> f32;
    fn matching_loss_backward(scores: &Self::Mem, m: usize, positives: &[u32], negatives: &[bool], gamma: f32, d_loss: f32, d_scores: &mut Self::Mem);
    /// Softmax cross-entropy over the positive and the candidate negatives at `temperature`.
    fn contrastive_loss_forward(scores: &Self::Mem, m: usize, positives: &[u32], negatives: &[bool], temperature: f32) -> f32;
    fn contrastive_loss_backward(scores: &Self::Mem, m: usize, positives: &[u32], negatives: &[bool], temperature: f32, d_loss: f32, d_scores: &mut Self::Mem);

    // --- optimizer ---
    /// One AdamW update of `p` from gradient `g`, moments `m, v` (all one length).
    fn adamw_step(p: &mut Self::Mem, g: &Self::Mem, m: &mut Self::Mem, v: &mut Self::Mem, step: AdamWStep);
}
