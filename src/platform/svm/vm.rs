//! The hypervisor proper: loads the guest firmware, builds the guest's
//! address space and VMCB, and runs the VMRUN loop with its exit handlers.
// Port I/O on the guest's behalf, the firmware area static.
#![allow(unsafe_code)]

use alloc::boxed::Box;
use core::convert::Infallible;

use x86_64::instructions::port::Port;

use super::bitmaps::{Iopm, MsrAccess, Msrpm};
use super::bootcfg::{BootConfig, StateMode};
use super::cpuid::{self, Regs};
use super::guest::GuestRam;
use super::hw::{GuestFpu, Svm};
use super::insn;
use super::ioio::{judge, DmaGuard, DmaWrite, IoExit, Verdict};
use super::layout::Layout;
use super::msr::{self as msrs, MsrResult};
use super::npt::Npt;
use super::state::{self as regstate, Gprs};
use super::tpm::{Interface, NothingBus, TpmDevice};
use super::vmcb::{exception_event, exit_code, misc1, misc2, Vmcb, EVENT_VALID};
use super::LaunchError;
use crate::arch::cpu::{self, cpuid};
use crate::arch::fwcfg::{self, DmaAccess, DMA_ERROR, PORT_DMA, PORT_DMA_LEN};
use crate::arch::fwcfg_io::FwCfg;
use crate::arch::{clock, image_range, power, Boot};
use crate::engine::{Engine, MemStorage, NvStorage};
use crate::mmio::regs::{RCX, RDX};
use crate::mmio::{
    fetch_instruction, handle_mmio_exit, CodeSize, Emulator, MmioBus, MmioError, MmioWindow, Paging,
};

/// The fw_cfg file holding the guest firmware.
pub const FIRMWARE_FILE: &str = "opt/svtpm/ovmf";
/// Largest guest firmware accepted.
pub const FIRMWARE_MAX: usize = 4 << 20;
/// The slot hidden from the guest: 1 GiB from the image's start.
const HIDDEN_SLOT: u64 = 1 << 30;

#[repr(C, align(2097152))]
struct FirmwareArea([u8; FIRMWARE_MAX]);

/// The RAM copy of the guest firmware (the linker places it after svtpm's
/// private memory; it is part of the hidden slot in host-physical terms
/// and reaches the guest only through its mapping below 4 GiB).
#[link_section = ".guest_flash"]
static mut FIRMWARE: FirmwareArea = FirmwareArea([0; FIRMWARE_MAX]);

/// Counts of exits by kind.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    total: u64,
    tpm: u64,
    hidden: u64,
    cpuid: u64,
    msr: u64,
    io: u64,
    other: u64,
    /// Nanoseconds spent handling exits.
    handling_ns: u64,
    /// Of which in TPM-window exits.
    tpm_ns: u64,
}

/// The running VM.
struct Vm {
    svm: Svm,
    vmcb: Box<Vmcb>,
    gprs: Gprs,
    fpu: GuestFpu,
    layout: Layout,
    _npt: Npt,
    _iopm: Box<Iopm>,
    _msrpm: Box<Msrpm>,
    emulator: Emulator,
    hidden_emulator: Emulator,
    tpm: TpmDevice<Engine>,
    dma: DmaGuard,
    counts: Counts,
}

/// Reads the firmware from fw_cfg into the firmware area; its size.
fn load_firmware() -> Result<u64, LaunchError> {
    let fw = FwCfg::probe().map_err(|_| LaunchError::NoGuestFirmware)?;
    let files = fw.files().map_err(LaunchError::FwCfg)?;
    let file = fwcfg::find(&files, FIRMWARE_FILE).map_err(|_| LaunchError::NoGuestFirmware)?;
    // Other CPUs would be started by the guest (INIT/SIPI) outside any VM,
    // with full access to svtpm's memory: only one CPU, now and later.
    let cpus = fw.read_u16(fwcfg::SEL_NB_CPUS);
    let max_cpus = fw.read_u16(fwcfg::SEL_MAX_CPUS);
    if cpus != 1 || max_cpus > 1 {
        return Err(LaunchError::SmpUnsupported { cpus, max_cpus });
    }
    // SAFETY: the firmware area is used only here, before the guest runs,
    // and afterwards only through the guest's mapping.
    let area =
        unsafe { core::slice::from_raw_parts_mut((&raw mut FIRMWARE).cast::<u8>(), FIRMWARE_MAX) };
    let size = fw.read_file(file, area).map_err(LaunchError::FwCfg)?;
    log::info!(
        "guest firmware: {} KiB from fw_cfg {FIRMWARE_FILE} ({})",
        size >> 10,
        if fw.has_dma() { "DMA" } else { "I/O" }
    );
    Ok(size as u64)
}

