//! RE-Matching's fused entity max-pool and marker gather on the device
//! (`kernels/entity_pool.cu`): `cpu::entity_pool`'s results, argmax included, bit for bit.
use super::launch::{row_block, upload, CudaError, DevSlice, DevSliceMut, DeviceBuffer, Gpu, KernelArgs, LaunchConfig};
use crate::backend::cpu::entity_pool::EntityRows;

/// The instances' rows as the kernels read them, `[n × 6]`: head start, head end, tail start,
/// tail end, head marker, tail marker; checked against `tokens` rows of `H` as the CPU op does.
pub fn upload_rows<D: Gpu + ?Sized>(dev: &D, rows: &[EntityRows], tokens: usize) -> Result<DeviceBuffer<u32>, CudaError> {
    let mut table = Vec::with_capacity(rows.len() * 6);
    for r in rows {
        assert!(!r.head.is_empty() && !r.tail.is_empty() && r.head.end <= tokens && r.tail.end <= tokens, "entity span outside the batch");
        assert!(r.head_marker < tokens && r.tail_marker < tokens, "entity marker outside the batch");
        table.extend([r.head.start, r.head.end, r.tail.start, r.tail.end, r.head_marker, r.tail_marker].map(|v| v as u32));
    }
    upload(dev, &table)
}

/// `heads, tails: [n × d]`, `markers: [n × 2d]`, `argmax: [n × 2 × d]` from `h: [T × d]` and
/// the rows of [`upload_rows`].
#[allow(clippy::too_many_arguments)]
pub fn entity_pool_forward<D: Gpu + ?Sized>(
    dev: &D,
    heads: DevSliceMut<'_, f32>,
    tails: DevSliceMut<'_, f32>,
    markers: DevSliceMut<'_, f32>,
    argmax: DevSliceMut<'_, u32>,
    h: DevSlice<'_, f32>,
    rows: DevSlice<'_, u32>,
    d: usize,
) -> Result<(), CudaError> {
    entity_pool_forward_with(dev, heads, tails, markers, argmax, h, rows, d, row_block(d))
}

#[allow(clippy::too_many_arguments)]
fn entity_pool_forward_with<D: Gpu + ?Sized>(
    dev: &D,
    mut heads: DevSliceMut<'_, f32>,
    mut tails: DevSliceMut<'_, f32>,
    mut markers: DevSliceMut<'_, f32>,
    mut argmax: DevSliceMut<'_, u32>,
    h: DevSlice<'_, f32>,
    rows: DevSlice<'_, u32>,
    d: usize,
    block: u32,
) -> Result<(), CudaError> {
    let n = rows.len() / 6;
    assert!(
        rows.len() == n * 6 && heads.len() == n * d && tails.len() == n * d && markers.len() == 2 * n * d && argmax.len() == 2 * n * d,
        "entity pool: wrong lengths"
    );
    assert!(d > 0 && h.len().is_multiple_of(d), "entity pool: h is not [T × d]");
    if n == 0 {
        return Ok(());
    }
    let args = KernelArgs::new().output(&mut heads).output(&mut tails).output(&mut markers).output(&mut argmax).input(h).input(rows).int(d);
    dev.launch("entity_pool_forward", LaunchConfig::linear(n, block, 0), args)
}

/// Backward, accumulating into `dh: [T × d]` through the forward's `argmax` and the markers.
#[allow(clippy::too_many_arguments)]
pub fn entity_pool_backward<D: Gpu + ?Sized>(
    dev: &D,
    mut dh: DevSliceMut<'_, f32>,
    argmax: DevSlice<'_, u32>,
    d_heads: DevSlice<'_, f32>,
    d_tails: DevSlice<'_, f32>,
    d_markers: DevSlice<'_, f32>,
    rows: DevSlice<'_, u32>,
    d: usize,
) -> Result<(), CudaError> {
    let n = rows.len() / 6;
    assert!(
        argmax.len() == 2 * n * d && d_heads.len() == n * d && d_tails.len() == n * d && d_markers.len() == 2 * n * d,
        "entity pool backward: wrong lengths"
    );
    assert!(d > 0 && dh.len().is_multiple_of(d), "entity pool backward: dh is not [T × d]");
    if n == 0 {
        return Ok(());
    }
    let block = row_block(d);
    let args = KernelArgs::new().output(&mut dh).input(argmax).input(d_heads).input(d_tails).input(d_markers).input(rows).int(n).int(d);
    dev.launch("entity_pool_backward", LaunchConfig::linear(d.div_ceil(block as usize), block, 0), args)
}

#[cfg(test)]
mod tests {
    use super::super::launch::{with_row_block, ROW_BLOCKS};
    use super::super::testing::bench;
    use super::*;
    use crate::backend::cpu::entity_pool as cpu;
    use crate::testutil::*;

