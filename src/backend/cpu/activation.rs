//! Element-wise layers of the training graph without weights: `tanh` and the gradient
//! reversal layer (GRL).
use super::parallel::{for_each_chunk, CHUNK};

/// `x ← tanh(x)` in place (the RE-Matching heads' `tanh`, as the inference path computes it).
pub fn tanh_forward(x: &mut [f32]) {
    for_each_chunk(x, CHUNK, |_, c| c.iter_mut().for_each(|v| *v = v.tanh()));
}

/// Backward of `y = tanh(x)` from the output: `dx += dy ⊙ (1 − y²)`. `y, dy, dx`: same length.
pub fn tanh_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(dy.len() == y.len() && dx.len() == y.len());
    for_each_chunk(dx, CHUNK, |start, dx| {
        for ((g, &y), &d) in dx.iter_mut().zip(&y[start..]).zip(&dy[start..]) {
            *g += d * (1.0 - y * y);
        }
    });
}

/// Backward of the gradient reversal layer: the forward is the identity (no copy: the next
/// layer reads the same buffer), the backward `dx += −λ · dy`.
pub fn grl_backward(dy: &[f32], lambda: f32, dx: &mut [f32]) {
    assert_eq!(dx.len(), dy.len());
    for_each_chunk(dx, CHUNK, |start, dx| {
        dx.iter_mut().zip(&dy[start..]).for_each(|(g, &d)| *g -= lambda * d);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn tanh_backward_matches_finite_differences() {
        for len in [1, 7, 40] {
            let mut rng = Rng::new(len as u64);
            let (x, r) = (rng.normals(len, 2.0), rng.normals(len, 1.0));
            let want = numeric_grad(&to_f64(&x), FD_STEP, |x| dot(&r, &x.iter().map(|v| v.tanh()).collect::<Vec<_>>()));
            let mut y = x.clone();
            tanh_forward(&mut y);
            let mut dx = vec![0.5f32; len];
            tanh_backward(&y, &r, &mut dx);
            dx.iter_mut().for_each(|g| *g -= 0.5);
            assert_grad("dx", &dx, &want);
        }
    }

    #[test]
    fn grl_reverses_and_scales() {
        // Forward: identity, so L = Σ r ⊙ x has gradient r; reversed: −λ r.
        let mut rng = Rng::new(3);
        let r = rng.normals(9, 1.0);
        let want = numeric_grad(&[0.3; 9], FD_STEP, |x| dot(&r, x));
        let mut dx = vec![0.0f32; 9];
        grl_backward(&r, 0.7, &mut dx);
        assert_grad("dx", &dx, &want.iter().map(|g| -0.7 * g).collect::<Vec<_>>());
    }
}
