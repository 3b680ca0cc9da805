//! The HTTP message encoding carried by `HTTP` requests, used by both
//! ends: the guest encodes [`HttpRequest`]s and decodes [`HttpResponse`]s,
//! the proxy the reverse. All integers little-endian, strings UTF-8:
//!
//! ```text
//! request  = u8 method, u16 path_len, path, u16 header_count,
//!            { u16 name_len, name, u16 value_len, value }*, u32 body_len, body
//! response = u16 status, u16 header_count, headers as above, u32 body_len, body
//! ```
//!
//! Paths start with `/kbs/v0/` and are at most [`MAX_PATH`] bytes; at most
//! [`MAX_HEADERS`] headers, names 1..=[`MAX_NAME`] bytes, values at most
//! [`MAX_VALUE`] bytes; no control characters in a path, name or value (so
//! nothing can smuggle a header line); no trailing bytes. The same rules
//! apply when encoding, so neither end produces what the other refuses.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::attest::kbs::{HttpRequest, HttpResponse, Method};

/// Every request path starts with this.
pub const PATH_PREFIX: &str = "/kbs/v0/";
/// Longest path (with query).
pub const MAX_PATH: usize = 1024;
/// Most headers in one message.
pub const MAX_HEADERS: usize = 32;
/// Longest header name.
pub const MAX_NAME: usize = 256;
/// Longest header value.
pub const MAX_VALUE: usize = 4096;

/// Why a message could not be encoded or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecError {
    /// The bytes end inside the named field.
    Truncated {
        /// The field.
        field: &'static str,
    },
    /// Bytes follow the body.
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A method code this encoding does not define.
    UnknownMethod(u8),
    /// The path does not start with `/kbs/v0/`.
    PathPrefix,
    /// The path is longer than [`MAX_PATH`].
    PathTooLong {
        /// Its length.
        len: usize,
    },
    /// More than [`MAX_HEADERS`] headers.
    TooManyHeaders {
        /// The count.
        count: usize,
    },
    /// A header name is empty or longer than [`MAX_NAME`].
    NameLength {
        /// Its length.
        len: usize,
    },
    /// A header value is longer than [`MAX_VALUE`].
    ValueTooLong {
        /// Its length.
        len: usize,
    },
    /// The body does not fit the u32 length field.
    BodyTooLong {
        /// Its length.
        len: usize,
    },
    /// The named field is not UTF-8.
    NotUtf8 {
        /// The field.
        field: &'static str,
    },
    /// The named field holds a control character (or a space in a path, a
    /// separator in a name).
    BadCharacter {
        /// The field.
        field: &'static str,
    },
}

impl CodecError {
    /// A fixed description of the error (for error types that only carry
    /// static text).
    pub fn reason(&self) -> &'static str {
        match self {
            CodecError::Truncated { .. } => "HTTP message over the host channel is truncated",
            CodecError::TrailingBytes { .. } => {
                "HTTP message over the host channel has trailing bytes"
            }
            CodecError::UnknownMethod(_) => "HTTP method code over the host channel is unknown",
            CodecError::PathPrefix => "HTTP path over the host channel is not under /kbs/v0/",
            CodecError::PathTooLong { .. } => "HTTP path over the host channel is too long",
            CodecError::TooManyHeaders { .. } => {
                "HTTP message over the host channel has too many headers"
            }
            CodecError::NameLength { .. } => {
                "HTTP header name over the host channel is empty or too long"
            }
            CodecError::ValueTooLong { .. } => {
                "HTTP header value over the host channel is too long"
            }
            CodecError::BodyTooLong { .. } => "HTTP body is too long for the host channel",
            CodecError::NotUtf8 { .. } => "HTTP text over the host channel is not UTF-8",
            CodecError::BadCharacter { .. } => {
                "HTTP text over the host channel holds a forbidden character"
            }
        }
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Truncated { field } => write!(f, "HTTP message truncated in {field}"),
            CodecError::TrailingBytes { count } => {
                write!(f, "{count} bytes after the HTTP message body")
            }
            CodecError::UnknownMethod(m) => write!(f, "unknown HTTP method code {m}"),
            CodecError::PathPrefix => write!(f, "HTTP path does not start with {PATH_PREFIX}"),
            CodecError::PathTooLong { len } => {
                write!(f, "HTTP path of {len} bytes exceeds {MAX_PATH}")
            }
            CodecError::TooManyHeaders { count } => {
                write!(f, "{count} HTTP headers exceed {MAX_HEADERS}")
            }
            CodecError::NameLength { len } => {
                write!(f, "HTTP header name of {len} bytes is not 1..={MAX_NAME}")
            }
            CodecError::ValueTooLong { len } => {
                write!(f, "HTTP header value of {len} bytes exceeds {MAX_VALUE}")
            }
            CodecError::BodyTooLong { len } => {
                write!(f, "HTTP body of {len} bytes does not fit a u32 length")
            }
            CodecError::NotUtf8 { field } => write!(f, "HTTP {field} is not UTF-8"),
            CodecError::BadCharacter { field } => {
                write!(f, "HTTP {field} holds a forbidden character")
            }
        }
    }
}

impl core::error::Error for CodecError {}

/// The method's code on the wire.
pub fn method_code(m: Method) -> u8 {
    match m {
        Method::Get => 0,
        Method::Post => 1,
    }
}

/// The method with wire code `code`.
pub fn method_from_code(code: u8) -> Result<Method, CodecError> {
    match code {
        0 => Ok(Method::Get),
        1 => Ok(Method::Post),
        other => Err(CodecError::UnknownMethod(other)),
    }
}

fn is_control(c: char) -> bool {
    c.is_ascii_control()
}

