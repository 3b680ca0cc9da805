//! The VMCB (AMD APM vol. 2, appendix B): the control area (intercepts,
//! exit information, nested paging, event injection) at 0x000 and the
//! state save area at 0x400, as typed `repr(C)` structs whose offsets the
//! unit tests check against the manual's tables.

/// Intercept vector 3 (control area 0x00C).
pub mod misc1 {
    /// Physical INTR.
    pub const INTR: u32 = 1 << 0;
    /// CPUID.
    pub const CPUID: u32 = 1 << 18;
    /// HLT.
    pub const HLT: u32 = 1 << 24;
    /// IN/OUT through the I/O permission map.
    pub const IOIO_PROT: u32 = 1 << 27;
    /// RDMSR/WRMSR through the MSR permission map.
    pub const MSR_PROT: u32 = 1 << 28;
    /// Shutdown (triple fault).
    pub const SHUTDOWN: u32 = 1 << 31;
}

/// Intercept vector 4 (control area 0x010).
pub mod misc2 {
    /// VMRUN (must be set, or VMRUN fails).
    pub const VMRUN: u32 = 1 << 0;
    /// VMMCALL.
    pub const VMMCALL: u32 = 1 << 1;
    /// VMLOAD.
    pub const VMLOAD: u32 = 1 << 2;
    /// VMSAVE.
    pub const VMSAVE: u32 = 1 << 3;
    /// STGI.
    pub const STGI: u32 = 1 << 4;
    /// CLGI.
    pub const CLGI: u32 = 1 << 5;
    /// SKINIT.
    pub const SKINIT: u32 = 1 << 6;
    /// All SVM instructions.
    pub const SVM_INSTRUCTIONS: u32 = VMRUN | VMMCALL | VMLOAD | VMSAVE | STGI | CLGI | SKINIT;
}

/// Exit codes (EXITCODE, control area 0x070).
pub mod exit_code {
    /// CPUID.
    pub const CPUID: u64 = 0x72;
    /// IN/OUT.
    pub const IOIO: u64 = 0x7B;
    /// RDMSR/WRMSR.
    pub const MSR: u64 = 0x7C;
    /// Shutdown.
    pub const SHUTDOWN: u64 = 0x7F;
    /// VMRUN.
    pub const VMRUN: u64 = 0x80;
    /// SKINIT (last of the SVM instruction exits 0x80..=0x86).
    pub const SKINIT: u64 = 0x86;
    /// Nested page fault.
    pub const NPF: u64 = 0x400;
    /// Invalid guest state (-1).
    pub const INVALID: u64 = u64::MAX;
}

/// A segment register in VMCB form: attributes packed as descriptor bits
/// 0..=3 type, 4 S, 5..=6 DPL, 7 P, 8 AVL, 9 L, 10 D/B, 11 G.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Selector.
    pub selector: u16,
    /// Packed attributes.
    pub attrib: u16,
    /// Limit.
    pub limit: u32,
    /// Base.
    pub base: u64,
}

impl Segment {
    /// A segment with these fields.
    pub const fn new(selector: u16, attrib: u16, limit: u32, base: u64) -> Self {
        Self {
            selector,
            attrib,
            limit,
            base,
        }
    }
}

