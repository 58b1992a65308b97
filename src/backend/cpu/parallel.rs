//! Splitting row-wise work across the thread pool.
use rayon::prelude::*;

/// Runs `f(row_index, row)` on every row of the row-major matrix `x` (row length `d`), in
/// parallel in blocks large enough that scheduling costs nothing next to the work.
pub fn for_each_row(x: &mut [f32], d: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if d == 0 {
        return;
    }
    // ~16k elements per task: small rows are batched, big matrices still split across cores.
    let rows_per_task = (16_384 / d).max(1);
    x.par_chunks_mut(rows_per_task * d).enumerate().for_each(|(block, rows)| {
        for (r, row) in rows.chunks_exact_mut(d).enumerate() {
            f(block * rows_per_task + r, row);
        }
    });
}

/// `acc[c] += Σ_r m[r·width + c]`: column sums of the row-major `m` (row length `width`),
/// over blocks of rows in parallel. The partial sums are added in block order, so the result
/// does not depend on the thread count.
pub fn column_sums(m: &[f32], width: usize, acc: &mut [f32]) {
    assert_eq!(acc.len(), width);
    if width == 0 {
        return;
    }
    assert_eq!(m.len() % width, 0, "matrix is not a whole number of rows");
    let rows_per_task = (16_384 / width).max(1);
    let partials: Vec<Vec<f32>> = m
        .par_chunks(rows_per_task * width)
        .map(|block| {
            let mut p = vec![0.0f32; width];
            for row in block.chunks_exact(width) {
                p.iter_mut().zip(row).for_each(|(a, v)| *a += v);
            }
            p
        })
        .collect();
    for p in partials {
        acc.iter_mut().zip(&p).for_each(|(a, v)| *a += v);
    }
}
