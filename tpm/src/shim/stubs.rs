//! Operating-system services the image does not have: file descriptors and
//! directories, sockets and name lookup, dynamic loading, memory mapping,
//! shared memory, signals, `ucontext`, terminals, `uname`.
//!
//! They are linked in because OpenSSL's archive members that also hold
//! functions the engine does use refer to them (BIO sockets, the secure
//! heap, engines, the UI, async jobs, `/dev/urandom` fallbacks). None is on
//! the engine's path; each fails the way its manual page describes for an
//! unsupported operation: `-1`/NULL/`MAP_FAILED` with `errno` set.

use core::ffi::{c_char, c_int, c_long, c_void};
use core::ptr;

use super::errno::{set_errno, EBADF, ENOENT, ENOMEM, ENOSYS, ENOTTY};

/// Defines C functions that set `errno` and return a failure value.
macro_rules! failing {
    ($( $(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $val:expr, $errno:expr; )*) => {
        $(
            $(#[$doc])*
            #[cfg_attr(target_os = "none", no_mangle)]
            pub extern "C" fn $name($($arg: $ty),*) -> $ret {
                set_errno($errno);
                $val
            }
        )*
    };
}

/// `MAP_FAILED` / `(void *)-1` / `SIG_ERR`.
fn minus_one() -> *mut c_void {
    ptr::without_provenance_mut(usize::MAX)
}

failing! {
    /// `int open(const char *, int, ...)`: no files.
    fn open(_path: *const c_char, _flags: c_int) -> c_int = -1, ENOENT;
    /// `ssize_t read(int, void *, size_t)`.
    fn read(_fd: c_int, _buf: *mut c_void, _n: usize) -> isize = -1, EBADF;
    /// `ssize_t write(int, const void *, size_t)`.
    fn write(_fd: c_int, _buf: *const c_void, _n: usize) -> isize = -1, EBADF;
    /// `int close(int)`.
    fn close(_fd: c_int) -> c_int = -1, EBADF;
    /// `int stat(const char *, struct stat *)`.
    fn stat(_path: *const c_char, _st: *mut c_void) -> c_int = -1, ENOENT;
    /// `int fstat(int, struct stat *)`.
    fn fstat(_fd: c_int, _st: *mut c_void) -> c_int = -1, EBADF;
    /// `int fcntl(int, int, ...)`.
    fn fcntl(_fd: c_int, _cmd: c_int) -> c_int = -1, EBADF;
    /// `int ioctl(int, unsigned long, ...)`.
    fn ioctl(_fd: c_int, _req: c_long) -> c_int = -1, EBADF;
    /// `int remove(const char *)`.
    fn remove(_path: *const c_char) -> c_int = -1, ENOENT;
    /// `DIR *opendir(const char *)`.
    fn opendir(_path: *const c_char) -> *mut c_void = ptr::null_mut(), ENOENT;
    /// `struct dirent *readdir(DIR *)`.
    fn readdir(_dir: *mut c_void) -> *mut c_void = ptr::null_mut(), EBADF;
    /// `int closedir(DIR *)`.
    fn closedir(_dir: *mut c_void) -> c_int = -1, EBADF;

    /// `int socket(int, int, int)`.
    fn socket(_domain: c_int, _ty: c_int, _proto: c_int) -> c_int = -1, ENOSYS;
    /// `int accept(int, struct sockaddr *, socklen_t *)`.
    fn accept(_fd: c_int, _addr: *mut c_void, _len: *mut u32) -> c_int = -1, EBADF;
    /// `int bind(int, const struct sockaddr *, socklen_t)`.
    fn bind(_fd: c_int, _addr: *const c_void, _len: u32) -> c_int = -1, EBADF;
    /// `int connect(int, const struct sockaddr *, socklen_t)`.
    fn connect(_fd: c_int, _addr: *const c_void, _len: u32) -> c_int = -1, EBADF;
    /// `int listen(int, int)`.
    fn listen(_fd: c_int, _backlog: c_int) -> c_int = -1, EBADF;
    /// `int getsockname(int, struct sockaddr *, socklen_t *)`.
    fn getsockname(_fd: c_int, _addr: *mut c_void, _len: *mut u32) -> c_int = -1, EBADF;
    /// `int getsockopt(int, int, int, void *, socklen_t *)`.
    fn getsockopt(_fd: c_int, _level: c_int, _name: c_int, _val: *mut c_void, _len: *mut u32) -> c_int = -1, EBADF;
    /// `int setsockopt(int, int, int, const void *, socklen_t)`.
    fn setsockopt(_fd: c_int, _level: c_int, _name: c_int, _val: *const c_void, _len: u32) -> c_int = -1, EBADF;
    /// `ssize_t recvmsg(int, struct msghdr *, int)`.
    fn recvmsg(_fd: c_int, _msg: *mut c_void, _flags: c_int) -> isize = -1, EBADF;
    /// `ssize_t sendmsg(int, const struct msghdr *, int)`.
    fn sendmsg(_fd: c_int, _msg: *const c_void, _flags: c_int) -> isize = -1, EBADF;
    /// `int shutdown(int, int)`.
    fn shutdown(_fd: c_int, _how: c_int) -> c_int = -1, EBADF;
    /// `int select(int, fd_set *, fd_set *, fd_set *, struct timeval *)`.
    fn select(_n: c_int, _r: *mut c_void, _w: *mut c_void, _e: *mut c_void, _t: *mut c_void) -> c_int = -1, ENOSYS;
    /// `int getaddrinfo(...)`: `EAI_FAIL`.
    fn getaddrinfo(_node: *const c_char, _service: *const c_char, _hints: *const c_void, _res: *mut *mut c_void) -> c_int = -4, ENOSYS;
    /// `int getnameinfo(...)`: `EAI_FAIL`.
    fn getnameinfo(_sa: *const c_void, _len: u32, _host: *mut c_char, _hl: u32, _serv: *mut c_char, _sl: u32, _flags: c_int) -> c_int = -4, ENOSYS;
    /// `struct hostent *gethostbyname(const char *)`.
    fn gethostbyname(_name: *const c_char) -> *mut c_void = ptr::null_mut(), ENOSYS;

    /// `void *dlopen(const char *, int)`.
    fn dlopen(_file: *const c_char, _mode: c_int) -> *mut c_void = ptr::null_mut(), ENOSYS;
    /// `void *dlsym(void *, const char *)`.
    fn dlsym(_handle: *mut c_void, _name: *const c_char) -> *mut c_void = ptr::null_mut(), ENOSYS;
    /// `int dlclose(void *)`.
    fn dlclose(_handle: *mut c_void) -> c_int = -1, ENOSYS;
    /// `int dladdr(const void *, Dl_info *)`: 0 means "not found".
    fn dladdr(_addr: *const c_void, _info: *mut c_void) -> c_int = 0, ENOSYS;

    /// `void *mmap(void *, size_t, int, int, int, off_t)`: `MAP_FAILED`.
    fn mmap(_addr: *mut c_void, _len: usize, _prot: c_int, _flags: c_int, _fd: c_int, _off: c_long) -> *mut c_void = minus_one(), ENOMEM;
    /// `int munmap(void *, size_t)`.
    fn munmap(_addr: *mut c_void, _len: usize) -> c_int = -1, ENOSYS;
    /// `int mprotect(void *, size_t, int)`.
    fn mprotect(_addr: *mut c_void, _len: usize, _prot: c_int) -> c_int = -1, ENOSYS;
    /// `int madvise(void *, size_t, int)`.
    fn madvise(_addr: *mut c_void, _len: usize, _advice: c_int) -> c_int = -1, ENOSYS;
    /// `int mlock(const void *, size_t)`.
    fn mlock(_addr: *const c_void, _len: usize) -> c_int = -1, ENOSYS;
    /// `int shmget(key_t, size_t, int)`.
    fn shmget(_key: c_int, _size: usize, _flags: c_int) -> c_int = -1, ENOSYS;
    /// `void *shmat(int, const void *, int)`: `(void *)-1`.
    fn shmat(_id: c_int, _addr: *const c_void, _flags: c_int) -> *mut c_void = minus_one(), ENOSYS;
    /// `int shmdt(const void *)`.
    fn shmdt(_addr: *const c_void) -> c_int = -1, ENOSYS;

    /// `int sigaction(int, const struct sigaction *, struct sigaction *)`.
    fn sigaction(_sig: c_int, _act: *const c_void, _old: *mut c_void) -> c_int = -1, ENOSYS;
    /// `sighandler_t signal(int, sighandler_t)`: `SIG_ERR`.
    fn signal(_sig: c_int, _handler: *mut c_void) -> *mut c_void = minus_one(), ENOSYS;
    /// `int getcontext(ucontext_t *)`.
    fn getcontext(_ctx: *mut c_void) -> c_int = -1, ENOSYS;
    /// `int setcontext(const ucontext_t *)`.
    fn setcontext(_ctx: *const c_void) -> c_int = -1, ENOSYS;
    /// `int tcgetattr(int, struct termios *)`.
    fn tcgetattr(_fd: c_int, _t: *mut c_void) -> c_int = -1, ENOTTY;
    /// `int tcsetattr(int, int, const struct termios *)`.
    fn tcsetattr(_fd: c_int, _act: c_int, _t: *const c_void) -> c_int = -1, ENOTTY;
    /// `int uname(struct utsname *)`.
    fn uname(_buf: *mut c_void) -> c_int = -1, ENOSYS;
}

/// `void makecontext(ucontext_t *, void (*)(void), int, ...)`: never
/// reached, since `getcontext` fails first.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn makecontext(_ctx: *mut c_void, _f: *mut c_void, _argc: c_int) {
    set_errno(ENOSYS);
}

/// `void freeaddrinfo(struct addrinfo *)`: `getaddrinfo` never allocates.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn freeaddrinfo(_res: *mut c_void) {}

/// `const char *gai_strerror(int)`.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn gai_strerror(_code: c_int) -> *const c_char {
    c"name resolution is not available".as_ptr()
}

