//! Packed multi-head attention on the device, `ctx_h = softmax(Q_h K_hᵀ / √dh) V_h` per
//! sequence and head, with no padding: the math of `cpu::attention`.
//!
//! The products are cuBLAS strided-batched GEMMs, one call per sequence and product with the
//! heads as the batch (head `h` of a `[T × d]` matrix starts `h·dh` columns in: stride `dh`,
//! leading dimension `d`); `kernels/attention.cu` runs the softmax of every sequence and head
//! in one launch. Row-major `[r × c]` views are column-major `c × r` ones, so a row-major
//! `X = A·Bᵀ` is issued as the column-major `Xᵀ = B·Aᵀ` (see [`super::blas`]).
//!
//! Training: [`attention_backward`] recomputes the probabilities, as the CPU op does.
use super::blas::{Gemm, Op};
use super::launch::{alloc_f32, row_block, upload, CudaError, DevSlice, DevSliceMut, DeviceBuffer, Gpu, KernelArgs, LaunchConfig, Packed};

/// Where each sequence's `[heads × len × len]` block of probabilities starts.
fn offsets(seqs: &Packed<'_>, heads: usize) -> Vec<u64> {
    let mut at = 0u64;
    seqs.starts
        .windows(2)
        .map(|w| {
            let here = at;
            at += (heads * (w[1] - w[0]) * (w[1] - w[0])) as u64;
            here
        })
        .collect()
}

