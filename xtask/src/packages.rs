//! The Debian packages svtpm needs, grouped by purpose, and the check that
//! installs the missing ones.
//!
//! Each task declares the groups it needs (`packages::ensure(&[Group::Build,
//! ...])`). A new need becomes a new [`Group`] variant listed in
//! [`Group::ALL`] and in the tasks that use it.
//!
//! Missing packages are installed with apt-get when running as root; otherwise
//! the exact `sudo apt-get install` line is printed and the step fails.

use std::collections::BTreeSet;
use std::process::Command;

use anyhow::{bail, Result};

use crate::steps::{self, Outcome};

/// A set of Debian packages needed for one purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Building the component and linking libtpms (static libtpms.a + libcrypto.a).
    Build,
    /// Host-side tests and benchmarks against real TPM tools: tpm2-tools as the
    /// client of svtpm-sim, swtpm as the reference TPM.
    Test,
    /// Booting a guest under QEMU: the boot medium (kernel, busybox,
    /// tpm2-tools and the TCTI they load at run time, systemd's UKI stub,
    /// objcopy/readelf, FAT tools, gzip), the ACPI compiler, OVMF, QEMU and
    /// swtpm for the baseline.
    Guest,
}

impl Group {
    /// Every group, for `cargo xtask setup` and CI.
    pub const ALL: &'static [Group] = &[Group::Build, Group::Test, Group::Guest];

    /// The packages of this group.
    pub fn packages(self) -> &'static [&'static str] {
        match self {
            Group::Build => &["gcc", "pkg-config", "libtpms-dev", "libssl-dev"],
            Group::Test => &["tpm2-tools", "swtpm", "swtpm-tools"],
            Group::Guest => &[
                "linux-image-amd64",
                "busybox-static",
                "tpm2-tools",
                "libtss2-tcti-device0",
                "systemd-boot-efi",
                "binutils",
                "gzip",
                "dosfstools",
                "mtools",
                "acpica-tools",
                "ovmf",
                "qemu-system-x86",
                "swtpm",
            ],
        }
    }
}

/// The union of the packages of `groups`, sorted and without duplicates.
pub fn packages_of(groups: &[Group]) -> Vec<&'static str> {
    let set: BTreeSet<&'static str> = groups.iter().flat_map(|g| g.packages()).copied().collect();
    set.into_iter().collect()
}

/// Installs what is missing of `groups` (as root), or fails with the apt-get line.
pub fn ensure(groups: &[Group]) -> Result<Outcome> {
    let wanted = packages_of(groups);
    let missing = missing(&wanted)?;
    if missing.is_empty() {
        println!("all installed: {}", wanted.join(" "));
        return Ok(Outcome::Done);
    }
    println!("missing Debian packages: {}", missing.join(" "));
    if !is_root()? {
        bail!(
            "missing Debian packages: {}. Install them with:\n\n    {}\n",
            missing.join(" "),
            install_line(&missing, true)
        );
    }
    steps::run(Command::new("apt-get").arg("update"))?;
    steps::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing),
    )?;
    let still = self::missing(&wanted)?;
    if !still.is_empty() {
        bail!(
            "apt-get succeeded but these are still not installed: {}",
            still.join(" ")
        );
    }
    Ok(Outcome::Done)
}

/// The apt-get command that installs `packages`.
pub fn install_line(packages: &[&str], sudo: bool) -> String {
    format!(
        "{}apt-get install -y --no-install-recommends {}",
        if sudo { "sudo " } else { "" },
        packages.join(" ")
    )
}

/// Which of `wanted` dpkg does not report as installed.
fn missing<'a>(wanted: &[&'a str]) -> Result<Vec<&'a str>> {
    let out = steps::capture(
        Command::new("dpkg-query")
            .arg("-W")
            .arg("-f=${Package}\t${Status}\n")
            .args(wanted),
        "dpkg-query: the svtpm tooling expects Debian bookworm",
    )?;
    // dpkg-query exits 1 when some package is unknown; its stdout still lists the others.
    Ok(not_installed(wanted, &String::from_utf8_lossy(&out.stdout)))
}

/// Parses `dpkg-query -W -f='${Package}\t${Status}\n'` output.
fn not_installed<'a>(wanted: &[&'a str], dpkg_output: &str) -> Vec<&'a str> {
    let installed: BTreeSet<&str> = dpkg_output
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, status)| status.trim() == "install ok installed")
        .map(|(name, _)| name.split(':').next().unwrap_or(name))
        .collect();
    wanted
        .iter()
        .copied()
        .filter(|p| !installed.contains(p))
        .collect()
}

/// Whether the effective user is root.
fn is_root() -> Result<bool> {
    let uid = steps::stdout_of(Command::new("id").arg("-u"), "the effective user id")?;
    Ok(uid.trim() == "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_output_parsing_finds_missing_and_half_installed() {
        let out = "gcc\tinstall ok installed\n\
                   swtpm\tdeinstall ok config-files\n\
                   libssl-dev:amd64\tinstall ok installed\n";
        let wanted = ["gcc", "swtpm", "libssl-dev", "libtpms-dev"];
        assert_eq!(not_installed(&wanted, out), ["swtpm", "libtpms-dev"]);
    }

    #[test]
    fn groups_merge_without_duplicates() {
        let all = packages_of(&[Group::Build, Group::Test, Group::Build]);
        assert_eq!(
            all.len(),
            Group::Build.packages().len() + Group::Test.packages().len()
        );
        assert!(all.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn install_line_is_the_exact_command() {
        assert_eq!(
            install_line(&["swtpm", "tpm2-tools"], true),
            "sudo apt-get install -y --no-install-recommends swtpm tpm2-tools"
        );
    }

    #[test]
    fn this_machine_reports_an_installed_package() {
        // dpkg itself is always installed on Debian.
        assert!(missing(&["dpkg"]).unwrap().is_empty());
        assert_eq!(
            missing(&["svtpm-no-such-package"]).unwrap(),
            ["svtpm-no-such-package"]
        );
    }
}
