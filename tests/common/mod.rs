//! Helpers shared by the integration tests.
#![allow(dead_code)]
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

mod temp_dir;
#[allow(unused_imports)] // not every test crate makes scratch directories
pub use temp_dir::TempDir;

/// `tests/fixtures/NAME`; `RMX_FIXTURES` names another fixtures directory (a test binary run
/// away from its source tree: `scripts/gpu-check.sh` on the GPU machine).
pub fn fixture(name: &str) -> PathBuf {
    match std::env::var_os("RMX_FIXTURES") {
        Some(dir) => PathBuf::from(dir).join(name),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name),
    }
}

/// A golden tensor from a fixture file, as f32 (integer and f64 tensors are converted).
pub struct Golden {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

pub fn load_golden(path: &Path) -> HashMap<String, Golden> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).expect("valid safetensors fixture");
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let raw = view.data();
            let data = match view.dtype() {
                Dtype::F32 => raw.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect(),
                Dtype::I64 => raw.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f32).collect(),
                Dtype::I32 => raw.chunks_exact(4).map(|b| i32::from_le_bytes(b.try_into().unwrap()) as f32).collect(),
                Dtype::F64 => raw.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32).collect(),
                other => panic!("unexpected dtype {other:?} for {name}"),
            };
            (name, Golden { shape: view.shape().to_vec(), data })
        })
        .collect()
}

/// The default model's directory, or `None` (with the reason printed) when it is absent.
pub fn default_model() -> Option<PathBuf> {
    let dir = rmx::model::location::default_model_dir();
    if dir.join("model.safetensors").is_file() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: default model not found at {} (run scripts/fetch-model.sh)", dir.display());
        None
    }
}

/// `../shared/data` beside the repository, or `None` (with the reason printed).
pub fn shared_data() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: test data not found at {}", dir.display());
        None
    }
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Opens the CUDA backend's device for a test (the emulator under `--features cuda-emu`, a
/// GPU under `cuda` or with `RMX_TEST_DEVICE=cuda`); `false`, with the reason printed, when
/// there is none, so the test skips.
#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
#[allow(dead_code)] // not every test binary runs on the CUDA backend
pub fn cuda_device() -> bool {
    match rmx::backend::cuda::Cuda::open() {
        Ok(()) => true,
        Err(e) => {
            println!("skipped: no CUDA device: {e}");
            false
        }
    }
}
