//! The heap: a fixed region inside the image, managed by
//! `linked_list_allocator` behind a spin lock.
// Handing the static region to the allocator.
#![allow(unsafe_code)]

use core::mem::MaybeUninit;

use linked_list_allocator::LockedHeap;

/// Heap size (libtpms + OpenSSL peak at about 1.1 MiB; nested page tables
/// and the hypervisor's pages come from here too).
pub const HEAP_SIZE: usize = 12 << 20;

#[global_allocator]
static ALLOCATOR: LockedHeap = LockedHeap::empty();

#[repr(C, align(4096))]
struct Region(MaybeUninit<[u8; HEAP_SIZE]>);
static mut HEAP: Region = Region(MaybeUninit::uninit());

/// Hands the heap region to the allocator. Call once, before allocating.
pub fn init() {
    // SAFETY: called once at boot; HEAP is used only through the allocator
    // from here on.
    unsafe {
        ALLOCATOR
            .lock()
            .init((&raw mut HEAP).cast::<u8>(), HEAP_SIZE)
    };
}

/// Bytes in use and free.
pub fn usage() -> (usize, usize) {
    let heap = ALLOCATOR.lock();
    (heap.used(), heap.free())
}
