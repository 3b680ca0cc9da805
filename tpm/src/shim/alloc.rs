//! `malloc`, `calloc`, `realloc`, `free` on top of the Rust global allocator.
//!
//! C's `free` gets no size, Rust's `dealloc` needs the layout: every block
//! starts with a 16-byte header holding the requested size, and the caller
//! gets the address just after it. Blocks are 16-byte aligned, as glibc's
//! `malloc` guarantees on x86_64 (libcrypto relies on it for SSE code).

use ::alloc::alloc::{alloc, alloc_zeroed, dealloc, realloc as rust_realloc, Layout};
use core::ffi::c_void;
use core::ptr;

use super::errno::{set_errno, ENOMEM};

/// Bytes in front of every block (keeps the payload 16-byte aligned).
const HEADER: usize = 16;
/// Alignment of every block.
pub const ALIGN: usize = 16;

/// The layout of a block with `size` payload bytes, if it is representable.
fn block_layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size.checked_add(HEADER)?, ALIGN).ok()
}

/// Writes the header of a fresh block and returns the payload pointer.
///
/// # Safety
/// `base` is NULL or a block allocated with `block_layout(size)`.
unsafe fn finish(base: *mut u8, size: usize) -> *mut c_void {
    if base.is_null() {
        set_errno(ENOMEM);
        return ptr::null_mut();
    }
    // SAFETY: the block is at least HEADER bytes and ALIGN-aligned, so the
    // header slot is valid and aligned for a usize; the payload starts at
    // HEADER, inside the block.
    unsafe {
        base.cast::<usize>().write(size);
        base.add(HEADER).cast()
    }
}

/// The block start and payload size of a pointer returned by this module.
///
/// # Safety
/// `p` is a non-NULL pointer returned by `malloc`/`calloc`/`realloc` here
/// and not yet freed.
unsafe fn block_of(p: *mut c_void) -> (*mut u8, usize) {
    // SAFETY: per the contract, the header precedes `p` in the same block.
    unsafe {
        let base = p.cast::<u8>().sub(HEADER);
        (base, base.cast::<usize>().read())
    }
}

/// `void *malloc(size_t size)`. `malloc(0)` returns a unique pointer.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    let Some(layout) = block_layout(size) else {
        set_errno(ENOMEM);
        return ptr::null_mut();
    };
    // SAFETY: the layout has a non-zero size (at least HEADER); `finish`
    // gets the block allocated with block_layout(size).
    unsafe { finish(alloc(layout), size) }
}

/// `void *calloc(size_t nmemb, size_t size)`: zeroed, overflow-checked.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn calloc(nmemb: usize, size: usize) -> *mut c_void {
    let Some(layout) = nmemb
        .checked_mul(size)
        .and_then(|n| block_layout(n).map(|l| (n, l)))
    else {
        set_errno(ENOMEM);
        return ptr::null_mut();
    };
    // SAFETY: as in malloc.
    unsafe { finish(alloc_zeroed(layout.1), layout.0) }
}

/// `void free(void *p)`.
///
/// # Safety
/// `p` is NULL or a live pointer from this module's allocation functions.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    // SAFETY: per the contract, `p` is a live block of this module.
    let (base, size) = unsafe { block_of(p) };
    if let Some(layout) = block_layout(size) {
        // SAFETY: the block was allocated with exactly this layout.
        unsafe { dealloc(base, layout) };
    }
}

