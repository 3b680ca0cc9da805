//! The certificate table a host returns with an extended guest request
//! (GHCB specification 56421, "SNP Extended Guest Request"): the AMD
//! certificates (ARK, ASK, VCEK, ...) a verifier needs for the report.
//!
//! ```text
//! entry[0]   GUID[16]  OFFSET u32 LE  LENGTH u32 LE     24 bytes each
//! ...
//! entry[n]   all zero (terminator)
//! ...        certificates (DER) at OFFSET, LENGTH bytes, from the table start
//! ```
//!
//! The GUIDs are stored in RFC 4122 byte order, the bytes in the order the
//! text form shows them (`c0b406a4-a803-...` starts `c0 b4 06 a4 a8 03`),
//! not the mixed-endian EFI_GUID layout: AMD's `sev-guest` tools write them
//! with libuuid's `uuid_parse`, the virtee `sev` crate with
//! `Uuid::as_bytes`, and both read them back the same way.
//!
//! The table comes from the host, so it is untrusted input: every offset
//! and length is bounded by the table, the table by
//! [`MAX_CERT_TABLE_LEN`]; nothing here can panic. The certificates are not
//! checked here (the guest never verifies a chain): they only travel to
//! the key broker, which checks them against its own trust anchor.

use alloc::vec::Vec;
use core::fmt;

/// Largest table accepted: 16 KiB, the certificate buffer Linux's
/// sev-guest driver offers the host (`SEV_FW_BLOB_MAX_SIZE`).
pub const MAX_CERT_TABLE_LEN: usize = 16 * 1024;

/// Length of one table entry.
pub const ENTRY_LEN: usize = 24;

/// GUID of the AMD Root Key certificate, c0b406a4-a803-4952-9743-3fb6014cd0ae.
pub const GUID_ARK: [u8; 16] = [
    0xc0, 0xb4, 0x06, 0xa4, 0xa8, 0x03, 0x49, 0x52, 0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c, 0xd0, 0xae,
];
/// GUID of the AMD SEV Key certificate, 4ab7b379-bbac-4fe4-a02f-05aef327c782.
pub const GUID_ASK: [u8; 16] = [
    0x4a, 0xb7, 0xb3, 0x79, 0xbb, 0xac, 0x4f, 0xe4, 0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27, 0xc7, 0x82,
];
/// GUID of the VCEK certificate, 63da758d-e664-4564-adc5-f4b93be8accd.
pub const GUID_VCEK: [u8; 16] = [
    0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64, 0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd,
];
/// GUID of the VLEK certificate, a8074bc2-a25a-483e-aae6-39c045a0b8a1.
pub const GUID_VLEK: [u8; 16] = [
    0xa8, 0x07, 0x4b, 0xc2, 0xa2, 0x5a, 0x48, 0x3e, 0xaa, 0xe6, 0x39, 0xc0, 0x45, 0xa0, 0xb8, 0xa1,
];
/// GUID of a certificate revocation list, 92f81bc3-5811-4d3d-97ff-d19f88dc67ea.
pub const GUID_CRL: [u8; 16] = [
    0x92, 0xf8, 0x1b, 0xc3, 0x58, 0x11, 0x4d, 0x3d, 0x97, 0xff, 0xd1, 0x9f, 0x88, 0xdc, 0x67, 0xea,
];

/// What a table entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertKind {
    /// AMD Root Key certificate.
    Ark,
    /// AMD SEV Key certificate (signs VCEKs).
    Ask,
    /// Versioned Chip Endorsement Key certificate.
    Vcek,
    /// Versioned Loaded Endorsement Key certificate.
    Vlek,
    /// Certificate revocation list.
    Crl,
}

impl CertKind {
    /// Every kind, in GUID-table order.
    pub const ALL: [CertKind; 5] = [
        CertKind::Ark,
        CertKind::Ask,
        CertKind::Vcek,
        CertKind::Vlek,
        CertKind::Crl,
    ];

