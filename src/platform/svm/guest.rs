//! The stopped guest's memory as the hypervisor may touch it: guest RAM and
//! the firmware copy, through the [`Layout`].
// Copies to and from guest memory through the identity map.
#![allow(unsafe_code)]

use super::layout::Layout;
use crate::mmio::{GuestMemory, MemoryError};

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