/// The control area (0x000..0x400).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ControlArea {
    /// CR reads (bits 0..16) and writes (16..32).
    pub intercept_cr: u32,
    /// DR reads and writes.
    pub intercept_dr: u32,
    /// Exception vectors.
    pub intercept_exceptions: u32,
    /// Intercept vector 3 ([`misc1`]).
    pub intercept_misc1: u32,
    /// Intercept vector 4 ([`misc2`]).
    pub intercept_misc2: u32,
    /// Intercept vector 5.
    pub intercept_misc3: u32,
    _r0: [u8; 0x24],
    /// PAUSE filter threshold.
    pub pause_filter_threshold: u16,
    /// PAUSE filter count.
    pub pause_filter_count: u16,
    /// Physical address of the I/O permission map (12 KiB).
    pub iopm_base_pa: u64,
    /// Physical address of the MSR permission map (8 KiB).
    pub msrpm_base_pa: u64,
    /// Added to the TSC the guest reads.
    pub tsc_offset: u64,
    /// Guest ASID (must not be 0).
    pub guest_asid: u32,
    /// TLB control (1 = flush all on VMRUN).
    pub tlb_control: u8,
    _r1: [u8; 3],
    /// Virtual interrupt control (V_INTR_MASKING is bit 24).
    pub vintr: u64,
    /// Interrupt shadow.
    pub interrupt_shadow: u64,
    /// Exit code.
    pub exit_code: u64,
    /// Exit information 1.
    pub exit_info_1: u64,
    /// Exit information 2.
    pub exit_info_2: u64,
    /// Event being delivered when the exit happened.
    pub exit_int_info: u64,
    /// Bit 0: nested paging enable.
    pub np_control: u64,
    /// AVIC APIC BAR.
    pub avic_apic_bar: u64,
    /// GHCB physical address.
    pub ghcb_pa: u64,
    /// Event to inject on VMRUN.
    pub event_inj: u64,
    /// Nested page table root.
    pub n_cr3: u64,
    /// LBR virtualisation enable.
    pub lbr_virt: u64,
    /// VMCB clean bits.
    pub vmcb_clean: u32,
    _r2: u32,
    /// Next RIP (with NRIP save).
    pub next_rip: u64,
    /// Fetched instruction bytes (with decode assists).
    pub insn_len: u8,
    /// The bytes.
    pub insn_bytes: [u8; 15],
    _r3: [u8; 0x400 - 0xE0],
}

/// The state save area (0x400..0x1000).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SaveArea {
    /// ES.
    pub es: Segment,
    /// CS.
    pub cs: Segment,
    /// SS.
    pub ss: Segment,
    /// DS.
    pub ds: Segment,
    /// FS.
    pub fs: Segment,
    /// GS.
    pub gs: Segment,
    /// GDTR (base and limit only).
    pub gdtr: Segment,
    /// LDTR.
    pub ldtr: Segment,
    /// IDTR (base and limit only).
    pub idtr: Segment,
    /// TR.
    pub tr: Segment,
    _r0: [u8; 0x2B],
    /// Current privilege level.
    pub cpl: u8,
    _r1: u32,
    /// EFER.
    pub efer: u64,
    _r2: [u8; 0x70],
    /// CR4.
    pub cr4: u64,
    /// CR3.
    pub cr3: u64,
    /// CR0.
    pub cr0: u64,
    /// DR7.
    pub dr7: u64,
    /// DR6.
    pub dr6: u64,
    /// RFLAGS.
    pub rflags: u64,
    /// RIP.
    pub rip: u64,
    _r3: [u8; 0x58],
    /// RSP.
    pub rsp: u64,
    /// S_CET.
    pub s_cet: u64,
    /// SSP.
    pub ssp: u64,
    /// ISST address.
    pub isst_addr: u64,
    /// RAX.
    pub rax: u64,
    /// STAR.
    pub star: u64,
    /// LSTAR.
    pub lstar: u64,
    /// CSTAR.
    pub cstar: u64,
    /// SFMASK.
    pub sfmask: u64,
    /// KernelGSBase.
    pub kernel_gs_base: u64,
    /// SYSENTER_CS.
    pub sysenter_cs: u64,
    /// SYSENTER_ESP.
    pub sysenter_esp: u64,
    /// SYSENTER_EIP.
    pub sysenter_eip: u64,
    /// CR2.
    pub cr2: u64,
    _r4: [u8; 0x20],
    /// Guest PAT (with nested paging).
    pub g_pat: u64,
    /// DBGCTL.
    pub dbgctl: u64,
    _r5: [u8; 0xC00 - 0x278],
}

/// A whole VMCB: one 4 KiB page.
#[repr(C, align(4096))]
#[derive(Clone, Copy, Debug)]
pub struct Vmcb {
    /// Control area.
    pub control: ControlArea,
    /// State save area.
    pub save: SaveArea,
}

/// EFER.SVME.
pub const EFER_SVME: u64 = 1 << 12;

