use super::*;
use std::mem::{offset_of, size_of};

/// A PT_LOAD segment for [`elf`]: physical address, file bytes, memory size.
struct Seg<'a> {
    paddr: u64,
    data: &'a [u8],
    memsz: u64,
}

/// A minimal ELF64 executable: header, program headers (`segs` as PT_LOAD
/// plus one PT_NOTE), the segments' bytes, then `trailer` (bytes no
/// segment loads, like a debug section).
fn elf(segs: &[Seg], trailer: &[u8]) -> Vec<u8> {
    const EHDR: usize = 64;
    const PHDR: usize = 56;
    let phnum = segs.len() + 1;
    let mut offset = EHDR + PHDR * phnum;
    let mut out = Vec::new();
    out.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    out.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    out.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&segs[0].paddr.to_le_bytes()); // entry
    out.extend_from_slice(&(EHDR as u64).to_le_bytes()); // phoff
    out.extend_from_slice(&0u64.to_le_bytes()); // shoff
    out.extend_from_slice(&0u32.to_le_bytes()); // flags
    out.extend_from_slice(&(EHDR as u16).to_le_bytes());
    out.extend_from_slice(&(PHDR as u16).to_le_bytes());
    out.extend_from_slice(&(phnum as u16).to_le_bytes());
    out.extend_from_slice(&[0; 6]); // shentsize, shnum, shstrndx
    let mut phdr = |p_type: u32, off: usize, paddr: u64, filesz: usize, memsz: u64| {
        out.extend_from_slice(&p_type.to_le_bytes());
        out.extend_from_slice(&7u32.to_le_bytes());
        out.extend_from_slice(&(off as u64).to_le_bytes());
        out.extend_from_slice(&paddr.wrapping_add(0x8000_0000).to_le_bytes()); // vaddr
        out.extend_from_slice(&paddr.to_le_bytes());
        out.extend_from_slice(&(filesz as u64).to_le_bytes());
        out.extend_from_slice(&memsz.to_le_bytes());
        out.extend_from_slice(&0x1000u64.to_le_bytes());
    };
    for s in segs {
        phdr(1, offset, s.paddr, s.data.len(), s.memsz);
        offset += s.data.len();
    }
    // A PT_NOTE over the trailer: not loaded, so never measured.
    phdr(4, offset, 0, trailer.len(), trailer.len() as u64);
    for s in segs {
        out.extend_from_slice(s.data);
    }
    out.extend_from_slice(trailer);
    out
}

fn seg1() -> Vec<u8> {
    (0..0x1800u32).map(|i| ((i * 7) % 251) as u8).collect()
}

const SEG2: [u8; 0x100] = [0xAB; 0x100];

/// Two segments: 0x1800 file bytes + bss to 0x3000 at 1 MiB, and 0x100
/// bytes at an unaligned 0x200800.
fn sample(seg1: &[u8], trailer: &[u8]) -> Vec<u8> {
    elf(
        &[
            Seg {
                paddr: 0x10_0000,
                data: seg1,
                memsz: 0x3000,
            },
            Seg {
                paddr: 0x20_0800,
                data: &SEG2,
                memsz: 0x100,
            },
        ],
        trailer,
    )
}

#[test]
fn page_info_layout_matches_the_abi() {
    assert_eq!(size_of::<PageInfo>(), 0x70);
    assert_eq!(offset_of!(PageInfo, digest_cur), 0x00);
    assert_eq!(offset_of!(PageInfo, contents), 0x30);
    assert_eq!(offset_of!(PageInfo, length), 0x60);
    assert_eq!(offset_of!(PageInfo, page_type), 0x62);
    assert_eq!(offset_of!(PageInfo, imi_page), 0x63);
    assert_eq!(offset_of!(PageInfo, vmpl3_perms), 0x64);
    assert_eq!(offset_of!(PageInfo, vmpl2_perms), 0x65);
    assert_eq!(offset_of!(PageInfo, vmpl1_perms), 0x66);
    assert_eq!(offset_of!(PageInfo, reserved), 0x67);
    assert_eq!(offset_of!(PageInfo, gpa), 0x68);

    let mut ld = LaunchDigest::new();
    ld.zero_page(0x1000);
    let info = ld.page_info(PageType::Normal, 0x1_2345_6000, [0x5A; 48]);
    let b = info.as_bytes();
    assert_eq!(&b[..0x30], &ld.digest());
    assert_eq!(&b[0x30..0x60], &[0x5A; 48]);
    assert_eq!(&b[0x60..0x62], &[0x70, 0x00]);
    assert_eq!(b[0x62], 1);
    assert_eq!(&b[0x63..0x68], &[0; 5]);
    assert_eq!(&b[0x68..0x70], &0x1_2345_6000u64.to_le_bytes());
    assert_eq!(PageType::Zero as u8, 3);
    assert_eq!(PageType::Secrets as u8, 5);
}

