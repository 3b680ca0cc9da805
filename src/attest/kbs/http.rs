//! HTTP as data: the requests the client wants sent and the responses it is
//! given, with the few header rules the protocol needs (the
//! `kbs-session-id` cookie, content types, error bodies). Whoever carries
//! them (the host relay) is a [`Transport`]; it sees everything here, which
//! is why nothing here is secret.

use alloc::string::String;
use alloc::vec::Vec;

use kbs_types::ErrorInformation;

use super::error::bounded;
use super::KbsError;

/// Name of the session cookie (Trustee's `KBS_SESSION_ID`).
pub const SESSION_COOKIE: &str = "kbs-session-id";
/// Longest session id accepted.
const MAX_SESSION_ID: usize = 128;
/// Largest response body accepted by any parser here.
pub const MAX_BODY: usize = 64 * 1024;

/// HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
}

impl Method {
    /// The method's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// A request to send to the broker. `path` starts with `/kbs/v0/` and may
/// carry a query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// Headers (name, value).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub(crate) fn new(method: Method, path: String) -> Self {
        Self {
            method,
            path,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub(crate) fn json(mut self, body: Vec<u8>) -> Self {
        self.headers
            .push(("Content-Type".into(), "application/json".into()));
        self.body = body;
        self
    }

    pub(crate) fn with_cookie(mut self, session: &SessionId) -> Self {
        let mut v = String::from(SESSION_COOKIE);
        v.push('=');
        v.push_str(&session.0);
        self.headers.push(("Cookie".into(), v));
        self
    }

    /// The first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }
}

/// A response from the broker, as the transport received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers (name, value), in order; names may repeat.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    /// The `kbs-session-id` cookie this response sets, if any.
    pub fn session_cookie(&self) -> Result<Option<SessionId>, KbsError> {
        for (name, value) in &self.headers {
            if !name.eq_ignore_ascii_case("set-cookie") {
                continue;
            }
            let pair = value.split(';').next().unwrap_or("").trim();
            let Some((k, v)) = pair.split_once('=') else {
                continue;
            };
            if k.trim() != SESSION_COOKIE {
                continue;
            }
            return SessionId::parse(v.trim()).map(Some);
        }
        Ok(None)
    }

    /// Turns a non-200 status into [`KbsError::Refused`], keeping the
    /// (bounded) `ErrorInformation` text when the body has one; checks the
    /// body size either way.
    pub fn expect_ok(&self) -> Result<&[u8], KbsError> {
        if self.body.len() > MAX_BODY {
            return Err(KbsError::TooLarge {
                what: "response body",
                len: self.body.len(),
                max: MAX_BODY,
            });
        }
        if self.status == 200 {
            return Ok(&self.body);
        }
        let (error_type, detail) = match serde_json::from_slice::<ErrorInformation>(&self.body) {
            Ok(info) => (bounded(&info.error_type), bounded(&info.detail)),
            Err(_) => (String::new(), String::new()),
        };
        Err(KbsError::Refused {
            status: self.status,
            error_type,
            detail,
        })
    }
}

fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The broker's session id (value of the `kbs-session-id` cookie): 1 to
/// 128 cookie-safe characters.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(String);

impl SessionId {
    /// Checks `value` is a cookie value this client will send back.
    pub fn parse(value: &str) -> Result<Self, KbsError> {
        let ok = !value.is_empty()
            && value.len() <= MAX_SESSION_ID
            && value
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b',' | b';' | b'\\'));
        if ok {
            Ok(Self(value.into()))
        } else {
            Err(KbsError::Malformed {
                what: "kbs-session-id cookie",
            })
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl core::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SessionId({})", self.0)
    }
}

/// Carries requests to the broker and brings back its responses (on svtpm:
/// through the host channel to the proxy; in tests: a socket).
pub trait Transport {
    /// Sends `request`, returns the broker's response.
    fn exchange(&mut self, request: &HttpRequest) -> Result<HttpResponse, KbsError>;
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn exchange(&mut self, request: &HttpRequest) -> Result<HttpResponse, KbsError> {
        (**self).exchange(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).into(), (*v).into()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn cookie_parsing() {
        let r = response(
            200,
            &[
                ("Set-Cookie", "other=1"),
                (
                    "set-cookie",
                    "kbs-session-id=0123abcd; Expires=Wed, 21 Oct 2026 07:28:00 GMT",
                ),
            ],
            "",
        );
        assert_eq!(r.session_cookie().unwrap().unwrap().as_str(), "0123abcd");
        assert_eq!(response(200, &[], "").session_cookie().unwrap(), None);
        for bad in [
            "kbs-session-id=",
            "kbs-session-id=a b",
            "kbs-session-id=\"x\"",
        ] {
            assert!(response(200, &[("Set-Cookie", bad)], "")
                .session_cookie()
                .is_err());
        }
        let long = alloc::format!("kbs-session-id={}", "a".repeat(129));
        assert!(response(200, &[("Set-Cookie", &long)], "")
            .session_cookie()
            .is_err());
    }

    #[test]
    fn refusals_keep_bounded_error_text() {
        let r = response(
            401,
            &[],
            r#"{"type":"https://github.com/confidential-containers/kbs/errors/AttestationError","detail":"vmpl 1 is not 0"}"#,
        );
        match r.expect_ok().unwrap_err() {
            KbsError::Refused {
                status,
                error_type,
                detail,
            } => {
                assert_eq!(status, 401);
                assert!(error_type.ends_with("/AttestationError"));
                assert_eq!(detail, "vmpl 1 is not 0");
            }
            e => panic!("{e:?}"),
        }
        let long = alloc::format!(r#"{{"type":"t","detail":"{}"}}"#, "é".repeat(300));
        match response(403, &[], &long).expect_ok().unwrap_err() {
            KbsError::Refused { detail, .. } => assert!(detail.len() <= 256),
            e => panic!("{e:?}"),
        }
        assert_eq!(
            response(404, &[], "not json").expect_ok().unwrap_err(),
            KbsError::Refused {
                status: 404,
                error_type: String::new(),
                detail: String::new()
            }
        );
        assert_eq!(response(200, &[], "ok").expect_ok().unwrap(), b"ok");
    }
}
