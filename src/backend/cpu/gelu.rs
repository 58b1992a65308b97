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
}
