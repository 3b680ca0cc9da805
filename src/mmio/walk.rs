//! Guest linear -> guest-physical translation through the guest's own page
//! tables, and the memory accesses built on it (instruction fetch, the RAM
//! side of string operations).
//!
//! Supports every x86 mode: paging off (real mode and unpaged protected mode:
//! linear = physical, 32-bit wrap), 32-bit paging with 4 MiB PSE pages
//! (PSE-36 high address bits), PAE paging with 2 MiB pages, and long-mode
//! 4-level and 5-level (CR4.LA57) paging with 1 GiB and 2 MiB pages.
//! Present, reserved (MAXPHYADDR, NX without EFER.NXE, large-page alignment
//! and PS bits where they are reserved), R/W (with CR0.WP), U/S, NX, SMEP and
//! SMAP are checked, producing the page-fault error code a CPU would.
//!
//! Accessed/dirty bits are not set by this walk; the guest CPU has already
//! set them for the instruction fetch, and drivers do not depend on them for
//! the kernel buffers that string operations copy to or from.

use super::regs::{
    CodeSize, GuestState, SegReg, CR0_PG, CR0_WP, CR4_LA57, CR4_PAE, CR4_PSE, CR4_SMAP, CR4_SMEP,
    EFER_LMA, EFER_NXE, RFLAGS_AC,
};
use super::{MmioError, MAX_INSTRUCTION_LEN};

/// Size of a 4 KiB page.
const PAGE_SIZE: u64 = 0x1000;

/// Page-fault error code: the fault was a protection or reserved-bit violation.
pub const PF_PRESENT: u32 = 1 << 0;
/// Page-fault error code: the access was a write.
pub const PF_WRITE: u32 = 1 << 1;
/// Page-fault error code: the access was made at CPL 3.
pub const PF_USER: u32 = 1 << 2;
/// Page-fault error code: a reserved bit was set in a paging entry.
pub const PF_RSVD: u32 = 1 << 3;
/// Page-fault error code: the access was an instruction fetch.
pub const PF_FETCH: u32 = 1 << 4;

const PTE_P: u64 = 1 << 0;
const PTE_RW: u64 = 1 << 1;
const PTE_US: u64 = 1 << 2;
const PTE_PS: u64 = 1 << 7;
const PTE_NX: u64 = 1 << 63;

/// Guest-physical memory could not be accessed at `gpa` (not guest RAM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryError {
    /// The guest-physical address that failed.
    pub gpa: u64,
}

/// Guest-physical memory (guest RAM, as the nested page tables map it).
pub trait GuestMemory {
    /// Reads `buf.len()` bytes at `gpa`.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError>;
    /// Writes `buf` at `gpa`.
    fn write(&mut self, gpa: u64, buf: &[u8]) -> Result<(), MemoryError>;
}

/// What kind of access a translation is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessKind {
    /// Instruction fetch.
    Fetch,
    /// Data read.
    Read,
    /// Data write.
    Write,
}

/// An access to translate: its kind and whether it is made at CPL 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// Fetch, read or write.
    pub kind: AccessKind,
    /// Made from user mode (CPL 3).
    pub user: bool,
}

/// The paging structure format in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// CR0.PG = 0: linear addresses are physical (32-bit).
    Off,
    /// 32-bit paging (4-byte entries), optionally with 4 MiB pages.
    Bits32 { pse: bool },
    /// PAE paging (legacy mode, 8-byte entries, 4-entry PDPT).
    Pae,
    /// Long-mode 4-level or 5-level paging.
    Long { levels: u8 },
}

/// The guest's address-translation configuration, captured from its control
/// registers at the time of the exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Paging {
    mode: Mode,
    cr3: u64,
    /// Physical address bits 12..MAXPHYADDR.
    addr_mask: u64,
    nxe: bool,
    wp: bool,
    smep: bool,
    smap: bool,
    ac: bool,
    user: bool,
    code64: bool,
}

/// Outcome of walking the paging entries for one linear address.
struct Walked {
    gpa: u64,
    writable: bool,
    user: bool,
    no_exec: bool,
}

impl Paging {
    /// Captures the translation state of `state`. `phys_addr_bits` is the
    /// CPU's MAXPHYADDR (CPUID 0x80000008 EAX bits 7:0), clamped to 32..=52.
    pub fn new(state: &GuestState, phys_addr_bits: u8) -> Self {
        let bits = phys_addr_bits.clamp(32, 52);
        let mode = if state.cr0 & CR0_PG == 0 {
            Mode::Off
        } else if state.efer & EFER_LMA != 0 {
            Mode::Long {
                levels: if state.cr4 & CR4_LA57 != 0 { 5 } else { 4 },
            }
        } else if state.cr4 & CR4_PAE != 0 {
            Mode::Pae
        } else {
            Mode::Bits32 {
                pse: state.cr4 & CR4_PSE != 0,
            }
        };
        Self {
            mode,
            cr3: state.cr3,
            addr_mask: ((1u64 << bits) - 1) & !(PAGE_SIZE - 1),
            nxe: state.efer & EFER_NXE != 0,
            wp: state.cr0 & CR0_WP != 0,
            smep: state.cr4 & CR4_SMEP != 0,
            smap: state.cr4 & CR4_SMAP != 0,
            ac: state.regs.rflags & RFLAGS_AC != 0,
            user: state.cpl == 3,
            code64: state.code_size() == CodeSize::Bits64,
        }
    }

