//! The CUDA runtime (feature `cuda`): a context on one GPU with the kernels build.rs embedded
//! (one fatbin per kernel file) and a cuBLAS handle, behind the same [`Gpu`] interface as
//! the emulator. Launches take the launchers' `void**` argument arrays unchanged.
//!
//! Opening never panics: cudarc panics when libcuda is missing, so its presence is checked
//! first, and every failure is a [`CudaError::Unavailable`] saying why (kernels not built, no
//! driver, no device, no cuBLAS, no stream-ordered allocator).
//!
//! **Nothing waits per call.** Launches, GEMMs, allocations, frees, memsets and copies are all
//! queued on one stream, in the order they are issued; the host waits only where values
//! come back ([`Gpu::download_bytes`], [`Gpu::synchronize`]), and an error the GPU meets
//! while running queued work surfaces there. What keeps that correct:
//! - memory is allocated and freed in stream order (`cuMemAllocAsync`/`cuMemFreeAsync` on the
//!   stream), so a buffer dropped while queued work still reads it is released only after
//!   that work (the default pool keeps freed memory for reuse: release threshold ∞);
//! - host values going up are copied first into pinned staging memory ([`Staging`]), which is
//!   reused only after a wait for the stream, so the caller's slice may change as soon as the
//!   upload returns; uploads too large for the staging area wait for their copy.
//!
//! Every call, and every free, first makes the context current on the calling thread, so a
//! device (and its buffers) may be used from any thread (one at a time: `backend::cuda::device`
//! holds it behind a lock; frees need no lock).
use super::blas::LtMatmul;
use super::blas::{Gemm, Op};
use super::launch::{CudaError, DevSlice, DevSliceMut, DeviceBuffer, Gpu, KernelArgs, LaunchConfig};
use cudarc::cublas::{result as cublas, sys as cublas_sys};
use cudarc::cublaslt::{result as lt, sys as lt_sys};
use cudarc::driver::{result as driver, sys, CudaContext, CudaStream};
use half::bf16;
use std::cell::RefCell;
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
    lt: lt_sys::cublasLtHandle_t,
    modules: Vec<sys::CUmodule>,
    functions: HashMap<&'static str, sys::CUfunction>,
    staging: RefCell<Staging>,
    stream: Arc<CudaStream>,
    _context: Arc<CudaContext>,
}

/// Pinned host memory that uploads are copied through: a bump area, rewound once the stream
/// has been waited for (every copy out of it has then completed).
struct Staging {
    base: *mut u8,
    used: usize,
}

/// Bytes of pinned staging; an upload of more than half of it waits for its own copy.
const STAGING_BYTES: usize = 4 << 20;

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
        keep_freed_memory(context.cu_device())?;
        // SAFETY: the context is current (made so by `CudaContext::new`); freed in `drop`.
        let base = unsafe { driver::malloc_host(STAGING_BYTES, 0) }.map_err(unavailable("no device: pinned staging memory"))? as *mut u8;
        let staging = RefCell::new(Staging { base, used: 0 });
        let handle = cublas::create_handle().map_err(|e| CudaError::Unavailable(format!("no cuBLAS: {e:?}")))?;
        // SAFETY: only tries to dlopen libcublasLt.
        if !unsafe { lt_sys::is_culib_present() } {
            return Err(CudaError::Unavailable("no cuBLAS: libcublasLt cannot be loaded".into()));
        }
        let lt = lt::create_handle().map_err(|e| CudaError::Unavailable(format!("no cuBLAS: cublasLt: {e:?}")))?;
        let mut device = CudaDevice { cublas: handle, lt, modules: Vec::new(), functions: HashMap::new(), staging, stream, _context: context };
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

    /// Waits for every call queued so far; the staging area may then be reused.
    fn wait(&self) -> Result<(), CudaError> {
        self.stream.synchronize().map_err(|e| CudaError::Launch { kernel: "queued work".into(), reason: e.to_string() })?;
        self.staging.borrow_mut().used = 0;
        Ok(())
    }

    /// Queues the copy of `data` to device address `dst` through the staging area (see the
    /// module's doc); `data` may change once this returns.
    fn copy_up(&self, dst: sys::CUdeviceptr, data: &[u8]) -> Result<(), CudaError> {
        if data.len() > STAGING_BYTES / 2 {
            // SAFETY: `dst` has room for `data` (the caller's allocation); the wait below keeps
            // `data` borrowed until the copy has completed.
            unsafe { driver::memcpy_htod_async(dst, data, self.stream.cu_stream()) }.map_err(memory)?;
            return self.wait();
        }
        let start = {
            let used = self.staging.borrow().used.next_multiple_of(16);
            match used + data.len() <= STAGING_BYTES {
                true => used,
                false => {
                    self.wait()?;
                    0
                }
            }
        };
        let mut staging = self.staging.borrow_mut();
        // SAFETY: `start + data.len() ≤ STAGING_BYTES`: inside the pinned area, in a part no
        // queued copy reads (bytes before `used` since the last wait; the rest is free).
        let pinned = unsafe {
            let at = staging.base.add(start);
            std::ptr::copy_nonoverlapping(data.as_ptr(), at, data.len());
            std::slice::from_raw_parts(at as *const u8, data.len())
        };
        staging.used = start + data.len();
        // SAFETY: `dst` has room for `data`; the pinned bytes stay untouched until the next
        // wait, after which the copy has completed.
        unsafe { driver::memcpy_htod_async(dst, pinned, self.stream.cu_stream()) }.map_err(memory)
    }
}

