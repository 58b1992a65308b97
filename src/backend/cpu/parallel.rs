//! Splitting work across the threads: the parallel steps of the encoder's forward pass go
//! through [`for_each_index`] / [`for_each_mut`], which run on the spinning team of
//! [`with_team`] when the caller leads one (see `team.rs`) and on the rayon pool otherwise.
//! Every op splits its work through this file: [`for_each_chunk`] for element-wise work,
//! [`for_each_row`] for rows, [`for_each_mut`] for tasks of its own, in [`CHUNK`]-sized pieces.

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

/// Elements per parallel task: small rows are batched, big matrices still split across
/// cores, and scheduling costs nothing next to the work.
pub const CHUNK: usize = 16_384;

/// Rows per parallel task for rows of `width` elements (at least one).
pub fn rows_per_task(width: usize) -> usize {
    (CHUNK / width.max(1)).max(1)
}

/// Runs `f(start, chunk)` on consecutive chunks of `len` elements of `out` (the last one may
/// be shorter), in parallel; `start` is the chunk's first index in `out`.
pub fn for_each_chunk<T: Send>(out: &mut [T], len: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let len = len.max(1);
    let mut chunks: Vec<&mut [T]> = out.chunks_mut(len).collect();
    for_each_mut(&mut chunks, |c, chunk| f(c * len, chunk));
}

/// Runs `f(row_index, row)` on every row of the row-major matrix `x` (row length `d`), in
/// parallel in blocks large enough that scheduling costs nothing next to the work.
pub fn for_each_row(x: &mut [f32], d: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if d == 0 {
        return;
    }
    for_each_chunk(x, rows_per_task(d) * d, |start, rows| {
        for (r, row) in rows.chunks_exact_mut(d).enumerate() {
            f(start / d + r, row);
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
    let per = rows_per_task(width) * width;
    let mut partials: Vec<Vec<f32>> = vec![vec![0.0f32; width]; m.len().div_ceil(per)];
    for_each_mut(&mut partials, |b, p| {
        for row in m[b * per..m.len().min((b + 1) * per)].chunks_exact(width) {
            p.iter_mut().zip(row).for_each(|(a, v)| *a += v);
        }
    });
    for p in partials {
        acc.iter_mut().zip(&p).for_each(|(a, v)| *a += v);
    }
}
