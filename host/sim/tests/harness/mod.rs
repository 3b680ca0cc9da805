//! Runs the real `svtpm-sim` binary and real clients against it: the Debian
//! `tpm2-tools` (mssim TCTI), a raw simulator-protocol client, and `swtpm`.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long one client program may run.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// Fails the test (never skips it) when a required program is missing.
pub fn require(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{program}` not found: these tests need the Debian package `{package}` \
         (apt-get install {package})"
    );
}

/// A vTPM's files, in one temporary directory: a random state key file
/// (`key`), the state directory (`state/`, created by provisioning) and
/// the generation guard at its default place beside it (`state.guard`).
pub struct Vtpm {
    root: TempDir,
}

impl Vtpm {
    /// New files: a fresh random key, no state yet.
    pub fn new() -> Vtpm {
        let root = tempfile::tempdir().unwrap();
        let mut key = [0u8; 32];
        File::open("/dev/urandom")
            .unwrap()
            .read_exact(&mut key)
            .unwrap();
        let v = Vtpm { root };
        v.write_key(&hex(&key));
        v
    }

    /// Replaces the key file's contents (mode 0600).
    pub fn write_key(&self, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(self.key_file(), text).unwrap();
        std::fs::set_permissions(self.key_file(), std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// The key, as written in the key file.
    pub fn key_hex(&self) -> String {
        std::fs::read_to_string(self.key_file())
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.path().join("state")
    }

    pub fn key_file(&self) -> PathBuf {
        self.root.path().join("key")
    }

    /// Where svtpm-sim puts the guard by default.
    pub fn guard_file(&self) -> PathBuf {
        self.root.path().join("state.guard")
    }

    /// A slot file (`'a'` or `'b'`).
    pub fn slot(&self, slot: char) -> PathBuf {
        self.state_dir().join(format!("slot-{slot}.svtpm"))
    }

    /// The generation recorded in the guard file.
    pub fn recorded(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.guard_file()).ok()?;
        text.lines().nth(1)?.parse().ok()
    }

    /// Every file of the vTPM (state directory and guard) with its bytes,
    /// sorted by path: to check that nothing was touched.
    pub fn files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(self.state_dir()) {
            for e in rd {
                let p = e.unwrap().path();
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
        if let Ok(g) = std::fs::read(self.guard_file()) {
            out.push((self.guard_file(), g));
        }
        out.sort();
        out
    }

    /// The simulator command for this vTPM (port 0, debug log), without
    /// `--provision`.
    pub fn command(&self, interface: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_svtpm-sim"));
        c.args(["--port", "0", "--interface", interface, "--state-dir"])
            .arg(self.state_dir())
            .arg("--key-file")
            .arg(self.key_file())
            .env("RUST_LOG", "debug");
        c
    }

    /// Runs the simulator with `extra` arguments, expecting it to refuse to
    /// start: it must exit by itself within 30 s.
    pub fn run_to_exit(&self, extra: &[&std::ffi::OsStr]) -> Exited {
        let log_dir = tempfile::tempdir().unwrap();
        let log_path = log_dir.path().join("log");
        let mut child = self
            .command("tis")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log_path).unwrap())
            .spawn()
            .unwrap();
        let end = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "svtpm-sim did not exit; log:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut stdout = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        Exited {
            status,
            stdout,
            log: std::fs::read_to_string(&log_path).unwrap(),
        }
    }
}

/// A simulator run that ended by itself.
pub struct Exited {
    pub status: ExitStatus,
    pub stdout: String,
    pub log: String,
}

/// A running `svtpm-sim`, killed when dropped.
pub struct Sim {
    child: Child,
    /// TPM command port (platform port is +1).
    pub port: u16,
    /// State directory.
    pub state_dir: PathBuf,
    log_path: PathBuf,
    _own_vtpm: Option<Vtpm>,
    _log_dir: TempDir,
}

impl Sim {
    /// Starts a simulator on a new vTPM (provisioned now).
    pub fn start(interface: &str) -> Sim {
        let v = Vtpm::new();
        let mut sim = Sim::provision(&v, interface);
        sim._own_vtpm = Some(v);
        sim
    }

    /// Provisions a new vTPM in `vtpm` and starts a simulator on it.
    pub fn provision(vtpm: &Vtpm, interface: &str) -> Sim {
        Sim::launch(vtpm, interface, &["--provision".as_ref()])
    }

    /// Starts a simulator on the existing state of `vtpm`.
    pub fn start_on(vtpm: &Vtpm, interface: &str) -> Sim {
        Sim::launch(vtpm, interface, &[])
    }

    /// Starts a simulator on `vtpm` with `extra` arguments.
    pub fn launch(vtpm: &Vtpm, interface: &str, extra: &[&std::ffi::OsStr]) -> Sim {
        let log_dir = tempfile::tempdir().unwrap();
        let log_path = log_dir.path().join("sim.log");
        let log = File::create(&log_path).unwrap();
        let mut child = vtpm
            .command(interface)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("svtpm-sim starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "svtpm-sim did not report its port; log:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
        };
        let port = line
            .trim()
            .strip_prefix("listening on 127.0.0.1:")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!(
                    "unexpected first line {line:?}; log:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                )
            });
        Sim {
            child,
            port,
            state_dir: vtpm.state_dir(),
            log_path,
            _own_vtpm: None,
            _log_dir: log_dir,
        }
    }

    /// The simulator's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// `TPM2TOOLS_TCTI` for this simulator.
    pub fn tcti(&self) -> String {
        format!("mssim:host=127.0.0.1,port={}", self.port)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits up to `limit` for the process to exit by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Kills the process (SIGKILL: no chance to write anything more).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A raw client connected to both ports.
    pub fn client(&self) -> Mssim {
        Mssim::connect(self.port)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Output of a finished client program.
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// A working directory for `tpm2-tools` runs against one simulator.
pub struct Tools {
    pub dir: TempDir,
    tcti: String,
}

impl Tools {
    pub fn new(sim: &Sim) -> Tools {
        require("tpm2_startup", "tpm2-tools");
        Tools {
            dir: tempfile::tempdir().unwrap(),
            tcti: sim.tcti(),
        }
    }

    /// A working directory for a TPM at `tcti` (e.g. swtpm's `swtpm:` TCTI).
    pub fn for_tcti(tcti: String) -> Tools {
        require("tpm2_startup", "tpm2-tools");
        Tools {
            dir: tempfile::tempdir().unwrap(),
            tcti,
        }
    }

    /// Points at another simulator (e.g. after a restart).
    pub fn retarget(&mut self, sim: &Sim) {
        self.tcti = sim.tcti();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, data: &[u8]) {
        std::fs::write(self.path(name), data).unwrap();
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    /// Runs `tool args...` in the working directory, bounded in time.
    pub fn try_run(&self, tool: &str, args: &[&str]) -> Ran {
        let out = self.path(".stdout");
        let err = self.path(".stderr");
        let mut child = Command::new(tool)
            .args(args)
            .current_dir(self.dir.path())
            .env("TPM2TOOLS_TCTI", &self.tcti)
            .stdin(Stdio::null())
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {tool} (apt-get install tpm2-tools): {e}"));
        let end = Instant::now() + TOOL_TIMEOUT;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{tool} {args:?} did not finish in {TOOL_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Ran {
            status,
            stdout: std::fs::read_to_string(&out).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err).unwrap_or_default(),
        }
    }

    /// Runs a tool that must succeed; returns its stdout.
    pub fn run(&self, tool: &str, args: &[&str]) -> String {
        let r = self.try_run(tool, args);
        self.check(tool, args, r)
    }

    /// Runs a tool that must succeed, then flushes the transient objects it
    /// left loaded (without a resource manager each tool leaves its context
    /// loads behind, and the TPM has only a few object slots).
    pub fn run_flush(&self, tool: &str, args: &[&str]) -> String {
        let r = self.try_run(tool, args);
        let out = self.check(tool, args, r);
        self.run("tpm2_flushcontext", &["-t"]);
        out
    }

    /// [`Tools::try_run`], then flushes the transient objects.
    pub fn try_run_flush(&self, tool: &str, args: &[&str]) -> Ran {
        let r = self.try_run(tool, args);
        self.run("tpm2_flushcontext", &["-t"]);
        r
    }

    fn check(&self, tool: &str, args: &[&str], r: Ran) -> String {
        assert!(
            r.status.success(),
            "{tool} {args:?} failed ({}):\n{}\n{}",
            r.status,
            r.stdout,
            r.stderr
        );
        r.stdout
    }
}

/// Lowercase hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Parses hex (an optional 0x prefix, any case).
pub fn unhex(s: &str) -> Vec<u8> {
    let s = s.trim().trim_start_matches("0x");
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// The value of `key: value` in tpm2-tools YAML output (first match).
pub fn yaml_value(out: &str, key: &str) -> Option<String> {
    out.lines().find_map(|l| {
        l.trim_start()
            .strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    })
}

/// One PCR value of `bank` from `tpm2_pcrread` output.
pub fn pcr_from_output(out: &str, bank: &str, pcr: u32) -> Vec<u8> {
    let mut in_bank = false;
    for l in out.lines() {
        let t = l.trim();
        if let Some(b) = t.strip_suffix(':') {
            in_bank = b == bank;
            continue;
        }
        if in_bank {
            if let Some((idx, v)) = t.split_once(':') {
                if idx.trim().parse::<u32>() == Ok(pcr) {
                    return unhex(v);
                }
            }
        }
    }
    panic!("no {bank}:{pcr} in\n{out}");
}

/// A raw client of the simulator protocol (both ports).
pub struct Mssim {
    pub cmd: TcpStream,
    pub platform: TcpStream,
}

impl Mssim {
    pub fn connect(port: u16) -> Mssim {
        let cmd = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let platform = TcpStream::connect(("127.0.0.1", port + 1)).unwrap();
        for s in [&cmd, &platform] {
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        }
        Mssim { cmd, platform }
    }

    /// TPM_SEND_COMMAND; returns the response (empty when powered off).
    pub fn send(&mut self, locality: u8, command: &[u8]) -> Vec<u8> {
        let mut f = 8u32.to_be_bytes().to_vec();
        f.push(locality);
        f.extend_from_slice(&(command.len() as u32).to_be_bytes());
        f.extend_from_slice(command);
        self.cmd.write_all(&f).unwrap();
        let size = read_u32(&mut self.cmd) as usize;
        let mut rsp = vec![0u8; size];
        self.cmd.read_exact(&mut rsp).unwrap();
        assert_eq!(read_u32(&mut self.cmd), 0, "ack after the response");
        rsp
    }

    /// A platform signal; returns the server's answer code.
    pub fn signal(&mut self, code: u32) -> u32 {
        self.platform.write_all(&code.to_be_bytes()).unwrap();
        read_u32(&mut self.platform)
    }

    /// Ends both connections politely.
    pub fn end(mut self) {
        let _ = self.cmd.write_all(&20u32.to_be_bytes());
        let _ = self.platform.write_all(&20u32.to_be_bytes());
        let _ = self.cmd.shutdown(Shutdown::Both);
        let _ = self.platform.shutdown(Shutdown::Both);
    }
}

pub fn read_u32(s: &mut impl Read) -> u32 {
    let mut b = [0u8; 4];
    s.read_exact(&mut b).unwrap();
    u32::from_be_bytes(b)
}

/// Whether the peer has closed `s` (EOF within the read timeout).
pub fn closed_by_peer(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => true,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
        ),
        Ok(_) => false,
    }
}

/// A running `swtpm socket --tpm2`, killed when dropped.
pub struct Swtpm {
    child: Child,
    pub port: u16,
    ctrl: u16,
    _dir: Option<TempDir>,
}

/// Two consecutive TCP ports that were free a moment ago.
fn free_port_pair() -> (u16, u16) {
    loop {
        let a = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let p = a.local_addr().unwrap().port();
        if p < u16::MAX && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return (p, p + 1);
        }
    }
}

/// What answered on a port that should be swtpm's raw TPM command port.
enum Probe {
    /// Nothing listens there (yet).
    Closed,
    /// A TPM 2.0 answered a TPM command.
    Tpm,
    /// Something listens but did not answer as a TPM.
    NotTpm,
}

/// Sends TPM2_GetCapability(TPM_PROPERTIES, TPM_PT_MANUFACTURER) to `port`
/// on a connection of its own. Any TPM 2.0 answers with a TPM_ST_NO_SESSIONS
/// response (success, or TPM_RC_INITIALIZE before Startup), which tells
/// swtpm apart from another listener that grabbed a port picked as free.
fn probe_tpm(port: u16) -> Probe {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return Probe::Closed;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    // TPM_ST_NO_SESSIONS, size 22, TPM_CC_GetCapability, capability,
    // property, propertyCount.
    let cmd: [u8; 22] = [
        0x80, 0x01, 0, 0, 0, 22, 0, 0, 0x01, 0x7A, 0, 0, 0, 6, 0, 0, 0x01, 0x05, 0, 0, 0, 1,
    ];
    let mut head = [0u8; 10];
    if s.write_all(&cmd).is_err() || s.read_exact(&mut head).is_err() {
        return Probe::NotTpm;
    }
    let size = u32::from_be_bytes([head[2], head[3], head[4], head[5]]) as usize;
    let mut rest = vec![0u8; size.saturating_sub(10).min(4096)];
    if u16::from_be_bytes([head[0], head[1]]) != 0x8001
        || size < 10
        || s.read_exact(&mut rest).is_err()
    {
        return Probe::NotTpm;
    }
    Probe::Tpm
}

impl Swtpm {
    /// Starts swtpm on a new state directory, already past Startup(CLEAR).
    pub fn start() -> Swtpm {
        let dir = tempfile::tempdir().unwrap();
        let mut sw = Swtpm::launch(
            dir.path(),
            &["--flags".into(), "not-need-init,startup-clear".into()],
        );
        sw._dir = Some(dir);
        sw
    }

    /// Starts swtpm on the existing state in `dir`, encrypted with the hex
    /// AES-128 key in `key` if given, initialized but before Startup. Its
    /// control port is the server port + 1, as the `swtpm:` TCTI expects.
    pub fn serve(dir: &Path, key: Option<&Path>) -> Swtpm {
        let mut args: Vec<String> = vec!["--flags".into(), "not-need-init".into()];
        if let Some(k) = key {
            args.push("--key".into());
            args.push(format!("file={},mode=aes-cbc", k.display()));
        }
        Swtpm::launch(dir, &args)
    }

    fn launch(dir: &Path, extra: &[String]) -> Swtpm {
        require("swtpm", "swtpm");
        for _ in 0..5 {
            let (port, ctrl) = free_port_pair();
            let mut child = Command::new("swtpm")
                .args(["socket", "--tpm2"])
                .arg("--server")
                .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={ctrl},bindaddr=127.0.0.1"))
                .arg("--tpmstate")
                .arg(format!("dir={}", dir.display()))
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("swtpm starts (apt-get install swtpm)");
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end {
                if child.try_wait().unwrap().is_some() {
                    break; // port taken in the meantime: try other ports
                }
                match probe_tpm(port) {
                    Probe::Tpm if child.try_wait().unwrap().is_none() => {
                        return Swtpm {
                            child,
                            port,
                            ctrl,
                            _dir: None,
                        };
                    }
                    // Something else took the port between the pick and
                    // swtpm's bind (another test's simulator, say): the
                    // answer was not a TPM's, so this swtpm is not ours to use.
                    Probe::Tpm | Probe::NotTpm => break,
                    Probe::Closed => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("swtpm did not start");
    }

    /// `TPM2TOOLS_TCTI` for this swtpm.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    pub fn connect(&self) -> RawTpm {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        RawTpm(s)
    }

    /// Stops swtpm through its control channel (`swtpm_ioctl -s`: it
    /// finishes writing its state) and waits for it to exit.
    pub fn stop(mut self) {
        require("swtpm_ioctl", "swtpm-tools");
        let st = Command::new("swtpm_ioctl")
            .args(["--tcp", &format!("127.0.0.1:{}", self.ctrl), "-s"])
            .status()
            .unwrap();
        assert!(st.success(), "swtpm_ioctl -s: {st}");
        let end = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < end, "swtpm did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The raw TPM command stream of swtpm's server port.
pub struct RawTpm(pub TcpStream);

impl RawTpm {
    pub fn send(&mut self, command: &[u8]) -> Vec<u8> {
        self.0.write_all(command).unwrap();
        let mut head = [0u8; 10];
        self.0.read_exact(&mut head).unwrap();
        let size = u32::from_be_bytes([head[2], head[3], head[4], head[5]]) as usize;
        let mut rsp = head.to_vec();
        rsp.resize(size.max(10), 0);
        self.0.read_exact(&mut rsp[10..]).unwrap();
        rsp
    }
}
