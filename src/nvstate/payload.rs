//! The plaintext inside a sealed blob: the engine's named state blobs
//! (`permall`, `volatilestate`, ...) as one set, so a single commit replaces
//! all of them at once. Owns the set type and its byte layout.
//!
//! Layout (all integers little-endian), canonical so one set has exactly one
//! encoding:
//! ```text
//! u16 count
//! count x { u8 name_len | name (name_len bytes) | u32 data_len | data }
//! ```
//! Names are 1..=32 bytes of `[a-z0-9._-]`, strictly ascending; at most
//! [`MAX_ENTRIES`] entries; the whole encoding at most [`MAX_PAYLOAD_LEN`]
//! bytes; nothing may follow the last entry.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use zeroize::Zeroizing;

/// Most entries one set may hold.
pub const MAX_ENTRIES: usize = 16;

/// Longest entry name, in bytes.
pub const MAX_NAME_LEN: usize = 32;

/// Largest encoded set, in bytes (libtpms' `permall` is some tens of KiB).
pub const MAX_PAYLOAD_LEN: usize = 1 << 20;

/// Why a set or its encoding was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadError {
    /// A name is empty, too long or has a character outside `[a-z0-9._-]`.
    BadName,
    /// More than [`MAX_ENTRIES`] entries.
    TooManyEntries,
    /// The encoding would exceed (or exceeds) [`MAX_PAYLOAD_LEN`].
    TooLarge {
        /// Size of the encoding, in bytes.
        len: usize,
    },
    /// The encoding ends inside an entry.
    Truncated,
    /// Names are not strictly ascending (out of order or repeated).
    NotCanonical,
    /// Bytes follow the last entry.
    TrailingBytes,
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PayloadError::BadName => write!(f, "bad blob name"),
            PayloadError::TooManyEntries => write!(f, "more than {MAX_ENTRIES} blobs"),
            PayloadError::TooLarge { len } => {
                write!(f, "state of {len} bytes exceeds {MAX_PAYLOAD_LEN}")
            }
            PayloadError::Truncated => write!(f, "payload ends inside an entry"),
            PayloadError::NotCanonical => write!(f, "payload names not strictly ascending"),
            PayloadError::TrailingBytes => write!(f, "bytes after the last payload entry"),
        }
    }
}

impl core::error::Error for PayloadError {}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// A set of named state blobs. Blob contents are wiped when dropped or
/// replaced; `Debug` shows names and sizes only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StateBlobs {
    entries: BTreeMap<String, Zeroizing<Vec<u8>>>,
}

impl StateBlobs {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The blob called `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.entries.get(name).map(|v| v.as_slice())
    }

    /// Sets the blob called `name` to `data`, replacing any previous one.
    /// Refuses bad names, a 17th entry, or a set whose encoding would exceed
    /// [`MAX_PAYLOAD_LEN`]; on refusal the set is unchanged.
    pub fn insert(&mut self, name: &str, data: &[u8]) -> Result<(), PayloadError> {
        if !valid_name(name) {
            return Err(PayloadError::BadName);
        }
        let old = self.entries.get(name).map(|v| v.len());
        if old.is_none() && self.entries.len() >= MAX_ENTRIES {
            return Err(PayloadError::TooManyEntries);
        }
        let len = match old {
            Some(old_len) => self.encoded_len() - old_len + data.len(),
            None => self.encoded_len() + entry_overhead(name) + data.len(),
        };
        if len > MAX_PAYLOAD_LEN {
            return Err(PayloadError::TooLarge { len });
        }
        self.entries
            .insert(String::from(name), Zeroizing::new(data.to_vec()));
        Ok(())
    }

    /// Removes the blob called `name`; returns whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        self.entries.remove(name).is_some()
    }

    /// The names present, ascending.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Number of blobs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the set holds no blob.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Length of [`StateBlobs::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        2 + self
            .entries
            .iter()
            .map(|(n, d)| entry_overhead(n) + d.len())
            .sum::<usize>()
    }

    /// The canonical encoding (see the module docs), in a wiping buffer.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(self.encoded_len()));
        // `insert` keeps count <= MAX_ENTRIES, names <= 32 bytes and the
        // total <= MAX_PAYLOAD_LEN, so every length below fits its field.
        out.extend_from_slice(&(self.entries.len() as u16).to_le_bytes());
        for (name, data) in &self.entries {
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(data);
        }
        out
    }

    /// Parses a canonical encoding, refusing anything else.
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        if bytes.len() > MAX_PAYLOAD_LEN {
            return Err(PayloadError::TooLarge { len: bytes.len() });
        }
        let mut r = Reader(bytes);
        let count = usize::from(u16::from_le_bytes(r.array()?));
        if count > MAX_ENTRIES {
            return Err(PayloadError::TooManyEntries);
        }
        let mut set = Self::new();
        let mut prev: Option<&str> = None;
        for _ in 0..count {
            let name_len = usize::from(r.array::<1>()?[0]);
            let name =
                core::str::from_utf8(r.take(name_len)?).map_err(|_| PayloadError::BadName)?;
            if !valid_name(name) {
                return Err(PayloadError::BadName);
            }
            if prev.is_some_and(|p| p >= name) {
                return Err(PayloadError::NotCanonical);
            }
            prev = Some(name);
            let data_len = u32::from_le_bytes(r.array()?) as usize;
            let data = r.take(data_len)?;
            set.entries
                .insert(String::from(name), Zeroizing::new(data.to_vec()));
        }
        if !r.0.is_empty() {
            return Err(PayloadError::TrailingBytes);
        }
        Ok(set)
    }
}

