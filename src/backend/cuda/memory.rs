//! The CUDA backend's memory as the [`Backend`](crate::backend::Backend) trait hands it
//! around: [`DevMem`], an unsized run of device f32s whose references carry (device address,
//! length) and are never read on the host; [`DevBuf`], an owned allocation; [`DevParam`], a
//! shared, copy-on-write parameter.
//!
//! `DevMem` is a slice of a zero-sized private type: a `&[Lane]` of any non-null address and
//! any length is a valid reference (it spans zero bytes), so `&DevMem` and `&mut DevMem` can be
//! made from a device address, sliced by address arithmetic (4 bytes per f32), and Rust's
//! borrow rules (`&mut` exclusive, `split_at_mut` disjoint) then stand for the device memory's.
use super::launch::{CudaError, DevSlice, DevSliceMut, DeviceBuffer};
use std::ops::Range;
use std::sync::Arc;

/// One f32 of device memory, as the host sees it: nothing.
#[derive(Debug)]
struct Lane;

/// A run of f32 values in device memory (the backend's `Mem`): never dereferenced on the host.
#[repr(transparent)]
#[derive(Debug)]
pub struct DevMem([Lane]);

/// Where buffers live whose allocation failed: above every host and device address (both
/// stay below 2⁵⁷ on the platforms CUDA runs on), so a view of one is recognised by its
/// address and refused by every op ([`DevMem::device`]) instead of being launched on.
const FAILED_BASE: u64 = 1 << 63;

impl DevMem {
    /// The view of `len` f32s at device address `addr` (no allocation is checked: callers
    /// pass an allocation's address, or a [`FAILED_BASE`] one).
    fn at<'a>(addr: u64, len: usize) -> &'a DevMem {
        let lanes = std::ptr::slice_from_raw_parts(addr.max(1) as usize as *const Lane, len);
        // SAFETY: `Lane` is zero-sized with alignment 1, so a slice of it at any non-null
        // address (made non-null above) spans no bytes and is a valid reference for any
        // lifetime; `DevMem` is `repr(transparent)` over `[Lane]`.
        unsafe { &*(lanes as *const DevMem) }
    }

    /// As [`DevMem::at`], exclusively: callers hand out one `&mut` per device range.
    #[allow(clippy::mut_from_ref)]
    fn at_mut<'a>(addr: u64, len: usize) -> &'a mut DevMem {
        let lanes = std::ptr::slice_from_raw_parts_mut(addr.max(1) as usize as *mut Lane, len);
        // SAFETY: as `at`: zero bytes are reached, so no two references can overlap in memory.
        unsafe { &mut *(lanes as *mut DevMem) }
    }

    /// The device address of the first value.
    pub fn addr(&self) -> u64 {
        self.0.as_ptr() as usize as u64
    }

    /// The number of f32 values.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Values `range`.
    pub fn slice(&self, range: Range<usize>) -> &DevMem {
        check_range(&range, self.len());
        DevMem::at(offset(self.addr(), range.start), range.len())
    }

    pub fn slice_mut(&mut self, range: Range<usize>) -> &mut DevMem {
        check_range(&range, self.len());
        DevMem::at_mut(offset(self.addr(), range.start), range.len())
    }

    /// `self[..mid]` and `self[mid..]`.
    pub fn split_at_mut(&mut self, mid: usize) -> (&mut DevMem, &mut DevMem) {
        assert!(mid <= self.len(), "device memory split at {mid} past its length {}", self.len());
        let (addr, len) = (self.addr(), self.len());
        (DevMem::at_mut(addr, mid), DevMem::at_mut(offset(addr, mid), len - mid))
    }

    fn failed(&self) -> Result<(), CudaError> {
        match self.addr() >= FAILED_BASE {
            true => Err(CudaError::Memory("a buffer whose allocation failed was used".into())),
            false => Ok(()),
        }
    }

    /// The launchers' view of this memory; an error for a buffer whose allocation failed.
    pub fn device(&self) -> Result<DevSlice<'_, f32>, CudaError> {
        self.failed()?;
        // SAFETY: the range is (part of) a live `DevBuf`'s allocation, borrowed for the view's
        // lifetime (a `DevMem` is only made from a `DevBuf` or a slice of one).
        Ok(unsafe { DevSlice::from_raw(self.addr(), self.len()) })
    }

    /// The launchers' writable view of this memory; an error for a failed buffer.
    pub fn device_mut(&mut self) -> Result<DevSliceMut<'_, f32>, CudaError> {
        self.failed()?;
        // SAFETY: as `device`, and borrowed exclusively.
        Ok(unsafe { DevSliceMut::from_raw(self.addr(), self.len()) })
    }
}

/// The address `start` f32s after `addr`; saturating, so that a failed buffer's views stay
/// in the failed range however long it claims to be (a real buffer's offsets never saturate).
fn offset(addr: u64, start: usize) -> u64 {
    addr.saturating_add((start as u64).saturating_mul(4))
}

fn check_range(range: &Range<usize>, len: usize) {
    assert!(range.start <= range.end && range.end <= len, "device memory range {range:?} out of bounds for length {len}");
}

/// An owned run of device f32s (the backend's `Buf`); dropping it frees the memory.
pub struct DevBuf {
    addr: u64,
    len: usize,
    /// `None` when the allocation failed (the address is then in the failed range).
    _buffer: Option<DeviceBuffer<f32>>,
}

impl DevBuf {
    pub fn allocated(buffer: DeviceBuffer<f32>) -> DevBuf {
        DevBuf { addr: buffer.slice().addr(), len: buffer.len(), _buffer: Some(buffer) }
    }

    /// A placeholder of `len` values for an allocation that failed: every op refuses it.
    pub fn failed(len: usize) -> DevBuf {
        DevBuf { addr: FAILED_BASE, len, _buffer: None }
    }
}

impl std::ops::Deref for DevBuf {
    type Target = DevMem;

    fn deref(&self) -> &DevMem {
        DevMem::at(self.addr, self.len)
    }
}

impl std::ops::DerefMut for DevBuf {
    fn deref_mut(&mut self) -> &mut DevMem {
        DevMem::at_mut(self.addr, self.len)
    }
}

/// A parameter resident on the device (the backend's `Param`): clones share the values until
/// one of them is written (`Cuda::param_mut` copies a shared one first).
pub type DevParam = Arc<DevBuf>;
