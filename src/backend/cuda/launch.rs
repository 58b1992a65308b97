//! The launch layer shared by every device that runs our kernels: device address ranges,
//! launch shapes and the `void**` argument array `cuLaunchKernel` takes. The emulator
//! (`emu`) and the CUDA runtime (`runtime`) take the very same arrays, so the launchers'
//! argument lists are what a GPU gets.
use super::blas::Gemm;
use std::any::Any;
use std::ffi::c_void;
use std::marker::PhantomData;

/// Why a device operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// No usable CUDA: no driver, no device, or kernels not built.
    #[error("CUDA is unavailable: {0}")]
    Unavailable(String),
    /// A kernel launch was refused or failed.
    #[error("kernel {kernel}: {reason}")]
    Launch { kernel: String, reason: String },
    /// A GEMM call broke cuBLAS's contract, or cuBLAS failed.
    #[error("gemm: {0}")]
    Gemm(String),
    /// Device memory could not be allocated or copied.
    #[error("device memory: {0}")]
    Memory(String),
}

/// `len` values of `T` at device address `addr`, readable for `'a`.
#[derive(Debug, Clone, Copy)]
pub struct DevSlice<'a, T> {
    addr: u64,
    len: usize,
    _borrow: PhantomData<&'a [T]>,
}

/// `len` values of `T` at device address `addr`, writable for `'a`.
#[derive(Debug)]
pub struct DevSliceMut<'a, T> {
    addr: u64,
    len: usize,
    _borrow: PhantomData<&'a mut [T]>,
}

impl<'a, T> DevSlice<'a, T> {
    /// # Safety
    /// `addr .. addr + len·size_of::<T>()` must be device memory of one allocation, holding
    /// initialised `T`s, not written through another view for `'a`.
    pub unsafe fn from_raw(addr: u64, len: usize) -> Self {
        DevSlice { addr, len, _borrow: PhantomData }
    }

    pub fn addr(&self) -> u64 {
        self.addr
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The values from `start` on.
    pub fn offset(self, start: usize) -> Self {
        assert!(start <= self.len, "device slice offset {start} past its length {}", self.len);
        DevSlice { addr: self.addr + (start * size_of::<T>()) as u64, len: self.len - start, _borrow: PhantomData }
    }
}

impl<'a, T> DevSliceMut<'a, T> {
    /// # Safety
    /// As [`DevSlice::from_raw`], and no other view of the range may exist for `'a`.
    pub unsafe fn from_raw(addr: u64, len: usize) -> Self {
        DevSliceMut { addr, len, _borrow: PhantomData }
    }

    pub fn addr(&self) -> u64 {
        self.addr
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A shorter-lived mutable view of the same range.
    pub fn reborrow(&mut self) -> DevSliceMut<'_, T> {
        DevSliceMut { addr: self.addr, len: self.len, _borrow: PhantomData }
    }

    /// A read-only view of the same range.
    pub fn as_const(&self) -> DevSlice<'_, T> {
        DevSlice { addr: self.addr, len: self.len, _borrow: PhantomData }
    }

    /// The values from `start` on.
    pub fn offset(self, start: usize) -> Self {
        assert!(start <= self.len, "device slice offset {start} past its length {}", self.len);
        DevSliceMut { addr: self.addr + (start * size_of::<T>()) as u64, len: self.len - start, _borrow: PhantomData }
    }
}

/// Device memory owned by whoever allocated it (`owner` frees it when dropped).
pub struct DeviceBuffer<T> {
    addr: u64,
    len: usize,
    _owner: Box<dyn Any + Send + Sync>,
    _values: PhantomData<T>,
}

impl<T> DeviceBuffer<T> {
    /// # Safety
    /// `addr` must address `len` initialised `T`s of device memory that stay valid, and are
    /// reached through nothing else, until `owner` is dropped.
    pub unsafe fn from_owner(addr: u64, len: usize, owner: Box<dyn Any + Send + Sync>) -> Self {
        DeviceBuffer { addr, len, _owner: owner, _values: PhantomData }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn slice(&self) -> DevSlice<'_, T> {
        DevSlice { addr: self.addr, len: self.len, _borrow: PhantomData }
    }

    pub fn slice_mut(&mut self) -> DevSliceMut<'_, T> {
        DevSliceMut { addr: self.addr, len: self.len, _borrow: PhantomData }
    }
}

/// Grid and block shape and dynamic shared memory of one launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchConfig {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared_bytes: u32,
}

impl LaunchConfig {
    /// A one-dimensional grid of `blocks` blocks of `threads` threads.
    pub fn linear(blocks: usize, threads: u32, shared_bytes: usize) -> Self {
        let blocks = u32::try_from(blocks.max(1)).expect("grid larger than 2³² blocks");
        LaunchConfig { grid: [blocks, 1, 1], block: [threads, 1, 1], shared_bytes: shared_bytes as u32 }
    }