fn entry_overhead(name: &str) -> usize {
    1 + name.len() + 4
}

/// A cursor over untrusted bytes that never reads past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PayloadError> {
        if n > self.0.len() {
            return Err(PayloadError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PayloadError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

impl fmt::Debug for StateBlobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(n, d)| (n, d.len())))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec;

    fn sample() -> StateBlobs {
        let mut s = StateBlobs::new();
        s.insert("volatilestate", &[9; 40]).unwrap();
        s.insert("permall", &[1, 2, 3]).unwrap();
        s
    }

    #[test]
    fn round_trip_and_layout() {
        let s = sample();
        let enc = s.encode();
        assert_eq!(enc.len(), s.encoded_len());
        // count, then "permall" (sorted first).
        assert_eq!(&enc[..3], &[2, 0, 7]);
        assert_eq!(&enc[3..10], b"permall");
        assert_eq!(&enc[10..17], &[3, 0, 0, 0, 1, 2, 3]);
        assert_eq!(StateBlobs::decode(&enc).unwrap(), s);
        assert_eq!(
            StateBlobs::decode(&StateBlobs::new().encode()).unwrap(),
            StateBlobs::new()
        );
    }

    #[test]
    fn every_truncation_is_refused() {
        let enc = sample().encode();
        for cut in 0..enc.len() {
            assert!(StateBlobs::decode(&enc[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn non_canonical_encodings_are_refused() {
        let enc = sample().encode();
        let mut trailing = enc.to_vec();
        trailing.push(0);
        assert_eq!(
            StateBlobs::decode(&trailing),
            Err(PayloadError::TrailingBytes)
        );

        // Same entry twice.
        let mut dup = vec![2, 0];
        for _ in 0..2 {
            dup.extend_from_slice(&[1, b'a', 0, 0, 0, 0]);
        }
        assert_eq!(StateBlobs::decode(&dup), Err(PayloadError::NotCanonical));
        // Out of order.
        let unordered = [2, 0, 1, b'b', 0, 0, 0, 0, 1, b'a', 0, 0, 0, 0];
        assert_eq!(
            StateBlobs::decode(&unordered),
            Err(PayloadError::NotCanonical)
        );
        // Bad name characters and empty names.
        assert_eq!(
            StateBlobs::decode(&[1, 0, 1, b'A', 0, 0, 0, 0]),
            Err(PayloadError::BadName)
        );
        assert_eq!(
            StateBlobs::decode(&[1, 0, 0, 0, 0, 0, 0]),
            Err(PayloadError::BadName)
        );
        // Count above the limit.
        assert_eq!(
            StateBlobs::decode(&[17, 0]),
            Err(PayloadError::TooManyEntries)
        );
        // Length field pointing past the end.
        assert_eq!(
            StateBlobs::decode(&[1, 0, 1, b'a', 0xff, 0xff, 0xff, 0xff]),
            Err(PayloadError::Truncated)
        );
    }

    #[test]
    fn limits_are_enforced_on_insert() {
        let mut s = StateBlobs::new();
        assert_eq!(s.insert("", b"x"), Err(PayloadError::BadName));
        assert_eq!(s.insert("Perm", b"x"), Err(PayloadError::BadName));
        assert_eq!(s.insert(&"a".repeat(33), b"x"), Err(PayloadError::BadName));
        for i in 0..MAX_ENTRIES {
            s.insert(&format!("b{i}"), b"x").unwrap();
        }
        assert_eq!(s.insert("extra", b"x"), Err(PayloadError::TooManyEntries));
        s.insert("b0", b"replaced").unwrap();
        assert_eq!(s.get("b0"), Some(&b"replaced"[..]));

        let mut big = StateBlobs::new();
        let room = MAX_PAYLOAD_LEN - 2 - entry_overhead("permall");
        big.insert("permall", &vec![0; room]).unwrap();
        assert_eq!(big.encoded_len(), MAX_PAYLOAD_LEN);
        assert!(matches!(
            big.insert("permall", &vec![0; room + 1]),
            Err(PayloadError::TooLarge { .. })
        ));
        assert!(matches!(
            big.insert("x", b""),
            Err(PayloadError::TooLarge { .. })
        ));
        assert_eq!(big.get("permall").map(<[u8]>::len), Some(room));
    }

    #[test]
    fn debug_shows_sizes_not_contents() {
        let mut s = StateBlobs::new();
        s.insert("permall", b"SECRETSEED").unwrap();
        let text = format!("{s:?}");
        assert!(text.contains("permall") && text.contains("10"));
        assert!(
            !text.contains("SECRETSEED") && !text.contains("83"),
            "{text}"
        );
    }
}
