//! The CUDA runtime (feature `cuda`): a context on one GPU with the kernels build.rs embedded
//! (one fatbin per kernel file) and a cuBLAS handle, behind the same [`Gpu`] interface as
//! the emulator. Launches take the launchers' `void**` argument arrays unchanged.
//!
//! Opening never panics: cudarc panics when libcuda is missing, so its presence is checked
//! first, and every failure is a [`CudaError::Unavailable`] saying why (kernels not built, no
//! driver, no device, no cuBLAS). Each launch and GEMM waits for the GPU, so a device error
//! surfaces at the call that caused it and buffers may be freed as soon as a call returns.
//! Every call, and every free, first makes the context current on the calling thread, so a
//! device (and its buffers) may be used from any thread (one at a time: `backend::cuda::device`
//! holds it behind a lock).
use super::blas::{Gemm, Op};
use super::launch::{CudaError, DevSlice, DevSliceMut, DeviceBuffer, Gpu, KernelArgs, LaunchConfig};
use cudarc::cublas::{result as cublas, sys as cublas_sys};
use cudarc::driver::{result as driver, sys, CudaContext, CudaStream};
use std::collections::HashMap;
use std::ffi::CString;
use std::sync::Arc;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/fatbins.rs"));
}

/// Whether this build embeds kernels: `Err` says why not (no nvcc, nvcc failed, …).
pub fn kernels_built() -> Result<(), CudaError> {
    match embedded::BUILD_PROBLEM {
        Some(why) => Err(CudaError::Unavailable(format!("kernels not built: {why}"))),
        None if embedded::FATBINS.len() != embedded::KERNEL_SOURCES.len() => {
            Err(CudaError::Unavailable(format!("kernels not built: {} of {} kernel files embedded", embedded::FATBINS.len(), embedded::KERNEL_SOURCES.len())))
        }
        None => Ok(()),
    }
}

/// One GPU with our kernels loaded.
pub struct CudaDevice {
    // Declared first: dropped (handle destroyed, modules unloaded) while the context lives.
    cublas: cublas_sys::cublasHandle_t,
    modules: Vec<sys::CUmodule>,
    functions: HashMap<&'static str, sys::CUfunction>,
    stream: Arc<CudaStream>,
    _context: Arc<CudaContext>,
}

fn unavailable(what: &str) -> impl Fn(driver::DriverError) -> CudaError + '_ {
    move |e| CudaError::Unavailable(format!("{what}: {e}"))
}

impl CudaDevice {
    /// Opens GPU `ordinal`: checks for kernels, driver and device, loads every fatbin.
    pub fn open(ordinal: usize) -> Result<CudaDevice, CudaError> {
        kernels_built()?;
        // SAFETY: only tries to dlopen libcuda; nothing is called through it.
        if !unsafe { sys::is_culib_present() } {
            return Err(CudaError::Unavailable("no driver: libcuda cannot be loaded".into()));
        }
        driver::init().map_err(unavailable("no driver: cuInit failed"))?;
        let count = driver::device::get_count().map_err(unavailable("no device"))?;
        if ordinal >= count.max(0) as usize {
            return Err(CudaError::Unavailable(format!("no device: {count} CUDA device(s), asked for device {ordinal}")));
        }
        let context = std::panic::catch_unwind(|| CudaContext::new(ordinal))
            .map_err(|_| CudaError::Unavailable("no device: creating the context panicked".into()))?
            .map_err(unavailable("no device: no context"))?;
        let stream = context.default_stream();
        // SAFETY: only tries to dlopen libcublas.
        if !unsafe { cublas_sys::is_culib_present() } {
            return Err(CudaError::Unavailable("no cuBLAS: libcublas cannot be loaded".into()));
        }
        let handle = cublas::create_handle().map_err(|e| CudaError::Unavailable(format!("no cuBLAS: {e:?}")))?;
        let mut device = CudaDevice { cublas: handle, modules: Vec::new(), functions: HashMap::new(), stream, _context: context };
        // SAFETY: the handle and the stream are live; the stream outlives the handle's use.
        unsafe { cublas::set_stream(device.cublas, device.stream.cu_stream() as _) }.map_err(|e| CudaError::Unavailable(format!("cuBLAS stream: {e:?}")))?;
        for &(stem, fatbin, entries) in embedded::FATBINS {
            // An 8-byte aligned copy: the driver reads the fatbin header in place.
            let mut image = vec![0u64; fatbin.len().div_ceil(8)];
            // SAFETY: `image` has room for `fatbin.len()` bytes; the regions do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(fatbin.as_ptr(), image.as_mut_ptr() as *mut u8, fatbin.len()) };
            // SAFETY: `image` is a complete fatbin produced by nvcc; the driver copies it.
            let module = unsafe { driver::module::load_data(image.as_ptr() as *const _) }.map_err(unavailable(stem))?;
            device.modules.push(module);
            for &name in entries {
                let c_name = CString::new(name).map_err(|_| CudaError::Unavailable(format!("{stem}: kernel name {name:?} holds a NUL")))?;
                // SAFETY: `module` was just loaded and is unloaded only on drop.
                let f = unsafe { driver::module::get_function(module, c_name) }.map_err(unavailable(name))?;
                device.functions.insert(name, f);
            }
        }
        Ok(device)
    }

