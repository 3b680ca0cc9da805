//! Relaying the image's key broker requests: the `--kbs` base URL, the
//! path rules, and one HTTP/1.1 exchange per request (`Connection: close`,
//! `Content-Length` bodies, bounded responses whose head `httparse`
//! parses; chunked transfer encoding is refused).
//!
//! Only `http://` is spoken. The image's KBS protocol is end-to-end
//! protected where it matters (the report binds the session, the key
//! comes back encrypted to the image's ephemeral key), so plain HTTP on a
//! loopback or a TLS-terminating front in front of a remote Trustee KBS is
//! what the proxy needs; see `docs/proxy.md`.
//!
//! The proxy sets `Host`, `Connection` and `Content-Length` itself and
//! drops any the image sent, and refuses paths that could leave
//! `/kbs/v0/` (dot segments, encoded dots or slashes, fragments).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use svtpm::attest::kbs::{HttpRequest, HttpResponse};
use svtpm::hostchan::http::{MAX_HEADERS, MAX_NAME, MAX_VALUE, PATH_PREFIX};

/// Largest response accepted from the broker (headers and body).
pub const MAX_RESPONSE: usize = 1 << 20;

/// Headers the proxy owns on the way up, and does not pass back down.
const HOP_BY_HOP: [&str; 6] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "upgrade",
];

/// Why a request was not relayed.
#[derive(Debug)]
pub enum RelayError {
    /// The path is not one the proxy relays (answered BAD_REQUEST).
    Path(&'static str),
    /// The broker could not be reached or gave no usable answer (answered
    /// UPSTREAM_UNAVAILABLE).
    Unavailable(String),
}

impl fmt::Display for RelayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(why) => write!(f, "path refused: {why}"),
            Self::Unavailable(why) => write!(f, "broker unavailable: {why}"),
        }
    }
}

impl std::error::Error for RelayError {}

/// The broker's base URL, `http://HOST[:PORT][/PREFIX]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KbsUrl {
    host: String,
    port: u16,
    prefix: String,
}

impl KbsUrl {
    /// Parses a base URL. The image's paths (`/kbs/v0/...`) are appended
    /// to `PREFIX` (without its trailing slash).
    pub fn parse(url: &str) -> Result<KbsUrl, String> {
        let rest = match url.split_once("://") {
            Some(("http", rest)) => rest,
            Some(("https", _)) => {
                return Err(format!(
                    "{url}: https is not spoken by the proxy; put a TLS-terminating \
                     front (e.g. a local reverse proxy) before the broker and give its \
                     http:// address"
                ))
            }
            _ => return Err(format!("{url}: not an http:// URL")),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("{url}: no host, or credentials in the URL"));
        }
        if path.contains(['?', '#']) {
            return Err(format!("{url}: a base URL has no query or fragment"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            // "[v6]" alone: the colons are the address's.
            Some(_) if authority.ends_with(']') => (authority, 80),
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("{url}: bad port {p:?}"))?,
            ),
            None => (authority, 80),
        };
        if host.is_empty() {
            return Err(format!("{url}: no host"));
        }
        Ok(KbsUrl {
            host: host.to_string(),
            port,
            prefix: path.trim_end_matches('/').to_string(),
        })
    }

    /// `HOST:PORT` for the `Host` header and for resolving.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The path sent upstream for the image's `path`.
    pub fn upstream_path(&self, path: &str) -> String {
        format!("{}{}", self.prefix, path)
    }

    fn resolve(&self) -> Result<Vec<SocketAddr>, RelayError> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        (host, self.port)
            .to_socket_addrs()
            .map(|a| a.collect())
            .map_err(|e| RelayError::Unavailable(format!("resolving {}: {e}", self.host)))
    }
}

impl fmt::Display for KbsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.prefix)
    }
}

/// Checks that `path` stays under `/kbs/v0/`.
pub fn check_path(path: &str) -> Result<(), RelayError> {
    if !path.starts_with(PATH_PREFIX) {
        return Err(RelayError::Path("not under /kbs/v0/"));
    }
    if path.contains('#') {
        return Err(RelayError::Path("holds a fragment"));
    }
    let before_query = path.split('?').next().unwrap_or_default();
    let lower = before_query.to_ascii_lowercase();
    if lower.contains("%2e") || lower.contains("%2f") || lower.contains("%5c") {
        return Err(RelayError::Path("holds an encoded dot or slash"));
    }
    if before_query.contains('\\') {
        return Err(RelayError::Path("holds a backslash"));
    }
    if before_query.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(RelayError::Path("holds a dot segment"));
    }
    Ok(())
}

/// The relay to one broker.
#[derive(Debug, Clone)]
pub struct Relay {
    url: KbsUrl,
    connect_timeout: Duration,
    io_timeout: Duration,
}

impl Relay {
    /// A relay to `url` with 3 s to connect and 10 s per read or write
    /// (the image waits 15 s per request by default).
    pub fn new(url: KbsUrl) -> Relay {
        Relay {
            url,
            connect_timeout: Duration::from_secs(3),
            io_timeout: Duration::from_secs(10),
        }
    }

