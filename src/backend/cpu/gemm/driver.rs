//! The GEMM driver: blocking, threading, the epilogue (see the module doc, `gemm/mod.rs`).

#[cfg(target_arch = "x86_64")]
use super::kernel::{Avx2, Avx512, Avx512Bf16};
use super::kernel::{MicroKernel, Portable};
#[cfg(target_arch = "x86_64")]
use super::kernel_amx::AmxBf16;
#[cfg(target_arch = "x86_64")]
use super::kernel_int8::Avx512Vnni;
use super::matrix::{APanel, MatRef};
use super::pack::{with_scratch, Aligned, PanelElem};
use crate::backend::cpu::parallel::{for_each_index, leads_team};
use crate::backend::cpu::simd::{int8_dot_supported, Bf16Kernel, Isa};

/// Work applied to finished rows of `C`: `apply(row, col0, out)` gets `C[row, col0..col0+out.len()]`.
pub trait Epilogue: Sync {
    fn apply(&self, row: usize, col0: usize, out: &mut [f32]);
}

/// No epilogue.
pub struct Plain;

impl Epilogue for Plain {
    #[inline]
    fn apply(&self, _row: usize, _col0: usize, _out: &mut [f32]) {}
}

/// `C = A · B` (or `C += A · B` when `accumulate`), then the epilogue on every element.
pub fn gemm(a: MatRef, b: MatRef, c: &mut [f32], ldc: usize, accumulate: bool, epilogue: &dyn Epilogue) {
    gemm_with_isa(Isa::current(), a, b, c, ldc, accumulate, epilogue)
}

/// [`gemm`] on the kernels of a given instruction set (tests cover every path with it).
///
/// # Panics
/// If the CPU cannot execute `isa`, or the shapes disagree or exceed their buffers.
pub fn gemm_with_isa(isa: Isa, a: MatRef, b: MatRef, c: &mut [f32], ldc: usize, accumulate: bool, epilogue: &dyn Epilogue) {
    assert_eq!(b.rows, a.cols, "inner dimensions differ");
    b.check_bounds();
    launch(Kernels::F32(isa), a, BSource::View(b), b.cols, c, ldc, accumulate, epilogue);
}

/// Which microkernels a product runs on: f32 ones of an instruction set, or bf16.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernels {
    F32(Isa),
    /// Dot products of bf16-rounded operands, summed in f32.
    Bf16(Bf16Kernel),
    /// Dot products of int8-quantized operands (AVX512-VNNI), summed in i32.
    Int8,
}

/// `B` packed once into the panel layout of one family of kernels, for products that reuse
/// it (a `Linear` weight at inference): [`gemm_packed`] then skips the packing, which costs
/// ≈ 15 % of a one-sentence (m ≈ 37) product.
pub struct PackedB {
    kernels: Kernels,
    k: usize,
    n: usize,
    /// Depth blocks of `kc` steps (the last may be shorter), each `ceil(n / NR)` panels of
    /// `panel_rows(kc) × NR` elements: the panel `q` of block `kb` (depth `kb · kc_max`
    /// on) is at `kb · panel_rows(kc_max) · n_padded + q · panel_rows(kc) · NR`.
    panels: Aligned,
}

impl PackedB {
    /// Packs `b` for the kernels [`gemm`] uses on this CPU.
    pub fn new(b: MatRef) -> Self {
        Self::with_isa(Isa::current(), b)
    }

    /// Packs `b` for the kernels of `isa`.
    ///
    /// # Panics
    /// If the CPU cannot execute `isa` or `b` exceeds its data.
    pub fn with_isa(isa: Isa, b: MatRef) -> Self {
        assert!(isa.is_supported(), "this CPU cannot run {} kernels", isa.name());
        match isa {
            Isa::Scalar => Self::pack::<Scalar>(Kernels::F32(isa), b),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => Self::pack::<Avx2>(Kernels::F32(isa), b),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Self::pack::<Avx512>(Kernels::F32(isa), b),
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("x86 instruction sets are never available elsewhere"),
        }
    }

