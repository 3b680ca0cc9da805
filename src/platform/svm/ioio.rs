//! IN/OUT exits: the decoded EXITINFO1 of an IOIO intercept (AMD APM vol.
//! 2, 15.10.2), and the guard on QEMU's fw_cfg DMA ports, the one device
//! path by which the guest could otherwise make QEMU copy memory into or
//! out of svtpm's slot.
//!
//! The fw_cfg DMA address register is big endian: the guest writes the
//! high half of the descriptor address to port 0x514 and the low half to
//! 0x518, which starts the transfer (QEMU's `fw_cfg_dma_mem_write`; other
//! widths and offsets do nothing). The hypervisor passes the high half
//! through, and before passing the low half checks the descriptor it
//! names.

use crate::arch::fwcfg::{DmaAccess, PORT_DMA};

/// An IN/OUT exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoExit {
    /// The port.
    pub port: u16,
    /// Access width: 1, 2 or 4.
    pub size: u8,
    /// IN (else OUT).
    pub input: bool,
    /// INS/OUTS.
    pub string: bool,
    /// With a REP prefix.
    pub rep: bool,
}

impl IoExit {
    /// Decodes EXITINFO1.
    pub fn decode(info1: u64) -> Self {
        let size = if info1 & (1 << 4) != 0 {
            1
        } else if info1 & (1 << 5) != 0 {
            2
        } else {
            4
        };
        Self {
            port: (info1 >> 16) as u16,
            size,
            input: info1 & 1 != 0,
            string: info1 & (1 << 2) != 0,
            rep: info1 & (1 << 3) != 0,
        }
    }
}

/// What to do with an OUT to the DMA ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaWrite {
    /// Perform the write as the guest issued it.
    Forward,
    /// The write starts a transfer described at `descriptor`: check it,
    /// then forward the write or refuse it.
    Check {
        /// Guest-physical address of the descriptor.
        descriptor: u64,
    },
}

/// The fw_cfg DMA address register as the guest has written it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DmaGuard {
    high: u32,
}

impl DmaGuard {
    /// A write of `size` bytes of `value` (as in the guest's register) to
    /// `port` in 0x514..0x51C.
    pub fn write(&mut self, port: u16, size: u8, value: u32) -> DmaWrite {
        match (port.wrapping_sub(PORT_DMA), size) {
            (0, 4) => {
                self.high = u32::from_be(value);
                DmaWrite::Forward
            }
            (4, 4) => {
                let descriptor = (u64::from(self.high) << 32) | u64::from(u32::from_be(value));
                self.high = 0;
                DmaWrite::Check { descriptor }
            }
            _ => DmaWrite::Forward,
        }
    }
}

/// The verdict on a DMA descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Let QEMU perform it.
    Allow,
    /// The transfer would touch memory `allowed` refuses: do not start it;
    /// report an error to the guest in the descriptor's control word.
    Refuse,
}

/// Judges `desc` given the policy `allowed(addr, len)` on device memory
/// accesses.
pub fn judge(desc: &DmaAccess, allowed: impl Fn(u64, u64) -> bool) -> Verdict {
    if !desc.touches_memory() || allowed(desc.address, u64::from(desc.length)) {
        Verdict::Allow
    } else {
        Verdict::Refuse
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::fwcfg::{DMA_SELECT, DMA_SKIP, DMA_WRITE};

    #[test]
    fn exit_info_decoding() {
        // OUT dx, eax to 0x518: type 0, SZ32 (bit 6), A64 (bit 9).
        let e = IoExit::decode((0x518 << 16) | (1 << 6) | (1 << 9));
        assert_eq!(
            e,
            IoExit {
                port: 0x518,
                size: 4,
                input: false,
                string: false,
                rep: false
            }
        );
        // REP INSB from 0x511.
        let e = IoExit::decode((0x511 << 16) | (1 << 4) | (1 << 3) | (1 << 2) | 1);
        assert_eq!(
            (e.port, e.size, e.input, e.string, e.rep),
            (0x511, 1, true, true, true)
        );
        assert_eq!(IoExit::decode((0x514 << 16) | (1 << 5)).size, 2);
    }

    #[test]
    fn address_halves() {
        let mut g = DmaGuard::default();
        // Linux: iowrite32be(high, 0x514); iowrite32be(low, 0x518).
        assert_eq!(g.write(0x514, 4, 0x1u32.to_be()), DmaWrite::Forward);
        assert_eq!(
            g.write(0x518, 4, 0x2000_1000u32.to_be()),
            DmaWrite::Check {
                descriptor: 0x1_2000_1000
            }
        );
        // The high half does not linger.
        assert_eq!(
            g.write(0x518, 4, 0x1000u32.to_be()),
            DmaWrite::Check { descriptor: 0x1000 }
        );
        // Byte and word writes start nothing in QEMU.
        assert_eq!(g.write(0x518, 1, 0x10), DmaWrite::Forward);
        assert_eq!(g.write(0x51A, 2, 0x10), DmaWrite::Forward);
    }

    #[test]
    fn verdicts() {
        let hidden = 0x1_0000_0000u64..0x1_4000_0000;
        let allowed = |a: u64, l: u64| a + l <= hidden.start || a >= hidden.end;
        let read = DmaAccess::read(0x20, 0x1000, 0x10_0000);
        assert_eq!(judge(&read, allowed), Verdict::Allow);
        let into_svtpm = DmaAccess::read(0x20, 0x1000, 0x1_0000_0000);
        assert_eq!(judge(&into_svtpm, allowed), Verdict::Refuse);
        let from_svtpm = DmaAccess {
            control: DMA_WRITE,
            length: 16,
            address: 0x1_0010_0000,
        };
        assert_eq!(judge(&from_svtpm, allowed), Verdict::Refuse);
        let straddle = DmaAccess::read(0x20, 0x2000, 0xFFFF_F000);
        assert_eq!(judge(&straddle, allowed), Verdict::Refuse);
        // Select and skip move no data, wherever the address points.
        let select = DmaAccess {
            control: (0x20 << 16) | DMA_SELECT,
            length: 0,
            address: 0x1_0000_0000,
        };
        assert_eq!(judge(&select, allowed), Verdict::Allow);
        let skip = DmaAccess {
            control: DMA_SKIP,
            length: 4096,
            address: 0x1_0000_0000,
        };
        assert_eq!(judge(&skip, allowed), Verdict::Allow);
    }
}
