//! The fused entity max-pool and marker gather of the RE-Matching input side: from the last
//! hidden layer `H: [T × d]` of a packed batch, per instance
//! `e_h = max over H[head span]`, `e_t = max over H[tail span]` (a true max, no ReLU) and
//! `m = [H[head marker] ; H[tail marker]]` (`2d`, the input of the context projection).
use rayon::prelude::*;
use std::ops::Range;

/// Row indices into the packed `H` of one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityRows {
    pub head: Range<usize>,
    pub tail: Range<usize>,
    pub head_marker: usize,
    pub tail_marker: usize,
}

/// `heads, tails: [n × d]`, `markers: [n × 2d]`; `argmax: [n × 2 × d]` receives the row each
/// max came from (head then tail), which the backward pass routes the gradient to.
pub fn entity_pool_forward(
    h: &[f32], d: usize, rows: &[EntityRows], heads: &mut [f32], tails: &mut [f32], markers: &mut [f32], argmax: &mut [u32],
) {
    let n = rows.len();
    assert!(heads.len() == n * d && tails.len() == n * d && markers.len() == n * 2 * d && argmax.len() == n * 2 * d);
    for r in rows {
        let total = h.len() / d.max(1);
        assert!(!r.head.is_empty() && !r.tail.is_empty() && r.head.end <= total && r.tail.end <= total);
        assert!(r.head_marker < total && r.tail_marker < total);
    }
    heads
        .par_chunks_mut(d)
        .zip(tails.par_chunks_mut(d))
        .zip(markers.par_chunks_mut(2 * d))
        .zip(argmax.par_chunks_mut(2 * d))
        .zip(rows.par_iter())
        .for_each(|((((eh, et), m), arg), r)| {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_pool_and_gather_match_obvious_loops() {
        let mut rng = crate::testutil::Rng::new(11);
        let (t, d) = (12, 5);
        let h: Vec<f32> = (0..t * d).map(|_| rng.normal() - 2.0).collect(); // mostly negative: no ReLU
        let rows = vec![
            EntityRows { head: 1..4, tail: 6..7, head_marker: 0, tail_marker: 5 },
            EntityRows { head: 9..11, tail: 8..9, head_marker: 8, tail_marker: 7 },
        ];
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
}