    /// Packs `b` rounded to bf16 (to nearest, ties to even) for the bf16 kernel of this CPU
    /// ([`Bf16Kernel::current`]): [`gemm_packed`] then rounds A to bf16 too and sums the
    /// products in f32. 8 significant bits per operand: an inference option whose accuracy
    /// cost callers measure (see `tests/encoder_golden.rs`).
    ///
    /// # Panics
    /// If the CPU has no bf16 kernel (check [`crate::backend::cpu::simd::bf16_dot_supported`] first) or
    /// `b` exceeds its data.
    pub fn bf16(b: MatRef) -> Self {
        let kernel = Bf16Kernel::current().expect("this CPU has no AVX512-BF16 (bf16 products need it)");
        Self::bf16_with(kernel, b)
    }

    /// [`PackedB::bf16`] for a given bf16 kernel (tests cover both with it).
    ///
    /// # Panics
    /// If the CPU (or OS) cannot run `kernel`, or `b` exceeds its data.
    pub fn bf16_with(kernel: Bf16Kernel, b: MatRef) -> Self {
        assert!(kernel.is_supported(), "this CPU cannot run the {} bf16 kernel", kernel.name());
        #[cfg(target_arch = "x86_64")]
        return match kernel {
            Bf16Kernel::Avx512Bf16 => Self::pack::<Avx512Bf16>(Kernels::Bf16(kernel), b),
            Bf16Kernel::Amx => Self::pack::<AmxBf16>(Kernels::Bf16(kernel), b),
        };
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("bf16 kernels are never available elsewhere")
    }

    /// Packs `b` quantized to int8 for the AVX512-VNNI kernel: each column to `i8` with its
    /// own scale; [`gemm_packed`] then quantizes each row of A to `u8` with its own scale and
    /// zero point and sums the products exactly in i32 (see [`super::pack_int8`]). An
    /// inference option whose accuracy cost callers measure (see `tests/encoder_golden.rs`).
    ///
    /// # Panics
    /// If the CPU has no AVX512-VNNI (check [`crate::backend::cpu::simd::int8_dot_supported`] first) or
    /// `b` exceeds its data.
    pub fn int8(b: MatRef) -> Self {
        assert!(int8_dot_supported(), "this CPU has no AVX512-VNNI (int8 products need it)");
        #[cfg(target_arch = "x86_64")]
        return Self::pack::<Avx512Vnni>(Kernels::Int8, b);
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("int8 kernels are never available elsewhere")
    }

    fn pack<K: MicroKernel>(kernels: Kernels, b: MatRef) -> Self {
        b.check_bounds();
        let (k, n) = (b.rows, b.cols);
        let kc_max = depth_block::<K>(k);
        let block_stride = n.next_multiple_of(K::NR);
        let blocks = k.div_ceil(kc_max.max(1)).max(1);
        let mut panels = Aligned::zeroed(blocks * panel_rows::<K>(kc_max) * block_stride);
        for (kb, pc) in (0..k).step_by(kc_max.max(1)).enumerate() {
            let kc = kc_max.min(k - pc);
            let out = &mut panels.as_mut_slice::<K::Elem>()[kb * panel_rows::<K>(kc_max) * block_stride..];
            K::Elem::pack_b(b, pc..pc + kc, 0..n, K::NR, panel_rows::<K>(kc), out, vector_b_pack(kernels));
        }
        PackedB { kernels, k, n, panels }
    }

    /// `(k, n)`: the shape of the packed `B`.
    pub fn shape(&self) -> (usize, usize) {
        (self.k, self.n)
    }

    /// Whether products with this `B` run on the bf16 kernel.
    pub fn is_bf16(&self) -> bool {
        matches!(self.kernels, Kernels::Bf16(_))
    }

    /// Whether products with this `B` run on the int8 kernel.
    pub fn is_int8(&self) -> bool {
        self.kernels == Kernels::Int8
    }
}

/// `C = A · B` (or `C += A · B`) with a pre-packed `B`, on the kernels it was packed for;
/// otherwise as [`gemm`].
pub fn gemm_packed(a: MatRef, b: &PackedB, c: &mut [f32], ldc: usize, accumulate: bool, epilogue: &dyn Epilogue) {
    assert_eq!(b.k, a.cols, "inner dimensions differ");
    launch(b.kernels, a, BSource::Packed(b), b.n, c, ldc, accumulate, epilogue);
}

