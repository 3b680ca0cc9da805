//! `<string.h>` and the string-to-number parts of `<stdlib.h>`, plus the
//! glibc `_FORTIFY_SOURCE` variants (`__memcpy_chk`, `__memset_chk`) the
//! archives were built with.
//!
//! `memcpy`/`memmove`/`memset` use `rep movsb`/`rep stosb`: fast on current
//! CPUs, and immune to the compiler turning a copy loop back into a call to
//! `memcpy` (the crate is also `#![no_builtins]` for the loops below).

use core::ffi::{c_char, c_int, c_long, c_ulong, c_void};
use core::ptr;

use super::alloc::malloc;
use super::errno::{set_errno, EINVAL, ERANGE};

/// glibc's reaction to a detected buffer overflow.
fn chk_fail() -> ! {
    panic!("buffer overflow detected in a fortified C library call");
}

/// `void *memcpy(void *dst, const void *src, size_t n)`.
///
/// # Safety
/// `dst` and `src` are valid for `n` bytes and do not overlap.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut c_void, src: *const c_void, n: usize) -> *mut c_void {
    // SAFETY: per the contract; the SysV ABI guarantees DF = 0 on entry.
    unsafe {
        core::arch::asm!(
            "rep movsb",
            inout("rcx") n => _,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags)
        );
    }
    dst
}

/// `void *memmove(void *dst, const void *src, size_t n)`: overlap allowed.
///
/// # Safety
/// `dst` and `src` are valid for `n` bytes.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn memmove(dst: *mut c_void, src: *const c_void, n: usize) -> *mut c_void {
    if n == 0 {
        return dst;
    }
    if (dst as usize).wrapping_sub(src as usize) >= n {
        // dst before src, or no overlap: a forward copy is safe.
        // SAFETY: per the contract.
        return unsafe { memcpy(dst, src, n) };
    }
    // dst overlaps the tail of src: copy backwards.
    // SAFETY: per the contract both ranges hold `n` bytes, so the last byte
    // is at offset n - 1; DF is restored before returning.
    unsafe {
        core::arch::asm!(
            "std",
            "rep movsb",
            "cld",
            inout("rcx") n => _,
            inout("rdi") dst.cast::<u8>().add(n - 1) => _,
            inout("rsi") src.cast::<u8>().add(n - 1) => _,
            options(nostack)
        );
    }
    dst
}

/// `void *memset(void *s, int c, size_t n)`.
///
/// # Safety
/// `s` is valid for `n` bytes.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn memset(s: *mut c_void, c: c_int, n: usize) -> *mut c_void {
    // SAFETY: per the contract; DF = 0 on entry (SysV ABI).
    unsafe {
        core::arch::asm!(
            "rep stosb",
            inout("rcx") n => _,
            inout("rdi") s => _,
            in("al") c as u8,
            options(nostack, preserves_flags)
        );
    }
    s
}

/// `int memcmp(const void *a, const void *b, size_t n)`.
///
/// # Safety
/// `a` and `b` are valid for `n` bytes.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const c_void, b: *const c_void, n: usize) -> c_int {
    let (a, b) = (a.cast::<u8>(), b.cast::<u8>());
    for i in 0..n {
        // SAFETY: i < n, within both ranges per the contract.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return c_int::from(x) - c_int::from(y);
        }
    }
    0
}

/// `void *memchr(const void *s, int c, size_t n)`.
///
/// # Safety
/// `s` is valid for `n` bytes.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn memchr(s: *const c_void, c: c_int, n: usize) -> *mut c_void {
    let s = s.cast::<u8>();
    for i in 0..n {
        // SAFETY: i < n, within the range per the contract.
        if unsafe { *s.add(i) } == c as u8 {
            return s.wrapping_add(i) as *mut c_void;
        }
    }
    ptr::null_mut()
}

