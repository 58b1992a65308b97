//! The fused entity max-pool and marker gather of the RE-Matching input side: from the last
//! hidden layer `H: [T × d]` of a packed batch, per instance
//! `e_h = max over H[head span]`, `e_t = max over H[tail span]` (a true max, no ReLU) and
//! `m = [H[head marker] ; H[tail marker]]` (`2d`, the input of the context projection).
use super::parallel::for_each_mut;
use std::ops::Range;

pub use crate::backend::EntityRows;

/// `heads, tails: [n × d]`, `markers: [n × 2d]`; `argmax: [n × 2 × d]` receives the row each
/// max came from (head then tail), which the backward pass routes the gradient to.
pub fn entity_pool_forward(h: &[f32], d: usize, rows: &[EntityRows], heads: &mut [f32], tails: &mut [f32], markers: &mut [f32], argmax: &mut [u32]) {
    let n = rows.len();
    assert!(heads.len() == n * d && tails.len() == n * d && markers.len() == n * 2 * d && argmax.len() == n * 2 * d);
    for r in rows {
        let total = h.len() / d.max(1);
        assert!(!r.head.is_empty() && !r.tail.is_empty() && r.head.end <= total && r.tail.end <= total);
        assert!(r.head_marker < total && r.tail_marker < total);
    }
    let mut tasks: Vec<_> = heads.chunks_mut(d).zip(tails.chunks_mut(d)).zip(markers.chunks_mut(2 * d)).zip(argmax.chunks_mut(2 * d)).collect();
    for_each_mut(&mut tasks, |i, (((eh, et), m), arg)| {
        let r = &rows[i];
        let (arg_h, arg_t) = arg.split_at_mut(d);
        max_rows(h, d, r.head.clone(), eh, arg_h);
        max_rows(h, d, r.tail.clone(), et, arg_t);
        m[..d].copy_from_slice(&h[r.head_marker * d..(r.head_marker + 1) * d]);
        m[d..].copy_from_slice(&h[r.tail_marker * d..(r.tail_marker + 1) * d]);
    });
}

/// Column-wise max of rows `span` of `h`, and the row of each max (first on ties).
fn max_rows(h: &[f32], d: usize, span: Range<usize>, out: &mut [f32], arg: &mut [u32]) {
    out.copy_from_slice(&h[span.start * d..(span.start + 1) * d]);
    arg.fill(span.start as u32);
    for t in span.start + 1..span.end {
        for ((o, a), &v) in out.iter_mut().zip(arg.iter_mut()).zip(&h[t * d..(t + 1) * d]) {
            if v > *o {
                *o = v;
                *a = t as u32;
            }
        }
    }
}

