//! The [`Backend`] contract, checked: every op of a backend under test, run on the same seeded
//! random inputs as the CPU backend (the reference) and compared with it, at ragged widths
//! (`RAGGED`). Outputs start from random values, not zeros, so an op that should accumulate
//! (`+=`, every backward) and one that should overwrite are both held to it. A backend passes
//! with [`conforms`]`::<B>()`; `backend::cuda` runs it on the emulated GPU.
use super::cpu::Cpu;
use super::{Activation, AdamWStep, Backend, EntityRows};
use crate::testutil::{assert_close, to_f64, Rng};

/// Columns per row: a single one, less than a warp, a warp minus one, the model's width and
/// one past it.
pub const RAGGED: [usize; 5] = [1, 7, 31, 384, 385];

/// Asserts `|got − want| ≤ tol·(1 + |want|)` element by element: the backend's sums may run
/// in another order than the CPU's.
fn assert_near(what: &str, got: &[f32], want: &[f32]) {
    const TOL: f64 = 2e-4;
    assert_close(what, got, &to_f64(want), TOL, TOL)
}

/// Runs `cpu` and `dev` on copies of `inputs` and of the initial `outputs`, and compares every
/// output of `dev` (brought to the host) with the CPU's.
fn same<B: Backend, const I: usize, const O: usize>(
    what: &str,
    inputs: [&[f32]; I],
    outputs: [&[f32]; O],
    cpu: impl FnOnce([&[f32]; I], [&mut [f32]; O]),
    dev: impl FnOnce([&B::Mem; I], [&mut B::Mem; O]),
) {
    let mut want: Vec<Vec<f32>> = outputs.iter().map(|o| o.to_vec()).collect();
    cpu(inputs, want.iter_mut().map(|v| v.as_mut_slice()).collect::<Vec<_>>().try_into().unwrap());
    let ins: Vec<B::Buf> = inputs.iter().map(|x| B::from_host(x)).collect();
    let mut outs: Vec<B::Buf> = outputs.iter().map(|x| B::from_host(x)).collect();
    dev(
        ins.iter().map(|b| &**b).collect::<Vec<_>>().try_into().unwrap_or_else(|_| unreachable!()),
        outs.iter_mut().map(|b| &mut **b).collect::<Vec<_>>().try_into().unwrap_or_else(|_| unreachable!()),
    );
    B::sync().unwrap_or_else(|e| panic!("{what}: {e}"));
    for (k, (out, want)) in outs.iter().zip(&want).enumerate() {
        assert_near(&format!("{} {what} output {k}", B::KIND.name()), &B::to_host(out).unwrap(), want);
    }
}

/// Checks every op of `B` against the CPU backend.
pub fn conforms<B: Backend>() {
    let mut rng = Rng::new(15);
    for d in RAGGED {
        elementwise::<B>(&mut rng, d);
        linear::<B>(&mut rng, d);
        layernorm::<B>(&mut rng, d);
        sequences::<B>(&mut rng, d);
        matching_inputs::<B>(&mut rng, d);
    }
    attention::<B>(&mut rng);
    losses::<B>(&mut rng);
    adamw::<B>(&mut rng);
}

fn elementwise<B: Backend>(rng: &mut Rng, d: usize) {
    let n = 3 * d;
    let (x, y, z) = (rng.normals(n, 1.0), rng.normals(n, 1.0), rng.normals(n, 2.0));
    same::<B, 1, 1>("add", [&x], [&y], |[x], [y]| Cpu::add(y, x), |[x], [y]| B::add(y, x));
    same::<B, 0, 1>("fill_zero", [], [&y], |[], [y]| Cpu::fill_zero(y), |[], [y]| B::fill_zero(y));
    same::<B, 2, 1>("gelu_backward", [&z, &x], [&y], |[z, dy], [dz]| Cpu::gelu_backward(z, dy, dz), |[z, dy], [dz]| B::gelu_backward(z, dy, dz));
    same::<B, 0, 1>("tanh_forward", [], [&z], |[], [x]| Cpu::tanh_forward(x), |[], [x]| B::tanh_forward(x));
    let t: Vec<f32> = z.iter().map(|v| v.tanh()).collect();
    same::<B, 2, 1>("tanh_backward", [&t, &x], [&y], |[t, dy], [dx]| Cpu::tanh_backward(t, dy, dx), |[t, dy], [dx]| B::tanh_backward(t, dy, dx));
    same::<B, 1, 1>("grl_backward", [&x], [&y], |[dy], [dx]| Cpu::grl_backward(dy, 0.3, dx), |[dy], [dx]| B::grl_backward(dy, 0.3, dx));
    let key = d as u64 * 31;
    same::<B, 0, 1>("dropout_forward", [], [&x], |[], [x]| Cpu::dropout_forward(x, 0.1, key), |[], [x]| B::dropout_forward(x, 0.1, key));
    same::<B, 1, 1>("dropout_backward", [&x], [&y], |[dy], [dx]| Cpu::dropout_backward(dy, 0.1, key, dx), |[dy], [dx]| B::dropout_backward(dy, 0.1, key, dx));
    let mut with_zero_row = x.clone();
    with_zero_row[d..2 * d].fill(0.0);
    same::<B, 0, 1>("l2_normalize_rows", [], [&with_zero_row], |[], [x]| Cpu::l2_normalize_rows(x, d), |[], [x]| B::l2_normalize_rows(x, d));
    // Three parts of [3 × d] side by side, and apart again.
    let joined = rng.normals(9 * d, 1.0);
    same::<B, 3, 1>("concat_parts", [&x, &y, &z], [&joined], |p, [out]| Cpu::concat_parts(&p, d, out), |p, [out]| B::concat_parts(&p, d, out));
    same::<B, 1, 3>("split_parts", [&joined], [&x, &y, &z], |[j], mut p| Cpu::split_parts(j, d, &mut p), |[j], mut p| B::split_parts(j, d, &mut p));
}

