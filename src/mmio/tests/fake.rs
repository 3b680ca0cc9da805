//! Test doubles: sparse guest RAM, a page-table builder for every paging
//! format, a recording MMIO device, and a deterministic PRNG.

use std::collections::BTreeMap;
use std::vec::Vec;

use crate::mmio::regs::{
    GuestState, Segment, CR0_PE, CR0_PG, CR4_LA57, CR4_PAE, CR4_PSE, EFER_LMA, EFER_NXE,
};
use crate::mmio::walk::GuestMemory;
use crate::mmio::{MemoryError, MmioBus};

/// Guest RAM made of individually mapped 4 KiB pages; anything else fails.
#[derive(Default, Debug)]
pub struct FakeMemory {
    pages: BTreeMap<u64, Vec<u8>>,
}

impl FakeMemory {
    pub fn map(&mut self, gpa: u64) {
        self.pages
            .entry(gpa & !0xFFF)
            .or_insert_with(|| vec![0; 0x1000]);
    }

    pub fn put(&mut self, gpa: u64, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            let a = gpa + i as u64;
            self.map(a);
            self.pages.get_mut(&(a & !0xFFF)).unwrap()[(a & 0xFFF) as usize] = *b;
        }
    }

    pub fn get(&self, gpa: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.read(gpa, &mut v).unwrap();
        v
    }

    pub fn put_u64(&mut self, gpa: u64, v: u64) {
        self.put(gpa, &v.to_le_bytes());
    }

    pub fn put_u32(&mut self, gpa: u64, v: u32) {
        self.put(gpa, &v.to_le_bytes());
    }
}

impl GuestMemory for FakeMemory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        for (i, b) in buf.iter_mut().enumerate() {
            let a = gpa.wrapping_add(i as u64);
            let page = self
                .pages
                .get(&(a & !0xFFF))
                .ok_or(MemoryError { gpa: a })?;
            *b = page[(a & 0xFFF) as usize];
        }
        Ok(())
    }

    fn write(&mut self, gpa: u64, buf: &[u8]) -> Result<(), MemoryError> {
        for i in 0..buf.len() {
            let a = gpa.wrapping_add(i as u64);
            if !self.pages.contains_key(&(a & !0xFFF)) {
                return Err(MemoryError { gpa: a });
            }
        }
        for (i, b) in buf.iter().enumerate() {
            let a = gpa.wrapping_add(i as u64);
            self.pages.get_mut(&(a & !0xFFF)).unwrap()[(a & 0xFFF) as usize] = *b;
        }
        Ok(())
    }
}

pub const P: u64 = 1;
pub const RW: u64 = 2;
pub const US: u64 = 4;
pub const PS: u64 = 0x80;
pub const NX: u64 = 1 << 63;

/// Page-table formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// 32-bit paging (4-byte entries).
    Bits32,
    /// PAE paging (root = 4-entry PDPT).
    Pae,
    /// Long mode with 4 or 5 levels.
    Long(u8),
}

/// Builds page tables in a [`FakeMemory`], allocating tables from `next`.
pub struct Tables {
    pub format: Format,
    pub root: u64,
    next: u64,
}

impl Tables {
    /// Tables allocated upwards from physical `pool`.
    pub fn new(mem: &mut FakeMemory, format: Format, pool: u64) -> Self {
        let mut t = Self {
            format,
            root: 0,
            next: pool,
        };
        t.root = t.alloc(mem);
        t
    }

    fn alloc(&mut self, mem: &mut FakeMemory) -> u64 {
        let a = self.next;
        self.next += 0x1000;
        mem.map(a);
        a
    }

    fn top(&self) -> u8 {
        match self.format {
            Format::Bits32 => 2,
            Format::Pae => 3,
            Format::Long(levels) => levels,
        }
    }

    fn index(&self, lin: u64, level: u8) -> u64 {
        match self.format {
            Format::Bits32 => (lin >> (12 + 10 * u32::from(level - 1))) & 0x3FF,
            Format::Pae if level == 3 => (lin >> 30) & 3,
            _ => (lin >> (12 + 9 * u32::from(level - 1))) & 0x1FF,
        }
    }

    fn entry_size(&self) -> u64 {
        if self.format == Format::Bits32 {
            4
        } else {
            8
        }
    }

    fn read_entry(&self, mem: &FakeMemory, addr: u64) -> u64 {
        let mut b = [0u8; 8];
        mem.read(addr, &mut b[..self.entry_size() as usize])
            .unwrap();
        u64::from_le_bytes(b)
    }

    fn write_entry(&self, mem: &mut FakeMemory, addr: u64, v: u64) {
        if self.format == Format::Bits32 {
            mem.put_u32(addr, v as u32);
        } else {
            mem.put_u64(addr, v);
        }
    }

