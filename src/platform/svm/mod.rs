//! The svm platform: svtpm as a thin SVM hypervisor under QEMU TCG, hosting
//! the guest firmware (OVMF) and OS with their unmodified TPM drivers.
//! Nested paging plays the part VMPL separation plays on SEV-SNP: the guest's
//! address space maps none of svtpm's memory, and the TPM window is left
//! unmapped so every access exits (#NPF) and is emulated against the TIS or
//! CRB model in front of the engine. See `docs/platform-svm.md`.
//!
//! Pure, host-tested parts: [`vmcb`] (the VMCB layout), [`npt`] (nested
//! page tables), [`layout`] (the guest's physical address space),
//! [`bitmaps`] (I/O and MSR permission maps), [`cpuid`] and [`msr`] (what
//! the guest sees), [`insn`] (instruction lengths), [`state`] (register
//! state between VMCB and emulator), [`ioio`] (I/O exits and the fw_cfg DMA
//! guard), [`tpm`] (the device and its exit accounting). Hardware parts exist only in the image.

pub mod bitmaps;
pub mod bootcfg;
pub mod cpuid;
pub mod insn;
pub mod ioio;
pub mod layout;
pub mod msr;
pub mod npt;
pub mod state;
pub mod tpm;
pub mod vmcb;

#[cfg(all(target_os = "none", not(svtpm_linux_user)))]
mod guest;
#[cfg(all(target_os = "none", not(svtpm_linux_user)))]
pub mod hw;
#[cfg(all(target_os = "none", not(svtpm_linux_user)))]
pub mod sealed;
#[cfg(all(target_os = "none", not(svtpm_linux_user)))]
mod vm;
#[cfg(all(target_os = "none", not(svtpm_linux_user)))]
pub use vm::{launch, FIRMWARE_FILE};

use core::fmt;

/// Why the guest could not be started.
#[derive(Debug)]
pub enum LaunchError {
    /// No fw_cfg file `opt/svtpm/ovmf` (or no fw_cfg at all).
    NoGuestFirmware,
    /// fw_cfg could not be read.
    FwCfg(crate::arch::fwcfg::FwCfgError),
    /// QEMU offers more than one CPU (`-smp`); the platform runs the guest
    /// on one and cannot keep others out of svtpm's memory.
    SmpUnsupported {
        /// Boot CPUs.
        cpus: u16,
        /// Maximum CPUs (hot-pluggable).
        max_cpus: u16,
    },
    /// The image does not fit its slot.
    ImageTooLarge,
    /// The guest address space is impossible.
    Layout(layout::LayoutError),
    /// The nested page tables could not be built.
    Npt(npt::NptError),
    /// The CPU cannot run the guest.
    #[cfg(all(target_os = "none", not(svtpm_linux_user)))]
    Svm(hw::SvmError),
    /// The TPM engine did not start.
    Engine(crate::engine::EngineError),
    /// The command line asks for something impossible.
    Config(bootcfg::BootConfigError),
    /// The sealed state could not be opened (attestation, key, state).
    #[cfg(all(target_os = "none", not(svtpm_linux_user)))]
    Sealed(sealed::SealedError),
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoGuestFirmware => write!(f, "no guest firmware (fw_cfg opt/svtpm/ovmf)"),
            Self::FwCfg(e) => write!(f, "fw_cfg: {e:?}"),
            Self::SmpUnsupported { cpus, max_cpus } => write!(
                f,
                "{cpus} CPUs (max {max_cpus}): the svm platform supports exactly one (-smp 1)"
            ),
            Self::ImageTooLarge => write!(f, "the image does not fit its 1 GiB slot"),
            Self::Layout(e) => write!(f, "guest memory layout: {e:?}"),
            Self::Npt(e) => write!(f, "nested page tables: {e:?}"),
            #[cfg(all(target_os = "none", not(svtpm_linux_user)))]
            Self::Svm(e) => write!(f, "SVM: {e:?}"),
            Self::Engine(e) => write!(f, "TPM engine: {e}"),
            Self::Config(e) => write!(f, "configuration: {e}"),
            #[cfg(all(target_os = "none", not(svtpm_linux_user)))]
            Self::Sealed(e) => write!(f, "{e}"),
        }
    }
}
