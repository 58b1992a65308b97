//! Tensors of a `model.safetensors` file, memory-mapped and used in place.
//!
//! f32 tensors whose data is 4-byte aligned in the file (all of them in the default model)
//! are borrowed straight from the mapping; f16/bf16 tensors and misaligned f32 tensors are
//! converted into owned f32 buffers once, at load.
use crate::error::{Error, Result};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A dense f32 tensor, either a view into a mapped file or an owned buffer.
#[derive(Clone)]
pub struct Tensor {
    data: TensorData,
    shape: Vec<usize>,
}

#[derive(Clone)]
enum TensorData {
    Mapped { map: Arc<Mmap>, offset: usize, len: usize },
    Owned(Arc<Vec<f32>>),
}

impl Tensor {
    pub fn from_vec(data: Vec<f32>, shape: Vec<usize>) -> Tensor {
        assert_eq!(data.len(), shape.iter().product::<usize>());
        Tensor { data: TensorData::Owned(Arc::new(data)), shape }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn data(&self) -> &[f32] {
        match &self.data {
            TensorData::Mapped { map, offset, len } => mapped_f32(map, *offset, *len),
            TensorData::Owned(v) => v,
        }
    }
}

/// Reinterprets `len` f32 values at byte `offset` of the mapping.
fn mapped_f32(map: &Mmap, offset: usize, len: usize) -> &[f32] {
    let bytes = &map[offset..offset + len * 4];
    assert_eq!(bytes.as_ptr() as usize % std::mem::align_of::<f32>(), 0);
    // SAFETY: `bytes` is in bounds (sliced above), 4-byte aligned (asserted; checked at load),
    // lives as long as the borrowed mapping, and every bit pattern is a valid f32. The
    // mapping is read-only. The platform is little-endian (checked at load), as safetensors is.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), len) }
}

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
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the file is mapped read-only; rmx never writes to it. Like every mmap user,
        // we rely on the file not being truncated by another process while it is mapped.
        let map = Arc::new(unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?);
        let parsed = SafeTensors::deserialize(&map).map_err(|e| Error::model(path, format!("invalid safetensors: {e}")))?;
        let base = map.as_ptr() as usize;
        let mut tensors = HashMap::new();
        for (name, view) in parsed.tensors() {
            let shape = view.shape().to_vec();
            let bytes = view.data();
            let len = shape.iter().product::<usize>();
            let data = match view.dtype() {
                Dtype::F32 if (bytes.as_ptr() as usize).is_multiple_of(4) => {
                    TensorData::Mapped { map: Arc::clone(&map), offset: bytes.as_ptr() as usize - base, len }
                }
                Dtype::F32 => TensorData::Owned(Arc::new(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())),
                Dtype::F16 => TensorData::Owned(Arc::new(bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect())),
                Dtype::BF16 => TensorData::Owned(Arc::new(bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect())),
                // Integer buffers (e.g. `position_ids`) are not parameters: skip them.
                _ => continue,
            };
            tensors.insert(name.to_string(), Tensor { data, shape });
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
        if tensor.shape != shape {
            return Err(Error::model(&self.path, format!("tensor {name} has shape {:?}, expected {shape:?}", tensor.shape)));
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
