//! Access to the stopped guest: its memory as the hypervisor may touch it
//! (guest RAM and the firmware copy, through the [`Layout`]), and its
//! register state converted between the VMCB and the MMIO emulator's form.
// Copies to and from guest memory through the identity map.
#![allow(unsafe_code)]

use super::hw::Gprs;
use super::layout::Layout;
use super::vmcb::{self, Vmcb};
use crate::mmio::regs::{RAX, RSP};
use crate::mmio::{GuestMemory, GuestRegs, GuestState, MemoryError, Segment, Segments};

/// Guest memory the hypervisor may read and write.
#[derive(Debug)]
pub struct GuestRam<'a> {
    layout: &'a Layout,
}

impl<'a> GuestRam<'a> {
    /// Guest memory as `layout` describes it.
    pub fn new(layout: &'a Layout) -> Self {
        Self { layout }
    }
}

impl GuestMemory for GuestRam<'_> {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let hpa = self
            .layout
            .host_address(gpa, buf.len() as u64)
            .ok_or(MemoryError { gpa })?;
        // SAFETY: `host_address` admits only guest RAM and the firmware
        // copy, both identity-mapped in the image's page tables and not
        // part of the image's private memory; the guest is stopped. The
        // bytes are copied, never referenced.
        unsafe { core::ptr::copy_nonoverlapping(hpa as *const u8, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write(&mut self, gpa: u64, buf: &[u8]) -> Result<(), MemoryError> {
        let hpa = self
            .layout
            .host_address(gpa, buf.len() as u64)
            .ok_or(MemoryError { gpa })?;
        // SAFETY: as for `read`; the range belongs to the guest, so writing
        // it cannot corrupt the image.
        unsafe { core::ptr::copy_nonoverlapping(buf.as_ptr(), hpa as *mut u8, buf.len()) };
        Ok(())
    }
}

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