/// `__memcpy_chk`: `memcpy` that aborts if `n` exceeds the destination size.
///
/// # Safety
/// As [`memcpy`]; `dstlen` is the size of the object at `dst`.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn __memcpy_chk(
    dst: *mut c_void,
    src: *const c_void,
    n: usize,
    dstlen: usize,
) -> *mut c_void {
    if n > dstlen {
        chk_fail();
    }
    // SAFETY: per the contract, and n fits the destination.
    unsafe { memcpy(dst, src, n) }
}

/// `__memset_chk`: `memset` that aborts if `n` exceeds the destination size.
///
/// # Safety
/// As [`memset`]; `dstlen` is the size of the object at `s`.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn __memset_chk(
    s: *mut c_void,
    c: c_int,
    n: usize,
    dstlen: usize,
) -> *mut c_void {
    if n > dstlen {
        chk_fail();
    }
    // SAFETY: per the contract, and n fits the destination.
    unsafe { memset(s, c, n) }
}

/// The byte at `s + i`.
///
/// # Safety
/// `s + i` is readable.
unsafe fn at(s: *const c_char, i: usize) -> u8 {
    // SAFETY: per the contract.
    unsafe { *s.add(i) as u8 }
}

/// `size_t strlen(const char *s)`.
///
/// # Safety
/// `s` is a valid NUL-terminated string.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn strlen(s: *const c_char) -> usize {
    let mut n = 0;
    // SAFETY: every byte up to the NUL is readable.
    while unsafe { at(s, n) } != 0 {
        n += 1;
    }
    n
}

/// `int strcmp(const char *a, const char *b)`.
///
/// # Safety
/// `a` and `b` are valid NUL-terminated strings.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn strcmp(a: *const c_char, b: *const c_char) -> c_int {
    // SAFETY: both are NUL-terminated; no limit beyond that.
    unsafe { strncmp(a, b, usize::MAX) }
}

/// `int strncmp(const char *a, const char *b, size_t n)`.
///
/// # Safety
/// `a` and `b` are NUL-terminated or valid for `n` bytes.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn strncmp(a: *const c_char, b: *const c_char, n: usize) -> c_int {
    for i in 0..n {
        // SAFETY: we stop at the first NUL or difference, before which both
        // strings are readable.
        let (x, y) = unsafe { (at(a, i), at(b, i)) };
        if x != y || x == 0 {
            return c_int::from(x) - c_int::from(y);
        }
    }
    0
}

/// `char *strcpy(char *dst, const char *src)`.
///
/// # Safety
/// `src` is NUL-terminated; `dst` has room for it including the NUL; no overlap.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn strcpy(dst: *mut c_char, src: *const c_char) -> *mut c_char {
    // SAFETY: per the contract.
    unsafe {
        let n = strlen(src);
        memcpy(dst.cast(), src.cast(), n + 1);
    }
    dst
}

/// `char *strncpy(char *dst, const char *src, size_t n)`: copies at most
/// `n` bytes and pads with NULs (no NUL if `src` is `n` bytes or longer).
///
/// # Safety
/// `dst` is valid for `n` bytes; `src` is NUL-terminated or valid for `n`.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn strncpy(dst: *mut c_char, src: *const c_char, n: usize) -> *mut c_char {
    let mut i = 0;
    // SAFETY: reads stop at the NUL or n; writes stay below n.
    unsafe {
        while i < n && at(src, i) != 0 {
            *dst.add(i) = *src.add(i);
            i += 1;
        }
        while i < n {
            *dst.add(i) = 0;
            i += 1;
        }
    }
    dst
}

/// `char *strcat(char *dst, const char *src)`.
///
/// # Safety
/// Both are NUL-terminated; `dst` has room for the result; no overlap.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn strcat(dst: *mut c_char, src: *const c_char) -> *mut c_char {
    // SAFETY: per the contract.
    unsafe {
        strcpy(dst.add(strlen(dst)), src);
    }
    dst
}

/// `char *strchr(const char *s, int c)`; `c == 0` finds the terminator.
///
/// # Safety
/// `s` is a valid NUL-terminated string.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn strchr(s: *const c_char, c: c_int) -> *mut c_char {
    let c = c as u8;
    let mut i = 0;
    loop {
        // SAFETY: we stop at the NUL.
        let b = unsafe { at(s, i) };
        if b == c {
            return s.wrapping_add(i) as *mut c_char;
        }
        if b == 0 {
            return ptr::null_mut();
        }
        i += 1;
    }
}