    /// The kind a GUID names, if it is one of AMD's.
    pub fn from_guid(guid: &[u8; 16]) -> Option<CertKind> {
        CertKind::ALL.into_iter().find(|k| k.guid() == *guid)
    }

    /// The kind's GUID, in table byte order.
    pub const fn guid(self) -> [u8; 16] {
        match self {
            CertKind::Ark => GUID_ARK,
            CertKind::Ask => GUID_ASK,
            CertKind::Vcek => GUID_VCEK,
            CertKind::Vlek => GUID_VLEK,
            CertKind::Crl => GUID_CRL,
        }
    }

    /// The name the virtee `sev` crate's `CertType` serializes the kind as
    /// (what Trustee's SNP verifier reads in `cert_chain`).
    pub const fn trustee_name(self) -> &'static str {
        match self {
            CertKind::Ark => "ARK",
            CertKind::Ask => "ASK",
            CertKind::Vcek => "VCEK",
            CertKind::Vlek => "VLEK",
            CertKind::Crl => "CRL",
        }
    }
}

/// One certificate of the table, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertEntry<'a> {
    /// What it is.
    pub kind: CertKind,
    /// Its bytes (DER for certificates), as the host supplied them.
    pub data: &'a [u8],
}

/// Why a certificate table was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertTableError {
    /// The table is larger than [`MAX_CERT_TABLE_LEN`].
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// The entries run past the end without an all-zero terminator.
    Unterminated,
    /// An entry's certificate lies (partly) outside the table, or inside
    /// the entry list.
    OutOfBounds {
        /// Index of the entry.
        index: usize,
        /// Its offset.
        offset: u32,
        /// Its length.
        length: u32,
    },
    /// An entry of a known kind has length 0.
    Empty {
        /// Index of the entry.
        index: usize,
    },
    /// Two entries of the same kind: which one counts would be ambiguous.
    Duplicate(CertKind),
}

impl fmt::Display for CertTableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertTableError::TooLarge { len } => write!(
                f,
                "certificate table of {len} bytes exceeds {MAX_CERT_TABLE_LEN}"
            ),
            CertTableError::Unterminated => {
                write!(f, "certificate table has no all-zero terminating entry")
            }
            CertTableError::OutOfBounds {
                index,
                offset,
                length,
            } => write!(
                f,
                "certificate table entry {index} ({length} bytes at {offset:#x}) lies outside \
                 the certificate area"
            ),
            CertTableError::Empty { index } => {
                write!(f, "certificate table entry {index} is empty")
            }
            CertTableError::Duplicate(kind) => write!(
                f,
                "certificate table holds more than one {} entry",
                kind.trustee_name()
            ),
        }
    }
}

impl core::error::Error for CertTableError {}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(src) = bytes.get(at..at + 4) {
        b.copy_from_slice(src);
    }
    u32::from_le_bytes(b)
}

