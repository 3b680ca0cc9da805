//! The svtpm image for `x86_64-unknown-none`.
//!
//! Booted by QEMU through PVH (see `docs/platform-svm.md` and
//! `tests/image/run-qemu.sh`), `svtpm::arch` brings the machine up and
//! calls [`image::svtpm_image_main`], which either
//! - runs the engine self-test (Startup, SelfTest, GetRandom, an ECC and an
//!   RSA CreatePrimary, ReadClock) and exits QEMU with the success or
//!   failure status, when no guest firmware is supplied or
//!   `svtpm.mode=selftest` is on the command line; or
//! - starts the TPM and runs the guest firmware (fw_cfg file
//!   `opt/svtpm/ovmf`) as an SVM guest with the TPM window emulated
//!   (`svtpm::platform::svm`).
//!
//! `svtpm.mode=fault` and `svtpm.mode=panic` exercise the exception and
//! panic paths (both report on COM1 and exit QEMU with the failure status).
//!
//! Built with `--cfg svtpm_linux_user`, the same engine self-test instead
//! runs as a static Linux process (FS base via `arch_prctl`, output to
//! stdout, exit status 0 only if every command succeeded): a smoke test of
//! the freestanding engine and its libc shim on a development machine. See
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

/// The engine self-test: what early boot sends.
#[cfg(target_os = "none")]
mod selftest {
    use alloc::boxed::Box;
    use core::fmt::Write;

    use svtpm::engine::{Engine, MemStorage};

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

    /// The commands, by name.
    #[rustfmt::skip]
    const COMMANDS: [(&str, &[u8]); 6] = [
        ("Startup(CLEAR)", &[0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0, 0]),
        ("SelfTest(full)", &[0x80, 0x01, 0, 0, 0, 11, 0, 0, 0x01, 0x43, 1]),
        ("GetRandom(16)", &[0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7B, 0, 16]),
        ("CreatePrimary(null, ECC P-256)", &CREATE_ECC),
        ("CreatePrimary(owner, RSA 2048)", &CREATE_RSA),
        ("ReadClock", &[0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x81]),
    ];

    /// TPMS_TIME_INFO.time (ms) from a ReadClock response.
    fn tpm_time_ms(r: &[u8]) -> Option<u64> {
        r.get(10..18)
            .map(|b| u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    }

    /// Starts the engine and runs [`COMMANDS`]; whether all succeeded.
    /// `now_ms` gives a timestamp for each line.
    pub fn run(out: &mut dyn Write, now_ms: fn() -> u64) -> bool {
        let mut engine = match Engine::start(Box::new(MemStorage::new())) {
            Ok(engine) => engine,
            Err(err) => {
                let _ = writeln!(out, "svtpm: engine failed to start: {err}");
                return false;
            }
        };
        let mut ok = true;
        let started = now_ms();
        for (name, command) in COMMANDS {
            let t0 = now_ms();
            let r = engine.execute(0, command);
            let rc = r
                .get(6..10)
                .map_or(u32::MAX, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            let shown = &r[..r.len().min(28)];
            let _ = writeln!(
                out,
                "svtpm: {name} -> rc {rc:#x}, {} bytes in {} ms: {shown:02x?}",
                r.len(),
                now_ms().saturating_sub(t0)
            );
            ok &= rc == 0;
            if name == "ReadClock" {
                // The TPM's Time must have advanced with the platform clock
                // (the commands before took over a second).
                let tpm = tpm_time_ms(&r).unwrap_or(0);
                let ours = now_ms().saturating_sub(started);
                let _ = writeln!(
                    out,
                    "svtpm: TPM time {tpm} ms, {ours} ms since the engine started"
                );
                ok &= tpm > 0 && tpm <= ours + 100 && tpm + 1000 >= ours;
            }
        }
        drop(engine.stop());
        ok
    }
}

/// A static Linux process: `arch_prctl` for FS, `write` to stdout,
/// `exit_group` to stop.
#[cfg(all(target_os = "none", svtpm_linux_user))]
mod linux_user {
    // Raw Linux system calls, the process entry and the heap.
    #![allow(unsafe_code)]

    use core::fmt::Write;
    use core::mem::MaybeUninit;

    use libtpms_sys::shim::{self, Clock};
    use linked_list_allocator::LockedHeap;

    const SYS_WRITE: u64 = 1;
    const SYS_CLOCK_GETTIME: u64 = 228;
    const SYS_ARCH_PRCTL: u64 = 158;
    const SYS_EXIT_GROUP: u64 = 231;
    const ARCH_SET_FS: u64 = 0x1002;
    const CLOCK_MONOTONIC: u64 = 1;

    const HEAP_SIZE: usize = 8 << 20;
    const STACK_SIZE: usize = 256 << 10;

    #[global_allocator]
    static ALLOCATOR: LockedHeap = LockedHeap::empty();
    static mut HEAP: MaybeUninit<[u8; HEAP_SIZE]> = MaybeUninit::uninit();

    #[repr(C, align(16))]
    struct Stack([u8; STACK_SIZE]);
    static mut STACK: Stack = Stack([0; STACK_SIZE]);

    #[repr(C, align(64))]
    struct Tcb([u64; 8]);
    static mut TCB: Tcb = Tcb([0; 8]);

    core::arch::global_asm!(
        ".globl _start",
        "_start:",
        "lea rsp, [rip + {stack} + {size}]",
        "xor ebp, ebp",
        "call {main}",
        "ud2",
        stack = sym STACK,
        size = const STACK_SIZE,
        main = sym main,
    );

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

    struct Stdout;

    impl Write for Stdout {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            // SAFETY: the buffer is valid for its length.
            unsafe { syscall3(SYS_WRITE, 1, s.as_ptr() as u64, s.len() as u64) };
            Ok(())
        }
    }

    fn exit(ok: bool) -> ! {
        loop {
            // SAFETY: exit_group takes a status and does not return.
            unsafe { syscall3(SYS_EXIT_GROUP, u64::from(!ok), 0, 0) };
        }
    }

    /// One 64-bit value from RDRAND, retrying a little.
    fn rdrand() -> Option<u64> {
        for _ in 0..64 {
            let (v, ok): (u64, u8);
            // SAFETY: the caller checked CPUID; writes only the named
            // registers and flags.
            unsafe {
                core::arch::asm!("rdrand {v}", "setc {ok}", v = out(reg) v, ok = out(reg_byte) ok, options(nomem, nostack));
            }
            if ok == 1 {
                return Some(v);
            }
        }
        None
    }

    fn entropy(buf: &mut [u8]) -> bool {
        if core::arch::x86_64::__cpuid_count(1, 0).ecx & (1 << 30) == 0 {
            return false;
        }
        for chunk in buf.chunks_mut(8) {
            match rdrand() {
                Some(v) => chunk.copy_from_slice(&v.to_le_bytes()[..chunk.len()]),
                None => return false,
            }
        }
        true
    }

    fn monotonic_ns() -> u64 {
        let mut ts = [0i64; 2];
        // SAFETY: clock_gettime writes one timespec to the buffer.
        unsafe {
            syscall3(
                SYS_CLOCK_GETTIME,
                CLOCK_MONOTONIC,
                ts.as_mut_ptr() as u64,
                0,
            )
        };
        (ts[0] as u64) * 1_000_000_000 + ts[1] as u64
    }

    fn time(clock: Clock) -> Option<u64> {
        (clock == Clock::Monotonic).then(monotonic_ns)
    }

    extern "C" fn main() -> ! {
        // SAFETY: runs once, before anything allocates.
        unsafe {
            ALLOCATOR
                .lock()
                .init((&raw mut HEAP).cast::<u8>(), HEAP_SIZE)
        };
        shim::set_entropy_source(Some(entropy));
        shim::set_time_source(Some(time));
        let mut canary = [0u8; 8];
        if !entropy(&mut canary) {
            let _ = writeln!(Stdout, "svtpm: no RDRAND: refusing to start");
            exit(false);
        }
        // SAFETY: TCB is only the FS block; nothing has read %fs yet, and
        // arch_prctl(ARCH_SET_FS) only changes where %fs points.
        unsafe {
            (&raw mut TCB)
                .cast::<u64>()
                .add(5)
                .write(u64::from_le_bytes(canary));
            syscall3(SYS_ARCH_PRCTL, ARCH_SET_FS, (&raw const TCB) as u64, 0);
        }
        let ok = super::selftest::run(&mut Stdout, || monotonic_ns() / 1_000_000);
        let _ = writeln!(
            Stdout,
            "svtpm: {}",
            if ok {
                "all commands succeeded"
            } else {
                "FAILED"
            }
        );
        exit(ok)
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        let _ = writeln!(Stdout, "svtpm: panic: {info}");
        exit(false)
    }
}

#[cfg(all(target_os = "none", not(svtpm_linux_user)))]
mod image {
    // The entry point the arch layer calls by name.
    #![allow(unsafe_code)]

