//! Training losses on the device (`kernels/loss.cu`): RE-Matching's margin loss with the
//! hardest negative, its contrastive (InfoNCE) alternative, and softmax cross-entropy; the math of `cpu::loss`. The loss itself
//! stays on the device (`loss: [1]`), as the gradient's input does.
use super::launch::{alloc_f32, CudaError, DevSlice, DevSliceMut, Gpu, KernelArgs, LaunchConfig};

/// Threads of the one-block forward kernels and of the row-per-thread backward kernels.
const BLOCK: u32 = 256;

/// Rows of an `[n × m]` matrix, after checking the companions' shapes.
fn rows(scores: DevSlice<'_, f32>, m: usize, per_row: usize) -> usize {
    assert!(m > 0 && scores.len().is_multiple_of(m), "loss: scores are not [n × m]");
    let n = scores.len() / m;
    assert_eq!(per_row, n, "loss: one label per row");
    n
}

/// A loss over each row's positive and its candidate negatives (`cpu::loss`), with its one
/// constant. `scores: [n × m]`, `positives: [n]` (columns < m), `negatives: [n × m]` (never a
/// row's positive; the caller checks both on the host, as `cpu::loss` does).
#[derive(Debug, Clone, Copy)]
pub enum CandidateLoss {
    /// `(1/n) Σ_i max(0, γ − s(i, r_i) + max(0, max_{j ∈ N_i} s(i, j)))`: RE-Matching's margin
    /// loss against the hardest negative (`cpu::loss::matching_loss_forward`).
    Matching { gamma: f32 },
    /// The softmax cross-entropy over the positive and the negatives at `temperature`
    /// (`cpu::loss::contrastive_loss_forward`).
    Contrastive { temperature: f32 },
}

impl CandidateLoss {
    /// The forward and backward kernels, and the constant they take.
    fn kernels(self) -> (&'static str, &'static str, f32) {
        match self {
            CandidateLoss::Matching { gamma } => ("matching_loss_forward", "matching_loss_backward", gamma),
            CandidateLoss::Contrastive { temperature } => ("contrastive_loss_forward", "contrastive_loss_backward", temperature),
        }
    }
}

/// `loss: [1]` = the mean over the rows of `kind`'s term.
pub fn candidate_loss_forward<D: Gpu + ?Sized>(
    dev: &D,
    kind: CandidateLoss,
    mut loss: DevSliceMut<'_, f32>,
    scores: DevSlice<'_, f32>,
    m: usize,
    positives: DevSlice<'_, u32>,
    negatives: DevSlice<'_, bool>,
) -> Result<(), CudaError> {
    let (kernel, _, constant) = kind.kernels();
    let n = rows(scores, m, positives.len());
    assert!(negatives.len() == scores.len() && loss.len() == 1, "{kernel}: negatives is not [n × m] or loss not [1]");
    let mut terms = alloc_f32(dev, n.max(1))?;
    let args = KernelArgs::new().output(&mut loss).output(&mut terms.slice_mut()).input(scores).input(positives).input(negatives).int(n).int(m).f32(constant);
    dev.launch(kernel, LaunchConfig::linear(1, BLOCK, 0), args)
}

/// `d_scores += d_loss · ∂L/∂scores` of [`candidate_loss_forward`].
#[allow(clippy::too_many_arguments)]
pub fn candidate_loss_backward<D: Gpu + ?Sized>(
    dev: &D,
    kind: CandidateLoss,
    mut d_scores: DevSliceMut<'_, f32>,
    scores: DevSlice<'_, f32>,
    m: usize,
    positives: DevSlice<'_, u32>,
    negatives: DevSlice<'_, bool>,
    d_loss: f32,
) -> Result<(), CudaError> {
    let (_, kernel, constant) = kind.kernels();
    let n = rows(scores, m, positives.len());
    assert!(negatives.len() == scores.len() && d_scores.len() == scores.len(), "{kernel}: wrong lengths");
    if n == 0 {
        return Ok(());
    }
    let args = KernelArgs::new().output(&mut d_scores).input(scores).input(positives).input(negatives).int(n).int(m).f32(constant).f32(d_loss);
    dev.launch(kernel, LaunchConfig::elementwise(n, BLOCK), args)
}

/// `loss: [1]` = mean softmax cross-entropy of `logits: [n × classes]` against `labels: [n]`
/// (each < classes, checked by the caller).
pub fn cross_entropy_forward<D: Gpu + ?Sized>(
    dev: &D,
    mut loss: DevSliceMut<'_, f32>,
    logits: DevSlice<'_, f32>,
    classes: usize,
    labels: DevSlice<'_, u32>,
) -> Result<(), CudaError> {
    let n = rows(logits, classes, labels.len());
    assert_eq!(loss.len(), 1, "cross-entropy: loss is not [1]");
    let mut terms = alloc_f32(dev, n.max(1))?;
    let args = KernelArgs::new().output(&mut loss).output(&mut terms.slice_mut()).input(logits).input(labels).int(n).int(classes);
    dev.launch("cross_entropy_forward", LaunchConfig::linear(1, BLOCK, 0), args)
}

/// `d_logits += d_loss · (softmax(z_i) − onehot(y_i)) / n`.
pub fn cross_entropy_backward<D: Gpu + ?Sized>(
    dev: &D,
    mut d_logits: DevSliceMut<'_, f32>,
    logits: DevSlice<'_, f32>,
    classes: usize,
    labels: DevSlice<'_, u32>,
    d_loss: f32,
) -> Result<(), CudaError> {
    let n = rows(logits, classes, labels.len());
    assert_eq!(d_logits.len(), logits.len(), "cross-entropy backward: d_logits is not [n × classes]");
    if n == 0 {
        return Ok(());
    }
    let args = KernelArgs::new().output(&mut d_logits).input(logits).input(labels).int(n).int(classes).f32(d_loss);
    dev.launch("cross_entropy_backward", LaunchConfig::elementwise(n, BLOCK), args)
}

