//! Parity of one RE-Matching training step with the PyTorch oracle
//! (`tests/oracle/gen_train_fixtures.py`, `tests/fixtures/train_step_golden.*`, semantics in
//! `tests/oracle/TRAINING.md`): forward values, the loss, every parameter gradient, then the
//! loss trajectory and final parameters over five AdamW steps. Tolerances are the fixture's
//! recommended f32 tolerances (`train_step_golden.json`). The checks are generic over the
//! backend and run on the CPU and, with features `cuda`/`cuda-emu`, through the CUDA backend
//! (emulated here; on a GPU with `RMX_TEST_DEVICE=cuda`).
mod common;

use common::{fixture, load_golden, Golden};
use rmx::backend::{cpu::Cpu, Backend, EntityRows};
use rmx::model::bert::{Bert, Dropout, PackedBatch};
use rmx::model::params::Grads;
use rmx::train::adamw::{linear_schedule, AdamW, AdamWSettings};
use rmx::train::objective::{HeadIds, Losses, ObjectiveSettings, Targets};
use std::collections::HashMap;

const HEAD_NAMES: [&str; 7] =
    ["context.weight", "context.bias", "distill.query", "adversary.0.weight", "adversary.0.bias", "adversary.1.weight", "adversary.1.bias"];

struct Case<B: Backend> {
    golden: HashMap<String, Golden>,
    /// The tiny BERT, its parameters holding the heads too.
    bert: Bert<B>,
    heads: HeadIds,
    batch: PackedBatch,
    rows: Vec<EntityRows>,
    descriptions: B::Buf,
    relation: Vec<u32>,
    negatives: Vec<bool>,
    train_label: Vec<u32>,
}

fn ints(g: &Golden) -> Vec<usize> {
    g.data.iter().map(|&v| v as usize).collect()
}

fn load_case<B: Backend>() -> Case<B> {
    let golden = load_golden(&fixture("train_step_golden.safetensors"));
    let mut bert = Bert::<B>::load(&fixture("tiny_bert")).expect("tiny BERT loads");
    for name in HEAD_NAMES {
        let g = &golden[&format!("init.{name}")];
        bert.params.push(name, &g.shape, g.data.clone());
    }
    let heads = HeadIds::find(&bert.params).expect("heads present");
    let d = bert.config.hidden_size;

    let ids: Vec<u32> = golden["batch.input_ids"].data.iter().map(|&v| v as u32).collect();
    let starts = ints(&golden["batch.starts"]);
    let batch = PackedBatch { ids, starts: starts.clone() };
    let (hm, tm) = (ints(&golden["batch.head_marker"]), ints(&golden["batch.tail_marker"]));
    let (hs, ts) = (ints(&golden["batch.head_span"]), ints(&golden["batch.tail_span"]));
    let rows = (0..batch.len())
        .map(|i| {
            let s = starts[i];
            EntityRows { head: s + hs[2 * i]..s + hs[2 * i + 1], tail: s + ts[2 * i]..s + ts[2 * i + 1], head_marker: s + hm[i], tail_marker: s + tm[i] }
        })
        .collect();
    let (ctx, head, tail) = (&golden["relations.ctx"].data, &golden["relations.head"].data, &golden["relations.tail"].data);
    let descriptions: Vec<f32> =
        (0..ctx.len() / d).flat_map(|r| [&ctx[r * d..(r + 1) * d], &head[r * d..(r + 1) * d], &tail[r * d..(r + 1) * d]].concat()).collect();
    let descriptions = B::from_host(&descriptions);
    let relation = golden["batch.relation"].data.iter().map(|&v| v as u32).collect();
    let negatives = golden["batch.neg_relation_mask"].data.iter().map(|&v| v != 0.0).collect();
    let train_label = golden["batch.train_label"].data.iter().map(|&v| v as u32).collect();
    Case { golden, bert, heads, batch, rows, descriptions, relation, negatives, train_label }
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn check(what: &str, got: &[f32], want: &Golden, atol: f32) {
    let diff = max_diff(got, &want.data);
    assert!(diff <= atol, "{what}: max |Δ| = {diff:e} > {atol:e}");
}

impl<B: Backend> Case<B> {
    fn targets(&self) -> Targets<'_, B> {
        Targets {
            starts: &self.batch.starts,
            rows: &self.rows,
            descriptions: &self.descriptions,
            relation: &self.relation,
            negatives: &self.negatives,
            train_label: &self.train_label,
        }
    }

    /// Forward, backward: losses, hidden layer, scores, `d hidden` (on the host), all gradients.
    fn step(&self) -> (Losses, Vec<f32>, Vec<f32>, Vec<f32>, Grads<B>) {
        let settings = ObjectiveSettings::default();
        let cache = self.bert.forward_train(&self.batch, Dropout::OFF);
        let targets = self.targets();
        let (losses, head_cache) = self.heads.forward(&self.bert.params, cache.hidden(), &targets, &settings);
        let mut grads = self.bert.params.zero_grads();
        let mut d_hidden = B::zeros(B::len(cache.hidden()));
        self.heads.backward(&self.bert.params, cache.hidden(), &targets, &settings, &head_cache, &mut grads, &mut d_hidden, None);
        self.bert.backward(&self.batch, &cache, &d_hidden, Dropout::OFF, &mut grads);
        B::sync().unwrap();
        let host = |x: &B::Mem| B::to_host(x).unwrap();
        (losses, host(cache.hidden()), host(&head_cache.scores), host(&d_hidden), grads)
    }
}

