//! Booting the guest medium under QEMU TCG: the command lines of the two TPM
//! set-ups, running QEMU with a time limit while its serial console streams
//! to the terminal, and the report of what the guest said.
//!
//! - `svtpm`: the svtpm image is QEMU's `-kernel` (PVH) and hosts OVMF as its
//!   SVM guest with the TPM window intercepted. The command line comes from
//!   `tests/image/run-qemu.sh`, which owns the image's memory layout (and
//!   the host channel's pc-dimm, `SVTPM_HOSTCHAN`, and the secrets page,
//!   `SVTPM_SECRETS`, of the attested boot; see [`crate::stack`]); xtask
//!   adds the image's command line (`-append svtpm.interface=... ...`), the
//!   ACPI tables describing the TPM (see [`crate::acpi`]) and the boot disk.
//! - `swtpm`: the baseline with no svtpm at all: OVMF as QEMU's firmware,
//!   QEMU's own `tpm-tis` / `tpm-crb` device backed by Debian's swtpm (which
//!   also makes QEMU publish the TPM's ACPI tables).
//!
//! Both use the same machine (`pc`, `-cpu max`, no default devices, an
//! `isa-debug-exit` device through which the guest's init ends the run with
//! QEMU exit status 33) and the same medium, so their console output and boot
//! times compare directly.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::ValueEnum;

use crate::acpi::Tables;
use crate::console::{self, Event, Summary};
use crate::guest::Medium;
use crate::interrupt;
use crate::run::Interface;
use crate::steps;
use crate::workspace::Workspace;

/// Debian's OVMF build (code and variables in one image).
pub const OVMF: &str = "/usr/share/ovmf/OVMF.fd";
/// The QEMU binary.
const QEMU: &str = "qemu-system-x86_64";
/// Guest RAM for the baseline (the svtpm script picks its own, 512M too).
const MEMORY: &str = "512M";
/// The image's command-line word for the in-memory TPM (no attestation, no
/// sealed state): what the TIS/CRB guest checks and benchmarks run on.
pub const EPHEMERAL: &str = "svtpm.state=ephemeral";
/// How many console lines a failure report shows.
pub const TAIL_LINES: usize = 40;
/// How long QEMU may take to exit after the guest's init announced the end.
const EXIT_GRACE: Duration = Duration::from_secs(15);
/// Print a "still running" line after this long without console output.
const QUIET_NOTICE: Duration = Duration::from_secs(15);

/// Which TPM the guest gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Tpm {
    /// The svtpm image as the SVM host of OVMF, emulating the TPM window.
    Svtpm,
    /// QEMU's own TPM device backed by Debian's swtpm (the baseline).
    Swtpm,
}

impl Tpm {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Tpm::Svtpm => "svtpm",
            Tpm::Swtpm => "swtpm",
        }
    }
}

/// The QEMU side of the attested stack: the file behind the host
/// channel's pc-dimm (shared with svtpm-proxy) and the SNP secrets page
/// handed to the image as fw_cfg `opt/svtpm/secrets`.
#[derive(Debug, Clone, Copy)]
pub struct HostChannel<'a> {
    /// The channel's backing file.
    pub file: &'a Path,
    /// The secrets page image.
    pub secrets: &'a Path,
}

/// One guest boot to run.
#[derive(Debug)]
pub struct Boot<'a> {
    /// The TPM set-up.
    pub tpm: Tpm,
    /// The TPM interface the guest sees.
    pub interface: Interface,
    /// The boot medium (none: no disk, for boots that stop before the guest).
    pub medium: Option<&'a Medium>,
    /// The svtpm image (svtpm only).
    pub image: Option<&'a Path>,
    /// The ACPI tables describing the TPM (svtpm only; QEMU makes its own
    /// for its TPM devices).
    pub acpi: Option<&'a Tables>,
    /// Kill QEMU after this long.
    pub timeout: Duration,
    /// More words for the image's command line after `svtpm.interface=`
    /// (svtpm only), e.g. `svtpm.state=ephemeral`.
    pub append: Vec<String>,
    /// The attested stack's host channel and secrets page (svtpm only).
    pub hostchan: Option<HostChannel<'a>>,
    /// Stop QEMU as soon as a console line contains one of these.
    pub stop_on: &'a [&'a str],
    /// What the console's time stamps count from (QEMU's start if none), so
    /// they line up with the stack's daemons.
    pub epoch: Option<Instant>,
}

impl<'a> Boot<'a> {
    /// A boot of `tpm` over `interface` with no medium, image or extras.
    pub fn new(tpm: Tpm, interface: Interface, timeout: Duration) -> Self {
        Self {
            tpm,
            interface,
            medium: None,
            image: None,
            acpi: None,
            timeout,
            append: Vec::new(),
            hostchan: None,
            stop_on: &[],
            epoch: None,
        }
    }
}

