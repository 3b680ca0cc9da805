//! The attested stack under QEMU: the development key broker (svtpm-kbs),
//! svtpm-proxy with its simulated PSP, and the svtpm image proving itself
//! before it starts the TPM and the guest (docs/kbs.md, docs/hostchan.md).
//!
//! A stack directory holds everything the stack keeps between boots:
//!
//! ```text
//! chain/            test ARK -> ASK -> VCEK chain (svtpm-psp-sim gen-chain)
//! secrets.page      SNP secrets page: the image's VMPCKs (fw_cfg) = the PSP's
//!                   (new for every boot, as each SNP launch gets new VMPCKs)
//! policy.json       the broker's policy: allowlist = the image as built now
//! kbs/              the broker's data: token key, vtpm/<id>/{state-key,generation}
//! vtpm-id           the vTPM `cargo xtask run` boots (provisioned once)
//! state/<id>/       svtpm-proxy's state dir: the vTPM's sealed A/B slots
//! hostchan.mem      the host channel's backing file (2 MiB, recreated per boot)
//! logs/             kbs.log, proxy.log, console.log of the last boot
//! ```
//!
//! `target/svtpm-dev/` is the developer's (kept across runs, so a rerun
//! boots the same vTPM); the tests and the benchmark use their own.
//!
//! The launch digest of the image changes with every build, so the policy's
//! allowlist is regenerated from the image on every start: what a guest
//! owner does when registering a new release. The vTPM's key and
//! generation record stay, so the same TPM opens under the new image.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::daemon::Daemon;
use crate::hosttools::{self, HostTools, Tool};
use crate::qemu::HostChannel;

/// Where the host channel's pc-dimm sits (tests/image/run-qemu.sh puts it
/// there): right after svtpm's own 64 MiB at 4 GiB, inside the 1 GiB slot
/// the guest never sees.
pub const HOSTCHAN_GPA: u64 = 0x1_0400_0000;
/// The host channel's size (the pc-dimm's, `size=2M`).
pub const HOSTCHAN_SIZE: u64 = 0x20_0000;
/// Session and token lifetime of development policies: long, so a paused
/// or slow boot does not time out.
pub const DEV_LIFETIME_SECS: u64 = 24 * 3600;
/// How long the broker and the proxy may take to report they are ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The files of one stack directory.
#[derive(Debug, Clone)]
pub struct StackDir {
    root: PathBuf,
}

impl StackDir {
    /// The stack directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The test certificate chain.
    pub fn chain(&self) -> PathBuf {
        self.root.join("chain")
    }
    /// The secrets page.
    pub fn secrets(&self) -> PathBuf {
        self.root.join("secrets.page")
    }
    /// The broker's data directory.
    pub fn kbs_data(&self) -> PathBuf {
        self.root.join("kbs")
    }
    /// The broker's policy.
    pub fn policy(&self) -> PathBuf {
        self.root.join("policy.json")
    }
    /// The host channel's backing file.
    pub fn channel(&self) -> PathBuf {
        self.root.join("hostchan.mem")
    }
    /// The logs of the last boot.
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    /// The proxy's state directory for vTPM `id`.
    pub fn state(&self, id: &str) -> PathBuf {
        self.root.join("state").join(id)
    }
    fn vtpm_id_file(&self) -> PathBuf {
        self.root.join("vtpm-id")
    }