    /// Makes the context current on the calling thread (a no-op when it is).
    fn bind(&self) -> Result<(), CudaError> {
        self._context.bind_to_thread().map_err(|e| CudaError::Launch { kernel: "binding the context".into(), reason: e.to_string() })
    }

    fn wait(&self, what: &str) -> Result<(), CudaError> {
        self.stream.synchronize().map_err(|e| CudaError::Launch { kernel: what.into(), reason: e.to_string() })
    }
}

impl Drop for CudaDevice {
    fn drop(&mut self) {
        let _ = self.bind();
        // SAFETY: the handle and modules were created by `open` and are used by nothing else;
        // errors at teardown have no one to report to.
        unsafe {
            let _ = cublas::destroy_handle(self.cublas);
            for &m in &self.modules {
                let _ = driver::module::unload(m);
            }
        }
    }
}

// SAFETY: the handles are the driver's and cuBLAS's opaque pointers, valid on any thread
// once the context is current there, which every call makes it first (`bind`); the one
// cuBLAS handle is not used by two threads at once because `&self` calls come through the
// backend's lock (`backend::cuda::device`).
unsafe impl Send for CudaDevice {}

/// Device memory from `cuMemAlloc` in `context`, freed on drop (on whichever thread drops it).
struct Allocation(sys::CUdeviceptr, Arc<CudaContext>);

impl Drop for Allocation {
    fn drop(&mut self) {
        // Errors at a free have no one to report to.
        if self.1.bind_to_thread().is_ok() {
            // SAFETY: allocated by `malloc_sync` in the context just made current, freed
            // once; launches wait, so no kernel uses it.
            let _ = unsafe { driver::free_sync(self.0) };
        }
    }
}

fn memory(e: driver::DriverError) -> CudaError {
    CudaError::Memory(e.to_string())
}

impl Gpu for CudaDevice {
    fn launch(&self, kernel: &'static str, config: LaunchConfig, mut args: KernelArgs) -> Result<(), CudaError> {
        self.bind()?;
        let f = *self.functions.get(kernel).ok_or_else(|| CudaError::Launch { kernel: kernel.into(), reason: "not in the embedded kernels".into() })?;
        let mut pointers = args.pointers();
        let [gx, gy, gz] = config.grid;
        let [bx, by, bz] = config.block;
        // SAFETY: `pointers` point at `args`' live slots in the kernel's parameter order (the
        // launchers' job); device addresses in them come from borrowed device slices that
        // outlive this call, which waits for the kernel.
        unsafe { driver::launch_kernel(f, (gx, gy, gz), (bx, by, bz), config.shared_bytes, self.stream.cu_stream(), &mut pointers) }
            .map_err(|e| CudaError::Launch { kernel: kernel.into(), reason: e.to_string() })?;
        self.wait(kernel)
    }