    /// Enough blocks of `threads` threads for one thread per element of `n` (grid-stride
    /// kernels cope with any count; the grid is capped at 65 535 blocks).
    pub fn elementwise(n: usize, threads: u32) -> Self {
        Self::linear(n.div_ceil(threads as usize).clamp(1, 65_535), threads, 0)
    }
}

/// The block sizes a row-per-block launcher picks from.
pub const ROW_BLOCKS: [u32; 4] = [32, 64, 128, 256];

/// Threads per row of `d` columns: about four columns per thread, at most 256.
pub fn row_block(d: usize) -> u32 {
    #[cfg(test)]
    if let Some(block) = FORCED_ROW_BLOCK.with(std::cell::Cell::get) {
        return block;
    }
    ROW_BLOCKS.into_iter().find(|&b| b as usize * 4 >= d).unwrap_or(256)
}

#[cfg(test)]
thread_local! {
    static FORCED_ROW_BLOCK: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with [`row_block`] answering `block` on this thread: the tests' way to run a
/// launcher at every block size it can pick.
#[cfg(test)]
pub fn with_row_block<R>(block: u32, f: impl FnOnce() -> R) -> R {
    FORCED_ROW_BLOCK.with(|b| b.set(Some(block)));
    let r = f();
    FORCED_ROW_BLOCK.with(|b| b.set(None));
    r
}

/// Threads per block of the element-wise (grid-stride) kernels.
pub const ELEMENTWISE_BLOCK: u32 = 256;

/// Packed sequences (`starts[s]..starts[s+1]` are the rows of sequence `s`) as the launchers
/// need them: on the host for shapes and per-sequence GEMMs, on the device (`u32`) for the
/// kernels.
#[derive(Debug, Clone, Copy)]
pub struct Packed<'a> {
    pub starts: &'a [usize],
    pub device: DevSlice<'a, u32>,
}

impl<'a> Packed<'a> {
    /// `starts`: `[n_seqs + 1]`, increasing from 0; `device`: the same values.
    pub fn new(starts: &'a [usize], device: DevSlice<'a, u32>) -> Self {
        assert!(!starts.is_empty() && starts[0] == 0 && starts.windows(2).all(|w| w[0] <= w[1]), "sequence starts must increase from 0");
        assert!(u32::try_from(*starts.last().unwrap()).is_ok(), "more than 2³² tokens");
        assert_eq!(device.len(), starts.len(), "device starts differ in length");
        Packed { starts, device }
    }

    pub fn sequences(&self) -> usize {
        self.starts.len() - 1
    }

    /// Tokens of all sequences, `T`.
    pub fn tokens(&self) -> usize {
        *self.starts.last().unwrap()
    }
}

/// A kernel's arguments, in order, as `cuLaunchKernel` takes them: [`KernelArgs::pointers`]
/// gives `args[i]` pointing at the i-th value (8-byte slots, little-endian, so a 4-byte
/// parameter reads the slot's first four bytes).
#[derive(Debug, Default)]
pub struct KernelArgs {
    slots: Vec<u64>,
}

impl KernelArgs {
    pub fn new() -> Self {
        KernelArgs::default()
    }

    /// A `const T*` parameter.
    pub fn input<T>(mut self, s: DevSlice<'_, T>) -> Self {
        self.slots.push(s.addr);
        self
    }

    /// A `T*` parameter.
    pub fn output<T>(mut self, s: &mut DevSliceMut<'_, T>) -> Self {
        self.slots.push(s.addr);
        self
    }

    /// A `T*` parameter that may be null.
    pub fn optional_output<T>(mut self, s: Option<&mut DevSliceMut<'_, T>>) -> Self {
        self.slots.push(s.map_or(0, |s| s.addr));
        self
    }

    /// A `const T*` parameter that may be null.
    pub fn optional_input<T>(mut self, s: Option<DevSlice<'_, T>>) -> Self {
        self.slots.push(s.map_or(0, |s| s.addr));
        self
    }

    /// An `int` parameter; panics when `v` does not fit (the launchers' shapes are checked).
    pub fn int(mut self, v: usize) -> Self {
        self.slots.push(i32::try_from(v).expect("kernel size argument exceeds i32") as u32 as u64);
        self
    }

    pub fn f32(mut self, v: f32) -> Self {
        self.slots.push(v.to_bits() as u64);
        self
    }

    pub fn u64(mut self, v: u64) -> Self {
        self.slots.push(v);
        self
    }

    /// `args[i] = &slot[i]`, valid while `self` is neither moved nor changed.
    pub fn pointers(&mut self) -> Vec<*mut c_void> {
        self.slots.iter_mut().map(|s| s as *mut u64 as *mut c_void).collect()
    }
}

