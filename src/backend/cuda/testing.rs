//! Helpers of the emulated kernel tests.

/// Asserts `|got − want| ≤ abs + rel·|want|` element by element (both finite).
pub fn assert_near(what: &str, got: &[f32], want: &[f32], rel: f32, abs: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_finite() && (g - w).abs() <= abs + rel * w.abs(), "{what}[{i}]: device {g}, cpu {w}");
    }
}

/// Columns per row in the ragged-shape tests: a single one, less than a warp, a warp minus
/// one, the model's width and one past it.
pub const RAGGED: [usize; 5] = [1, 7, 31, 384, 385];

/// Host starts as the `u32` values a device holds.
pub fn starts_u32(starts: &[usize]) -> Vec<u32> {
    starts.iter().map(|&s| s as u32).collect()
}