    /// Address of the entry for `lin` at `level`, creating missing tables
    /// above it (intermediate entries get P|RW|US, PDPTEs in PAE only P).
    pub fn entry_addr(&mut self, mem: &mut FakeMemory, lin: u64, level: u8) -> u64 {
        let mut table = self.root;
        let mut l = self.top();
        loop {
            let addr = table + self.index(lin, l) * self.entry_size();
            if l == level {
                return addr;
            }
            let e = self.read_entry(mem, addr);
            table = if e & P != 0 {
                e & 0x000F_FFFF_FFFF_F000
            } else {
                let t = self.alloc(mem);
                let flags = if self.format == Format::Pae && l == 3 {
                    P
                } else {
                    P | RW | US
                };
                self.write_entry(mem, addr, t | flags);
                t
            };
            l -= 1;
        }
    }

    /// Maps `lin` -> `phys` with a leaf at `level` (1 = 4 KiB; 2 = 2/4 MiB;
    /// 3 = 1 GiB), leaf flags `flags` (PS added for level > 1).
    pub fn map(&mut self, mem: &mut FakeMemory, lin: u64, phys: u64, level: u8, flags: u64) {
        let addr = self.entry_addr(mem, lin, level);
        let ps = if level > 1 { PS } else { 0 };
        self.write_entry(mem, addr, phys | flags | ps);
    }

    /// Overwrites the raw entry for `lin` at `level`.
    pub fn set_raw(&mut self, mem: &mut FakeMemory, lin: u64, level: u8, value: u64) {
        let addr = self.entry_addr(mem, lin, level);
        self.write_entry(mem, addr, value);
    }

    /// A guest state with this paging format active (supervisor, CPL 0).
    /// Long formats run 64-bit code; the others 32-bit flat code.
    pub fn state(&self) -> GuestState {
        let mut s = GuestState {
            cr0: CR0_PE | CR0_PG,
            cr3: self.root,
            ..GuestState::default()
        };
        match self.format {
            Format::Bits32 => {
                s.cr4 = CR4_PSE;
                s.segs.cs = code32();
            }
            Format::Pae => {
                s.cr4 = CR4_PAE;
                s.efer = EFER_NXE;
                s.segs.cs = code32();
            }
            Format::Long(levels) => {
                s.cr4 = CR4_PAE | if levels == 5 { CR4_LA57 } else { 0 };
                s.efer = EFER_LMA | EFER_NXE;
                s.segs.cs = code64();
            }
        }
        s
    }
}

/// A present 64-bit code segment (L=1).
pub fn code64() -> Segment {
    Segment {
        selector: 0x10,
        attrib: 0x29B,
        limit: 0xFFFF_FFFF,
        base: 0,
    }
}

/// A present 32-bit flat code segment (D=1).
pub fn code32() -> Segment {
    Segment {
        selector: 0x08,
        attrib: 0xC9B,
        limit: 0xFFFF_FFFF,
        base: 0,
    }
}

/// A present 16-bit code segment (D=0) with `base`.
pub fn code16(base: u64) -> Segment {
    Segment {
        selector: (base >> 4) as u16,
        attrib: 0x09B,
        limit: 0xFFFF,
        base,
    }
}

/// One device access seen by [`RecordingBus`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusOp {
    Read { gpa: u64, size: u8 },
    Write { gpa: u64, size: u8, value: u64 },
}

/// A device that records every access and answers reads from a queue
/// (then with a value derived from the address).
#[derive(Default, Debug)]
pub struct RecordingBus {
    pub ops: Vec<BusOp>,
    pub replies: std::collections::VecDeque<u64>,
}

impl RecordingBus {
    /// The value read at `gpa` when no reply is queued: each byte is the low
    /// byte of its own address, plus 0x11 (so it differs from the offset).
    pub fn pattern(gpa: u64, size: u8) -> u64 {
        (0..u64::from(size)).fold(0, |v, i| v | (((gpa + i + 0x11) & 0xFF) << (8 * i)))
    }

    pub fn writes(&self) -> Vec<(u64, u8, u64)> {
        self.ops
            .iter()
            .filter_map(|op| match *op {
                BusOp::Write { gpa, size, value } => Some((gpa, size, value)),
                BusOp::Read { .. } => None,
            })
            .collect()
    }
}

impl MmioBus for RecordingBus {
    fn read(&mut self, gpa: u64, size: u8) -> u64 {
        self.ops.push(BusOp::Read { gpa, size });
        self.replies
            .pop_front()
            .unwrap_or_else(|| Self::pattern(gpa, size))
    }

    fn write(&mut self, gpa: u64, size: u8, value: u64) {
        self.ops.push(BusOp::Write { gpa, size, value });
    }
}

/// xorshift64* — deterministic test randomness.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}
