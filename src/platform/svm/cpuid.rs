//! What the guest sees of CPUID: the host CPU's answer with SVM hidden
//! (the guest must not try to use the hypervisor's EFER.SVME, VMRUN or
//! VM_HSAVE_PA), and the OS-controlled bits (OSXSAVE, OSPKE) following the
//! guest's CR4 rather than the hypervisor's.

/// CPUID leaf results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Regs {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
}

const CR4_OSXSAVE: u64 = 1 << 18;
const CR4_PKE: u64 = 1 << 22;

/// Adjusts the host's answer `r` to leaf `leaf` for a guest with `cr4`.
pub fn mask(leaf: u32, r: Regs, guest_cr4: u64) -> Regs {
    let mut r = r;
    let set = |v: &mut u32, bit: u32, on: bool| {
        if on {
            *v |= 1 << bit;
        } else {
            *v &= !(1 << bit);
        }
    };
    match leaf {
        1 => set(&mut r.ecx, 27, guest_cr4 & CR4_OSXSAVE != 0),
        7 => set(&mut r.ecx, 4, guest_cr4 & CR4_PKE != 0),
        // SVM feature bit.
        0x8000_0001 => set(&mut r.ecx, 2, false),
        // SVM revision and features: absent.
        0x8000_000A => {
            r = Regs {
                eax: 0,
                ebx: 0,
                ecx: 0,
                edx: 0,
            }
        }
        _ => {}
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Regs = Regs {
        eax: u32::MAX,
        ebx: u32::MAX,
        ecx: u32::MAX,
        edx: u32::MAX,
    };

    #[test]
    fn svm_is_hidden() {
        let r = mask(0x8000_0001, ALL, 0);
        assert_eq!(r.ecx, !(1 << 2));
        assert_eq!((r.eax, r.ebx, r.edx), (u32::MAX, u32::MAX, u32::MAX));
        let r = mask(0x8000_000A, ALL, 0);
        assert_eq!((r.eax, r.ebx, r.ecx, r.edx), (0, 0, 0, 0));
    }

    #[test]
    fn os_bits_follow_guest_cr4() {
        assert_eq!(mask(1, ALL, 0).ecx & (1 << 27), 0);
        assert_ne!(mask(1, ALL, CR4_OSXSAVE).ecx & (1 << 27), 0);
        let none = Regs { ecx: 0, ..ALL };
        assert_ne!(mask(1, none, CR4_OSXSAVE).ecx & (1 << 27), 0);
        assert_eq!(mask(7, ALL, 0).ecx & (1 << 4), 0);
        assert_ne!(mask(7, none, CR4_PKE).ecx & (1 << 4), 0);
    }

    #[test]
    fn other_leaves_pass() {
        assert_eq!(mask(0, ALL, 0), ALL);
        assert_eq!(mask(0x8000_0008, ALL, 0), ALL);
        assert_eq!(mask(0xD, ALL, 0), ALL);
    }
}