#[cfg(test)]
mod tests {
    use super::super::testing::assert_near;
    use super::super::testing::bench;
    use super::*;
    use crate::backend::cpu::loss as cpu;
    use crate::testutil::*;
    use crate::train::objective::MATCHING_MARGIN;

    const MATCHING: CandidateLoss = CandidateLoss::Matching { gamma: MATCHING_MARGIN };

    /// Scores in [−0.5, 0.5) (both signs of the hardest negative; active and inactive rows),
    /// positives cycling over the columns, sparse or full negative masks.
    fn batch(n: usize, m: usize, sparse: bool, seed: u64) -> (Vec<f32>, Vec<u32>, Vec<bool>) {
        let mut rng = Rng::new(seed);
        let s: Vec<f32> = (0..n * m).map(|_| rng.uniform() - 0.5).collect();
        let positives: Vec<u32> = (0..n).map(|i| (i % m) as u32).collect();
        let mut negatives = cpu::all_other_columns(m, &positives);
        if sparse {
            negatives.iter_mut().enumerate().for_each(|(k, neg)| *neg &= k % 3 != 1);
        }
        (s, positives, negatives)
    }

    #[test]
    fn matching_loss_equals_the_cpu() {
        let Some(on) = bench() else { return };
        for (n, m) in [(1, 1), (6, 2), (12, 5), (300, 7)] {
            for sparse in [false, true] {
                let (s, positives, negatives) = batch(n, m, sparse, (n * 10 + m) as u64);
                let want = cpu::matching_loss_forward(&s, m, &positives, &negatives, MATCHING_MARGIN);
                let mut loss = [f32::NAN];
                candidate_loss_forward(on.dev(), MATCHING, on.output(&mut loss).slice(), on.input(&s), m, on.input(&positives), on.input(&negatives)).unwrap();
                assert_eq!(loss[0], want, "n={n} m={m} sparse={sparse}: the same terms summed in the same order");
                let mut want_ds = vec![0.5f32; s.len()];
                cpu::matching_loss_backward(&s, m, &positives, &negatives, MATCHING_MARGIN, 2.0, &mut want_ds);
                let mut ds = vec![0.5f32; s.len()];
                candidate_loss_backward(on.dev(), MATCHING, on.output(&mut ds).slice(), on.input(&s), m, on.input(&positives), on.input(&negatives), 2.0)
                    .unwrap();
                assert_eq!(ds, want_ds, "backward n={n} m={m} sparse={sparse}");
            }
        }
    }

    #[test]
    fn matching_loss_backward_matches_finite_differences() {
        let Some(on) = bench() else { return };
        // Away from the kinks: every term and every hardest negative at least 1e-3 from 0.
        let (n, m) = (9, 4);
        let (s, positives, negatives) = (0..)
            .map(|seed| batch(n, m, false, seed))
            .find(|(s, p, neg)| {
                s.chunks(m).zip(p).zip(neg.chunks(m)).all(|((row, &p), neg)| {
                    let top = row.iter().zip(neg).filter(|(_, &k)| k).map(|(&v, _)| v).fold(f32::NEG_INFINITY, f32::max);
                    let term = MATCHING_MARGIN - row[p as usize] + top.max(0.0);
                    term.abs() > 1e-3 && top.abs() > 1e-3
                })
            })
            .unwrap();
        let loss64 = |s: &[f64]| {
            let terms: Vec<f64> = s
                .chunks(m)
                .zip(&positives)
                .zip(negatives.chunks(m))
                .map(|((row, &p), neg)| {
                    let top = row.iter().zip(neg).filter(|(_, &k)| k).map(|(&v, _)| v).fold(f64::NEG_INFINITY, f64::max);
                    (MATCHING_MARGIN as f64 - row[p as usize] + top.max(0.0)).max(0.0)
                })
                .collect();
            terms.iter().sum::<f64>() / n as f64
        };
        let want = numeric_grad(&to_f64(&s), FD_STEP, loss64);
        let mut ds = vec![0.0f32; s.len()];
        candidate_loss_backward(on.dev(), MATCHING, on.output(&mut ds).slice(), on.input(&s), m, on.input(&positives), on.input(&negatives), 1.0).unwrap();
        assert_grad("dscores", &ds, &want);
    }

    #[test]
    fn cross_entropy_matches_the_cpu() {
        let Some(on) = bench() else { return };
        for (n, classes) in [(1, 1), (5, 3), (300, 17)] {
            let mut rng = Rng::new((n + classes) as u64);
            let logits = rng.normals(n * classes, 3.0);
            let labels: Vec<u32> = (0..n).map(|i| ((i * 7) % classes) as u32).collect();
            let want = cpu::cross_entropy_forward(&logits, classes, &labels);
            let mut loss = [f32::NAN];
            cross_entropy_forward(on.dev(), on.output(&mut loss).slice(), on.input(&logits), classes, on.input(&labels)).unwrap();
            assert_near("loss", &loss, &[want], 1e-6, 1e-6);
            let mut want_d = vec![0.5f32; logits.len()];
            cpu::cross_entropy_backward(&logits, classes, &labels, 0.5, &mut want_d);
            let mut got = vec![0.5f32; logits.len()];
            cross_entropy_backward(on.dev(), on.output(&mut got).slice(), on.input(&logits), classes, on.input(&labels), 0.5).unwrap();
            assert_near("d_logits", &got, &want_d, 1e-5, 1e-6);
        }
    }
}
