//! Reading QEMU's fw_cfg from the image: signature check, the file
//! directory, and files read by DMA (the data port as a fallback).
// Port I/O, and DMA into memory the device writes behind Rust's back.
#![allow(unsafe_code)]

use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{compiler_fence, Ordering};

use x86_64::instructions::port::Port;

use super::fwcfg::{
    parse_dir, DmaAccess, File, FwCfgError, DMA_ERROR, ID_DMA, PORT_DATA, PORT_DMA, PORT_SELECTOR,
    SEL_FILE_DIR, SEL_ID, SEL_SIGNATURE,
};

/// The fw_cfg device.
#[derive(Debug)]
pub struct FwCfg {
    dma: bool,
}

fn select(sel: u16) {
    // SAFETY: the fw_cfg selector register.
    unsafe { Port::<u16>::new(PORT_SELECTOR).write(sel) };
}

fn read_data(buf: &mut [u8]) {
    let mut port = Port::<u8>::new(PORT_DATA);
    for b in buf {
        // SAFETY: the fw_cfg data register; a read advances the offset.
        *b = unsafe { port.read() };
    }
}

impl FwCfg {
    /// Finds the device ("QEMU" signature) and whether it has DMA.
    pub fn probe() -> Result<Self, FwCfgError> {
        let mut sig = [0u8; 4];
        select(SEL_SIGNATURE);
        read_data(&mut sig);
        if &sig != b"QEMU" {
            return Err(FwCfgError::Absent);
        }
        let mut id = [0u8; 4];
        select(SEL_ID);
        read_data(&mut id);
        Ok(Self {
            dma: u32::from_le_bytes(id) & ID_DMA != 0,
        })
    }

    /// Whether the DMA interface is used.
    pub fn has_dma(&self) -> bool {
        self.dma
    }

    /// The little-endian 16-bit item `sel` (e.g. the CPU counts).
    pub fn read_u16(&self, sel: u16) -> u16 {
        let mut v = [0u8; 2];
        select(sel);
        read_data(&mut v);
        u16::from_le_bytes(v)
    }

    /// The file directory.
    pub fn files(&self) -> Result<Vec<File>, FwCfgError> {
        let mut head = [0u8; 4];
        select(SEL_FILE_DIR);
        read_data(&mut head);
        let count = super::fwcfg::dir_count(head);
        if count > super::fwcfg::MAX_FILES {
            return Err(FwCfgError::BadDirectory);
        }
        let mut dir = vec![0u8; 4 + count as usize * super::fwcfg::DIR_ENTRY_LEN];
        dir[..4].copy_from_slice(&head);
        read_data(&mut dir[4..]);
        parse_dir(&dir)
    }

    /// Reads all of `file` into the start of `buf`; returns its size.
    pub fn read_file(&self, file: &File, buf: &mut [u8]) -> Result<usize, FwCfgError> {
        let size = file.size as usize;
        let dst = buf
            .get_mut(..size)
            .ok_or(FwCfgError::TooLarge { size: file.size })?;
        if self.dma {
            self.dma_read(file.select, dst)
        } else {
            select(file.select);
            read_data(dst);
            Ok(())
        }
        .map(|()| size)
    }

    fn dma_read(&self, sel: u16, dst: &mut [u8]) -> Result<(), FwCfgError> {
        let len = u32::try_from(dst.len()).map_err(|_| FwCfgError::TooLarge { size: u32::MAX })?;
        #[repr(C, align(16))]
        struct Desc([u8; DmaAccess::LEN]);
        let mut desc = Desc(DmaAccess::read(sel, len, dst.as_mut_ptr() as u64).to_bytes());
        let pa = (&raw mut desc) as u64;
        // The device reads and writes `desc` and `dst` behind the compiler.
        compiler_fence(Ordering::SeqCst);
        // SAFETY: the descriptor and the destination are identity-mapped
        // image memory that lives until the transfer completes (QEMU runs
        // it synchronously within the second port write); writing the
        // low half starts it.
        unsafe {
            Port::<u32>::new(PORT_DMA).write(((pa >> 32) as u32).to_be());
            Port::<u32>::new(PORT_DMA + 4).write((pa as u32).to_be());
        }
        compiler_fence(Ordering::SeqCst);
        // SAFETY: the device has written the control word back; read it
        // without assuming the compiler saw the write.
        let control = unsafe { core::ptr::read_volatile((&raw const desc.0).cast::<[u8; 4]>()) };
        let control = u32::from_be_bytes(control);
        if control & DMA_ERROR != 0 || control != 0 {
            return Err(FwCfgError::Dma);
        }
        Ok(())
    }
}
