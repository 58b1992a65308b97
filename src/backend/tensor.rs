//! Parameters in host memory, the CPU's device memory: a dense f32 tensor, either borrowed
//! from a memory-mapped weight file or owned.
use memmap2::Mmap;
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
    /// `len` f32 values at byte `offset` of a mapped little-endian file (4-byte aligned).
    pub(crate) fn mapped(map: Arc<Mmap>, offset: usize, len: usize, shape: Vec<usize>) -> Tensor {
        assert_eq!(len, shape.iter().product::<usize>());
        assert!(offset.is_multiple_of(4) && offset + 4 * len <= map.len(), "mapped tensor out of bounds or misaligned");
        Tensor { data: TensorData::Mapped { map, offset, len }, shape }
    }

    pub fn from_vec(data: Vec<f32>, shape: Vec<usize>) -> Tensor {
        assert_eq!(data.len(), shape.iter().product::<usize>());
        Tensor { data: TensorData::Owned(Arc::new(data)), shape }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The values to change in place: a tensor borrowed from a file, or shared with a clone,
    /// is copied first (so a clone never sees the change).
    pub fn data_mut(&mut self) -> &mut [f32] {
        if let TensorData::Mapped { .. } = self.data {
            self.data = TensorData::Owned(Arc::new(self.data().to_vec()));
        }
        match &mut self.data {
            TensorData::Owned(v) => Arc::make_mut(v).as_mut_slice(),
            TensorData::Mapped { .. } => unreachable!("converted above"),
        }
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
