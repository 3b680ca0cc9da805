//! Clocks: `clock_gettime`, `clock`, `time`, `gettimeofday`, `sleep`,
//! `usleep`, all answered from a time source the image registers with
//! [`set_time_source`], plus `gmtime_r` (pure calendar arithmetic).
//!
//! libtpms reads `CLOCK_MONOTONIC` for the TPM clock; OpenSSL reads the
//! clocks for DRBG nonces and reseed intervals. Without a source every call
//! fails (`EINVAL`/`ENOSYS`, outputs zeroed) rather than inventing a time.

use core::ffi::{c_char, c_int, c_long, c_uint, c_void};

use super::errno::{set_errno, EINVAL, ENOSYS, EOVERFLOW};

/// Which clock a caller wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Never goes backwards; any fixed origin (e.g. boot).
    Monotonic,
    /// Wall-clock time since 1970-01-01T00:00:00Z.
    Realtime,
}

/// A time source: nanoseconds on the given clock, or `None` if unavailable.
pub type TimeSource = fn(Clock) -> Option<u64>;

static SOURCE: spin::RwLock<Option<TimeSource>> = spin::RwLock::new(None);

/// Installs (or with `None` removes) the time source.
pub fn set_time_source(source: Option<TimeSource>) {
    *SOURCE.write() = source;
}

/// Nanoseconds on `clock` from the registered source.
pub fn now(clock: Clock) -> Option<u64> {
    let source = *SOURCE.read();
    source.and_then(|f| f(clock))
}

const NANOS: u64 = 1_000_000_000;

/// `struct timespec`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct timespec {
    pub tv_sec: i64,
    pub tv_nsec: i64,
}

/// `struct timeval`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct timeval {
    pub tv_sec: i64,
    pub tv_usec: i64,
}

/// `struct tm` (glibc layout, 56 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct tm {
    pub tm_sec: c_int,
    pub tm_min: c_int,
    pub tm_hour: c_int,
    pub tm_mday: c_int,
    pub tm_mon: c_int,
    pub tm_year: c_int,
    pub tm_wday: c_int,
    pub tm_yday: c_int,
    pub tm_isdst: c_int,
    pub tm_gmtoff: c_long,
    pub tm_zone: *const c_char,
}

/// The clock a `clockid_t` names: realtime for `CLOCK_REALTIME` (0) and
/// `CLOCK_REALTIME_COARSE` (5); monotonic for `CLOCK_MONOTONIC` (1), the
/// CPU-time clocks (2, 3; the image is one task on one CPU),
/// `CLOCK_MONOTONIC_RAW` (4), `_COARSE` (6) and `CLOCK_BOOTTIME` (7).
fn clock_of(id: c_int) -> Option<Clock> {
    match id {
        0 | 5 => Some(Clock::Realtime),
        1..=4 | 6 | 7 => Some(Clock::Monotonic),
        _ => None,
    }
}

/// `int clock_gettime(clockid_t id, struct timespec *ts)`.
///
/// # Safety
/// `ts` is writable.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn clock_gettime(id: c_int, ts: *mut timespec) -> c_int {
    if ts.is_null() {
        set_errno(EINVAL);
        return -1;
    }
    let ns = clock_of(id).and_then(now);
    let value = ns.map_or(timespec::default(), |ns| timespec {
        tv_sec: (ns / NANOS) as i64,
        tv_nsec: (ns % NANOS) as i64,
    });
    // SAFETY: per the contract.
    unsafe { ts.write(value) };
    match ns {
        Some(_) => 0,
        None => {
            set_errno(EINVAL);
            -1
        }
    }
}

/// `clock_t clock(void)`: processor time in `CLOCKS_PER_SEC` (10^6) units,
/// which for the image is monotonic time; -1 without a time source.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn clock() -> c_long {
    now(Clock::Monotonic).map_or(-1, |ns| (ns / 1000) as c_long)
}

/// `time_t time(time_t *t)`: -1 without a time source.
///
/// # Safety
/// `t` is NULL or writable.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn time(t: *mut i64) -> i64 {
    let secs = match now(Clock::Realtime) {
        Some(ns) => (ns / NANOS) as i64,
        None => {
            set_errno(ENOSYS);
            -1
        }
    };
    if !t.is_null() {
        // SAFETY: per the contract.
        unsafe { *t = secs };
    }
    secs
}

/// `int gettimeofday(struct timeval *tv, void *tz)`; `tz` is ignored.
///
/// # Safety
/// `tv` is NULL or writable.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn gettimeofday(tv: *mut timeval, _tz: *mut c_void) -> c_int {
    let ns = now(Clock::Realtime);
    if !tv.is_null() {
        let value = ns.map_or(timeval::default(), |ns| timeval {
            tv_sec: (ns / NANOS) as i64,
            tv_usec: ((ns % NANOS) / 1000) as i64,
        });
        // SAFETY: per the contract.
        unsafe { tv.write(value) };
    }
    match ns {
        Some(_) => 0,
        None => {
            set_errno(ENOSYS);
            -1
        }
    }
}

/// Busy-waits `ns` nanoseconds on the monotonic clock; false if it cannot.
fn wait(ns: u64) -> bool {
    let Some(start) = now(Clock::Monotonic) else {
        return false;
    };
    loop {
        match now(Clock::Monotonic) {
            Some(t) if t.saturating_sub(start) >= ns => return true,
            Some(_) => core::hint::spin_loop(),
            None => return false,
        }
    }
}

/// `unsigned sleep(unsigned secs)`: busy-waits; returns the seconds not
/// slept (all of them without a time source).
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn sleep(secs: c_uint) -> c_uint {
    if wait(u64::from(secs) * NANOS) {
        0
    } else {
        secs
    }
}