/// When things happened, from QEMU's start.
#[derive(Debug, Clone, Default)]
pub struct Times {
    /// The first console output (firmware or svtpm image).
    pub first_output: Option<Duration>,
    /// OVMF started the UKI (`BdsDxe: starting ...`).
    pub firmware_done: Option<Duration>,
    /// init printed `SVTPM-BOOT userspace`.
    pub userspace: Option<Duration>,
    /// The check script printed its summary.
    pub checks_done: Option<Duration>,
    /// QEMU exited (or was killed).
    pub end: Duration,
}

/// What one boot produced.
#[derive(Debug)]
pub struct Report {
    /// The TPM set-up of the boot.
    pub tpm: Tpm,
    /// The interface of the boot.
    pub interface: Interface,
    /// What the guest reported.
    pub summary: Summary,
    /// Milestones.
    pub times: Times,
    /// QEMU's exit status, unless it had to be killed.
    pub exit: Option<ExitStatus>,
    /// Why QEMU was killed, if it was.
    pub killed: Option<String>,
    /// Every cleaned, non-empty console line.
    pub lines: Vec<String>,
    /// The raw console output.
    pub console_log: PathBuf,
    /// The guest kernel's release.
    pub kernel_release: String,
}

impl Report {
    /// The last [`TAIL_LINES`] console lines, for failure messages.
    pub fn tail(&self) -> String {
        let start = self.lines.len().saturating_sub(TAIL_LINES);
        self.lines[start..]
            .iter()
            .map(|l| format!("    | {l}\n"))
            .collect()
    }

    /// Fails (with the console's last lines) unless the guest finished with
    /// every check passed and each of `required` reported.
    pub fn verdict(&self, required: &[&str]) -> Result<()> {
        let result = match &self.killed {
            Some(why) if self.summary.done.is_none() => Err(anyhow::anyhow!("{why}")),
            _ => self.summary.verdict(required),
        };
        result.map_err(|e| {
            anyhow::anyhow!(
                "{e:#}\nlast {} console lines ({} has all of it):\n{}",
                TAIL_LINES,
                self.console_log.display(),
                self.tail()
            )
        })
    }

    /// One line with the milestones.
    pub fn timing_line(&self) -> String {
        let at = |d: Option<Duration>| d.map_or("-".to_string(), steps::secs);
        let uptime = self
            .summary
            .userspace_uptime
            .map_or(String::new(), |u| format!(" (kernel uptime {u:.2}s)"));
        let end = match (&self.exit, &self.killed) {
            (Some(status), _) => format!("QEMU exited ({status})"),
            (None, Some(_)) => "QEMU killed".to_string(),
            (None, None) => "QEMU gone".to_string(),
        };
        format!(
            "boot times ({} {}, kernel {}): first output {}, UKI started {}, userspace {}{uptime}, \
             checks done {}, {end} {}",
            self.tpm.name(),
            self.interface.as_arg(),
            self.kernel_release,
            at(self.times.first_output),
            at(self.times.firmware_done),
            at(self.times.userspace),
            at(self.times.checks_done),
            steps::secs(self.times.end),
        )
    }
}

/// The QEMU device for QEMU's own TPM of `interface`.
fn qemu_tpm_device(interface: Interface) -> &'static str {
    match interface {
        Interface::Tis => "tpm-tis,tpmdev=tpm0",
        Interface::Crb => "tpm-crb,tpmdev=tpm0",
    }
}

/// The boot disk: the medium's FAT image, read-only.
fn disk_args(medium: &Medium) -> Vec<String> {
    vec![
        "-drive".into(),
        format!(
            "if=virtio,format=raw,readonly=on,file={}",
            medium.esp.display()
        ),
    ]
}

/// The baseline: OVMF as firmware, QEMU's TPM device on swtpm's socket.
fn swtpm_command(boot: &Boot<'_>, socket: &Path) -> Command {
    let mut c = Command::new(QEMU);
    c.args([
        "-nodefaults",
        "-machine",
        "pc",
        "-accel",
        "tcg",
        "-cpu",
        "max",
    ])
    .args(["-m", MEMORY, "-bios", OVMF])
    .args(["-display", "none", "-serial", "stdio", "-no-reboot"])
    .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
    .arg("-chardev")
    .arg(format!("socket,id=chrtpm,path={}", socket.display()))
    .args(["-tpmdev", "emulator,id=tpm0,chardev=chrtpm"])
    .args(["-device", qemu_tpm_device(boot.interface)]);
    if let Some(m) = boot.medium {
        c.args(disk_args(m));
    }
    c
}