/// What runs our kernels and GEMMs: the emulator, or a CUDA context.
pub trait Gpu {
    /// Launches the `extern "C"` kernel `kernel` and waits for it.
    fn launch(&self, kernel: &'static str, config: LaunchConfig, args: KernelArgs) -> Result<(), CudaError>;
    /// `cublasSgemmStridedBatched` with the arguments of `call` (see [`Gemm`]).
    fn sgemm(&self, call: Gemm<'_>) -> Result<(), CudaError>;
    /// `bytes` of zeroed device memory (8-byte aligned at least).
    fn alloc_zeroed(&self, bytes: usize) -> Result<DeviceBuffer<u8>, CudaError>;
    /// A device copy of `data` (8-byte aligned at least).
    fn upload_bytes(&self, data: &[u8]) -> Result<DeviceBuffer<u8>, CudaError>;
    /// Copies device memory `src` into `dst` (same length).
    fn download_bytes(&self, src: DevSlice<'_, u8>, dst: &mut [u8]) -> Result<(), CudaError>;
    /// Copies device memory `src` into device memory `dst` (same length, not overlapping).
    fn copy_bytes(&self, dst: DevSliceMut<'_, u8>, src: DevSlice<'_, u8>) -> Result<(), CudaError>;
}

/// Values that go to the device as their bytes: no padding, every value's bytes valid.
pub trait Upload: Copy + 'static {}
impl Upload for f32 {}
impl Upload for u32 {}
impl Upload for u64 {}
impl Upload for bool {}

/// Values that come back from the device as bytes: every bit pattern is a valid value.
pub trait Download: Upload {}
impl Download for f32 {}
impl Download for u32 {}
impl Download for u64 {}

fn bytes_of<T: Upload>(x: &[T]) -> &[u8] {
    // SAFETY: `Upload` types have no padding, so their memory is initialised bytes.
    unsafe { std::slice::from_raw_parts(x.as_ptr() as *const u8, std::mem::size_of_val(x)) }
}

impl DeviceBuffer<u8> {
    /// The same memory as `len` values of `T`.
    ///
    /// # Safety
    /// The buffer must hold `len·size_of::<T>()` bytes forming valid `T`s.
    unsafe fn retype<T>(self, len: usize) -> DeviceBuffer<T> {
        DeviceBuffer { addr: self.addr, len, _owner: self._owner, _values: PhantomData }
    }
}

/// `len` zeroed f32s on `dev`.
pub fn alloc_f32<D: Gpu + ?Sized>(dev: &D, len: usize) -> Result<DeviceBuffer<f32>, CudaError> {
    let bytes = len.checked_mul(4).ok_or_else(|| CudaError::Memory(format!("{len} f32s do not fit the address space")))?;
    // SAFETY: `4·len` zero bytes are `len` f32 zeros.
    Ok(unsafe { dev.alloc_zeroed(bytes)?.retype(len) })
}

/// A device copy of `data`.
pub fn upload<T: Upload, D: Gpu + ?Sized>(dev: &D, data: &[T]) -> Result<DeviceBuffer<T>, CudaError> {
    // SAFETY: the bytes were copied from `data.len()` valid `T`s.
    Ok(unsafe { dev.upload_bytes(bytes_of(data))?.retype(data.len()) })
}

/// A new device copy of device memory `src`.
pub fn duplicate<T: Download, D: Gpu + ?Sized>(dev: &D, src: DevSlice<'_, T>) -> Result<DeviceBuffer<T>, CudaError> {
    let bytes = src.len * size_of::<T>();
    let mut copy = dev.alloc_zeroed(bytes)?;
    // SAFETY: the same device range, seen as bytes.
    let from = unsafe { DevSlice::from_raw(src.addr, bytes) };
    dev.copy_bytes(copy.slice_mut(), from)?;
    // SAFETY: the bytes were copied from `src.len()` valid `T`s.
    Ok(unsafe { copy.retype(src.len) })
}

/// Copies `src` back into `dst` (same length).
pub fn download<T: Download, D: Gpu + ?Sized>(dev: &D, src: DevSlice<'_, T>, dst: &mut [T]) -> Result<(), CudaError> {
    assert_eq!(src.len(), dst.len(), "download: lengths differ");
    // SAFETY: `Download` types accept every bit pattern, so `dst` may be written as bytes.
    let bytes = unsafe { std::slice::from_raw_parts_mut(dst.as_mut_ptr() as *mut u8, std::mem::size_of_val(dst)) };
    // SAFETY: the same device range, seen as bytes.
    let src = unsafe { DevSlice::from_raw(src.addr, bytes.len()) };
    dev.download_bytes(src, bytes)
}
