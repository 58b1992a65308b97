//! The CUDA device behind the device seam: every op of [`Backend`] on device memory
//! ([`DevMem`]), each delegating to its launcher (the same math as the CPU op), run through
//! `context` (the process's device and each thread's sticky error, as described here).
//!
//! - **One device per process.** The trait's ops are static functions, so [`Cuda::open`] picks
//!   the device once: GPU 0 (feature `cuda`) or the emulator (feature `cuda-emu`; with both
//!   features, the emulator unless `RMX_TEST_DEVICE=cuda`, the kernel tests' rule). Calls
//!   reach it through a lock, one at a time (one cuBLAS handle and one staging area must not
//!   be used by two threads at once); the CUDA context is made current on whichever thread
//!   calls (`runtime`).
//! - **No wait per op.** Ops queue their launches and GEMMs on the device's one stream and
//!   return; the host waits in [`Backend::sync`], [`Backend::to_host`] and where an op brings a
//!   value back (a loss, the entity pool's argmax). See `runtime` for why that stays correct
//!   (stream-ordered frees, pinned staging of uploads).
//! - **Sticky errors, per thread.** An op does not return errors: the first failure (no device
//!   opened, a launch, a GEMM, an allocation, a buffer whose allocation failed) is kept for the
//!   calling thread, later ops of that thread do nothing, and [`Backend::sync`] or
//!   [`Backend::to_host`] returns it (and clears it). Per thread, not per process: the engine
//!   runs passes on several threads at once (C ABI), each ending in its own `to_host`; one
//!   process-wide error would fail, or be cleared by, another thread's pass, which would then
//!   return values computed without the failed op as if nothing happened. An error the GPU
//!   meets while running queued work (a kernel fault) surfaces at the next wait of whichever
//!   thread waits first; CUDA keeps such an error for the whole context, so every later call
//!   of every thread fails too.
//! - **Host inputs go up per call**: sequence starts, token ids, labels, masks, entity rows,
//!   score weights; the losses' value and the entity pool's argmax come down.
use super::context::{self, buffer, run, run_value, take_error, with_gpu};
use super::elementwise::{axpy, copy_columns, fill_zero, tanh_backward, tanh_forward};
use super::launch::{alloc, alloc_f32, download, duplicate, upload, CudaError, DeviceBuffer, Gpu, Packed};
use super::linear::{Activation as Epilogue, Weight};
use super::loss::CandidateLoss;
use super::memory::{DevBuf, DevMem, DevParam};
use super::{adamw, attention, cosine, distill, dropout, embedding, entity_pool, gelu, layernorm, linear, loss, pooling};
use crate::backend::{Activation, AdamWStep, Backend, EntityRows, Precision, Tensor};
use crate::error::{Error, Result};
use half::bf16;
use std::sync::{Arc, OnceLock};

/// The CUDA device: device memory, the kernels of `kernels/`, cuBLAS GEMMs.
pub struct Cuda;

/// The linear layers' weights rounded to bf16 once on the device, for bf16 precision (f32
/// GEMMs read the weights as they are and prepare nothing).
#[derive(Default)]
pub struct Bf16Weights {
    /// Per slot, its weight in bf16.
    linears: OnceLock<Vec<Bf16Linear>>,
}

/// A weight rounded to bf16, with the parameter it was rounded from: a parameter replaced or
/// written since (copied on write, so no longer the same allocation) is used in f32.
struct Bf16Linear {
    source: DevParam,
    // rounded: [out × in]
    rounded: DeviceBuffer<bf16>,
}

impl Bf16Weights {
    /// Whether the weights are rounded.
    pub fn is_prepared(&self) -> bool {
        self.linears.get().is_some()
    }

    fn of(&self, slot: usize, weight: &DevParam) -> Option<&DeviceBuffer<bf16>> {
        let linear = self.linears.get()?.get(slot)?;
        Arc::ptr_eq(&linear.source, weight).then_some(&linear.rounded)
    }
}

impl Cuda {
    /// Opens the process's device (see the module's doc for which); idempotent. `Err` says in
    /// one line why CUDA is unavailable: no driver, no device, or kernels not built.
    pub fn open() -> Result<()> {
        context::open()
    }
}