#[test]
fn one_update_is_sha384_of_the_page_info() {
    let page = [0x11u8; 4096];
    let mut ld = LaunchDigest::new();
    ld.normal_page(0x4000, &page);
    let mut info = Vec::new();
    info.extend_from_slice(&[0; 48]);
    info.extend_from_slice(&Sha384::digest(page));
    info.extend_from_slice(&[0x70, 0, 1, 0, 0, 0, 0, 0]);
    info.extend_from_slice(&0x4000u64.to_le_bytes());
    assert_eq!(ld.digest(), <[u8; 48]>::from(Sha384::digest(&info)));
}

/// The digest `sev-snp-measure` 0.0.13 computes for the same pages:
/// ```python
/// from sevsnpmeasure.gctx import GCTX
/// g = GCTX()
/// seg1 = bytes((i * 7) % 251 for i in range(0x1800))
/// g.update_normal_pages(0x100000, seg1 + bytes(0x800))
/// g.update_zero_pages(0x102000, 0x1000)
/// g.update_normal_pages(0x200000, bytes(0x800) + b"\xab" * 0x100 + bytes(0x700))
/// g.update_secrets_page(0x103FFF000)
/// print(g.hex_ld())
/// ```
#[test]
fn matches_sev_snp_measure() {
    let digest = launch_digest(&sample(&seg1(), b"debug info")).unwrap();
    assert_eq!(
        to_hex(&digest),
        "78431bb31cdeccd38ebbfcd18508378ddc827d2b29bf1f1be5beb580d02824bf\
         4d3856ece56690df9a21e2724b9a80f8"
    );
}

#[test]
fn pages_are_normal_where_the_file_has_bytes_and_zero_in_bss() {
    let pages = image_pages(&sample(&seg1(), b"")).unwrap();
    let gpas: Vec<u64> = pages.keys().copied().collect();
    assert_eq!(gpas, [0x10_0000, 0x10_1000, 0x10_2000, 0x20_0000]);
    let ImagePage::Normal(p) = &pages[&0x10_1000] else {
        panic!("page with file bytes is not NORMAL");
    };
    assert_eq!(&p[..0x800], &seg1()[0x1000..]);
    assert!(p[0x800..].iter().all(|&b| b == 0));
    assert_eq!(pages[&0x10_2000], ImagePage::Zero);
    let ImagePage::Normal(p) = &pages[&0x20_0000] else {
        panic!("unaligned segment page is not NORMAL");
    };
    assert!(p[..0x800].iter().all(|&b| b == 0));
    assert_eq!(&p[0x800..0x900], &SEG2);
}

#[test]
fn a_loaded_byte_changes_the_digest_a_non_loaded_byte_does_not() {
    let base = launch_digest(&sample(&seg1(), b"debug info")).unwrap();
    for i in [0usize, 0x17FF] {
        let mut s = seg1();
        s[i] ^= 1;
        assert_ne!(launch_digest(&sample(&s, b"debug info")).unwrap(), base);
    }
    assert_eq!(
        launch_digest(&sample(&seg1(), b"other debug")).unwrap(),
        base
    );
    // Same bytes at another address: another digest.
    let moved = elf(
        &[Seg {
            paddr: 0x30_0000,
            data: &seg1(),
            memsz: 0x3000,
        }],
        b"",
    );
    let unmoved = elf(
        &[Seg {
            paddr: 0x10_0000,
            data: &seg1(),
            memsz: 0x3000,
        }],
        b"",
    );
    assert_ne!(
        launch_digest(&moved).unwrap(),
        launch_digest(&unmoved).unwrap()
    );
    // A longer bss adds a ZERO page.
    let longer = elf(
        &[Seg {
            paddr: 0x10_0000,
            data: &seg1(),
            memsz: 0x3001,
        }],
        b"",
    );
    assert_ne!(
        launch_digest(&longer).unwrap(),
        launch_digest(&unmoved).unwrap()
    );
}

#[test]
fn bad_images_are_refused() {
    assert!(launch_digest(b"not an elf").is_err());
    let overlapping = elf(
        &[
            Seg {
                paddr: 0x10_0000,
                data: &[1; 16],
                memsz: 0x2000,
            },
            Seg {
                paddr: 0x10_1000,
                data: &[2; 16],
                memsz: 0x10,
            },
        ],
        b"",
    );
    assert!(format!("{:#}", launch_digest(&overlapping).unwrap_err()).contains("overlaps"));
    let file_over_mem = elf(
        &[Seg {
            paddr: 0x10_0000,
            data: &[1; 16],
            memsz: 8,
        }],
        b"",
    );
    assert!(launch_digest(&file_over_mem).is_err());
    let covers_secrets = elf(
        &[Seg {
            paddr: SECRETS_GPA - 0x1000,
            data: &[1; 16],
            memsz: 0x2000,
        }],
        b"",
    );
    assert!(format!("{:#}", launch_digest(&covers_secrets).unwrap_err()).contains("secrets"));
    let huge = elf(
        &[Seg {
            paddr: 1 << 52,
            data: &[1; 16],
            memsz: 0x10,
        }],
        b"",
    );
    assert!(launch_digest(&huge).is_err());
    // File data past the end of the ELF.
    let mut cut = sample(&seg1(), b"");
    cut.truncate(cut.len() - 0x10);
    assert!(format!("{:#}", launch_digest(&cut).unwrap_err()).contains("past the end"));
}
