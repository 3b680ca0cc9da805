//! The rest of `<stdlib.h>`/`<unistd.h>` the archives call: `qsort`,
//! `rand`/`srand`, an empty environment (`getenv`, `secure_getenv`),
//! `atexit` (the image never exits), process facts (`getpid`, `sysconf`),
//! and the fatal paths (`abort`, `__assert_fail`, `__stack_chk_fail`,
//! `__fdelt_chk`), which panic so the image's panic handler reports them.

use core::ffi::{c_char, c_int, c_long, c_uint, c_void, CStr};
use core::sync::atomic::{AtomicU64, Ordering};

use super::errno::{set_errno, EINVAL};

/// `char *getenv(const char *name)`: the image has no environment.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn getenv(_name: *const c_char) -> *mut c_char {
    core::ptr::null_mut()
}

/// `char *secure_getenv(const char *name)`: no environment.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn secure_getenv(_name: *const c_char) -> *mut c_char {
    core::ptr::null_mut()
}

/// `int atexit(void (*f)(void))`: accepted and never run (no exit).
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn atexit(_f: Option<extern "C" fn()>) -> c_int {
    0
}

/// `pid_t getpid(void)`: the one process. OpenSSL compares it to notice a
/// fork, which cannot happen.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn getpid() -> c_int {
    1
}

/// `_SC_PAGESIZE`.
pub const SC_PAGESIZE: c_int = 30;

/// `long sysconf(int name)`: the page size; anything else is unknown.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn sysconf(name: c_int) -> c_long {
    if name == SC_PAGESIZE {
        4096
    } else {
        set_errno(EINVAL);
        -1
    }
}

/// `RAND_MAX` of glibc.
pub const RAND_MAX: c_int = 0x7FFF_FFFF;

static RAND_STATE: AtomicU64 = AtomicU64::new(1);

/// `void srand(unsigned seed)`.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn srand(seed: c_uint) {
    RAND_STATE.store(u64::from(seed), Ordering::Relaxed);
}

/// `int rand(void)`: a 64-bit LCG (Knuth's MMIX constants), top 31 bits.
/// Not for secrets (nothing in the archives uses it for any).
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn rand() -> c_int {
    let next = RAND_STATE
        .load(Ordering::Relaxed)
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    RAND_STATE.store(next, Ordering::Relaxed);
    (next >> 33) as c_int
}

/// A C comparison function.
pub type Compare = unsafe extern "C" fn(*const c_void, *const c_void) -> c_int;

/// Swaps the `size`-byte elements `i` and `j` of `base`.
///
/// # Safety
/// Both elements lie within the array.
unsafe fn swap(base: *mut u8, size: usize, i: usize, j: usize) {
    if i == j {
        return;
    }
    // SAFETY: per the contract; distinct elements do not overlap.
    unsafe {
        let (a, b) = (base.add(i * size), base.add(j * size));
        for k in 0..size {
            let t = *a.add(k);
            *a.add(k) = *b.add(k);
            *b.add(k) = t;
        }
    }
}

/// Restores the heap property below `root` in the first `end` elements.
///
/// # Safety
/// As [`qsort`], with `end <= nmemb`.
unsafe fn sift_down(base: *mut u8, size: usize, mut root: usize, end: usize, cmp: Compare) {
    // Indices stay below `end`, so every element pointer is inside the array.
    let elem = |i: usize| base.wrapping_add(i * size) as *const c_void;
    loop {
        let mut child = 2 * root + 1;
        if child >= end {
            return;
        }
        // SAFETY: both children are elements of the array.
        if child + 1 < end && unsafe { cmp(elem(child), elem(child + 1)) } < 0 {
            child += 1;
        }
        // SAFETY: as above.
        if unsafe { cmp(elem(root), elem(child)) } >= 0 {
            return;
        }
        // SAFETY: both are elements.
        unsafe { swap(base, size, root, child) };
        root = child;
    }
}

/// `void qsort(void *base, size_t nmemb, size_t size, int (*cmp)(...))`:
/// heapsort (in place, O(n log n), no recursion).
///
/// # Safety
/// `base` holds `nmemb` writable elements of `size` bytes; `cmp` is a valid
/// comparison function for them.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn qsort(base: *mut c_void, nmemb: usize, size: usize, cmp: Option<Compare>) {
    let Some(cmp) = cmp else { return };
    if nmemb < 2 || size == 0 {
        return;
    }
    let base = base.cast::<u8>();
    // SAFETY: per the contract; all indices in both loops are below nmemb.
    unsafe {
        for root in (0..nmemb / 2).rev() {
            sift_down(base, size, root, nmemb, cmp);
        }
        for end in (1..nmemb).rev() {
            swap(base, size, 0, end);
            sift_down(base, size, 0, end, cmp);
        }
    }
}

