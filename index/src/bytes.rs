//! Zero-copy views of little-endian byte slices as typed slices.

use half::f16;

#[cfg(not(target_endian = "little"))]
compile_error!("rmx-index maps little-endian data in place: big-endian hosts are not supported");

mod sealed {
    pub trait Sealed {}
}

/// Plain types valid for every bit pattern, without padding.
pub trait Pod: sealed::Sealed + Copy + 'static {}
macro_rules! pod {
    ($($t:ty),*) => {$(impl sealed::Sealed for $t {} impl Pod for $t {})*};
}
pod!(u32, u64, f32, f16);

/// View `b` as `&[T]`; `None` if `b` is misaligned for `T` or its length is not a multiple
/// of `size_of::<T>()`.
pub fn cast<T: Pod>(b: &[u8]) -> Option<&[T]> {
    let size = std::mem::size_of::<T>();
    if b.as_ptr().align_offset(std::mem::align_of::<T>()) != 0 || b.len() % size != 0 {
        return None;
    }
    // SAFETY: the pointer is aligned for T (checked above) and the region of
    // `b.len() / size * size == b.len()` bytes lies within `b`, which is borrowed for the
    // returned lifetime. T is one of u32/u64/f32/f16: no padding and every bit pattern is a
    // valid value (sealed trait), so any bytes are a valid [T]. The host is little-endian
    // (compile-time check above), matching the on-disk byte order.
    Some(unsafe { std::slice::from_raw_parts(b.as_ptr() as *const T, b.len() / size) })
}
