//! What the guest's RDMSR/WRMSR of intercepted MSRs do: EFER with SVME
//! hidden, the SVM MSRs absent, the TSC not writable.

use super::vmcb::EFER_SVME;

/// MSR EFER.
pub const EFER: u32 = 0xC000_0080;
/// MSR VM_CR.
pub const VM_CR: u32 = 0xC001_0114;
/// MSR VM_HSAVE_PA.
pub const VM_HSAVE_PA: u32 = 0xC001_0117;
/// MSR TSC.
pub const TSC: u32 = 0x10;
/// MSR TSC_ADJUST.
pub const TSC_ADJUST: u32 = 0x3B;

/// EFER.LMA (set by the CPU, not by writes).
pub const EFER_LMA: u64 = 1 << 10;
/// EFER bits a guest may write: SCE, LME, LMA (ignored), NXE, LMSLE,
/// FFXSR, TCE.
const EFER_WRITABLE: u64 =
    (1 << 0) | (1 << 8) | EFER_LMA | (1 << 11) | (1 << 13) | (1 << 14) | (1 << 15);

/// The outcome of an intercepted MSR access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsrResult {
    /// A read returns this value (EDX:EAX).
    Value(u64),
    /// A write is done; the VMCB's EFER becomes this value.
    SetEfer(u64),
    /// A write is accepted and dropped.
    Ignored,
    /// #GP(0), as a CPU without this MSR (or bit) raises.
    GeneralProtection,
}

/// An intercepted RDMSR (`write` = None) or WRMSR of `msr`, with the
/// VMCB's current EFER `efer`.
pub fn access(msr: u32, write: Option<u64>, efer: u64) -> MsrResult {
    match (msr, write) {
        (EFER, None) => MsrResult::Value(efer & !EFER_SVME),
        (EFER, Some(v)) if v & !EFER_WRITABLE != 0 => MsrResult::GeneralProtection,
        (EFER, Some(v)) => MsrResult::SetEfer((v & !EFER_LMA) | (efer & EFER_LMA) | EFER_SVME),
        (TSC | TSC_ADJUST, Some(_)) => MsrResult::Ignored,
        _ => MsrResult::GeneralProtection,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LME: u64 = 1 << 8;
    const NXE: u64 = 1 << 11;

    #[test]
    fn efer_hides_svme() {
        let efer = EFER_SVME | LME | EFER_LMA | NXE;
        assert_eq!(
            access(EFER, None, efer),
            MsrResult::Value(LME | EFER_LMA | NXE)
        );
        // OVMF entering long mode: LME | NXE written, SVME kept, LMA kept
        // as the CPU has it.
        assert_eq!(
            access(EFER, Some(LME | NXE), EFER_SVME),
            MsrResult::SetEfer(LME | NXE | EFER_SVME)
        );
        assert_eq!(
            access(EFER, Some(LME), efer),
            MsrResult::SetEfer(LME | EFER_LMA | EFER_SVME)
        );
        // Writing LMA does not set it.
        assert_eq!(
            access(EFER, Some(EFER_LMA), EFER_SVME),
            MsrResult::SetEfer(EFER_SVME)
        );
    }

    #[test]
    fn efer_svme_and_reserved_bits_fault() {
        assert_eq!(
            access(EFER, Some(EFER_SVME), EFER_SVME),
            MsrResult::GeneralProtection
        );
        assert_eq!(
            access(EFER, Some(1 << 20), EFER_SVME),
            MsrResult::GeneralProtection
        );
    }

    #[test]
    fn svm_msrs_are_absent_and_tsc_is_not_writable() {
        for msr in [VM_CR, VM_HSAVE_PA] {
            assert_eq!(access(msr, None, 0), MsrResult::GeneralProtection);
            assert_eq!(access(msr, Some(0), 0), MsrResult::GeneralProtection);
        }
        assert_eq!(access(TSC, Some(0), 0), MsrResult::Ignored);
        assert_eq!(access(TSC_ADJUST, Some(5), 0), MsrResult::Ignored);
        assert_eq!(access(0x4000_0000, None, 0), MsrResult::GeneralProtection);
    }
}