    /// An access of `kind` at the guest's current privilege level.
    pub fn access(&self, kind: AccessKind) -> Access {
        Access {
            kind,
            user: self.user,
        }
    }

    /// Forms the linear address `base + offset` as the current code size
    /// does: wrapped to 32 bits outside 64-bit mode, checked for canonical
    /// form inside it.
    pub fn linear(&self, base: u64, offset: u64) -> Result<u64, MmioError> {
        let linear = base.wrapping_add(offset);
        if !self.code64 {
            return Ok(linear & 0xFFFF_FFFF);
        }
        let bits = match self.mode {
            Mode::Long { levels: 5 } => 57,
            _ => 48,
        };
        let shift = 64 - bits;
        if ((linear << shift) as i64 >> shift) as u64 == linear {
            Ok(linear)
        } else {
            Err(MmioError::NonCanonical { linear })
        }
    }

    /// Translates `linear` for `access`, returning the guest-physical address
    /// or the page fault the guest would take.
    pub fn translate<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        linear: u64,
        access: Access,
    ) -> Result<u64, MmioError> {
        let walked = match self.mode {
            Mode::Off => return Ok(linear & 0xFFFF_FFFF),
            Mode::Bits32 { pse } => self.walk32(mem, linear, access, pse)?,
            Mode::Pae => self.walk_pae(mem, linear, access)?,
            Mode::Long { levels } => self.walk_long(mem, linear, access, levels)?,
        };
        self.check_permissions(&walked, linear, access)?;
        Ok(walked.gpa)
    }

    /// Reads `buf.len()` bytes at `linear`, translating every page touched.
    pub fn read<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        linear: u64,
        buf: &mut [u8],
        kind: AccessKind,
    ) -> Result<(), MmioError> {
        let access = self.access(kind);
        let mut done = 0usize;
        while done < buf.len() {
            let lin = self.linear(linear, done as u64)?;
            let chunk = chunk_len(lin, buf.len() - done);
            let gpa = self.translate(mem, lin, access)?;
            mem.read(gpa, &mut buf[done..done + chunk])?;
            done += chunk;
        }
        Ok(())
    }

    /// Writes `buf` at `linear`, translating every page touched. All pages are
    /// translated before any byte is written, so a fault writes nothing.
    pub fn write<M: GuestMemory + ?Sized>(
        &self,
        mem: &mut M,
        linear: u64,
        buf: &[u8],
    ) -> Result<(), MmioError> {
        let access = self.access(AccessKind::Write);
        // At most two pages for the element sizes used here; handle any length.
        let mut done = 0usize;
        while done < buf.len() {
            let lin = self.linear(linear, done as u64)?;
            self.translate(mem, lin, access)?;
            done += chunk_len(lin, buf.len() - done);
        }
        let mut done = 0usize;
        while done < buf.len() {
            let lin = self.linear(linear, done as u64)?;
            let chunk = chunk_len(lin, buf.len() - done);
            let gpa = self.translate(mem, lin, access)?;
            mem.write(gpa, &buf[done..done + chunk])?;
            done += chunk;
        }
        Ok(())
    }

    fn page_fault(&self, linear: u64, access: Access, extra: u32) -> MmioError {
        let mut error_code = extra;
        if access.kind == AccessKind::Write {
            error_code |= PF_WRITE;
        }
        if access.user {
            error_code |= PF_USER;
        }
        if access.kind == AccessKind::Fetch && (self.nxe || self.smep) {
            error_code |= PF_FETCH;
        }
        MmioError::PageFault { linear, error_code }
    }

    fn check_permissions(&self, w: &Walked, linear: u64, access: Access) -> Result<(), MmioError> {
        let user_page_denied = access.user && !w.user;
        let smap_denied = !access.user && w.user && self.smap && !self.ac;
        let denied = match access.kind {
            AccessKind::Fetch => {
                w.no_exec || user_page_denied || (!access.user && w.user && self.smep)
            }
            AccessKind::Read => user_page_denied || smap_denied,
            AccessKind::Write => {
                let read_only_denied = !w.writable && (access.user || self.wp);
                user_page_denied || smap_denied || read_only_denied
            }
        };
        if denied {
            Err(self.page_fault(linear, access, PF_PRESENT))
        } else {
            Ok(())
        }
    }

    fn read_entry<M: GuestMemory + ?Sized, const N: usize>(
        mem: &M,
        gpa: u64,
    ) -> Result<u64, MmioError> {
        let mut raw = [0u8; 8];
        mem.read(gpa, &mut raw[..N])?;
        Ok(u64::from_le_bytes(raw))
    }

    /// 32-bit paging: 1024-entry directory and tables of 4-byte entries.
    fn walk32<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        linear: u64,
        access: Access,
        pse: bool,
    ) -> Result<Walked, MmioError> {
        let linear = linear & 0xFFFF_FFFF;
        let pde_addr = (self.cr3 & 0xFFFF_F000) + ((linear >> 22) << 2);
        let pde = Self::read_entry::<M, 4>(mem, pde_addr)?;
        if pde & PTE_P == 0 {
            return Err(self.page_fault(linear, access, 0));
        }
        if pse && pde & PTE_PS != 0 {
            // PSE-36: PDE bits 13..=20 hold physical address bits 32..=39,
            // limited by MAXPHYADDR; bit 21 and unused high bits are reserved.
            let high_bits = (self.addr_mask | 0xFFF)
                .count_ones()
                .saturating_sub(32)
                .min(8);
            let used = ((1u64 << high_bits) - 1) << 13;
            if pde & (0x3F_E000 & !used) != 0 {
                return Err(self.page_fault(linear, access, PF_PRESENT | PF_RSVD));
            }
            let high = ((pde >> 13) & 0xFF) << 32;
            return Ok(Walked {
                gpa: high | (pde & 0xFFC0_0000) | (linear & 0x3F_FFFF),
                writable: pde & PTE_RW != 0,
                user: pde & PTE_US != 0,
                no_exec: false,
            });
        }
        let pte_addr = (pde & 0xFFFF_F000) + (((linear >> 12) & 0x3FF) << 2);
        let pte = Self::read_entry::<M, 4>(mem, pte_addr)?;
        if pte & PTE_P == 0 {
            return Err(self.page_fault(linear, access, 0));
        }
        Ok(Walked {
            gpa: (pte & 0xFFFF_F000) | (linear & 0xFFF),
            writable: pde & pte & PTE_RW != 0,
            user: pde & pte & PTE_US != 0,
            no_exec: false,
        })
    }

    /// Reserved bits common to all 8-byte entries: above MAXPHYADDR (bits
    /// 52..=62 are software-available) and NX when EFER.NXE is clear.
    fn rsvd_common(&self) -> u64 {
        let above_phys = !(self.addr_mask | 0xFFF) & ((1u64 << 52) - 1);
        above_phys | if self.nxe { 0 } else { PTE_NX }
    }

    /// PAE paging: CR3 points at four PDPTEs, then 512-entry PD and PT.
    fn walk_pae<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        linear: u64,
        access: Access,
    ) -> Result<Walked, MmioError> {
        let linear = linear & 0xFFFF_FFFF;
        let pdpte_addr = (self.cr3 & 0xFFFF_FFE0) + ((linear >> 30) << 3);
        let pdpte = Self::read_entry::<M, 8>(mem, pdpte_addr)?;
        if pdpte & PTE_P == 0 {
            return Err(self.page_fault(linear, access, 0));
        }
        // Legacy PAE PDPTEs: bits 1, 2, 5..=8 and 63 are reserved.
        let pdpte_rsvd = self.rsvd_common() | 0x1E6 | PTE_NX;
        if pdpte & pdpte_rsvd != 0 {
            return Err(self.page_fault(linear, access, PF_PRESENT | PF_RSVD));
        }
        let mut acc = Walked {
            gpa: pdpte & self.addr_mask,
            writable: true,
            user: true,
            no_exec: false,
        };
        self.walk_tail(mem, linear, access, &mut acc, 2)?;
        Ok(acc)
    }

    /// Long-mode paging with 4 or 5 levels.
    fn walk_long<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        linear: u64,
        access: Access,
        levels: u8,
    ) -> Result<Walked, MmioError> {
        let mut acc = Walked {
            gpa: self.cr3 & self.addr_mask,
            writable: true,
            user: true,
            no_exec: false,
        };
        self.walk_tail(mem, linear, access, &mut acc, levels)?;
        Ok(acc)
    }

    /// Walks 8-byte-entry levels `level` down to 1 (1 = page table), starting
    /// with the table at `acc.gpa`. Level 3 may map 1 GiB pages (long mode
    /// only, when entered at a higher level), level 2 maps 2 MiB pages.
    fn walk_tail<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        linear: u64,
        access: Access,
        acc: &mut Walked,
        top: u8,
    ) -> Result<(), MmioError> {
        let common = self.rsvd_common();
        let mut level = top;
        loop {
            let shift = 12 + 9 * u32::from(level - 1);
            let index = (linear >> shift) & 0x1FF;
            let entry = Self::read_entry::<M, 8>(mem, acc.gpa + index * 8)?;
            if entry & PTE_P == 0 {
                return Err(self.page_fault(linear, access, 0));
            }
            let large = entry & PTE_PS != 0;
            let mut rsvd = common;
            match level {
                // PS is reserved in PML5Es and PML4Es.
                4 | 5 => rsvd |= PTE_PS,
                // 1 GiB page: bits 13..=29 must be zero (bit 12 is PAT).
                3 if large => rsvd |= 0x3FFF_E000,
                // 2 MiB page: bits 13..=20 must be zero.
                2 if large => rsvd |= 0x1F_E000,
                _ => {}
            }
            if entry & rsvd != 0 {
                return Err(self.page_fault(linear, access, PF_PRESENT | PF_RSVD));
            }
            acc.writable &= entry & PTE_RW != 0;
            acc.user &= entry & PTE_US != 0;
            acc.no_exec |= self.nxe && entry & PTE_NX != 0;
            let leaf = level == 1 || (large && (level == 2 || (level == 3 && top > 3)));
            if leaf {
                let page_mask = (1u64 << shift) - 1;
                acc.gpa = (entry & self.addr_mask & !page_mask) | (linear & page_mask);
                return Ok(());
            }
            if large {
                // PS in a legacy-PAE directory pointer cannot happen (its
                // PDPTE is checked separately); anything else is reserved.
                return Err(self.page_fault(linear, access, PF_PRESENT | PF_RSVD));
            }
            acc.gpa = entry & self.addr_mask;
            level -= 1;
        }
    }
}

