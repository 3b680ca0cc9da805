//! The certificate table a host returns with an extended guest request
//! (GHCB specification 56421, SNP Extended Guest Request): entries of
//! `{GUID (16 bytes), offset u32 LE, length u32 LE}` ending with an
//! all-zero entry, then the certificates' DER bytes. Offsets count from
//! the start of the table.
//!
//! GUIDs are stored in RFC 4122 byte order (the hex digits of the text
//! form, in order), as AMD's `sev-guest` tools (libuuid `uuid_t`), the
//! `sev` crate (`uuid::Uuid::as_bytes`) and Linux's guest users read them.

use anyhow::{bail, ensure, Result};

/// Length of one table entry.
pub const ENTRY_LEN: usize = 24;

/// ARK: c0b406a4-a803-4952-9743-3fb6014cd0ae.
pub const ARK_GUID: [u8; 16] = [
    0xc0, 0xb4, 0x06, 0xa4, 0xa8, 0x03, 0x49, 0x52, 0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c, 0xd0, 0xae,
];
/// ASK: 4ab7b379-bbac-4fe4-a02f-05aef327c782.
pub const ASK_GUID: [u8; 16] = [
    0x4a, 0xb7, 0xb3, 0x79, 0xbb, 0xac, 0x4f, 0xe4, 0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27, 0xc7, 0x82,
];
/// VCEK: 63da758d-e664-4564-adc5-f4b93be8accd.
pub const VCEK_GUID: [u8; 16] = [
    0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64, 0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd,
];

/// Builds a table of `entries` (GUID, DER), in that order.
pub fn build(entries: &[([u8; 16], &[u8])]) -> Result<Vec<u8>> {
    let header = ENTRY_LEN * (entries.len() + 1);
    let mut table = Vec::with_capacity(header + entries.iter().map(|e| e.1.len()).sum::<usize>());
    let mut offset = header;
    for (guid, der) in entries {
        ensure!(*guid != [0; 16], "the all-zero GUID ends the table");
        table.extend_from_slice(guid);
        table.extend_from_slice(&u32::try_from(offset)?.to_le_bytes());
        table.extend_from_slice(&u32::try_from(der.len())?.to_le_bytes());
        offset += der.len();
    }
    table.extend_from_slice(&[0; ENTRY_LEN]);
    for (_, der) in entries {
        table.extend_from_slice(der);
    }
    Ok(table)
}

/// The table of an ARK -> ASK -> VCEK chain: VCEK, ASK, ARK.
pub fn cert_table(ark: &[u8], ask: &[u8], vcek: &[u8]) -> Result<Vec<u8>> {
    build(&[(VCEK_GUID, vcek), (ASK_GUID, ask), (ARK_GUID, ark)])
}

/// Reads a table back: the entries (GUID, bytes) before the terminator.
/// Refuses a missing terminator and entries pointing outside the table.
pub fn parse(table: &[u8]) -> Result<Vec<([u8; 16], Vec<u8>)>> {
    let mut out = Vec::new();
    for entry in table.chunks(ENTRY_LEN) {
        if entry.len() < ENTRY_LEN {
            break;
        }
        let mut guid = [0u8; 16];
        guid.copy_from_slice(&entry[..16]);
        let offset = u32::from_le_bytes([entry[16], entry[17], entry[18], entry[19]]) as usize;
        let length = u32::from_le_bytes([entry[20], entry[21], entry[22], entry[23]]) as usize;
        if guid == [0; 16] {
            return Ok(out);
        }
        let Some(bytes) = offset
            .checked_add(length)
            .and_then(|e| table.get(offset..e))
        else {
            bail!(
                "certificate table entry {} points outside the table",
                out.len()
            );
        };
        out.push((guid, bytes.to_vec()));
    }
    bail!("certificate table has no terminating entry")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guid_from_text(text: &str) -> [u8; 16] {
        let hex: String = text.chars().filter(|c| *c != '-').collect();
        let mut g = [0u8; 16];
        for (i, b) in g.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        g
    }

    #[test]
    fn guids_are_the_ghcb_ones_in_rfc4122_order() {
        assert_eq!(
            ARK_GUID,
            guid_from_text("c0b406a4-a803-4952-9743-3fb6014cd0ae")
        );
        assert_eq!(
            ASK_GUID,
            guid_from_text("4ab7b379-bbac-4fe4-a02f-05aef327c782")
        );
        assert_eq!(
            VCEK_GUID,
            guid_from_text("63da758d-e664-4564-adc5-f4b93be8accd")
        );
    }

    #[test]
    fn layout_offsets_and_terminator() {
        let t = cert_table(b"ark-der", b"ask", b"vcek-bytes").unwrap();
        assert_eq!(t.len(), 4 * ENTRY_LEN + 7 + 3 + 10);
        assert_eq!(&t[..16], &VCEK_GUID);
        assert_eq!(&t[16..20], &96u32.to_le_bytes());
        assert_eq!(&t[20..24], &10u32.to_le_bytes());
        assert_eq!(&t[24..40], &ASK_GUID);
        assert_eq!(&t[40..44], &106u32.to_le_bytes());
        assert_eq!(&t[48..64], &ARK_GUID);
        assert_eq!(&t[64..68], &109u32.to_le_bytes());
        assert_eq!(&t[72..96], &[0; 24]);
        assert_eq!(&t[96..106], b"vcek-bytes");
        assert_eq!(&t[109..], b"ark-der");
        let entries = parse(&t).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[2], (ARK_GUID, b"ark-der".to_vec()));
    }

    #[test]
    fn parse_refuses_bad_tables() {
        let t = cert_table(b"a", b"b", b"c").unwrap();
        assert!(parse(&t[..ENTRY_LEN * 3]).is_err(), "no terminator");
        let mut bad = t.clone();
        bad[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&bad).is_err(), "offset outside");
        assert_eq!(parse(&[0; ENTRY_LEN]).unwrap(), vec![]);
        assert!(build(&[([0; 16], b"x")]).is_err());
    }
}
