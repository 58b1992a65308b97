//! Helpers of the kernel tests, which run on the emulator or, with `RMX_TEST_DEVICE=cuda`, on
//! a GPU: inputs are uploaded, outputs uploaded and copied back, so a test reads the same on
//! both.
use super::launch::{download, upload, DevSlice, DevSliceMut, DeviceBuffer, Download, Gpu, Upload};
use std::any::Any;
use std::cell::RefCell;

/// Asserts `|got − want| ≤ abs + rel·|want|` element by element (both finite).
pub fn assert_near(what: &str, got: &[f32], want: &[f32], rel: f32, abs: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_finite() && (g - w).abs() <= abs + rel * w.abs(), "{what}[{i}]: device {g}, cpu {w}");
    }
}

pub use crate::backend::conformance::RAGGED;

/// Host starts as the `u32` values a device holds.
pub fn starts_u32(starts: &[usize]) -> Vec<u32> {
    starts.iter().map(|&s| s as u32).collect()
}

/// The device a kernel test runs on, and the device copies of its buffers.
pub struct Bench {
    dev: Box<dyn Gpu>,
    kept: RefCell<Vec<Box<dyn Any>>>,
}

/// The emulator, or GPU 0 with `RMX_TEST_DEVICE=cuda` (feature `cuda`; a GPU that cannot be
/// opened then fails the test). A build without the emulator tests on GPU 0 when there is one
/// and skips (None, with the reason printed) when not.
pub fn bench() -> Option<Bench> {
    let want_gpu = std::env::var("RMX_TEST_DEVICE").is_ok_and(|v| v == "cuda");
    let dev: Box<dyn Gpu> = if want_gpu || cfg!(not(feature = "cuda-emu")) {
        #[cfg(feature = "cuda")]
        match super::runtime::CudaDevice::open(0) {
            Ok(gpu) => Box::new(gpu),
            Err(e) if want_gpu => panic!("RMX_TEST_DEVICE=cuda: {e}"),
            Err(e) => {
                println!("skipped: {e}");
                return None;
            }
        }
        #[cfg(not(feature = "cuda"))]
        panic!("RMX_TEST_DEVICE=cuda in a build without feature cuda");
    } else {
        #[cfg(feature = "cuda-emu")]
        {
            Box::new(super::emu::EmuDevice)
        }
        #[cfg(not(feature = "cuda-emu"))]
        unreachable!()
    };
    Some(Bench { dev, kept: RefCell::new(Vec::new()) })
}

impl Bench {
    pub fn dev(&self) -> &dyn Gpu {
        &*self.dev
    }

    /// A device copy of `x`, kept as long as the bench.
    pub fn input<T: Upload>(&self, x: &[T]) -> DevSlice<'_, T> {
        let buffer = upload(self.dev(), x).expect("upload");
        let (addr, len) = (buffer.slice().addr(), buffer.len());
        self.kept.borrow_mut().push(Box::new(buffer));
        // SAFETY: the buffer lives in `kept` until the bench drops, and is only read.
        unsafe { DevSlice::from_raw(addr, len) }
    }

    /// A device copy of `host` that is copied back into it when the returned value drops (at
    /// the end of the statement that launches into it).
    pub fn output<'h, T: Download>(&self, host: &'h mut [T]) -> Staged<'_, 'h, T> {
        let buffer = upload(self.dev(), host).expect("upload");
        Staged { bench: self, host, buffer }
    }
}

/// See [`Bench::output`].
pub struct Staged<'b, 'h, T: Download> {
    bench: &'b Bench,
    host: &'h mut [T],
    buffer: DeviceBuffer<T>,
}

impl<T: Download> Staged<'_, '_, T> {
    pub fn slice(&mut self) -> DevSliceMut<'_, T> {
        self.buffer.slice_mut()
    }
}

impl<T: Download> Drop for Staged<'_, '_, T> {
    fn drop(&mut self) {
        download(self.bench.dev(), self.buffer.slice(), self.host).expect("download");
    }
}