/// Backward of [`entity_pool_forward`], accumulating into `dh: [T × d]` (`+=`): each column
/// of `d_heads, d_tails: [n × d]` goes to the row its max came from (`argmax: [n × 2 × d]`,
/// head then tail, as the forward wrote it), and `d_markers: [n × 2d]` to the two marker rows.
/// Serial: instances may share rows (a marker may also be an argmax), so the adds would race;
/// the work is `4·n·d` additions.
pub fn entity_pool_backward(d: usize, rows: &[EntityRows], argmax: &[u32], d_heads: &[f32], d_tails: &[f32], d_markers: &[f32], dh: &mut [f32]) {
    let n = rows.len();
    assert!(d_heads.len() == n * d && d_tails.len() == n * d && d_markers.len() == n * 2 * d && argmax.len() == n * 2 * d);
    let total = dh.len() / d.max(1);
    for (i, r) in rows.iter().enumerate() {
        assert!(r.head_marker < total && r.tail_marker < total);
        let arg = &argmax[i * 2 * d..(i + 1) * 2 * d];
        for c in 0..d {
            let (th, tt) = (arg[c] as usize, arg[d + c] as usize);
            assert!(r.head.contains(&th) && r.tail.contains(&tt), "argmax outside its span");
            dh[th * d + c] += d_heads[i * d + c];
            dh[tt * d + c] += d_tails[i * d + c];
        }
        let m = &d_markers[i * 2 * d..(i + 1) * 2 * d];
        dh[r.head_marker * d..(r.head_marker + 1) * d].iter_mut().zip(&m[..d]).for_each(|(a, b)| *a += b);
        dh[r.tail_marker * d..(r.tail_marker + 1) * d].iter_mut().zip(&m[d..]).for_each(|(a, b)| *a += b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_pool_and_gather_match_obvious_loops() {
        let mut rng = crate::testutil::Rng::new(11);
        let (t, d) = (12, 5);
        let h: Vec<f32> = (0..t * d).map(|_| rng.normal() - 2.0).collect(); // mostly negative: no ReLU
        let rows =
            vec![EntityRows { head: 1..4, tail: 6..7, head_marker: 0, tail_marker: 5 }, EntityRows { head: 9..11, tail: 8..9, head_marker: 8, tail_marker: 7 }];
        let n = rows.len();
        let (mut eh, mut et, mut m, mut arg) = (vec![0.0; n * d], vec![0.0; n * d], vec![0.0; n * 2 * d], vec![0; n * 2 * d]);
        entity_pool_forward(&h, d, &rows, &mut eh, &mut et, &mut m, &mut arg);
        for (i, r) in rows.iter().enumerate() {
            for c in 0..d {
                let want_h = r.head.clone().map(|t| h[t * d + c]).fold(f32::NEG_INFINITY, f32::max);
                let want_t = r.tail.clone().map(|t| h[t * d + c]).fold(f32::NEG_INFINITY, f32::max);
                assert_eq!(eh[i * d + c], want_h);
                assert_eq!(et[i * d + c], want_t);
                assert_eq!(h[arg[i * 2 * d + c] as usize * d + c], want_h);
                assert_eq!(h[arg[i * 2 * d + d + c] as usize * d + c], want_t);
                assert_eq!(m[i * 2 * d + c], h[r.head_marker * d + c]);
                assert_eq!(m[i * 2 * d + d + c], h[r.tail_marker * d + c]);
            }
        }
        assert!(eh.iter().any(|&v| v < 0.0), "a true max keeps negative values");
    }

    /// The forward in f64: `[heads ; tails ; markers]` flattened.
    fn reference64(h: &[f64], d: usize, rows: &[EntityRows]) -> Vec<f64> {
        let max = |span: &Range<usize>, c: usize| span.clone().map(|t| h[t * d + c]).fold(f64::NEG_INFINITY, f64::max);
        let mut out = Vec::new();
        out.extend(rows.iter().flat_map(|r| (0..d).map(move |c| max(&r.head, c))));
        out.extend(rows.iter().flat_map(|r| (0..d).map(move |c| max(&r.tail, c))));
        for r in rows {
            out.extend_from_slice(&h[r.head_marker * d..(r.head_marker + 1) * d]);
            out.extend_from_slice(&h[r.tail_marker * d..(r.tail_marker + 1) * d]);
        }
        out
    }

    #[test]
    fn backward_matches_finite_differences() {
        use crate::testutil::*;
        let (t, d) = (14, 7);
        // Distinct values at least 1e-3 apart (a shuffled grid plus small noise): no ties, so
        // each max has one arg-max and a ±1e-6 step never changes it.
        let mut rng = Rng::new(21);
        let mut grid: Vec<f32> = (0..t * d).map(|i| i as f32 * 0.01 - 0.5).collect();
        for i in (1..grid.len()).rev() {
            grid.swap(i, rng.below(i + 1));
        }
        let h: Vec<f32> = grid.iter().map(|v| v + rng.uniform() * 1e-3).collect();
        // Overlapping spans, a marker inside another instance's span, a one-row span.
        let rows = vec![
            EntityRows { head: 1..4, tail: 6..7, head_marker: 0, tail_marker: 5 },
            EntityRows { head: 9..13, tail: 2..9, head_marker: 8, tail_marker: 3 },
            EntityRows { head: 13..14, tail: 0..14, head_marker: 12, tail_marker: 12 },
        ];
        let n = rows.len();
        let r = rng.normals(n * 4 * d, 1.0);
        let want = numeric_grad(&to_f64(&h), FD_STEP, |h| dot(&r, &reference64(h, d, &rows)));

        let (mut eh, mut et, mut m, mut arg) = (vec![0.0; n * d], vec![0.0; n * d], vec![0.0; n * 2 * d], vec![0; n * 2 * d]);
        entity_pool_forward(&h, d, &rows, &mut eh, &mut et, &mut m, &mut arg);
        let (rh, rest) = r.split_at(n * d);
        let (rt, rm) = rest.split_at(n * d);
        let mut dh = vec![0.0f32; t * d];
        entity_pool_backward(d, &rows, &arg, rh, rt, rm, &mut dh);
        assert_grad("dh", &dh, &want);
    }
}
