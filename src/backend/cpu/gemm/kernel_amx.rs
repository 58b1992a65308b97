//! The AMX-BF16 GEMM microkernel. It computes in tile registers rather than vector
//! registers, so its configuration, loads and release live here, apart from the vector
//! kernels of [`super::kernel`]; it plugs into the same driver through [`MicroKernel`].
use super::kernel::MicroKernel;
use super::matrix::APanel;
use super::pack::Bf16Pair;

/// AMX-BF16: 32 × 32 (2 × 2 tiles of 16 × 16 f32 sums in `tmm0..tmm3`; A in `tmm4`,
/// `tmm5`, 16 rows × 32 depth steps each; B in `tmm6`, `tmm7`, 16 depth pairs × 16
/// columns each), 32 depth steps per `tdpbf16ps`. B's panel rows (16 pairs of 32
/// columns, 128 bytes) are the tile rows of two B tiles side by side, so panels are the
/// AVX512-BF16 ones with the depth padded to a multiple of 32; A strips are converted
/// rows of pairs padded to 16 rows and 32 depth steps.
///
/// The sums stay in the tiles for the whole `kc` and go to C once: straight into C when
/// the rows fill whole tiles, else through a scratch tile.
pub(crate) struct AmxBf16;

/// The tile configuration (palette 1): `tmm0..tmm7` all 16 rows of 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

static TILE_CONFIG: TileConfig = {
    let mut cfg = [0u8; 64];
    cfg[0] = 1; // palette 1; byte 1, the start row, is 0
    let mut t = 0;
    while t < 8 {
        cfg[16 + 2 * t] = 64; // bytes per row (u16, little-endian)
        cfg[48 + t] = 16; // rows
        t += 1;
    }
    TileConfig(cfg)
};

impl MicroKernel for AmxBf16 {
    const MR: usize = 32;
    const NR: usize = 32;
    const DEPTH_ALIGN: usize = 32;
    const ROW_ALIGN: usize = 16;
    /// The sums stay in the tiles for a whole depth block, and each block costs a round
    /// trip of C through memory, while `tdpbf16ps` streams B from L2 fast enough: a
    /// 96 KiB panel (depth 1536, MiniLM's largest, in one block) made the 2048 × 1536 ×
    /// 384 product ≈ 25 % faster than 24 KiB (depth 384).
    const B_PANEL_BYTES: usize = 96 * 1024;
    type Elem = Bf16Pair;
    /// `tilerelease`: marks the tile state unused, so the OS need not save it on a
    /// context switch and the core can leave AMX.
    #[inline]
    unsafe fn release() {
        // SAFETY: the caller guarantees AMX (and the OS permission); `tilerelease` is
        // valid whether or not tiles are configured and touches no memory.
        unsafe { std::arch::asm!("tilerelease", options(nomem, nostack)) }
    }
    #[inline]
    unsafe fn tile(rows: usize, kc: usize, a: APanel<Bf16Pair>, b: *const Bf16Pair, c: *mut f32, ldc: usize, accumulate: bool) {
        debug_assert!((1..=32).contains(&rows) && a.cs == 1 && a.rs.is_multiple_of(16));
        let (row_tiles, chunks) = (rows.div_ceil(16), kc.div_ceil(32));
        // SAFETY: forwarded contract: A holds `16 · row_tiles` rows of `16 · chunks`
        // pairs at stride `a.rs`, B `16 · chunks` rows of 32 pairs; C is written in full
        // tiles only when `rows` fills them, else through `t` (32 × 32 at stride 32).
        unsafe {
            if rows == 16 * row_tiles {
                amx_tile(row_tiles == 2, chunks, a, b, c, ldc, accumulate);
            } else {
                let mut t = [0.0f32; 32 * 32];
                amx_tile(row_tiles == 2, chunks, a, b, t.as_mut_ptr(), 32, false);
                for (r, t) in t.chunks_exact(32).take(rows).enumerate() {
                    let out = std::slice::from_raw_parts_mut(c.add(r * ldc), 32);
                    for (o, &t) in out.iter_mut().zip(t) {
                        *o = if accumulate { *o + t } else { t };
                    }
                }
            }
        }
    }
}

