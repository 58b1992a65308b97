//! Pooling of token rows into one vector per sequence.
use rayon::prelude::*;

/// Mean over each packed sequence's rows: `h: [T × d]` → `out: [n_seqs × d]`.
pub fn mean_pool_forward(h: &[f32], starts: &[usize], d: usize, out: &mut [f32]) {
    assert_eq!(out.len(), (starts.len() - 1) * d);
    out.par_chunks_mut(d.max(1)).zip(starts.par_windows(2)).for_each(|(o, seq)| {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