/// Whether f32 `B` is packed with the AVX2 transposing copy: the vector paths do, when the
/// CPU has AVX2 (every AVX-512 CPU so far has, but that is checked, not assumed).
fn vector_b_pack(kernels: Kernels) -> bool {
    kernels != Kernels::F32(Isa::Scalar) && Isa::Avx2.is_supported()
}

/// Depth of the packed blocks of `K` for `k`: `k` cut into equal blocks whose `NR`-wide
/// panels hold at most `K::B_PANEL_BYTES`, a multiple of the kernel's depth alignment (a bf16
/// pair never straddles two blocks, and only the last block is padded).
fn depth_block<K: MicroKernel>(k: usize) -> usize {
    let max_depth = K::B_PANEL_BYTES / (4 * K::NR) * K::Elem::DEPTH;
    k.div_ceil(k.div_ceil(max_depth).max(1)).next_multiple_of(K::DEPTH_ALIGN)
}

/// Rows of elements in a packed panel (or elements in a packed strip row) of depth `kc`
/// for `K`, the quantization parameters after the depth included.
fn panel_rows<K: MicroKernel>(kc: usize) -> usize {
    kc.next_multiple_of(K::DEPTH_ALIGN) / K::Elem::DEPTH + K::Elem::PARAMS
}

/// Checks the shapes shared by every entry point and runs the product on `isa`.
#[allow(clippy::too_many_arguments)]
fn launch(kernels: Kernels, a: MatRef, b: BSource, n: usize, c: &mut [f32], ldc: usize, accumulate: bool, epilogue: &dyn Epilogue) {
    let (m, k) = (a.rows, a.cols);
    a.check_bounds();
    if m == 0 || n == 0 {
        return;
    }
    assert!(m == 1 || ldc >= n, "C rows overlap (ldc < n)");
    let c_end = (m - 1).checked_mul(ldc).and_then(|start| start.checked_add(n));
    assert!(c_end.is_some_and(|end| end <= c.len()), "C out of bounds");
    if k == 0 {
        for i in 0..m {
            let row = &mut c[i * ldc..i * ldc + n];
            if !accumulate {
                row.fill(0.0);
            }
            epilogue.apply(i, 0, row);
        }
        return;
    }
    let job = Job { a, b, n, c: CPtr(c.as_mut_ptr()), ldc, accumulate, epilogue, vector_b_pack: vector_b_pack(kernels) };
    match kernels {
        Kernels::F32(isa) => {
            assert!(isa.is_supported(), "this CPU cannot run {} kernels", isa.name());
            match isa {
                Isa::Scalar => job.run::<Scalar>(),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => job.run::<Avx2>(),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => job.run::<Avx512>(),
                #[cfg(not(target_arch = "x86_64"))]
                _ => unreachable!("x86 instruction sets are never available elsewhere"),
            }
        }
        Kernels::Bf16(kernel) => {
            // Checked when B was packed; checked again as the kernel's safety rests on it.
            assert!(kernel.is_supported(), "this CPU cannot run the {} bf16 kernel", kernel.name());
            #[cfg(target_arch = "x86_64")]
            match kernel {
                Bf16Kernel::Avx512Bf16 => job.run::<Avx512Bf16>(),
                Bf16Kernel::Amx => job.run::<AmxBf16>(),
            }
        }
        Kernels::Int8 => {
            // Checked when B was packed; checked again as the kernel's safety rests on it.
            assert!(int8_dot_supported(), "this CPU has no AVX512-VNNI (int8 products need it)");
            #[cfg(target_arch = "x86_64")]
            job.run::<Avx512Vnni>();
        }
    }
}

/// The portable kernel the scalar path uses.
type Scalar = Portable<4, 2>;

