//! The svtpm image for `x86_64-unknown-none`: for now a minimal, real link
//! of the whole engine (libtpms + libcrypto + the libc shim) into one
//! freestanding executable.
//!
//! `_start` expects 64-bit long mode with identity-mapped memory and runs at
//! ring 0 (the PVH/SNP bring-up that gets there is separate work). It sets
//! up a stack, SSE (libcrypto uses it), and the FS base the stack protector
//! reads its canary from; then it installs a heap, the entropy (RDSEED or
//! RDRAND) and time (TSC) sources, starts the engine on in-memory storage,
//! sends TPM2_Startup and TPM2_GetRandom, reports on COM1 and halts.
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

#[cfg(target_os = "none")]
mod image {
    //! Everything below runs only in the freestanding image.
    // Entry code, port I/O, MSR/CR writes and CPU random number instructions.
    #![allow(unsafe_code)]

    use alloc::boxed::Box;
    use core::fmt::Write;
    use core::mem::MaybeUninit;

    use linked_list_allocator::LockedHeap;
    use svtpm::engine::{Engine, MemStorage};

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

    const IA32_FS_BASE: u32 = 0xC000_0100;

    core::arch::global_asm!(
        ".section .text._start,\"ax\",@progbits",
        ".globl _start",
        "_start:",
        "lea rsp, [rip + {stack} + {size}]",
        "xor ebp, ebp",
        // CR0: set MP, clear EM; CR4: OSFXSR | OSXMMEXCPT.
        "mov rax, cr0",
        "and rax, ~(1 << 2)",
        "or rax, (1 << 1)",
        "mov cr0, rax",
        "mov rax, cr4",
        "or rax, (3 << 9)",
        "mov cr4, rax",
        "call {main}",
        "2:",
        "cli",
        "hlt",
        "jmp 2b",
        ".text",
        stack = sym STACK,
        size = const STACK_SIZE,
        main = sym image_main,
    );

    /// Writes to the COM1 UART (polled, 8N1 as left by firmware/QEMU).
    struct Serial;

    impl Write for Serial {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            for b in s.bytes() {
                // SAFETY: port I/O to the standard COM1 registers; at worst
                // ignored where no UART exists.
                unsafe {
                    while inb(0x3FD) & 0x20 == 0 {}
                    core::arch::asm!("out dx, al", in("dx") 0x3F8u16, in("al") b, options(nomem, nostack));
                }
            }
            Ok(())
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

    /// The time source: monotonic from the TSC (uncalibrated TSCs are
    /// assumed to run at 1 GHz until the platform layer calibrates one);
    /// no wall clock (nothing trustworthy provides one yet).
    fn tsc_time(clock: libtpms_sys::shim::Clock) -> Option<u64> {
        if clock != libtpms_sys::shim::Clock::Monotonic {
            return None;
        }
        // SAFETY: RDTSC is unprivileged and side-effect free.
        let tsc = unsafe { core::arch::x86_64::_rdtsc() };
        let hz = tsc_hz().unwrap_or(1_000_000_000);
        Some((u128::from(tsc) * 1_000_000_000 / u128::from(hz)) as u64)
    }

    extern "C" fn image_main() -> ! {
        // SAFETY: runs once, before anything allocates; the heap is a static
        // used only through the allocator from here on.
        unsafe {
            ALLOCATOR
                .lock()
                .init((&raw mut HEAP).cast::<u8>(), HEAP_SIZE)
        };
        libtpms_sys::shim::set_entropy_source(Some(cpu_entropy));
        libtpms_sys::shim::set_time_source(Some(tsc_time));

        let mut canary = [0u8; 8];
        let canary = if cpu_entropy(&mut canary) {
            u64::from_le_bytes(canary)
        } else {
            0x5EC0_7E57_C0FF_EE00
        };
        // SAFETY: TCB is a static used only as the FS block; writing the
        // FS base MSR is allowed at ring 0 and nothing has read %fs yet.
        unsafe {
            (&raw mut TCB).cast::<u64>().add(5).write(canary);
            let base = (&raw const TCB) as u64;
            core::arch::asm!("wrmsr", in("ecx") IA32_FS_BASE, in("eax") base as u32, in("edx") (base >> 32) as u32, options(nostack));
        }

        let mut out = Serial;
        let _ = writeln!(out, "svtpm: starting the engine");
        match Engine::start(Box::new(MemStorage::new())) {
            Ok(mut engine) => {
                let startup = [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0, 0];
                let get_random = [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7B, 0, 16];
                let r = engine.execute(0, &startup);
                let _ = writeln!(out, "svtpm: Startup -> {:02x?}", &r[6..r.len().min(10)]);
                let r = engine.execute(0, &get_random);
                let _ = writeln!(out, "svtpm: GetRandom -> {r:02x?}");
            }
            Err(err) => {
                let _ = writeln!(out, "svtpm: engine failed to start: {err}");
            }
        }
        halt()
    }

    fn halt() -> ! {
        loop {
            // SAFETY: stops the CPU; nothing else runs.
            unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
        }
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        let _ = writeln!(Serial, "svtpm: panic: {info}");
        halt()
    }
}
