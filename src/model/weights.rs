//! Tensors of a `model.safetensors` file, memory-mapped and used in place.
//!
//! f32 tensors whose data is 4-byte aligned in the file (all of them in the default model)
//! are borrowed straight from the mapping; f16/bf16 tensors and misaligned f32 tensors are
//! converted into owned f32 buffers once, at load.
pub use crate::backend::tensor::Tensor;
use crate::error::{Error, Result};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The tensors of one safetensors file, by name.
pub struct WeightFile {
    path: PathBuf,
    tensors: HashMap<String, Tensor>,
}

impl WeightFile {
    pub fn open(path: &Path) -> Result<WeightFile> {
        if cfg!(target_endian = "big") {
            return Err(Error::model(path, "safetensors are little-endian; big-endian hosts are not supported"));
        }
        let map = Arc::new(map_read_only(path)?);
        let parsed = SafeTensors::deserialize(&map).map_err(|e| Error::model(path, format!("invalid safetensors: {e}")))?;
        let base = map.as_ptr() as usize;
        let mut tensors = HashMap::new();
        for (name, view) in parsed.tensors() {
            let shape = view.shape().to_vec();
            let bytes = view.data();
            let len = shape.iter().product::<usize>();
            let tensor = match view.dtype() {
                Dtype::F32 if (bytes.as_ptr() as usize).is_multiple_of(4) => Tensor::mapped(Arc::clone(&map), bytes.as_ptr() as usize - base, len, shape),
                Dtype::F32 => Tensor::from_vec(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(), shape),
                Dtype::F16 => Tensor::from_vec(bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(), shape),
                Dtype::BF16 => Tensor::from_vec(bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(), shape),
                // Integer buffers (e.g. `position_ids`) are not parameters: skip them.
                _ => continue,
            };
            tensors.insert(name.to_string(), tensor);
        }
        Ok(WeightFile { path: path.to_path_buf(), tensors })
    }

    /// The tensor `name` (with or without a `bert.` prefix in the file), checked to have `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let tensor = self
            .tensors
            .get(name)
            .or_else(|| self.tensors.get(&format!("bert.{name}")))
            .ok_or_else(|| Error::model(&self.path, format!("missing tensor {name}")))?;
        if tensor.shape() != shape {
            return Err(Error::model(&self.path, format!("tensor {name} has shape {:?}, expected {shape:?}", tensor.shape())));
        }
        Ok(tensor.clone())
    }

    /// Whether the file holds `name` (with or without the `bert.` prefix).
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name) || self.tensors.contains_key(&format!("bert.{name}"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `path` mapped read-only: a model or checkpoint file (weights, safetensors to average).
pub fn map_read_only(path: &Path) -> Result<Mmap> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: the file is mapped read-only; rmx never writes to a file it maps. Like every
    // mmap user, we rely on the file not being truncated by another process while it is mapped.
    unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))
}
