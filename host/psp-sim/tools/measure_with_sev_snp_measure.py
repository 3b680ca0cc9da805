#!/usr/bin/env python3
"""Independent cross-check of `svtpm-psp-sim measure --image ELF`.

Computes the launch digest of an svtpm image with sev-snp-measure's GCTX
(PyPI `sev-snp-measure`, which implements the PAGE_INFO chain on its own):
every 4 KiB page of the ELF's PT_LOAD segments at their physical addresses,
in ascending order, NORMAL where the file has bytes and ZERO for pages only
of zero-filled memory, then the SECRETS page at 0x103FFF000. Prints the 96
hex digits and the number of image pages.

    python3 -m venv v && v/bin/pip install sev-snp-measure
    v/bin/python3 measure_with_sev_snp_measure.py target/.../svtpm
    svtpm-psp-sim measure --image target/.../svtpm     # same digits
"""

import struct
import sys

from sevsnpmeasure.gctx import GCTX

SECRETS_GPA = 0x1_03FF_F000
PAGE = 0x1000


def pages_of(elf: bytes) -> dict:
    assert elf[:4] == b"\x7fELF" and elf[4] == 2, "not a 64-bit ELF"
    (phoff,) = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    pages = {}
    for i in range(phnum):
        p_type, _, off, _, paddr, filesz, memsz, _ = struct.unpack_from(
            "<IIQQQQQQ", elf, phoff + i * phentsize
        )
        if p_type != 1 or memsz == 0:
            continue
        for page in range(paddr & ~(PAGE - 1), paddr + memsz, PAGE):
            lo, hi = max(page, paddr), min(page + PAGE, paddr + filesz)
            if lo < hi:
                buf = bytearray(pages.get(page) or bytes(PAGE))
                buf[lo - page : hi - page] = elf[off + lo - paddr : off + hi - paddr]
                pages[page] = bytes(buf)
            else:
                pages.setdefault(page, None)
    return pages


def main() -> None:
    pages = pages_of(open(sys.argv[1], "rb").read())
    g = GCTX()
    for gpa in sorted(pages):
        if pages[gpa] is None:
            g.update_zero_pages(gpa, PAGE)
        else:
            g.update_normal_pages(gpa, pages[gpa])
    g.update_secrets_page(SECRETS_GPA)
    print(g.hex_ld(), len(pages))


if __name__ == "__main__":
    main()