fn linear<B: Backend>(rng: &mut Rng, d: usize) {
    for (rows, out) in [(5, 7), (2, d)] {
        let (x, w, b) = (rng.normals(rows * d, 1.0), rng.normals(out * d, 0.2), rng.normals(out, 0.5));
        let (y, r) = (rng.normals(rows * out, 1.0), rng.normals(rows * out, 1.0));
        same::<B, 3, 1>(
            "linear bias",
            [&x, &w, &b],
            [&y],
            |[x, w, b], [y]| Cpu::linear_forward(x, rows, w, b, y, Activation::Bias),
            |[x, w, b], [y]| B::linear_forward(x, rows, w, b, y, Activation::Bias),
        );
        same::<B, 3, 1>(
            "linear gelu",
            [&x, &w, &b],
            [&y],
            |[x, w, b], [y]| Cpu::linear_forward(x, rows, w, b, y, Activation::BiasGelu),
            |[x, w, b], [y]| B::linear_forward(x, rows, w, b, y, Activation::BiasGelu),
        );
        same::<B, 4, 1>(
            "linear residual",
            [&x, &w, &b, &r],
            [&y],
            |[x, w, b, r], [y]| Cpu::linear_forward(x, rows, w, b, y, Activation::BiasResidual(r)),
            |[x, w, b, r], [y]| B::linear_forward(x, rows, w, b, y, Activation::BiasResidual(r)),
        );
        same::<B, 3, 2>(
            "linear_gelu_forward_saving",
            [&x, &w, &b],
            [&y, &r],
            |[x, w, b], [z, y]| Cpu::linear_gelu_forward_saving(x, rows, w, b, z, y),
            |[x, w, b], [z, y]| B::linear_gelu_forward_saving(x, rows, w, b, z, y),
        );
        let (dx, dw, db) = (rng.normals(rows * d, 1.0), rng.normals(out * d, 1.0), rng.normals(out, 1.0));
        same::<B, 3, 3>(
            "linear_backward",
            [&x, &w, &y],
            [&dx, &dw, &db],
            |[x, w, dy], [dx, dw, db]| Cpu::linear_backward(x, rows, w, dy, Some(dx), dw, db),
            |[x, w, dy], [dx, dw, db]| B::linear_backward(x, rows, w, dy, Some(dx), dw, db),
        );
        same::<B, 3, 2>(
            "linear_backward without dx",
            [&x, &w, &y],
            [&dw, &db],
            |[x, w, dy], [dw, db]| Cpu::linear_backward(x, rows, w, dy, None, dw, db),
            |[x, w, dy], [dw, db]| B::linear_backward(x, rows, w, dy, None, dw, db),
        );
    }
}

