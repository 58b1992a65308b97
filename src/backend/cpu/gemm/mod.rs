//! Matrix product `C (+)= A · B` for f32, with a fused epilogue.
//!
//! Interface (stable; the fast implementation lives behind it):
//! - `A` is `m × k`, `B` is `k × n`, both arbitrary strided views, so a transposed operand is
//!   only a view (a PyTorch `Linear` weight `W: [n, k]` is `B = Wᵀ` with `rs = 1, cs = k`).
//! - `C` is `m × n`, row-major with row stride `ldc`.
//! - The epilogue runs exactly once on every element of `C` after its sum is complete, while
//!   the block is still in cache (bias, bias+GELU, bias+residual, …).
//!
//! Implementation: BLIS-style. B is packed per `kc × NC` block into `NR`-wide panels
//! ([`pack`]; or once for all calls, [`PackedB`]), A is read in place when its
//! rows are contiguous (packed otherwise), and a register-blocked `MR × NR` microkernel
//! ([`kernel`]: 6 × 16 AVX2+FMA, 12 × 32 AVX-512F, 4 × 8 portable) runs over
//! `MC`-row blocks. C is cut into a grid of rectangles, a few per rayon thread (rows for a
//! batch, columns for one sentence). The epilogue runs on each finished `MC × NC` block,
//! right after its last depth block has been added.
//!
//! int8 ([`PackedB::int8`]): the same driver on the AVX512-VNNI kernel, B quantized per
//! column to i8 when packed, each strip of A per row to u8 (a zero point per row), sums exact
//! in i32, dequantized as the kernel stores them ([`pack_int8`]).
//!
//! bf16 ([`PackedB::bf16`]): the same driver on a bf16 kernel ([`Bf16Kernel`]: AMX
//! 32 × 32 `tdpbf16ps` tiles where the CPU and OS allow, else AVX512-BF16 12 × 32
//! `vdpbf16ps`): B pre-packed as pairs of bf16 depth steps, each strip of A converted to
//! bf16 pairs when it is first used in a block, products summed in f32. Half the bytes of
//! B and A per flop; the epilogue sees f32 sums as usual.
//!
//! Files, each depending only on the ones below it: `driver` (blocking, threading,
//! epilogue), `kernel*` (microkernels), `pack*` (panel layouts), `matrix` (views).
mod driver;
mod kernel;
#[cfg(target_arch = "x86_64")]
mod kernel_amx;
#[cfg(target_arch = "x86_64")]
mod kernel_int8;
mod matrix;
mod pack;
pub mod pack_int8;

pub use driver::{gemm, gemm_packed, gemm_reference, gemm_with_isa, Epilogue, PackedB, Plain};
pub use matrix::MatRef;
