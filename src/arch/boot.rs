//! The PVH entry: the ELF note QEMU's PVH loader looks for, the 32-bit stub
//! that enters long mode on temporary identity page tables (0..5 GiB in
//! 2 MiB pages, at 1 MiB), and the jump to [`super::start`] at 4 GiB.
//!
//! If nothing is at 4 GiB (the pc-dimm is missing) the image magic does
//! not match and the stub says so on COM1 and exits QEMU through
//! isa-debug-exit with status 3.
// Entry assembly: the CPU state before any Rust code may run.
#![allow(unsafe_code)]

use super::STACK_SIZE;

/// Read by the stub to check that the image at 4 GiB was loaded.
#[used]
static IMAGE_MAGIC: u64 = IMAGE_MAGIC_VALUE;
const IMAGE_MAGIC_VALUE: u64 = 0x5356_5450_4D5F_4856; // "VH_MPTVS"

/// The boot stack (libtpms needs about 11 KiB; leave ample room).
#[repr(C, align(4096))]
pub(super) struct Stack(pub(super) [u8; STACK_SIZE]);
pub(super) static mut BOOT_STACK: Stack = Stack([0; STACK_SIZE]);

core::arch::global_asm!(
    r#"
    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 8
    .long {note_type}
    .asciz "Xen"
    .balign 4
    .quad svtpm_pvh_start32
    .balign 4
    .popsection

    .pushsection .boot.text, "ax", @progbits
    .code32
    .globl svtpm_pvh_start32
svtpm_pvh_start32:
    cli
    cld
    mov %ebx, %esi
    mov $svtpm_boot_tables, %edi
    mov $(7 * 1024), %ecx
    xor %eax, %eax
    rep stosl
    mov $svtpm_boot_tables, %edi
    lea 0x1003(%edi), %eax
    mov %eax, (%edi)
    xor %ecx, %ecx
1:
    mov %ecx, %eax
    shl $12, %eax
    lea 0x2003(%edi, %eax), %eax
    mov %eax, 0x1000(%edi, %ecx, 8)
    inc %ecx
    cmp $5, %ecx
    jb 1b
    xor %ecx, %ecx
2:
    mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax
    mov %eax, 0x2000(%edi, %ecx, 8)
    mov %ecx, %eax
    shr $11, %eax
    mov %eax, 0x2004(%edi, %ecx, 8)
    inc %ecx
    cmp $(5 * 512), %ecx
    jb 2b
    mov %edi, %cr3
    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    mov $0xC0000080, %ecx
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax
    mov %eax, %cr0
    lgdt svtpm_boot_gdtr
    ljmp $0x08, $3f
    .code64
3:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    movabs ${magic}, %rax
    movabs ${magic_value}, %rdx
    cmp %rdx, (%rax)
    jne 5f
    movabs ${stack} + {stack_size}, %rsp
    xor %ebp, %ebp
    mov %esi, %edi
    movabs ${entry}, %rax
    call *%rax
    ud2
5:
    lea svtpm_boot_no_image(%rip), %rsi
    mov $0x3F8, %dx
6:
    lodsb
    test %al, %al
    jz 7f
    out %al, %dx
    jmp 6b
7:
    mov $0xF4, %dx
    mov $1, %al
    out %al, %dx
8:
    hlt
    jmp 8b
    .popsection

    .pushsection .boot.data, "aw", @progbits
    .balign 8
svtpm_boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF
    .quad 0x00CF92000000FFFF
svtpm_boot_gdtr:
    .word 23
    .long svtpm_boot_gdt
svtpm_boot_no_image:
    .asciz "svtpm: no image at 4 GiB: start QEMU with a pc-dimm at 0x100000000 (see tests/image/run-qemu.sh)\n"
    .popsection

    .pushsection .boot.bss, "aw", @nobits
    .balign 4096
svtpm_boot_tables:
    .skip 7 * 4096
    .popsection
"#,
    note_type = const super::pvh::XEN_ELFNOTE_PHYS32_ENTRY,
    magic = sym IMAGE_MAGIC,
    magic_value = const IMAGE_MAGIC_VALUE,
    stack = sym BOOT_STACK,
    stack_size = const STACK_SIZE,
    entry = sym super::start,
    options(att_syntax)
);
