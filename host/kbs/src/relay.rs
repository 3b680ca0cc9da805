//! A plain HTTP/1.1 client that carries svtpm's KBS requests to a broker:
//! one connection per exchange (`Connection: close`), `Content-Length`
//! bodies, bounded responses. It implements svtpm's
//! [`Transport`](svtpm::attest::kbs::Transport), so host tests and
//! development tools can run the guest-side client against a broker; the
//! host proxy relays the same requests for the real svtpm. No TLS: for a
//! remote (real Trustee) broker the proxy terminates HTTPS.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use svtpm::attest::kbs::{HttpRequest, HttpResponse, KbsError, Transport};

/// Largest response accepted (headers and body).
const MAX_RESPONSE: usize = 1 << 20;

/// The relay to one broker address.
#[derive(Debug, Clone)]
pub struct HttpRelay {
    addr: SocketAddr,
    timeout: Duration,
}

impl HttpRelay {
    /// A relay to `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            timeout: Duration::from_secs(10),
        }
    }

    fn exchange_io(&self, request: &HttpRequest) -> std::io::Result<HttpResponse> {
        let mut stream = TcpStream::connect_timeout(&self.addr, self.timeout)?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            request.method.as_str(),
            request.path,
            self.addr,
            request.body.len()
        );
        for (name, value) in &request.headers {
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(&request.body)?;
        stream.flush()?;
        read_response(BufReader::new(stream.take(MAX_RESPONSE as u64)))
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

/// Parses an HTTP/1.1 response (status line, headers, body by
/// `Content-Length` or to the end).
pub fn read_response(mut r: impl BufRead) -> std::io::Result<HttpResponse> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let status = match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => code
            .parse::<u16>()
            .map_err(|_| invalid("bad status code"))?,
        _ => return Err(invalid("bad status line")),
    };
    let mut headers = Vec::new();
    let mut length = None;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(invalid("headers cut short"));
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let (name, value) = l.split_once(':').ok_or_else(|| invalid("bad header"))?;
        let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| invalid("bad length"))?);
        }
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid("transfer encodings are not supported"));
        }
        headers.push((name, value));
    }
    let mut body = Vec::new();
    match length {
        Some(n) if n > MAX_RESPONSE => return Err(invalid("body too large")),
        Some(n) => {
            body.resize(n, 0);
            r.read_exact(&mut body)?;
        }
        None => {
            r.read_to_end(&mut body)?;
        }
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

impl Transport for HttpRelay {
    fn exchange(&mut self, request: &HttpRequest) -> Result<HttpResponse, KbsError> {
        self.exchange_io(request).map_err(|e| {
            log::warn!("relay to {}: {e}", self.addr);
            KbsError::Transport {
                reason: "HTTP exchange with the broker failed",
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_responses() {
        let raw = b"HTTP/1.1 401 Unauthorized\r\nSet-Cookie: kbs-session-id=x\r\n\
                    Content-Length: 4\r\n\r\nbodyEXTRA";
        let r = read_response(&raw[..]).unwrap();
        assert_eq!(r.status, 401);
        assert_eq!(r.header("set-cookie"), Some("kbs-session-id=x"));
        assert_eq!(r.body, b"body");
        assert!(read_response(&b"SMTP 200\r\n\r\n"[..]).is_err());
        assert!(read_response(&b"HTTP/1.1 200 OK\r\nX: y\r\n"[..]).is_err());
        assert!(read_response(&b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab"[..]).is_err());
    }
}