/// Starts the guest firmware as an SVM guest and serves it forever.
pub fn launch(boot: &Boot) -> Result<Infallible, LaunchError> {
    let cfg = BootConfig::parse(&boot.info.cmdline).map_err(LaunchError::Config)?;
    let size = load_firmware()?;
    let (private, flash) = image_range();
    let svm = Svm::enable().map_err(LaunchError::Svm)?;
    let phys_bits = cpu::phys_addr_bits();
    let limit = if svm.huge_1g {
        (1u64 << phys_bits.min(39)).max(64 << 30)
    } else {
        64 << 30
    };
    let hidden = private.start..private.start + HIDDEN_SLOT;
    if flash.end > hidden.end {
        return Err(LaunchError::ImageTooLarge);
    }
    let layout = Layout::new(boot.info.memory.clone(), hidden, flash.start, size, limit)
        .map_err(LaunchError::Layout)?;
    let npt =
        Npt::build(&layout.regions(), layout.limit(), svm.huge_1g).map_err(LaunchError::Npt)?;
    log::info!(
        "guest: RAM up to {:#x}, firmware at {:#x}..{:#x}, svtpm slot {:#x}..{:#x} unmapped, TPM at {:#x} emulated, NPT {} tables ({} pages)",
        boot.info.memory.ram_end(),
        layout.flash().start,
        layout.flash().end,
        layout.hidden().start,
        layout.hidden().end,
        MmioWindow::TPM.base,
        npt.table_count(),
        if svm.huge_1g { "1 GiB" } else { "2 MiB" }
    );

    let storage: Box<dyn NvStorage + Send> = match cfg.state {
        StateMode::Ephemeral => {
            log::warn!(
                "svtpm.state=ephemeral: the TPM's state lives in memory only and is lost at power-off; no attestation"
            );
            Box::new(MemStorage::new())
        }
        StateMode::Sealed => {
            let fw = FwCfg::probe().map_err(LaunchError::FwCfg)?;
            super::sealed::open(&cfg, &fw, &layout.hidden(), &(private.start..flash.end))
                .map_err(LaunchError::Sealed)?
        }
    };

    let interface = Interface::from_cmdline(&boot.info.cmdline);
    let t_engine = clock::now_ns();
    let mut engine = Engine::builder(storage);
    if let Some(bytes) = interface.engine_buffer_size() {
        engine = engine.buffer_size(bytes);
    }
    let engine = engine.start().map_err(LaunchError::Engine)?;
    log::info!(
        "boot-time phase=engine ms={}",
        clock::now_ns().saturating_sub(t_engine) / 1_000_000
    );
    log::info!("TPM engine started; the guest sees it through {interface:?}");

    let mut iopm = Iopm::new();
    iopm.intercept(PORT_DMA, PORT_DMA_LEN);
    // A guest that ends the run through isa-debug-exit gets the exit
    // summary logged first.
    iopm.intercept(power::DEBUG_EXIT_PORT, 1);
    let mut msrpm = Msrpm::new();
    for msr in [msrs::EFER, msrs::VM_HSAVE_PA, msrs::VM_CR] {
        msrpm.intercept(msr, MsrAccess::Read);
        msrpm.intercept(msr, MsrAccess::Write);
    }
    msrpm.intercept(msrs::TSC, MsrAccess::Write);
    msrpm.intercept(msrs::TSC_ADJUST, MsrAccess::Write);

    let mut vmcb = Box::new(Vmcb::zeroed());
    let c = &mut vmcb.control;
    c.intercept_misc1 = misc1::CPUID | misc1::IOIO_PROT | misc1::MSR_PROT | misc1::SHUTDOWN;
    c.intercept_misc2 = misc2::SVM_INSTRUCTIONS;
    c.iopm_base_pa = (&*iopm as *const Iopm) as u64;
    c.msrpm_base_pa = (&*msrpm as *const Msrpm) as u64;
    c.guest_asid = 1;
    c.tlb_control = 1;
    c.np_control = 1;
    c.n_cr3 = npt.root();
    let mut gprs = Gprs::default();
    gprs.0[usize::from(RDX)] = vmcb.set_reset_state(cpuid(1, 0).eax);

    let hidden = layout.hidden();
    let hidden_window = MmioWindow {
        base: hidden.start,
        size: hidden.end - hidden.start,
    };
    let mut vm = Vm {
        svm,
        vmcb,
        gprs,
        fpu: GuestFpu::new().map_err(LaunchError::Svm)?,
        layout,
        _npt: npt,
        _iopm: iopm,
        _msrpm: msrpm,
        emulator: Emulator::new(MmioWindow::TPM, phys_bits),
        hidden_emulator: Emulator::new(hidden_window, phys_bits),
        tpm: TpmDevice::new(interface, engine),
        dma: DmaGuard::default(),
        counts: Counts::default(),
    };
    log::info!("starting the guest at its reset vector");
    log::info!(
        "boot-time guest-start at_ms={}",
        clock::now_ns() / 1_000_000
    );
    vm.run()
}

