//! `<stdio.h>` as stubs: the image has no files and no console through C.
//!
//! Nothing in the engine's path formats or prints text: libtpms logs only to
//! a debug file descriptor that is never set, OpenSSL prints errors only when
//! asked to, and files are used only by libtpms' file-backed NV (replaced by
//! callbacks) and OpenSSL's config loading (disabled). So every call fails:
//! opening returns NULL with `errno` set, I/O reports nothing transferred or
//! EOF, formatting returns -1 and produces an empty string where a buffer is
//! given. The variadic functions are declared with their fixed arguments
//! only; the x86_64 convention lets a callee ignore the rest.

use core::ffi::{c_char, c_int, c_long, c_void};
use core::ptr;

use super::errno::{set_errno, EBADF, ENOENT, ENOSYS};

/// `EOF`.
pub const EOF: c_int = -1;

/// A `FILE *` as a shareable static.
#[repr(transparent)]
#[derive(Debug)]
pub struct FilePtr(pub *mut c_void);

// SAFETY: the value is NULL and never written.
unsafe impl Sync for FilePtr {}

/// `FILE *stderr`: NULL (the stubs below accept any stream).
#[allow(non_upper_case_globals)] // the C name
#[cfg_attr(target_os = "none", no_mangle)]
pub static stderr: FilePtr = FilePtr(ptr::null_mut());

/// `FILE *stdin`: NULL.
#[allow(non_upper_case_globals)] // the C name
#[cfg_attr(target_os = "none", no_mangle)]
pub static stdin: FilePtr = FilePtr(ptr::null_mut());

/// `FILE *fopen(const char *path, const char *mode)`: no files.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn fopen(_path: *const c_char, _mode: *const c_char) -> *mut c_void {
    set_errno(ENOENT);
    ptr::null_mut()
}

/// `FILE *fopen64(const char *path, const char *mode)`: no files.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn fopen64(path: *const c_char, mode: *const c_char) -> *mut c_void {
    fopen(path, mode)
}

/// `int fclose(FILE *)`.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn fclose(_f: *mut c_void) -> c_int {
    set_errno(EBADF);
    EOF
}

/// `int fflush(FILE *)`: nothing is ever buffered.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn fflush(_f: *mut c_void) -> c_int {
    0
}

/// `size_t fread(void *, size_t, size_t, FILE *)`: nothing read.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn fread(_p: *mut c_void, _size: usize, _n: usize, _f: *mut c_void) -> usize {
    set_errno(EBADF);
    0
}

/// `size_t fwrite(const void *, size_t, size_t, FILE *)`: nothing written.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn fwrite(_p: *const c_void, _size: usize, _n: usize, _f: *mut c_void) -> usize {
    set_errno(EBADF);
    0
}

/// `int fseek(FILE *, long, int)`.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn fseek(_f: *mut c_void, _off: c_long, _whence: c_int) -> c_int {
    set_errno(EBADF);
    -1
}

/// `long ftell(FILE *)`.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn ftell(_f: *mut c_void) -> c_long {
    set_errno(EBADF);
    -1
}

/// `char *fgets(char *, int, FILE *)`: end of file.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn fgets(_s: *mut c_char, _n: c_int, _f: *mut c_void) -> *mut c_char {
    ptr::null_mut()
}

/// `int fputc(int, FILE *)`.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn fputc(_c: c_int, _f: *mut c_void) -> c_int {
    set_errno(EBADF);
    EOF
}

/// `int fputs(const char *, FILE *)`.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn fputs(_s: *const c_char, _f: *mut c_void) -> c_int {
    set_errno(EBADF);
    EOF
}

/// `int feof(FILE *)`: always at end.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn feof(_f: *mut c_void) -> c_int {
    1
}

/// `int ferror(FILE *)`: always in error.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn ferror(_f: *mut c_void) -> c_int {
    1
}

/// `int fileno(FILE *)`.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn fileno(_f: *mut c_void) -> c_int {
    set_errno(EBADF);
    -1
}

/// `void perror(const char *)`: nowhere to print.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn perror(_s: *const c_char) {}

/// `int __fprintf_chk(FILE *, int flag, const char *fmt, ...)`.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn __fprintf_chk(_f: *mut c_void, _flag: c_int, _fmt: *const c_char) -> c_int {
    set_errno(ENOSYS);
    -1
}