    /// The broker's URL.
    pub fn url(&self) -> &KbsUrl {
        &self.url
    }

    /// Whether a TCP connection to the broker can be made now (for the
    /// start-up log line).
    pub fn probe(&self) -> Result<(), RelayError> {
        self.connect().map(drop)
    }

    fn connect(&self) -> Result<TcpStream, RelayError> {
        let mut last = None;
        for addr in self.url.resolve()? {
            match TcpStream::connect_timeout(&addr, self.connect_timeout) {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(format!("connecting to {addr}: {e}")),
            }
        }
        Err(RelayError::Unavailable(last.unwrap_or_else(|| {
            format!("{} resolves to no address", self.url.host)
        })))
    }

    /// Sends `request` to the broker and returns its answer, with the
    /// headers the image may see (hop-by-hop ones dropped, at most the
    /// codec's limits).
    pub fn forward(&self, request: &HttpRequest) -> Result<HttpResponse, RelayError> {
        check_path(&request.path)?;
        let mut stream = self.connect()?;
        let unavailable = |what: &str| {
            let what = what.to_string();
            move |e: std::io::Error| RelayError::Unavailable(format!("{what}: {e}"))
        };
        stream
            .set_read_timeout(Some(self.io_timeout))
            .and_then(|()| stream.set_write_timeout(Some(self.io_timeout)))
            .map_err(unavailable("setting timeouts"))?;
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            request.method.as_str(),
            self.url.upstream_path(&request.path),
            self.url.authority(),
            request.body.len()
        );
        for (name, value) in &request.headers {
            if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
                continue;
            }
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(&request.body))
            .and_then(|()| stream.flush())
            .map_err(unavailable("sending the request"))?;
        let mut response = read_response(stream).map_err(unavailable("reading the response"))?;
        response.headers = downstream_headers(response.headers);
        Ok(response)
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Reads one HTTP/1.x response: the head (at most 64 headers), then a
/// body of `Content-Length` bytes, or to the end of the stream without
/// one. At most [`MAX_RESPONSE`] bytes in all.
pub fn read_response(stream: impl Read) -> io::Result<HttpResponse> {
    let mut r = stream.take(MAX_RESPONSE as u64 + 1);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_len, status, headers, length) = loop {
        let n = r.read(&mut chunk)?;
        if n == 0 {
            return Err(invalid("the connection closed inside the response head"));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let mut head = httparse::Response::new(&mut slots);
        match head.parse(&buf) {
            Ok(httparse::Status::Partial) => continue,
            Err(e) => return Err(invalid(&format!("bad response head: {e}"))),
            Ok(httparse::Status::Complete(len)) => {
                let status = head.code.ok_or_else(|| invalid("no status code"))?;
                let mut headers = Vec::new();
                let mut length = None;
                for h in head.headers.iter() {
                    let value = std::str::from_utf8(h.value)
                        .map_err(|_| invalid("a header value is not UTF-8"))?
                        .trim()
                        .to_string();
                    if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        return Err(invalid("transfer encodings are not supported"));
                    }
                    if h.name.eq_ignore_ascii_case("content-length") {
                        let n = value
                            .parse::<usize>()
                            .map_err(|_| invalid("bad Content-Length"))?;
                        if length.is_some_and(|l| l != n) {
                            return Err(invalid("conflicting Content-Length headers"));
                        }
                        length = Some(n);
                    }
                    headers.push((h.name.to_string(), value));
                }
                break (len, status, headers, length);
            }
        }
    };
    let mut body = buf.split_off(head_len);
    match length {
        Some(n) if head_len + n > MAX_RESPONSE => return Err(invalid("response too large")),
        Some(n) => {
            if body.len() > n {
                return Err(invalid("bytes after the response body"));
            }
            let missing = n - body.len();
            let start = body.len();
            body.resize(n, 0);
            r.read_exact(&mut body[start..start + missing])?;
        }
        None => {
            r.read_to_end(&mut body)?;
            if head_len + body.len() > MAX_RESPONSE {
                return Err(invalid("response too large"));
            }
        }
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// The broker's headers the image gets: not hop-by-hop, within the
/// channel codec's limits (others are dropped), at most [`MAX_HEADERS`].
fn downstream_headers(headers: Vec<(String, String)>) -> Vec<(String, String)> {
    headers
        .into_iter()
        .filter(|(n, v)| {
            !HOP_BY_HOP.iter().any(|h| n.eq_ignore_ascii_case(h))
                && !n.is_empty()
                && n.len() <= MAX_NAME
                && v.len() <= MAX_VALUE
                && !n
                    .chars()
                    .any(|c| c.is_ascii_control() || c == ' ' || c == ':')
                && !v.chars().any(|c| c.is_ascii_control() && c != '\t')
        })
        .take(MAX_HEADERS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use svtpm::attest::kbs::Method;

    #[test]
    fn urls() {
        let u = KbsUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(u.authority(), "127.0.0.1:8080");
        assert_eq!(u.upstream_path("/kbs/v0/auth"), "/kbs/v0/auth");
        let u = KbsUrl::parse("http://kbs.example/tenant-a/").unwrap();
        assert_eq!(u.authority(), "kbs.example:80");
        assert_eq!(u.upstream_path("/kbs/v0/auth"), "/tenant-a/kbs/v0/auth");
        assert_eq!(u.to_string(), "http://kbs.example:80/tenant-a");
        let u = KbsUrl::parse("http://[::1]:9000").unwrap();
        assert_eq!(u.authority(), "[::1]:9000");
        assert_eq!(
            KbsUrl::parse("http://[::1]").unwrap().authority(),
            "[::1]:80"
        );
        for bad in [
            "https://kbs",
            "ftp://x",
            "127.0.0.1:8080",
            "http://",
            "http://u:p@host",
            "http://host:99999",
            "http://host/?q",
        ] {
            assert!(KbsUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(KbsUrl::parse("https://kbs")
            .unwrap_err()
            .contains("TLS-terminating"));
    }

    #[test]
    fn paths_stay_under_the_prefix() {
        for good in [
            "/kbs/v0/auth",
            "/kbs/v0/resource/r/t/tag",
            "/kbs/v0/resource/a/b/c?x=..",
        ] {
            check_path(good).unwrap();
        }
        for bad in [
            "/admin",
            "/kbs/v0/../admin",
            "/kbs/v0/./auth",
            "/kbs/v0/%2e%2E/x",
            "/kbs/v0/a%2Fb",
            "/kbs/v0/a\\..\\b",
            "/kbs/v0/auth#x",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }

    /// A one-shot server: returns the request head and body it got, and
    /// answers `answer`.
    fn one_shot(answer: &'static [u8]) -> (u16, std::thread::JoinHandle<(String, Vec<u8>)>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut r = BufReader::new(s);
            let mut head = String::new();
            let mut len = 0;
            loop {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            r.get_mut().write_all(answer).unwrap();
            (head, body)
        });
        (port, t)
    }

    #[test]
    fn parses_responses() {
        let r = read_response(
            &b"HTTP/1.1 401 Unauthorized\r\nSet-Cookie: kbs-session-id=x\r\n\
               Content-Length: 4\r\n\r\nbody"[..],
        )
        .unwrap();
        assert_eq!(r.status, 401);
        assert_eq!(r.header("set-cookie"), Some("kbs-session-id=x"));
        assert_eq!(r.body, b"body");
        let r = read_response(&b"HTTP/1.0 200 OK\r\n\r\nto the end"[..]).unwrap();
        assert_eq!(r.body, b"to the end");
        for bad in [
            &b"SMTP 200\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nX: y\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
        ] {
            assert!(
                read_response(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut big = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        big.resize(MAX_RESPONSE + 10, b'x');
        assert!(read_response(&big[..]).is_err());
    }

    #[test]
    fn forwards_and_filters_headers() {
        let (port, t) = one_shot(
            b"HTTP/1.1 200 OK\r\nSet-Cookie: kbs-session-id=abc\r\nConnection: close\r\n\
              Content-Length: 2\r\n\r\n{}",
        );
        let relay = Relay::new(KbsUrl::parse(&format!("http://127.0.0.1:{port}/pre")).unwrap());
        let req = HttpRequest {
            method: Method::Post,
            path: "/kbs/v0/auth".into(),
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("Host".into(), "evil".into()),
                ("Content-Length".into(), "999".into()),
            ],
            body: b"{\"a\":1}".to_vec(),
        };
        let resp = relay.forward(&req).unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"{}");
        assert_eq!(
            resp.headers,
            vec![("Set-Cookie".to_string(), "kbs-session-id=abc".to_string())]
        );
        let (head, body) = t.join().unwrap();
        assert!(
            head.starts_with("POST /pre/kbs/v0/auth HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(head.contains(&format!("Host: 127.0.0.1:{port}\r\n")));
        assert!(head.contains("Content-Length: 7\r\n"));
        assert!(!head.contains("evil") && !head.contains("999"));
        assert_eq!(body, b"{\"a\":1}");
    }

    #[test]
    fn unreachable_and_garbage_are_unavailable() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let relay = Relay::new(KbsUrl::parse(&format!("http://127.0.0.1:{port}")).unwrap());
        let req = HttpRequest {
            method: Method::Get,
            path: "/kbs/v0/auth".into(),
            headers: vec![],
            body: vec![],
        };
        assert!(matches!(
            relay.forward(&req),
            Err(RelayError::Unavailable(_))
        ));
        assert!(relay.probe().is_err());
        let (port, t) = one_shot(b"SMTP ready\r\n");
        let relay = Relay::new(KbsUrl::parse(&format!("http://127.0.0.1:{port}")).unwrap());
        assert!(matches!(
            relay.forward(&req),
            Err(RelayError::Unavailable(_))
        ));
        t.join().unwrap();
        let bad = HttpRequest {
            path: "/kbs/v0/../x".into(),
            ..req
        };
        assert!(matches!(relay.forward(&bad), Err(RelayError::Path(_))));
    }
}
