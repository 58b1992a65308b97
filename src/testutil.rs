//! Helpers shared by the unit tests.

pub use crate::rng::Rng;
// One file shared with the integration tests (tests/common).
#[path = "../tests/common/temp_dir.rs"]
mod temp_dir;
pub use temp_dir::TempDir;

/// Widens to f64 (the test references compute in f64 at exactly the f32 inputs' values).
pub fn to_f64(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

/// `Σ r ⊙ y`: the random linear functional whose gradient the finite-difference checks compare.
pub fn dot(r: &[f32], y: &[f64]) -> f64 {
    assert_eq!(r.len(), y.len(), "functional and output differ in length");
    r.iter().zip(y).map(|(&a, b)| a as f64 * b).sum()
}

/// Central finite differences of `f` at `x`: `(f(x + h·e_i) − f(x − h·e_i)) / 2h` per element.
pub fn numeric_grad(x: &[f64], h: f64, f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut probe = x.to_vec();
    (0..x.len())
        .map(|i| {
            probe[i] = x[i] + h;
            let up = f(&probe);
            probe[i] = x[i] - h;
            let down = f(&probe);
            probe[i] = x[i];
            (up - down) / (2.0 * h)
        })
        .collect()
}

/// Finite-difference step for f64 references of smooth functions.
pub const FD_STEP: f64 = 1e-6;
/// Tolerances of an f32 gradient against an f64 one: `|got − want| ≤ ABS + REL·|want|`.
pub const GRAD_REL: f64 = 1e-3;
pub const GRAD_ABS: f64 = 1e-4;

/// Panics with the first element where `got` (f32, analytic) and `want` (f64) differ by more
/// than `abs + rel·|want|`.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], rel: f64, abs: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_finite() && (g as f64 - w).abs() <= abs + rel * w.abs(), "{what}[{i}]: got {g}, want {w} (|Δ| = {:e})", (g as f64 - w).abs());
    }
}

/// [`assert_close`] with the default gradient tolerances.
pub fn assert_grad(what: &str, got: &[f32], want: &[f64]) {
    assert_close(what, got, want, GRAD_REL, GRAD_ABS)
}

/// Packed-sequence offsets `[0, l0, l0 + l1, …]` from lengths.
pub fn starts_of(lens: &[usize]) -> Vec<usize> {
    let mut starts = vec![0];
    for l in lens {
        starts.push(starts.last().unwrap() + l);
    }
    starts
}

/// `erf(x)` in f64 to ~1e-14, smooth enough for finite differences: Taylor series for
/// `|x| < 2.5`, the continued fraction of `erfc` beyond (independent of `math::erf`).
pub fn erf(x: f64) -> f64 {
    let z = x.abs();
    let r = if z < 2.5 {
        let (mut sum, mut term, mut n) = (0.0, z, 0.0);
        while term.abs() > 1e-20 {
            sum += term / (2.0 * n + 1.0);
            n += 1.0;
            term *= -z * z / n;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc(z) = e^(−z²)/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + …)))), evaluated bottom-up.
        let mut f = z;
        for k in (1..80).rev() {
            f = z + (k as f64 / 2.0) / f;
        }
        1.0 - (-z * z).exp() / std::f64::consts::PI.sqrt() / f
    };
    r.copysign(x)
}

/// `gelu(x) = x · ½ · (1 + erf(x/√2))` in f64.
pub fn gelu(x: f64) -> f64 {
    x * 0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2))
}
