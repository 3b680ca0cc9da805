//! [`Region`]: the memory both ends of the channel see, and [`MemRegion`],
//! a region over raw memory (the shared page in the image, an mmap in the
//! proxy, a heap buffer in tests).
//!
//! The other end writes this memory at any moment, so no Rust reference
//! to it is ever formed: bytes are copied in and out one atomic access at
//! a time, and the two sequence words are the only acquire/release points.
//! Callers copy what they need into private memory and validate the copy.
// Raw-pointer access to memory shared with another party is this module's
// whole job; every access is bounds-checked against the length given to
// `MemRegion::new`.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

/// Memory both ends see. Offsets outside the region are a caller bug: an
/// implementation reads zeros there and drops writes, never faults.
pub trait Region {
    /// Length in bytes.
    fn len(&self) -> usize;
    /// Whether the region has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Copies `buf.len()` bytes at `offset` out of the region.
    fn read(&self, offset: usize, buf: &mut [u8]);
    /// Copies `data` into the region at `offset`.
    fn write(&mut self, offset: usize, data: &[u8]);
    /// Loads the little-endian u32 at `offset` (4-aligned) with acquire
    /// ordering: what the other end wrote before its release store of it
    /// is visible after.
    fn load_u32_acquire(&self, offset: usize) -> u32;
    /// Stores `value` little-endian at `offset` (4-aligned) with release
    /// ordering: everything written before is visible to an acquire load
    /// that sees it.
    fn store_u32_release(&mut self, offset: usize, value: u32);

    /// Reads a little-endian u32 (plain copy).
    fn read_u32(&self, offset: usize) -> u32 {
        let mut b = [0u8; 4];
        self.read(offset, &mut b);
        u32::from_le_bytes(b)
    }
    /// Writes a little-endian u32 (plain copy).
    fn write_u32(&mut self, offset: usize, value: u32) {
        self.write(offset, &value.to_le_bytes());
    }
}

impl<R: Region + ?Sized> Region for &mut R {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        (**self).read(offset, buf)
    }
    fn write(&mut self, offset: usize, data: &[u8]) {
        (**self).write(offset, data)
    }
    fn load_u32_acquire(&self, offset: usize) -> u32 {
        (**self).load_u32_acquire(offset)
    }
    fn store_u32_release(&mut self, offset: usize, value: u32) {
        (**self).store_u32_release(offset, value)
    }
}

/// A [`Region`] over `len` bytes of raw memory that another party (another
/// thread, process or VM) may change at any time.
#[derive(Debug)]
pub struct MemRegion {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: a MemRegion only holds an address; every access through it is an
// atomic operation, so moving it to another thread creates no data race.
// `new`'s caller guarantees the memory stays valid wherever it is used.
unsafe impl Send for MemRegion {}

impl MemRegion {
    /// A region over `len` bytes at `ptr`.
    ///
    /// # Safety
    /// - `ptr` is 4-byte aligned and valid for reads and writes of `len`
    ///   bytes for as long as the returned value (on any thread) exists;
    /// - no Rust reference to those bytes exists or is created while it
    ///   exists: in this process they are only accessed through
    ///   `MemRegion`s (other processes or the other VM may write them in
    ///   any way).
    pub unsafe fn new(ptr: *mut u8, len: usize) -> Self {
        debug_assert!(
            (ptr as usize).is_multiple_of(4),
            "MemRegion must be 4-byte aligned"
        );
        Self { ptr, len }
    }

    /// The start address.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// `offset..offset + n` if it lies inside the region.
    fn span(&self, offset: usize, n: usize) -> Option<usize> {
        let end = offset.checked_add(n)?;
        (end <= self.len).then_some(offset)
    }