/// One strided-batched GEMM over the heads of one sequence: `C_h = α·op(A_h)·op(B_h) + β·C_h`.
#[allow(clippy::too_many_arguments)]
fn heads_gemm<D: Gpu + ?Sized>(
    dev: &D,
    (transa, a, lda, stride_a): (Op, DevSlice<'_, f32>, usize, usize),
    (transb, b, ldb, stride_b): (Op, DevSlice<'_, f32>, usize, usize),
    (c, ldc, stride_c): (DevSliceMut<'_, f32>, usize, usize),
    (m, n, k): (usize, usize, usize),
    heads: usize,
    beta: f32,
) -> Result<(), CudaError> {
    dev.sgemm(Gemm { transa, transb, m, n, k, alpha: 1.0, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc, stride_c, batch: heads })
}

/// Scratch for the probabilities of every sequence and head, and its offsets on the device.
struct Probabilities {
    p: DeviceBuffer<f32>,
    host_offsets: Vec<u64>,
    offsets: DeviceBuffer<u32>,
}

fn alloc_probabilities<D: Gpu + ?Sized>(dev: &D, seqs: &Packed<'_>, heads: usize) -> Result<Probabilities, CudaError> {
    let host_offsets = offsets(seqs, heads);
    let total = host_offsets.last().copied().unwrap_or(0) as usize + heads * seqs.starts.windows(2).last().map_or(0, |w| (w[1] - w[0]).pow(2));
    // u64 offsets travel as u32 pairs (little-endian), as the kernel reads them.
    let pairs: Vec<u32> = host_offsets.iter().flat_map(|&o| [o as u32, (o >> 32) as u32]).collect();
    Ok(Probabilities { p: alloc_f32(dev, total)?, host_offsets, offsets: upload(dev, &pairs)? })
}

/// `S_h = Q_h K_hᵀ` (or any `X_h Y_hᵀ`) of every sequence into `p`'s blocks.
#[allow(clippy::too_many_arguments)]
fn scores_into<D: Gpu + ?Sized>(
    dev: &D,
    p: &mut DeviceBuffer<f32>,
    offsets: &[u64],
    x: DevSlice<'_, f32>,
    y: DevSlice<'_, f32>,
    seqs: &Packed<'_>,
    d: usize,
    heads: usize,
) -> Result<(), CudaError> {
    let dh = d / heads;
    for (w, &off) in seqs.starts.windows(2).zip(offsets) {
        let (start, len) = (w[0], w[1] - w[0]);
        if len == 0 {
            continue;
        }
        // Row-major S = X Yᵀ  ⇔  column-major Sᵀ = Y·Xᵀ: A = Y (stored dh × len, op T), B = X (op N).
        let c = p.slice_mut().offset(off as usize);
        heads_gemm(dev, (Op::T, y.offset(start * d), d, dh), (Op::N, x.offset(start * d), d, dh), (c, len, len * len), (len, len, dh), heads, 0.0)?;
    }
    Ok(())
}

/// `P_h = softmax(Q_h K_hᵀ / √dh)` of every sequence and head.
#[allow(clippy::too_many_arguments)]
fn attention_probabilities<D: Gpu + ?Sized>(
    dev: &D,
    q: DevSlice<'_, f32>,
    k: DevSlice<'_, f32>,
    seqs: &Packed<'_>,
    d: usize,
    heads: usize,
) -> Result<Probabilities, CudaError> {
    let mut pr = alloc_probabilities(dev, seqs, heads)?;
    scores_into(dev, &mut pr.p, &pr.host_offsets, q, k, seqs, d, heads)?;
    let scale = 1.0 / ((d / heads) as f32).sqrt();
    let args = KernelArgs::new().output(&mut pr.p.slice_mut()).input(seqs.device).input(pr.offsets.slice()).int(seqs.sequences()).f32(scale);
    softmax_launch(dev, "attention_softmax_forward", args, seqs, heads)?;
    Ok(pr)
}

fn softmax_launch<D: Gpu + ?Sized>(dev: &D, kernel: &'static str, args: KernelArgs, seqs: &Packed<'_>, heads: usize) -> Result<(), CudaError> {
    let longest = seqs.starts.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    let config = LaunchConfig { grid: [seqs.tokens() as u32, heads as u32, 1], block: [row_block(longest), 1, 1], shared_bytes: 0 };
    dev.launch(kernel, config, args)
}

fn check(q: DevSlice<'_, f32>, seqs: &Packed<'_>, heads: usize) -> usize {
    let total = seqs.tokens();
    assert!(heads > 0 && total > 0 && q.len().is_multiple_of(total), "attention: q is not [T × d]");
    let d = q.len() / total;
    assert!(d.is_multiple_of(heads), "attention: d = {d} is not a multiple of {heads} heads");
    d
}

/// `ctx: [T × d]` from `q, k, v: [T × d]` (head `h` owns columns `h·dh..(h+1)·dh`).
#[allow(clippy::too_many_arguments)]
pub fn attention_forward<D: Gpu + ?Sized>(
    dev: &D,
    mut ctx: DevSliceMut<'_, f32>,
    q: DevSlice<'_, f32>,
    k: DevSlice<'_, f32>,
    v: DevSlice<'_, f32>,
    seqs: Packed<'_>,
    heads: usize,
) -> Result<(), CudaError> {
    if seqs.tokens() == 0 {
        return Ok(());
    }
    let d = check(q, &seqs, heads);
    assert!(k.len() == q.len() && v.len() == q.len() && ctx.len() == q.len(), "attention: q, k, v, ctx differ in length");
    let dh = d / heads;
    let pr = attention_probabilities(dev, q, k, &seqs, d, heads)?;
    for (w, &off) in seqs.starts.windows(2).zip(&pr.host_offsets) {
        let (start, len) = (w[0], w[1] - w[0]);
        if len == 0 {
            continue;
        }
        // Row-major ctx_h = P V_h  ⇔  column-major ctx_hᵀ = V_hᵀ·Pᵀ: both as stored (op N).
        let p = pr.p.slice().offset(off as usize);
        heads_gemm(
            dev,
            (Op::N, v.offset(start * d), d, dh),
            (Op::N, p, len, len * len),
            (ctx.reborrow().offset(start * d), d, dh),
            (dh, len, len),
            heads,
            0.0,
        )?;
    }
    Ok(())
}

/// Backward, accumulating (`+=`) into `dq, dk, dv: [T × d]` from `d_ctx: [T × d]`. Per
/// sequence and head, `P` recomputed: `dV += Pᵀ dO`, `dP = dO Vᵀ`,
/// `dS = s·P ⊙ (dP − rowsum(dP ⊙ P))`, `dQ += dS K`, `dK += dSᵀ Q`.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward<D: Gpu + ?Sized>(
    dev: &D,
    mut dq: DevSliceMut<'_, f32>,
    mut dk: DevSliceMut<'_, f32>,
    mut dv: DevSliceMut<'_, f32>,
    q: DevSlice<'_, f32>,
    k: DevSlice<'_, f32>,
    v: DevSlice<'_, f32>,
    d_ctx: DevSlice<'_, f32>,
    seqs: Packed<'_>,
    heads: usize,
) -> Result<(), CudaError> {
    if seqs.tokens() == 0 {
        return Ok(());
    }
    let d = check(q, &seqs, heads);
    assert!([k.len(), v.len(), d_ctx.len(), dq.len(), dk.len(), dv.len()].iter().all(|&l| l == q.len()), "attention backward: lengths differ");
    let dh = d / heads;
    let scale = 1.0 / (dh as f32).sqrt();
    let pr = attention_probabilities(dev, q, k, &seqs, d, heads)?;
    let mut dp = alloc_f32(dev, pr.p.len())?;
    // dP = dO Vᵀ: the same product as S = Q Kᵀ.
    scores_into(dev, &mut dp, &pr.host_offsets, d_ctx, v, &seqs, d, heads)?;
    let args = KernelArgs::new().output(&mut dp.slice_mut()).input(pr.p.slice()).input(seqs.device).input(pr.offsets.slice()).int(seqs.sequences()).f32(scale);
    softmax_launch(dev, "attention_softmax_backward", args, &seqs, heads)?;
    for (w, &off) in seqs.starts.windows(2).zip(&pr.host_offsets) {
        let (start, len) = (w[0], w[1] - w[0]);
        if len == 0 {
            continue;
        }
        let rows = start * d;
        let (p, ds) = (pr.p.slice().offset(off as usize), dp.slice().offset(off as usize));
        let shape = (dh, len, len);
        // dV_h += Pᵀ dO_h  ⇔  dV_hᵀ += dO_hᵀ·P: A = dO (op N), B = P's column-major view Pᵀ (op T).
        heads_gemm(dev, (Op::N, d_ctx.offset(rows), d, dh), (Op::T, p, len, len * len), (dv.reborrow().offset(rows), d, dh), shape, heads, 1.0)?;
        // dQ_h += dS K_h  ⇔  dQ_hᵀ += K_hᵀ·dSᵀ: both as stored.
        heads_gemm(dev, (Op::N, k.offset(rows), d, dh), (Op::N, ds, len, len * len), (dq.reborrow().offset(rows), d, dh), shape, heads, 1.0)?;
        // dK_h += dSᵀ Q_h  ⇔  dK_hᵀ += Q_hᵀ·dS: A = Q (op N), B = dS's view dSᵀ (op T).
        heads_gemm(dev, (Op::N, q.offset(rows), d, dh), (Op::T, ds, len, len * len), (dk.reborrow().offset(rows), d, dh), shape, heads, 1.0)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::launch::{with_row_block, ROW_BLOCKS};
    use super::super::testing::{assert_near, bench, starts_u32};
    use super::*;
    use crate::backend::cpu::attention as cpu;
    use crate::testutil::{starts_of, Rng};

    #[test]
    fn forward_and_backward_match_the_cpu() {
        let Some(on) = bench() else { return };
        // Ragged sequences (one of length 1, one past a warp); 1 and 3 heads; odd head widths.
        for (lens, heads, dh) in [(vec![1usize], 1usize, 1usize), (vec![7, 1, 33], 1, 5), (vec![2, 9], 2, 16)] {
            let starts = starts_of(&lens);
            let dev_starts = starts_u32(&starts);
            let seqs = Packed::new(&starts, on.input(&dev_starts));
            let total = *starts.last().unwrap();
            let d = heads * dh;
            let mut rng = Rng::new((total * 10 + d) as u64);
            let (q, k, v, g) = (rng.normals(total * d, 1.0), rng.normals(total * d, 1.0), rng.normals(total * d, 1.0), rng.normals(total * d, 1.0));
            let mut want = vec![0.0; total * d];
            cpu::attention_forward(&q, &k, &v, &starts, heads, &mut want);
            let (mut wq, mut wk, mut wv) = (vec![0.5f32; total * d], vec![0.0f32; total * d], vec![0.0f32; total * d]);
            cpu::attention_backward(&q, &k, &v, &starts, heads, &g, &mut wq, &mut wk, &mut wv);
            for block in ROW_BLOCKS {
                with_row_block(block, || {
                    let mut got = vec![f32::NAN; total * d];
                    attention_forward(on.dev(), on.output(&mut got).slice(), on.input(&q), on.input(&k), on.input(&v), seqs, heads).unwrap();
                    let at = format!("lens={lens:?} heads={heads} dh={dh} block={block}");
                    assert_near(&format!("ctx {at}"), &got, &want, 1e-5, 1e-5);
                    let (mut gq, mut gk, mut gv) = (vec![0.5f32; total * d], vec![0.0f32; total * d], vec![0.0f32; total * d]);
                    attention_backward(
                        on.dev(),
                        on.output(&mut gq).slice(),
                        on.output(&mut gk).slice(),
                        on.output(&mut gv).slice(),
                        on.input(&q),
                        on.input(&k),
                        on.input(&v),
                        on.input(&g),
                        seqs,
                        heads,
                    )
                    .unwrap();
                    assert_near(&format!("dq {at}"), &gq, &wq, 1e-4, 1e-5);
                    assert_near(&format!("dk {at}"), &gk, &wk, 1e-4, 1e-5);
                    assert_near(&format!("dv {at}"), &gv, &wv, 1e-4, 1e-5);
                });
            }
        }
    }
}