/// Bytes from `linear` to the end of its page, at most `remaining`.
fn chunk_len(linear: u64, remaining: usize) -> usize {
    let to_page_end = (PAGE_SIZE - (linear & (PAGE_SIZE - 1))) as usize;
    remaining.min(to_page_end)
}

/// Up to [`MAX_INSTRUCTION_LEN`] instruction bytes fetched at CS:RIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fetched {
    buf: [u8; MAX_INSTRUCTION_LEN],
    len: usize,
    /// Why fewer than 15 bytes were fetched, if so: the fault on the next page.
    /// It only matters if the instruction turns out to need those bytes.
    pub fault: Option<MmioError>,
}

impl Fetched {
    /// The bytes fetched.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Fetches up to 15 bytes at CS:RIP. A fault on the first page is an error;
/// a fault on the following page (an instruction near a page end) is kept in
/// [`Fetched::fault`] and reported only if the decoder needs those bytes.
pub fn fetch_instruction<M: GuestMemory + ?Sized>(
    paging: &Paging,
    state: &GuestState,
    mem: &M,
) -> Result<Fetched, MmioError> {
    let ip_mask = match state.code_size() {
        CodeSize::Bits16 => 0xFFFF,
        CodeSize::Bits32 => 0xFFFF_FFFF,
        CodeSize::Bits64 => u64::MAX,
    };
    let cs_base = state.segment_base(SegReg::Cs);
    let mut out = Fetched {
        buf: [0; MAX_INSTRUCTION_LEN],
        len: 0,
        fault: None,
    };
    while out.len < MAX_INSTRUCTION_LEN {
        let ip = state.regs.rip.wrapping_add(out.len as u64) & ip_mask;
        // IP wraps at the end of a 16/32-bit segment offset space.
        let room = usize::try_from((ip_mask - ip).saturating_add(1)).unwrap_or(usize::MAX);
        let want = (MAX_INSTRUCTION_LEN - out.len).min(room);
        match fetch_chunk(
            paging,
            mem,
            cs_base,
            ip,
            &mut out.buf[out.len..out.len + want],
        ) {
            Ok(chunk) => out.len += chunk,
            Err(e) if out.len == 0 => return Err(e),
            Err(e) => {
                out.fault = Some(e);
                break;
            }
        }
    }
    Ok(out)
}

/// Fetches the bytes of `buf` that lie on the page of CS:`ip`; returns how many.
fn fetch_chunk<M: GuestMemory + ?Sized>(
    paging: &Paging,
    mem: &M,
    cs_base: u64,
    ip: u64,
    buf: &mut [u8],
) -> Result<usize, MmioError> {
    let lin = paging.linear(cs_base, ip)?;
    let chunk = chunk_len(lin, buf.len());
    let gpa = paging.translate(mem, lin, paging.access(AccessKind::Fetch))?;
    mem.read(gpa, &mut buf[..chunk])?;
    Ok(chunk)
}
