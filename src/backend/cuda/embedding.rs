//! BERT input embeddings on the device (`kernels/embedding.cu`); the math of `cpu::embedding`.
use super::launch::{row_block, CudaError, DevSlice, DevSliceMut, Gpu, KernelArgs, LaunchConfig, Packed};

/// `out: [T × d]` = `word[ids[t]] + position[p(t)] + token_type0` with positions restarting
/// in every sequence. `ids: [T]` (in range: the model checks them), `word: [V × d]`,
/// `position: [P × d]`, `token_type0: [d]`.
#[allow(clippy::too_many_arguments)]
pub fn embeddings_forward<D: Gpu + ?Sized>(
    dev: &D,
    out: DevSliceMut<'_, f32>,
    ids: DevSlice<'_, u32>,
    seqs: Packed<'_>,
    word: DevSlice<'_, f32>,
    position: DevSlice<'_, f32>,
    token_type0: DevSlice<'_, f32>,
) -> Result<(), CudaError> {
    let d = token_type0.len();
    embeddings_forward_with(dev, out, ids, seqs, word, position, token_type0, row_block(d))
}

#[allow(clippy::too_many_arguments)]
fn embeddings_forward_with<D: Gpu + ?Sized>(
    dev: &D,
    mut out: DevSliceMut<'_, f32>,
    ids: DevSlice<'_, u32>,
    seqs: Packed<'_>,
    word: DevSlice<'_, f32>,
    position: DevSlice<'_, f32>,
    token_type0: DevSlice<'_, f32>,
    block: u32,
) -> Result<(), CudaError> {
    let d = check(ids, seqs, position, token_type0, out.len());
    assert!(word.len().is_multiple_of(d.max(1)), "word table is not [V × d]");
    if ids.is_empty() {
        return Ok(());
    }
    let args = KernelArgs::new().output(&mut out).input(ids).input(seqs.device).input(word).input(position).input(token_type0).int(seqs.sequences()).int(d);
    dev.launch("embeddings_forward", LaunchConfig::linear(ids.len(), block, 0), args)
}

/// Backward: scatter-adds `d_out: [T × d]` into `d_word: [V × d]`, `d_position: [P × d]`,
/// `d_token_type0: [d]` (`+=`). Unlike the CPU op it does not list the touched rows: the
/// caller has the ids.
#[allow(clippy::too_many_arguments)]
pub fn embeddings_backward<D: Gpu + ?Sized>(
    dev: &D,
    mut d_word: DevSliceMut<'_, f32>,
    mut d_position: DevSliceMut<'_, f32>,
    mut d_token_type0: DevSliceMut<'_, f32>,
    d_out: DevSlice<'_, f32>,
    ids: DevSlice<'_, u32>,
    seqs: Packed<'_>,
) -> Result<(), CudaError> {
    let d = check(ids, seqs, d_position.as_const(), d_token_type0.as_const(), d_out.len());
    assert!(d_word.len().is_multiple_of(d.max(1)), "d_word is not [V × d]");
    if ids.is_empty() {
        return Ok(());
    }
    let args = KernelArgs::new()
        .output(&mut d_word)
        .output(&mut d_position)
        .output(&mut d_token_type0)
        .input(d_out)
        .input(ids)
        .input(seqs.device)
        .int(seqs.sequences())
        .int(d);
    dev.launch("embeddings_backward", LaunchConfig::linear(ids.len(), row_block(d), 0), args)
}

/// `d` after checking the shapes: `[T × d]` rows, starts covering the ids, positions in the table.
fn check(ids: DevSlice<'_, u32>, seqs: Packed<'_>, position: DevSlice<'_, f32>, token_type0: DevSlice<'_, f32>, rows_len: usize) -> usize {
    let d = token_type0.len();
    assert_eq!(seqs.tokens(), ids.len(), "sequence starts do not cover the ids");
    assert_eq!(rows_len, ids.len() * d, "embedding rows are not [T × d]");
    let longest = seqs.starts.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(longest * d <= position.len(), "a sequence is longer than the position table");
    d
}

#[cfg(test)]
mod tests {
    use super::super::launch::{with_row_block, ROW_BLOCKS};
    use super::super::testing::{assert_near, bench, starts_u32, RAGGED};
    use super::*;
    use crate::backend::cpu::embedding as cpu;
    use crate::testutil::{starts_of, Rng};

    #[test]
    fn forward_and_backward_match_the_cpu() {
        let Some(on) = bench() else { return };
        let lens = [3, 1, 5];
        let starts = starts_of(&lens);
        let dev_starts = starts_u32(&starts);
        let ids = [3u32, 1, 3, 0, 6, 3, 1, 2, 5];
        let (v, pmax) = (7, 6);
        for d in RAGGED {
            let mut rng = Rng::new(d as u64);
            let (word, position, tt, g) = (rng.normals(v * d, 1.0), rng.normals(pmax * d, 1.0), rng.normals(d, 1.0), rng.normals(ids.len() * d, 1.0));
            let mut want = vec![0.0; ids.len() * d];
            cpu::embeddings_forward(&ids, &starts, &word, &position, &tt, &mut want);
            let seqs = Packed::new(&starts, on.input(&dev_starts));
            for block in ROW_BLOCKS {
                let mut got = vec![0.0; ids.len() * d];
                embeddings_forward_with(
                    on.dev(),
                    on.output(&mut got).slice(),
                    on.input(&ids),
                    seqs,
                    on.input(&word),
                    on.input(&position),
                    on.input(&tt),
                    block,
                )
                .unwrap();
                assert_eq!(got, want, "d={d} block={block}: the same three additions in the same order");
            }
            let (mut dw, mut dp, mut dt) = (vec![0.5f32; v * d], vec![0.0f32; pmax * d], vec![0.25f32; d]);
            cpu::embeddings_backward(&ids, &starts, &g, &mut dw, &mut dp, &mut dt);
            for block in ROW_BLOCKS {
                with_row_block(block, || {
                    let (mut gw, mut gp, mut gt) = (vec![0.5f32; v * d], vec![0.0f32; pmax * d], vec![0.25f32; d]);
                    embeddings_backward(
                        on.dev(),
                        on.output(&mut gw).slice(),
                        on.output(&mut gp).slice(),
                        on.output(&mut gt).slice(),
                        on.input(&g),
                        on.input(&ids),
                        seqs,
                    )
                    .unwrap();
                    assert_near("d_word", &gw, &dw, 1e-5, 1e-5);
                    assert_near("d_position", &gp, &dp, 1e-5, 1e-5);
                    assert_near("d_token_type0", &gt, &dt, 1e-5, 1e-5);
                });
            }
        }
    }
}
