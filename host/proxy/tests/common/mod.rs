//! Test fixture: a generated PSP chain and secrets page, a small image
//! ELF, the `svtpm-proxy` binary started on a temporary channel file, the
//! guest's end of the channel over the test's own mapping of that file,
//! and a tiny HTTP server standing in for the key broker (it records what
//! it receives).

// The guest's view of the channel file is a second shared mapping, as
// QEMU has; MemRegion needs its address.
#![allow(unsafe_code)]
#![allow(dead_code)]

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use memmap2::MmapMut;
use svtpm::attest::snp::SecretsPage;
use svtpm::hostchan::{Channel, HostchanError, MemRegion};
use svtpm_psp_sim::secrets::{self, SvsmFields};
use svtpm_psp_sim::{ChipIdentity, TestChain};
use zerocopy::IntoBytes;

/// The chain, generated once per test binary (two RSA-4096 keys).
pub fn chain() -> &'static TestChain {
    static C: OnceLock<TestChain> = OnceLock::new();
    C.get_or_init(|| TestChain::generate(&ChipIdentity::random()).unwrap())
}

/// A small image: one PT_LOAD of 0x1800 file bytes and 0x4000 bytes of
/// memory at 4 GiB, like the svtpm image's main segments.
pub fn image_elf() -> Vec<u8> {
    let data: Vec<u8> = (0..0x1800u32).map(|i| (i * 13 % 256) as u8).collect();
    let paddr: u64 = 0x1_0000_0000;
    let mut out = Vec::new();
    out.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&62u16.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&paddr.to_le_bytes());
    out.extend_from_slice(&64u64.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&64u16.to_le_bytes());
    out.extend_from_slice(&56u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&[0; 6]);
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&7u32.to_le_bytes());
    out.extend_from_slice(&0x1000u64.to_le_bytes());
    out.extend_from_slice(&paddr.to_le_bytes());
    out.extend_from_slice(&paddr.to_le_bytes());
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(&0x4000u64.to_le_bytes());
    out.extend_from_slice(&0x1000u64.to_le_bytes());
    out.resize(0x1000, 0);
    out.extend_from_slice(&data);
    out
}

/// Files for one proxy: chain, secrets page, image, state dir, channel.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub channel: PathBuf,
    pub state: PathBuf,
    pub chain_dir: PathBuf,
    pub secrets: PathBuf,
    pub image: PathBuf,
    pub page: SecretsPage,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let chain_dir = d.join("chain");
        chain().write(&chain_dir).unwrap();
        let page = secrets::generate(&SvsmFields {
            base: 0x1_0000_0000,
            size: 0x160_0000,
            caa: 0,
            max_version: 1,
            guest_vmpl: 2,
        });
        let secrets = d.join("secrets.bin");
        std::fs::write(&secrets, page.as_bytes()).unwrap();
        let image = d.join("svtpm.elf");
        std::fs::write(&image, image_elf()).unwrap();
        Env {
            channel: d.join("chan"),
            state: d.join("state"),
            chain_dir,
            secrets,
            image,
            page,
            dir,
        }
    }

    /// The proxy's arguments for broker `kbs`.
    pub fn args(&self, kbs: &str) -> Vec<String> {
        let p = |p: &Path| p.display().to_string();
        vec![
            "--channel".into(),
            p(&self.channel),
            "--state-dir".into(),
            p(&self.state),
            "--kbs".into(),
            kbs.into(),
            "--psp-chain".into(),
            p(&self.chain_dir),
            "--secrets".into(),
            p(&self.secrets),
            "--image".into(),
            p(&self.image),
        ]
    }
}

/// A running `svtpm-proxy`.
pub struct Proxy {
    child: Child,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// How a proxy that did not come up ended.
#[derive(Debug)]
pub struct Failed {
    pub status: ExitStatus,
    pub stderr: String,
}

impl Proxy {
    /// Starts the proxy with `args` and waits for its ready line.
    pub fn start(args: &[String]) -> Proxy {
        Self::try_start(args).unwrap_or_else(|f| panic!("proxy did not start: {f:?}"))
    }

