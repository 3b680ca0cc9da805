//! The svtpm image for `x86_64-unknown-none`: for now a minimal, real link
//! of the whole engine (libtpms + libcrypto + the libc shim) into one
//! freestanding executable.
//!
//! `_start` expects 64-bit long mode with identity-mapped memory and runs at
//! ring 0 (the PVH/SNP bring-up that gets there is separate work). It sets
//! up a stack, SSE (libcrypto uses it) and the FS base the stack protector
//! reads its canary from; then it installs a heap, the entropy (RDSEED or
//! RDRAND) and time (TSC) sources, starts the engine on in-memory storage,
//! sends a short early-boot sequence (Startup, SelfTest, GetRandom, an ECC
//! and an RSA CreatePrimary), reports on COM1 and halts.
//!
//! Built with `--cfg svtpm_linux_user`, the same image instead runs as a
//! static Linux process (FS base via `arch_prctl`, output to stdout, exit
//! status 0 only if every command succeeded): a smoke test of the
//! freestanding engine and its libc shim on a development machine. See
//! `docs/engine.md`.
//!
//! On a hosted target this binary only explains that.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "svtpm is a freestanding image: build it with \
         `cargo build --target x86_64-unknown-none --bin svtpm`"
    );
}

/// Ring 0 on bare metal (or in a VM): CR0/CR4 for SSE, the FS base MSR,
/// COM1 for output, `hlt` to stop.
#[cfg(all(target_os = "none", not(svtpm_linux_user)))]
mod platform {
    // Control-register, MSR and port I/O instructions.
    #![allow(unsafe_code)]

    /// Instructions run by `_start` before the stack switch: enable SSE
    /// (CR0.MP set, CR0.EM clear; CR4.OSFXSR | CR4.OSXMMEXCPT).
    macro_rules! cpu_setup_asm {
        () => {
            concat!(
                "mov rax, cr0\n",
                "and rax, ~(1 << 2)\n",
                "or rax, (1 << 1)\n",
                "mov cr0, rax\n",
                "mov rax, cr4\n",
                "or rax, (3 << 9)\n",
                "mov cr4, rax\n",
            )
        };
    }
    pub(crate) use cpu_setup_asm;

    const IA32_FS_BASE: u32 = 0xC000_0100;

    /// Points FS at `base`.
    pub fn set_fs_base(base: u64) {
        // SAFETY: writing IA32_FS_BASE at ring 0 only changes where %fs
        // accesses go; nothing has used %fs yet.
        unsafe {
            core::arch::asm!(
                "wrmsr",
                in("ecx") IA32_FS_BASE,
                in("eax") base as u32,
                in("edx") (base >> 32) as u32,
                options(nostack)
            );
        }
    }

    /// # Safety
    /// Port reads must be harmless for `port`.
    unsafe fn inb(port: u16) -> u8 {
        let v: u8;
        // SAFETY: per the contract.
        unsafe {
            core::arch::asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack))
        };
        v
    }

    /// Writes to the COM1 UART (polled, 8N1 as left by firmware/QEMU).
    pub fn write(bytes: &[u8]) {
        for &b in bytes {
            // SAFETY: port I/O to the standard COM1 registers; at worst
            // ignored where no UART exists.
            unsafe {
                while inb(0x3FD) & 0x20 == 0 {}
                core::arch::asm!("out dx, al", in("dx") 0x3F8u16, in("al") b, options(nomem, nostack));
            }
        }
    }

    /// Stops the CPU for good.
    pub fn halt(_ok: bool) -> ! {
        loop {
            // SAFETY: stops the CPU with interrupts masked.
            unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
        }
    }
}

/// A static Linux process: `arch_prctl` for FS, `write` to stdout,
/// `exit_group` to stop.
#[cfg(all(target_os = "none", svtpm_linux_user))]
mod platform {
    // Raw Linux system calls.
    #![allow(unsafe_code)]