/// The image's command line: the interface, then `boot.append`.
pub fn image_cmdline(interface: Interface, append: &[String]) -> String {
    let mut words = vec![format!("svtpm.interface={}", interface.as_arg())];
    words.extend(append.iter().cloned());
    words.join(" ")
}

/// svtpm: the image hosting OVMF, through the image's QEMU script.
fn svtpm_command(ws: &Workspace, boot: &Boot<'_>, image: &Path) -> Command {
    let mut c = ws.command("bash");
    c.arg(ws.path("tests/image/run-qemu.sh"))
        .arg(image)
        .arg(OVMF)
        .arg("-nodefaults")
        .arg("-append")
        .arg(image_cmdline(boot.interface, &boot.append));
    if let Some(acpi) = boot.acpi {
        c.arg("-acpitable")
            .arg(format!("file={}", acpi.ssdt.display()))
            .arg("-acpitable")
            .arg(format!("file={}", acpi.tpm2.display()));
    }
    if let Some(m) = boot.medium {
        c.args(disk_args(m));
    }
    if let Some(h) = boot.hostchan {
        c.env("SVTPM_HOSTCHAN", h.file)
            .env("SVTPM_SECRETS", h.secrets);
    }
    c
}

/// swtpm serving one QEMU on a UNIX socket; killed when dropped.
struct Swtpm {
    child: Child,
    socket: PathBuf,
}

