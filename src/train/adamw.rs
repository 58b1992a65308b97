//! AdamW (decoupled weight decay, Loshchilov & Hutter) as `torch.optim.AdamW` applies it, and
//! the linear warmup / linear decay schedule of `transformers.get_linear_schedule_with_warmup`.
//!
//! Per parameter, step `k = 1, 2, …`:
//! `p ← p·(1 − lr·wd)`; `m ← β1 m + (1−β1) g`; `v ← β2 v + (1−β2) g²`;
//! `p ← p − (lr / (1−β1^k)) · m / (√v / √(1−β2^k) + eps)`.
//! Every parameter is decayed (biases and LayerNorm included), as the reference does.
use crate::backend::{AdamWStep, Backend};
use crate::model::params::{Grads, ParamId, ParamSet};

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct AdamWSettings {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWSettings {
    fn default() -> Self {
        AdamWSettings { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
    }
}

pub struct AdamW<B: Backend> {
    settings: AdamWSettings,
    /// Per-parameter multiplier of the learning rate (1 unless set).
    lr_scale: Vec<f64>,
    /// First and second moments, laid out like the parameters, on the device.
    m: Vec<B::Buf>,
    v: Vec<B::Buf>,
    steps: u64,
}

impl<B: Backend> AdamW<B> {
    pub fn new(params: &ParamSet<B>, settings: AdamWSettings) -> AdamW<B> {
        let zeros = || (0..params.len()).map(|id| B::zeros(params.numel_of(id))).collect();
        AdamW { settings, lr_scale: vec![1.0; params.len()], m: zeros(), v: zeros(), steps: 0 }
    }

    /// Parameter `id` learns at `scale ×` the scheduled learning rate (e.g. freshly
    /// initialised heads on a pretrained encoder).
    pub fn set_lr_scale(&mut self, id: ParamId, scale: f64) {
        self.lr_scale[id] = scale;
    }

    /// Optimizer steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// One step at learning rate `lr` (a step at lr 0 still advances the moments and the
    /// step count, as in torch).
    pub fn step(&mut self, params: &mut ParamSet<B>, grads: &Grads<B>, lr: f64) {
        self.steps += 1;
        let s = self.settings;
        let k = self.steps as i32;
        let bias2_sqrt = (1.0 - s.beta2.powi(k)).sqrt() as f32;
        let (b1, b2, eps) = (s.beta1 as f32, s.beta2 as f32, s.eps as f32);
        for (id, ((m, v), &scale)) in self.m.iter_mut().zip(&mut self.v).zip(&self.lr_scale).enumerate() {
            let lr = lr * scale;
            let decay = (1.0 - lr * s.weight_decay) as f32;
            let step_size = (lr / (1.0 - s.beta1.powi(k))) as f32;
            B::adamw_step(params.get_mut(id), grads.get(id), m, v, AdamWStep { decay, step_size, beta1: b1, beta2: b2, bias2_sqrt, eps });
        }
    }
}

/// Linear warmup over `warmup` steps (a float, as the reference computes it: 10 % of the
/// total), then linear decay to 0 at `total`: the multiplier of the base learning rate after
/// `k` optimizer steps (the first step uses `k = 0`, i.e. multiplier 0).
pub fn linear_schedule(k: u64, warmup: f64, total: u64) -> f64 {
    let k = k as f64;
    if k < warmup {
        k / warmup.max(1.0)
    } else {
        ((total as f64 - k) / (total as f64 - warmup).max(1.0)).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;

    #[test]
    fn schedule_matches_the_reference_formula() {
        // warmup 1.0 of 10 steps: 0, 1, 8/9, 7/9, …, 0
        let want = [0.0, 1.0, 8.0 / 9.0, 7.0 / 9.0, 6.0 / 9.0];
        for (k, w) in want.iter().enumerate() {
            assert!((linear_schedule(k as u64, 1.0, 10) - w).abs() < 1e-15);
        }
        assert_eq!(linear_schedule(10, 1.0, 10), 0.0);
        assert_eq!(linear_schedule(12, 1.0, 10), 0.0, "steps past the end run at lr 0");
        // a float warmup: 153.1 steps
        assert!((linear_schedule(100, 153.1, 1531) - 100.0 / 153.1).abs() < 1e-15);
        assert!((linear_schedule(154, 153.1, 1531) - (1531.0 - 154.0) / (1531.0 - 153.1)).abs() < 1e-15);
    }

    #[test]
    fn adamw_matches_the_written_out_update_in_f64() {
        let mut params = ParamSet::<Cpu>::default();
        params.push("w", &[3], vec![0.5, -1.0, 2.0]);
        params.push("b", &[1], vec![0.25]);
        let mut grads = params.zero_grads();
        let settings = AdamWSettings::default();
        let mut opt = AdamW::new(&params, settings);
        let (mut p64, mut m64, mut v64) = (vec![0.5f64, -1.0, 2.0, 0.25], vec![0.0f64; 4], vec![0.0f64; 4]);
        let gs = [[0.1, -0.2, 0.0, 0.3], [0.05, 0.4, 0.0, -0.1], [-0.3, 0.1, 0.0, 0.2]];
        for (step, (g, lr)) in gs.iter().zip([0.0, 1e-2, 5e-3]).enumerate() {
            grads.0[0].copy_from_slice(&[g[0] as f32, g[1] as f32, g[2] as f32]);
            grads.0[1].copy_from_slice(&[g[3] as f32]);
            opt.step(&mut params, &grads, lr);
            let k = step as i32 + 1;
            for i in 0..4 {
                p64[i] *= 1.0 - lr * settings.weight_decay;
                m64[i] = 0.9 * m64[i] + 0.1 * g[i];
                v64[i] = 0.999 * v64[i] + 0.001 * g[i] * g[i];
                p64[i] -= lr / (1.0 - 0.9f64.powi(k)) * m64[i] / (v64[i].sqrt() / (1.0 - 0.999f64.powi(k)).sqrt() + 1e-8);
            }
            let got: Vec<f32> = (0..params.len()).flat_map(|i| params.get(i).to_vec()).collect();
            for (g, w) in got.iter().zip(&p64) {
                assert!((*g as f64 - w).abs() < 1e-6, "step {k}: {g} vs {w}");
            }
        }
        assert_eq!(opt.steps(), 3);
        // A scaled parameter moves by exactly the scaled learning rate's update.
        let mut one = ParamSet::<Cpu>::default();
        one.push("a", &[1], vec![1.0]);
        one.push("b", &[1], vec![1.0]);
        let mut g = one.zero_grads();
        g.0[0][0] = 0.5;
        g.0[1][0] = 0.5;
        let mut opt = AdamW::new(&one, AdamWSettings { weight_decay: 0.0, ..settings });
        opt.set_lr_scale(1, 10.0);
        opt.step(&mut one, &g, 1e-3);
        assert!(((1.0 - one.get(1)[0]) / (1.0 - one.get(0)[0]) - 10.0).abs() < 1e-3);
        // The zero-gradient parameter was still decayed and moved by its momentum.
        assert!(params.get(0)[2] != 2.0);
    }
}