/// Where the product reads B from.
#[derive(Clone, Copy)]
enum BSource<'a> {
    /// Packed block by block into per-thread scratch.
    View(MatRef<'a>),
    /// Already packed for this instruction set.
    Packed(&'a PackedB),
}

/// Rows of A per block: `MC × kc` of A (108 KiB at kc = 384) stays in L2 (512 KiB) while
/// the B panels sweep it; measured best among 48…288 on Zen 3.
const MC: usize = 72;
/// Columns of B per packed block (`kc × NC`, 1.1 MiB at kc = 384, lives in L2/L3).
const NC: usize = 768;
/// Below this many flops (2mnk) one thread does the whole product.
const PAR_MIN_FLOPS: usize = 1 << 21;
/// Rectangles of C per rayon thread (when the product is split at all): rayon's work
/// stealing then hides a worker that wakes late or a core shared with another process. On
/// a spinning team (`parallel::with_team`), whose threads are awake when a product starts,
/// each thread takes one rectangle: a one-sentence forward runs ≈ 11 % faster than with four
/// (each thread streams one longer run of weight panels).
const TASKS_PER_THREAD: usize = 4;
/// Largest tile of any kernel (`MR × NR`): the scratch tile for right-edge panels.
const MAX_TILE: usize = 32 * 32;

/// `C` as a raw pointer, so threads can write disjoint rectangles of it.
#[derive(Clone, Copy)]
struct CPtr(*mut f32);

// SAFETY: every task of one `Job` writes a rectangle of C disjoint from the others', and the
// `&mut [f32]` it came from is borrowed by `launch` until all tasks have finished.
unsafe impl Send for CPtr {}
// SAFETY: as for `Send`.
unsafe impl Sync for CPtr {}

/// One checked product, shared by the threads that compute its parts.
struct Job<'a> {
    a: MatRef<'a>,
    b: BSource<'a>,
    n: usize,
    c: CPtr,
    ldc: usize,
    accumulate: bool,
    epilogue: &'a dyn Epilogue,
    /// Pack an f32 `B` view with the AVX2 transposing copy.
    vector_b_pack: bool,
}

/// The rows of A cut into `ceil(m / MR)` strips whose heights, in units of `align` rows,
/// differ by at most one (37 rows on AVX2, `align` 1: 6, 6, 5, 5, 5, 5, 5), so no strip is a
/// thin remainder that runs at low throughput; only the last strip may end inside a unit.
/// A kernel whose cost goes by whole hardware tiles sets `align` to the tile height (37 rows
/// on AMX, `align` 16: 32 and 5, three 16-row tiles rather than four for 19 and 18).
#[derive(Clone, Copy)]
struct Strips {
    m: usize,
    align: usize,
    size: usize,
    rem: usize,
    count: usize,
}

impl Strips {
    /// `mr` is a multiple of `align`.
    fn new(m: usize, mr: usize, align: usize) -> Self {
        debug_assert!(mr.is_multiple_of(align));
        let (count, units) = (m.div_ceil(mr), m.div_ceil(align));
        Strips { m, align, size: units / count, rem: units % count, count }
    }

    /// First row and height of strip `i`.
    fn get(&self, i: usize) -> (usize, usize) {
        let start = (i * self.size + i.min(self.rem)) * self.align;
        let height = (self.size + usize::from(i < self.rem)) * self.align;
        (start, height.min(self.m - start))
    }
}