/// `char *strrchr(const char *s, int c)`.
///
/// # Safety
/// `s` is a valid NUL-terminated string.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn strrchr(s: *const c_char, c: c_int) -> *mut c_char {
    let c = c as u8;
    let mut found = ptr::null_mut();
    let mut i = 0;
    loop {
        // SAFETY: we stop at the NUL.
        let b = unsafe { at(s, i) };
        if b == c {
            found = s.wrapping_add(i) as *mut c_char;
        }
        if b == 0 {
            return found;
        }
        i += 1;
    }
}

/// Whether byte `b` occurs in the NUL-terminated `set`.
///
/// # Safety
/// `set` is a valid NUL-terminated string.
unsafe fn in_set(set: *const c_char, b: u8) -> bool {
    let mut i = 0;
    loop {
        // SAFETY: we stop at the NUL.
        let s = unsafe { at(set, i) };
        if s == 0 {
            return false;
        }
        if s == b {
            return true;
        }
        i += 1;
    }
}

/// `size_t strspn(const char *s, const char *accept)`.
///
/// # Safety
/// Both are valid NUL-terminated strings.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn strspn(s: *const c_char, accept: *const c_char) -> usize {
    let mut i = 0;
    // SAFETY: we stop at the NUL of `s` (NUL is never in the set).
    while unsafe { at(s, i) != 0 && in_set(accept, at(s, i)) } {
        i += 1;
    }
    i
}

/// `size_t strcspn(const char *s, const char *reject)`.
///
/// # Safety
/// Both are valid NUL-terminated strings.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn strcspn(s: *const c_char, reject: *const c_char) -> usize {
    let mut i = 0;
    // SAFETY: we stop at the NUL of `s`.
    while unsafe { at(s, i) != 0 && !in_set(reject, at(s, i)) } {
        i += 1;
    }
    i
}

/// `char *strpbrk(const char *s, const char *accept)`.
///
/// # Safety
/// Both are valid NUL-terminated strings.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn strpbrk(s: *const c_char, accept: *const c_char) -> *mut c_char {
    // SAFETY: per the contract.
    let i = unsafe { strcspn(s, accept) };
    // SAFETY: i is at most the string length, so s + i is readable.
    if unsafe { at(s, i) } == 0 {
        ptr::null_mut()
    } else {
        s.wrapping_add(i) as *mut c_char
    }
}

/// `char *strstr(const char *haystack, const char *needle)`.
///
/// # Safety
/// Both are valid NUL-terminated strings.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn strstr(haystack: *const c_char, needle: *const c_char) -> *mut c_char {
    // SAFETY: per the contract.
    let (hn, nn) = unsafe { (strlen(haystack), strlen(needle)) };
    if nn > hn {
        return ptr::null_mut();
    }
    for i in 0..=hn - nn {
        // SAFETY: i + nn <= hn, within the haystack.
        if unsafe { memcmp(haystack.add(i).cast(), needle.cast(), nn) } == 0 {
            return haystack.wrapping_add(i) as *mut c_char;
        }
    }
    ptr::null_mut()
}

/// `char *strdup(const char *s)`: a `malloc`ed copy.
///
/// # Safety
/// `s` is a valid NUL-terminated string.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn strdup(s: *const c_char) -> *mut c_char {
    // SAFETY: per the contract.
    let n = unsafe { strlen(s) } + 1;
    let p = malloc(n).cast::<c_char>();
    if !p.is_null() {
        // SAFETY: `p` has n bytes; `s` has n bytes including the NUL.
        unsafe { memcpy(p.cast(), s.cast(), n) };
    }
    p
}

/// Where `strtok` continues (one caller at a time, as in C).
static STRTOK_NEXT: spin::Mutex<usize> = spin::Mutex::new(0);

