//! Matrix views shared by the driver, the packing code and the microkernels.

/// A read-only strided matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major matrix `rows × cols`.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert!(data.len() >= rows * cols, "matrix view out of bounds");
        MatRef { data, rows, cols, rs: cols, cs: 1 }
    }

    /// The transpose of a row-major `rows × cols` matrix (a `cols × rows` view).
    pub fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert!(data.len() >= rows * cols, "matrix view out of bounds");
        MatRef { data, rows: cols, cols: rows, rs: 1, cs: cols }
    }

    #[inline]
    pub fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.rs + j * self.cs]
    }
}

impl MatRef<'_> {
    /// Panics unless every element of the view lies inside `data` (the fast path reads
    /// through raw pointers, so views built field by field are checked here).
    pub(super) fn check_bounds(&self) {
        if self.rows > 0 && self.cols > 0 {
            let last = (self.rows - 1).checked_mul(self.rs).zip((self.cols - 1).checked_mul(self.cs)).and_then(|(r, c)| r.checked_add(c));
            assert!(last.is_some_and(|last| last < self.data.len()), "matrix view out of bounds");
        }
    }
}

/// Where a microkernel reads its strip of `A`: element `(r, p)` is at `ptr + r * rs + p * cs`
/// (`p` counts elements, each covering `E::DEPTH` depth steps).
pub(crate) struct APanel<E> {
    pub ptr: *const E,
    pub rs: usize,
    pub cs: usize,
}

impl<E> Clone for APanel<E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for APanel<E> {}