/// `C[0..16·R, 0..32] (+)= A · B` over `chunks` of 32 depth steps, `R` = 2 if `two_rows`
/// else 1, in tiles: configure, load C (or zero it), `tdpbf16ps` per chunk, store C. The
/// tiles are released once per thread and product ([`MicroKernel::release`]): between
/// calls the next `ldtilecfg` resets them anyway, and releasing after every call measured
/// no faster.
///
/// # Safety
/// The CPU has AMX-BF16 and this process has the OS's permission to use tiles
/// (`amx_bf16_supported`); `chunks >= 1`; `a.ptr` holds `16·R` rows of `16 · chunks`
/// pairs at stride `a.rs` pairs; `b` holds `16 · chunks` rows of 32 pairs; `c` is
/// readable and writable at `r * ldc + j`, `r < 16·R`, `j < 32`.
#[inline]
unsafe fn amx_tile(two_rows: bool, chunks: usize, a: APanel<Bf16Pair>, b: *const Bf16Pair, c: *mut f32, ldc: usize, accumulate: bool) {
    debug_assert!(chunks >= 1);
    macro_rules! amx_asm {
        ($($row2:literal),*) => {
            std::arch::asm!(
                "ldtilecfg [{cfg}]",
                // Unused with one row of tiles (an assembler comment uses them).
                "/* second row of tiles: C {c16}, A {a16} */",
                "test {load}, {load}",
                "jz 2f",
                "tileloadd tmm0, [{c} + {ldc}*1]",
                "tileloadd tmm1, [{c} + {ldc}*1 + 64]",
                $(concat!("tileloadd tmm2, [{c16} + {ldc}*1]", $row2),
                "tileloadd tmm3, [{c16} + {ldc}*1 + 64]",)*
                "jmp 3f",
                "2:",
                "tilezero tmm0",
                "tilezero tmm1",
                $(concat!("tilezero tmm2", $row2),
                "tilezero tmm3",)*
                "3:",
                "tileloadd tmm4, [{a} + {lda}*1]",
                $(concat!("tileloadd tmm5, [{a16} + {lda}*1]", $row2),)*
                "tileloadd tmm6, [{b} + {ldb}*1]",
                "tileloadd tmm7, [{b} + {ldb}*1 + 64]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                $(concat!("tdpbf16ps tmm2, tmm5, tmm6", $row2),
                "tdpbf16ps tmm3, tmm5, tmm7",
                "add {a16}, 64",)*
                "add {a}, 64",
                "add {b}, 2048",
                "dec {n}",
                "jnz 3b",
                "tilestored [{c} + {ldc}*1], tmm0",
                "tilestored [{c} + {ldc}*1 + 64], tmm1",
                $(concat!("tilestored [{c16} + {ldc}*1], tmm2", $row2),
                "tilestored [{c16} + {ldc}*1 + 64], tmm3",)*
                cfg = in(reg) &TILE_CONFIG,
                load = in(reg) usize::from(accumulate),
                c = in(reg) c,
                c16 = in(reg) c.wrapping_add(16 * ldc),
                ldc = in(reg) ldc * 4,
                a = inout(reg) a.ptr => _,
                a16 = inout(reg) a.ptr.wrapping_add(16 * a.rs) => _,
                lda = in(reg) a.rs * 4,
                b = inout(reg) b => _,
                ldb = in(reg) 32usize * 4,
                n = inout(reg) chunks => _,
                options(nostack),
            )
        };
    }
    // SAFETY: the caller's contract covers every address the tiles load and store
    // (16 rows of 64 bytes from each base at the given strides); the tile registers are
    // not Rust-allocated, so clobbering them breaks no compiled code.
    unsafe {
        if two_rows {
            amx_asm!("")
        } else {
            amx_asm!()
        }
    }
}
