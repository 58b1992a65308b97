//! The CUDA backend's context: the process's one device, reached under a lock, and each
//! thread's sticky error (why per thread: `device`'s module doc). Ops run through [`run`] /
//! [`run_value`], which skip once the thread has an error and record a failure as it.
use super::launch::{CudaError, DeviceBuffer, Gpu};
use super::memory::DevBuf;
use crate::error::{Error, Result};
use std::cell::RefCell;
use std::sync::{Mutex, OnceLock, PoisonError};

/// The process's device, once [`open`] has opened it.
static DEVICE: OnceLock<Mutex<Box<dyn Gpu + Send>>> = OnceLock::new();

thread_local! {
    /// This thread's first device error since its last `sync` (see the module's doc).
    static FIRST_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

#[cfg(all(feature = "cuda-emu", not(feature = "cuda")))]
fn open_gpu() -> Result<Box<dyn Gpu + Send>, CudaError> {
    Ok(Box::new(super::emu::EmuDevice))
}

#[cfg(all(feature = "cuda", not(feature = "cuda-emu")))]
fn open_gpu() -> Result<Box<dyn Gpu + Send>, CudaError> {
    Ok(Box::new(super::runtime::CudaDevice::open(0)?))
}

#[cfg(all(feature = "cuda", feature = "cuda-emu"))]
fn open_gpu() -> Result<Box<dyn Gpu + Send>, CudaError> {
    match std::env::var("RMX_TEST_DEVICE").is_ok_and(|v| v == "cuda") {
        true => Ok(Box::new(super::runtime::CudaDevice::open(0)?)),
        false => Ok(Box::new(super::emu::EmuDevice)),
    }
}

/// Opens the process's device unless it is open (see `device`'s module doc for which).
pub(super) fn open() -> Result<()> {
    static OPENING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = OPENING.lock().unwrap_or_else(PoisonError::into_inner);
    if DEVICE.get().is_none() {
        let gpu = open_gpu().map_err(|e| Error::Device(e.to_string()))?;
        let _ = DEVICE.set(Mutex::new(gpu));
    }
    Ok(())
}

/// Keeps `error` as this thread's sticky error unless it has one already.
fn record(error: String) {
    FIRST_ERROR.with(|first| {
        first.borrow_mut().get_or_insert(error);
    });
}

/// This thread's sticky error, handed over (and cleared).
pub(super) fn take_error() -> Result<()> {
    match FIRST_ERROR.with(|first| first.borrow_mut().take()) {
        Some(e) => Err(Error::Device(e)),
        None => Ok(()),
    }
}

/// This thread's sticky error if it has one, else a wait for the device (which reports what
/// its queued work met); nothing to wait for before a device is open.
pub(super) fn sync() -> Result<()> {
    take_error()?;
    match DEVICE.get() {
        Some(_) => with_gpu(|gpu| gpu.synchronize()).map_err(Error::Device),
        None => Ok(()),
    }
}

fn has_error() -> bool {
    FIRST_ERROR.with(|first| first.borrow().is_some())
}

/// `f` on the device, under its lock; an error if no device is open.
pub(super) fn with_gpu<R>(f: impl FnOnce(&dyn Gpu) -> Result<R, CudaError>) -> Result<R, String> {
    let device = DEVICE.get().ok_or_else(|| "no CUDA device opened (Cuda::open was not called or failed)".to_string())?;
    // A panic under the lock (a launcher's shape assertion) leaves the device usable.
    let gpu = device.lock().unwrap_or_else(PoisonError::into_inner);
    f(&**gpu).map_err(|e| e.to_string())
}

/// Runs the op `f` unless this thread has a sticky error; a failure becomes it.
pub(super) fn run(f: impl FnOnce(&dyn Gpu) -> Result<(), CudaError>) {
    run_value((), f)
}

/// As [`run`] for an op with a result: `otherwise` when skipped or failed.
pub(super) fn run_value<R>(otherwise: R, f: impl FnOnce(&dyn Gpu) -> Result<R, CudaError>) -> R {
    if has_error() {
        return otherwise;
    }
    with_gpu(f).unwrap_or_else(|e| {
        record(e);
        otherwise
    })
}

/// A buffer of `len` f32s from `allocate`; when that fails, a placeholder every op refuses,
/// and the failure as this thread's sticky error.
pub(super) fn buffer(len: usize, allocate: impl FnOnce(&dyn Gpu) -> Result<DeviceBuffer<f32>, CudaError>) -> DevBuf {
    with_gpu(allocate).map(DevBuf::allocated).unwrap_or_else(|e| {
        record(e);
        DevBuf::failed(len)
    })
}