impl Vm {
    fn run(&mut self) -> ! {
        loop {
            self.fpu.restore();
            self.svm.run(&mut self.vmcb, &mut self.gprs);
            self.fpu.save();
            // Flush the guest's TLB on the first VMRUN only: the nested
            // tables never change.
            self.vmcb.control.tlb_control = 0;
            let t0 = clock::now_ns();
            self.counts.total += 1;
            let c = &mut self.vmcb.control;
            // An event whose delivery the exit interrupted is delivered
            // again, unless a handler injects something else.
            c.event_inj = if c.exit_int_info & EVENT_VALID != 0 {
                c.exit_int_info
            } else {
                0
            };
            self.handle_exit();
            self.counts.handling_ns += clock::now_ns().saturating_sub(t0);
        }
    }

    fn protected(&self) -> bool {
        self.vmcb.save.cr0 & 1 != 0
    }

    fn inject(&mut self, vector: u8, error: Option<u32>) {
        self.vmcb.control.event_inj = exception_event(vector, error, self.protected());
    }

    fn gp(&mut self) {
        self.inject(13, Some(0));
    }

    fn handle_exit(&mut self) {
        let code = self.vmcb.control.exit_code;
        match code {
            exit_code::NPF => self.npf(),
            exit_code::CPUID => {
                self.counts.cpuid += 1;
                self.cpuid();
            }
            exit_code::MSR => {
                self.counts.msr += 1;
                self.msr();
            }
            exit_code::IOIO => {
                self.counts.io += 1;
                self.ioio();
            }
            exit_code::VMRUN..=exit_code::SKINIT => {
                self.counts.other += 1;
                self.inject(6, None);
            }
            exit_code::SHUTDOWN => {
                log::error!(
                    "guest shut down (triple fault) at rip {:#x}",
                    self.vmcb.save.rip
                );
                self.summary();
                power::exit(false)
            }
            exit_code::INVALID => {
                log::error!("VMRUN refused the guest state: {:#x?}", self.vmcb.save);
                power::exit(false)
            }
            other => {
                log::error!(
                    "unexpected exit {other:#x} (info {:#x} {:#x}) at rip {:#x}",
                    self.vmcb.control.exit_info_1,
                    self.vmcb.control.exit_info_2,
                    self.vmcb.save.rip
                );
                power::exit(false)
            }
        }
    }

    fn summary(&self) {
        let c = self.counts;
        log::info!(
            "exits: {} in {} ms (handling {} ms, of which TPM window {} ms); TPM window {}, svtpm slot {}, CPUID {}, MSR {}, I/O {}, other {}",
            c.total,
            clock::now_ns() / 1_000_000,
            c.handling_ns / 1_000_000,
            c.tpm_ns / 1_000_000,
            c.tpm,
            c.hidden,
            c.cpuid,
            c.msr,
            c.io,
            c.other
        );
        for (code, s) in self.tpm.stats() {
            log::info!(
                "TPM command {code:#x}: {} times, exits min {} avg {} max {}",
                s.count,
                s.min_exits,
                s.exits / s.count.max(1),
                s.max_exits
            );
        }
    }

