//! The emulated device: kernels compiled by g++ against `kernels/emu/cuda_emu.h` (feature
//! `cuda-emu`, see build.rs) run on host threads; device addresses are host addresses; the
//! GEMM is a plain loop nest over cuBLAS's contract ([`super::blas`]).
use super::blas::{Gemm, Op};
use super::launch::{CudaError, DevSlice, DevSliceMut, DeviceBuffer, Gpu, KernelArgs, LaunchConfig};
use std::ffi::{c_char, c_int, c_void, CStr, CString};

extern "C" {
    /// kernels/emu/cuda_emu.cpp
    fn rmx_emu_launch(
        name: *const c_char,
        grid: *const u32,
        block: *const u32,
        shared_bytes: u32,
        args: *mut *mut c_void,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
}

/// The emulated GPU.
#[derive(Debug, Default, Clone, Copy)]
pub struct EmuDevice;

/// A host slice as an emulated device slice (device addresses are host addresses here).
pub fn host<T>(x: &[T]) -> DevSlice<'_, T> {
    // SAFETY: `x` is initialised memory borrowed for the view's lifetime, and the emulator
    // reads device addresses as host addresses.
    unsafe { DevSlice::from_raw(x.as_ptr() as u64, x.len()) }
}

/// A mutable host slice as an emulated device slice.
pub fn host_mut<T>(x: &mut [T]) -> DevSliceMut<'_, T> {
    // SAFETY: as `host`, and `x` is borrowed exclusively for the view's lifetime.
    unsafe { DevSliceMut::from_raw(x.as_mut_ptr() as u64, x.len()) }
}

impl Gpu for EmuDevice {
    fn launch(&self, kernel: &'static str, config: LaunchConfig, mut args: KernelArgs) -> Result<(), CudaError> {
        let name = CString::new(kernel).map_err(|_| CudaError::Launch { kernel: kernel.into(), reason: "name holds a NUL".into() })?;
        let mut pointers = args.pointers();
        let mut err = [0 as c_char; 512];
        // SAFETY: `name` is NUL-terminated, grid and block hold 3 values each, `pointers`
        // points at `args`' live slots in the kernel's parameter order (the launchers' job),
        // and `err` has the length passed. Pointer arguments address host memory borrowed by
        // the launcher for the call, which returns only when every thread has finished.
        let rc = unsafe {
            rmx_emu_launch(name.as_ptr(), config.grid.as_ptr(), config.block.as_ptr(), config.shared_bytes, pointers.as_mut_ptr(), err.as_mut_ptr(), err.len())
        };
        if rc == 0 {
            Ok(())
        } else {
            // SAFETY: the emulator NUL-terminates the message within `err`.
            let reason = unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned();
            Err(CudaError::Launch { kernel: kernel.into(), reason })
        }
    }

    fn sgemm(&self, g: Gemm<'_>) -> Result<(), CudaError> {
        g.check()?;
        // SAFETY: `check` proved every matrix of every batch inside its slice; the slices are
        // borrowed host memory, `c` exclusively.
        let (a, b, c) = unsafe {
            (
                std::slice::from_raw_parts(g.a.addr() as *const f32, g.a.len()),
                std::slice::from_raw_parts(g.b.addr() as *const f32, g.b.len()),
                std::slice::from_raw_parts_mut(g.c.addr() as *mut f32, g.c.len()),
            )
        };
        let at = |x: &[f32], op: Op, ld: usize, base: usize, r: usize, col: usize| match op {
            Op::N => x[base + r + col * ld],
            Op::T => x[base + col + r * ld],
        };
        for i in 0..g.batch {
            for col in 0..g.n {
                for r in 0..g.m {
                    let mut sum = 0.0f32;
                    for l in 0..g.k {
                        sum += at(a, g.transa, g.lda, i * g.stride_a, r, l) * at(b, g.transb, g.ldb, i * g.stride_b, l, col);
                    }
                    let out = &mut c[i * g.stride_c + r + col * g.ldc];
                    *out = if g.beta == 0.0 { g.alpha * sum } else { g.alpha * sum + g.beta * *out };
                }
            }
        }
        Ok(())
    }