    /// The CPU op's finite-difference fixture: overlapping spans, a marker inside another
    /// instance's span, a one-row span.
    fn instances() -> Vec<EntityRows> {
        vec![
            EntityRows { head: 1..4, tail: 6..7, head_marker: 0, tail_marker: 5 },
            EntityRows { head: 9..13, tail: 2..9, head_marker: 8, tail_marker: 3 },
            EntityRows { head: 13..14, tail: 0..14, head_marker: 12, tail_marker: 12 },
        ]
    }

    #[test]
    fn forward_and_backward_equal_the_cpu() {
        let Some(on) = bench() else { return };
        let (t, rows) = (14, instances());
        let n = rows.len();
        for d in [1, 7, 31, 385] {
            let mut rng = Rng::new(d as u64);
            let mut h = rng.normals(t * d, 1.0);
            h[3 * d] = h[2 * d]; // a tie: the first row wins
            let (mut eh, mut et, mut m, mut arg) = (vec![0.0; n * d], vec![0.0; n * d], vec![0.0; 2 * n * d], vec![0; 2 * n * d]);
            cpu::entity_pool_forward(&h, d, &rows, &mut eh, &mut et, &mut m, &mut arg);
            let table = upload_rows(on.dev(), &rows, t).unwrap();
            for block in ROW_BLOCKS {
                let (mut geh, mut get, mut gm, mut garg) = (vec![0.0; n * d], vec![0.0; n * d], vec![0.0; 2 * n * d], vec![0; 2 * n * d]);
                entity_pool_forward_with(
                    on.dev(),
                    on.output(&mut geh).slice(),
                    on.output(&mut get).slice(),
                    on.output(&mut gm).slice(),
                    on.output(&mut garg).slice(),
                    on.input(&h),
                    table.slice(),
                    d,
                    block,
                )
                .unwrap();
                assert_eq!((&geh, &get, &gm, &garg), (&eh, &et, &m, &arg), "d={d} block={block}");
            }
            let r = rng.normals(4 * n * d, 1.0);
            let (rh, rest) = r.split_at(n * d);
            let (rt, rm) = rest.split_at(n * d);
            let mut want = vec![0.5f32; t * d];
            cpu::entity_pool_backward(d, &rows, &arg, rh, rt, rm, &mut want);
            for block in ROW_BLOCKS {
                with_row_block(block, || {
                    let mut got = vec![0.5f32; t * d];
                    entity_pool_backward(on.dev(), on.output(&mut got).slice(), on.input(&arg), on.input(rh), on.input(rt), on.input(rm), table.slice(), d)
                        .unwrap();
                    assert_eq!(got, want, "backward d={d}");
                });
            }
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        let Some(on) = bench() else { return };
        // Distinct values 1e-3 apart (no ties; a ±1e-6 step never moves an argmax).
        let (t, d, rows) = (14, 7, instances());
        let n = rows.len();
        let mut rng = Rng::new(21);
        let mut grid: Vec<f32> = (0..t * d).map(|i| i as f32 * 0.01 - 0.5).collect();
        for i in (1..grid.len()).rev() {
            grid.swap(i, rng.below(i + 1));
        }
        let h: Vec<f32> = grid.iter().map(|v| v + rng.uniform() * 1e-3).collect();
        let r = rng.normals(n * 4 * d, 1.0);
        let forward64 = |h: &[f64]| {
            let max = |span: &std::ops::Range<usize>, c: usize| span.clone().map(|t| h[t * d + c]).fold(f64::NEG_INFINITY, f64::max);
            let mut out = Vec::new();
            out.extend(rows.iter().flat_map(|r| (0..d).map(move |c| max(&r.head, c))));
            out.extend(rows.iter().flat_map(|r| (0..d).map(move |c| max(&r.tail, c))));
            for r in &rows {
                out.extend_from_slice(&h[r.head_marker * d..(r.head_marker + 1) * d]);
                out.extend_from_slice(&h[r.tail_marker * d..(r.tail_marker + 1) * d]);
            }
            out
        };
        let want = numeric_grad(&to_f64(&h), FD_STEP, |h| dot(&r, &forward64(h)));
        let table = upload_rows(on.dev(), &rows, t).unwrap();
        let (mut eh, mut et, mut m, mut arg) = (vec![0.0; n * d], vec![0.0; n * d], vec![0.0; 2 * n * d], vec![0; 2 * n * d]);
        entity_pool_forward(
            on.dev(),
            on.output(&mut eh).slice(),
            on.output(&mut et).slice(),
            on.output(&mut m).slice(),
            on.output(&mut arg).slice(),
            on.input(&h),
            table.slice(),
            d,
        )
        .unwrap();
        let (rh, rest) = r.split_at(n * d);
        let (rt, rm) = rest.split_at(n * d);
        let mut dh = vec![0.0f32; t * d];
        entity_pool_backward(on.dev(), on.output(&mut dh).slice(), on.input(&arg), on.input(rh), on.input(rt), on.input(rm), table.slice(), d).unwrap();
        assert_grad("dh", &dh, &want);
    }
}
