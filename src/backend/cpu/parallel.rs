//! Splitting work across the threads: the parallel steps of the encoder's forward pass go
//! through [`for_each_index`] / [`for_each_mut`], which run on the spinning team of
//! [`with_team`] when the caller leads one (see `team.rs`) and on the rayon pool otherwise.
use rayon::prelude::*;

pub use super::team::{for_each_index, leads_team, with_team};

/// A pointer to the items of a slice that `for_each_mut` hands out one by one.
struct Items<T>(*mut T);

// SAFETY: `for_each_mut` gives every item to exactly one call, so sharing the pointer only
// ever moves disjoint `&mut T` to other threads, which `T: Send` allows.
unsafe impl<T: Send> Sync for Items<T> {}

/// Runs `f(i, &mut items[i])` for every item, in parallel (as [`for_each_index`]).
pub fn for_each_mut<T: Send>(items: &mut [T], f: impl Fn(usize, &mut T) + Sync) {
    let base = Items(items.as_mut_ptr());
    let base = &base;
    for_each_index(items.len(), |i| {
        // SAFETY: `i < items.len()` and `for_each_index` runs each index exactly once, so
        // this is the only reference to `items[i]`; `items` stays borrowed until all return.
        let item = unsafe { &mut *base.0.add(i) };
        f(i, item)
    });
}

/// Runs `f(row_index, row)` on every row of the row-major matrix `x` (row length `d`), in
/// parallel in blocks large enough that scheduling costs nothing next to the work.
pub fn for_each_row(x: &mut [f32], d: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if d == 0 {
        return;
    }
    // ~16k elements per task: small rows are batched, big matrices still split across cores.
    let rows_per_task = (16_384 / d).max(1);
    let mut blocks: Vec<&mut [f32]> = x.chunks_mut(rows_per_task * d).collect();
    for_each_mut(&mut blocks, |block, rows| {
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
