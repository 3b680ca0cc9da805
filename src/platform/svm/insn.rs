//! Instruction lengths the hypervisor needs without NRIP save: CPUID,
//! RDMSR and WRMSR are two-byte opcodes, but legacy and REX prefixes may
//! precede them, and RIP must step over those too.

/// `0F A2`.
pub const CPUID: u8 = 0xA2;
/// `0F 32`.
pub const RDMSR: u8 = 0x32;
/// `0F 30`.
pub const WRMSR: u8 = 0x30;

/// The length of the instruction in `bytes` if it is `0F op` after any
/// prefixes (REX only in 64-bit code, and only directly before the
/// opcode); `None` if it is not (the guest changed its code under the exit).
pub fn two_byte_len(bytes: &[u8], op: u8, code64: bool) -> Option<u8> {
    let mut i = 0;
    while i < bytes.len() && i < 13 {
        match bytes[i] {
            0x66 | 0x67 | 0xF2 | 0xF3 | 0x2E | 0x36 | 0x3E | 0x26 | 0x64 | 0x65 => i += 1,
            0x40..=0x4F if code64 => {
                i += 1;
                break;
            }
            _ => break,
        }
    }
    match bytes.get(i..i + 2) {
        Some([0x0F, o]) if *o == op => u8::try_from(i + 2).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_prefixed() {
        assert_eq!(two_byte_len(&[0x0F, 0xA2, 0x90], CPUID, false), Some(2));
        assert_eq!(two_byte_len(&[0x0F, 0x32], RDMSR, true), Some(2));
        assert_eq!(two_byte_len(&[0x66, 0x0F, 0x30], WRMSR, false), Some(3));
        assert_eq!(two_byte_len(&[0x48, 0x0F, 0xA2], CPUID, true), Some(3));
        assert_eq!(
            two_byte_len(&[0xF3, 0x48, 0x0F, 0xA2], CPUID, true),
            Some(4)
        );
    }

    #[test]
    fn wrong_instruction() {
        // REX is `dec eax` outside 64-bit mode.
        assert_eq!(two_byte_len(&[0x48, 0x0F, 0xA2], CPUID, false), None);
        // REX must be last.
        assert_eq!(two_byte_len(&[0x48, 0x66, 0x0F, 0xA2], CPUID, true), None);
        assert_eq!(two_byte_len(&[0x0F, 0x32], WRMSR, true), None);
        assert_eq!(two_byte_len(&[0x0F], CPUID, true), None);
        assert_eq!(two_byte_len(&[], CPUID, true), None);
        assert_eq!(two_byte_len(&[0x66; 20], CPUID, true), None);
    }
}
