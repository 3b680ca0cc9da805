//! Where nonces come from: the [`EntropySource`] trait (RDRAND in the image,
//! the operating system's generator on the host and in tests) and the
//! [`Nonce`] type that can only be made from one.

use core::fmt;

/// Length of an AES-GCM nonce, in bytes (96 bits).
pub const NONCE_LEN: usize = 12;

/// The entropy source failed (for RDRAND: it kept reporting no data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntropyError;

impl fmt::Display for EntropyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "entropy source failed")
    }
}

impl core::error::Error for EntropyError {}

/// A source of cryptographically secure random bytes.
///
/// Implementations fill all of `dest` or fail; they never return
/// predictable bytes in place of an error.
pub trait EntropySource {
    /// Fills `dest` with random bytes.
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), EntropyError>;
}

impl<T: EntropySource + ?Sized> EntropySource for &mut T {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), EntropyError> {
        (**self).fill(dest)
    }
}

/// A fresh random AES-GCM nonce. The only constructor draws it from an
/// [`EntropySource`], so no counter or constant can stand in for it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Nonce([u8; NONCE_LEN]);

impl Nonce {
    /// Draws a nonce. An all-zero draw is taken as a broken source and
    /// refused (its probability from a working source is 2^-96).
    pub fn draw(entropy: &mut dyn EntropySource) -> Result<Self, EntropyError> {
        let mut n = [0u8; NONCE_LEN];
        entropy.fill(&mut n)?;
        if n == [0u8; NONCE_LEN] {
            return Err(EntropyError);
        }
        Ok(Self(n))
    }

    /// The nonce bytes.
    pub fn bytes(&self) -> &[u8; NONCE_LEN] {
        &self.0
    }
}

#[cfg(test)]
pub(crate) mod test_sources {
    //! Entropy sources for tests: the OS generator and deliberately broken ones.
    use super::*;
    use std::io::Read;

    /// Reads the operating system's generator.
    #[derive(Debug, Default)]
    pub struct OsEntropy;

    impl EntropySource for OsEntropy {
        fn fill(&mut self, dest: &mut [u8]) -> Result<(), EntropyError> {
            let mut f = std::fs::File::open("/dev/urandom").map_err(|_| EntropyError)?;
            f.read_exact(dest).map_err(|_| EntropyError)
        }
    }

    /// Always returns the same bytes (a stuck generator).
    #[derive(Debug)]
    pub struct StuckEntropy(pub u8);

    impl EntropySource for StuckEntropy {
        fn fill(&mut self, dest: &mut [u8]) -> Result<(), EntropyError> {
            dest.fill(self.0);
            Ok(())
        }
    }

    /// Always fails.
    #[derive(Debug)]
    pub struct FailingEntropy;

    impl EntropySource for FailingEntropy {
        fn fill(&mut self, _dest: &mut [u8]) -> Result<(), EntropyError> {
            Err(EntropyError)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_sources::*;
    use super::*;

    #[test]
    fn nonces_differ_between_draws() {
        let mut os = OsEntropy;
        let a = Nonce::draw(&mut os).unwrap();
        let b = Nonce::draw(&mut os).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn broken_sources_are_refused() {
        assert_eq!(Nonce::draw(&mut StuckEntropy(0)), Err(EntropyError));
        assert_eq!(Nonce::draw(&mut FailingEntropy), Err(EntropyError));
        assert!(Nonce::draw(&mut StuckEntropy(1)).is_ok());
    }
}