/// The launchers' form of a linear layer's epilogue.
fn epilogue(act: Activation<'_, DevMem>) -> Result<Epilogue<'_>, CudaError> {
    Ok(match act {
        Activation::Bias => Epilogue::Bias,
        Activation::BiasGelu => Epilogue::BiasGelu,
        Activation::BiasResidual(residual) => Epilogue::BiasResidual(residual.device()?),
    })
}

/// The packed sequences `starts` with their device copy (kept alive by the returned buffer).
fn upload_starts(gpu: &dyn Gpu, starts: &[usize]) -> Result<DeviceBuffer<u32>, CudaError> {
    let values: Vec<u32> = starts.iter().map(|&s| u32::try_from(s).expect("more than 2³² tokens")).collect();
    upload(gpu, &values)
}

/// Checks what the loss kernels index with on the host, as `cpu::loss` does: `n` rows of
/// `m` scores, each row's positive in range and not among its negatives.
fn check_candidates(scores: &DevMem, m: usize, positives: &[u32], negatives: &[bool]) {
    assert!(m > 0 && scores.len() == positives.len() * m, "scores are not [n × m]");
    assert_eq!(negatives.len(), scores.len(), "negative mask is not [n × m]");
    assert!(positives.iter().all(|&p| (p as usize) < m), "positive column out of range");
    assert!(positives.iter().zip(negatives.chunks_exact(m)).all(|(&p, neg)| !neg[p as usize]), "a sample's positive is marked as its negative");
}

/// A loss value computed into a device `[1]` by `launch`, brought to the host (NaN when
/// skipped or failed: the sticky error says why).
fn loss_value(launch: impl FnOnce(&dyn Gpu, &mut DeviceBuffer<f32>) -> Result<(), CudaError>) -> f32 {
    run_value(f32::NAN, |gpu| {
        let mut loss = alloc_f32(gpu, 1)?;
        launch(gpu, &mut loss)?;
        let mut value = [0.0f32];
        download(gpu, loss.slice(), &mut value)?;
        Ok(value[0])
    })
}

impl Backend for Cuda {
    type Mem = DevMem;
    type Buf = DevBuf;
    type Param = DevParam;
    type Prepared = Bf16Weights;

    const KIND: crate::backend::DeviceKind = crate::backend::DeviceKind::Cuda;

    fn check_precision(precision: Precision) -> Result<()> {
        match precision {
            Precision::F32 | Precision::Bf16 => Ok(()),
            other => Err(Error::Device(format!("the CUDA backend computes in f32 or bf16; {} precision is not supported on it", other.name()))),
        }
    }

    fn pass<R: Send>(f: impl FnOnce() -> R + Send) -> R {
        f()
    }

    /// Hands over the thread's sticky error, else waits for the device (which reports what
    /// its queued work met).
    fn sync() -> Result<()> {
        context::sync()
    }

    fn zeros(n: usize) -> DevBuf {
        buffer(n, |gpu| alloc_f32(gpu, n))
    }

    fn from_host(x: &[f32]) -> DevBuf {
        buffer(x.len(), |gpu| upload(gpu, x))
    }

    fn to_host(x: &DevMem) -> Result<Vec<f32>> {
        take_error()?;
        // The download waits for the queued work, and reports what it met.
        with_gpu(|gpu| {
            let source = x.device()?;
            let mut values = vec![0.0f32; x.len()];
            download(gpu, source, &mut values)?;
            Ok(values)
        })
        .map_err(Error::Device)
    }

    fn len(x: &DevMem) -> usize {
        x.len()
    }

    fn slice(x: &DevMem, range: std::ops::Range<usize>) -> &DevMem {
        x.slice(range)
    }

    fn slice_mut(x: &mut DevMem, range: std::ops::Range<usize>) -> &mut DevMem {
        x.slice_mut(range)
    }

    fn split_at_mut(x: &mut DevMem, mid: usize) -> (&mut DevMem, &mut DevMem) {
        x.split_at_mut(mid)
    }

    fn fill_zero(x: &mut DevMem) {
        run(|gpu| fill_zero(gpu, x.device_mut()?))
    }

    fn upload(t: &Tensor) -> DevParam {
        Arc::new(Self::from_host(t.data()))
    }

    fn download(p: &DevParam, shape: &[usize]) -> Result<Tensor> {
        let values = Self::to_host(p)?;
        match values.len() == shape.iter().product::<usize>() {
            true => Ok(Tensor::from_vec(values, shape.to_vec())),
            false => Err(Error::Device(format!("a parameter of {} values downloaded as shape {shape:?}", values.len()))),
        }
    }

    fn param(p: &DevParam) -> &DevMem {
        p
    }

    /// A parameter shared with a clone is copied on the device first.
    fn param_mut(p: &mut DevParam) -> &mut DevMem {
        if Arc::get_mut(p).is_none() {
            let len = p.len();
            *p = Arc::new(buffer(len, |gpu| duplicate(gpu, p.device()?)));
        }
        Arc::get_mut(p).expect("a fresh copy is not shared")
    }

    fn embeddings_forward(ids: &[u32], starts: &[usize], word: &DevMem, position: &DevMem, token_type0: &DevMem, out: &mut DevMem) {
        run(|gpu| {
            let (ids, starts_dev) = (upload(gpu, ids)?, upload_starts(gpu, starts)?);
            let seqs = Packed::new(starts, starts_dev.slice());
            embedding::embeddings_forward(gpu, out.device_mut()?, ids.slice(), seqs, word.device()?, position.device()?, token_type0.device()?)
        })
    }

    fn embeddings_backward(ids: &[u32], starts: &[usize], d_out: &DevMem, d_word: &mut DevMem, d_position: &mut DevMem, d_token_type0: &mut DevMem) {
        run(|gpu| {
            let (ids, starts_dev) = (upload(gpu, ids)?, upload_starts(gpu, starts)?);
            let seqs = Packed::new(starts, starts_dev.slice());
            embedding::embeddings_backward(gpu, d_word.device_mut()?, d_position.device_mut()?, d_token_type0.device_mut()?, d_out.device()?, ids.slice(), seqs)
        })
    }

    fn linear_forward(x: &DevMem, rows: usize, w: &DevMem, b: &DevMem, y: &mut DevMem, act: Activation<DevMem>) {
        assert_eq!(y.len(), rows * b.len(), "linear: output is not [rows × out]");
        run(|gpu| linear::linear_forward(gpu, y.device_mut()?, x.device()?, Weight::F32(w.device()?), b.device()?, epilogue(act)?))
    }

    /// In bf16 precision, rounds every weight to bf16 on the device once (the first pass);
    /// nothing in f32. Passes racing here may each round; one copy is kept.
    fn prepare_linears(state: &Bf16Weights, precision: Precision, _: usize, linears: &dyn Fn() -> Vec<DevParam>) {
        if precision != Precision::Bf16 || state.is_prepared() {
            return;
        }
        let weights = linears();
        let rounded = run_value(None, |gpu| {
            let mut rounded = Vec::with_capacity(weights.len());
            for w in weights {
                let mut buffer = alloc::<bf16, _>(gpu, w.len())?;
                linear::round_to_bf16(gpu, buffer.slice_mut(), w.device()?)?;
                rounded.push(Bf16Linear { source: w, rounded: buffer });
            }
            Ok(Some(rounded))
        });
        if let Some(rounded) = rounded {
            let _ = state.linears.set(rounded);
        }
    }

    fn linear_forward_prepared(state: &Bf16Weights, slot: usize, x: &DevMem, rows: usize, w: &DevParam, b: &DevMem, y: &mut DevMem, act: Activation<DevMem>) {
        let Some(rounded) = state.of(slot, w) else { return Self::linear_forward(x, rows, w, b, y, act) };
        assert_eq!(y.len(), rows * b.len(), "linear: output is not [rows × out]");
        run(|gpu| linear::linear_forward(gpu, y.device_mut()?, x.device()?, Weight::Bf16(rounded.slice()), b.device()?, epilogue(act)?))
    }

    fn linear_gelu_forward_saving(x: &DevMem, rows: usize, w: &DevMem, b: &DevMem, z: &mut DevMem, y: &mut DevMem) {
        assert_eq!(z.len(), rows * b.len(), "linear: output is not [rows × out]");
        run(|gpu| linear::linear_gelu_forward_saving(gpu, z.device_mut()?, y.device_mut()?, x.device()?, w.device()?, b.device()?))
    }

    fn linear_backward(x: &DevMem, rows: usize, w: &DevMem, dy: &DevMem, dx: Option<&mut DevMem>, dw: &mut DevMem, db: &mut DevMem) {
        assert_eq!(dy.len(), rows * db.len(), "linear backward: dy is not [rows × out]");
        run(|gpu| {
            let dx = match dx {
                Some(dx) => Some(dx.device_mut()?),
                None => None,
            };
            linear::linear_backward(gpu, dx, dw.device_mut()?, db.device_mut()?, x.device()?, w.device()?, dy.device()?)
        })
    }

    fn add(y: &mut DevMem, x: &DevMem) {
        run(|gpu| axpy(gpu, y.device_mut()?, x.device()?, 1.0))
    }

    fn concat_parts(parts: &[&DevMem], d: usize, out: &mut DevMem) {
        assert!(parts.iter().all(|p| p.len() * parts.len() == out.len()), "parts are not [n × d] for out [n × P·d]");
        let width = parts.len() * d;
        run(|gpu| {
            for (p, part) in parts.iter().enumerate() {
                let rows = part.len() / d.max(1);
                copy_columns(gpu, out.slice_mut(p * d..out.len()).device_mut()?, width, part.device()?, d, rows, d)?;
            }
            Ok(())
        })
    }

    fn split_parts(x: &DevMem, d: usize, parts: &mut [&mut DevMem]) {
        assert!(parts.iter().all(|p| p.len() * parts.len() == x.len()), "parts are not [n × d] for x [n × P·d]");
        let width = parts.len() * d;
        run(|gpu| {
            for (p, part) in parts.iter_mut().enumerate() {
                let rows = part.len() / d.max(1);
                copy_columns(gpu, part.device_mut()?, d, x.slice(p * d..x.len()).device()?, width, rows, d)?;
            }
            Ok(())
        })
    }

    fn attention_forward(q: &DevMem, k: &DevMem, v: &DevMem, starts: &[usize], heads: usize, ctx: &mut DevMem) {
        run(|gpu| {
            let starts_dev = upload_starts(gpu, starts)?;
            let seqs = Packed::new(starts, starts_dev.slice());
            attention::attention_forward(gpu, ctx.device_mut()?, q.device()?, k.device()?, v.device()?, seqs, heads)
        })
    }

    fn attention_backward(
        q: &DevMem,
        k: &DevMem,
        v: &DevMem,
        starts: &[usize],
        heads: usize,
        d_ctx: &DevMem,
        dq: &mut DevMem,
        dk: &mut DevMem,
        dv: &mut DevMem,
    ) {
        run(|gpu| {
            let starts_dev = upload_starts(gpu, starts)?;
            let seqs = Packed::new(starts, starts_dev.slice());
            attention::attention_backward(
                gpu,
                dq.device_mut()?,
                dk.device_mut()?,
                dv.device_mut()?,
                q.device()?,
                k.device()?,
                v.device()?,
                d_ctx.device()?,
                seqs,
                heads,
            )
        })
    }

    fn layernorm_forward(x: &mut DevMem, d: usize, gamma: &DevMem, beta: &DevMem, eps: f32) {
        run(|gpu| layernorm::layernorm_forward(gpu, x.device_mut()?, gamma.device()?, beta.device()?, d, eps))
    }

    fn layernorm_forward_saving(x: &DevMem, y: &mut DevMem, d: usize, gamma: &DevMem, beta: &DevMem, eps: f32, mean: &mut DevMem, rstd: &mut DevMem) {
        run(|gpu| {
            layernorm::layernorm_forward_saving(
                gpu,
                y.device_mut()?,
                mean.device_mut()?,
                rstd.device_mut()?,
                x.device()?,
                gamma.device()?,
                beta.device()?,
                d,
                eps,
            )
        })
    }

    fn layernorm_backward(
        x: &DevMem,
        d: usize,
        gamma: &DevMem,
        mean: &DevMem,
        rstd: &DevMem,
        dy: &DevMem,
        dx: &mut DevMem,
        dgamma: &mut DevMem,
        dbeta: &mut DevMem,
    ) {
        run(|gpu| {
            layernorm::layernorm_backward(
                gpu,
                dx.device_mut()?,
                dgamma.device_mut()?,
                dbeta.device_mut()?,
                x.device()?,
                dy.device()?,
                gamma.device()?,
                mean.device()?,
                rstd.device()?,
                d,
            )
        })
    }

    fn gelu_backward(z: &DevMem, dy: &DevMem, dz: &mut DevMem) {
        run(|gpu| gelu::gelu_backward(gpu, dz.device_mut()?, z.device()?, dy.device()?))
    }

    fn dropout_forward(x: &mut DevMem, p: f32, key: u64) {
        run(|gpu| dropout::dropout_forward(gpu, x.device_mut()?, p, key))
    }

    fn dropout_backward(dy: &DevMem, p: f32, key: u64, dx: &mut DevMem) {
        run(|gpu| dropout::dropout_backward(gpu, dx.device_mut()?, dy.device()?, p, key))
    }

    fn tanh_forward(x: &mut DevMem) {
        run(|gpu| tanh_forward(gpu, x.device_mut()?))
    }

    fn tanh_backward(y: &DevMem, dy: &DevMem, dx: &mut DevMem) {
        run(|gpu| tanh_backward(gpu, dx.device_mut()?, y.device()?, dy.device()?))
    }

    fn grl_backward(dy: &DevMem, lambda: f32, dx: &mut DevMem) {
        run(|gpu| axpy(gpu, dx.device_mut()?, dy.device()?, -lambda))
    }

    fn mean_pool_forward(h: &DevMem, starts: &[usize], d: usize, out: &mut DevMem) {
        run(|gpu| {
            let starts_dev = upload_starts(gpu, starts)?;
            pooling::mean_pool_forward(gpu, out.device_mut()?, h.device()?, Packed::new(starts, starts_dev.slice()), d)
        })
    }

    fn mean_pool_backward(d_out: &DevMem, starts: &[usize], d: usize, dh: &mut DevMem) {
        run(|gpu| {
            let starts_dev = upload_starts(gpu, starts)?;
            pooling::mean_pool_backward(gpu, dh.device_mut()?, d_out.device()?, Packed::new(starts, starts_dev.slice()), d)
        })
    }

    fn l2_normalize_rows(x: &mut DevMem, d: usize) {
        run(|gpu| pooling::l2_normalize_rows(gpu, x.device_mut()?, d))
    }

    fn entity_pool_forward(h: &DevMem, d: usize, rows: &[EntityRows], heads: &mut DevMem, tails: &mut DevMem, markers: &mut DevMem, argmax: &mut [u32]) {
        run(|gpu| {
            let table = entity_pool::upload_rows(gpu, rows, h.len() / d.max(1))?;
            let mut found = upload(gpu, &vec![0u32; argmax.len()])?;
            entity_pool::entity_pool_forward(
                gpu,
                heads.device_mut()?,
                tails.device_mut()?,
                markers.device_mut()?,
                found.slice_mut(),
                h.device()?,
                table.slice(),
                d,
            )?;
            download(gpu, found.slice(), argmax)
        })
    }

    fn entity_pool_backward(d: usize, rows: &[EntityRows], argmax: &[u32], d_heads: &DevMem, d_tails: &DevMem, d_markers: &DevMem, dh: &mut DevMem) {
        run(|gpu| {
            let table = entity_pool::upload_rows(gpu, rows, dh.len() / d.max(1))?;
            let argmax = upload(gpu, argmax)?;
            entity_pool::entity_pool_backward(
                gpu,
                dh.device_mut()?,
                argmax.slice(),
                d_heads.device()?,
                d_tails.device()?,
                d_markers.device()?,
                table.slice(),
                d,
            )
        })
    }

    fn query_attention_forward(h: &DevMem, starts: &[usize], q: &DevMem, x_star: &mut DevMem, attn: &mut DevMem) {
        run(|gpu| {
            let starts_dev = upload_starts(gpu, starts)?;
            distill::query_attention_forward(gpu, x_star.device_mut()?, attn.device_mut()?, h.device()?, Packed::new(starts, starts_dev.slice()), q.device()?)
        })
    }

    fn query_attention_backward(h: &DevMem, starts: &[usize], q: &DevMem, attn: &DevMem, d_x_star: &DevMem, dq: &mut DevMem, dh: Option<&mut DevMem>) {
        run(|gpu| {
            let starts_dev = upload_starts(gpu, starts)?;
            let dh = match dh {
                Some(dh) => Some(dh.device_mut()?),
                None => None,
            };
            let seqs = Packed::new(starts, starts_dev.slice());
            distill::query_attention_backward(gpu, dq.device_mut()?, dh, h.device()?, seqs, q.device()?, attn.device()?, d_x_star.device()?)
        })
    }

    fn project_out_forward(x: &DevMem, x_star: &DevMem, d: usize, out: &mut DevMem) {
        run(|gpu| distill::project_out_forward(gpu, out.device_mut()?, x.device()?, x_star.device()?, d))
    }

    fn project_out_backward(x: &DevMem, x_star: &DevMem, d: usize, d_out: &DevMem, dx: &mut DevMem, d_x_star: &mut DevMem) {
        run(|gpu| distill::project_out_backward(gpu, dx.device_mut()?, d_x_star.device_mut()?, x.device()?, x_star.device()?, d_out.device()?, d))
    }

    fn cosine_scores_forward(a: &DevMem, b: &DevMem, d: usize, weights: &[f32], scores: &mut DevMem) {
        run(|gpu| {
            let weights = upload(gpu, weights)?;
            cosine::cosine_scores_forward(gpu, scores.device_mut()?, a.device()?, b.device()?, weights.slice(), d)
        })
    }

    fn cosine_scores_backward(a: &DevMem, b: &DevMem, d: usize, weights: &[f32], d_scores: &DevMem, da: &mut DevMem, db: Option<&mut DevMem>) {
        run(|gpu| {
            let weights = upload(gpu, weights)?;
            let db = match db {
                Some(db) => Some(db.device_mut()?),
                None => None,
            };
            cosine::cosine_scores_backward(gpu, da.device_mut()?, db, a.device()?, b.device()?, weights.slice(), d_scores.device()?, d)
        })
    }

    fn cross_entropy_forward(logits: &DevMem, classes: usize, labels: &[u32]) -> f32 {
        check_labels(logits, classes, labels);
        loss_value(|gpu, loss| {
            let labels = upload(gpu, labels)?;
            loss::cross_entropy_forward(gpu, loss.slice_mut(), logits.device()?, classes, labels.slice())
        })
    }

    fn cross_entropy_backward(logits: &DevMem, classes: usize, labels: &[u32], d_loss: f32, d_logits: &mut DevMem) {
        check_labels(logits, classes, labels);
        run(|gpu| {
            let labels = upload(gpu, labels)?;
            loss::cross_entropy_backward(gpu, d_logits.device_mut()?, logits.device()?, classes, labels.slice(), d_loss)
        })
    }

    fn matching_loss_forward(scores: &DevMem, m: usize, positives: &[u32], negatives: &[bool], gamma: f32) -> f32 {
        candidate_loss(CandidateLoss::Matching { gamma }, scores, m, positives, negatives)
    }

    fn matching_loss_backward(scores: &DevMem, m: usize, positives: &[u32], negatives: &[bool], gamma: f32, d_loss: f32, d_scores: &mut DevMem) {
        candidate_loss_gradient(CandidateLoss::Matching { gamma }, scores, m, positives, negatives, d_loss, d_scores)
    }

    fn contrastive_loss_forward(scores: &DevMem, m: usize, positives: &[u32], negatives: &[bool], temperature: f32) -> f32 {
        candidate_loss(CandidateLoss::Contrastive { temperature }, scores, m, positives, negatives)
    }

    fn contrastive_loss_backward(scores: &DevMem, m: usize, positives: &[u32], negatives: &[bool], temperature: f32, d_loss: f32, d_scores: &mut DevMem) {
        candidate_loss_gradient(CandidateLoss::Contrastive { temperature }, scores, m, positives, negatives, d_loss, d_scores)
    }

    fn adamw_step(p: &mut DevMem, g: &DevMem, m: &mut DevMem, v: &mut DevMem, step: AdamWStep) {
        run(|gpu| adamw::adamw_step(gpu, p.device_mut()?, m.device_mut()?, v.device_mut()?, g.device()?, step))
    }
}

/// The value of the loss `kind` over `scores: [n × m]` (see [`check_candidates`]).
fn candidate_loss(kind: CandidateLoss, scores: &DevMem, m: usize, positives: &[u32], negatives: &[bool]) -> f32 {
    check_candidates(scores, m, positives, negatives);
    loss_value(|gpu, loss| {
        let (positives, negatives) = (upload(gpu, positives)?, upload(gpu, negatives)?);
        loss::candidate_loss_forward(gpu, kind, loss.slice_mut(), scores.device()?, m, positives.slice(), negatives.slice())
    })
}

/// `d_scores += d_loss · ∂L/∂scores` of [`candidate_loss`].
fn candidate_loss_gradient(kind: CandidateLoss, scores: &DevMem, m: usize, positives: &[u32], negatives: &[bool], d_loss: f32, d_scores: &mut DevMem) {
    check_candidates(scores, m, positives, negatives);
    run(|gpu| {
        let (positives, negatives) = (upload(gpu, positives)?, upload(gpu, negatives)?);
        loss::candidate_loss_backward(gpu, kind, d_scores.device_mut()?, scores.device()?, m, positives.slice(), negatives.slice(), d_loss)
    })
}

/// Checks the labels the cross-entropy kernels index with, as `cpu::loss` does.
fn check_labels(logits: &DevMem, classes: usize, labels: &[u32]) {
    assert!(classes > 0 && logits.len() == labels.len() * classes, "logits are not [n × classes]");
    assert!(labels.iter().all(|&y| (y as usize) < classes), "label out of range");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::conformance::conforms;
    use crate::backend::cpu::Cpu;

    /// Whether the device opened (the emulator always does; a GPU build without a GPU skips,
    /// printing why, unless `RMX_TEST_DEVICE=cuda` asks for one).
    fn opened() -> bool {
        match Cuda::open() {
            Ok(()) => true,
            Err(e) if std::env::var("RMX_TEST_DEVICE").is_ok_and(|v| v == "cuda") => panic!("RMX_TEST_DEVICE=cuda: {e}"),
            Err(e) => {
                println!("skipped: {e}");
                false
            }
        }
    }

    #[test]
    fn every_op_conforms_to_the_cpu_backend() {
        if opened() {
            conforms::<Cuda>();
        }
    }

    #[test]
    fn memory_views_address_the_values_they_name() {
        if !opened() {
            return;
        }
        let values: Vec<f32> = (0..10).map(|v| v as f32).collect();
        let mut x = Cuda::from_host(&values);
        assert_eq!((Cuda::len(&x), Cuda::to_host(&x).unwrap()), (10, values.clone()), "round trip");
        assert_eq!(Cuda::to_host(Cuda::slice(&x, 3..7)).unwrap(), &values[3..7]);
        assert!(Cuda::to_host(Cuda::slice(&x, 4..4)).unwrap().is_empty());
        {
            let (a, b) = Cuda::split_at_mut(&mut x, 4);
            assert_eq!((Cuda::len(a), Cuda::len(b)), (4, 6));
            Cuda::fill_zero(Cuda::slice_mut(b, 1..3));
            Cuda::add(a, Cuda::slice(&Cuda::from_host(&[1.0; 10]), 0..4));
        }
        let want = [1.0, 2.0, 3.0, 4.0, 4.0, 0.0, 0.0, 7.0, 8.0, 9.0];
        assert_eq!(Cuda::to_host(&x).unwrap(), want, "only the named ranges changed");
        assert_eq!(Cuda::to_host(&Cuda::zeros(5)).unwrap(), [0.0; 5]);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn a_range_past_the_end_is_refused_as_on_the_cpu() {
        let _ = opened(); // without a device, the placeholder buffer is sliced alike
        let x = Cuda::zeros(4);
        let _ = Cuda::slice(&x, 2..5);
    }

    #[test]
    fn a_parameter_clone_keeps_its_values_when_the_other_side_is_written() {
        if !opened() {
            return;
        }
        let tensor = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], vec![2, 3]);
        let mut p = Cuda::upload(&tensor);
        let kept = p.clone();
        Cuda::add(Cuda::param_mut(&mut p), &Cuda::from_host(&[1.0; 6]));
        assert_eq!(Cuda::download(&kept, &[2, 3]).unwrap().data(), tensor.data(), "the clone is unchanged");
        assert_eq!(Cuda::download(&p, &[2, 3]).unwrap().data(), [2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
        // Unshared now: written in place, no copy.
        let before = Cuda::param(&p).addr();
        assert_eq!(Cuda::param_mut(&mut p).addr(), before);
        assert!(Cuda::download(&p, &[4, 2]).is_err(), "a shape of another size");
    }

    #[test]
    fn a_failed_op_is_a_sticky_error_until_sync() {
        if !opened() {
            return;
        }
        let mut y = Cuda::from_host(&[1.0, 2.0]);
        // More than any host or device can allocate (2⁶³ bytes: refused before any malloc, so
        // the sanitizers' allocators do not abort): the allocation fails, nothing panics.
        let failed = Cuda::zeros(1 << 61);
        Cuda::add(&mut y, &Cuda::from_host(&[1.0, 1.0])); // skipped: the thread has an error
        let e = Cuda::sync().unwrap_err().to_string();
        assert!(e.starts_with("device: device memory"), "{e}");
        assert!(Cuda::sync().is_ok(), "sync hands the error over once");
        assert_eq!(Cuda::to_host(&y).unwrap(), [1.0, 2.0], "the op after the error did nothing");
        // The failed buffer is refused by every op, and by to_host, without a launch.
        Cuda::fill_zero(Cuda::slice_mut(&mut Cuda::zeros(0), 0..0));
        Cuda::add(&mut y, Cuda::slice(&failed, 0..2));
        let e = Cuda::to_host(&y).unwrap_err().to_string();
        assert!(e.contains("allocation failed"), "{e}");
        assert!(Cuda::to_host(&failed).is_err());
        Cuda::add(&mut y, Cuda::slice(&failed, (1 << 61) - 2..1 << 61)); // its far end too
        assert!(Cuda::sync().is_err());
        // Ops run again.
        Cuda::add(&mut y, &Cuda::from_host(&[1.0, 1.0]));
        assert_eq!(Cuda::to_host(&y).unwrap(), [2.0, 3.0]);
    }

    #[test]
    fn errors_stay_with_the_thread_that_met_them() {
        if !opened() {
            return;
        }
        let failed = Cuda::zeros(1 << 61);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut y = Cuda::from_host(&[1.0; 3]);
                Cuda::add(&mut y, &Cuda::from_host(&[2.0; 3]));
                assert_eq!(Cuda::to_host(&y).unwrap(), [3.0; 3], "another thread's error does not fail this one");
            });
        });
        assert!(Cuda::sync().is_err());
        drop(failed);
    }

    #[test]
    fn passes_on_several_threads_at_once_get_their_own_results() {
        if !opened() {
            return;
        }
        std::thread::scope(|s| {
            for t in 0..4 {
                s.spawn(move || {
                    let d = 31;
                    let x: Vec<f32> = (0..8 * d).map(|i| ((i * (t + 3)) % 17) as f32 - 8.0).collect();
                    let mut want = x.clone();
                    Cpu::l2_normalize_rows(&mut want, d);
                    let mut got = Cuda::from_host(&x);
                    Cuda::l2_normalize_rows(&mut got, d);
                    let got = Cuda::to_host(&got).unwrap();
                    assert!(got.iter().zip(&want).all(|(g, w)| (g - w).abs() < 1e-6), "thread {t}");
                });
            }
        });
    }

    #[test]
    fn f32_and_bf16_are_computed_not_int8() {
        assert!(Cuda::check_precision(Precision::F32).is_ok());
        assert!(Cuda::check_precision(Precision::Bf16).is_ok());
        let e = Cuda::check_precision(Precision::Int8).unwrap_err().to_string();
        assert!(e.contains("computes in f32 or bf16") && e.contains("int8"), "{e}");
    }

    /// The prepared bf16 linear layers against the CPU's bf16 path (the same roundings: only
    /// the order of the f32 sums differs) and, where this CPU has none, against the f32 path
    /// within bf16's error; a weight written after preparing is used in f32; f32 prepares
    /// nothing.
    #[test]
    fn bf16_linears_match_the_cpu_bf16_path() {
        if !opened() {
            return;
        }
        let (rows, k, n) = (5, 384, 385);
        let mut rng = crate::testutil::Rng::new(15);
        let (x, b, res) = (rng.normals(rows * k, 1.0), rng.normals(n, 1.0), rng.normals(rows * n, 1.0));
        let weights: Vec<Tensor> = (0..2).map(|_| Tensor::from_vec(rng.normals(n * k, 0.3), vec![n, k])).collect();
        let cuda_params: Vec<DevParam> = weights.iter().map(Cuda::upload).collect();
        let state = Bf16Weights::default();
        Cuda::prepare_linears(&state, Precision::F32, rows, &|| cuda_params.clone());
        assert!(!state.is_prepared(), "f32 prepares nothing");
        Cuda::prepare_linears(&state, Precision::Bf16, rows, &|| cuda_params.clone());
        assert!(state.is_prepared());
        let cpu_bf16 = Cpu::check_precision(Precision::Bf16).is_ok();
        let cpu_state = crate::backend::cpu::PackedWeights::default();
        if cpu_bf16 {
            Cpu::prepare_linears(&cpu_state, Precision::Bf16, rows, &|| weights.clone());
        } else {
            println!("this CPU has no bf16 path: the CUDA bf16 layers are checked against f32 only");
        }
        let (x_dev, b_dev, res_dev) = (Cuda::from_host(&x), Cuda::from_host(&b), Cuda::from_host(&res));
        for slot in 0..2 {
            let (mut want, mut exact) = (vec![0.0; rows * n], vec![0.0; rows * n]);
            Cpu::linear_forward_prepared(&cpu_state, slot, &x, rows, &weights[slot], &b, &mut want, Activation::BiasResidual(&res));
            Cpu::linear_forward(&x, rows, weights[slot].data(), &b, &mut exact, Activation::BiasResidual(&res));
            let mut y = Cuda::zeros(rows * n);
            Cuda::linear_forward_prepared(&state, slot, &x_dev, rows, &cuda_params[slot], &b_dev, &mut y, Activation::BiasResidual(&res_dev));
            let got = Cuda::to_host(&y).unwrap();
            if cpu_bf16 {
                assert!(got.iter().zip(&want).all(|(g, w)| (g - w).abs() <= 1e-4 * (1.0 + w.abs())), "slot {slot}: differs from the CPU's bf16");
            }
            let worst = got.iter().zip(&exact).map(|(g, e)| (g - e).abs()).fold(0.0, f32::max);
            assert!(worst > 0.0 && worst < 0.1, "slot {slot}: max |bf16 − f32| = {worst}");
        }
        // Slot 1's weight written (copied on write: no longer what was rounded): f32.
        let mut written = cuda_params[1].clone();
        Cuda::fill_zero(Cuda::param_mut(&mut written));
        let mut y = Cuda::zeros(rows * n);
        Cuda::linear_forward_prepared(&state, 1, &x_dev, rows, &written, &b_dev, &mut y, Activation::Bias);
        let want: Vec<f32> = (0..rows * n).map(|i| b[i % n]).collect();
        assert_eq!(Cuda::to_host(&y).unwrap(), want, "a written weight is used as it is now");
    }
}
