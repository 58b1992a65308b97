//! Branch-free scalar approximations of `exp` and `erf` written so that the compiler can
//! vectorise loops over them (no libm calls inside hot loops), and reductions over explicit
//! lanes (a serial `f32` sum or max cannot be vectorised: reordering changes its rounding).

/// Lane count of the explicit reductions (one AVX-512 register, two AVX2 registers).
pub(crate) const LANES: usize = 16;

/// `Σ f(v)` over `values`, accumulated in `LANES` independent lanes.
#[inline(always)]
pub(crate) fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut chunks = values.chunks_exact(LANES);
    for chunk in &mut chunks {
        for l in 0..LANES {
            acc[l] += f(chunk[l]);
        }
    }
    let mut total: f32 = acc.iter().sum();
    for &v in chunks.remainder() {
        total += f(v);
    }
    total
}

/// The largest of `values` (−∞ for none), over `LANES` independent lanes.
#[inline(always)]
pub(crate) fn lane_max(values: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = values.chunks_exact(LANES);
    for chunk in &mut chunks {
        for l in 0..LANES {
            acc[l] = acc[l].max(chunk[l]);
        }
    }
    chunks.remainder().iter().chain(&acc).fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

/// `e^x` for f32, relative error ≲ 2e-7 over the normal range; clamps to 0 / +large.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // exp(x) = 2^n · exp(r), n = round(x / ln 2), r = x − n·ln 2 (Cody–Waite split).
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.3, 88.0);
    // Adding 1.5·2^23 rounds x·log2(e) to an integer n held in the low mantissa bits of t
    // (no float → int conversion, so the loop stays in vector registers).
    const SHIFTER: f32 = 12_582_912.0;
    let t = x * LOG2E + SHIFTER;
    let n = t - SHIFTER;
    let r = x - n * LN2_HI - n * LN2_LO;
    // Minimax polynomial for exp(r) on [−ln2/2, ln2/2] (Cephes expf coefficients).
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_6e-1;
    p = p * r + 5e-1;
    let e = p * r * r + r + 1.0;
    // Build 2^n directly in the exponent field (n ∈ [−126, 128] after the clamp).
    let scale = f32::from_bits(t.to_bits().wrapping_add(127) << 23);
    e * scale
}

/// `erf(x)` for f32, absolute error < 4e-7: `x · P(x²) / Q(x²)` with `P`, `Q` of degree 5,
/// a rational fit of erf on `[0, 4]` (our own weighted least-squares fit, error 2e-8 in
/// f64; the rest is f32 rounding), `|x|` clamped to 4 (erf(4) = 1 − 1.5e-8) and the result
/// to 1. One division and ten multiply-adds: half the work of an `exp`-based erfc form.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    const P: [f32; 6] = [std::f32::consts::FRAC_2_SQRT_PI, 0.196_234_31, 0.053_465_657, 0.004_003_044, 0.000_288_032_5, 1.975_005_6e-6];
    const Q: [f32; 6] = [1.0, 0.507_239_3, 0.116_470_47, 0.015_443_221, 0.001_216_222_1, 3.748_221e-5];
    let z = x.abs().min(4.0);
    let t = z * z;
    let p = P[0] + t * (P[1] + t * (P[2] + t * (P[3] + t * (P[4] + t * P[5]))));
    let q = Q[0] + t * (Q[1] + t * (Q[2] + t * (Q[3] + t * (Q[4] + t * Q[5]))));
    (z * p / q).min(1.0).copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std() {
        let mut x = -80.0f32;
        while x < 80.0 {
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            assert!(((got - want) / want).abs() < 4e-7, "exp({x}) = {got}, want {want}");
            x += 0.0137;
        }
        assert_eq!(exp(-1000.0), exp(-87.3));
        assert!(exp(-1000.0) < 1e-37);
    }

    #[test]
    fn lane_reductions_match_serial_ones() {
        for len in 0..50 {
            let v: Vec<f32> = (0..len).map(|i| ((i * 37 + 11) % 23) as f32 - 9.5).collect();
            assert_eq!(lane_max(&v), v.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)), "len {len}");
            // Halves and small integers: every partial sum is exact, whatever the order.
            assert_eq!(lane_sum(&v, |x| 2.0 * x), v.iter().map(|x| 2.0 * x).sum::<f32>(), "len {len}");
        }
    }

    #[test]
    fn erf_matches_f64_series() {
        // Reference erf in f64 by its Taylor series (cancellation stays below 1e-10 for
        // |x| ≤ 4); beyond 4, |erf(x)| = 1 within 2e-8.
        fn erf_ref(x: f64) -> f64 {
            if x.abs() > 4.0 {
                return x.signum();
            }
            let mut sum = 0.0;
            let mut term = x;
            let mut n = 0.0;
            while term.abs() > 1e-17 || n < 5.0 {
                sum += term / (2.0 * n + 1.0);
                n += 1.0;
                term *= -x * x / n;
                if n > 200.0 {
                    break;
                }
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        }
        let mut x = -5.0f32;
        while x < 5.0 {
            let got = erf(x) as f64;
            let want = erf_ref(x as f64);
            assert!((got - want).abs() < 4e-7, "erf({x}) = {got}, want {want}");
            x += 0.00731;
        }
    }
}
