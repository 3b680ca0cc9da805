//! RFC 8785 (JSON Canonicalization Scheme) for the JSON this client
//! hashes: objects, arrays, strings, booleans, null and integers within
//! +-2^53. The runtime data bound into the attestation report is hashed in
//! this form, by the client here and by the broker (Trustee uses the same
//! scheme), so both must produce the same bytes.
//!
//! The rules used (RFC 8785 §3.2): no whitespace; object members sorted by
//! their names as UTF-16 code units; strings escaped minimally (`\"`, `\\`,
//! `\b \f \n \r \t`, other controls as `\u00xx` in lower-case hex, and
//! nothing else — `/` and non-ASCII stay as UTF-8); integers in plain
//! decimal. Floating-point numbers are refused rather than serialized,
//! since ECMAScript number formatting is not needed for the runtime data.

use alloc::vec::Vec;

use serde_json::{Map, Value};

use super::KbsError;

/// Largest integer magnitude with one exact IEEE-754 double (2^53), the
/// limit within which an integer's canonical form is its plain decimal.
const MAX_SAFE_INTEGER: u64 = 1 << 53;

/// The canonical serialization of `value`.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, KbsError> {
    let mut out = Vec::new();
    write_value(&mut out, value)?;
    Ok(out)
}

fn write_value(out: &mut Vec<u8>, value: &Value) -> Result<(), KbsError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_integer(out, n)?,
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(out, map)?,
    }
    Ok(())
}

fn write_object(
    out: &mut Vec<u8>,
    map: &Map<alloc::string::String, Value>,
) -> Result<(), KbsError> {
    let mut members: Vec<(&alloc::string::String, &Value)> = map.iter().collect();
    members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    out.push(b'{');
    for (i, (name, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(out, name);
        out.push(b':');
        write_value(out, value)?;
    }
    out.push(b'}');
    Ok(())
}

fn write_integer(out: &mut Vec<u8>, n: &serde_json::Number) -> Result<(), KbsError> {
    use core::fmt::Write;
    let mut text = alloc::string::String::new();
    if let Some(u) = n.as_u64() {
        if u > MAX_SAFE_INTEGER {
            return Err(KbsError::NotCanonicalizable);
        }
        let _ = write!(text, "{u}");
    } else if let Some(i) = n.as_i64() {
        if i.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(KbsError::NotCanonicalizable);
        }
        let _ = write!(text, "{i}");
    } else {
        return Err(KbsError::NotCanonicalizable);
    }
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x00..=0x1f => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            // Every other byte, including each byte of a multi-byte UTF-8
            // sequence, is copied: the string is already valid UTF-8.
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha384};

    fn canon(json: &str) -> Vec<u8> {
        to_vec(&serde_json::from_str(json).unwrap()).unwrap()
    }

    /// RFC 8785 §3.2.2: the string and literals of the worked example, with
    /// the bytes of the string token from the §3.2.4 hex dump.
    #[test]
    fn rfc8785_string_and_literals() {
        let input = r#"{
            "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
            "literals": [null, true, false]
        }"#;
        let mut expected = Vec::new();
        expected.extend_from_slice(br#"{"literals":[null,true,false],"string":"#);
        expected.extend_from_slice(&[
            0x22, 0xe2, 0x82, 0xac, 0x24, 0x5c, 0x75, 0x30, 0x30, 0x30, 0x66, 0x5c, 0x6e, 0x41,
            0x27, 0x42, 0x5c, 0x22, 0x5c, 0x5c, 0x5c, 0x5c, 0x5c, 0x22, 0x2f, 0x22,
        ]);
        expected.push(b'}');
        assert_eq!(canon(input), expected);
    }

    /// RFC 8785 §3.2.3: members sorted by UTF-16 code units (the emoji,
    /// a surrogate pair, sorts before U+FB33 although its code point is
    /// larger).
    #[test]
    fn rfc8785_sorting() {
        let input = r#"{
            "\u20ac": "Euro Sign",
            "\r": "Carriage Return",
            "\ufb33": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\ud83d\ude00": "Emoji: Grinning Face",
            "\u0080": "Control",
            "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let expected = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
                        \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\
                        \"\u{20ac}\":\"Euro Sign\",\"\u{1f600}\":\"Emoji: Grinning Face\",\
                        \"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
        assert_eq!(canon(input), expected.as_bytes());
    }

    /// Trustee's attestation service test vector: SHA-384 of the canonical
    /// form of `{"b": 1, "a": "test", "c": {"d": "e"}}`.
    #[test]
    fn trustee_runtime_data_vector() {
        let bytes = canon(r#"{"b": 1, "a": "test", "c": {"d": "e"}}"#);
        assert_eq!(bytes, br#"{"a":"test","b":1,"c":{"d":"e"}}"#);
        let digest = Sha384::digest(&bytes);
        let hex: alloc::string::String = digest.iter().map(|b| alloc::format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "e71ce8e70d814ba6639c3612ebee0ff1f76f650f8dbb5e47157e0f3f525cd22c\
             4597480a186427c813ca941da78870c3"
        );
    }

    #[test]
    fn control_characters_and_integers() {
        assert_eq!(
            canon(r#"["\u0000\u001f\u007f\b\f\t", -5, 0, 9007199254740992]"#),
            b"[\"\\u0000\\u001f\x7f\\b\\f\\t\",-5,0,9007199254740992]"
        );
        for refused in ["1.5", "9007199254740993", "-9007199254740993", "1e3"] {
            let v: Value = serde_json::from_str(refused).unwrap();
            assert_eq!(to_vec(&v), Err(KbsError::NotCanonicalizable), "{refused}");
        }
    }
}
