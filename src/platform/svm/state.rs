//! The guest's register state, converted between the VMCB plus the
//! general-purpose registers VMRUN leaves to software and the MMIO
//! emulator's [`GuestState`].

use crate::mmio::regs::{RAX, RSP};
use crate::mmio::{GuestRegs, GuestState, Segment, Segments};

use super::vmcb::{self, Vmcb};

/// The general-purpose registers VMRUN does not save, by register number
/// (RAX and RSP live in the VMCB; their slots here are unused).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gprs(pub [u64; 16]);

fn seg(s: &vmcb::Segment) -> Segment {
    Segment {
        selector: s.selector,
        attrib: s.attrib,
        limit: s.limit,
        base: s.base,
    }
}

/// The guest's state as the MMIO emulator sees it.
pub fn state(v: &Vmcb, gprs: &Gprs) -> GuestState {
    let mut gpr = gprs.0;
    gpr[usize::from(RAX)] = v.save.rax;
    gpr[usize::from(RSP)] = v.save.rsp;
    let s = &v.save;
    GuestState {
        regs: GuestRegs {
            gpr,
            rip: s.rip,
            rflags: s.rflags,
        },
        segs: Segments {
            es: seg(&s.es),
            cs: seg(&s.cs),
            ss: seg(&s.ss),
            ds: seg(&s.ds),
            fs: seg(&s.fs),
            gs: seg(&s.gs),
        },
        cr0: s.cr0,
        cr3: s.cr3,
        cr4: s.cr4,
        efer: s.efer,
        cpl: s.cpl,
    }
}

/// Writes back what the emulator may change: GPRs, RIP, RFLAGS.
pub fn store(state: &GuestState, v: &mut Vmcb, gprs: &mut Gprs) {
    gprs.0 = state.regs.gpr;
    v.save.rax = state.regs.gpr[usize::from(RAX)];
    v.save.rsp = state.regs.gpr[usize::from(RSP)];
    v.save.rip = state.regs.rip;
    v.save.rflags = state.regs.rflags;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mmio::regs::{RBX, RCX};
    use crate::mmio::CodeSize;

    #[test]
    fn round_trip_and_register_homes() {
        let mut v = Vmcb::zeroed();
        v.set_reset_state(0);
        v.save.rax = 0xAAAA;
        v.save.rsp = 0x5555;
        let mut g = Gprs::default();
        g.0[usize::from(RBX)] = 0xB;
        g.0[usize::from(RAX)] = 0xDEAD; // not RAX's home
        let mut s = state(&v, &g);
        assert_eq!(s.regs.gpr[usize::from(RAX)], 0xAAAA);
        assert_eq!(s.regs.gpr[usize::from(RSP)], 0x5555);
        assert_eq!(s.regs.gpr[usize::from(RBX)], 0xB);
        assert_eq!(s.segs.cs.base, 0xFFFF_0000);
        assert_eq!(s.code_size(), CodeSize::Bits16);
        assert_eq!(s.regs.rip, 0xFFF0);

        s.regs.gpr[usize::from(RAX)] = 0x1234;
        s.regs.gpr[usize::from(RCX)] = 7;
        s.regs.rip = 0xFFF3;
        store(&s, &mut v, &mut g);
        assert_eq!(v.save.rax, 0x1234);
        assert_eq!(v.save.rip, 0xFFF3);
        assert_eq!(g.0[usize::from(RCX)], 7);
        assert_eq!(state(&v, &g), s);
    }

    #[test]
    fn long_mode_code() {
        let mut v = Vmcb::zeroed();
        v.save.efer = 1 << 10;
        v.save.cs.attrib = 0xA9B; // L=1, present code
        assert_eq!(state(&v, &Gprs::default()).code_size(), CodeSize::Bits64);
    }
}
