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
