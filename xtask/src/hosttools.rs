//! The host programs of the attested stack, built from the workspace and
//! run through their command lines (docs/kbs.md, docs/hostchan.md):
//!
//! - `svtpm-kbs`: the development key broker (`provision`, `serve`);
//! - `svtpm-proxy`: the host end of the host channel;
//! - `svtpm-psp-sim`: the test ARK -> ASK -> VCEK chain (`gen-chain`), the
//!   SNP secrets page (`secrets-page`) and the image's launch digest
//!   (`measure`).
//!
//! They are built with the workspace's dev profile into CARGO_TARGET_DIR
//! (like every other cargo step of xtask) and found through cargo's
//! artifact messages, never by guessing the target directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::elf;
use crate::steps;
use crate::workspace::Workspace;

/// One host program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tool {
    /// svtpm-kbs.
    Kbs,
    /// svtpm-proxy.
    Proxy,
    /// svtpm-psp-sim.
    PspSim,
}

impl Tool {
    /// Package and binary name (the same for all three).
    pub fn name(self) -> &'static str {
        match self {
            Tool::Kbs => "svtpm-kbs",
            Tool::Proxy => "svtpm-proxy",
            Tool::PspSim => "svtpm-psp-sim",
        }
    }
}

/// Every host program of the attested stack.
pub const ALL: &[Tool] = &[Tool::Kbs, Tool::Proxy, Tool::PspSim];

/// The built programs.
#[derive(Debug, Clone)]
pub struct HostTools {
    paths: BTreeMap<Tool, PathBuf>,
}

impl HostTools {
    /// Builds `tools` (dev profile) and finds their executables.
    pub fn build(ws: &Workspace, tools: &[Tool]) -> Result<Self> {
        let mut cmd = ws.cargo();
        cmd.arg("build");
        for t in tools {
            cmd.args(["--package", t.name(), "--bin", t.name()]);
        }
        let messages = elf::cargo_build(&mut cmd, "the host programs")?;
        let mut paths = BTreeMap::new();
        for &t in tools {
            let exe = elf::executable_from_messages(&messages, t.name())
                .with_context(|| format!("cargo reported no executable for {}", t.name()))?;
            paths.insert(t, exe);
        }
        Ok(Self { paths })
    }

    /// The executable of `tool`.
    pub fn path(&self, tool: Tool) -> Result<&Path> {
        self.paths
            .get(&tool)
            .map(PathBuf::as_path)
            .with_context(|| format!("{} was not built", tool.name()))
    }

    /// A command running `tool`.
    pub fn command(&self, tool: Tool) -> Result<Command> {
        Ok(Command::new(self.path(tool)?))
    }

    /// `svtpm-psp-sim gen-chain --out DIR` unless DIR already holds a
    /// chain; whether one was generated.
    pub fn gen_chain(&self, dir: &Path) -> Result<bool> {
        if dir.join("ark.pem").is_file() && dir.join("vcek.pem").is_file() {
            return Ok(false);
        }
        steps::run(
            self.command(Tool::PspSim)?
                .arg("gen-chain")
                .arg("--out")
                .arg(dir),
        )?;
        Ok(true)
    }

    /// `svtpm-psp-sim secrets-page --out FILE`: a new secrets page with
    /// fresh VMPCKs, replacing any earlier one.
    pub fn new_secrets_page(&self, file: &Path) -> Result<()> {
        steps::run(
            self.command(Tool::PspSim)?
                .arg("secrets-page")
                .arg("--out")
                .arg(file),
        )
    }

    /// The launch digest of `image` (96 hex digits), as the simulated PSP
    /// reports it.
    pub fn measure(&self, image: &Path) -> Result<String> {
        let out = steps::stdout_of(
            self.command(Tool::PspSim)?
                .arg("measure")
                .arg("--image")
                .arg(image),
            "the image's launch digest",
        )?;
        parse_measurement(&out).with_context(|| {
            format!("svtpm-psp-sim measure printed no 96-hex-digit digest: `{out}`")
        })
    }

    /// `svtpm-kbs provision`: a new vTPM in `data_dir` (`id`, or a random
    /// one); the id. Refuses an existing id (the broker does).
    pub fn provision(&self, data_dir: &Path, id: Option<&str>) -> Result<String> {
        let mut cmd = self.command(Tool::Kbs)?;
        cmd.arg("provision").arg("--data-dir").arg(data_dir);
        if let Some(id) = id {
            cmd.args(["--vtpm-id", id]);
        }
        let out = steps::capture(&mut cmd, "svtpm-kbs provision")?;
        if !out.status.success() {
            bail!(
                "`{}` failed ({}): {}",
                steps::describe(&cmd),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        parse_provisioned_id(&text)
            .with_context(|| format!("svtpm-kbs provision printed no vTPM id: `{text}`"))
    }
}

/// The digest in `svtpm-psp-sim measure`'s output: the last word of 96 hex
/// digits, lower-cased.
pub fn parse_measurement(stdout: &str) -> Option<String> {
    stdout
        .split_whitespace()
        .rev()
        .find(|w| w.len() == 96 && w.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
}

/// The id `svtpm-kbs provision` printed: its last non-empty line, if it is
/// a valid vTPM id (1-64 of `A-Z a-z 0-9 _ . -`).
pub fn parse_provisioned_id(stdout: &str) -> Option<String> {
    let id = stdout.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    valid_vtpm_id(id).then(|| id.to_string())
}

/// Whether `id` is a vTPM id the broker accepts.
pub fn valid_vtpm_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurement_is_the_96_hex_digit_word() {
        let m = "A1".repeat(48);
        assert_eq!(
            parse_measurement(&format!("launch digest: {m}\n")),
            Some(m.to_ascii_lowercase())
        );
        assert_eq!(parse_measurement(&format!("{m}\n")).unwrap().len(), 96);
        assert_eq!(parse_measurement(&"a1".repeat(47)), None);
        assert_eq!(parse_measurement(&"g1".repeat(48)), None);
        assert_eq!(parse_measurement(""), None);
    }

    #[test]
    fn provisioned_id_is_the_last_line_and_valid() {
        assert_eq!(
            parse_provisioned_id("dev-4f2a\n").as_deref(),
            Some("dev-4f2a")
        );
        assert_eq!(
            parse_provisioned_id("note\nabc.DEF_1-2\n\n").as_deref(),
            Some("abc.DEF_1-2")
        );
        assert_eq!(parse_provisioned_id("two words\n"), None);
        assert_eq!(parse_provisioned_id(""), None);
        assert!(!valid_vtpm_id(&"a".repeat(65)));
        assert!(!valid_vtpm_id("a/b"));
        assert!(valid_vtpm_id(&"a".repeat(64)));
    }
}