    fn npf(&mut self) {
        let info = self.vmcb.control.exit_info_1;
        let gpa = self.vmcb.control.exit_info_2;
        let in_tpm = self.layout.in_tpm_window(gpa);
        let in_hidden = self.layout.in_hidden(gpa);
        if info & (1 << 33) != 0 || info & (1 << 4) != 0 || !(in_tpm || in_hidden) {
            // The guest's page walk or an instruction fetch reached the
            // window or the slot, or the NPT lacks a mapping it should have.
            log::warn!(
                "guest access the hypervisor cannot emulate: gpa {gpa:#x} info {info:#x} rip {:#x}: #GP",
                self.vmcb.save.rip
            );
            self.gp();
            return;
        }
        let mut state = regstate::state(&self.vmcb, &self.gprs);
        let layout = self.layout.clone();
        let mut mem = GuestRam::new(&layout);
        let result = if in_tpm {
            self.counts.tpm += 1;
            self.tpm.count_exit();
            let t0 = clock::now_ns();
            let r = handle_mmio_exit(&self.emulator, &mut state, &mut mem, &mut self.tpm, gpa);
            self.counts.tpm_ns += clock::now_ns().saturating_sub(t0);
            for rec in self.tpm.take_records() {
                log::info!(
                    "TPM command {:#x} at locality {}: {} bytes -> rc {:#x}, {} bytes; {} exits since the previous command; {} us in the exit",
                    rec.code,
                    rec.locality,
                    rec.command_len,
                    rec.rc,
                    rec.response_len,
                    rec.exits,
                    (clock::now_ns() - t0) / 1000
                );
            }
            r
        } else {
            self.counts.hidden += 1;
            if self.counts.hidden <= 8 {
                log::warn!("guest touched svtpm's slot at {gpa:#x} (rip {:#x}): reads all-ones, writes dropped", self.vmcb.save.rip);
            }
            let mut nothing = NothingBus;
            let bus: &mut dyn MmioBus = &mut nothing;
            handle_mmio_exit(&self.hidden_emulator, &mut state, &mut mem, bus, gpa)
        };
        match result {
            Ok(_) => regstate::store(&state, &mut self.vmcb, &mut self.gprs),
            Err(e) => self.mmio_error(e, &state),
        }
    }

    fn mmio_error(&mut self, e: MmioError, state: &crate::mmio::GuestState) {
        // Elements of a REP string already done stay done.
        regstate::store(state, &mut self.vmcb, &mut self.gprs);
        match e.exception() {
            Some(ex) => {
                log::warn!(
                    "MMIO emulation at rip {:#x}: {e:?}: injecting vector {}",
                    state.regs.rip,
                    ex.vector()
                );
                let error = match ex {
                    crate::mmio::Exception::InvalidOpcode => None,
                    crate::mmio::Exception::GeneralProtection(c) => Some(c),
                    crate::mmio::Exception::PageFault { error_code, cr2 } => {
                        self.vmcb.save.cr2 = cr2;
                        Some(error_code)
                    }
                };
                self.inject(ex.vector(), error);
            }
            None if matches!(e, MmioError::Inconsistent { .. }) => {}
            None => {
                log::warn!(
                    "MMIO emulation at rip {:#x}: {e:?}: injecting #GP",
                    state.regs.rip
                );
                self.gp();
            }
        }
    }

    fn cpuid(&mut self) {
        let leaf = self.vmcb.save.rax as u32;
        let sub = self.gprs.0[usize::from(RCX)] as u32;
        let r = cpuid(leaf, sub);
        let r = cpuid::mask(
            leaf,
            Regs {
                eax: r.eax,
                ebx: r.ebx,
                ecx: r.ecx,
                edx: r.edx,
            },
            self.vmcb.save.cr4,
        );
        self.vmcb.save.rax = u64::from(r.eax);
        self.gprs.0[3] = u64::from(r.ebx);
        self.gprs.0[usize::from(RCX)] = u64::from(r.ecx);
        self.gprs.0[usize::from(RDX)] = u64::from(r.edx);
        self.skip(insn::CPUID);
    }

    /// Advances RIP past the intercepted `0F op` instruction and its
    /// prefixes (without NRIP save the CPU reports no next RIP). If the
    /// bytes at RIP are not that instruction any more, RIP stays and the
    /// guest runs it again.
    fn skip(&mut self, op: u8) {
        let state = regstate::state(&self.vmcb, &self.gprs);
        let layout = self.layout.clone();
        let mem = GuestRam::new(&layout);
        let paging = Paging::new(&state, self.emulator.phys_addr_bits);
        let code64 = state.code_size() == CodeSize::Bits64;
        let len = fetch_instruction(&paging, &state, &mem)
            .ok()
            .and_then(|f| insn::two_byte_len(f.bytes(), op, code64));
        match len {
            Some(len) => self.vmcb.save.rip = state.rip_after(len),
            None => log::warn!(
                "no 0F {op:02X} instruction at rip {:#x} after its exit: not stepped",
                state.regs.rip
            ),
        }
    }