/// `int usleep(useconds_t us)`: busy-waits; -1 without a time source.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn usleep(us: c_uint) -> c_int {
    if wait(u64::from(us) * 1000) {
        0
    } else {
        set_errno(ENOSYS);
        -1
    }
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), proleptic
/// Gregorian (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// The UTC calendar time of `t` seconds since the epoch.
pub fn utc(t: i64) -> Option<tm> {
    const CUMULATIVE: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let yday = CUMULATIVE[(m - 1) as usize] + d - 1 + i64::from(m > 2 && is_leap(y));
    Some(tm {
        tm_sec: (secs % 60) as c_int,
        tm_min: (secs / 60 % 60) as c_int,
        tm_hour: (secs / 3600) as c_int,
        tm_mday: d as c_int,
        tm_mon: (m - 1) as c_int,
        tm_year: c_int::try_from(y - 1900).ok()?,
        tm_wday: (days + 4).rem_euclid(7) as c_int,
        tm_yday: yday as c_int,
        tm_isdst: 0,
        tm_gmtoff: 0,
        tm_zone: c"GMT".as_ptr(),
    })
}

/// `struct tm *gmtime_r(const time_t *t, struct tm *result)`.
///
/// # Safety
/// `t` is readable; `result` is writable.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn gmtime_r(t: *const i64, result: *mut tm) -> *mut tm {
    if t.is_null() || result.is_null() {
        set_errno(EINVAL);
        return core::ptr::null_mut();
    }
    // SAFETY: per the contract.
    match utc(unsafe { *t }) {
        Some(value) => {
            // SAFETY: per the contract.
            unsafe { result.write(value) };
            result
        }
        None => {
            set_errno(EOVERFLOW);
            core::ptr::null_mut()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" {
        #[link_name = "gmtime_r"]
        fn glibc_gmtime_r(t: *const i64, result: *mut tm) -> *mut tm;
    }

    fn fixed(clock: Clock) -> Option<u64> {
        Some(match clock {
            Clock::Monotonic => 5 * NANOS + 250_000_000,
            Clock::Realtime => 1_700_000_000 * NANOS + 123_456_789,
        })
    }

    #[test]
    fn clocks_come_from_the_source() {
        let _g = crate::shim::test_lock();
        set_time_source(Some(fixed));
        let mut ts = timespec::default();
        // SAFETY: valid out-pointers throughout.
        unsafe {
            assert_eq!(clock_gettime(1, &mut ts), 0);
            assert_eq!(
                ts,
                timespec {
                    tv_sec: 5,
                    tv_nsec: 250_000_000
                }
            );
            assert_eq!(clock_gettime(0, &mut ts), 0);
            assert_eq!(
                ts,
                timespec {
                    tv_sec: 1_700_000_000,
                    tv_nsec: 123_456_789
                }
            );
            assert_eq!(clock_gettime(99, &mut ts), -1);
            let mut t = 0;
            assert_eq!(time(&mut t), 1_700_000_000);
            assert_eq!(t, 1_700_000_000);
            let mut tv = timeval::default();
            assert_eq!(gettimeofday(&mut tv, core::ptr::null_mut()), 0);
            assert_eq!(
                tv,
                timeval {
                    tv_sec: 1_700_000_000,
                    tv_usec: 123_456
                }
            );
        }
        assert_eq!(clock(), 5_250_000);
        set_time_source(None);
    }

    #[test]
    fn without_a_source_clocks_fail() {
        let _g = crate::shim::test_lock();
        set_time_source(None);
        let mut ts = timespec {
            tv_sec: 7,
            tv_nsec: 7,
        };
        // SAFETY: valid out-pointers.
        unsafe {
            assert_eq!(clock_gettime(1, &mut ts), -1);
            assert_eq!(ts, timespec::default(), "no stale or invented time");
            assert_eq!(time(core::ptr::null_mut()), -1);
        }
        assert_eq!(clock(), -1);
        assert_eq!(sleep(3), 3);
        assert_eq!(usleep(10), -1);
    }

    #[test]
    fn sleep_waits_on_the_monotonic_clock() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static T: AtomicU64 = AtomicU64::new(0);
        fn ticking(_: Clock) -> Option<u64> {
            // Each reading advances the clock by 1 ms.
            Some(T.fetch_add(1_000_000, Ordering::SeqCst))
        }
        let _g = crate::shim::test_lock();
        set_time_source(Some(ticking));
        let start = T.load(Ordering::SeqCst);
        assert_eq!(usleep(10_000), 0);
        assert!(T.load(Ordering::SeqCst) - start >= 10_000_000);
        set_time_source(None);
    }

    #[test]
    fn gmtime_agrees_with_glibc() {
        let mut samples = vec![
            0i64,
            1,
            -1,
            59,
            86_399,
            86_400,
            951_782_400,
            951_868_799,
            1_700_000_000,
            4_102_444_800,
            -2_208_988_800,
            253_402_300_799,
            -62_135_596_800,
        ];
        let mut x: i64 = 0x1234_5678_9abc;
        for _ in 0..2000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            samples.push((x >> 20) % 20_000_000_000);
        }
        for t in samples {
            let ours = utc(t).unwrap();
            let mut theirs = ours;
            // SAFETY: valid pointers.
            assert!(!unsafe { glibc_gmtime_r(&t, &mut theirs) }.is_null());
            let key = |v: &tm| {
                (
                    v.tm_sec, v.tm_min, v.tm_hour, v.tm_mday, v.tm_mon, v.tm_year, v.tm_wday,
                    v.tm_yday,
                )
            };
            assert_eq!(key(&ours), key(&theirs), "t = {t}");
        }
    }
}