impl CudaDevice {
    /// Queues `cublasGemmStridedBatchedEx` for [`Gemm`] `g` whose `A` and `B` hold `T`s of
    /// cuBLAS type `ab_type`; `C` is f32, computed in f32.
    fn gemm<T>(&self, g: Gemm<'_, T>, ab_type: cublas_sys::cudaDataType) -> Result<(), CudaError> {
        g.check()?;
        self.bind()?;
        let op = |o: Op| match o {
            Op::N => cublas_sys::cublasOperation_t::CUBLAS_OP_N,
            Op::T => cublas_sys::cublasOperation_t::CUBLAS_OP_T,
        };
        let int = |v: usize| v as i32; // `check` proved every size fits
        let c_type = cublas_sys::cudaDataType::CUDA_R_32F;
        // SAFETY: `check` proved the matrices inside their device slices, whose memory is freed
        // in stream order, and `ab_type` is the element type of `A` and `B`; alpha and beta
        // are host f32 values (the f32 compute type's scalars) read before the call returns.
        unsafe {
            cublas::gemm_strided_batched_ex(
                self.cublas,
                op(g.transa),
                op(g.transb),
                int(g.m),
                int(g.n),
                int(g.k),
                &g.alpha as *const f32 as *const _,
                g.a.addr() as *const _,
                ab_type,
                int(g.lda),
                g.stride_a as i64,
                g.b.addr() as *const _,
                ab_type,
                int(g.ldb),
                g.stride_b as i64,
                &g.beta as *const f32 as *const _,
                g.c.addr() as *mut _,
                c_type,
                int(g.ldc),
                g.stride_c as i64,
                int(g.batch),
                cublas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cublas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(|e| CudaError::Gemm(format!("{e:?}")))
    }
}

/// cublasLt's descriptors of one matmul, destroyed on drop (they are host objects, read
/// when the matmul is issued).
#[derive(Default)]
struct LtDescriptors {
    desc: Option<lt_sys::cublasLtMatmulDesc_t>,
    layouts: Vec<lt_sys::cublasLtMatrixLayout_t>,
    pref: Option<lt_sys::cublasLtMatmulPreference_t>,
}

impl Drop for LtDescriptors {
    fn drop(&mut self) {
        // SAFETY: each was created once by cublasLt and is destroyed once; errors at a
        // destroy have no one to report to.
        unsafe {
            if let Some(desc) = self.desc {
                let _ = lt::destroy_matmul_desc(desc);
            }
            for &layout in &self.layouts {
                let _ = lt::destroy_matrix_layout(layout);
            }
            if let Some(pref) = self.pref {
                let _ = lt::destroy_matmul_pref(pref);
            }
        }
    }
}

fn lt_error(e: lt::CublasError) -> CudaError {
    CudaError::Gemm(format!("cublasLt: {e:?}"))
}

impl CudaDevice {
    /// Queues `cublasLtMatmul` for `call` whose `A` and `B` hold `T`s of type `ab_type`
    /// (`C`, `D`, bias f32; f32 compute and scalars; no workspace); `Ok(false)` when cublasLt's
    /// heuristic offers no algorithm.
    fn lt_matmul<T>(&self, call: LtMatmul<'_, T>, ab_type: lt_sys::cudaDataType) -> Result<bool, CudaError> {
        call.check()?;
        self.bind()?;
        let g = &call.gemm;
        let op = |o: Op| match o {
            Op::N => cublas_sys::cublasOperation_t::CUBLAS_OP_N,
            Op::T => cublas_sys::cublasOperation_t::CUBLAS_OP_T,
        };
        let f32_type = lt_sys::cudaDataType::CUDA_R_32F;
        let mut d = LtDescriptors::default();
        let desc = *d.desc.insert(lt::create_matmul_desc(lt_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F, f32_type).map_err(lt_error)?);
        let (transa, transb) = (op(g.transa), op(g.transb));
        let epilogue = match call.bias {
            Some(_) => lt_sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_BIAS,
            None => lt_sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_DEFAULT,
        };
        let bias = call.bias.map_or(0, |b| b.addr());
        let attribute = |attr, value: *const std::ffi::c_void, size| {
            // SAFETY: `value` points at `size` bytes of the attribute's type, read during the call.
            unsafe { lt::set_matmul_desc_attribute(desc, attr, value, size) }.map_err(lt_error)
        };
        use lt_sys::cublasLtMatmulDescAttributes_t as Attr;
        attribute(Attr::CUBLASLT_MATMUL_DESC_TRANSA, &transa as *const _ as *const _, size_of_val(&transa))?;
        attribute(Attr::CUBLASLT_MATMUL_DESC_TRANSB, &transb as *const _ as *const _, size_of_val(&transb))?;
        attribute(Attr::CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue as *const _ as *const _, size_of_val(&epilogue))?;
        if call.bias.is_some() {
            attribute(Attr::CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias as *const u64 as *const _, size_of::<u64>())?;
        }
        // Stored shapes: A is (rows × cols) = stored(op, m, k), B = stored(op, k, n), C and D m × n.
        let (ar, ac) = super::blas::stored(g.transa, g.m, g.k);
        let (br, bc) = super::blas::stored(g.transb, g.k, g.n);
        for (ty, rows, cols, ld) in [(ab_type, ar, ac, g.lda), (ab_type, br, bc, g.ldb), (f32_type, g.m, g.n, g.ldc)] {
            d.layouts.push(lt::create_matrix_layout(ty, rows as u64, cols as u64, ld as i64).map_err(lt_error)?);
        }
        let (a_layout, b_layout, cd_layout) = (d.layouts[0], d.layouts[1], d.layouts[2]);
        let pref = *d.pref.insert(lt::create_matmul_pref().map_err(lt_error)?);
        // SAFETY: every descriptor was just created; the heuristic reads them.
        let heuristic = match unsafe { lt::get_matmul_algo_heuristic(self.lt, desc, a_layout, b_layout, cd_layout, cd_layout, pref) } {
            Ok(h) => h,
            Err(e) if e.0 == lt_sys::cublasStatus_t::CUBLAS_STATUS_NOT_SUPPORTED => return Ok(false),
            Err(e) => return Err(lt_error(e)),
        };
        // Without a C, D stands in for it (β = 0: not read).
        let c = call.c.map_or(g.c.addr(), |c| c.addr());
        // SAFETY: `check` proved A, B, C, D and the bias inside their device slices, whose
        // memory is freed in stream order; the layouts describe them; α and β are host f32
        // values read before the call returns; no workspace is passed (the preference's
        // default maximum is 0 bytes).
        unsafe {
            lt::matmul(
                self.lt,
                desc,
                &g.alpha as *const f32 as *const _,
                &g.beta as *const f32 as *const _,
                g.a.addr() as *const _,
                a_layout,
                g.b.addr() as *const _,
                b_layout,
                c as *const _,
                cd_layout,
                g.c.addr() as *mut _,
                cd_layout,
                &heuristic.algo,
                std::ptr::null_mut(),
                0,
                self.stream.cu_stream() as _,
            )
        }
        .map_err(lt_error)?;
        Ok(true)
    }
}

/// Checks that `device` allocates in stream order and lets its default pool keep freed
/// memory for reuse (by default it returns it to the system at every synchronisation).
fn keep_freed_memory(device: sys::CUdevice) -> Result<(), CudaError> {
    // SAFETY: reads one attribute of a valid device.
    let pools = unsafe { driver::device::get_attribute(device, sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED) };
    if pools.map_err(unavailable("no device: attributes"))? == 0 {
        return Err(CudaError::Unavailable("no device: it has no stream-ordered allocator (cuMemAllocAsync)".into()));
    }
    let mut pool = std::ptr::null_mut();
    let mut threshold = u64::MAX;
    // SAFETY: `pool` receives the device's default pool; the attribute's value is a u64.
    unsafe {
        sys::cuDeviceGetDefaultMemPool(&mut pool, device).result().map_err(unavailable("no device: memory pool"))?;
        sys::cuMemPoolSetAttribute(pool, sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &mut threshold as *mut u64 as *mut _)
            .result()
            .map_err(unavailable("no device: memory pool"))
    }
}

impl Drop for CudaDevice {
    fn drop(&mut self) {
        let _ = self.bind();
        let _ = self.stream.synchronize();
        // SAFETY: the handle, modules and staging memory were created by `open` and are used
        // by nothing else (the wait above finished every queued copy out of the staging
        // memory); errors at teardown have no one to report to.
        unsafe {
            let _ = driver::free_host(self.staging.get_mut().base as *mut _);
            let _ = cublas::destroy_handle(self.cublas);
            let _ = lt::destroy_handle(self.lt);
            for &m in &self.modules {
                let _ = driver::module::unload(m);
            }
        }
    }
}

// SAFETY: the handles are the driver's and cuBLAS's opaque pointers, valid on any thread
// once the context is current there, which every call makes it first (`bind`); the one
// cuBLAS handle, and the staging memory, are not used by two threads at once because
// `&self` calls come through the backend's lock (`backend::cuda::device`).
unsafe impl Send for CudaDevice {}

/// Device memory from `cuMemAllocAsync` on `stream`, freed on drop in stream order (on
/// whichever thread drops it).
struct Allocation(sys::CUdeviceptr, Arc<CudaStream>);

impl Drop for Allocation {
    fn drop(&mut self) {
        // Errors at a free have no one to report to.
        if self.1.context().bind_to_thread().is_ok() {
            // SAFETY: allocated by `malloc_async` on this stream, freed once. Work queued
            // before this drop that uses the memory was queued on the same stream (the owner
            // was borrowed for it), so the free is ordered after it.
            let _ = unsafe { driver::free_async(self.0, self.1.cu_stream()) };
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
        // launchers' job; the driver copies the values before returning); device addresses in
        // them come from device slices whose memory is freed in stream order, after the kernel.
        unsafe { driver::launch_kernel(f, (gx, gy, gz), (bx, by, bz), config.shared_bytes, self.stream.cu_stream(), &mut pointers) }
            .map_err(|e| CudaError::Launch { kernel: kernel.into(), reason: e.to_string() })
    }

    fn sgemm(&self, g: Gemm<'_>) -> Result<(), CudaError> {
        self.gemm(g, cublas_sys::cudaDataType::CUDA_R_32F)
    }

    fn gemm_bf16(&self, g: Gemm<'_, bf16>) -> Result<(), CudaError> {
        self.gemm(g, cublas_sys::cudaDataType::CUDA_R_16BF)
    }

    fn matmul_lt(&self, call: LtMatmul<'_>) -> Result<bool, CudaError> {
        self.lt_matmul(call, lt_sys::cudaDataType::CUDA_R_32F)
    }

    fn matmul_lt_bf16(&self, call: LtMatmul<'_, bf16>) -> Result<bool, CudaError> {
        self.lt_matmul(call, lt_sys::cudaDataType::CUDA_R_16BF)
    }

    fn alloc_zeroed(&self, bytes: usize) -> Result<DeviceBuffer<u8>, CudaError> {
        self.bind()?;
        let stream = self.stream.cu_stream();
        // SAFETY: a fresh stream-ordered allocation of `bytes.max(1)` bytes, zeroed in stream
        // order before any later call on the stream uses it.
        let ptr = unsafe { driver::malloc_async(stream, bytes.max(1)) }.map_err(memory)?;
        let owner = Allocation(ptr, self.stream.clone());
        // SAFETY: `ptr` addresses `bytes.max(1)` bytes of device memory.
        unsafe { driver::memset_d8_async(ptr, 0, bytes.max(1), stream) }.map_err(memory)?;
        // SAFETY: `bytes` zeroed bytes (in stream order), freed when the owner drops.
        Ok(unsafe { DeviceBuffer::from_owner(ptr, bytes, Box::new(owner)) })
    }

    fn upload_bytes(&self, data: &[u8]) -> Result<DeviceBuffer<u8>, CudaError> {
        let buffer = self.alloc_zeroed(data.len())?;
        self.copy_up(buffer.slice().addr(), data)?;
        Ok(buffer)
    }

    fn download_bytes(&self, src: DevSlice<'_, u8>, dst: &mut [u8]) -> Result<(), CudaError> {
        assert_eq!(src.len(), dst.len(), "download: lengths differ");
        self.bind()?;
        // SAFETY: `src` is device memory of `dst.len()` bytes; the wait below keeps `dst`
        // borrowed until the copy (queued after every call that writes `src`) has completed.
        unsafe { driver::memcpy_dtoh_async(dst, src.addr(), self.stream.cu_stream()) }.map_err(memory)?;
        self.wait()
    }

    fn copy_bytes(&self, dst: DevSliceMut<'_, u8>, src: DevSlice<'_, u8>) -> Result<(), CudaError> {
        assert_eq!(src.len(), dst.len(), "copy: lengths differ");
        self.bind()?;
        // SAFETY: both are device memory of `src.len()` bytes freed in stream order, `dst`
        // borrowed exclusively.
        unsafe { driver::memcpy_dtod_async(dst.addr(), src.addr(), src.len(), self.stream.cu_stream()) }.map_err(memory)
    }

    fn synchronize(&self) -> Result<(), CudaError> {
        self.bind()?;
        self.wait()
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
