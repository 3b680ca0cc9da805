//! The image's own page tables: identity mappings in 2 MiB pages from 0 to
//! the end of the image (guest RAM below 4 GiB is reached this way when
//! the hypervisor walks guest page tables or copies string-I/O data), in
//! tables inside the image, replacing the boot tables at 1 MiB that become
//! guest RAM. Below 4 GiB nothing is executable (where the CPU has NX).
// Writing CR3.
#![allow(unsafe_code)]

use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::{PageTable, PageTableFlags as F, PhysFrame};
use x86_64::PhysAddr;

const GIB: u64 = 1 << 30;
const MAX_GIB: usize = 8;

#[repr(C, align(4096))]
struct Tables {
    pml4: PageTable,
    pdpt: PageTable,
    pd: [PageTable; MAX_GIB],
}

/// In a static, so the addresses CR3 and the entries hold never change.
static TABLES: spin::Mutex<Tables> = spin::Mutex::new(Tables {
    pml4: PageTable::new(),
    pdpt: PageTable::new(),
    pd: [const { PageTable::new() }; MAX_GIB],
});

/// Why the tables could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingError {
    /// The image ends above what the static tables cover.
    ImageTooHigh(u64),
}

/// Builds the identity map of `[0, end)` (rounded up to 1 GiB) and
/// switches to it. `end` must cover everything the image touches.
pub fn init(end: u64) -> Result<(), PagingError> {
    let gib = end.div_ceil(GIB);
    if gib > MAX_GIB as u64 {
        return Err(PagingError::ImageTooHigh(end));
    }
    let nx = if super::cpu::nx_enabled() {
        F::NO_EXECUTE
    } else {
        F::empty()
    };
    let mut guard = TABLES.lock();
    let t = &mut *guard;
    let table_flags = F::PRESENT | F::WRITABLE;
    for (g, pd) in t.pd.iter_mut().enumerate().take(gib as usize) {
        let base = g as u64 * GIB;
        let flags = table_flags | F::HUGE_PAGE | if base < 4 * GIB { nx } else { F::empty() };
        for (i, e) in pd.iter_mut().enumerate() {
            e.set_addr(PhysAddr::new(base + ((i as u64) << 21)), flags);
        }
        let pd_pa = PhysAddr::new((pd as *const PageTable) as u64);
        t.pdpt[g].set_addr(pd_pa, table_flags);
    }
    let pdpt_pa = PhysAddr::new((&t.pdpt as *const PageTable) as u64);
    t.pml4[0].set_addr(pdpt_pa, table_flags);
    let pml4_pa = PhysAddr::new((&t.pml4 as *const PageTable) as u64);
    // SAFETY: the new tables identity-map everything the boot tables did
    // that the image uses (its own memory and low RAM), with the same
    // caching; virtual addresses are physical, so the table addresses are
    // right.
    unsafe { Cr3::write(PhysFrame::containing_address(pml4_pa), Cr3Flags::empty()) };
    Ok(())
}

/// Makes the 2 MiB pages covering `range` non-executable (where the CPU
/// has NX), for memory the host can write, such as the host channel. The
/// pages must not reach into `keep` (the image, whose code must stay
/// executable); returns whether the pages were changed.
pub fn forbid_execute(range: &core::ops::Range<u64>, keep: &core::ops::Range<u64>) -> bool {
    const PAGE: u64 = 2 << 20;
    if !super::cpu::nx_enabled() || range.is_empty() {
        return false;
    }
    let first = range.start & !(PAGE - 1);
    let end = range.end.div_ceil(PAGE) * PAGE;
    if first < keep.end && keep.start < end {
        return false;
    }
    let mut guard = TABLES.lock();
    let t = &mut *guard;
    let mut page = first;
    while page < end {
        let (g, i) = ((page / GIB) as usize, ((page % GIB) >> 21) as usize);
        let Some(pd) = t.pd.get_mut(g) else {
            return false;
        };
        let e = &mut pd[i];
        if e.is_unused() {
            return false;
        }
        let flags = e.flags() | F::NO_EXECUTE;
        e.set_flags(flags);
        x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(page));
        page += PAGE;
    }
    true
}
