//! Run-time choice of the SIMD instruction set.
//!
//! One binary runs everywhere: kernels are compiled for several instruction sets
//! (`#[target_feature]`) and the best one the CPU supports is chosen once, at run time.
//! `RMX_ISA=scalar|avx2|avx512` forces a lower path (tests use it to cover every path
//! the machine can run).
//!
//! The opt-in bf16 products have their own choice ([`Bf16Kernel`]: AMX or AVX512-BF16;
//! `RMX_AMX=0` forces the latter).

use std::sync::OnceLock;

/// The instruction sets rmx has kernels for, from slowest to fastest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Portable Rust, no explicit SIMD (the compiler may still vectorise).
    Scalar,
    /// x86-64 AVX2 + FMA (8 × f32 lanes).
    Avx2,
    /// x86-64 AVX-512F (16 × f32 lanes).
    Avx512,
}

impl Isa {
    /// Every instruction set this CPU can execute, slowest first.
    pub fn available() -> Vec<Isa> {
        Isa::detected().to_vec()
    }

    /// [`Isa::available`], detected once (kernels check it on every call).
    fn detected() -> &'static [Isa] {
        static DETECTED: OnceLock<Vec<Isa>> = OnceLock::new();
        DETECTED.get_or_init(|| {
            let mut isas = vec![Isa::Scalar];
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    isas.push(Isa::Avx2);
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    isas.push(Isa::Avx512);
                }
            }
            isas
        })
    }

    /// The instruction set kernels use: the best available one, or `RMX_ISA` if it names
    /// one the CPU supports.
    pub fn current() -> Isa {
        static CHOSEN: OnceLock<Isa> = OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let available = Isa::detected();
            let best = *available.last().expect("scalar is always available");
            match std::env::var("RMX_ISA").ok().as_deref().and_then(Isa::parse) {
                Some(forced) if available.contains(&forced) => forced,
                _ => best,
            }
        })
    }

    pub fn parse(name: &str) -> Option<Isa> {
        match name.to_ascii_lowercase().as_str() {
            "scalar" => Some(Isa::Scalar),
            "avx2" => Some(Isa::Avx2),
            "avx512" => Some(Isa::Avx512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }
}

impl Isa {
    /// Whether this CPU can execute code compiled for `self`.
    pub fn is_supported(self) -> bool {
        Isa::detected().contains(&self)
    }
}

/// Whether this CPU has the AVX512-BF16 dot product (`vdpbf16ps`, with AVX-512F) that the
/// bf16 GEMM runs on (Intel Cooper Lake and Sapphire Rapids on, AMD Zen 4 on). Detected
/// once. Not an [`Isa`]: it is an opt-in precision, never chosen by default.
pub fn bf16_dot_supported() -> bool {
    static DETECTED: OnceLock<bool> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        return std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bf16");
        #[cfg(not(target_arch = "x86_64"))]
        false
    })
}

/// Whether this CPU has the AVX512-VNNI byte dot product (`vpdpbusd`, with AVX-512F) that
/// the int8 GEMM runs on (Intel Cascade Lake on, AMD Zen 4 on). Detected once; like bf16,
/// an opt-in precision.
pub fn int8_dot_supported() -> bool {
    static DETECTED: OnceLock<bool> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        return std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vnni");
        #[cfg(not(target_arch = "x86_64"))]
        false
    })
}

/// The kernels a bf16 product can run on (both sum bf16 products in f32, so they agree up
/// to the order of the f32 additions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bf16Kernel {
    /// AVX512-BF16 `vdpbf16ps`, 12 × 32 tiles in zmm registers.
    Avx512Bf16,
    /// AMX-BF16 `tdpbf16ps`, 32 × 32 tiles in tmm registers (Intel Sapphire Rapids on): one
    /// instruction multiplies a 16 × 32 by a 32 × 16 matrix.
    Amx,
}

impl Bf16Kernel {
    /// Whether this CPU (and, for AMX, the OS) can run it.
    pub fn is_supported(self) -> bool {
        match self {
            Bf16Kernel::Avx512Bf16 => bf16_dot_supported(),
            // A strips are converted to bf16 with AVX512-BF16, so AMX needs it too.
            Bf16Kernel::Amx => bf16_dot_supported() && amx_bf16_supported(),
        }
    }