fn layernorm<B: Backend>(rng: &mut Rng, d: usize) {
    let rows = 4;
    let (x, gamma, beta) = (rng.normals(rows * d, 2.0), rng.normals(d, 1.0), rng.normals(d, 1.0));
    let (y, mean, rstd) = (rng.normals(rows * d, 1.0), rng.normals(rows, 1.0), rng.normals(rows, 1.0));
    let eps = 1e-12;
    same::<B, 2, 1>(
        "layernorm_forward",
        [&gamma, &beta],
        [&x],
        |[g, b], [x]| Cpu::layernorm_forward(x, d, g, b, eps),
        |[g, b], [x]| B::layernorm_forward(x, d, g, b, eps),
    );
    same::<B, 3, 3>(
        "layernorm_forward_saving",
        [&x, &gamma, &beta],
        [&y, &mean, &rstd],
        |[x, g, b], [y, m, r]| Cpu::layernorm_forward_saving(x, y, d, g, b, eps, m, r),
        |[x, g, b], [y, m, r]| B::layernorm_forward_saving(x, y, d, g, b, eps, m, r),
    );
    let (mut mean, mut rstd, mut normed) = (vec![0.0; rows], vec![0.0; rows], vec![0.0; rows * d]);
    Cpu::layernorm_forward_saving(&x, &mut normed, d, &gamma, &beta, eps, &mut mean, &mut rstd);
    let (dy, dx, dg, db) = (rng.normals(rows * d, 1.0), rng.normals(rows * d, 1.0), rng.normals(d, 1.0), rng.normals(d, 1.0));
    same::<B, 5, 3>(
        "layernorm_backward",
        [&x, &gamma, &mean, &rstd, &dy],
        [&dx, &dg, &db],
        |[x, g, m, r, dy], [dx, dg, db]| Cpu::layernorm_backward(x, d, g, m, r, dy, dx, dg, db),
        |[x, g, m, r, dy], [dx, dg, db]| B::layernorm_backward(x, d, g, m, r, dy, dx, dg, db),
    );
}

/// Ops over packed sequences of 3, 1 and 5 tokens: embeddings, pooling, query attention.
fn sequences<B: Backend>(rng: &mut Rng, d: usize) {
    let starts = [0, 3, 4, 9];
    let (tokens, seqs, vocab, positions) = (9, 3, 11, 6);
    let ids: Vec<u32> = (0..tokens).map(|t| (t * 7 % vocab) as u32).collect();
    let (word, position, type0) = (rng.normals(vocab * d, 1.0), rng.normals(positions * d, 1.0), rng.normals(d, 1.0));
    let h = rng.normals(tokens * d, 1.0);
    same::<B, 3, 1>(
        "embeddings_forward",
        [&word, &position, &type0],
        [&h],
        |[w, p, t], [o]| Cpu::embeddings_forward(&ids, &starts, w, p, t, o),
        |[w, p, t], [o]| B::embeddings_forward(&ids, &starts, w, p, t, o),
    );
    same::<B, 1, 3>(
        "embeddings_backward",
        [&h],
        [&word, &position, &type0],
        |[g], [w, p, t]| Cpu::embeddings_backward(&ids, &starts, g, w, p, t),
        |[g], [w, p, t]| B::embeddings_backward(&ids, &starts, g, w, p, t),
    );
    let (pooled, dh) = (rng.normals(seqs * d, 1.0), rng.normals(tokens * d, 1.0));
    same::<B, 1, 1>(
        "mean_pool_forward",
        [&h],
        [&pooled],
        |[h], [o]| Cpu::mean_pool_forward(h, &starts, d, o),
        |[h], [o]| B::mean_pool_forward(h, &starts, d, o),
    );
    same::<B, 1, 1>(
        "mean_pool_backward",
        [&pooled],
        [&dh],
        |[g], [dh]| Cpu::mean_pool_backward(g, &starts, d, dh),
        |[g], [dh]| B::mean_pool_backward(g, &starts, d, dh),
    );
    let (q, attn) = (rng.normals(d, 0.3), rng.normals(tokens, 1.0));
    same::<B, 2, 2>(
        "query_attention_forward",
        [&h, &q],
        [&pooled, &attn],
        |[h, q], [x, a]| Cpu::query_attention_forward(h, &starts, q, x, a),
        |[h, q], [x, a]| B::query_attention_forward(h, &starts, q, x, a),
    );
    let (mut x_star, mut weights) = (vec![0.0; seqs * d], vec![0.0; tokens]);
    Cpu::query_attention_forward(&h, &starts, &q, &mut x_star, &mut weights);
    let (d_x_star, dq) = (rng.normals(seqs * d, 1.0), rng.normals(d, 1.0));
    same::<B, 4, 2>(
        "query_attention_backward",
        [&h, &q, &weights, &d_x_star],
        [&dq, &dh],
        |[h, q, a, g], [dq, dh]| Cpu::query_attention_backward(h, &starts, q, a, g, dq, Some(dh)),
        |[h, q, a, g], [dq, dh]| B::query_attention_backward(h, &starts, q, a, g, dq, Some(dh)),
    );
    same::<B, 4, 1>(
        "query_attention_backward without dh",
        [&h, &q, &weights, &d_x_star],
        [&dq],
        |[h, q, a, g], [dq]| Cpu::query_attention_backward(h, &starts, q, a, g, dq, None),
        |[h, q, a, g], [dq]| B::query_attention_backward(h, &starts, q, a, g, dq, None),
    );
    // Entity spans and markers inside the batch; argmax is compared too.
    let rows = [EntityRows { head: 0..2, tail: 2..3, head_marker: 0, tail_marker: 2 }, EntityRows { head: 4..7, tail: 7..9, head_marker: 5, tail_marker: 8 }];
    let n = rows.len();
    let (heads, tails, markers) = (rng.normals(n * d, 1.0), rng.normals(n * d, 1.0), rng.normals(n * 2 * d, 1.0));
    let mut want_argmax = vec![0u32; n * 2 * d];
    let mut got_argmax = vec![0u32; n * 2 * d];
    same::<B, 1, 3>(
        "entity_pool_forward",
        [&h],
        [&heads, &tails, &markers],
        |[h], [a, b, m]| Cpu::entity_pool_forward(h, d, &rows, a, b, m, &mut want_argmax),
        |[h], [a, b, m]| B::entity_pool_forward(h, d, &rows, a, b, m, &mut got_argmax),
    );
    assert_eq!(got_argmax, want_argmax, "{} entity_pool_forward argmax, d={d}", B::KIND.name());
    same::<B, 3, 1>(
        "entity_pool_backward",
        [&heads, &tails, &markers],
        [&dh],
        |[a, b, m], [dh]| Cpu::entity_pool_backward(d, &rows, &want_argmax, a, b, m, dh),
        |[a, b, m], [dh]| B::entity_pool_backward(d, &rows, &want_argmax, a, b, m, dh),
    );
}

