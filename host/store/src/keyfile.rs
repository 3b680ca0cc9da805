//! The vTPM state key as a file on the host (development, CI, and the
//! owner's side of an import): exactly 64 hexadecimal digits, the 256-bit
//! key, optionally followed by ASCII whitespace (a newline). Upper- and
//! lower-case digits are accepted; nothing else is (no `0x`, no raw bytes),
//! so a file of the wrong kind is refused instead of being misread.
//!
//! Make one with `openssl rand -hex 32 > key` or
//! `head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > key`.
//!
//! The key is read into zeroizing buffers and never shown: errors name the
//! file, a length or an offset, never the contents. In production the key
//! broker releases the key to the attested guest; no file exists there.

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use svtpm::nvstate::key::{KeyError, KEY_LEN};
use svtpm::nvstate::StateKey;
use zeroize::Zeroizing;

/// Number of hex digits in a key file.
pub const KEY_HEX_DIGITS: usize = KEY_LEN * 2;

/// Largest key file read: the digits plus a little whitespace. Anything
/// longer is refused without reading it all.
const MAX_FILE_LEN: u64 = 256;

/// Why a key's text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTextError {
    /// Not 64 hex digits before the trailing whitespace.
    BadLength {
        /// Number of non-whitespace bytes found (capped by the read limit).
        len: usize,
    },
    /// A byte that is not a hex digit.
    NotHex {
        /// Its offset in the file.
        offset: usize,
    },
    /// The key itself is refused (all zero: an unset key).
    Key(KeyError),
}

impl fmt::Display for KeyTextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyTextError::BadLength { len } => write!(
                f,
                "expected {KEY_HEX_DIGITS} hex digits (a 256-bit key, e.g. from \
                 `openssl rand -hex 32`), found {len} characters"
            ),
            KeyTextError::NotHex { offset } => {
                write!(f, "character at offset {offset} is not a hex digit")
            }
            KeyTextError::Key(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for KeyTextError {}

/// Why a key file could not be used.
#[derive(Debug)]
pub enum KeyFileError {
    /// The file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        error: io::Error,
    },
    /// The file's contents are not a key.
    Text {
        /// The file.
        path: PathBuf,
        /// Why.
        error: KeyTextError,
    },
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyFileError::Io { path, error } => {
                write!(f, "cannot read key file {}: {error}", path.display())
            }
            KeyFileError::Text { path, error } => {
                write!(f, "key file {}: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for KeyFileError {}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Parses a key file's contents (see the module docs).
pub fn parse_state_key(text: &[u8]) -> Result<StateKey, KeyTextError> {
    let end = text
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let digits = &text[..end];
    if digits.len() != KEY_HEX_DIGITS {
        return Err(KeyTextError::BadLength { len: digits.len() });
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        let hi = hex_value(pair[0]).ok_or(KeyTextError::NotHex { offset: 2 * i })?;
        let lo = hex_value(pair[1]).ok_or(KeyTextError::NotHex { offset: 2 * i + 1 })?;
        key[i] = hi << 4 | lo;
    }
    StateKey::new(&key).map_err(KeyTextError::Key)
}

/// Reads and parses the key file at `path`.
pub fn read_state_key(path: &Path) -> Result<StateKey, KeyFileError> {
    let io_err = |error| KeyFileError::Io {
        path: path.to_path_buf(),
        error,
    };
    let file = fs::File::open(path).map_err(io_err)?;
    let mut text = Zeroizing::new(Vec::with_capacity(MAX_FILE_LEN as usize));
    file.take(MAX_FILE_LEN)
        .read_to_end(&mut text)
        .map_err(io_err)?;
    parse_state_key(&text).map_err(|error| KeyFileError::Text {
        path: path.to_path_buf(),
        error,
    })
}

/// The file's permission bits if group or others may read or write it
/// (the caller warns), `None` if only the owner may.
pub fn loose_permissions(path: &Path) -> io::Result<Option<u32>> {
    let mode = fs::metadata(path)?.permissions().mode() & 0o777;
    Ok((mode & 0o077 != 0).then_some(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191A1B1C1D1E1F";

    #[test]
    fn accepts_64_digits_with_trailing_whitespace_only() {
        let want = StateKey::new(&core::array::from_fn(|i| i as u8))
            .unwrap()
            .id();
        for text in [HEX.to_string(), format!("{HEX}\n"), format!("{HEX}\r\n \t")] {
            assert_eq!(parse_state_key(text.as_bytes()).unwrap().id(), want);
        }
    }

    #[test]
    fn refusals_name_length_or_offset_never_contents() {
        assert_eq!(
            parse_state_key(b"").unwrap_err(),
            KeyTextError::BadLength { len: 0 }
        );
        assert_eq!(
            parse_state_key(&HEX.as_bytes()[..32]).unwrap_err(),
            KeyTextError::BadLength { len: 32 }
        );
        assert_eq!(
            parse_state_key(format!("0x{HEX}").as_bytes()).unwrap_err(),
            KeyTextError::BadLength { len: 66 }
        );
        assert_eq!(
            parse_state_key(format!(" {}", &HEX[1..]).as_bytes()).unwrap_err(),
            KeyTextError::NotHex { offset: 0 }
        );
        let mut bad = HEX.as_bytes().to_vec();
        bad[41] = b'g';
        assert_eq!(
            parse_state_key(&bad).unwrap_err(),
            KeyTextError::NotHex { offset: 41 }
        );
        // 32 raw bytes are not a key file.
        assert!(matches!(
            parse_state_key(&[0xab; 32]).unwrap_err(),
            KeyTextError::BadLength { len: 32 }
        ));
        assert_eq!(
            parse_state_key("0".repeat(64).as_bytes()).unwrap_err(),
            KeyTextError::Key(KeyError::AllZero)
        );
        let shown = KeyTextError::NotHex { offset: 41 }.to_string();
        assert!(!shown.contains(&HEX[..8]), "{shown}");
    }

    #[test]
    fn reads_files_and_reports_permissions() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("key");
        assert!(matches!(
            read_state_key(&path),
            Err(KeyFileError::Io { .. })
        ));
        fs::write(&path, format!("{HEX}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_state_key(&path).is_ok());
        assert_eq!(loose_permissions(&path).unwrap(), Some(0o644));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(loose_permissions(&path).unwrap(), None);
        // A large file is refused after reading only the limit.
        fs::write(&path, vec![b'a'; 1 << 20]).unwrap();
        let e = read_state_key(&path).unwrap_err().to_string();
        assert!(e.contains("found 256 characters"), "{e}");
    }
}