    /// The kernel bf16 products use: AMX where it runs, unless `RMX_AMX=0`, else
    /// AVX512-BF16; `None` on CPUs with neither. Chosen once.
    pub fn current() -> Option<Bf16Kernel> {
        static CHOSEN: OnceLock<Option<Bf16Kernel>> = OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let amx_off = std::env::var("RMX_AMX").is_ok_and(|v| v == "0");
            [Bf16Kernel::Amx, Bf16Kernel::Avx512Bf16].into_iter().find(|k| !(amx_off && *k == Bf16Kernel::Amx) && k.is_supported())
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Bf16Kernel::Avx512Bf16 => "avx512bf16",
            Bf16Kernel::Amx => "amx",
        }
    }
}

/// Whether this CPU has AMX-TILE and AMX-BF16 (CPUID leaf 7, EDX bits 24 and 22) and Linux
/// lets this process use the tile registers. Linux hands out the 8 KiB of tile state per
/// process on request (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`); without it
/// the first tile instruction kills the process with SIGILL. The request is made here, once,
/// before any thread runs a tile instruction; the permission covers every thread of the
/// process, rayon's workers included. Other operating systems: never (untested there).
pub fn amx_bf16_supported() -> bool {
    static DETECTED: OnceLock<bool> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        {
            #[allow(unused_unsafe)]
            // SAFETY: CPUID exists on every x86-64 CPU; leaf 7 is valid whenever it is
            // below the maximum leaf, and reads as zeros (no AMX) otherwise.
            let leaf7 = unsafe { std::arch::x86_64::__cpuid_count(7, 0) };
            const AMX_BF16: u32 = 1 << 22;
            const AMX_TILE: u32 = 1 << 24;
            if leaf7.edx & (AMX_BF16 | AMX_TILE) != AMX_BF16 | AMX_TILE {
                return false;
            }
            const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
            const XFEATURE_XTILEDATA: libc::c_long = 18;
            // SAFETY: this arch_prctl takes two integers and touches no memory; failure
            // (an old kernel, a seccomp filter) is a non-zero return, handled as "no AMX".
            unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
        }
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
        false
    })
}

/// Defines a kernel compiled once per instruction set from one generic body.
///
/// `multiversion!(pub fn gelu / gelu_with_isa (x: &mut [f32]) => gelu_generic);` defines
/// `gelu(x)`, which runs `gelu_generic` compiled for `Isa::current()`, and
/// `gelu_with_isa(isa, x)` for tests. The generic body must be `#[inline(always)]` so that it
/// is compiled inside each `#[target_feature]` wrapper, where LLVM vectorises it for that
/// instruction set; reductions in it should use explicit lane arrays (e.g. `[f32; 16]`).
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident / $with_isa:ident ( $($arg:ident : $ty:ty),* $(,)? ) $(-> $ret:ty)? => $generic:path) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            $with_isa($crate::backend::cpu::simd::Isa::current(), $($arg),*)
        }

        /// The same kernel compiled for an explicit instruction set (panics if unsupported).
        #[allow(dead_code, clippy::too_many_arguments)]
        $vis fn $with_isa(isa: $crate::backend::cpu::simd::Isa, $($arg: $ty),*) $(-> $ret)? {
            use $crate::backend::cpu::simd::Isa;
            assert!(isa.is_supported(), "instruction set {} is not supported by this CPU", isa.name());
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => {
                    #[target_feature(enable = "avx512f,avx2,fma")]
                    #[allow(clippy::too_many_arguments)]
                    fn avx512($($arg: $ty),*) $(-> $ret)? { $generic($($arg),*) }
                    // SAFETY: the assert above checked that the CPU supports AVX-512F.
                    unsafe { avx512($($arg),*) }
                }
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => {
                    #[target_feature(enable = "avx2,fma")]
                    #[allow(clippy::too_many_arguments)]
                    fn avx2($($arg: $ty),*) $(-> $ret)? { $generic($($arg),*) }
                    // SAFETY: the assert above checked that the CPU supports AVX2 and FMA.
                    unsafe { avx2($($arg),*) }
                }
                _ => $generic($($arg),*),
            }
        }
    };
}
pub(crate) use multiversion;
