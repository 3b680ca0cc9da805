//! A background program of the attested stack (svtpm-kbs, svtpm-proxy):
//! started with its stdout and stderr streamed to the terminal under a
//! prefix (`kbs:`, `proxy:`) and into a log file, its lines kept for
//! checks, waited on for its ready line, and stopped (SIGTERM, then SIGKILL
//! after a grace period) when dropped, so no path out of xtask leaves it
//! running.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::console;
use crate::interrupt;
use crate::steps;

/// How long a daemon gets to exit after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// Lines seen so far, and a signal for waiters.
#[derive(Debug, Default)]
struct Shared {
    lines: Mutex<Vec<String>>,
    more: Condvar,
}

/// A running background program.
#[derive(Debug)]
pub struct Daemon {
    name: &'static str,
    child: Child,
    shared: Arc<Shared>,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

impl Daemon {
    /// Starts `cmd`; its output goes to `log` and, when `echo`, to the
    /// terminal as `[<seconds since epoch>] <name>: <line>`.
    pub fn spawn(
        name: &'static str,
        cmd: &mut Command,
        log: &Path,
        epoch: Instant,
        echo: bool,
    ) -> Result<Self> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let file = Arc::new(Mutex::new(file));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        println!("$ {}", steps::describe(cmd));
        let mut child = cmd
            .spawn()
            .with_context(|| format!("could not start `{}`", steps::describe(cmd)))?;
        let shared = Arc::new(Shared::default());
        let out = child.stdout.take().context("daemon stdout")?;
        let err = child.stderr.take().context("daemon stderr")?;
        for stream in [Box::new(out) as Box<dyn Read + Send>, Box::new(err)] {
            let (shared, file) = (shared.clone(), file.clone());
            thread::spawn(move || {
                let mut r = BufReader::new(stream);
                let mut raw = Vec::new();
                while matches!(r.read_until(b'\n', &mut raw), Ok(n) if n > 0) {
                    if let Ok(mut f) = file.lock() {
                        let _ = f.write_all(&raw);
                    }
                    let line = console::clean(&raw);
                    raw.clear();
                    if line.trim().is_empty() {
                        continue;
                    }
                    if echo {
                        println!("[{:>6.1}s] {name}: {line}", epoch.elapsed().as_secs_f64());
                    }
                    if let Ok(mut lines) = shared.lines.lock() {
                        lines.push(line);
                    }
                    shared.more.notify_all();
                }
                shared.more.notify_all();
            });
        }
        Ok(Self {
            name,
            child,
            shared,
            log: log.to_path_buf(),
            exited: None,
        })
    }

    /// Every line so far (stdout and stderr, cleaned).
    pub fn lines(&self) -> Vec<String> {
        self.shared
            .lines
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// Waits until `find` accepts a line (it sees each line once, in order)
    /// and returns what it found; fails if the program exits first, after
    /// `timeout`, or on Ctrl-C.
    pub fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut find: impl FnMut(&str) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        let mut seen = 0;
        let mut exited_rescanned = false;
        loop {
            {
                let lines = self
                    .shared
                    .lines
                    .lock()
                    .map_err(|_| anyhow::anyhow!("{}: reader failed", self.name))?;
                for line in &lines[seen..] {
                    if let Some(found) = find(line) {
                        return Ok(found);
                    }
                }
                seen = lines.len();
                let _ = self
                    .shared
                    .more
                    .wait_timeout(lines, Duration::from_millis(100));
            }
            if let Some(status) = self.try_wait()? {
                if !exited_rescanned {
                    // Let the readers drain what it printed before exiting.
                    exited_rescanned = true;
                    thread::sleep(Duration::from_millis(200));
                    continue;
                }
                bail!(
                    "{} exited ({status}) before {what}; its log: {}",
                    self.name,
                    self.log.display()
                );
            }
            interrupt::check()?;
            if Instant::now() >= deadline {
                bail!(
                    "{} did not report {what} within {} s; its log: {}",
                    self.name,
                    timeout.as_secs(),
                    self.log.display()
                );
            }
        }
    }

    /// The exit status, if the program has exited.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().context("waiting for a daemon")?;
        }
        Ok(self.exited)
    }

    /// Waits for the program to exit by itself (or Ctrl-C, which it gets
    /// from the terminal too).
    pub fn wait(&mut self) -> Result<ExitStatus> {
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            if interrupt::requested() {
                return self.stop().context("the daemon could not be stopped");
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the program: SIGTERM, then SIGKILL after a grace period.
    /// Returns how it ended, if that could be learnt.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.try_wait() {
            return Some(status);
        }
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + TERM_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        println!(
            "{} did not exit within {} s of SIGTERM: killing it",
            self.name,
            TERM_GRACE.as_secs()
        );
        let _ = self.child.kill();
        self.exited = self.child.wait().ok();
        self.exited
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line_is_found_output_logged_and_the_program_stopped() {
        let dir = std::env::temp_dir().join(format!("xtask-daemon-{}", std::process::id()));
        let log = dir.join("d.log");
        let mut d = Daemon::spawn(
            "test",
            Command::new("sh").args([
                "-c",
                "echo starting; echo 'listening on http://127.0.0.1:4321' >&2; exec sleep 60",
            ]),
            &log,
            Instant::now(),
            false,
        )
        .unwrap();
        let url = d
            .wait_for("its address", Duration::from_secs(10), |l| {
                l.strip_prefix("listening on ").map(str::to_string)
            })
            .unwrap();
        assert_eq!(url, "http://127.0.0.1:4321");
        let status = d.stop().unwrap();
        assert!(!status.success(), "sleep was terminated: {status}");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("starting\n") && text.contains("listening on"),
            "{text}"
        );
        assert_eq!(d.lines().len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn waiting_fails_when_the_program_exits_first() {
        let log = std::env::temp_dir().join(format!("xtask-daemon-x-{}.log", std::process::id()));
        let mut d = Daemon::spawn(
            "test",
            Command::new("sh").args(["-c", "echo oops; exit 3"]),
            &log,
            Instant::now(),
            false,
        )
        .unwrap();
        let err = d
            .wait_for("ready", Duration::from_secs(10), |l| {
                l.contains("ready").then_some(())
            })
            .unwrap_err();
        assert!(format!("{err}").contains("exited"), "{err}");
        let _ = std::fs::remove_file(&log);
    }
}