impl Job<'_> {
    /// Splits C into a grid of `tm × tn` rectangles and computes them in parallel.
    ///
    /// Each rectangle packs the B columns it needs and reads (or packs) the A rows it needs,
    /// so splitting m duplicates B packing and splitting n duplicates A reads: the grid that
    /// minimises `tm·n + tn·m` is chosen (a big batch splits m, one sentence splits n).
    /// There are `TASKS_PER_THREAD` rectangles per thread under rayon, one on a team.
    fn run<K: MicroKernel>(&self) {
        let (m, k, n) = (self.a.rows, self.a.cols, self.n);
        let strips = Strips::new(m, K::MR, K::ROW_ALIGN);
        let panels = n.div_ceil(K::NR);
        let threads = if 2 * m * n * k < PAR_MIN_FLOPS { 1 } else { rayon::current_num_threads() };
        let per_thread = if leads_team() { 1 } else { TASKS_PER_THREAD };
        let tasks = if threads == 1 { 1 } else { threads * per_thread };
        let (tm, tn) = (1..=tasks.min(strips.count)).map(|tm| (tm, tasks.div_ceil(tm).min(panels))).min_by_key(|&(tm, tn)| tm * n + tn * m).unwrap_or((1, 1));
        let part = |t: usize| {
            let (i, j) = (t / tn, t % tn);
            let cols = (j * panels / tn * K::NR)..((j + 1) * panels / tn * K::NR).min(n);
            self.part::<K>(strips, i * strips.count / tm..(i + 1) * strips.count / tm, cols);
        };
        if tm * tn == 1 {
            part(0);
        } else {
            for_each_index(tm * tn, part);
        }
    }

    /// Computes `C[strips, cols]` on this thread: loops over NC columns, KC depths and MC
    /// rows around the `MR × NR` microkernel, then the epilogue on each finished block.
    fn part<K: MicroKernel>(&self, strips: Strips, strip_range: std::ops::Range<usize>, cols: std::ops::Range<usize>) {
        const { assert!(K::MR * K::NR <= MAX_TILE) };
        let (a, k) = (self.a, self.a.cols);
        let kc_max = depth_block::<K>(k);
        let k_blocks = k.div_ceil(kc_max);
        // Rows of elements of a packed block of depth `kc`.
        let elems = panel_rows::<K>;
        // Columns per block: NC, except for quantized elements, whose A strips cost a pass
        // over their rows to make (int8: scale, zero point, then the values) — each is made
        // once per part, over all the part's columns (B is always pre-packed for them).
        let nc_block = if K::Elem::PARAMS > 0 { cols.len().max(1) } else { NC };
        let nc_max = match self.b {
            BSource::View(_) => nc_block.min(cols.len()).next_multiple_of(K::NR),
            BSource::Packed(_) => 0,
        };
        let block_strips = (MC / K::MR).max(1);
        let b_pack_len = elems(kc_max) * nc_max;
        let a_strip_len = K::Elem::a_scratch_len(&a, K::MR, elems(kc_max));
        with_scratch(b_pack_len + block_strips * a_strip_len, |scratch: &mut [K::Elem]| {
            let (b_pack, a_pack) = scratch.split_at_mut(b_pack_len);
            for jc in cols.clone().step_by(nc_block) {
                let nc = nc_block.min(cols.end - jc);
                for kb in 0..k_blocks {
                    let pc = kb * kc_max;
                    let kc = kc_max.min(k - pc);
                    let b_block: &[K::Elem] = match self.b {
                        BSource::View(b) => {
                            K::Elem::pack_b(b, pc..pc + kc, jc..jc + nc, K::NR, elems(kc), b_pack, self.vector_b_pack);
                            b_pack
                        }
                        BSource::Packed(b) => {
                            let block_stride = self.n.next_multiple_of(K::NR);
                            &b.panels.as_slice()[kb * elems(kc_max) * block_stride + jc / K::NR * elems(kc) * K::NR..]
                        }
                    };
                    let accumulate = self.accumulate || kb > 0;
                    for s0 in strip_range.clone().step_by(block_strips) {
                        let block = s0..(s0 + block_strips).min(strip_range.end);
                        let mut panels = [APanel { ptr: std::ptr::null(), rs: 0, cs: 0 }; MC];
                        for (i, (panel, s)) in panels.iter_mut().zip(block.clone()).enumerate() {
                            let (r0, rows) = strips.get(s);
                            let scratch = &mut a_pack[i * a_strip_len..(i + 1) * a_strip_len];
                            let padded = (rows.next_multiple_of(K::ROW_ALIGN), elems(kc));
                            *panel = K::Elem::a_strip(a, r0, rows, pc, kc, padded, scratch);
                        }
                        let panels = &panels[..block.len()];
                        for (q, j0) in (jc..jc + nc).step_by(K::NR).enumerate() {
                            let b_panel = &b_block[q * elems(kc) * K::NR..(q + 1) * elems(kc) * K::NR];
                            for (s, panel) in block.clone().zip(panels) {
                                self.tile::<K>(strips.get(s), j0, (jc + nc - j0).min(K::NR), kc, *panel, b_panel, accumulate);
                            }
                        }
                        if kb + 1 == k_blocks {
                            let (r0, _) = strips.get(block.start);
                            let (r1, rows) = strips.get(block.end - 1);
                            for i in r0..r1 + rows {
                                self.epilogue.apply(i, jc, self.c_row(i, jc, nc));
                            }
                        }
                    }
                }
            }

            // SAFETY: the kernel ISA was checked by `launch`.
            unsafe { K::release() };
        });
    }

    /// One microkernel call: `C[r0..r0+rows, j0..j0+width] (+)= strip · panel`. A right-edge
    /// panel narrower than NR is computed into a scratch tile and then merged into C.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn tile<K: MicroKernel>(&self, (r0, rows): (usize, usize), j0: usize, width: usize, kc: usize, a: APanel<K::Elem>, b_panel: &[K::Elem], accumulate: bool) {
        debug_assert!(b_panel.len() >= panel_rows::<K>(kc) * K::NR && rows <= K::MR);
        if width == K::NR {
            // SAFETY: the kernel ISA was checked by `launch`; `a` points at a strip of
            // `rows × kc` readable depth steps (checked view or packed scratch); `b_panel`
            // holds `kc × NR` of them; the C tile lies inside the checked `c` slice and in
            // this part's rectangle, which no other thread touches.
            unsafe {
                let c = self.c.0.add(r0 * self.ldc + j0);
                K::tile(rows, kc, a, b_panel.as_ptr(), c, self.ldc, accumulate)
            }
        } else {
            let mut t = [0.0f32; MAX_TILE];
            // SAFETY: as above, with the C tile replaced by `t`, `rows × NR` with stride NR.
            unsafe { K::tile(rows, kc, a, b_panel.as_ptr(), t.as_mut_ptr(), K::NR, false) };
            for (r, t) in t.chunks_exact(K::NR).take(rows).enumerate() {
                let out = self.c_row(r0 + r, j0, width);
                for (o, &t) in out.iter_mut().zip(t) {
                    *o = if accumulate { *o + t } else { t };
                }
            }
        }
    }

    /// `C[i, j0..j0+len]` as a slice.
    #[allow(clippy::mut_from_ref)]
    fn c_row(&self, i: usize, j0: usize, len: usize) -> &mut [f32] {
        // SAFETY: the segment lies inside the checked `c` slice, in the calling part's
        // rectangle, and the returned borrow ends before that part touches it again.
        unsafe { std::slice::from_raw_parts_mut(self.c.0.add(i * self.ldc + j0), len) }
    }
}

