//! Base64url without padding (RFC 7515 §2), the encoding of every binary
//! member in JWK, JWE and JWT. Decoding is strict (no padding, no stray
//! bits, no whitespace) and bounded, so one input has one meaning.

use alloc::string::String;
use alloc::vec::Vec;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::KbsError;

/// Encodes `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes `text`, refusing it if it is not canonical base64url or would
/// decode to more than `max` bytes. `what` names the member for the error.
pub fn decode(text: &str, max: usize, what: &'static str) -> Result<Vec<u8>, KbsError> {
    // 4 characters carry 3 bytes; check before allocating.
    let len = text.len() / 4 * 3 + (text.len() % 4).saturating_sub(1);
    if len > max {
        return Err(KbsError::TooLarge { what, len, max });
    }
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| KbsError::Malformed { what })
}

/// Decodes `text` into exactly `N` bytes.
pub fn decode_array<const N: usize>(text: &str, what: &'static str) -> Result<[u8; N], KbsError> {
    let v = decode(text, N, what)?;
    v.try_into().map_err(|_| KbsError::Malformed { what })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        assert_eq!(encode(b"Alice"), "QWxpY2U");
        assert_eq!(decode("QWxpY2U", 16, "x").unwrap(), b"Alice");
        // Padding, standard alphabet, whitespace and non-zero trailing bits
        // are all refused.
        for bad in ["QWxpY2U=", "QWxp+2U", "QWxp Y2U", "QWxpY2V"] {
            assert_eq!(
                decode(bad, 16, "x"),
                Err(KbsError::Malformed { what: "x" }),
                "{bad}"
            );
        }
        assert_eq!(
            decode("QWxpY2U", 4, "x"),
            Err(KbsError::TooLarge {
                what: "x",
                len: 5,
                max: 4
            })
        );
        assert_eq!(decode_array::<5>("QWxpY2U", "x").unwrap(), *b"Alice");
        assert!(decode_array::<6>("QWxpY2U", "x").is_err());
    }
}
