//! One AdamW step on the device (`kernels/adamw.cu`) on one parameter tensor, with the step's
//! scalars as the trainer computes them (`backend::AdamWStep`, the seam's vocabulary).
use super::launch::{CudaError, DevSlice, DevSliceMut, Gpu, KernelArgs, LaunchConfig, ELEMENTWISE_BLOCK};
use crate::backend::AdamWStep;

/// `param, m, v` updated in place from `grad` (all `[n]`).
pub fn adamw_step<D: Gpu + ?Sized>(
    dev: &D,
    mut param: DevSliceMut<'_, f32>,
    mut m: DevSliceMut<'_, f32>,
    mut v: DevSliceMut<'_, f32>,
    grad: DevSlice<'_, f32>,
    step: AdamWStep,
) -> Result<(), CudaError> {
    let n = param.len();
    assert!(m.len() == n && v.len() == n && grad.len() == n, "adamw: parameter, moments and gradient differ in length");
    if n == 0 {
        return Ok(());
    }
    let args = KernelArgs::new()
        .output(&mut param)
        .output(&mut m)
        .output(&mut v)
        .input(grad)
        .u64(n as u64)
        .f32(step.beta1)
        .f32(step.beta2)
        .f32(step.eps)
        .f32(step.decay)
        .f32(step.step_size)
        .f32(step.bias2_sqrt);
    dev.launch("adamw_step", LaunchConfig::elementwise(n, ELEMENTWISE_BLOCK), args)
}

#[cfg(test)]
mod tests {
    use super::super::testing::assert_near;
    use super::super::testing::bench;
    use super::*;
    use crate::model::params::ParamSet;
    use crate::testutil::Rng;
    use crate::train::adamw::{AdamW, AdamWSettings};

    /// The step's scalars as the trainer computes them (train/adamw.rs).
    fn adam_step(s: &AdamWSettings, lr: f64, step: u64) -> AdamWStep {
        let k = step as i32;
        AdamWStep {
            decay: (1.0 - lr * s.weight_decay) as f32,
            step_size: (lr / (1.0 - s.beta1.powi(k))) as f32,
            beta1: s.beta1 as f32,
            beta2: s.beta2 as f32,
            bias2_sqrt: (1.0 - s.beta2.powi(k)).sqrt() as f32,
            eps: s.eps as f32,
        }
    }

    #[test]
    fn three_steps_match_the_cpu_optimizer() {
        let Some(on) = bench() else { return };
        let n = 1000;
        let mut rng = Rng::new(5);
        let mut params = ParamSet::<crate::backend::cpu::Cpu>::default();
        params.push("w", &[n], rng.normals(n, 1.0));
        let settings = AdamWSettings::default();
        let mut cpu = AdamW::new(&params, settings);
        let mut grads = params.zero_grads();
        let (mut p, mut m, mut v) = (params.get(0).to_vec(), vec![0.0f32; n], vec![0.0f32; n]);
        for (step, lr) in [(1u64, 0.0), (2, 1e-2), (3, 5e-3)] {
            grads.get_mut(0).copy_from_slice(&rng.normals(n, 0.1));
            cpu.step(&mut params, &grads, lr);
            adamw_step(
                on.dev(),
                on.output(&mut p).slice(),
                on.output(&mut m).slice(),
                on.output(&mut v).slice(),
                on.input(grads.get(0)),
                adam_step(&settings, lr, step),
            )
            .unwrap();
            assert_near(&format!("step {step}"), &p, params.get(0), 1e-6, 1e-7);
        }
    }
}