    use core::fmt::Write;

    use svtpm::arch::{clock, power, serial, Boot};

    struct Console;

    impl Write for Console {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            serial::write_fmt(format_args!("{s}"));
            Ok(())
        }
    }

    fn now_ms() -> u64 {
        clock::now_ns() / 1_000_000
    }

    /// The image's main function, called by `svtpm::arch` once the machine
    /// is up.
    #[no_mangle]
    pub fn svtpm_image_main(boot: Boot) -> ! {
        let mode = boot
            .info
            .cmdline
            .split_whitespace()
            .find_map(|w| w.strip_prefix("svtpm.mode="))
            .unwrap_or("");
        match mode {
            // Checks of the failure paths: both must print and exit 35.
            "fault" => {
                log::info!("executing ud2 (svtpm.mode=fault)");
                // SAFETY: raises #UD, whose handler reports and exits.
                unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
            }
            "panic" => panic!("svtpm.mode=panic"),
            _ => {}
        }
        let selftest = mode == "selftest";
        if !selftest {
            match svtpm::platform::svm::launch(&boot) {
                Ok(never) => match never {},
                Err(svtpm::platform::svm::LaunchError::NoGuestFirmware) => {
                    log::info!("no guest firmware (fw_cfg opt/svtpm/ovmf): engine self-test only");
                }
                Err(e) => {
                    log::error!("FATAL: {e}");
                    if matches!(e, svtpm::platform::svm::LaunchError::Sealed(_)) {
                        log::error!("the guest was not started; the vTPM state was not changed");
                    } else {
                        log::error!("the guest was not started");
                    }
                    power::exit(false)
                }
            }
        }
        let ok = super::selftest::run(&mut Console, now_ms);
        let (used, free) = svtpm::arch::heap::usage();
        log::info!("heap: {} KiB used, {} KiB free", used >> 10, free >> 10);
        log::info!(
            "{}",
            if ok {
                "all commands succeeded"
            } else {
                "FAILED"
            }
        );
        power::exit(ok)
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        serial::write_fmt_force(format_args!("\nsvtpm: panic: {info}\n"));
        power::exit(false)
    }
}