/// EVENTINJ / EXITINTINFO: valid.
pub const EVENT_VALID: u64 = 1 << 31;
/// EVENTINJ / EXITINTINFO: an error code is pushed.
pub const EVENT_ERROR_VALID: u64 = 1 << 11;
/// EVENTINJ type: exception.
pub const EVENT_TYPE_EXCEPTION: u64 = 3 << 8;

impl Vmcb {
    /// An all-zero VMCB.
    pub const fn zeroed() -> Self {
        Self {
            control: ControlArea {
                intercept_cr: 0,
                intercept_dr: 0,
                intercept_exceptions: 0,
                intercept_misc1: 0,
                intercept_misc2: 0,
                intercept_misc3: 0,
                _r0: [0; 0x24],
                pause_filter_threshold: 0,
                pause_filter_count: 0,
                iopm_base_pa: 0,
                msrpm_base_pa: 0,
                tsc_offset: 0,
                guest_asid: 0,
                tlb_control: 0,
                _r1: [0; 3],
                vintr: 0,
                interrupt_shadow: 0,
                exit_code: 0,
                exit_info_1: 0,
                exit_info_2: 0,
                exit_int_info: 0,
                np_control: 0,
                avic_apic_bar: 0,
                ghcb_pa: 0,
                event_inj: 0,
                n_cr3: 0,
                lbr_virt: 0,
                vmcb_clean: 0,
                _r2: 0,
                next_rip: 0,
                insn_len: 0,
                insn_bytes: [0; 15],
                _r3: [0; 0x400 - 0xE0],
            },
            save: SaveArea {
                es: Segment::new(0, 0, 0, 0),
                cs: Segment::new(0, 0, 0, 0),
                ss: Segment::new(0, 0, 0, 0),
                ds: Segment::new(0, 0, 0, 0),
                fs: Segment::new(0, 0, 0, 0),
                gs: Segment::new(0, 0, 0, 0),
                gdtr: Segment::new(0, 0, 0, 0),
                ldtr: Segment::new(0, 0, 0, 0),
                idtr: Segment::new(0, 0, 0, 0),
                tr: Segment::new(0, 0, 0, 0),
                _r0: [0; 0x2B],
                cpl: 0,
                _r1: 0,
                efer: 0,
                _r2: [0; 0x70],
                cr4: 0,
                cr3: 0,
                cr0: 0,
                dr7: 0,
                dr6: 0,
                rflags: 0,
                rip: 0,
                _r3: [0; 0x58],
                rsp: 0,
                s_cet: 0,
                ssp: 0,
                isst_addr: 0,
                rax: 0,
                star: 0,
                lstar: 0,
                cstar: 0,
                sfmask: 0,
                kernel_gs_base: 0,
                sysenter_cs: 0,
                sysenter_esp: 0,
                sysenter_eip: 0,
                cr2: 0,
                _r4: [0; 0x20],
                g_pat: 0,
                dbgctl: 0,
                _r5: [0; 0xC00 - 0x278],
            },
        }
    }

    /// The state of an x86 CPU after RESET (AMD APM vol. 2, table 14-1),
    /// executing from the reset vector 0xFFFFFFF0, with EFER.SVME set as
    /// VMRUN requires. `rdx` is the processor signature the CPU leaves in
    /// EDX.
    pub fn set_reset_state(&mut self, rdx_signature: u32) -> u64 {
        let s = &mut self.save;
        s.cs = Segment::new(0xF000, 0x9B, 0xFFFF, 0xFFFF_0000);
        let data = Segment::new(0, 0x93, 0xFFFF, 0);
        s.ds = data;
        s.es = data;
        s.ss = data;
        s.fs = data;
        s.gs = data;
        s.gdtr = Segment::new(0, 0, 0xFFFF, 0);
        s.idtr = Segment::new(0, 0, 0xFFFF, 0);
        s.ldtr = Segment::new(0, 0x82, 0xFFFF, 0);
        s.tr = Segment::new(0, 0x8B, 0xFFFF, 0);
        s.cpl = 0;
        s.efer = EFER_SVME;
        s.cr0 = 0x6000_0010;
        s.cr3 = 0;
        s.cr4 = 0;
        s.dr6 = 0xFFFF_0FF0;
        s.dr7 = 0x400;
        s.rflags = 2;
        s.rip = 0xFFF0;
        s.rsp = 0;
        s.rax = 0;
        s.g_pat = 0x0007_0406_0007_0406;
        u64::from(rdx_signature)
    }
}

