//! The monotonic clock: the TSC, calibrated once against PIT channel 2
//! (its gate and output are readable through port 0x61 on every PC,
//! QEMU's included), and the time source for libtpms' clock.
// Port I/O to the PIT and RDTSC.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};

use libtpms_sys::shim::Clock;
use x86_64::instructions::port::Port;

use super::tsc::{self, Implausible, TscClock};

static HZ: AtomicU64 = AtomicU64::new(0);
static ORIGIN: AtomicU64 = AtomicU64::new(0);

/// The TSC.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// PIT ticks in the calibration window (10 ms).
const WINDOW: u16 = 11_932;

/// Measures the TSC rate over 10 ms of PIT channel 2 (one-shot, gate via
/// port 0x61, terminal count on bit 5 of port 0x61).
fn measure() -> Result<u64, Implausible> {
    let mut ctrl: Port<u8> = Port::new(0x61);
    let mut mode: Port<u8> = Port::new(0x43);
    let mut ch2: Port<u8> = Port::new(0x42);
    // SAFETY: the PC speaker/PIT channel 2 registers; channel 2 only
    // drives the speaker, which stays disconnected (bit 1 clear).
    unsafe {
        let saved = ctrl.read();
        ctrl.write((saved & !0x02) | 0x01);
        mode.write(0b1011_0000); // channel 2, lobyte/hibyte, mode 0, binary
        ch2.write((WINDOW & 0xFF) as u8);
        ch2.write((WINDOW >> 8) as u8);
        // Restart the count: gate low then high.
        let g = ctrl.read();
        ctrl.write(g & !0x01);
        ctrl.write(g | 0x01);
        let start = rdtsc();
        let mut spins = 0u64;
        while ctrl.read() & 0x20 == 0 && spins < 100_000_000 {
            spins += 1;
        }
        let end = rdtsc();
        ctrl.write(saved);
        tsc::rate(end.wrapping_sub(start), u64::from(WINDOW))
    }
}

/// Calibrates the clock; its origin is now. Returns the TSC rate in Hz.
pub fn init() -> Result<u64, Implausible> {
    let hz = measure()?;
    ORIGIN.store(rdtsc(), Ordering::Relaxed);
    HZ.store(hz, Ordering::Relaxed);
    Ok(hz)
}

/// Nanoseconds since [`init`] (0 before it).
pub fn now_ns() -> u64 {
    let hz = HZ.load(Ordering::Relaxed);
    if hz == 0 {
        return 0;
    }
    TscClock {
        hz,
        origin: ORIGIN.load(Ordering::Relaxed),
    }
    .nanos(rdtsc())
}

/// The libtpms time source: monotonic time only (no trusted wall clock).
pub fn time_source(clock: Clock) -> Option<u64> {
    match clock {
        Clock::Monotonic if HZ.load(Ordering::Relaxed) != 0 => Some(now_ns()),
        _ => None,
    }
}