    fn msr(&mut self) {
        let write = self.vmcb.control.exit_info_1 & 1 != 0;
        let msr = self.gprs.0[usize::from(RCX)] as u32;
        let value = (self.gprs.0[usize::from(RDX)] << 32) | (self.vmcb.save.rax & 0xFFFF_FFFF);
        match msrs::access(msr, write.then_some(value), self.vmcb.save.efer) {
            MsrResult::Value(v) => self.set_edx_eax(v),
            MsrResult::SetEfer(efer) => self.vmcb.save.efer = efer,
            MsrResult::Ignored => {
                log::debug!("guest write of MSR {msr:#x} dropped (the TPM clock runs on the TSC)");
            }
            MsrResult::GeneralProtection => return self.gp(),
        }
        self.skip(if write { insn::WRMSR } else { insn::RDMSR });
    }

    fn set_edx_eax(&mut self, v: u64) {
        self.vmcb.save.rax = v & 0xFFFF_FFFF;
        self.gprs.0[usize::from(RDX)] = v >> 32;
    }

    fn ioio(&mut self) {
        let io = IoExit::decode(self.vmcb.control.exit_info_1);
        let next_rip = self.vmcb.control.exit_info_2;
        if io.port == power::DEBUG_EXIT_PORT && !io.input && !io.string {
            log::info!(
                "guest wrote {:#x} to isa-debug-exit",
                self.vmcb.save.rax as u8
            );
            self.summary();
            // SAFETY: the guest's own write to the debug-exit port, which
            // ends the run.
            unsafe { Port::<u8>::new(io.port).write(self.vmcb.save.rax as u8) };
            self.vmcb.save.rip = next_rip;
            return;
        }
        if io.string {
            log::warn!("string I/O on fw_cfg DMA port {:#x}: #GP", io.port);
            return self.gp();
        }
        if io.input {
            // SAFETY: a read of the fw_cfg DMA register the guest asked for;
            // reads have no side effects.
            let v = unsafe {
                match io.size {
                    1 => u32::from(Port::<u8>::new(io.port).read()),
                    2 => u32::from(Port::<u16>::new(io.port).read()),
                    _ => Port::<u32>::new(io.port).read(),
                }
            };
            let mask = crate::mmio::regs::width_mask(io.size);
            self.vmcb.save.rax = (self.vmcb.save.rax & !mask) | (u64::from(v) & mask);
            if io.size == 4 {
                self.vmcb.save.rax &= 0xFFFF_FFFF;
            }
        } else {
            let value = self.vmcb.save.rax as u32;
            let forward = match self.dma.write(io.port, io.size, value) {
                DmaWrite::Forward => true,
                DmaWrite::Check { descriptor } => self.check_dma(descriptor),
            };
            if forward {
                // SAFETY: the guest's own write to the fw_cfg DMA register,
                // after the transfer it starts (if any) was checked to stay
                // out of svtpm's memory.
                unsafe {
                    match io.size {
                        1 => Port::<u8>::new(io.port).write(value as u8),
                        2 => Port::<u16>::new(io.port).write(value as u16),
                        _ => Port::<u32>::new(io.port).write(value),
                    }
                }
            }
        }
        self.vmcb.save.rip = next_rip;
    }

    /// Whether the DMA transfer described at `descriptor` may start; if not,
    /// marks it failed in guest memory as the device would.
    fn check_dma(&mut self, descriptor: u64) -> bool {
        let layout = self.layout.clone();
        let mut mem = GuestRam::new(&layout);
        let mut raw = [0u8; DmaAccess::LEN];
        // QEMU reads the descriptor at its physical address: it must be
        // plain guest RAM (identity-mapped).
        if layout.host_address(descriptor, DmaAccess::LEN as u64) != Some(descriptor)
            || crate::mmio::GuestMemory::read(&mem, descriptor, &mut raw).is_err()
        {
            log::warn!("fw_cfg DMA descriptor at {descriptor:#x} is not guest RAM: refused");
            return false;
        }
        let desc = DmaAccess::from_bytes(raw);
        match judge(&desc, |a, l| layout.dma_allowed(a, l)) {
            Verdict::Allow => true,
            Verdict::Refuse => {
                log::warn!(
                    "fw_cfg DMA of {} bytes at {:#x} would touch svtpm's memory: refused",
                    desc.length,
                    desc.address
                );
                let failed = DmaAccess {
                    control: DMA_ERROR,
                    ..desc
                };
                let _ =
                    crate::mmio::GuestMemory::write(&mut mem, descriptor, &failed.to_bytes()[..4]);
                false
            }
        }
    }
}
