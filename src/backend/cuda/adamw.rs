//! One AdamW step on the device (`kernels/adamw.cu`), as `train::adamw::AdamW::step` applies
//! it to one parameter tensor: the step's scalars are computed here in f64, as there.
use super::launch::{CudaError, DevSlice, DevSliceMut, Device, KernelArgs, LaunchConfig, ELEMENTWISE_BLOCK};

/// AdamW's hyper-parameters (the trainer's `AdamWSettings`, which ops do not depend on).
#[derive(Debug, Clone, Copy)]
pub struct AdamWHyper {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

/// Step `step` (1, 2, …) at learning rate `lr` (already scaled for this parameter) on
/// `param, m, v, grad: [n]`.
#[allow(clippy::too_many_arguments)]
pub fn adamw_step<D: Device + ?Sized>(
    dev: &D,
    mut param: DevSliceMut<'_, f32>,
    mut m: DevSliceMut<'_, f32>,
    mut v: DevSliceMut<'_, f32>,
    grad: DevSlice<'_, f32>,
    settings: &AdamWHyper,
    lr: f64,
    step: u64,
) -> Result<(), CudaError> {
    let n = param.len();
    assert!(m.len() == n && v.len() == n && grad.len() == n, "adamw: parameter, moments and gradient differ in length");
    assert!(step >= 1, "adamw: steps count from 1");
    if n == 0 {
        return Ok(());
    }
    let k = i32::try_from(step).unwrap_or(i32::MAX);
    let s = settings;
    let decay = (1.0 - lr * s.weight_decay) as f32;
    let step_size = (lr / (1.0 - s.beta1.powi(k))) as f32;
    let bias2_sqrt = (1.0 - s.beta2.powi(k)).sqrt() as f32;
    let args = KernelArgs::new()
        .output(&mut param)
        .output(&mut m)
        .output(&mut v)
        .input(grad)
        .u64(n as u64)
        .f32(s.beta1 as f32)
        .f32(s.beta2 as f32)
        .f32(s.eps as f32)
        .f32(decay)
        .f32(step_size)
        .f32(bias2_sqrt);
    dev.launch("adamw_step", LaunchConfig::elementwise(n, ELEMENTWISE_BLOCK), args)
}

#[cfg(test)]
mod tests {
    use super::super::testing::assert_near;
    use super::super::testing::bench;
    use super::*;
    use crate::testutil::Rng;
    use crate::train::adamw::{AdamW, AdamWSettings};
    use crate::train::params::ParamSet;

    #[test]
    fn three_steps_match_the_cpu_optimizer() {
        let Some(on) = bench() else { return };
        let n = 1000;
        let mut rng = Rng::new(5);
        let mut params = ParamSet::default();
        params.push("w", &[n], rng.normals(n, 1.0));
        let settings = AdamWSettings::default();
        let mut cpu = AdamW::new(&params, settings);
        let hyper = AdamWHyper { beta1: settings.beta1, beta2: settings.beta2, eps: settings.eps, weight_decay: settings.weight_decay };
        let mut grads = params.zero_grads();
        let (mut p, mut m, mut v) = (params.values[0].clone(), vec![0.0f32; n], vec![0.0f32; n]);
        for (step, lr) in [(1u64, 0.0), (2, 1e-2), (3, 5e-3)] {
            grads.0[0] = rng.normals(n, 0.1);
            cpu.step(&mut params, &grads, lr);
            adamw_step(on.dev(), on.output(&mut p).slice(), on.output(&mut m).slice(), on.output(&mut v).slice(), on.input(&grads.0[0]), &hyper, lr, step)
                .unwrap();
            assert_near(&format!("step {step}"), &p, &params.values[0], 1e-6, 1e-7);
        }
    }
}