/// `void *realloc(void *p, size_t size)`: keeps the first `min(old, new)`
/// bytes; on failure returns NULL and leaves `p` untouched; `realloc(p, 0)`
/// frees `p` and returns NULL (as glibc does).
///
/// # Safety
/// `p` is NULL or a live pointer from this module's allocation functions.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        return malloc(size);
    }
    if size == 0 {
        // SAFETY: forwarded contract.
        unsafe { free(p) };
        return ptr::null_mut();
    }
    // SAFETY: per the contract, `p` is a live block of this module.
    let (base, old) = unsafe { block_of(p) };
    let (Some(old_layout), Some(new_layout)) = (block_layout(old), block_layout(size)) else {
        set_errno(ENOMEM);
        return ptr::null_mut();
    };
    // SAFETY: `base` was allocated with `old_layout`; the new size is
    // non-zero and, with the same alignment, a valid layout. On success the
    // header and payload moved with the block.
    unsafe { finish(rust_realloc(base, old_layout, new_layout.size()), size) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(p: *mut c_void, n: usize, seed: u8) {
        for i in 0..n {
            // SAFETY: the tests only fill blocks of at least `n` bytes.
            unsafe { *p.cast::<u8>().add(i) = seed.wrapping_add(i as u8) };
        }
    }

    fn check(p: *mut c_void, n: usize, seed: u8) {
        for i in 0..n {
            // SAFETY: the tests only check blocks of at least `n` bytes.
            let b = unsafe { *p.cast::<u8>().add(i) };
            assert_eq!(b, seed.wrapping_add(i as u8), "byte {i}");
        }
    }

    #[test]
    fn blocks_are_aligned_distinct_and_writable() {
        let sizes = [0usize, 1, 7, 15, 16, 17, 100, 4095, 4096, 70_000];
        let blocks: Vec<_> = sizes.iter().map(|&n| (malloc(n), n)).collect();
        for (i, &(p, n)) in blocks.iter().enumerate() {
            assert!(!p.is_null());
            assert_eq!(p as usize % ALIGN, 0, "size {n}");
            fill(p, n, i as u8);
        }
        for (i, &(p, n)) in blocks.iter().enumerate() {
            check(p, n, i as u8);
        }
        let mut addrs: Vec<usize> = blocks.iter().map(|b| b.0 as usize).collect();
        addrs.sort();
        addrs.dedup();
        assert_eq!(addrs.len(), sizes.len(), "every block is distinct");
        for (p, _) in blocks {
            // SAFETY: live blocks from malloc.
            unsafe { free(p) };
        }
        // SAFETY: free(NULL) is allowed.
        unsafe { free(ptr::null_mut()) };
    }

    #[test]
    fn calloc_zeroes_and_checks_overflow() {
        let p = calloc(33, 7);
        assert!(!p.is_null());
        // SAFETY: 231 bytes were allocated.
        let bytes = unsafe { core::slice::from_raw_parts(p.cast::<u8>(), 231) };
        assert!(bytes.iter().all(|&b| b == 0));
        // SAFETY: live block.
        unsafe { free(p) };
        let _g = crate::shim::test_lock();
        assert!(calloc(usize::MAX / 2, 3).is_null());
        assert_eq!(crate::shim::errno::errno(), ENOMEM);
        assert!(malloc(usize::MAX - 8).is_null());
    }

    #[test]
    fn realloc_grows_and_shrinks_keeping_data() {
        // SAFETY: realloc(NULL, n) is malloc(n).
        let mut p = unsafe { realloc(ptr::null_mut(), 10) };
        fill(p, 10, 3);
        for &n in &[11usize, 64, 1000, 100_000] {
            let prev = p;
            // SAFETY: `prev` is live; it is not used after a successful realloc.
            p = unsafe { realloc(prev, n) };
            assert!(!p.is_null());
            assert_eq!(p as usize % ALIGN, 0);
            check(p, 10, 3);
            fill(p, n, 3);
        }
        // SAFETY: live block, shrunk.
        p = unsafe { realloc(p, 5) };
        check(p, 5, 3);
        // SAFETY: realloc(p, 0) frees p.
        assert!(unsafe { realloc(p, 0) }.is_null());
    }

    #[test]
    fn realloc_failure_keeps_the_block() {
        let p = malloc(8);
        fill(p, 8, 9);
        // SAFETY: live block; an impossible size fails without freeing it.
        assert!(unsafe { realloc(p, usize::MAX - 4) }.is_null());
        check(p, 8, 9);
        // SAFETY: still live.
        unsafe { free(p) };
    }
}