    fn alloc_zeroed(&self, bytes: usize) -> Result<DeviceBuffer<u8>, CudaError> {
        // u64 storage: 8-byte alignment for every element type. A size the host cannot
        // allocate is an error, as on a GPU, not an abort.
        let words = bytes.div_ceil(8);
        let mut storage = Vec::<u64>::new();
        storage.try_reserve_exact(words).map_err(|e| CudaError::Memory(format!("{bytes} bytes: {e}")))?;
        storage.resize(words, 0);
        let storage = storage.into_boxed_slice();
        let addr = storage.as_ptr() as u64;
        // SAFETY: the boxed storage holds `bytes` zero bytes at `addr` (the heap block does not
        // move with the box) and lives as long as the buffer.
        Ok(unsafe { DeviceBuffer::from_owner(addr, bytes, Box::new(storage)) })
    }

    fn upload_bytes(&self, data: &[u8]) -> Result<DeviceBuffer<u8>, CudaError> {
        let buffer = self.alloc_zeroed(data.len())?;
        // SAFETY: the fresh allocation holds `data.len()` bytes and nothing else refers to it.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), buffer.slice().addr() as *mut u8, data.len()) };
        Ok(buffer)
    }

    fn download_bytes(&self, src: DevSlice<'_, u8>, dst: &mut [u8]) -> Result<(), CudaError> {
        assert_eq!(src.len(), dst.len(), "download: lengths differ");
        // SAFETY: `src` is borrowed host memory of `dst.len()` bytes.
        unsafe { std::ptr::copy_nonoverlapping(src.addr() as *const u8, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    fn copy_bytes(&self, dst: DevSliceMut<'_, u8>, src: DevSlice<'_, u8>) -> Result<(), CudaError> {
        assert_eq!(src.len(), dst.len(), "copy: lengths differ");
        // SAFETY: both are borrowed host memory of `src.len()` bytes, `dst` exclusively, so
        // they do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(src.addr() as *const u8, dst.addr() as *mut u8, src.len()) };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::blas::stored;
    use super::*;

    #[test]
    fn a_barrier_not_every_thread_reaches_fails_with_the_kernels_name() {
        let mut out = vec![0.0f32; 64];
        let args = KernelArgs::new().output(&mut host_mut(&mut out)).int(40);
        let err = EmuDevice.launch("planted_divergent_barrier", LaunchConfig::linear(2, 64, 0), args).unwrap_err().to_string();
        assert!(err.contains("planted_divergent_barrier") && err.contains("__syncthreads not reached"), "{err}");
        // Every thread reaching it: fine.
        let args = KernelArgs::new().output(&mut host_mut(&mut out)).int(64);
        EmuDevice.launch("planted_divergent_barrier", LaunchConfig::linear(2, 64, 0), args).unwrap();
        assert!(out.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn unknown_kernels_and_bad_shapes_are_errors() {
        let err = EmuDevice.launch("no_such_kernel", LaunchConfig::linear(1, 32, 0), KernelArgs::new()).unwrap_err().to_string();
        assert!(err.contains("no kernel named no_such_kernel"), "{err}");
        let err = EmuDevice.launch("planted_divergent_barrier", LaunchConfig::linear(1, 2048, 0), KernelArgs::new()).unwrap_err().to_string();
        assert!(err.contains("invalid launch shape"), "{err}");
    }

    /// A block of 64 threads reversing through shared memory without a barrier: run by
    /// scripts/cuda-emu-check.sh under ThreadSanitizer, which must report the race.
    #[test]
    #[ignore = "a planted data race, for scripts/cuda-emu-check.sh under ThreadSanitizer"]
    fn planted_missing_sync() {
        let x: Vec<f32> = (0..64).map(|i| i as f32).collect();
        let mut out = vec![0.0f32; 64];
        let args = KernelArgs::new().output(&mut host_mut(&mut out)).input(host(&x));
        EmuDevice.launch("planted_missing_sync", LaunchConfig::linear(1, 64, 0), args).unwrap();
    }

    /// Reads one element past a 64-element buffer: run by scripts/cuda-emu-check.sh under
    /// AddressSanitizer, which must report it.
    #[test]
    #[ignore = "a planted out-of-bounds read, for scripts/cuda-emu-check.sh under AddressSanitizer"]
    fn planted_oob_read() {
        let x = vec![1.0f32; 64];
        let mut out = vec![0.0f32; 64];
        let args = KernelArgs::new().output(&mut host_mut(&mut out)).input(host(&x)).int(64);
        EmuDevice.launch("planted_oob_read", LaunchConfig::linear(1, 64, 0), args).unwrap();
    }

    /// The textbook product in f64 over the column-major contract, for any op and layout.
    #[allow(clippy::too_many_arguments)]
    fn reference(ta: Op, tb: Op, m: usize, n: usize, k: usize, a: &[f32], lda: usize, b: &[f32], ldb: usize) -> Vec<f64> {
        let get = |x: &[f32], op: Op, ld: usize, r: usize, c: usize| if op == Op::N { x[r + c * ld] } else { x[c + r * ld] } as f64;
        let mut c = vec![0.0; m * n];
        for j in 0..n {
            for i in 0..m {
                c[i + j * m] = (0..k).map(|l| get(a, ta, lda, i, l) * get(b, tb, ldb, l, j)).sum();
            }
        }
        c
    }

    #[test]
    fn gemm_follows_the_cublas_contract() {
        let mut rng = crate::testutil::Rng::new(4);
        for (ta, tb, m, n, k) in [(Op::N, Op::N, 3, 4, 5), (Op::T, Op::N, 7, 1, 3), (Op::N, Op::T, 2, 6, 1), (Op::T, Op::T, 5, 5, 8)] {
            let (batch, pad) = (3, 2);
            let (ar, ac) = stored(ta, m, k);
            let (br, bc) = stored(tb, k, n);
            let (lda, ldb, ldc) = (ar + pad, br + 1, m + 3);
            let (sa, sb, sc) = (lda * ac + 1, ldb * bc, ldc * n + 2);
            let a = rng.normals(sa * batch, 1.0);
            let b = rng.normals(sb * batch, 1.0);
            let c0 = rng.normals(sc * batch, 1.0);
            let (alpha, beta) = (0.5, -2.0);
            let mut c = c0.clone();
            let call = Gemm {
                transa: ta,
                transb: tb,
                m,
                n,
                k,
                alpha,
                a: host(&a),
                lda,
                stride_a: sa,
                b: host(&b),
                ldb,
                stride_b: sb,
                beta,
                c: host_mut(&mut c),
                ldc,
                stride_c: sc,
                batch,
            };
            EmuDevice.sgemm(call).unwrap();
            for i in 0..batch {
                let want = reference(ta, tb, m, n, k, &a[i * sa..], lda, &b[i * sb..], ldb);
                for col in 0..n {
                    for r in 0..m {
                        let at = i * sc + r + col * ldc;
                        let w = alpha as f64 * want[r + col * m] + beta as f64 * c0[at] as f64;
                        assert!((c[at] as f64 - w).abs() < 1e-5 * (1.0 + w.abs()), "{ta:?}{tb:?} batch {i} ({r},{col})");
                    }
                }
            }
            // Padding between columns and between batches is untouched.
            for (at, (&got, &was)) in c.iter().zip(&c0).enumerate() {
                let (i, rest) = (at / sc, at % sc);
                if rest >= ldc * n || rest % ldc >= m {
                    assert_eq!(got, was, "{ta:?}{tb:?} wrote padding at {i}:{rest}");
                }
            }
        }
    }

    #[test]
    fn gemm_with_beta_zero_ignores_c_and_rejects_what_cublas_rejects() {
        let (a, b) = ([1.0f32, 2.0], [3.0f32, 4.0]);
        let mut c = [f32::NAN; 4];
        fn call<'a>(a: &'a [f32], b: &'a [f32], c: &'a mut [f32], lda: usize, len_c: usize) -> Gemm<'a> {
            Gemm {
                transa: Op::N,
                transb: Op::T,
                m: 2,
                n: 2,
                k: 1,
                alpha: 1.0,
                a: host(a),
                lda,
                stride_a: 0,
                b: host(b),
                ldb: 2,
                stride_b: 0,
                beta: 0.0,
                c: host_mut(&mut c[..len_c]),
                ldc: 2,
                stride_c: 0,
                batch: 1,
            }
        }
        EmuDevice.sgemm(call(&a, &b, &mut c, 2, 4)).unwrap();
        assert_eq!(c, [3.0, 6.0, 4.0, 8.0]);
        let err = EmuDevice.sgemm(call(&a, &b, &mut c, 1, 4)).unwrap_err().to_string();
        assert!(err.contains("lda = 1"), "{err}");
        let err = EmuDevice.sgemm(call(&a, &b, &mut c, 2, 3)).unwrap_err().to_string();
        assert!(err.contains("C reaches element 4 of a 3-element buffer"), "{err}");
    }
}