    /// Nothing to set up: Linux enables SSE for processes.
    macro_rules! cpu_setup_asm {
        () => {
            ""
        };
    }
    pub(crate) use cpu_setup_asm;

    const SYS_WRITE: u64 = 1;
    const SYS_ARCH_PRCTL: u64 = 158;
    const SYS_EXIT_GROUP: u64 = 231;
    const ARCH_SET_FS: u64 = 0x1002;

    /// # Safety
    /// The arguments must be valid for system call `n`.
    unsafe fn syscall3(n: u64, a: u64, b: u64, c: u64) -> i64 {
        let ret: i64;
        // SAFETY: per the contract; the kernel clobbers rcx and r11.
        unsafe {
            core::arch::asm!(
                "syscall",
                inlateout("rax") n as i64 => ret,
                in("rdi") a,
                in("rsi") b,
                in("rdx") c,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack)
            );
        }
        ret
    }

    /// Points FS at `base`.
    pub fn set_fs_base(base: u64) {
        // SAFETY: arch_prctl(ARCH_SET_FS) takes an address and changes only
        // where %fs accesses go; nothing has used %fs yet.
        unsafe { syscall3(SYS_ARCH_PRCTL, ARCH_SET_FS, base, 0) };
    }

    /// Writes to standard output.
    pub fn write(bytes: &[u8]) {
        // SAFETY: the buffer is valid for its length.
        unsafe { syscall3(SYS_WRITE, 1, bytes.as_ptr() as u64, bytes.len() as u64) };
    }

    /// Exits the process: status 0 if `ok`.
    pub fn halt(ok: bool) -> ! {
        loop {
            // SAFETY: exit_group takes a status and does not return.
            unsafe { syscall3(SYS_EXIT_GROUP, u64::from(!ok), 0, 0) };
        }
    }
}

#[cfg(target_os = "none")]
mod image {
    //! The image proper, on top of `platform`.
    // Entry code and CPU random number / time-stamp instructions.
    #![allow(unsafe_code)]

    use alloc::boxed::Box;
    use core::fmt::Write;
    use core::mem::MaybeUninit;

    use libtpms_sys::shim::{self, Clock};
    use linked_list_allocator::LockedHeap;
    use svtpm::engine::{Engine, MemStorage};

    use crate::platform;

    /// Heap for the engine (libtpms + OpenSSL peak at about 1.1 MiB).
    const HEAP_SIZE: usize = 8 << 20;
    /// Boot stack (libtpms needs about 11 KiB; leave ample room).
    const STACK_SIZE: usize = 256 << 10;

    #[global_allocator]
    static ALLOCATOR: LockedHeap = LockedHeap::empty();

    static mut HEAP: MaybeUninit<[u8; HEAP_SIZE]> = MaybeUninit::uninit();

    #[repr(C, align(16))]
    struct Stack([u8; STACK_SIZE]);
    static mut STACK: Stack = Stack([0; STACK_SIZE]);

    /// The block FS points at: the stack protector reads its canary at
    /// %fs:0x28 (the glibc TCB layout the archives were compiled for).
    #[repr(C, align(64))]
    struct Tcb([u64; 8]);
    static mut TCB: Tcb = Tcb([0; 8]);

    core::arch::global_asm!(
        ".section .text._start,\"ax\",@progbits",
        ".globl _start",
        "_start:",
        platform::cpu_setup_asm!(),
        "lea rsp, [rip + {stack} + {size}]",
        "xor ebp, ebp",
        "call {main}",
        "ud2",
        ".text",
        stack = sym STACK,
        size = const STACK_SIZE,
        main = sym image_main,
    );

    /// `core::fmt` output to the platform console.
    struct Console;