/// The projection-subtraction and the 3-part cosine score.
fn matching_inputs<B: Backend>(rng: &mut Rng, d: usize) {
    let n = 4;
    let (x, x_star, out) = (rng.normals(n * d, 1.0), rng.normals(n * d, 1.0), rng.normals(n * d, 1.0));
    same::<B, 2, 1>(
        "project_out_forward",
        [&x, &x_star],
        [&out],
        |[x, s], [o]| Cpu::project_out_forward(x, s, d, o),
        |[x, s], [o]| B::project_out_forward(x, s, d, o),
    );
    let (dx, ds) = (rng.normals(n * d, 1.0), rng.normals(n * d, 1.0));
    same::<B, 3, 2>(
        "project_out_backward",
        [&x, &x_star, &out],
        [&dx, &ds],
        |[x, s, g], [dx, ds]| Cpu::project_out_backward(x, s, d, g, dx, ds),
        |[x, s, g], [dx, ds]| B::project_out_backward(x, s, d, g, dx, ds),
    );
    let (m, weights) = (5, [0.5f32, 1.0, 2.0]);
    let (a, b) = (rng.normals(n * 3 * d, 1.0), rng.normals(m * 3 * d, 1.0));
    let scores = rng.normals(n * m, 1.0);
    same::<B, 2, 1>(
        "cosine_scores_forward",
        [&a, &b],
        [&scores],
        |[a, b], [s]| Cpu::cosine_scores_forward(a, b, d, &weights, s),
        |[a, b], [s]| B::cosine_scores_forward(a, b, d, &weights, s),
    );
    let (da, db) = (rng.normals(n * 3 * d, 1.0), rng.normals(m * 3 * d, 1.0));
    same::<B, 3, 2>(
        "cosine_scores_backward",
        [&a, &b, &scores],
        [&da, &db],
        |[a, b, g], [da, db]| Cpu::cosine_scores_backward(a, b, d, &weights, g, da, Some(db)),
        |[a, b, g], [da, db]| B::cosine_scores_backward(a, b, d, &weights, g, da, Some(db)),
    );
    same::<B, 3, 1>(
        "cosine_scores_backward without db",
        [&a, &b, &scores],
        [&da],
        |[a, b, g], [da]| Cpu::cosine_scores_backward(a, b, d, &weights, g, da, None),
        |[a, b, g], [da]| B::cosine_scores_backward(a, b, d, &weights, g, da, None),
    );
}