    /// The vTPM `cargo xtask run` boots, if one was provisioned.
    pub fn vtpm_id(&self) -> Result<Option<String>> {
        let path = self.vtpm_id_file();
        match fs::read_to_string(&path) {
            Ok(text) => {
                let id = text.trim();
                if !hosttools::valid_vtpm_id(id) {
                    bail!("{} holds no valid vTPM id: {id:?}", path.display());
                }
                Ok(Some(id.to_string()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Makes `id` the vTPM `cargo xtask run` boots.
    pub fn set_vtpm_id(&self, id: &str) -> Result<()> {
        fs::write(self.vtpm_id_file(), format!("{id}\n"))
            .with_context(|| format!("writing {}", self.vtpm_id_file().display()))
    }

    /// Whether the broker's data directory knows vTPM `id`.
    pub fn broker_knows(&self, id: &str) -> bool {
        self.kbs_data()
            .join("vtpm")
            .join(id)
            .join("state-key")
            .is_file()
    }

    /// The broker's generation record of `id` as stored (absent: none).
    pub fn generation_record(&self, id: &str) -> Result<Option<String>> {
        let path = self.kbs_data().join("vtpm").join(id).join("generation");
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text.trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Creates the directory and the chain when missing.
    pub fn ensure_base(&self, tools: &HostTools) -> Result<()> {
        fs::create_dir_all(&self.root)
            .with_context(|| format!("creating {}", self.root.display()))?;
        if tools.gen_chain(&self.chain())? {
            println!(
                "new test chain (ARK -> ASK -> VCEK) in {}",
                self.chain().display()
            );
        }
        Ok(())
    }

    /// Writes the broker's policy: the allowlist `measurements`, the test
    /// chain's ARK as trust anchor, debugging forbidden, long lifetimes.
    pub fn write_policy(&self, measurements: &[String]) -> Result<()> {
        let text = policy_json(
            measurements,
            &[PathBuf::from("chain/ark.pem")],
            false,
            DEV_LIFETIME_SECS,
        );
        fs::write(self.policy(), text)
            .with_context(|| format!("writing {}", self.policy().display()))
    }

    /// The vTPM to boot: `wanted` (which the broker must know), else the
    /// directory's, else a newly provisioned one (which becomes the
    /// directory's). Returns the id and whether it is new.
    pub fn ensure_vtpm(&self, tools: &HostTools, wanted: Option<&str>) -> Result<(String, bool)> {
        if let Some(id) = wanted {
            if !self.broker_knows(id) {
                bail!(
                    "the broker in {} has no vTPM {id}; create it with \
                     `cargo xtask provision --vtpm-id {id}`",
                    self.kbs_data().display()
                );
            }
            return Ok((id.to_string(), false));
        }
        if let Some(id) = self.vtpm_id()? {
            if self.broker_knows(&id) {
                return Ok((id, false));
            }
            println!(
                "{} names vTPM {id}, which the broker does not know: provisioning a new one",
                self.vtpm_id_file().display()
            );
        }
        let id = tools.provision(&self.kbs_data(), None)?;
        self.set_vtpm_id(&id)?;
        Ok((id, true))
    }
}

/// The broker's policy document (host/kbs/src/policy.rs): relative trust
/// anchor paths are relative to the policy file.
pub fn policy_json(
    measurements: &[String],
    trust_anchors: &[PathBuf],
    allow_debug: bool,
    lifetime_secs: u64,
) -> String {
    let anchors: Vec<String> = trust_anchors
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let doc = serde_json::json!({
        "allowed_measurements": measurements,
        "allow_debug": allow_debug,
        "trust_anchors": anchors,
        "session_lifetime_secs": lifetime_secs,
        "token_lifetime_secs": lifetime_secs,
    });
    format!("{doc:#}\n")
}

/// The image's command-line words of the attested boot of vTPM `id`.
pub fn attested_cmdline(id: &str) -> Vec<String> {
    vec![
        format!("svtpm.hostchan={HOSTCHAN_GPA:#x},{HOSTCHAN_SIZE:#x}"),
        format!("svtpm.vtpm={id}"),
    ]
}

/// Where the proxy finds the broker.
#[derive(Debug, Clone)]
pub enum Broker {
    /// Start svtpm-kbs on this data directory and policy, on a free port.
    Start {
        /// Its data directory.
        data: PathBuf,
        /// Its policy.
        policy: PathBuf,
    },
    /// A broker that is already running (or deliberately not: a closed port).
    External(String),
}

/// One start of the stack.
#[derive(Debug, Clone)]
pub struct Config {
    /// The broker.
    pub broker: Broker,
    /// The chain the proxy's simulated PSP signs with.
    pub chain: PathBuf,
    /// The secrets page (the PSP's copy; the image gets the same file).
    pub secrets: PathBuf,
    /// The image the simulated PSP measures.
    pub image: PathBuf,
    /// The proxy's state directory.
    pub state: PathBuf,
    /// The host channel's backing file (recreated).
    pub channel: PathBuf,
    /// Where kbs.log and proxy.log go.
    pub logs: PathBuf,
    /// The guest policy the simulated PSP reports (its default if none).
    pub guest_policy: Option<String>,
    /// `--fault` arguments of the proxy.
    pub faults: Vec<String>,
    /// Whether the daemons' lines are shown on the terminal.
    pub echo: bool,
}

impl Config {
    /// A stack on `dir` for vTPM `id`, starting the broker there.
    pub fn on(dir: &StackDir, image: &Path, id: &str) -> Self {
        Self {
            broker: Broker::Start {
                data: dir.kbs_data(),
                policy: dir.policy(),
            },
            chain: dir.chain(),
            secrets: dir.secrets(),
            image: image.to_path_buf(),
            state: dir.state(id),
            channel: dir.channel(),
            logs: dir.logs(),
            guest_policy: None,
            faults: Vec::new(),
            echo: true,
        }
    }
}

/// The running broker and proxy; stopped (proxy first) when dropped.
#[derive(Debug)]
pub struct Stack {
    /// The proxy.
    pub proxy: Option<Daemon>,
    /// The broker, when started here.
    pub kbs: Option<Daemon>,
    /// The broker's URL.
    pub url: String,
    /// When the stack started: the daemons' and the console's time stamps
    /// count from here.
    pub epoch: Instant,
    channel: PathBuf,
    secrets: PathBuf,
}

impl Stack {
    /// Starts the broker (unless external) and the proxy, each waited for.
    pub fn start(tools: &HostTools, cfg: &Config) -> Result<Self> {
        let epoch = Instant::now();
        fs::create_dir_all(&cfg.state)
            .with_context(|| format!("creating {}", cfg.state.display()))?;
        let mut stack = Self {
            proxy: None,
            kbs: None,
            url: String::new(),
            epoch,
            channel: cfg.channel.clone(),
            secrets: cfg.secrets.clone(),
        };
        stack.url = match &cfg.broker {
            Broker::External(url) => url.clone(),
            Broker::Start { data, policy } => {
                let mut cmd = tools.command(Tool::Kbs)?;
                cmd.arg("serve")
                    .arg("--data-dir")
                    .arg(data)
                    .arg("--policy")
                    .arg(policy)
                    .args(["--port", "0"]);
                let kbs = stack.kbs.insert(Daemon::spawn(
                    "kbs",
                    &mut cmd,
                    &cfg.logs.join("kbs.log"),
                    epoch,
                    cfg.echo,
                )?);
                kbs.wait_for(
                    "its address (`listening on http://...`)",
                    READY_TIMEOUT,
                    listening_url,
                )?
            }
        };
        // A new secrets page per boot. The simulated PSP, like the image,
        // counts guest messages from 1 on every launch; under a kept VMPCK0
        // the second boot would repeat the first boot's AES-GCM IVs with the
        // same key. A real SNP launch derives new VMPCKs every time.
        tools.new_secrets_page(&cfg.secrets)?;
        // A fresh channel file per boot: nothing of an old boot's mailbox.
        if cfg.channel.exists() {
            fs::remove_file(&cfg.channel)
                .with_context(|| format!("removing {}", cfg.channel.display()))?;
        }
        let mut cmd = tools.command(Tool::Proxy)?;
        cmd.arg("--channel")
            .arg(&cfg.channel)
            .arg("--state-dir")
            .arg(&cfg.state)
            .arg("--kbs")
            .arg(&stack.url)
            .arg("--psp-chain")
            .arg(&cfg.chain)
            .arg("--secrets")
            .arg(&cfg.secrets)
            .arg("--image")
            .arg(&cfg.image);
        if let Some(p) = &cfg.guest_policy {
            cmd.args(["--guest-policy", p]);
        }
        for f in &cfg.faults {
            cmd.args(["--fault", f]);
        }
        let proxy = stack.proxy.insert(Daemon::spawn(
            "proxy",
            &mut cmd,
            &cfg.logs.join("proxy.log"),
            epoch,
            cfg.echo,
        )?);
        proxy.wait_for("`svtpm-proxy: serving`", READY_TIMEOUT, |l| {
            l.contains("svtpm-proxy: serving").then_some(())
        })?;
        Ok(stack)
    }

    /// The QEMU side of the stack.
    pub fn hostchan(&self) -> HostChannel<'_> {
        HostChannel {
            file: &self.channel,
            secrets: &self.secrets,
        }
    }

    /// The proxy's lines so far.
    pub fn proxy_lines(&self) -> Vec<String> {
        self.proxy.as_ref().map(Daemon::lines).unwrap_or_default()
    }

    /// Stops the proxy, then the broker.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proxy.take() {
            p.stop();
        }
        if let Some(mut k) = self.kbs.take() {
            k.stop();
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The URL in svtpm-kbs's `listening on http://ADDR` line.
pub fn listening_url(line: &str) -> Option<String> {
    let at = line.find("listening on http://")?;
    let url = line[at + "listening on ".len()..]
        .split_whitespace()
        .next()?;
    (url.len() > "http://".len()).then(|| url.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_has_exactly_the_brokers_fields() {
        let m = "ab".repeat(48);
        let text = policy_json(
            std::slice::from_ref(&m),
            &[PathBuf::from("chain/ark.pem")],
            false,
            DEV_LIFETIME_SECS,
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let obj = v.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "allow_debug",
                "allowed_measurements",
                "session_lifetime_secs",
                "token_lifetime_secs",
                "trust_anchors"
            ]
        );
        assert_eq!(v["allowed_measurements"][0], m.as_str());
        assert_eq!(v["allow_debug"], false);
        assert_eq!(v["trust_anchors"][0], "chain/ark.pem");
        assert_eq!(v["session_lifetime_secs"], DEV_LIFETIME_SECS);
        let empty = policy_json(&[], &[], true, 5);
        let v: serde_json::Value = serde_json::from_str(&empty).unwrap();
        assert_eq!(v["allowed_measurements"].as_array().unwrap().len(), 0);
        assert_eq!(v["allow_debug"], true);
    }

    #[test]
    fn the_broker_accepts_the_generated_policy() {
        let dir = std::env::temp_dir().join(format!("xtask-policy-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let m = "0f".repeat(48);
        let text = policy_json(&[m], &[PathBuf::from("chain/ark.pem")], false, 60);
        let p = svtpm_kbs::policy::Policy::parse(&text, &dir).unwrap();
        assert_eq!(p.allowed_measurements, vec![[0x0f; 48]]);
        assert!(!p.allow_debug);
        assert_eq!(p.trust_anchors, vec![dir.join("chain/ark.pem")]);
        assert_eq!(p.token_lifetime, Duration::from_secs(60));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn cmdline_names_channel_and_vtpm() {
        assert_eq!(
            attested_cmdline("dev-1"),
            ["svtpm.hostchan=0x104000000,0x200000", "svtpm.vtpm=dev-1"]
        );
    }

    #[test]
    fn channel_location_matches_the_qemu_script() {
        let ws = crate::workspace::Workspace::locate().unwrap();
        let script = fs::read_to_string(ws.path("tests/image/run-qemu.sh")).unwrap();
        assert!(
            script.contains(&format!("addr={HOSTCHAN_GPA:#x}")),
            "run-qemu.sh puts the channel elsewhere"
        );
        assert!(script.contains(&format!("size={}M", HOSTCHAN_SIZE >> 20)));
    }

    #[test]
    fn listening_line_gives_the_url() {
        assert_eq!(
            listening_url("listening on http://127.0.0.1:41234").as_deref(),
            Some("http://127.0.0.1:41234")
        );
        assert_eq!(
            listening_url("[INFO] listening on http://[::1]:80/ now").as_deref(),
            Some("http://[::1]:80")
        );
        assert_eq!(listening_url("listening on http://"), None);
        assert_eq!(listening_url("listening on 127.0.0.1:1"), None);
    }

    #[test]
    fn stack_dir_reads_ids_and_records() {
        let root = std::env::temp_dir().join(format!("xtask-stackdir-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let d = StackDir::new(&root);
        fs::create_dir_all(d.kbs_data().join("vtpm/v1")).unwrap();
        assert_eq!(d.vtpm_id().unwrap(), None);
        d.set_vtpm_id("v1").unwrap();
        assert_eq!(d.vtpm_id().unwrap().as_deref(), Some("v1"));
        assert!(!d.broker_knows("v1"));
        fs::write(d.kbs_data().join("vtpm/v1/state-key"), "00").unwrap();
        assert!(d.broker_knows("v1"));
        assert_eq!(d.generation_record("v1").unwrap(), None);
        fs::write(d.kbs_data().join("vtpm/v1/generation"), "3\n").unwrap();
        assert_eq!(d.generation_record("v1").unwrap().as_deref(), Some("3"));
        fs::write(root.join("vtpm-id"), "no/good\n").unwrap();
        assert!(d.vtpm_id().is_err());
        let _ = fs::remove_dir_all(&root);
    }
}