/// `char *strtok(char *s, const char *delim)`.
///
/// # Safety
/// `s` is NULL (continue the previous string, which must still be live) or a
/// writable NUL-terminated string; `delim` is NUL-terminated.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn strtok(s: *mut c_char, delim: *const c_char) -> *mut c_char {
    let mut next = STRTOK_NEXT.lock();
    let start = if s.is_null() { *next as *mut c_char } else { s };
    if start.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: `start` is inside a live NUL-terminated string (contract).
    unsafe {
        let tok = start.add(strspn(start, delim));
        if *tok == 0 {
            *next = 0;
            return ptr::null_mut();
        }
        let end = tok.add(strcspn(tok, delim));
        if *end == 0 {
            *next = 0;
        } else {
            *end = 0;
            *next = end.add(1) as usize;
        }
        tok
    }
}

/// Message text for an error number (C locale, Linux numbering).
fn message(errnum: c_int) -> &'static [u8] {
    match errnum {
        0 => b"Success\0",
        2 => b"No such file or directory\0",
        5 => b"Input/output error\0",
        9 => b"Bad file descriptor\0",
        11 => b"Resource temporarily unavailable\0",
        12 => b"Cannot allocate memory\0",
        22 => b"Invalid argument\0",
        25 => b"Inappropriate ioctl for device\0",
        34 => b"Numerical result out of range\0",
        38 => b"Function not implemented\0",
        _ => b"Unknown error\0",
    }
}

/// `char *strerror(int errnum)`: a static message (never to be written).
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn strerror(errnum: c_int) -> *mut c_char {
    message(errnum).as_ptr() as *mut c_char
}

/// `int __xpg_strerror_r(int errnum, char *buf, size_t buflen)` (the POSIX
/// `strerror_r`): 0, or `ERANGE` if the message was truncated.
///
/// # Safety
/// `buf` is valid for `buflen` bytes.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn __xpg_strerror_r(errnum: c_int, buf: *mut c_char, buflen: usize) -> c_int {
    let msg = message(errnum);
    if buflen == 0 {
        return ERANGE;
    }
    let n = (msg.len() - 1).min(buflen - 1);
    // SAFETY: n + 1 <= buflen bytes are written.
    unsafe {
        memcpy(buf.cast(), msg.as_ptr().cast(), n);
        *buf.add(n) = 0;
    }
    if n < msg.len() - 1 {
        ERANGE
    } else {
        0
    }
}

/// The outcome of parsing an integer prefix.
struct Parsed {
    negative: bool,
    magnitude: u64,
    overflow: bool,
    /// Bytes consumed, or `None` if no digits were found.
    end: Option<usize>,
}

fn digit(b: u8) -> Option<u32> {
    match b {
        b'0'..=b'9' => Some(u32::from(b - b'0')),
        b'a'..=b'z' => Some(u32::from(b - b'a') + 10),
        b'A'..=b'Z' => Some(u32::from(b - b'A') + 10),
        _ => None,
    }
}

/// The `strtol` family's grammar: spaces, sign, `0x`/`0` prefixes, digits.
///
/// # Safety
/// `s` is a valid NUL-terminated string; `base` is 0 or 2..=36.
unsafe fn parse(s: *const c_char, base: u32) -> Parsed {
    // SAFETY: every read below stops at the NUL (no digit/space/sign is NUL).
    let b = |i: usize| unsafe { at(s, i) };
    let mut i = 0;
    while matches!(b(i), b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
        i += 1;
    }
    let negative = b(i) == b'-';
    if matches!(b(i), b'-' | b'+') {
        i += 1;
    }
    let mut base = base;
    let hex_prefix =
        b(i) == b'0' && matches!(b(i + 1), b'x' | b'X') && digit(b(i + 2)).is_some_and(|d| d < 16);
    if (base == 0 || base == 16) && hex_prefix {
        base = 16;
        i += 2;
    } else if base == 0 {
        base = if b(i) == b'0' { 8 } else { 10 };
    }
    let mut magnitude: u64 = 0;
    let mut overflow = false;
    let first = i;
    while let Some(d) = digit(b(i)).filter(|&d| d < base) {
        match magnitude
            .checked_mul(u64::from(base))
            .and_then(|m| m.checked_add(u64::from(d)))
        {
            Some(m) => magnitude = m,
            None => overflow = true,
        }
        i += 1;
    }
    Parsed {
        negative,
        magnitude,
        overflow,
        end: (i > first).then_some(i),
    }
}