/// An exception to inject through EVENTINJ. `protected` says whether the
/// guest is in protected mode (CR0.PE): real mode pushes no error codes.
pub fn exception_event(vector: u8, error_code: Option<u32>, protected: bool) -> u64 {
    let mut e = EVENT_VALID | EVENT_TYPE_EXCEPTION | u64::from(vector);
    if let (Some(code), true) = (error_code, protected) {
        e |= EVENT_ERROR_VALID | (u64::from(code) << 32);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn sizes() {
        assert_eq!(size_of::<Segment>(), 16);
        assert_eq!(size_of::<ControlArea>(), 0x400);
        assert_eq!(size_of::<SaveArea>(), 0xC00);
        assert_eq!(size_of::<Vmcb>(), 0x1000);
        assert_eq!(core::mem::align_of::<Vmcb>(), 0x1000);
    }

    /// APM vol. 2 table B-1 (control area).
    #[test]
    fn control_area_offsets() {
        let c = |o: usize| o;
        assert_eq!(offset_of!(ControlArea, intercept_cr), c(0x000));
        assert_eq!(offset_of!(ControlArea, intercept_dr), c(0x004));
        assert_eq!(offset_of!(ControlArea, intercept_exceptions), c(0x008));
        assert_eq!(offset_of!(ControlArea, intercept_misc1), c(0x00C));
        assert_eq!(offset_of!(ControlArea, intercept_misc2), c(0x010));
        assert_eq!(offset_of!(ControlArea, intercept_misc3), c(0x014));
        assert_eq!(offset_of!(ControlArea, pause_filter_threshold), c(0x03C));
        assert_eq!(offset_of!(ControlArea, pause_filter_count), c(0x03E));
        assert_eq!(offset_of!(ControlArea, iopm_base_pa), c(0x040));
        assert_eq!(offset_of!(ControlArea, msrpm_base_pa), c(0x048));
        assert_eq!(offset_of!(ControlArea, tsc_offset), c(0x050));
        assert_eq!(offset_of!(ControlArea, guest_asid), c(0x058));
        assert_eq!(offset_of!(ControlArea, tlb_control), c(0x05C));
        assert_eq!(offset_of!(ControlArea, vintr), c(0x060));
        assert_eq!(offset_of!(ControlArea, interrupt_shadow), c(0x068));
        assert_eq!(offset_of!(ControlArea, exit_code), c(0x070));
        assert_eq!(offset_of!(ControlArea, exit_info_1), c(0x078));
        assert_eq!(offset_of!(ControlArea, exit_info_2), c(0x080));
        assert_eq!(offset_of!(ControlArea, exit_int_info), c(0x088));
        assert_eq!(offset_of!(ControlArea, np_control), c(0x090));
        assert_eq!(offset_of!(ControlArea, avic_apic_bar), c(0x098));
        assert_eq!(offset_of!(ControlArea, ghcb_pa), c(0x0A0));
        assert_eq!(offset_of!(ControlArea, event_inj), c(0x0A8));
        assert_eq!(offset_of!(ControlArea, n_cr3), c(0x0B0));
        assert_eq!(offset_of!(ControlArea, lbr_virt), c(0x0B8));
        assert_eq!(offset_of!(ControlArea, vmcb_clean), c(0x0C0));
        assert_eq!(offset_of!(ControlArea, next_rip), c(0x0C8));
        assert_eq!(offset_of!(ControlArea, insn_len), c(0x0D0));
        assert_eq!(offset_of!(ControlArea, insn_bytes), c(0x0D1));
    }

    /// APM vol. 2 table B-2 (state save area), as VMCB offsets.
    #[test]
    fn save_area_offsets() {
        let s = |o: usize| o - 0x400;
        assert_eq!(offset_of!(Vmcb, save), 0x400);
        assert_eq!(offset_of!(SaveArea, es), s(0x400));
        assert_eq!(offset_of!(SaveArea, cs), s(0x410));
        assert_eq!(offset_of!(SaveArea, ss), s(0x420));
        assert_eq!(offset_of!(SaveArea, ds), s(0x430));
        assert_eq!(offset_of!(SaveArea, fs), s(0x440));
        assert_eq!(offset_of!(SaveArea, gs), s(0x450));
        assert_eq!(offset_of!(SaveArea, gdtr), s(0x460));
        assert_eq!(offset_of!(SaveArea, ldtr), s(0x470));
        assert_eq!(offset_of!(SaveArea, idtr), s(0x480));
        assert_eq!(offset_of!(SaveArea, tr), s(0x490));
        assert_eq!(offset_of!(SaveArea, cpl), s(0x4CB));
        assert_eq!(offset_of!(SaveArea, efer), s(0x4D0));
        assert_eq!(offset_of!(SaveArea, cr4), s(0x548));
        assert_eq!(offset_of!(SaveArea, cr3), s(0x550));
        assert_eq!(offset_of!(SaveArea, cr0), s(0x558));
        assert_eq!(offset_of!(SaveArea, dr7), s(0x560));
        assert_eq!(offset_of!(SaveArea, dr6), s(0x568));
        assert_eq!(offset_of!(SaveArea, rflags), s(0x570));
        assert_eq!(offset_of!(SaveArea, rip), s(0x578));
        assert_eq!(offset_of!(SaveArea, rsp), s(0x5D8));
        assert_eq!(offset_of!(SaveArea, s_cet), s(0x5E0));
        assert_eq!(offset_of!(SaveArea, ssp), s(0x5E8));
        assert_eq!(offset_of!(SaveArea, isst_addr), s(0x5F0));
        assert_eq!(offset_of!(SaveArea, rax), s(0x5F8));
        assert_eq!(offset_of!(SaveArea, star), s(0x600));
        assert_eq!(offset_of!(SaveArea, lstar), s(0x608));
        assert_eq!(offset_of!(SaveArea, cstar), s(0x610));
        assert_eq!(offset_of!(SaveArea, sfmask), s(0x618));
        assert_eq!(offset_of!(SaveArea, kernel_gs_base), s(0x620));
        assert_eq!(offset_of!(SaveArea, sysenter_cs), s(0x628));
        assert_eq!(offset_of!(SaveArea, sysenter_esp), s(0x630));
        assert_eq!(offset_of!(SaveArea, sysenter_eip), s(0x638));
        assert_eq!(offset_of!(SaveArea, cr2), s(0x640));
        assert_eq!(offset_of!(SaveArea, g_pat), s(0x668));
        assert_eq!(offset_of!(SaveArea, dbgctl), s(0x670));
    }

    #[test]
    fn reset_state() {
        let mut v = Vmcb::zeroed();
        let rdx = v.set_reset_state(0x00A0_0F11);
        assert_eq!(rdx, 0x00A0_0F11);
        // The first fetch is CS.base + RIP = 0xFFFFFFF0.
        assert_eq!(v.save.cs.base + v.save.rip, 0xFFFF_FFF0);
        assert_eq!(v.save.efer & EFER_SVME, EFER_SVME);
        assert_eq!(v.save.cr0 & 1, 0, "real mode");
        assert_eq!(v.save.rflags, 2);
    }

    #[test]
    fn events() {
        // #GP(0) in protected mode carries its error code.
        assert_eq!(
            exception_event(13, Some(0), true),
            EVENT_VALID | EVENT_TYPE_EXCEPTION | EVENT_ERROR_VALID | 13
        );
        // #PF error code in the high half.
        assert_eq!(exception_event(14, Some(0x1B), true) >> 32, 0x1B);
        // Real mode: no error code.
        assert_eq!(
            exception_event(13, Some(0), false),
            EVENT_VALID | EVENT_TYPE_EXCEPTION | 13
        );
        assert_eq!(exception_event(6, None, true) & EVENT_ERROR_VALID, 0);
    }
}
