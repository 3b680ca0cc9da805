//! Entropy from the CPU: RDSEED where present (full entropy), else RDRAND.
//! There is no other source and never a fixed seed: without either
//! instruction the image refuses to start.
// RDSEED/RDRAND.
#![allow(unsafe_code)]

use super::cpu::cpuid;

/// Which instruction the CPU offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// RDSEED (CPUID.7.0:EBX bit 18).
    Rdseed,
    /// RDRAND (CPUID.1:ECX bit 30).
    Rdrand,
}

/// The best source this CPU has.
pub fn source() -> Option<Source> {
    if cpuid(7, 0).ebx & (1 << 18) != 0 {
        Some(Source::Rdseed)
    } else if cpuid(1, 0).ecx & (1 << 30) != 0 {
        Some(Source::Rdrand)
    } else {
        None
    }
}

/// One 64-bit value, retrying a bounded number of times.
fn word(src: Source) -> Option<u64> {
    for _ in 0..1024 {
        let (v, ok): (u64, u8);
        // SAFETY: `source()` found the instruction in CPUID; it writes only
        // the named registers and flags.
        unsafe {
            match src {
                Source::Rdseed => {
                    core::arch::asm!("rdseed {v}", "setc {ok}", v = out(reg) v, ok = out(reg_byte) ok, options(nomem, nostack))
                }
                Source::Rdrand => {
                    core::arch::asm!("rdrand {v}", "setc {ok}", v = out(reg) v, ok = out(reg_byte) ok, options(nomem, nostack))
                }
            }
        }
        if ok == 1 {
            return Some(v);
        }
        core::hint::spin_loop();
    }
    None
}

/// Fills `buf` from the CPU; `false` if there is no source or it failed
/// (the shim's entropy hook signature).
pub fn fill(buf: &mut [u8]) -> bool {
    let Some(src) = source() else {
        return false;
    };
    for chunk in buf.chunks_mut(8) {
        match word(src) {
            Some(v) => chunk.copy_from_slice(&v.to_le_bytes()[..chunk.len()]),
            None => return false,
        }
    }
    true
}

/// The CPU's generator as the sealed state's and the key broker client's
/// [`EntropySource`](crate::nvstate::EntropySource).
#[derive(Clone, Copy, Debug, Default)]
pub struct HwEntropy;

impl crate::nvstate::EntropySource for HwEntropy {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), crate::nvstate::EntropyError> {
        if fill(dest) {
            Ok(())
        } else {
            Err(crate::nvstate::EntropyError)
        }
    }
}