fn attention<B: Backend>(rng: &mut Rng) {
    let starts = [0, 1, 8, 9, 40];
    let tokens = 40;
    for (heads, d) in [(1, 1), (1, 7), (2, 62), (12, 384)] {
        let (q, k, v) = (rng.normals(tokens * d, 1.0), rng.normals(tokens * d, 1.0), rng.normals(tokens * d, 1.0));
        let ctx = rng.normals(tokens * d, 1.0);
        same::<B, 3, 1>(
            "attention_forward",
            [&q, &k, &v],
            [&ctx],
            |[q, k, v], [c]| Cpu::attention_forward(q, k, v, &starts, heads, c),
            |[q, k, v], [c]| B::attention_forward(q, k, v, &starts, heads, c),
        );
        let (dq, dk, dv) = (rng.normals(tokens * d, 1.0), rng.normals(tokens * d, 1.0), rng.normals(tokens * d, 1.0));
        same::<B, 4, 3>(
            "attention_backward",
            [&q, &k, &v, &ctx],
            [&dq, &dk, &dv],
            |[q, k, v, g], [dq, dk, dv]| Cpu::attention_backward(q, k, v, &starts, heads, g, dq, dk, dv),
            |[q, k, v, g], [dq, dk, dv]| B::attention_backward(q, k, v, &starts, heads, g, dq, dk, dv),
        );
    }
}

fn losses<B: Backend>(rng: &mut Rng) {
    for (n, m) in [(1, 1), (6, 5), (40, 9)] {
        let scores: Vec<f32> = (0..n * m).map(|_| rng.uniform() - 0.5).collect();
        let positives: Vec<u32> = (0..n).map(|i| (i % m) as u32).collect();
        let negatives: Vec<bool> = (0..n * m).map(|k| k % m != positives[k / m] as usize && k % 3 != 1).collect();
        let on = B::from_host(&scores);
        let gamma = 0.25;
        let (want, got) =
            (Cpu::matching_loss_forward(&scores, m, &positives, &negatives, gamma), B::matching_loss_forward(&on, m, &positives, &negatives, gamma));
        assert_near(&format!("{} matching_loss_forward n={n} m={m}", B::KIND.name()), &[got], &[want]);
        let t = 0.1;
        let (want, got) =
            (Cpu::contrastive_loss_forward(&scores, m, &positives, &negatives, t), B::contrastive_loss_forward(&on, m, &positives, &negatives, t));
        assert_near(&format!("{} contrastive_loss_forward n={n} m={m}", B::KIND.name()), &[got], &[want]);
        let (want, got) = (Cpu::cross_entropy_forward(&scores, m, &positives), B::cross_entropy_forward(&on, m, &positives));
        assert_near(&format!("{} cross_entropy_forward n={n} m={m}", B::KIND.name()), &[got], &[want]);
        B::sync().unwrap();
        let ds = rng.normals(n * m, 1.0);
        same::<B, 1, 1>(
            "matching_loss_backward",
            [&scores],
            [&ds],
            |[s], [g]| Cpu::matching_loss_backward(s, m, &positives, &negatives, gamma, 2.0, g),
            |[s], [g]| B::matching_loss_backward(s, m, &positives, &negatives, gamma, 2.0, g),
        );
        same::<B, 1, 1>(
            "contrastive_loss_backward",
            [&scores],
            [&ds],
            |[s], [g]| Cpu::contrastive_loss_backward(s, m, &positives, &negatives, t, 2.0, g),
            |[s], [g]| B::contrastive_loss_backward(s, m, &positives, &negatives, t, 2.0, g),
        );
        same::<B, 1, 1>(
            "cross_entropy_backward",
            [&scores],
            [&ds],
            |[s], [g]| Cpu::cross_entropy_backward(s, m, &positives, 0.5, g),
            |[s], [g]| B::cross_entropy_backward(s, m, &positives, 0.5, g),
        );
    }
}

fn adamw<B: Backend>(rng: &mut Rng) {
    let n = 1000;
    let (p, g, m) = (rng.normals(n, 1.0), rng.normals(n, 1.0), rng.normals(n, 0.1));
    let v: Vec<f32> = rng.normals(n, 0.1).iter().map(|x| x * x).collect();
    let step = AdamWStep {
        decay: 1.0 - 1e-3 * 0.01,
        step_size: 1e-3 / (1.0 - 0.9f32.powi(3)),
        beta1: 0.9,
        beta2: 0.999,
        bias2_sqrt: (1.0 - 0.999f32.powi(3)).sqrt(),
        eps: 1e-8,
    };
    same::<B, 1, 3>("adamw_step", [&g], [&p, &m, &v], |[g], [p, m, v]| Cpu::adamw_step(p, g, m, v, step), |[g], [p, m, v]| B::adamw_step(p, g, m, v, step));
}
