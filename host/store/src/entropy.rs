//! The operating system's random generator as an `EntropySource`.

use svtpm::nvstate::{EntropyError, EntropySource};

/// Draws from the operating system (`getrandom(2)` on Linux).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

impl EntropySource for OsEntropy {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), EntropyError> {
        getrandom::fill(dest).map_err(|_| EntropyError)
    }
}