impl Swtpm {
    /// Starts swtpm with a fresh state in `dir` and waits for its socket.
    fn start(dir: &Path) -> Result<Self> {
        let state = dir.join("swtpm-state");
        fs::create_dir_all(&state).with_context(|| format!("creating {}", state.display()))?;
        // UNIX socket paths are limited to 107 bytes: keep it short.
        let socket = std::env::temp_dir().join(format!("svtpm-swtpm-{}.sock", std::process::id()));
        let _ = fs::remove_file(&socket);
        let mut cmd = Command::new("swtpm");
        cmd.args(["socket", "--tpm2", "--terminate"])
            .arg("--tpmstate")
            .arg(format!("dir={}", state.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", socket.display()))
            .arg("--log")
            .arg(format!("file={},level=1", dir.join("swtpm.log").display()))
            .stdin(Stdio::null());
        println!("$ {}", steps::describe(&cmd));
        let child = cmd.spawn().context("could not start swtpm")?;
        let mut me = Self { child, socket };
        let t = Instant::now();
        while !me.socket.exists() {
            if let Some(status) = me.child.try_wait()? {
                bail!(
                    "swtpm exited at once ({status}); see {}",
                    dir.join("swtpm.log").display()
                );
            }
            if t.elapsed() > Duration::from_secs(10) {
                bail!("swtpm did not create {} within 10 s", me.socket.display());
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(me)
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        // --terminate makes swtpm exit when QEMU disconnects; this is for
        // the paths where QEMU never connected.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.socket);
    }
}

/// Output of one of QEMU's streams.
enum Chunk {
    Serial(Vec<u8>),
    Stderr(Vec<u8>),
    Closed,
}

fn forward(stream: impl Read + Send + 'static, tx: mpsc::Sender<Chunk>, serial: bool) {
    thread::spawn(move || {
        let mut r = BufReader::new(stream);
        loop {
            let mut line = Vec::new();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let chunk = if serial {
                        Chunk::Serial(line)
                    } else {
                        Chunk::Stderr(line)
                    };
                    if tx.send(chunk).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(Chunk::Closed);
    });
}

/// Boots the guest, streaming its console with elapsed times, and returns
/// what it reported. Fails only when QEMU cannot be started; a guest that
/// fails, hangs or never boots is described by the report.
pub fn boot(ws: &Workspace, boot: &Boot<'_>) -> Result<Report> {
    boot_with(ws, boot, "run", &[])
}

/// [`boot`] with `extra` appended to QEMU's command line (e.g. an SMBIOS
/// string for the guest), its files in `target/guest/<kind>-<tpm>-<interface>/`.
pub fn boot_with(ws: &Workspace, boot: &Boot<'_>, kind: &str, extra: &[String]) -> Result<Report> {
    let dir = ws.target_dir().join("guest").join(format!(
        "{kind}-{}-{}",
        boot.tpm.name(),
        boot.interface.as_arg()
    ));
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    boot_into(ws, boot, &dir, extra)
}

/// [`boot_with`] with its files (`console.log`, swtpm's state) in `dir`,
/// which is created if missing and not cleared.
pub fn boot_into(ws: &Workspace, boot: &Boot<'_>, dir: &Path, extra: &[String]) -> Result<Report> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let swtpm;
    let mut cmd = match boot.tpm {
        Tpm::Swtpm => {
            swtpm = Swtpm::start(dir)?;
            swtpm_command(boot, &swtpm.socket)
        }
        Tpm::Svtpm => {
            let image = boot.image.context("svtpm boot without an image")?;
            svtpm_command(ws, boot, image)
        }
    };
    cmd.args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    println!("$ {}", steps::describe(&cmd));
    let console_log = dir.join("console.log");
    let mut log = File::create(&console_log)
        .with_context(|| format!("creating {}", console_log.display()))?;

    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start `{}`", steps::describe(&cmd)))?;
    let (tx, rx) = mpsc::channel();
    forward(
        child.stdout.take().context("QEMU stdout")?,
        tx.clone(),
        true,
    );
    forward(child.stderr.take().context("QEMU stderr")?, tx, false);

    let mut summary = Summary::default();
    let mut times = Times::default();
    let mut lines = Vec::new();
    let mut killed = None;
    let mut open_streams = 2;
    let mut last_output = Instant::now();
    let mut deadline = start + boot.timeout;
    let epoch = boot.epoch.unwrap_or(start);
    let stamp = |t: Instant| format!("[{:>6.1}s]", t.duration_since(epoch).as_secs_f64());

    while open_streams > 0 {
        let now = Instant::now();
        if interrupt::requested() {
            println!("{} killing QEMU: interrupted", stamp(now));
            let _ = child.kill();
            killed = Some("interrupted".to_string());
            break;
        }
        if now >= deadline {
            let why = if summary.poweroff_uptime.is_some() {
                format!(
                    "QEMU did not exit within {} s of the guest's poweroff",
                    EXIT_GRACE.as_secs()
                )
            } else {
                format!("timed out after {} s", boot.timeout.as_secs())
            };
            println!("{} killing QEMU: {why}", stamp(now));
            let _ = child.kill();
            killed = Some(why);
            break;
        }
        let chunk = match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(c) => c,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if last_output.elapsed() >= QUIET_NOTICE {
                    println!(
                        "{} ... still running, no console output for {} s",
                        stamp(Instant::now()),
                        last_output.elapsed().as_secs()
                    );
                    last_output = Instant::now();
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let (raw, is_serial) = match chunk {
            Chunk::Closed => {
                open_streams -= 1;
                continue;
            }
            Chunk::Serial(raw) => (raw, true),
            Chunk::Stderr(raw) => (raw, false),
        };
        let at = Instant::now();
        let _ = log.write_all(&raw);
        let line = console::clean(&raw);
        if line.trim().is_empty() {
            continue;
        }
        last_output = at;
        let elapsed = at.duration_since(start);
        times.first_output.get_or_insert(elapsed);
        if !is_serial {
            println!("{} qemu: {line}", stamp(at));
            lines.push(format!("qemu: {line}"));
            continue;
        }
        if line.contains("BdsDxe: starting") {
            times.firmware_done.get_or_insert(elapsed);
        }
        if let Some(event) = console::parse(&line) {
            summary.record(&event);
            match event {
                Event::Boot { ref milestone, .. } if milestone == "userspace" => {
                    times.userspace.get_or_insert(elapsed);
                }
                Event::Boot { ref milestone, .. } if milestone == "poweroff" => {
                    deadline = deadline.min(at + EXIT_GRACE);
                }
                Event::Done { .. } => {
                    times.checks_done.get_or_insert(elapsed);
                }
                _ => {}
            }
        }
        println!("{} {line}", stamp(at));
        let stop = boot.stop_on.iter().find(|m| line.contains(*m));
        lines.push(line);
        if let Some(marker) = stop {
            println!("{} stopping QEMU: the console showed `{marker}`", stamp(at));
            let _ = child.kill();
            killed = Some(format!("stopped: the console showed `{marker}`"));
            break;
        }
    }
    let exit = child.wait().context("waiting for QEMU")?;
    times.end = start.elapsed();
    let exit = killed.is_none().then_some(exit);
    if let Some(status) = exit {
        println!("{} QEMU exited ({status})", stamp(Instant::now()));
    }
    Ok(Report {
        tpm: boot.tpm,
        interface: boot.interface,
        summary,
        times,
        exit,
        killed,
        lines,
        console_log,
        kernel_release: boot
            .medium
            .map_or_else(|| "-".to_string(), |m| m.kernel_release.clone()),
    })
}

/// The checks every boot must pass, for the driver of `interface`.
pub fn required_checks(interface: Interface) -> Vec<&'static str> {
    let driver = match interface {
        Interface::Tis => "driver=tpm_tis",
        Interface::Crb => "driver=tpm_crb",
    };
    vec![
        driver,
        "getrandom",
        "pcrread",
        "eventlog",
        "eventlog-replay:sha256",
        "da-counter",
        "seal-unseal",
        "seal-policy",
        "persist",
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn medium() -> Medium {
        Medium {
            esp: "/t/esp.img".into(),
            uki: "/t/uki.efi".into(),
            initrd: "/t/initrd.cpio.gz".into(),
            kernel_release: "6.1.0-56-amd64".into(),
        }
    }

    #[test]
    fn baseline_uses_ovmf_and_the_qemu_tpm_device_of_the_interface() {
        let m = medium();
        for (interface, device) in [(Interface::Tis, "tpm-tis"), (Interface::Crb, "tpm-crb")] {
            let boot = Boot {
                medium: Some(&m),
                ..Boot::new(Tpm::Swtpm, interface, Duration::from_secs(1))
            };
            let line = steps::describe(&swtpm_command(&boot, Path::new("/tmp/s.sock")));
            assert!(line.contains(&format!("-bios {OVMF}")), "{line}");
            assert!(
                line.contains(&format!("-device {device},tpmdev=tpm0")),
                "{line}"
            );
            assert!(
                line.contains("-chardev socket,id=chrtpm,path=/tmp/s.sock"),
                "{line}"
            );
            assert!(
                line.contains("-drive if=virtio,format=raw,readonly=on,file=/t/esp.img"),
                "{line}"
            );
            assert!(!line.contains("-kernel"), "{line}");
            assert!(
                line.contains("-device isa-debug-exit,iobase=0xf4"),
                "{line}"
            );
        }
    }

    #[test]
    fn svtpm_boot_passes_interface_tables_and_disk_to_the_image_script() {
        let ws = Workspace::locate().unwrap();
        let m = medium();
        let tables = Tables {
            ssdt: "/a/ssdt.aml".into(),
            tpm2: "/a/tpm2.aml".into(),
        };
        let boot = Boot {
            medium: Some(&m),
            image: Some(Path::new("/img/svtpm")),
            acpi: Some(&tables),
            append: vec!["svtpm.state=ephemeral".into()],
            ..Boot::new(Tpm::Svtpm, Interface::Crb, Duration::from_secs(1))
        };
        let line = steps::describe(&svtpm_command(&ws, &boot, Path::new("/img/svtpm")));
        assert!(
            line.contains("tests/image/run-qemu.sh /img/svtpm /usr/share/ovmf/OVMF.fd"),
            "{line}"
        );
        assert!(
            line.contains("-append 'svtpm.interface=crb svtpm.state=ephemeral'"),
            "{line}"
        );
        assert!(!line.contains("SVTPM_HOSTCHAN"), "{line}");
        assert!(
            line.contains("-acpitable file=/a/ssdt.aml -acpitable file=/a/tpm2.aml"),
            "{line}"
        );
        assert!(line.contains("file=/t/esp.img"), "{line}");
        assert!(!line.contains("tpmdev"), "{line}");
    }

    #[test]
    fn attested_boot_hands_channel_and_secrets_to_the_script_without_a_disk() {
        let ws = Workspace::locate().unwrap();
        let boot = Boot {
            image: Some(Path::new("/img/svtpm")),
            append: vec!["svtpm.vtpm=dev-1".into()],
            hostchan: Some(HostChannel {
                file: Path::new("/d/hostchan.mem"),
                secrets: Path::new("/d/secrets.page"),
            }),
            ..Boot::new(Tpm::Svtpm, Interface::Tis, Duration::from_secs(1))
        };
        let line = steps::describe(&svtpm_command(&ws, &boot, Path::new("/img/svtpm")));
        assert!(line.contains("SVTPM_HOSTCHAN=/d/hostchan.mem"), "{line}");
        assert!(line.contains("SVTPM_SECRETS=/d/secrets.page"), "{line}");
        assert!(
            line.contains("-append 'svtpm.interface=tis svtpm.vtpm=dev-1'"),
            "{line}"
        );
        assert!(
            !line.contains("-drive") && !line.contains("-acpitable"),
            "{line}"
        );
    }

    #[test]
    fn required_checks_name_the_interface_driver() {
        assert!(required_checks(Interface::Tis).contains(&"driver=tpm_tis"));
        assert!(required_checks(Interface::Crb).contains(&"driver=tpm_crb"));
        assert!(!required_checks(Interface::Crb).contains(&"driver=tpm_tis"));
    }
}