/// Common front of `strtol`/`strtoul`: validates `base`, parses, sets `*endptr`.
///
/// # Safety
/// `s` is a valid NUL-terminated string; `endptr` is NULL or writable.
unsafe fn parse_with_end(
    s: *const c_char,
    endptr: *mut *mut c_char,
    base: c_int,
) -> Option<Parsed> {
    if base < 0 || base == 1 || base > 36 {
        // Like glibc, `*endptr` is left alone.
        set_errno(EINVAL);
        return None;
    }
    // SAFETY: per the contract; base validated.
    let p = unsafe { parse(s, base as u32) };
    if !endptr.is_null() {
        let end = p.end.unwrap_or(0);
        // SAFETY: per the contract; `end` is within the string.
        unsafe { *endptr = s.add(end) as *mut c_char };
    }
    Some(p)
}

/// `long strtol(const char *s, char **endptr, int base)`.
///
/// # Safety
/// `s` is a valid NUL-terminated string; `endptr` is NULL or writable.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn strtol(s: *const c_char, endptr: *mut *mut c_char, base: c_int) -> c_long {
    // SAFETY: forwarded contract.
    let Some(p) = (unsafe { parse_with_end(s, endptr, base) }) else {
        return 0;
    };
    let limit = if p.negative {
        c_long::MIN.unsigned_abs()
    } else {
        c_long::MAX as u64
    };
    if p.overflow || p.magnitude > limit {
        set_errno(ERANGE);
        return if p.negative { c_long::MIN } else { c_long::MAX };
    }
    if p.negative {
        (p.magnitude as c_long).wrapping_neg()
    } else {
        p.magnitude as c_long
    }
}