/// The slow, obvious reference: one dot product per output element.
pub fn gemm_reference(a: MatRef, b: MatRef, c: &mut [f32], ldc: usize, accumulate: bool, epilogue: &dyn Epilogue) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "inner dimensions differ");
    assert!(m == 0 || c.len() >= (m - 1) * ldc + n, "C out of bounds");
    for i in 0..m {
        let row = &mut c[i * ldc..i * ldc + n];
        for (j, out) in row.iter_mut().enumerate() {
            let mut sum = 0.0f32;
            for p in 0..k {
                sum += a.at(i, p) * b.at(p, j);
            }
            *out = if accumulate { *out + sum } else { sum };
        }
        epilogue.apply(i, 0, row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX-512 geometry (12 × 32 tiles) run with portable vectors: covers the blocking,
    /// strip and edge logic of that path on CPUs without AVX-512.
    #[test]
    fn avx512_geometry_on_portable_kernel() {
        for (m, k, n) in [(1, 1, 1), (13, 5, 33), (37, 384, 384), (25, 257, 65), (150, 300, 70)] {
            for transposed_b in [false, true] {
                let a_data: Vec<f32> = (0..m * k).map(|x| ((x * 7 + 3) % 23) as f32 - 11.0).collect();
                let b_data: Vec<f32> = (0..k * n).map(|x| ((x * 5 + 1) % 19) as f32 - 9.0).collect();
                let a = MatRef::row_major(&a_data, m, k);
                let b = if transposed_b { MatRef::transposed(&b_data, n, k) } else { MatRef::row_major(&b_data, k, n) };
                let mut want = vec![1.0f32; m * n];
                gemm_reference(a, b, &mut want, n, true, &Plain);
                let mut got = vec![1.0f32; m * n];
                let job = Job { a, b: BSource::View(b), n, c: CPtr(got.as_mut_ptr()), ldc: n, accumulate: true, epilogue: &Plain, vector_b_pack: false };
                job.run::<Portable<12, 8>>();
                // Small integers: every partial sum is exact in f32, whatever the order.
                assert_eq!(got, want, "m={m} k={k} n={n} transposed_b={transposed_b}");
            }
        }
    }
}
