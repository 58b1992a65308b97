//! GELU, erf form: `gelu(x) = x · ½ · (1 + erf(x / √2))` (BERT's "gelu").
use super::math;
use super::simd::multiversion;

#[inline(always)]
fn gelu(x: f32) -> f32 {
    x * 0.5 * (1.0 + math::erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

multiversion!(
    /// `x ← gelu(x + bias)` element-wise; `bias` has the length of `x`.
    pub fn bias_gelu_forward / bias_gelu_forward_with_isa (x: &mut [f32], bias: &[f32]) => bias_gelu_generic
);

#[inline(always)]
fn bias_gelu_generic(x: &mut [f32], bias: &[f32]) {
    for (v, &b) in x.iter_mut().zip(bias) {
        *v = gelu(*v + b);
    }
}

multiversion!(
    /// `y = gelu(z)` element-wise, out of place (training keeps the pre-activation `z` for
    /// [`gelu_backward`]; inference uses the fused in-place [`bias_gelu_forward`]).
    pub fn gelu_forward / gelu_forward_with_isa (z: &[f32], y: &mut [f32]) => gelu_forward_generic
);

#[inline(always)]
fn gelu_forward_generic(z: &[f32], y: &mut [f32]) {
    assert_eq!(z.len(), y.len());
    for (o, &v) in y.iter_mut().zip(z) {
        *o = gelu(v);
    }
}

multiversion!(
    /// `dz += dy ⊙ gelu'(z)` with the exact derivative of the erf GELU,
    /// `gelu'(z) = Φ(z) + z·φ(z) = ½(1 + erf(z/√2)) + z · e^(−z²/2) / √(2π)`.
    /// `z, dy, dz`: same length (`z` is the saved pre-activation).
    pub fn gelu_backward / gelu_backward_with_isa (z: &[f32], dy: &[f32], dz: &mut [f32]) => gelu_backward_generic
);

#[inline(always)]
fn gelu_backward_generic(z: &[f32], dy: &[f32], dz: &mut [f32]) {
    assert!(z.len() == dy.len() && dz.len() == z.len());
    // 1 / √(2π)
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    for ((g, &v), &d) in dz.iter_mut().zip(z).zip(dy) {
        let cdf = 0.5 * (1.0 + math::erf(v * std::f32::consts::FRAC_1_SQRT_2));
        let pdf = INV_SQRT_2PI * math::exp(-0.5 * v * v);
        *g += d * (cdf + v * pdf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::simd::Isa;
    use proptest::prelude::*;

    /// GELU in f64 with erf from its series / asymptote (independent of `math::erf`).
    fn gelu_reference(x: f64) -> f64 {
        let z = x / std::f64::consts::SQRT_2;
        let erf = if z.abs() > 4.0 {
            z.signum()
        } else {
            let (mut sum, mut term, mut n) = (0.0, z, 0.0);
            while term.abs() > 1e-18 || n < 3.0 {
                sum += term / (2.0 * n + 1.0);
                n += 1.0;
                term *= -z * z / n;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        };
        x * 0.5 * (1.0 + erf)
    }

    proptest! {
        #[test]
        fn matches_reference_on_every_isa(len in 0usize..100, seed in any::<u64>()) {
            let mut rng = crate::testutil::Rng::new(seed);
            let x: Vec<f32> = (0..len).map(|_| rng.normal() * 4.0).collect();
            let bias: Vec<f32> = (0..len).map(|_| rng.normal()).collect();
            for isa in Isa::available() {
                let mut got = x.clone();
                bias_gelu_forward_with_isa(isa, &mut got, &bias);
                for i in 0..len {
                    let want = gelu_reference(x[i] as f64 + bias[i] as f64);
                    prop_assert!((got[i] as f64 - want).abs() <= 1e-6 * (1.0 + want.abs()), "{isa:?} {} vs {want}", got[i]);
                }
            }
        }
    }

    proptest! {
        #[test]
        fn backward_matches_finite_differences(len in 1usize..40, seed in any::<u64>()) {
            use crate::testutil::*;
            let mut rng = Rng::new(seed);
            let z = rng.normals(len, 3.0);
            let r = rng.normals(len, 1.0);
            // h = 1e-4: the reference's erf series loses ~1e-10 to cancellation near |z| = 4√2,
            // which a 1e-6 step would amplify to 1e-4; the truncation error at 1e-4 is ~1e-9.
            let want = numeric_grad(&to_f64(&z), 1e-4, |z| dot(&r, &z.iter().map(|&v| gelu_reference(v)).collect::<Vec<_>>()));
            for isa in Isa::available() {
                let mut dz = vec![0.5f32; len]; // accumulates onto what is there
                gelu_backward_with_isa(isa, &z, &r, &mut dz);
                dz.iter_mut().for_each(|g| *g -= 0.5);
                assert_grad("dz", &dz, &want);
                let mut y = vec![0.0; len];
                gelu_forward_with_isa(isa, &z, &mut y);
                let mut fused = z.clone();
                bias_gelu_forward_with_isa(isa, &mut fused, &vec![0.0; len]);
                prop_assert_eq!(&y, &fused);
            }
        }
    }

    #[test]
    fn derivative_at_known_points() {
        // gelu'(0) = ½; gelu'(z) → 1 for large z and → 0 for very negative z.
        let (z, dy) = ([0.0f32, 8.0, -8.0, 1.0], [1.0f32; 4]);
        let mut dz = [0.0; 4];
        gelu_backward(&z, &dy, &mut dz);
        // gelu'(1) = Φ(1) + φ(1) = 0.8413447 + 0.2419707
        let want = [0.5, 1.0, 0.0, 1.0833155];
        for i in 0..4 {
            assert!((dz[i] - want[i]).abs() < 1e-6, "gelu'({}) = {}, want {}", z[i], dz[i], want[i]);
        }
    }
}