/// `int __vfprintf_chk(FILE *, int flag, const char *fmt, va_list)`.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn __vfprintf_chk(
    _f: *mut c_void,
    _flag: c_int,
    _fmt: *const c_char,
    _ap: *mut c_void,
) -> c_int {
    set_errno(ENOSYS);
    -1
}

/// `int __dprintf_chk(int fd, int flag, const char *fmt, ...)`.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn __dprintf_chk(_fd: c_int, _flag: c_int, _fmt: *const c_char) -> c_int {
    set_errno(ENOSYS);
    -1
}

/// `int __vdprintf_chk(int fd, int flag, const char *fmt, va_list)`.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn __vdprintf_chk(
    _fd: c_int,
    _flag: c_int,
    _fmt: *const c_char,
    _ap: *mut c_void,
) -> c_int {
    set_errno(ENOSYS);
    -1
}

/// Leaves an empty string in a caller's buffer of `maxlen` bytes.
///
/// # Safety
/// `s` is NULL or writable for `maxlen` bytes.
unsafe fn empty(s: *mut c_char, maxlen: usize) {
    if !s.is_null() && maxlen > 0 {
        // SAFETY: per the contract, at least one byte is writable.
        unsafe { *s = 0 };
    }
}

/// `int __snprintf_chk(char *s, size_t maxlen, int flag, size_t slen,
/// const char *fmt, ...)`: not implemented; leaves `""`.
///
/// # Safety
/// `s` is NULL or writable for `maxlen` bytes.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn __snprintf_chk(
    s: *mut c_char,
    maxlen: usize,
    _flag: c_int,
    _slen: usize,
    _fmt: *const c_char,
) -> c_int {
    // SAFETY: per the contract.
    unsafe { empty(s, maxlen) };
    set_errno(ENOSYS);
    -1
}

/// `int __vsnprintf_chk(char *s, size_t maxlen, int flag, size_t slen,
/// const char *fmt, va_list)`: not implemented; leaves `""`.
///
/// # Safety
/// `s` is NULL or writable for `maxlen` bytes.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn __vsnprintf_chk(
    s: *mut c_char,
    maxlen: usize,
    _flag: c_int,
    _slen: usize,
    _fmt: *const c_char,
    _ap: *mut c_void,
) -> c_int {
    // SAFETY: per the contract.
    unsafe { empty(s, maxlen) };
    set_errno(ENOSYS);
    -1
}

/// `int __asprintf_chk(char **strp, int flag, const char *fmt, ...)`: not
/// implemented; `*strp` is set to NULL.
///
/// # Safety
/// `strp` is NULL or writable.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn __asprintf_chk(
    strp: *mut *mut c_char,
    _flag: c_int,
    _fmt: *const c_char,
) -> c_int {
    if !strp.is_null() {
        // SAFETY: per the contract.
        unsafe { *strp = ptr::null_mut() };
    }
    set_errno(ENOSYS);
    -1
}

/// `int __isoc99_sscanf(const char *s, const char *fmt, ...)`: not
/// implemented; reports an input failure (`EOF`) with nothing assigned.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn __isoc99_sscanf(_s: *const c_char, _fmt: *const c_char) -> c_int {
    set_errno(ENOSYS);
    EOF
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_cannot_be_opened_and_formatting_fails_cleanly() {
        let _g = crate::shim::test_lock();
        assert!(fopen(c"/etc/ssl/openssl.cnf".as_ptr(), c"r".as_ptr()).is_null());
        assert_eq!(crate::shim::errno::errno(), ENOENT);
        assert_eq!(fwrite(b"x".as_ptr().cast(), 1, 1, stderr.0), 0);
        assert_eq!(fclose(ptr::null_mut()), EOF);
        let mut buf = [b'x' as c_char; 4];
        // SAFETY: buf is 4 bytes; strp is a valid out-pointer.
        unsafe {
            assert_eq!(
                __snprintf_chk(buf.as_mut_ptr(), 4, 1, 4, c"%d".as_ptr()),
                -1
            );
            let mut p = buf.as_mut_ptr();
            assert_eq!(__asprintf_chk(&mut p, 1, c"%s".as_ptr()), -1);
            assert!(p.is_null());
        }
        assert_eq!(buf[0], 0, "an empty string, not stale bytes");
        assert_eq!(__isoc99_sscanf(c"12".as_ptr(), c"%d".as_ptr()), EOF);
    }
}
