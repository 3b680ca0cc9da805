//! The I/O and MSR permission maps: which port accesses and which MSR
//! reads/writes exit to the hypervisor (AMD APM vol. 2, 15.10 and 15.11).

use alloc::boxed::Box;

/// The I/O permission map: one bit per port, 12 KiB (three pages; the
/// last bits cover multi-byte accesses that run past port 0xFFFF).
#[repr(C, align(4096))]
#[derive(Debug)]
pub struct Iopm(pub [u8; 3 * 4096]);

impl Iopm {
    /// A map that intercepts nothing.
    pub fn new() -> Box<Self> {
        Box::new(Self([0; 3 * 4096]))
    }

    /// Intercepts every access touching ports `first..first + count`.
    pub fn intercept(&mut self, first: u16, count: u16) {
        for p in u32::from(first)..u32::from(first) + u32::from(count) {
            self.0[(p / 8) as usize] |= 1 << (p % 8);
        }
    }

    /// Whether an access of `size` bytes at `port` exits (any of its
    /// ports' bits set, as the CPU checks).
    pub fn intercepted(&self, port: u16, size: u8) -> bool {
        (u32::from(port)..u32::from(port) + u32::from(size))
            .any(|p| self.0[(p / 8) as usize] & (1 << (p % 8)) != 0)
    }
}

/// The MSR permission map: two bits (read, write) per MSR in three 2 KiB
/// vectors for MSRs 0..0x1FFF, 0xC0000000..0xC0001FFF and
/// 0xC0010000..0xC0011FFF; 8 KiB in all. MSRs outside them always exit.
#[repr(C, align(4096))]
#[derive(Debug)]
pub struct Msrpm(pub [u8; 2 * 4096]);

/// Which accesses of an MSR to intercept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsrAccess {
    /// RDMSR.
    Read,
    /// WRMSR.
    Write,
}

impl Msrpm {
    /// A map that intercepts nothing it covers.
    pub fn new() -> Box<Self> {
        Box::new(Self([0; 2 * 4096]))
    }

    /// The bit index of `msr`'s read bit, if the map covers it.
    pub fn bit(msr: u32) -> Option<usize> {
        let (vector, index) = match msr {
            0..=0x1FFF => (0, msr),
            0xC000_0000..=0xC000_1FFF => (1, msr - 0xC000_0000),
            0xC001_0000..=0xC001_1FFF => (2, msr - 0xC001_0000),
            _ => return None,
        };
        Some(vector * 0x800 * 8 + index as usize * 2)
    }

    /// Intercepts `access` of `msr` (MSRs the map does not cover exit
    /// anyway).
    pub fn intercept(&mut self, msr: u32, access: MsrAccess) {
        if let Some(b) = Self::bit(msr) {
            let b = b + usize::from(access == MsrAccess::Write);
            self.0[b / 8] |= 1 << (b % 8);
        }
    }

    /// Whether `access` of `msr` exits.
    pub fn intercepted(&self, msr: u32, access: MsrAccess) -> bool {
        match Self::bit(msr) {
            Some(b) => {
                let b = b + usize::from(access == MsrAccess::Write);
                self.0[b / 8] & (1 << (b % 8)) != 0
            }
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iopm_bits() {
        let mut m = Iopm::new();
        m.intercept(0x514, 8);
        // Byte 0x514/8 = 0xA2, bits 4..7; byte 0xA3, bits 0..3.
        assert_eq!(m.0[0xA2], 0xF0);
        assert_eq!(m.0[0xA3], 0x0F);
        assert!(m.intercepted(0x514, 4));
        assert!(m.intercepted(0x518, 4));
        assert!(m.intercepted(0x512, 4), "spills into 0x514");
        assert!(!m.intercepted(0x510, 2));
        assert!(!m.intercepted(0x511, 1));
        assert!(!m.intercepted(0x51C, 4));
        assert!(!m.intercepted(0x3F8, 1));
        m.intercept(0xFFFF, 1);
        assert!(m.intercepted(0xFFFF, 4));
    }

    #[test]
    fn msrpm_offsets() {
        // APM: EFER (0xC0000080) is in the second vector at byte
        // 0x800 + 0x80 * 2 / 8 = 0x820, bits 0 (read) and 1 (write).
        let mut m = Msrpm::new();
        m.intercept(0xC000_0080, MsrAccess::Read);
        m.intercept(0xC000_0080, MsrAccess::Write);
        assert_eq!(m.0[0x820], 0b11);
        // VM_HSAVE_PA (0xC0010117): 0x1000 + 0x117 * 2 / 8 = 0x1045, bits 6-7.
        m.intercept(0xC001_0117, MsrAccess::Write);
        assert_eq!(m.0[0x1045], 0b1000_0000);
        assert!(m.intercepted(0xC001_0117, MsrAccess::Write));
        assert!(!m.intercepted(0xC001_0117, MsrAccess::Read));
        // The first vector: MSR 0x10 (TSC) at byte 4.
        m.intercept(0x10, MsrAccess::Read);
        assert_eq!(m.0[4], 1);
        assert!(!m.intercepted(0x1B, MsrAccess::Read));
        // Outside every vector: always intercepted, never written.
        assert!(m.intercepted(0x4000_0000, MsrAccess::Read));
        m.intercept(0x4000_0000, MsrAccess::Read);
        assert_eq!(m.0.iter().map(|b| b.count_ones()).sum::<u32>(), 4);
    }
}