fn check_path(path: &str) -> Result<(), CodecError> {
    if path.len() > MAX_PATH {
        return Err(CodecError::PathTooLong { len: path.len() });
    }
    if !path.starts_with(PATH_PREFIX) {
        return Err(CodecError::PathPrefix);
    }
    if path.chars().any(|c| is_control(c) || c == ' ') {
        return Err(CodecError::BadCharacter { field: "path" });
    }
    Ok(())
}

fn check_header(name: &str, value: &str) -> Result<(), CodecError> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(CodecError::NameLength { len: name.len() });
    }
    if value.len() > MAX_VALUE {
        return Err(CodecError::ValueTooLong { len: value.len() });
    }
    if name.chars().any(|c| is_control(c) || c == ' ' || c == ':') {
        return Err(CodecError::BadCharacter {
            field: "header name",
        });
    }
    if value.chars().any(|c| is_control(c) && c != '\t') {
        return Err(CodecError::BadCharacter {
            field: "header value",
        });
    }
    Ok(())
}

fn put_u16(out: &mut Vec<u8>, v: usize) {
    // Callers checked the limits (all far below u16::MAX).
    out.extend_from_slice(&(v as u16).to_le_bytes());
}

fn put_headers(out: &mut Vec<u8>, headers: &[(String, String)]) -> Result<(), CodecError> {
    if headers.len() > MAX_HEADERS {
        return Err(CodecError::TooManyHeaders {
            count: headers.len(),
        });
    }
    put_u16(out, headers.len());
    for (name, value) in headers {
        check_header(name, value)?;
        put_u16(out, name.len());
        out.extend_from_slice(name.as_bytes());
        put_u16(out, value.len());
        out.extend_from_slice(value.as_bytes());
    }
    Ok(())
}

fn put_body(out: &mut Vec<u8>, body: &[u8]) -> Result<(), CodecError> {
    let len = u32::try_from(body.len()).map_err(|_| CodecError::BodyTooLong { len: body.len() })?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
    Ok(())
}

/// Encodes a request (refusing anything [`decode_request`] would refuse).
pub fn encode_request(req: &HttpRequest) -> Result<Vec<u8>, CodecError> {
    check_path(&req.path)?;
    let mut out = Vec::with_capacity(16 + req.path.len() + req.body.len());
    out.push(method_code(req.method));
    put_u16(&mut out, req.path.len());
    out.extend_from_slice(req.path.as_bytes());
    put_headers(&mut out, &req.headers)?;
    put_body(&mut out, &req.body)?;
    Ok(out)
}

/// Encodes a response (refusing anything [`decode_response`] would refuse).
pub fn encode_response(resp: &HttpResponse) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(16 + resp.body.len());
    out.extend_from_slice(&resp.status.to_le_bytes());
    put_headers(&mut out, &resp.headers)?;
    put_body(&mut out, &resp.body)?;
    Ok(out)
}

/// A cursor over untrusted bytes: every read is bounds-checked.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], CodecError> {
        if n > self.rest.len() {
            return Err(CodecError::Truncated { field });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, CodecError> {
        Ok(self.take(1, field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<usize, CodecError> {
        let b = self.take(2, field)?;
        Ok(usize::from(u16::from_le_bytes([b[0], b[1]])))
    }

    fn u32(&mut self, field: &'static str) -> Result<usize, CodecError> {
        let b = self.take(4, field)?;
        let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        // A length beyond the address space cannot be satisfied anyway.
        Ok(usize::try_from(v).unwrap_or(usize::MAX))
    }

    fn text(&mut self, n: usize, field: &'static str) -> Result<String, CodecError> {
        let b = self.take(n, field)?;
        core::str::from_utf8(b)
            .map(String::from)
            .map_err(|_| CodecError::NotUtf8 { field })
    }

    fn headers(&mut self) -> Result<Vec<(String, String)>, CodecError> {
        let count = self.u16("header count")?;
        if count > MAX_HEADERS {
            return Err(CodecError::TooManyHeaders { count });
        }
        let mut headers = Vec::with_capacity(count);
        for _ in 0..count {
            let n = self.u16("header name length")?;
            if n == 0 || n > MAX_NAME {
                return Err(CodecError::NameLength { len: n });
            }
            let name = self.text(n, "header name")?;
            let v = self.u16("header value length")?;
            if v > MAX_VALUE {
                return Err(CodecError::ValueTooLong { len: v });
            }
            let value = self.text(v, "header value")?;
            check_header(&name, &value)?;
            headers.push((name, value));
        }
        Ok(headers)
    }

    fn body(&mut self) -> Result<Vec<u8>, CodecError> {
        let n = self.u32("body length")?;
        let body = self.take(n, "body")?.to_vec();
        if !self.rest.is_empty() {
            return Err(CodecError::TrailingBytes {
                count: self.rest.len(),
            });
        }
        Ok(body)
    }
}

/// Decodes a request; refuses anything outside the encoding's rules.
pub fn decode_request(bytes: &[u8]) -> Result<HttpRequest, CodecError> {
    let mut r = Reader { rest: bytes };
    let method = method_from_code(r.u8("method")?)?;
    let n = r.u16("path length")?;
    if n > MAX_PATH {
        return Err(CodecError::PathTooLong { len: n });
    }
    let path = r.text(n, "path")?;
    check_path(&path)?;
    let headers = r.headers()?;
    let body = r.body()?;
    Ok(HttpRequest {
        method,
        path,
        headers,
        body,
    })
}

/// Decodes a response; refuses anything outside the encoding's rules.
pub fn decode_response(bytes: &[u8]) -> Result<HttpResponse, CodecError> {
    let mut r = Reader { rest: bytes };
    let status = r.take(2, "status")?;
    let status = u16::from_le_bytes([status[0], status[1]]);
    let headers = r.headers()?;
    let body = r.body()?;
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}
