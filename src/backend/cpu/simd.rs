//! Run-time choice of the SIMD instruction set.
//!
//! One binary runs everywhere: kernels are compiled for several instruction sets
//! (`#[target_feature]`) and the best one the CPU supports is chosen once, at run time.
//! `RMX_ISA=scalar|avx2|avx512` forces a lower path (tests use it to cover every path
//! the machine can run).

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
    }

    /// The instruction set kernels use: the best available one, or `RMX_ISA` if it names
    /// one the CPU supports.
    pub fn current() -> Isa {
        static CHOSEN: OnceLock<Isa> = OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let available = Isa::available();
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