    fn byte(&self, offset: usize) -> &AtomicU8 {
        // SAFETY: callers pass offsets below `len` (checked by `span`), so
        // the address lies in the memory `new`'s caller vouched for; an
        // AtomicU8 has alignment 1; the memory is only accessed atomically
        // in this process (new's contract), so the atomic view is sound.
        unsafe { AtomicU8::from_ptr(self.ptr.add(offset)) }
    }

    fn word(&self, offset: usize) -> Option<&AtomicU32> {
        self.span(offset, 4)?;
        if !(self.ptr as usize).wrapping_add(offset).is_multiple_of(4) {
            return None;
        }
        // SAFETY: in bounds (checked above) and 4-aligned (checked above);
        // the memory is only accessed atomically in this process.
        Some(unsafe { AtomicU32::from_ptr(self.ptr.add(offset).cast::<u32>()) })
    }
}

impl Region for MemRegion {
    fn len(&self) -> usize {
        self.len
    }

    fn read(&self, offset: usize, buf: &mut [u8]) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = match offset.checked_add(i).and_then(|o| self.span(o, 1)) {
                Some(o) => self.byte(o).load(Ordering::Relaxed),
                None => 0,
            };
        }
    }

    fn write(&mut self, offset: usize, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            if let Some(o) = offset.checked_add(i).and_then(|o| self.span(o, 1)) {
                self.byte(o).store(b, Ordering::Relaxed);
            }
        }
    }

    fn load_u32_acquire(&self, offset: usize) -> u32 {
        self.word(offset)
            .map_or(0, |w| u32::from_le(w.load(Ordering::Acquire)))
    }

    fn store_u32_release(&mut self, offset: usize, value: u32) {
        if let Some(w) = self.word(offset) {
            w.store(value.to_le(), Ordering::Release);
        }
    }
}

/// Test support: `N` regions over one leaked, zeroed heap buffer, as the
/// guest and the host (or several host processes) see one shared page.
#[cfg(test)]
pub(crate) fn shared_views<const N: usize>(len: usize) -> [MemRegion; N] {
    let words = alloc::vec![0u64; len.div_ceil(8)];
    let ptr = alloc::boxed::Box::leak(words.into_boxed_slice())
        .as_mut_ptr()
        .cast::<u8>();
    // SAFETY: the leaked buffer lives forever, is 8-aligned and at least
    // `len` bytes; the reference from `leak` is not used again, so only
    // these MemRegions access it.
    core::array::from_fn(|_| unsafe { MemRegion::new(ptr, len) })
}

/// Test support: the guest's and the host's view of one shared buffer.
#[cfg(test)]
pub(crate) fn shared_pair(len: usize) -> (MemRegion, MemRegion) {
    let [a, b] = shared_views(len);
    (a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_views_see_each_others_writes_and_out_of_range_is_inert() {
        let (mut a, b) = shared_pair(64);
        a.write(8, b"hello");
        let mut buf = [0u8; 5];
        b.read(8, &mut buf);
        assert_eq!(&buf, b"hello");
        a.store_u32_release(0x10, 0xdead_beef);
        assert_eq!(b.load_u32_acquire(0x10), 0xdead_beef);
        assert_eq!(b.read_u32(0x10), 0xdead_beef);
        let mut raw = [0u8; 4];
        b.read(0x10, &mut raw);
        assert_eq!(raw, 0xdead_beef_u32.to_le_bytes(), "little-endian");
        // Past the end: zeros read, writes dropped, no fault.
        let mut tail = [0xffu8; 4];
        b.read(62, &mut tail);
        assert_eq!(tail, [0, 0, 0, 0]);
        a.write(62, &[1, 2, 3, 4]);
        let mut last = [0u8; 2];
        b.read(62, &mut last);
        assert_eq!(last, [1, 2]);
        assert_eq!(b.load_u32_acquire(64), 0);
        assert_eq!(b.load_u32_acquire(2), 0, "unaligned word");
        a.store_u32_release(usize::MAX - 1, 7);
        b.read(usize::MAX, &mut tail);
    }
}
