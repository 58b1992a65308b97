//! Pooling of token rows into one vector per sequence.
use super::parallel::{for_each_chunk, for_each_mut};

/// Mean over each packed sequence's rows: `h: [T × d]` → `out: [n_seqs × d]`.
pub fn mean_pool_forward(h: &[f32], starts: &[usize], d: usize, out: &mut [f32]) {
    assert_eq!(out.len(), (starts.len() - 1) * d);
    for_each_chunk(out, d, |start, o| {
        let seq = &starts[start / d.max(1)..];
        o.fill(0.0);
        for t in seq[0]..seq[1] {
            o.iter_mut().zip(&h[t * d..(t + 1) * d]).for_each(|(a, b)| *a += b);
        }
        let n = (seq[1] - seq[0]).max(1) as f32;
        o.iter_mut().for_each(|a| *a /= n);
    });
}

/// Scales a vector to unit L2 norm (a zero vector stays zero).
pub fn l2_normalize(x: &mut [f32]) {
    let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        x.iter_mut().for_each(|v| *v /= norm);
    }
}

/// Backward of [`mean_pool_forward`]: `dh[t] += d_out[s] / len(s)` for every row `t` of
/// sequence `s`. `d_out: [n_seqs × d]`, `dh: [T × d]`.
pub fn mean_pool_backward(d_out: &[f32], starts: &[usize], d: usize, dh: &mut [f32]) {
    assert_eq!(d_out.len(), (starts.len() - 1) * d);
    assert_eq!(dh.len(), *starts.last().unwrap_or(&0) * d);
    let mut blocks = Vec::with_capacity(starts.len() - 1);
    let mut rest: &mut [f32] = dh;
    for seq in starts.windows(2) {
        let (block, tail) = rest.split_at_mut((seq[1] - seq[0]) * d);
        blocks.push(block);
        rest = tail;
    }
    for_each_mut(&mut blocks, |s, block| {
        let g = &d_out[s * d..(s + 1) * d];
        let n = (block.len() / d.max(1)).max(1) as f32;
        for row in block.chunks_exact_mut(d.max(1)) {
            row.iter_mut().zip(g).for_each(|(a, b)| *a += b / n);
        }
    });
}

/// Backward of [`l2_normalize`] from its input `x`: with `y = x/‖x‖`,
/// `dx += (dy − y·(y·dy)) / ‖x‖`. A zero `x` (whose output is held at zero) gets no gradient.
pub fn l2_normalize_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(dy.len() == x.len() && dx.len() == x.len());
    let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        let inv = 1.0 / norm;
        let y_dy: f32 = x.iter().zip(dy).map(|(a, b)| a * inv * b).sum();
        for ((g, &v), &d) in dx.iter_mut().zip(x).zip(dy) {
            *g += (d - v * inv * y_dy) * inv;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn mean_pool_of_packed_sequences() {
        let h = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 10.0, 20.0];
        let mut out = [0.0; 4];
        mean_pool_forward(&h, &[0, 3, 4], 2, &mut out);
        assert_eq!(out, [3.0, 4.0, 10.0, 20.0]);
        let mut v = [3.0, 4.0];
        l2_normalize(&mut v);
        assert_eq!(v, [0.6, 0.8]);
    }

    fn mean_pool64(h: &[f64], starts: &[usize], d: usize) -> Vec<f64> {
        let mut out = Vec::new();
        for seq in starts.windows(2) {
            let n = (seq[1] - seq[0]) as f64;
            out.extend((0..d).map(|c| (seq[0]..seq[1]).map(|t| h[t * d + c]).sum::<f64>() / n));
        }
        out
    }

    #[test]
    fn mean_pool_backward_matches_finite_differences() {
        for (lens, d) in [(vec![1], 1), (vec![3, 1, 6], 5), (vec![2, 9], 17)] {
            let starts = starts_of(&lens);
            let total = *starts.last().unwrap();
            let mut rng = Rng::new(d as u64);
            let (h, r) = (rng.normals(total * d, 1.0), rng.normals(lens.len() * d, 1.0));
            let want = numeric_grad(&to_f64(&h), FD_STEP, |h| dot(&r, &mean_pool64(h, &starts, d)));
            let mut dh = vec![0.0f32; total * d];
            mean_pool_backward(&r, &starts, d, &mut dh);
            assert_grad("dh", &dh, &want);
        }
    }

    #[test]
    fn l2_normalize_backward_matches_finite_differences() {
        for d in [1, 3, 8, 13] {
            let mut rng = Rng::new(40 + d as u64);
            let (x, r) = (rng.normals(d, 2.0), rng.normals(d, 1.0));
            let norm = |x: &[f64]| x.iter().map(|v| v * v).sum::<f64>().sqrt();
            let want = numeric_grad(&to_f64(&x), FD_STEP, |x| dot(&r, &x.iter().map(|v| v / norm(x)).collect::<Vec<_>>()));
            let mut dx = vec![0.0f32; d];
            l2_normalize_backward(&x, &r, &mut dx);
            assert_grad("dx", &dx, &want);
        }
        let mut dx = [0.0f32; 3];
        l2_normalize_backward(&[0.0; 3], &[1.0; 3], &mut dx);
        assert_eq!(dx, [0.0; 3]);
    }
}