#[test]
fn one_step_matches_the_pytorch_oracle() {
    one_step_matches_the_pytorch_oracle_on::<Cpu>();
}

/// The same step through the CUDA backend: forward, backward and AdamW on the device.
#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
#[test]
fn one_step_matches_the_pytorch_oracle_on_cuda() {
    if common::cuda_device() {
        one_step_matches_the_pytorch_oracle_on::<rmx::backend::cuda::Cuda>();
    }
}

fn one_step_matches_the_pytorch_oracle_on<B: Backend>() {
    let case = load_case::<B>();
    let g = &case.golden;
    let (losses, hidden, scores, d_hidden, grads) = case.step();
    check("fwd.hidden", &hidden, &g["fwd.hidden"], 1e-4);
    check("fwd.scores", &scores, &g["fwd.scores"], 1e-5);
    check("loss.matching", &[losses.matching], &g["loss.matching"], 1e-5);
    check("loss.adversarial", &[losses.adversarial], &g["loss.adversarial"], 1e-5);
    check("loss.total", &[losses.total()], &g["loss.total"], 1e-5);
    check("grad_act.hidden", &d_hidden, &g["grad_act.hidden"], 1e-6);

    let mut checked = 0;
    for id in 0..case.bert.params.len() {
        let name = case.bert.params.name(id);
        let want = g.get(&format!("grad.{name}")).unwrap_or_else(|| panic!("no golden gradient for {name}"));
        assert_eq!(case.bert.params.shape(id), &want.shape[..], "{name}: shape");
        let atol = if name.ends_with("attention.self.key.bias") { 1e-6 } else { 1e-5 };
        check(&format!("grad.{name}"), &B::to_host(grads.get(id)).unwrap(), want, atol);
        checked += 1;
    }
    assert_eq!(checked, 37 + 7, "every encoder tensor and every head");
    // The test can fail: a gradient with one wrong sign would be far outside the tolerance.
    let largest = grads.0.iter().flat_map(|g| B::to_host(g).unwrap()).fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(largest > 0.1, "gradients are not trivially small ({largest})");
}

#[test]
fn five_adamw_steps_follow_the_oracle_trajectory() {
    five_adamw_steps_follow_the_oracle_trajectory_on::<Cpu>();
}

fn five_adamw_steps_follow_the_oracle_trajectory_on<B: Backend>() {
    let mut case = load_case::<B>();
    let lrs = case.golden["traj.lr"].data.clone();
    let mut opt = AdamW::new(&case.bert.params, AdamWSettings::default());
    let (warmup, total) = (1.0, 10);
    for (k, &want_lr) in lrs.iter().enumerate() {
        let (losses, _, _, _, grads) = case.step();
        check(&format!("traj.loss.matching[{k}]"), &[losses.matching], &single(&case.golden["traj.loss.matching"], k), 2e-5);
        check(&format!("traj.loss.adversarial[{k}]"), &[losses.adversarial], &single(&case.golden["traj.loss.adversarial"], k), 2e-5);
        let lr = 1e-3 * linear_schedule(opt.steps(), warmup, total);
        assert!((lr as f32 - want_lr).abs() < 1e-9, "lr of step {}: {lr} vs {want_lr}", k + 1);
        opt.step(&mut case.bert.params, &grads, lr);
    }
    let (losses, ..) = case.step();
    let n = lrs.len();
    check("traj.loss.total[5]", &[losses.total()], &single(&case.golden["traj.loss.total"], n), 2e-5);
    for id in 0..case.bert.params.len() {
        let name = case.bert.params.name(id);
        let atol = if name.ends_with("attention.self.key.bias") { 3.4e-3 } else { 2e-5 };
        check(&format!("final.{name}"), &B::to_host(case.bert.params.get(id)).unwrap(), &case.golden[&format!("final.{name}")], atol);
    }
}

fn single(g: &Golden, k: usize) -> Golden {
    Golden { shape: vec![], data: vec![g.data[k]] }
}
