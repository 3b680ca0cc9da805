//! `errno`: one process-wide value (the image runs the library on one CPU,
//! one thread) and the error numbers the shim reports (Linux values, as the
//! archives were compiled against glibc's headers).

use core::ffi::c_int;
use core::sync::atomic::{AtomicI32, Ordering};

pub const ENOENT: c_int = 2;
pub const EIO: c_int = 5;
pub const EBADF: c_int = 9;
pub const EAGAIN: c_int = 11;
pub const ENOMEM: c_int = 12;
pub const EINVAL: c_int = 22;
pub const ENOTTY: c_int = 25;
pub const ERANGE: c_int = 34;
pub const ENOSYS: c_int = 38;
pub const EOVERFLOW: c_int = 75;

static ERRNO: AtomicI32 = AtomicI32::new(0);

/// `int *__errno_location(void)`: where C code reads and writes `errno`.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn __errno_location() -> *mut c_int {
    ERRNO.as_ptr()
}

/// Sets `errno`.
pub fn set_errno(value: c_int) {
    ERRNO.store(value, Ordering::Relaxed);
}

/// The current `errno`.
pub fn errno() -> c_int {
    ERRNO.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_location_is_the_stored_value() {
        let _g = crate::shim::test_lock();
        set_errno(ENOSYS);
        // SAFETY: __errno_location returns a valid, aligned pointer.
        assert_eq!(unsafe { *__errno_location() }, ENOSYS);
        // SAFETY: as above; C code writes errno through this pointer.
        unsafe { *__errno_location() = EINVAL };
        assert_eq!(errno(), EINVAL);
    }
}