    fn sgemm(&self, g: Gemm<'_>) -> Result<(), CudaError> {
        g.check()?;
        self.bind()?;
        let op = |o: Op| match o {
            Op::N => cublas_sys::cublasOperation_t::CUBLAS_OP_N,
            Op::T => cublas_sys::cublasOperation_t::CUBLAS_OP_T,
        };
        let int = |v: usize| v as i32; // `check` proved every size fits
                                       // SAFETY: `check` proved the matrices inside their device slices, which are borrowed
                                       // for the call; alpha and beta are host values read before the call returns.
        unsafe {
            cublas::sgemm_strided_batched(
                self.cublas,
                op(g.transa),
                op(g.transb),
                int(g.m),
                int(g.n),
                int(g.k),
                &g.alpha,
                g.a.addr() as *const f32,
                int(g.lda),
                g.stride_a as i64,
                g.b.addr() as *const f32,
                int(g.ldb),
                g.stride_b as i64,
                &g.beta,
                g.c.addr() as *mut f32,
                int(g.ldc),
                g.stride_c as i64,
                int(g.batch),
            )
        }
        .map_err(|e| CudaError::Gemm(format!("{e:?}")))?;
        self.wait("sgemm")
    }

    fn alloc_zeroed(&self, bytes: usize) -> Result<DeviceBuffer<u8>, CudaError> {
        self.bind()?;
        // SAFETY: a fresh allocation of `bytes.max(1)` bytes, zeroed before use.
        let ptr = unsafe { driver::malloc_sync(bytes.max(1)) }.map_err(memory)?;
        let owner = Allocation(ptr, self._context.clone());
        // SAFETY: `ptr` addresses `bytes.max(1)` bytes of device memory.
        unsafe { driver::memset_d8_sync(ptr, 0, bytes.max(1)) }.map_err(memory)?;
        // SAFETY: `bytes` zeroed bytes, freed when the owner drops.
        Ok(unsafe { DeviceBuffer::from_owner(ptr, bytes, Box::new(owner)) })
    }

    fn upload_bytes(&self, data: &[u8]) -> Result<DeviceBuffer<u8>, CudaError> {
        let buffer = self.alloc_zeroed(data.len())?;
        // SAFETY: the fresh allocation has room for `data`.
        unsafe { driver::memcpy_htod_sync(buffer.slice().addr(), data) }.map_err(memory)?;
        Ok(buffer)
    }

    fn download_bytes(&self, src: DevSlice<'_, u8>, dst: &mut [u8]) -> Result<(), CudaError> {
        assert_eq!(src.len(), dst.len(), "download: lengths differ");
        self.bind()?;
        // SAFETY: `src` is borrowed device memory of `dst.len()` bytes; launches have waited.
        unsafe { driver::memcpy_dtoh_sync(dst, src.addr()) }.map_err(memory)
    }

    fn copy_bytes(&self, dst: DevSliceMut<'_, u8>, src: DevSlice<'_, u8>) -> Result<(), CudaError> {
        assert_eq!(src.len(), dst.len(), "copy: lengths differ");
        self.bind()?;
        // SAFETY: both are borrowed device memory of `src.len()` bytes, `dst` exclusively.
        unsafe { driver::memcpy_dtod_sync(dst.addr(), src.addr(), src.len()) }.map_err(memory)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_says_why_cuda_is_unavailable_or_opens() {
        // No GPU on development and CI machines: a typed error naming the reason, no panic.
        // On a GPU machine with the kernels built: a device.
        match CudaDevice::open(0) {
            Ok(_) => println!("CUDA device 0 opened"),
            Err(CudaError::Unavailable(why)) => {
                assert!(["kernels not built", "no driver", "no device", "no cuBLAS"].iter().any(|r| why.starts_with(r)), "{why}");
                println!("CUDA unavailable: {why}");
            }
            Err(other) => panic!("opening failed with a non-availability error: {other}"),
        }
    }

    #[test]
    fn every_kernel_file_is_embedded_when_nvcc_ran() {
        if let Err(why) = kernels_built() {
            println!("skipped: {why}");
            return;
        }
        let sources = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/kernels"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "cu"))
            .count();
        assert_eq!(embedded::FATBINS.len(), sources);
        assert!(embedded::FATBINS.iter().all(|(_, fatbin, entries)| !fatbin.is_empty() && !entries.is_empty()));
    }
}
