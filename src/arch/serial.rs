//! The COM1 console (16550 at 0x3F8, polled) and the `log` logger on it.
//!
//! The guest shares COM1 (every device is passed through): svtpm writes
//! only while the guest is stopped in an exit, whole lines at a time.
// Port I/O to the UART.
#![allow(unsafe_code)]

use core::fmt::{self, Write};

use spin::Mutex;
use x86_64::instructions::port::{Port, PortReadOnly, PortWriteOnly};

const COM1: u16 = 0x3F8;

/// The UART.
#[derive(Debug)]
pub struct Serial {
    data: PortWriteOnly<u8>,
    lsr: PortReadOnly<u8>,
}

impl Serial {
    const fn new() -> Self {
        Self {
            data: PortWriteOnly::new(COM1),
            lsr: PortReadOnly::new(COM1 + 5),
        }
    }

    fn write_byte(&mut self, b: u8) {
        // SAFETY: the 16550's line status and transmit registers; reading
        // LSR and writing THR have no effect beyond the UART.
        unsafe {
            for _ in 0..100_000 {
                if self.lsr.read() & 0x20 != 0 {
                    break;
                }
                core::hint::spin_loop();
            }
            self.data.write(b);
        }
    }
}

impl Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(b);
        }
        Ok(())
    }
}

static SERIAL: Mutex<Serial> = Mutex::new(Serial::new());

/// Programs COM1 for 115200 8N1 with FIFOs, interrupts off.
pub fn init() {
    let setup: [(u16, u8); 6] = [(1, 0), (3, 0x80), (0, 1), (1, 0), (3, 3), (2, 0xC7)];
    for (off, v) in setup {
        // SAFETY: 16550 configuration registers of COM1.
        unsafe { Port::new(COM1 + off).write(v) };
    }
}

/// Writes formatted text to COM1.
pub fn write_fmt(args: fmt::Arguments<'_>) {
    let _ = SERIAL.lock().write_fmt(args);
}

/// Writes formatted text to COM1 even if the console lock is held (for
/// panics and exceptions, which may interrupt a writer).
pub fn write_fmt_force(args: fmt::Arguments<'_>) {
    let mut s = Serial::new();
    let _ = s.write_fmt(args);
}

/// The `log` logger: one line per record on COM1.
#[derive(Debug)]
pub struct Logger;

static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        match r.level() {
            log::Level::Info => write_fmt(format_args!("svtpm: {}\n", r.args())),
            level => write_fmt(format_args!("svtpm: {level}: {}\n", r.args())),
        }
    }

    fn flush(&self) {}
}

/// Installs the logger at `level`.
pub fn init_logger(level: log::LevelFilter) {
    // A second call keeps the first logger; only the level changes.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
