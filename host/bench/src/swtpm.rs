//! Debian's swtpm as a reference TPM: started on free loopback ports with a
//! fresh state directory, spoken to with the raw TPM command stream of its
//! server socket, and shut down through its control channel.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::targets::Tpm;

/// swtpm's control command CMD_SHUTDOWN (swtpm `tpm_ioctl.h`).
const CMD_SHUTDOWN: u32 = 3;
/// How long swtpm gets to start listening, and to exit after shutdown.
const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest response accepted (TPM buffers are at most 4 KiB).
const MAX_RESPONSE: usize = 64 * 1024;

/// A running swtpm and the connection to its server port.
#[derive(Debug)]
pub struct Swtpm {
    child: Child,
    stream: TcpStream,
    ctrl_port: u16,
    state_dir: PathBuf,
}

/// A loopback port nobody listens on right now.
fn free_port() -> Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free loopback port")?;
    Ok(l.local_addr()?.port())
}

impl Swtpm {
    /// Starts `swtpm socket --tpm2` with a new state directory; the TPM is
    /// manufactured and started (TPM2_Startup(CLEAR)) by swtpm itself.
    pub fn start() -> Result<Self> {
        let state_dir =
            std::env::temp_dir().join(format!("svtpm-bench-swtpm-{}", std::process::id()));
        if state_dir.exists() {
            std::fs::remove_dir_all(&state_dir)
                .with_context(|| format!("removing the stale {}", state_dir.display()))?;
        }
        std::fs::create_dir_all(&state_dir)
            .with_context(|| format!("creating {}", state_dir.display()))?;
        let server_port = free_port()?;
        let ctrl_port = loop {
            let p = free_port()?;
            if p != server_port {
                break p;
            }
        };
        let log = std::fs::File::create(state_dir.join("swtpm.out"))?;
        let mut child = Command::new("swtpm")
            .args(["socket", "--tpm2"])
            .arg("--server")
            .arg(format!("type=tcp,port={server_port},bindaddr=127.0.0.1"))
            .arg("--ctrl")
            .arg(format!("type=tcp,port={ctrl_port},bindaddr=127.0.0.1"))
            .arg("--tpmstate")
            .arg(format!("dir={}", state_dir.display()))
            .args(["--flags", "not-need-init,startup-clear"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting swtpm (Debian package swtpm)")?;
        match Self::connect(server_port, &mut child) {
            Ok(stream) => Ok(Swtpm {
                child,
                stream,
                ctrl_port,
                state_dir,
            }),
            Err(e) => {
                // The child is ours: end it by its own handle.
                let _ = child.kill();
                let _ = child.wait();
                let said = std::fs::read_to_string(state_dir.join("swtpm.out")).unwrap_or_default();
                let _ = std::fs::remove_dir_all(&state_dir);
                bail!("swtpm did not start: {e:#}\nswtpm said: {}", said.trim())
            }
        }
    }

    /// Connects to the server port once swtpm listens on it.
    fn connect(port: u16, child: &mut Child) -> Result<TcpStream> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("swtpm exited ({status})");
            }
            match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                Ok(s) => {
                    s.set_nodelay(true)?;
                    return Ok(s);
                }
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => return Err(e).context(format!("connecting to swtpm on {addr}")),
            }
        }
    }

    /// Asks swtpm to exit through its control channel.
    fn shutdown(&mut self) -> Result<()> {
        let mut ctrl = TcpStream::connect((Ipv4Addr::LOCALHOST, self.ctrl_port))?;
        ctrl.set_read_timeout(Some(STOP_TIMEOUT))?;
        ctrl.write_all(&CMD_SHUTDOWN.to_be_bytes())?;
        let mut result = [0u8; 4];
        ctrl.read_exact(&mut result)?;
        ensure!(result == [0; 4], "CMD_SHUTDOWN returned {result:02x?}");
        Ok(())
    }
}

impl Tpm for Swtpm {
    fn transact(&mut self, command: &[u8]) -> Result<Vec<u8>> {
        self.stream.write_all(command).context("sending to swtpm")?;
        let mut resp = vec![0u8; 10];
        self.stream
            .read_exact(&mut resp)
            .context("reading swtpm's response header")?;
        let size = u32::from_be_bytes([resp[2], resp[3], resp[4], resp[5]]) as usize;
        ensure!(
            (10..=MAX_RESPONSE).contains(&size),
            "swtpm sent a response of impossible size {size}"
        );
        resp.resize(size, 0);
        self.stream
            .read_exact(&mut resp[10..])
            .context("reading swtpm's response")?;
        Ok(resp)
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let polite = self.shutdown().is_ok();
        let deadline = Instant::now() + if polite { STOP_TIMEOUT } else { Duration::ZERO };
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    // The child is ours: end it by its own handle.
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}
