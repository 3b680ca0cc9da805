//! [`Secret`]: a resource released by the broker (the vTPM state key). Held
//! in a zeroizing buffer, wiped on drop, and never shown by `Debug`.

use alloc::vec::Vec;
use core::fmt;

use zeroize::Zeroizing;

/// Released secret bytes.
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Takes ownership of `bytes` (already in a zeroizing buffer).
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }

    /// The secret bytes. Copies the caller makes are its own to wipe.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_length_only() {
        let s = Secret::new(Zeroizing::new(alloc::vec![0xa5; 32]));
        assert_eq!(alloc::format!("{s:?}"), "Secret(32 bytes)");
        assert_eq!(s.expose(), &[0xa5; 32][..]);
        assert_eq!(s.len(), 32);
    }
}