/// `void abort(void)`.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn abort() -> ! {
    panic!("abort() called by the TPM library");
}

/// The text of a C string for a panic message.
///
/// # Safety
/// `s` is NULL or a valid NUL-terminated string.
unsafe fn text<'a>(s: *const c_char) -> &'a str {
    if s.is_null() {
        return "?";
    }
    // SAFETY: per the contract.
    unsafe { CStr::from_ptr(s) }.to_str().unwrap_or("?")
}

/// `__assert_fail(assertion, file, line, function)`: a failed C `assert`.
///
/// # Safety
/// The strings are NULL or valid NUL-terminated strings.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn __assert_fail(
    assertion: *const c_char,
    file: *const c_char,
    line: c_uint,
    function: *const c_char,
) -> ! {
    // SAFETY: per the contract.
    let (a, f, func) = unsafe { (text(assertion), text(file), text(function)) };
    panic!("C assertion failed: {a} ({f}:{line}, {func})");
}

/// `__stack_chk_fail`: the stack protector found its canary overwritten.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn __stack_chk_fail() -> ! {
    panic!("stack smashing detected in the TPM library");
}

/// `long __fdelt_chk(long fd)`: the word index of `fd` in an `fd_set`,
/// checked like glibc (`FD_SETSIZE` 1024).
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn __fdelt_chk(fd: c_long) -> c_long {
    if !(0..1024).contains(&fd) {
        panic!("fd_set index {fd} out of range");
    }
    fd / 64
}

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C" fn cmp_u32(a: *const c_void, b: *const c_void) -> c_int {
        // SAFETY: the tests sort arrays of u32.
        let (a, b) = unsafe { (*a.cast::<u32>(), *b.cast::<u32>()) };
        a.cmp(&b) as c_int
    }

    /// Orders 12-byte records by their first 4 bytes only.
    unsafe extern "C" fn cmp_key(a: *const c_void, b: *const c_void) -> c_int {
        // SAFETY: the tests sort [u32; 3] records.
        let (a, b) = unsafe { (*a.cast::<[u32; 3]>(), *b.cast::<[u32; 3]>()) };
        a[0].cmp(&b[0]) as c_int
    }

    #[test]
    fn qsort_sorts_like_slice_sort() {
        let _g = crate::shim::test_lock();
        srand(7);
        for n in [0usize, 1, 2, 3, 10, 101, 1000] {
            let mut v: Vec<u32> = (0..n).map(|_| rand() as u32 % 50).collect();
            let mut expect = v.clone();
            expect.sort();
            // SAFETY: `v` holds n u32 elements.
            unsafe { qsort(v.as_mut_ptr().cast(), n, 4, Some(cmp_u32)) };
            assert_eq!(v, expect, "n = {n}");
        }
        let mut recs: Vec<[u32; 3]> = (0..200u32).map(|i| [(i * 7919) % 97, i, !i]).collect();
        // SAFETY: 200 records of 12 bytes.
        unsafe { qsort(recs.as_mut_ptr().cast(), recs.len(), 12, Some(cmp_key)) };
        assert!(recs.windows(2).all(|w| w[0][0] <= w[1][0]));
        assert!(recs.iter().all(|r| r[2] == !r[1]), "records moved whole");
    }

    #[test]
    fn rand_is_deterministic_per_seed_and_in_range() {
        let _g = crate::shim::test_lock();
        srand(12345);
        let a: Vec<c_int> = (0..100).map(|_| rand()).collect();
        srand(12345);
        let b: Vec<c_int> = (0..100).map(|_| rand()).collect();
        assert_eq!(a, b);
        assert!(a.iter().all(|&x| (0..=RAND_MAX).contains(&x)));
        let distinct: std::collections::BTreeSet<_> = a.iter().collect();
        assert!(distinct.len() > 95);
    }

    #[test]
    fn environment_and_process_facts() {
        assert!(getenv(c"OPENSSL_CONF".as_ptr()).is_null());
        assert!(secure_getenv(c"HOME".as_ptr()).is_null());
        assert_eq!(atexit(None), 0);
        assert_eq!(sysconf(SC_PAGESIZE), 4096);
        let _g = crate::shim::test_lock();
        assert_eq!(sysconf(84), -1);
        assert_eq!(crate::shim::errno::errno(), EINVAL);
        assert_eq!(__fdelt_chk(130), 2);
    }
}
