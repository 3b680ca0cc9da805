//! Host tests of the MMIO decoder, page walk and emulator.

mod decode;
mod emulate;
mod fake;
mod iced;
mod regs;
mod walk;
