//! Inverted dropout with a counter-based mask: element `i` is kept iff
//! `hash(key, i) ≥ p · 2⁶⁴`, and kept values are scaled by `1/(1 − p)`. The mask is a pure
//! function of `(key, i)`, so it is the same however the work is split across threads, and
//! the backward pass recomputes it instead of storing it.
use super::parallel::{for_each_chunk, CHUNK};

/// SplitMix64's finaliser of `key + i·γ`: a well-mixed 64-bit value per element.
#[inline(always)]
fn hash(key: u64, i: u64) -> u64 {
    let mut z = key.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Applies the mask of `(p, key)` in place: `x[i] ← keep(i) ? x[i]/(1−p) : 0`.
fn apply_mask(x: &mut [f32], p: f32, key: u64) {
    assert!((0.0..1.0).contains(&p), "dropout probability {p} is outside [0, 1)");
    if p == 0.0 {
        return;
    }
    let threshold = (p as f64 * u64::MAX as f64) as u64;
    let scale = 1.0 / (1.0 - p);
    for_each_chunk(x, CHUNK, |start, chunk| {
        let base = start as u64;
        for (j, v) in chunk.iter_mut().enumerate() {
            *v = if hash(key, base + j as u64) >= threshold { *v * scale } else { 0.0 };
        }
    });
}

/// `x ← dropout(x)` in place with the mask of `(p, key)`.
pub fn dropout_forward(x: &mut [f32], p: f32, key: u64) {
    apply_mask(x, p, key);
}

/// Backward of [`dropout_forward`] with the same `(p, key)`: `dx += mask ⊙ dy / (1 − p)`.
pub fn dropout_backward(dy: &[f32], p: f32, key: u64, dx: &mut [f32]) {
    assert_eq!(dx.len(), dy.len());
    let mut masked = dy.to_vec();
    apply_mask(&mut masked, p, key);
    for_each_chunk(dx, CHUNK, |start, dx| dx.iter_mut().zip(&masked[start..]).for_each(|(a, b)| *a += b));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_about_p_and_keeps_the_expectation() {
        let n = 200_000;
        let mut x = vec![1.0f32; n];
        dropout_forward(&mut x, 0.1, 7);
        let dropped = x.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
        assert!((dropped - 0.1).abs() < 0.005, "dropped {dropped}");
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        assert!((mean - 1.0).abs() < 0.01, "mean {mean}");
        assert!(x.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.9).abs() < 1e-6));
    }

    #[test]
    fn the_mask_depends_only_on_key_and_position() {
        let n = 50_000;
        let mut a = vec![1.0f32; n];
        dropout_forward(&mut a, 0.3, 11);
        // Element by element, serially: the same mask as the parallel pass.
        let threshold = (0.3f64 * u64::MAX as f64) as u64;
        for (i, &v) in a.iter().enumerate() {
            assert_eq!(v != 0.0, hash(11, i as u64) >= threshold);
        }
        let mut b = vec![1.0f32; n];
        dropout_forward(&mut b, 0.3, 12);
        assert_ne!(a, b, "another key, another mask");
        let mut c = vec![1.0f32; n];
        dropout_forward(&mut c, 0.0, 11);
        assert!(c.iter().all(|&v| v == 1.0), "p = 0 is the identity");
    }

    #[test]
    fn backward_is_the_same_linear_map() {
        // dropout is linear: its gradient applies the same mask and scale (and accumulates).
        let n = 40_000;
        let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut y = x.clone();
        dropout_forward(&mut y, 0.25, 3);
        let mut dx = vec![1.0f32; n];
        dropout_backward(&x, 0.25, 3, &mut dx);
        for i in 0..n {
            assert!((dx[i] - 1.0 - y[i]).abs() < 1e-6);
        }
    }
}
