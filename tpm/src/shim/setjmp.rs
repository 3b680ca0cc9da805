//! `setjmp`/`longjmp` in assembly (x86_64 System V). libtpms calls
//! `_setjmp` around every command and leaves through `__longjmp_chk` when it
//! enters failure mode.
//!
//! The buffer (glibc's 200-byte `jmp_buf`) holds, in this order: rbx, rbp,
//! r12, r13, r14, r15, the caller's rsp after return, and the return
//! address. No signal mask is saved (there are no signals). `longjmp` with
//! value 0 makes `setjmp` return 1, as C requires.
//!
//! On `target_os = "none"` the symbols carry the C names (`_setjmp`,
//! `setjmp`, `_longjmp`, `longjmp`, `__longjmp_chk`); on hosted targets they
//! get an `svtpm_shim_` prefix so tests can call them next to glibc's.

/// Emits the routines with every symbol name prefixed by `$p`.
macro_rules! jmp_routines {
    ($p:literal) => {
        core::arch::global_asm!(
            concat!(".globl ", $p, "_setjmp"),
            concat!(".globl ", $p, "setjmp"),
            concat!(".type ", $p, "_setjmp,@function"),
            concat!(".type ", $p, "setjmp,@function"),
            concat!($p, "_setjmp:"),
            concat!($p, "setjmp:"),
            "mov [rdi], rbx",
            "mov [rdi + 8], rbp",
            "mov [rdi + 16], r12",
            "mov [rdi + 24], r13",
            "mov [rdi + 32], r14",
            "mov [rdi + 40], r15",
            "lea rdx, [rsp + 8]",
            "mov [rdi + 48], rdx",
            "mov rdx, [rsp]",
            "mov [rdi + 56], rdx",
            "xor eax, eax",
            "ret",
            concat!(".size ", $p, "_setjmp, . - ", $p, "_setjmp"),
            concat!(".globl ", $p, "_longjmp"),
            concat!(".globl ", $p, "longjmp"),
            concat!(".globl ", $p, "__longjmp_chk"),
            concat!(".type ", $p, "_longjmp,@function"),
            concat!(".type ", $p, "longjmp,@function"),
            concat!(".type ", $p, "__longjmp_chk,@function"),
            concat!($p, "_longjmp:"),
            concat!($p, "longjmp:"),
            concat!($p, "__longjmp_chk:"),
            "mov eax, esi",
            "test eax, eax",
            "jnz 2f",
            "inc eax",
            "2:",
            "mov rbx, [rdi]",
            "mov rbp, [rdi + 8]",
            "mov r12, [rdi + 16]",
            "mov r13, [rdi + 24]",
            "mov r14, [rdi + 32]",
            "mov r15, [rdi + 40]",
            "mov rsp, [rdi + 48]",
            "jmp qword ptr [rdi + 56]",
            concat!(".size ", $p, "_longjmp, . - ", $p, "_longjmp"),
        );
    };
}

#[cfg(target_os = "none")]
jmp_routines!("");

#[cfg(not(target_os = "none"))]
jmp_routines!("svtpm_shim_");

/// Size of glibc's `jmp_buf` on x86_64 (the archives allocate this much).
pub const JMP_BUF_SIZE: usize = 200;

#[cfg(test)]
mod tests {
    use core::ffi::c_int;

    // A self-contained exerciser in assembly: it calls setjmp, clobbers the
    // callee-saved registers, calls the given longjmp variant, and after the
    // second return from setjmp checks that the registers were restored.
    // Both returns of setjmp happen inside this one assembly function, so no
    // Rust frame ever sees a function return twice.
    //
    // int svtpm_shim_jmp_exercise(void *buf, int val, void (*jump)(void *, int))
    // returns setjmp's second return value, or -1 if a register was lost.
    core::arch::global_asm!(
        ".globl svtpm_shim_jmp_exercise",
        "svtpm_shim_jmp_exercise:",
        "push rbx",
        "push rbp",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "sub rsp, 24",
        "mov [rsp], rdi",
        "mov [rsp + 8], rsi",
        "mov [rsp + 16], rdx",
        "mov r12, rdi",
        "mov r13, rsi",
        "mov r14, rdx",
        "mov rbx, 0x1111",
        "mov rbp, 0x2222",
        "mov r15, 0x3333",
        "call svtpm_shim__setjmp",
        "test eax, eax",
        "jnz 3f",
        // First return: wreck every callee-saved register, then jump.
        "mov rdi, r12",
        "mov esi, r13d",
        "mov rax, r14",
        "xor ebx, ebx",
        "xor ebp, ebp",
        "xor r12d, r12d",
        "xor r13d, r13d",
        "xor r14d, r14d",
        "xor r15d, r15d",
        "call rax",
        "ud2",
        // Second return: eax = the value given to longjmp (or 1).
        "3:",
        "cmp rbx, 0x1111",
        "jne 4f",
        "cmp rbp, 0x2222",
        "jne 4f",
        "cmp r15, 0x3333",
        "jne 4f",
        "cmp r12, [rsp]",
        "jne 4f",
        "cmp r13, [rsp + 8]",
        "jne 4f",
        "cmp r14, [rsp + 16]",
        "jne 4f",
        "jmp 5f",
        "4:",
        "mov eax, -1",
        "5:",
        "add rsp, 24",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbp",
        "pop rbx",
        "ret",
    );

    extern "C" {
        fn svtpm_shim_jmp_exercise(
            buf: *mut u8,
            val: c_int,
            jump: unsafe extern "C" fn(*mut u8, c_int),
        ) -> c_int;
        fn svtpm_shim_longjmp(buf: *mut u8, val: c_int);
        fn svtpm_shim__longjmp(buf: *mut u8, val: c_int);
        fn svtpm_shim___longjmp_chk(buf: *mut u8, val: c_int);
    }

    fn exercise(val: c_int, jump: unsafe extern "C" fn(*mut u8, c_int)) -> c_int {
        let mut buf = [0xCCu8; super::JMP_BUF_SIZE];
        // SAFETY: `buf` is a jmp_buf-sized buffer that outlives the call;
        // the exerciser returns exactly once.
        unsafe { svtpm_shim_jmp_exercise(buf.as_mut_ptr(), val, jump) }
    }

    #[test]
    fn longjmp_returns_the_value_and_restores_registers() {
        for jump in [
            svtpm_shim_longjmp,
            svtpm_shim__longjmp,
            svtpm_shim___longjmp_chk,
        ] {
            assert_eq!(exercise(42, jump), 42);
            assert_eq!(exercise(-7, jump), -7);
            assert_eq!(
                exercise(0, jump),
                1,
                "longjmp(buf, 0) makes setjmp return 1"
            );
        }
    }
}