/// Parses a certificate table. An empty input (the host supplied no
/// certificates) gives no entries. Entries with GUIDs other than AMD's are
/// skipped; the result keeps the table's order.
pub fn parse_cert_table(table: &[u8]) -> Result<Vec<CertEntry<'_>>, CertTableError> {
    if table.is_empty() {
        return Ok(Vec::new());
    }
    if table.len() > MAX_CERT_TABLE_LEN {
        return Err(CertTableError::TooLarge { len: table.len() });
    }
    // First pass: find the terminator, so every certificate can be required
    // to lie beyond the entry list.
    let count = table
        .chunks_exact(ENTRY_LEN)
        .position(|e| e.get(..16).is_some_and(|g| g.iter().all(|&b| b == 0)))
        .ok_or(CertTableError::Unterminated)?;
    let list_end = (count + 1) * ENTRY_LEN;

    let mut out: Vec<CertEntry<'_>> = Vec::new();
    for (index, raw) in table.chunks_exact(ENTRY_LEN).take(count).enumerate() {
        let mut guid = [0u8; 16];
        guid.copy_from_slice(raw.get(..16).unwrap_or(&[0; 16]));
        let Some(kind) = CertKind::from_guid(&guid) else {
            continue;
        };
        let (offset, length) = (u32_at(raw, 16), u32_at(raw, 20));
        if length == 0 {
            return Err(CertTableError::Empty { index });
        }
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let data = start
            .checked_add(usize::try_from(length).unwrap_or(usize::MAX))
            .filter(|_| start >= list_end)
            .and_then(|end| table.get(start..end))
            .ok_or(CertTableError::OutOfBounds {
                index,
                offset,
                length,
            })?;
        if out.iter().any(|e| e.kind == kind) {
            return Err(CertTableError::Duplicate(kind));
        }
        out.push(CertEntry { kind, data });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// Builds a table the way a host does: entries, terminator, then the
    /// certificates back to back.
    fn build(entries: &[([u8; 16], &[u8])]) -> Vec<u8> {
        let mut head = Vec::new();
        let mut body = Vec::new();
        let mut offset = (entries.len() + 1) * ENTRY_LEN;
        for (guid, data) in entries {
            head.extend_from_slice(guid);
            head.extend_from_slice(&(offset as u32).to_le_bytes());
            head.extend_from_slice(&(data.len() as u32).to_le_bytes());
            body.extend_from_slice(data);
            offset += data.len();
        }
        head.extend_from_slice(&[0; ENTRY_LEN]);
        head.extend_from_slice(&body);
        head
    }

    /// A GUID from its text form, parsed here independently of the
    /// constants above.
    fn guid(text: &str) -> [u8; 16] {
        let hex: Vec<u8> = text
            .bytes()
            .filter(|&b| b != b'-')
            .map(|b| (b as char).to_digit(16).unwrap() as u8)
            .collect();
        let mut g = [0u8; 16];
        for (i, byte) in g.iter_mut().enumerate() {
            *byte = hex[2 * i] << 4 | hex[2 * i + 1];
        }
        g
    }

    #[test]
    fn guids_are_the_text_form_in_order() {
        for (kind, text) in [
            (CertKind::Ark, "c0b406a4-a803-4952-9743-3fb6014cd0ae"),
            (CertKind::Ask, "4ab7b379-bbac-4fe4-a02f-05aef327c782"),
            (CertKind::Vcek, "63da758d-e664-4564-adc5-f4b93be8accd"),
            (CertKind::Vlek, "a8074bc2-a25a-483e-aae6-39c045a0b8a1"),
            (CertKind::Crl, "92f81bc3-5811-4d3d-97ff-d19f88dc67ea"),
        ] {
            assert_eq!(kind.guid(), guid(text), "{kind:?}");
            assert_eq!(CertKind::from_guid(&guid(text)), Some(kind));
        }
        // The EFI (mixed-endian) layout of the ARK GUID is not recognised.
        let mut efi = GUID_ARK;
        efi[..4].reverse();
        efi[4..6].reverse();
        efi[6..8].reverse();
        assert_eq!(CertKind::from_guid(&efi), None);
    }

    #[test]
    fn parses_a_host_table_and_skips_unknown_guids() {
        let other = guid("11111111-2222-3333-4444-555555555555");
        let t = build(&[
            (GUID_VCEK, b"vcek-der"),
            (other, b"vendor blob"),
            (GUID_ASK, b"ask"),
            (GUID_ARK, b"ark-der!"),
        ]);
        let e = parse_cert_table(&t).unwrap();
        assert_eq!(
            e,
            vec![
                CertEntry {
                    kind: CertKind::Vcek,
                    data: b"vcek-der"
                },
                CertEntry {
                    kind: CertKind::Ask,
                    data: b"ask"
                },
                CertEntry {
                    kind: CertKind::Ark,
                    data: b"ark-der!"
                },
            ]
        );
        // Trailing bytes after the certificates (a page-sized buffer) are
        // fine.
        let mut padded = t.clone();
        padded.resize(4096, 0);
        assert_eq!(parse_cert_table(&padded).unwrap(), e);
    }

    #[test]
    fn empty_tables() {
        assert_eq!(parse_cert_table(&[]).unwrap(), vec![]);
        assert_eq!(parse_cert_table(&[0; ENTRY_LEN]).unwrap(), vec![]);
        assert_eq!(parse_cert_table(&[0; 4096]).unwrap(), vec![]);
        // A terminator whose offset/length are not zero still ends the
        // table (only its GUID is looked at, as AMD's tools do).
        let mut t = [0u8; ENTRY_LEN];
        t[16] = 1;
        assert_eq!(parse_cert_table(&t).unwrap(), vec![]);
    }

    #[test]
    fn refuses_bad_tables() {
        // No terminator.
        let mut t = build(&[(GUID_VCEK, b"v")]);
        t.truncate(ENTRY_LEN);
        assert_eq!(parse_cert_table(&t), Err(CertTableError::Unterminated));
        assert_eq!(
            parse_cert_table(&t[..ENTRY_LEN - 1]),
            Err(CertTableError::Unterminated)
        );
        assert_eq!(
            parse_cert_table(&[0xff; 100]),
            Err(CertTableError::Unterminated)
        );

        // Too large.
        let big = vec![0u8; MAX_CERT_TABLE_LEN + 1];
        assert_eq!(
            parse_cert_table(&big),
            Err(CertTableError::TooLarge {
                len: MAX_CERT_TABLE_LEN + 1
            })
        );

        let set = |t: &mut Vec<u8>, index: usize, offset: u32, length: u32| {
            let at = index * ENTRY_LEN + 16;
            t[at..at + 4].copy_from_slice(&offset.to_le_bytes());
            t[at + 4..at + 8].copy_from_slice(&length.to_le_bytes());
        };
        let good = build(&[(GUID_VCEK, b"vcek"), (GUID_ASK, b"ask")]);
        let len = good.len() as u32;
        for (offset, length) in [
            (len - 2, 3),          // past the end
            (len, 1),              // starts at the end
            (u32::MAX, 1),         // offset overflow
            (8, u32::MAX),         // length overflow
            (0, 4),                // inside the entry list
            (ENTRY_LEN as u32, 4), // inside the terminator
        ] {
            let mut t = good.clone();
            set(&mut t, 1, offset, length);
            assert_eq!(
                parse_cert_table(&t),
                Err(CertTableError::OutOfBounds {
                    index: 1,
                    offset,
                    length
                }),
                "{offset:#x}+{length:#x}"
            );
        }
        let mut t = good.clone();
        set(&mut t, 0, 3 * ENTRY_LEN as u32, 0);
        assert_eq!(
            parse_cert_table(&t),
            Err(CertTableError::Empty { index: 0 })
        );

        let dup = build(&[(GUID_VCEK, b"a"), (GUID_VCEK, b"b")]);
        assert_eq!(
            parse_cert_table(&dup),
            Err(CertTableError::Duplicate(CertKind::Vcek))
        );

        // An unknown entry is skipped even when its fields are nonsense.
        let mut t = build(&[(guid("01010101-0101-0101-0101-010101010101"), b"x")]);
        set(&mut t, 0, u32::MAX, u32::MAX);
        assert_eq!(parse_cert_table(&t).unwrap(), vec![]);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A deterministic sweep of pseudo-random tables.
        let mut x: u32 = 0x1234_5678;
        for len in [0usize, 1, 23, 24, 25, 47, 48, 49, 100, 300] {
            for _ in 0..200 {
                let mut t = vec![0u8; len];
                for b in t.iter_mut() {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    *b = x as u8;
                }
                // Plant a known GUID sometimes so the bounds checks run.
                if len >= 48 && x & 1 == 0 {
                    t[..16].copy_from_slice(&GUID_VCEK);
                    t[24..40].fill(0);
                }
                let _ = parse_cert_table(&t);
            }
        }
    }
}