/// `unsigned long strtoul(const char *s, char **endptr, int base)`; a minus
/// sign negates the value in unsigned arithmetic, as C specifies.
///
/// # Safety
/// `s` is a valid NUL-terminated string; `endptr` is NULL or writable.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn strtoul(
    s: *const c_char,
    endptr: *mut *mut c_char,
    base: c_int,
) -> c_ulong {
    // SAFETY: forwarded contract.
    let Some(p) = (unsafe { parse_with_end(s, endptr, base) }) else {
        return 0;
    };
    if p.overflow {
        set_errno(ERANGE);
        return c_ulong::MAX;
    }
    if p.negative {
        p.magnitude.wrapping_neg()
    } else {
        p.magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    /// glibc, for differential checks (the shim's items are Rust-mangled on
    /// the host, so these are the system's functions).
    mod libc {
        use core::ffi::{c_char, c_int, c_long, c_ulong};
        extern "C" {
            pub fn strtol(s: *const c_char, end: *mut *mut c_char, base: c_int) -> c_long;
            pub fn strtoul(s: *const c_char, end: *mut *mut c_char, base: c_int) -> c_ulong;
        }
    }

    fn c(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    #[test]
    fn mem_functions_handle_edges_and_overlap() {
        let mut buf: Vec<u8> = (0..64).collect();
        // SAFETY: all ranges lie within `buf`.
        unsafe {
            memmove(buf.as_mut_ptr().add(8).cast(), buf.as_ptr().cast(), 32);
        }
        let expect: Vec<u8> = (0..8).chain(0..32).chain(40..64).collect();
        assert_eq!(buf, expect, "forward overlap (dst after src)");
        let mut buf: Vec<u8> = (0..64).collect();
        // SAFETY: within `buf`.
        unsafe {
            memmove(buf.as_mut_ptr().cast(), buf.as_ptr().add(8).cast(), 32);
        }
        let expect: Vec<u8> = (8..40).chain(32..64).collect();
        assert_eq!(buf, expect, "backward overlap (dst before src)");
        let mut z = [7u8; 9];
        // SAFETY: zero-length operations touch nothing; the rest fit.
        unsafe {
            memcpy(z.as_mut_ptr().cast(), [1u8].as_ptr().cast(), 0);
            memmove(z.as_mut_ptr().cast(), [1u8].as_ptr().cast(), 0);
            memset(z.as_mut_ptr().add(1).cast(), 0x1AB, 7);
        }
        assert_eq!(z, [7, 0xAB, 0xAB, 0xAB, 0xAB, 0xAB, 0xAB, 0xAB, 7]);
        // SAFETY: the slices are valid for the lengths passed.
        unsafe {
            assert_eq!(
                memcmp(b"abc".as_ptr().cast(), b"abd".as_ptr().cast(), 3),
                -1
            );
            assert!(
                memcmp(b"\xff".as_ptr().cast(), b"\x01".as_ptr().cast(), 1) > 0,
                "bytes compare unsigned"
            );
            assert_eq!(memcmp(b"abc".as_ptr().cast(), b"abd".as_ptr().cast(), 2), 0);
            assert_eq!(memcmp(ptr::null(), ptr::null(), 0), 0);
            let hay = b"hello";
            assert_eq!(
                memchr(hay.as_ptr().cast(), b'l' as c_int, 5),
                hay.as_ptr().add(2) as *mut c_void
            );
            assert!(memchr(hay.as_ptr().cast(), b'l' as c_int, 2).is_null());
        }
    }

    #[test]
    fn string_functions() {
        let hello = c("hello, world");
        let h = hello.as_ptr();
        // SAFETY: all strings are NUL-terminated CStrings or sized buffers.
        unsafe {
            assert_eq!(strlen(h), 12);
            assert_eq!(strlen(c("").as_ptr()), 0);
            assert_eq!(strcmp(h, h), 0);
            assert!(strcmp(c("a").as_ptr(), c("b").as_ptr()) < 0);
            assert!(strcmp(c("ab").as_ptr(), c("a").as_ptr()) > 0);
            assert!(
                strcmp(c("\u{e9}").as_ptr(), c("z").as_ptr()) > 0,
                "unsigned comparison"
            );
            assert_eq!(strncmp(c("abcX").as_ptr(), c("abcY").as_ptr(), 3), 0);
            assert_eq!(strchr(h, b'o' as c_int), h.add(4) as *mut c_char);
            assert_eq!(strchr(h, 0), h.add(12) as *mut c_char);
            assert!(strchr(h, b'z' as c_int).is_null());
            assert_eq!(strrchr(h, b'o' as c_int), h.add(8) as *mut c_char);
            assert_eq!(strspn(h, c("leh").as_ptr()), 4);
            assert_eq!(strcspn(h, c(" ,").as_ptr()), 5);
            assert_eq!(strpbrk(h, c("wr").as_ptr()), h.add(7) as *mut c_char);
            assert!(strpbrk(h, c("xyz").as_ptr()).is_null());
            assert_eq!(strstr(h, c("world").as_ptr()), h.add(7) as *mut c_char);
            assert_eq!(strstr(h, c("").as_ptr()), h as *mut c_char);
            assert!(strstr(h, c("worlds").as_ptr()).is_null());

            let mut buf = [0x55 as c_char; 16];
            strcpy(buf.as_mut_ptr(), c("abc").as_ptr());
            strcat(buf.as_mut_ptr(), c("de").as_ptr());
            assert_eq!(std::ffi::CStr::from_ptr(buf.as_ptr()).to_bytes(), b"abcde");
            let mut pad = [0x55 as c_char; 6];
            strncpy(pad.as_mut_ptr(), c("ab").as_ptr(), 5);
            assert_eq!(pad.map(|b| b as u8), [b'a', b'b', 0, 0, 0, 0x55]);
            strncpy(pad.as_mut_ptr(), c("abcdefgh").as_ptr(), 5);
            assert_eq!(
                pad.map(|b| b as u8),
                [b'a', b'b', b'c', b'd', b'e', 0x55],
                "no NUL when truncated"
            );

            let d = strdup(h);
            assert_eq!(strcmp(d, h), 0);
            assert_ne!(d, h as *mut c_char);
            super::super::alloc::free(d.cast());
        }
    }

    #[test]
    fn strtok_splits_in_place() {
        let mut s = *b",,a,bc;;d\0";
        let delim = c(",;");
        let mut toks = Vec::new();
        // SAFETY: `s` is a writable NUL-terminated buffer that outlives the loop.
        unsafe {
            let mut t = strtok(s.as_mut_ptr().cast(), delim.as_ptr());
            while !t.is_null() {
                toks.push(std::ffi::CStr::from_ptr(t).to_str().unwrap().to_string());
                t = strtok(ptr::null_mut(), delim.as_ptr());
            }
        }
        assert_eq!(toks, ["a", "bc", "d"]);
    }

    #[test]
    fn strerror_r_truncates() {
        let mut buf = [0 as c_char; 8];
        // SAFETY: buf is 8 bytes.
        assert_eq!(unsafe { __xpg_strerror_r(38, buf.as_mut_ptr(), 8) }, ERANGE);
        // SAFETY: NUL-terminated by __xpg_strerror_r.
        let text = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
        assert_eq!(text.to_bytes(), b"Functio");
        let mut big = [0 as c_char; 64];
        // SAFETY: 64 bytes.
        assert_eq!(unsafe { __xpg_strerror_r(2, big.as_mut_ptr(), 64) }, 0);
        // SAFETY: strerror returns a static C string.
        let s = unsafe { std::ffi::CStr::from_ptr(strerror(12)) };
        assert_eq!(s.to_bytes(), b"Cannot allocate memory");
    }

    #[test]
    fn strtol_and_strtoul_agree_with_glibc() {
        let _g = crate::shim::test_lock();
        let inputs = [
            "0",
            "42",
            "  -17xyz",
            "+9",
            "0x1fG",
            "0X",
            "0x",
            "017",
            "09",
            "-0",
            "zz",
            "",
            "  ",
            "-",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "18446744073709551615",
            "18446744073709551616",
            "-1",
            "\t\n 123",
            "1_000",
            "0b101",
            "777777777777777777777777",
        ];
        for input in inputs {
            for base in [0, 2, 8, 10, 16, 36, 1, 37, -1] {
                let s = c(input);
                let (mut e1, mut e2) = (ptr::null_mut(), ptr::null_mut());
                // SAFETY: valid C strings and out-pointers.
                let (ours, theirs) = unsafe {
                    crate::shim::errno::set_errno(0);
                    let ours = strtol(s.as_ptr(), &mut e1, base);
                    let our_errno = crate::shim::errno::errno();
                    *libc_errno() = 0;
                    let theirs = libc::strtol(s.as_ptr(), &mut e2, base);
                    ((ours, our_errno), (theirs, *libc_errno()))
                };
                assert_eq!(ours.0, theirs.0, "strtol({input:?}, {base})");
                assert_eq!(e1, e2, "strtol end ({input:?}, {base})");
                if ours.1 == ERANGE || theirs.1 == ERANGE {
                    assert_eq!(ours.1, theirs.1, "strtol errno ({input:?}, {base})");
                }
                // SAFETY: as above.
                let (ours, theirs) = unsafe {
                    (
                        strtoul(s.as_ptr(), &mut e1, base),
                        libc::strtoul(s.as_ptr(), &mut e2, base),
                    )
                };
                assert_eq!(ours, theirs, "strtoul({input:?}, {base})");
                assert_eq!(e1, e2, "strtoul end ({input:?}, {base})");
            }
        }
    }

    /// glibc's errno (not the shim's).
    fn libc_errno() -> *mut c_int {
        extern "C" {
            fn __errno_location() -> *mut c_int;
        }
        // SAFETY: glibc's thread-local errno location.
        unsafe { __errno_location() }
    }
}