    impl Write for Console {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            platform::write(s.as_bytes());
            Ok(())
        }
    }

    fn cpuid(leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
        let r = core::arch::x86_64::__cpuid_count(leaf, sub);
        (r.eax, r.ebx, r.ecx, r.edx)
    }

    /// One 64-bit value from RDSEED (`seed`) or RDRAND, retrying a little.
    fn hw_random(seed: bool) -> Option<u64> {
        for _ in 0..64 {
            let (v, ok): (u64, u8);
            // SAFETY: the caller checked CPUID for the instruction; it only
            // writes the named registers and flags.
            unsafe {
                if seed {
                    core::arch::asm!("rdseed {v}", "setc {ok}", v = out(reg) v, ok = out(reg_byte) ok, options(nomem, nostack));
                } else {
                    core::arch::asm!("rdrand {v}", "setc {ok}", v = out(reg) v, ok = out(reg_byte) ok, options(nomem, nostack));
                }
            }
            if ok == 1 {
                return Some(v);
            }
            core::hint::spin_loop();
        }
        None
    }

    /// The entropy source: RDSEED if the CPU has it, else RDRAND.
    fn cpu_entropy(buf: &mut [u8]) -> bool {
        let seed = cpuid(7, 0).1 & (1 << 18) != 0;
        let rand = cpuid(1, 0).2 & (1 << 30) != 0;
        if !seed && !rand {
            return false;
        }
        for chunk in buf.chunks_mut(8) {
            match hw_random(seed) {
                Some(v) => chunk.copy_from_slice(&v.to_le_bytes()[..chunk.len()]),
                None => return false,
            }
        }
        true
    }

    /// TSC ticks per second from CPUID leaf 0x15 or 0x16, if reported.
    fn tsc_hz() -> Option<u64> {
        let max = cpuid(0, 0).0;
        if max >= 0x15 {
            let (den, num, crystal, _) = cpuid(0x15, 0);
            if den != 0 && num != 0 && crystal != 0 {
                return Some(u64::from(crystal) * u64::from(num) / u64::from(den));
            }
        }
        if max >= 0x16 {
            let mhz = cpuid(0x16, 0).0 & 0xFFFF;
            if mhz != 0 {
                return Some(u64::from(mhz) * 1_000_000);
            }
        }
        None
    }

    /// The time source: monotonic from the TSC (a TSC whose rate CPUID does
    /// not report is taken to run at 1 GHz until the platform layer
    /// calibrates it); no wall clock (nothing trustworthy provides one yet).
    fn tsc_time(clock: Clock) -> Option<u64> {
        if clock != Clock::Monotonic {
            return None;
        }
        // SAFETY: RDTSC has no side effects.
        let tsc = unsafe { core::arch::x86_64::_rdtsc() };
        let hz = tsc_hz().unwrap_or(1_000_000_000);
        Some((u128::from(tsc) * 1_000_000_000 / u128::from(hz)) as u64)
    }

    /// Concatenates byte strings into an `N`-byte array at compile time; a
    /// wrong `N` fails the build.
    const fn concat<const N: usize>(pieces: &[&[u8]]) -> [u8; N] {
        let mut out = [0u8; N];
        let (mut n, mut i) = (0, 0);
        while i < pieces.len() {
            let mut j = 0;
            while j < pieces[i].len() {
                out[n] = pieces[i][j];
                n += 1;
                j += 1;
            }
            i += 1;
        }
        assert!(n == N, "command length");
        out
    }

    /// TPM2_CreatePrimary under `hierarchy` of a restricted decryption key
    /// (AES-128-CFB, SHA-256 name, empty auth, no creation PCRs) of type
    /// `alg`; `params` holds the type-specific tail of the public area.
    const fn create_primary(hierarchy: u32, alg: u16, params: [u8; 8]) -> [u8; 67] {
        let (h, a) = (hierarchy.to_be_bytes(), alg.to_be_bytes());
        concat(&[
            &[0x80, 0x02, 0, 0, 0, 67, 0, 0, 0x01, 0x31], // ST_SESSIONS, size, CC
            &h,
            &[0, 0, 0, 9, 0x40, 0, 0, 9, 0, 0, 0, 0, 0], // password session
            &[0, 4, 0, 0, 0, 0],                         // empty inSensitive
            &[0, 26],                                    // inPublic size
            &a,
            &[0, 0x0B, 0, 0x03, 0, 0x72, 0, 0], // SHA-256, attributes, no policy
            &[0, 0x06, 0, 0x80, 0, 0x43, 0, 0x10], // AES-128-CFB, scheme NULL
            &params,
            &[0, 0, 0, 0, 0, 0], // outsideInfo, creationPCR
        ])
    }

    /// TPM_RH_NULL, TPM_ALG_ECC: NIST P-256, KDF NULL, empty unique x and y.
    const CREATE_ECC: [u8; 67] = create_primary(0x4000_0007, 0x0023, [0, 3, 0, 0x10, 0, 0, 0, 0]);
    /// TPM_RH_OWNER, TPM_ALG_RSA: 2048 bits, default exponent, empty unique.
    const CREATE_RSA: [u8; 67] = create_primary(0x4000_0001, 0x0001, [8, 0, 0, 0, 0, 0, 0, 0]);

    /// The commands the image sends, by name: what early boot does (Linux
    /// creates an ECC primary in the null hierarchy for its sessions).
    #[rustfmt::skip]
    const COMMANDS: [(&str, &[u8]); 5] = [
        ("Startup(CLEAR)", &[0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0, 0]),
        ("SelfTest(full)", &[0x80, 0x01, 0, 0, 0, 11, 0, 0, 0x01, 0x43, 1]),
        ("GetRandom(16)", &[0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7B, 0, 16]),
        ("CreatePrimary(null, ECC P-256)", &CREATE_ECC),
        ("CreatePrimary(owner, RSA 2048)", &CREATE_RSA),
    ];

    /// Starts the engine and runs [`COMMANDS`]; whether all succeeded.
    fn run(out: &mut Console) -> bool {
        let mut engine = match Engine::start(Box::new(MemStorage::new())) {
            Ok(engine) => engine,
            Err(err) => {
                let _ = writeln!(out, "svtpm: engine failed to start: {err}");
                return false;
            }
        };
        let mut ok = true;
        for (name, command) in COMMANDS {
            let r = engine.execute(0, command);
            let rc = r
                .get(6..10)
                .map_or(u32::MAX, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            let shown = &r[..r.len().min(28)];
            let _ = writeln!(
                out,
                "svtpm: {name} -> rc {rc:#x}, {} bytes: {shown:02x?}",
                r.len()
            );
            ok &= rc == 0;
        }
        drop(engine.stop());
        ok
    }

    extern "C" fn image_main() -> ! {
        // SAFETY: runs once, before anything allocates; the heap is a static
        // used only through the allocator from here on.
        unsafe {
            ALLOCATOR
                .lock()
                .init((&raw mut HEAP).cast::<u8>(), HEAP_SIZE)
        };
        shim::set_entropy_source(Some(cpu_entropy));
        shim::set_time_source(Some(tsc_time));

        let mut canary = [0u8; 8];
        let canary = if cpu_entropy(&mut canary) {
            u64::from_le_bytes(canary)
        } else {
            0x5EC0_7E57_C0FF_EE00
        };
        // SAFETY: TCB is a static used only as the FS block; nothing has
        // read %fs yet, so the canary can still change.
        unsafe { (&raw mut TCB).cast::<u64>().add(5).write(canary) };
        platform::set_fs_base((&raw const TCB) as u64);

        let mut out = Console;
        let _ = writeln!(out, "svtpm: starting the engine");
        let ok = run(&mut out);
        let _ = writeln!(
            out,
            "svtpm: {}",
            if ok {
                "all commands succeeded"
            } else {
                "FAILED"
            }
        );
        platform::halt(ok)
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        let _ = writeln!(Console, "svtpm: panic: {info}");
        platform::halt(false)
    }
}