/// `char *dlerror(void)`.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn dlerror() -> *mut c_char {
    c"dynamic loading is not available".as_ptr() as *mut c_char
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shim::errno::errno;

    #[test]
    fn stubs_fail_with_errno() {
        let _g = crate::shim::test_lock();
        assert_eq!(open(c"/dev/urandom".as_ptr(), 0), -1);
        assert_eq!(errno(), ENOENT);
        assert_eq!(read(3, ptr::null_mut(), 16), -1);
        assert_eq!(errno(), EBADF);
        assert_eq!(socket(2, 1, 0), -1);
        assert_eq!(errno(), ENOSYS);
        assert_eq!(
            mmap(ptr::null_mut(), 4096, 3, 0x22, -1, 0) as usize,
            usize::MAX
        );
        assert_eq!(errno(), ENOMEM);
        assert!(dlopen(c"libfoo.so".as_ptr(), 1).is_null());
        assert_eq!(
            getaddrinfo(ptr::null(), ptr::null(), ptr::null(), ptr::null_mut()),
            -4
        );
        assert_eq!(signal(2, ptr::null_mut()) as usize, usize::MAX);
        assert_eq!(getcontext(ptr::null_mut()), -1);
        assert_eq!(tcgetattr(0, ptr::null_mut()), -1);
        assert_eq!(errno(), ENOTTY);
        // SAFETY: both return static C strings.
        unsafe {
            assert!(!core::ffi::CStr::from_ptr(dlerror()).is_empty());
            assert!(!core::ffi::CStr::from_ptr(gai_strerror(-4)).is_empty());
        }
    }
}