    /// Starts the proxy; `Err` if it exits before saying it serves.
    pub fn try_start(args: &[String]) -> Result<Proxy, Failed> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_svtpm-proxy"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let sink = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            let mut line = String::new();
            while err.read_line(&mut line).unwrap_or(0) > 0 {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        if !line.starts_with("svtpm-proxy: serving ") {
            let status = child.wait().unwrap();
            reader.join().unwrap();
            let stderr = log.lock().unwrap().clone();
            return Err(Failed { status, stderr });
        }
        Ok(Proxy {
            child,
            log,
            reader: Some(reader),
        })
    }

    /// Runs the proxy expecting it to refuse to start.
    pub fn refuses(args: &[String]) -> Failed {
        match Self::try_start(args) {
            Ok(p) => panic!("proxy started: {}", p.stop().1),
            Err(f) => f,
        }
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits: exit status and the whole log.
    pub fn stop(self) -> (ExitStatus, String) {
        self.stop_with("TERM")
    }

    /// Sends SIG`signal` and waits: exit status and the whole log.
    pub fn stop_with(mut self, signal: &str) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        let flag = format!("-{signal}");
        let ok = Command::new("kill").args([&flag, &pid]).status().unwrap();
        assert!(ok.success());
        let status = self.child.wait().unwrap();
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        (status, self.log())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Nanoseconds since the first call (the channel's clock).
pub fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// The guest's end: a channel over the test's own mapping of the file.
pub struct Guest {
    pub chan: spin::Mutex<Channel<MemRegion>>,
    _map: MmapMut,
}

/// A second shared mapping of the channel file and a region over it.
pub fn guest_region(path: &Path) -> (MmapMut, MemRegion) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    // SAFETY: the proxy created the file at 2 MiB and nothing shrinks it
    // during a test; the mapping is only accessed through MemRegion.
    let mut map = unsafe { MmapMut::map_mut(&file) }.unwrap();
    // SAFETY: the pointer and length are the mapping's; `map` is kept
    // alive beside the region by every caller (see `Guest`).
    let region = unsafe { MemRegion::new(map.as_mut_ptr(), map.len()) };
    (map, region)
}

impl Guest {
    /// Attaches to the channel file (HELLO included).
    pub fn attach(path: &Path) -> Result<Guest, HostchanError> {
        let (map, region) = guest_region(path);
        let seed = now_ns() ^ u64::from(std::process::id()) << 32;
        let mut chan = Channel::attach(region, now_ns, seed, 5_000_000_000)?;
        chan.set_timeout_ns(15_000_000_000);
        Ok(Guest {
            chan: spin::Mutex::new(chan),
            _map: map,
        })
    }
}

/// One request the broker stand-in received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A tiny HTTP server standing in for the key broker: records every
/// request and answers each with `status` and `body` (and a session
/// cookie).
pub struct Broker {
    addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn serve_one(stream: TcpStream, status: u16, body: &[u8]) -> Option<Seen> {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    let mut len = 0;
    loop {
        line.clear();
        r.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':')?;
        if n.eq_ignore_ascii_case("content-length") {
            len = v.trim().parse().ok()?;
        }
        headers.push((n.to_string(), v.trim().to_string()));
    }
    let mut req_body = vec![0; len];
    r.read_exact(&mut req_body).ok()?;
    let head = format!(
        "HTTP/1.1 {status} X\r\nSet-Cookie: kbs-session-id=s1; Path=/kbs/v0\r\n\
         Content-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let s = r.get_mut();
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    Some(Seen {
        method,
        path,
        headers,
        body: req_body,
    })
}

impl Broker {
    /// A broker answering `status` with `body`.
    pub fn start(status: u16, body: &'static [u8]) -> Broker {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (Arc::clone(&seen), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            for conn in l.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                if let Some(req) = conn.ok().and_then(|c| serve_one(c, status, body)) {
                    s.lock().unwrap().push(req);
                }
            }
        });
        Broker {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A URL where nothing listens.
pub fn closed_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}
