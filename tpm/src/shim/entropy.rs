//! Entropy for OpenSSL's DRBG seed: `syscall(SYS_getrandom, ...)` (OpenSSL's
//! seed source on Linux builds) and `getentropy`, both answered from an
//! entropy source the image registers (RDSEED/RDRAND in firmware).
//!
//! Without a source, or when it fails, both calls fail. OpenSSL then has no
//! seed and its DRBG refuses to generate: there is never a fixed or guessed
//! seed.

use core::ffi::{c_int, c_long, c_void};

use super::errno::{set_errno, EINVAL, EIO, ENOSYS};

/// An entropy source: fills the buffer with full-entropy bytes, or returns
/// false if it cannot.
pub type EntropySource = fn(&mut [u8]) -> bool;

static SOURCE: spin::RwLock<Option<EntropySource>> = spin::RwLock::new(None);

/// Installs (or with `None` removes) the entropy source.
pub fn set_entropy_source(source: Option<EntropySource>) {
    *SOURCE.write() = source;
}

/// Whether an entropy source is installed.
pub fn has_entropy_source() -> bool {
    SOURCE.read().is_some()
}

/// Fills `buf` from the source; the errno to report otherwise.
fn fill(buf: &mut [u8]) -> Result<(), c_int> {
    let source = (*SOURCE.read()).ok_or(ENOSYS)?;
    if source(buf) {
        Ok(())
    } else {
        Err(EIO)
    }
}

/// `SYS_getrandom` on x86_64 Linux.
pub const SYS_GETRANDOM: c_long = 318;

/// `long syscall(long number, ...)`: only `SYS_getrandom(buf, len, flags)`
/// is served (all flags behave alike: the source never blocks); every other
/// number fails with `ENOSYS`. Declared with fixed register arguments, which
/// the x86_64 variadic convention passes identically.
///
/// # Safety
/// For `SYS_getrandom`, `a1` is a buffer writable for `a2` bytes.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn syscall(
    number: c_long,
    a1: c_long,
    a2: c_long,
    _a3: c_long,
    _a4: c_long,
    _a5: c_long,
) -> c_long {
    if number != SYS_GETRANDOM {
        set_errno(ENOSYS);
        return -1;
    }
    let (buf, len) = (a1 as *mut u8, a2 as usize);
    if len > isize::MAX as usize || (buf.is_null() && len != 0) {
        set_errno(EINVAL);
        return -1;
    }
    let out: &mut [u8] = if len == 0 {
        &mut []
    } else {
        // SAFETY: per the contract, `buf` is writable for `len` bytes.
        unsafe { core::slice::from_raw_parts_mut(buf, len) }
    };
    match fill(out) {
        Ok(()) => len as c_long,
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}

/// `int getentropy(void *buf, size_t len)`: at most 256 bytes, as in glibc.
///
/// # Safety
/// `buf` is writable for `len` bytes.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn getentropy(buf: *mut c_void, len: usize) -> c_int {
    if len > 256 {
        set_errno(EIO);
        return -1;
    }
    if buf.is_null() && len != 0 {
        set_errno(EINVAL);
        return -1;
    }
    let out: &mut [u8] = if len == 0 {
        &mut []
    } else {
        // SAFETY: per the contract.
        unsafe { core::slice::from_raw_parts_mut(buf.cast(), len) }
    };
    match fill(out) {
        Ok(()) => 0,
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shim::errno::errno;

    fn counting(buf: &mut [u8]) -> bool {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = i as u8 ^ 0xA5;
        }
        true
    }

    fn broken(_: &mut [u8]) -> bool {
        false
    }

    fn getrandom(buf: &mut [u8]) -> c_long {
        // SAFETY: `buf` is writable for its length.
        unsafe {
            syscall(
                SYS_GETRANDOM,
                buf.as_mut_ptr() as c_long,
                buf.len() as c_long,
                0,
                0,
                0,
            )
        }
    }

    #[test]
    fn refuses_without_a_source() {
        let _g = crate::shim::test_lock();
        set_entropy_source(None);
        assert!(!has_entropy_source());
        let mut buf = [0u8; 32];
        assert_eq!(getrandom(&mut buf), -1);
        assert_eq!(errno(), ENOSYS);
        assert_eq!(buf, [0; 32], "nothing was made up");
        // SAFETY: valid buffer.
        assert_eq!(unsafe { getentropy(buf.as_mut_ptr().cast(), 32) }, -1);
        assert_eq!(errno(), ENOSYS);
    }

    #[test]
    fn failing_source_is_an_error() {
        let _g = crate::shim::test_lock();
        set_entropy_source(Some(broken));
        let mut buf = [0u8; 8];
        assert_eq!(getrandom(&mut buf), -1);
        assert_eq!(errno(), EIO);
        set_entropy_source(None);
    }

    #[test]
    fn source_fills_getrandom_and_getentropy() {
        let _g = crate::shim::test_lock();
        set_entropy_source(Some(counting));
        let mut buf = [0u8; 40];
        assert_eq!(getrandom(&mut buf), 40);
        assert_eq!(buf[3], 3 ^ 0xA5);
        let mut small = [0u8; 16];
        // SAFETY: valid buffers.
        unsafe {
            assert_eq!(getentropy(small.as_mut_ptr().cast(), 16), 0);
            assert_eq!(getentropy(small.as_mut_ptr().cast(), 257), -1);
        }
        assert_eq!(small[15], 15 ^ 0xA5);
        // SAFETY: other syscalls are refused without touching memory.
        assert_eq!(unsafe { syscall(39, 0, 0, 0, 0, 0) }, -1);
        assert_eq!(errno(), ENOSYS);
        set_entropy_source(None);
    }
}
