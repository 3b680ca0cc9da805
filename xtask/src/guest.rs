//! The guest boot medium: a FAT image holding one Unified Kernel Image
//! (`EFI/BOOT/BOOTX64.EFI`) that OVMF boots by itself, made only from
//! Debian packages and the scripts in `guest/`.
//!
//! The UKI is systemd's EFI stub (`linuxx64.efi.stub`, systemd-boot-efi)
//! with Debian's kernel (linux-image-amd64), the kernel command line and an
//! initramfs added as PE sections (`.cmdline`, `.initrd`, `.linux`) by
//! `objcopy`. OVMF loads it from the removable-media default path, so
//! neither boot entries, nor NVRAM, nor QEMU's `-kernel` (which boots the
//! svtpm image itself) are involved. The initramfs holds busybox-static,
//! tpm2-tools with every shared library it needs (the DT_NEEDED closure, plus
//! the device TCTI the tools load with dlopen), the TPM driver modules when
//! the kernel does not have them built in, `guest/init` as `/init` and
//! `guest/svtpm-check.sh`.
//!
//! Everything goes to `target/guest/` of the checkout (next to
//! `target/svtpm-state/`, whatever CARGO_TARGET_DIR says). A stamp records
//! every input (path, size, mtime; the command line; the xtask binary
//! itself), so an unchanged medium is reused at once. See docs/guest.md.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cpio::{Archive, Kind};
use crate::steps::{self, Outcome, Steps};
use crate::workspace::Workspace;

/// The guest kernel's command line. `quiet` keeps the serial console to the
/// check lines and warnings; `panic=-1` turns a kernel panic into a reset,
/// which ends QEMU at once under `-no-reboot`; `memhp_default_state=offline`
/// keeps Linux from onlining the memory the svtpm image lives in (a pc-dimm
/// left out of the E820 map, docs/platform-svm.md); the check script gets
/// 240 s before init gives up on it.
pub const CMDLINE: &str =
    "console=ttyS0 quiet panic=-1 memhp_default_state=offline svtpm.check_timeout=240";

/// systemd's UEFI stub for unified kernel images.
pub const EFI_STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
/// busybox-static's binary.
const BUSYBOX: &str = "/bin/busybox";
/// tpm2-tools' multi-call binary; the `tpm2_*` commands are links to it.
const TPM2_TOOLS: &str = "/usr/bin/tpm2";
/// The TCTI module the tools load with dlopen for `device:/dev/tpmrm0`.
const TCTI_DEVICE: &str = "libtss2-tcti-device.so.0";
/// Where shared libraries are looked up on the host (Debian multiarch
/// first) and put in the initramfs (a directory ld.so searches by default).
const LIB_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];
const GUEST_LIB_DIR: &str = "lib/x86_64-linux-gnu";
/// The TPM drivers the guest needs: loaded as modules unless built in.
const TPM_MODULES: &[&str] = &["tpm_tis", "tpm_crb"];

/// The built medium.
#[derive(Debug, Clone)]
pub struct Medium {
    /// The FAT image to attach as a read-only disk.
    pub esp: PathBuf,
    /// The UKI inside it (also kept next to it).
    pub uki: PathBuf,
    /// The gzip-compressed initramfs inside the UKI.
    pub initrd: PathBuf,
    /// The kernel release (`uname -r` of the guest).
    pub kernel_release: String,
}

/// Where a file of the initramfs comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// A host file (followed through symlinks), with its permission bits.
    Host(PathBuf, u32),
    /// A host file that must be decompressed with `tool -dc`.
    Compressed(PathBuf, &'static str),
    /// Generated text.
    Text(String, u32),
    /// A symbolic link.
    Link(String),
    /// A directory.
    Dir,
    /// A character device (major, minor).
    CharDev(u32, u32),
}

/// The initramfs contents before any file is read: archive path -> source.
#[derive(Debug, Default)]
struct Plan {
    entries: BTreeMap<String, Source>,
}

impl Plan {
    fn add(&mut self, path: &str, source: Source) -> Result<()> {
        match self.entries.get(path) {
            Some(old) if *old == source => Ok(()),
            Some(old) => bail!("initramfs path {path} planned twice: {old:?} and {source:?}"),
            None => {
                self.entries.insert(path.to_string(), source);
                Ok(())
            }
        }
    }

    fn host_files(&self) -> impl Iterator<Item = &Path> {
        self.entries.values().filter_map(|s| match s {
            Source::Host(p, _) | Source::Compressed(p, _) => Some(p.as_path()),
            _ => None,
        })
    }
}

/// Builds the medium into `target/guest/` unless the cached one is current.
pub fn build(ws: &Workspace) -> Result<Medium> {
    let out = ws.target_dir().join("guest");
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let release = kernel_release()?;
    let kernel = PathBuf::from(format!("/boot/vmlinuz-{release}"));
    let modules = PathBuf::from(format!("/lib/modules/{release}"));
    if !kernel.is_file() {
        bail!(
            "{} is missing (linux-image-amd64 depends on linux-image-{release})",
            kernel.display()
        );
    }
    let plan = plan_initramfs(ws, &modules)?;
    let medium = Medium {
        esp: out.join("esp.img"),
        uki: out.join("svtpm-guest.efi"),
        initrd: out.join("initrd.cpio.gz"),
        kernel_release: release.clone(),
    };

    let stamp_path = out.join("medium.stamp");
    let stamp = stamp(&plan, &kernel, &release)?;
    let outputs_exist = [&medium.esp, &medium.uki, &medium.initrd]
        .iter()
        .all(|p| p.is_file());
    if outputs_exist && fs::read_to_string(&stamp_path).ok().as_deref() == Some(&stamp) {
        println!(
            "boot medium is up to date: {} (kernel {release})",
            medium.esp.display()
        );
        return Ok(medium);
    }
    let _ = fs::remove_file(&stamp_path);

    let archive = assemble(&plan)?;
    println!(
        "initramfs: {} entries, {:.1} MiB of files (kernel {release}, modules: {})",
        archive.len(),
        archive.content_bytes() as f64 / (1 << 20) as f64,
        plan.entries.keys().filter(|p| p.ends_with(".ko")).count()
    );
    write_initrd(&archive, &medium.initrd)?;
    let cmdline = out.join("cmdline.txt");
    fs::write(&cmdline, CMDLINE).with_context(|| format!("writing {}", cmdline.display()))?;
    make_uki(
        Path::new(EFI_STUB),
        &kernel,
        &medium.initrd,
        &cmdline,
        &medium.uki,
    )?;
    make_esp(&medium.uki, &medium.esp)?;
    fs::write(&stamp_path, stamp).with_context(|| format!("writing {}", stamp_path.display()))?;
    println!(
        "boot medium: {} ({:.1} MiB UKI, cmdline `{CMDLINE}`)",
        medium.esp.display(),
        file_len(&medium.uki)? as f64 / (1 << 20) as f64
    );
    Ok(medium)
}

/// The kernel release linux-image-amd64 currently depends on.
fn kernel_release() -> Result<String> {
    let depends = steps::stdout_of(
        Command::new("dpkg-query").args(["-W", "-f=${Depends}", "linux-image-amd64"]),
        "the linux-image-amd64 package",
    )?;
    release_from_depends(&depends).with_context(|| {
        format!("linux-image-amd64 depends on no linux-image-<release> package: `{depends}`")
    })
}

/// `linux-image-6.1.0-56-amd64 (= 6.1.192-2)` -> `6.1.0-56-amd64`.
fn release_from_depends(depends: &str) -> Option<String> {
    depends
        .split(',')
        .flat_map(|alt| alt.split('|'))
        .filter_map(|dep| dep.split_whitespace().next())
        .find_map(|name| name.strip_prefix("linux-image-"))
        .filter(|r| r.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(str::to_string)
}

/// What goes into the initramfs, and from where.
fn plan_initramfs(ws: &Workspace, modules: &Path) -> Result<Plan> {
    let mut plan = Plan::default();
    for dir in ["dev", "proc", "sys", "tmp", "run", "lib/modules"] {
        plan.add(dir, Source::Dir)?;
    }
    plan.add("dev/console", Source::CharDev(5, 1))?;
    plan.add("init", Source::Host(ws.path("guest/init"), 0o755))?;
    plan.add(
        "svtpm-check.sh",
        Source::Host(ws.path("guest/svtpm-check.sh"), 0o755),
    )?;

    let mut elves = vec![PathBuf::from(BUSYBOX), PathBuf::from(TPM2_TOOLS)];
    plan.add("bin/busybox", Source::Host(BUSYBOX.into(), 0o755))?;
    plan.add("bin/sh", Source::Link("busybox".into()))?;
    plan.add("usr/bin/tpm2", Source::Host(TPM2_TOOLS.into(), 0o755))?;
    for (name, target) in tool_links(Path::new("/usr/bin"))? {
        plan.add(&format!("usr/bin/{name}"), Source::Link(target))?;
    }
    let tcti = find_library(TCTI_DEVICE)?;
    plan.add(
        &format!("{GUEST_LIB_DIR}/{TCTI_DEVICE}"),
        Source::Host(tcti.clone(), 0o755),
    )?;
    elves.push(tcti);

    // The shared-library closure of every ELF file: each library found is
    // scanned in turn until no new one appears.
    let mut seen = std::collections::BTreeSet::new();
    while let Some(elf) = elves.pop() {
        let deps = elf_dependencies(&elf)?;
        if let Some(interp) = deps.interpreter {
            let rel = interp.trim_start_matches('/').to_string();
            plan.add(&rel, Source::Host(PathBuf::from(&interp), 0o755))?;
        }
        for soname in deps.needed {
            if seen.insert(soname.clone()) {
                let host = find_library(&soname)?;
                plan.add(
                    &format!("{GUEST_LIB_DIR}/{soname}"),
                    Source::Host(host.clone(), 0o755),
                )?;
                elves.push(host);
            }
        }
    }

    // TPM driver modules, dependencies first, unless built in.
    let builtin = read_optional(&modules.join("modules.builtin"))?;
    let dep = read_optional(&modules.join("modules.dep"))?;
    let order = module_load_order(TPM_MODULES, &builtin, &dep)?;
    let mut load = String::new();
    for rel in &order {
        let (file, tool) = decompressed_name(rel)?;
        let host = modules.join(rel);
        let source = match tool {
            Some(tool) => Source::Compressed(host, tool),
            None => Source::Host(host, 0o644),
        };
        plan.add(&format!("lib/modules/{file}"), source)?;
        load.push_str(&file);
        load.push('\n');
    }
    plan.add("lib/modules/modules.load", Source::Text(load, 0o644))?;
    Ok(plan)
}

/// The `tpm2_*` symbolic links next to the tpm2 binary: (name, target).
fn tool_links(bin: &Path) -> Result<Vec<(String, String)>> {
    let mut links = Vec::new();
    for entry in fs::read_dir(bin).with_context(|| format!("listing {}", bin.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("tpm2_") {
            continue;
        }
        if let Ok(target) = fs::read_link(entry.path()) {
            if target == Path::new("tpm2") || target == Path::new(TPM2_TOOLS) {
                links.push((name, "tpm2".to_string()));
            }
        }
    }
    links.sort();
    if links.len() < 10 {
        bail!(
            "found only {} tpm2_* links to tpm2 in {}: is tpm2-tools installed?",
            links.len(),
            bin.display()
        );
    }
    Ok(links)
}

/// What an ELF file needs from the dynamic loader.
#[derive(Debug, Default, PartialEq, Eq)]
struct ElfDeps {
    interpreter: Option<String>,
    needed: Vec<String>,
}

/// The interpreter and DT_NEEDED entries of `file`, from readelf.
fn elf_dependencies(file: &Path) -> Result<ElfDeps> {
    let text = steps::stdout_of(
        Command::new("readelf")
            .args(["--dynamic", "--program-headers", "--wide"])
            .arg(file),
        "readelf from binutils",
    )?;
    Ok(parse_readelf(&text))
}

fn parse_readelf(text: &str) -> ElfDeps {
    let bracketed = |line: &str, marker: &str| -> Option<String> {
        let rest = &line[line.find(marker)? + marker.len()..];
        Some(rest[..rest.find(']')?].trim().to_string())
    };
    let mut deps = ElfDeps::default();
    for line in text.lines() {
        if let Some(i) = bracketed(line, "Requesting program interpreter:") {
            deps.interpreter = Some(i);
        } else if line.contains("(NEEDED)") {
            if let Some(lib) = bracketed(line, "Shared library: [") {
                deps.needed.push(lib);
            }
        }
    }
    deps
}

/// The host file of the shared library `soname`.
fn find_library(soname: &str) -> Result<PathBuf> {
    LIB_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(soname))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "shared library {soname} not found in {}",
                LIB_DIRS.join(" ")
            )
        })
}

/// Module files (relative to /lib/modules/<release>) to load, in order, so
/// that `wanted` are available: nothing for built-in ones, each module after
/// the modules it depends on.
fn module_load_order(wanted: &[&str], builtin: &str, dep: &str) -> Result<Vec<String>> {
    let norm = |s: &str| s.replace('-', "_");
    let module_name = |path: &str| {
        let file = path.rsplit('/').next().unwrap_or(path);
        norm(file.split(".ko").next().unwrap_or(file))
    };
    let builtin: std::collections::BTreeSet<String> =
        builtin.lines().map(|l| module_name(l.trim())).collect();
    let deps: BTreeMap<String, (String, Vec<String>)> = dep
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(file, rest)| {
            let file = file.trim().to_string();
            let list = rest.split_whitespace().map(str::to_string).collect();
            (module_name(&file), (file, list))
        })
        .collect();

    fn visit(
        file: &str,
        deps: &BTreeMap<String, (String, Vec<String>)>,
        name_of: &dyn Fn(&str) -> String,
        order: &mut Vec<String>,
        stack: &mut Vec<String>,
    ) -> Result<()> {
        if order.iter().any(|f| f == file) {
            return Ok(());
        }
        if stack.iter().any(|f| f == file) {
            bail!("modules.dep has a dependency cycle through {file}");
        }
        stack.push(file.to_string());
        if let Some((_, list)) = deps.get(&name_of(file)) {
            for d in list {
                visit(d, deps, name_of, order, stack)?;
            }
        }
        stack.pop();
        order.push(file.to_string());
        Ok(())
    }

    let mut order = Vec::new();
    for want in wanted {
        let want = norm(want);
        if builtin.contains(&want) {
            continue;
        }
        let (file, _) = deps.get(&want).with_context(|| {
            format!("kernel module {want} is neither built in nor in modules.dep")
        })?;
        visit(file, &deps, &module_name, &mut order, &mut Vec::new())?;
    }
    Ok(order)
}

/// The file name a module gets in the initramfs, and the tool that
/// decompresses it if it is compressed.
fn decompressed_name(rel: &str) -> Result<(String, Option<&'static str>)> {
    let file = rel.rsplit('/').next().unwrap_or(rel);
    for (ext, tool) in [
        (".ko", None),
        (".ko.xz", Some("xz")),
        (".ko.zst", Some("zstd")),
    ] {
        if let Some(stem) = file.strip_suffix(ext) {
            return Ok((format!("{stem}.ko"), tool));
        }
    }
    bail!("kernel module {rel} has an unknown compression")
}

fn read_optional(path: &Path) -> Result<String> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Every input of the medium, one per line, so any change rebuilds it.
fn stamp(plan: &Plan, kernel: &Path, release: &str) -> Result<String> {
    let mut s = format!("kernel-release {release}\ncmdline {CMDLINE}\n");
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let mut inputs: Vec<&Path> = vec![kernel, Path::new(EFI_STUB), exe.as_path()];
    inputs.extend(plan.host_files());
    for p in inputs {
        let m = fs::metadata(p).with_context(|| format!("reading {}", p.display()))?;
        s.push_str(&format!(
            "{} {} {}.{}\n",
            p.display(),
            m.len(),
            m.mtime(),
            m.mtime_nsec()
        ));
    }
    for (path, source) in &plan.entries {
        if let Source::Text(text, _) = source {
            s.push_str(&format!("text {path} {text:?}\n"));
        }
    }
    Ok(s)
}

/// Reads every planned file into a newc archive.
fn assemble(plan: &Plan) -> Result<Archive> {
    let mut a = Archive::new();
    for (path, source) in &plan.entries {
        let (perm, kind) = match source {
            Source::Dir => (0o755, Kind::Dir),
            Source::CharDev(major, minor) => (0o600, Kind::CharDev(*major, *minor)),
            Source::Link(target) => (0o777, Kind::Symlink(target.clone())),
            Source::Text(text, perm) => (*perm, Kind::File(text.clone().into_bytes())),
            Source::Host(p, perm) => (
                *perm,
                Kind::File(fs::read(p).with_context(|| format!("reading {}", p.display()))?),
            ),
            Source::Compressed(p, tool) => {
                let data = steps::capture(Command::new(tool).arg("-dc").arg(p), tool)?;
                if !data.status.success() {
                    bail!("`{tool} -dc {}` failed", p.display());
                }
                (0o644, Kind::File(data.stdout))
            }
        };
        a.add(path, perm, kind)?;
    }
    Ok(a)
}

/// Writes the archive and compresses it with `gzip -n` (no name, no time).
fn write_initrd(archive: &Archive, gz: &Path) -> Result<()> {
    let raw = gz.with_extension("");
    fs::write(&raw, archive.to_bytes()?).with_context(|| format!("writing {}", raw.display()))?;
    let _ = fs::remove_file(gz);
    steps::run(Command::new("gzip").args(["-n", "-6", "-f"]).arg(&raw))?;
    if !gz.is_file() {
        bail!("gzip wrote no {}", gz.display());
    }
    Ok(())
}

/// Where the added sections go: one after the other from the page after the
/// stub's image, `.linux` last (the kernel relocates itself from there).
#[derive(Debug, PartialEq, Eq)]
struct UkiLayout {
    cmdline: u64,
    initrd: u64,
    linux: u64,
}

fn uki_layout(stub_end: u64, cmdline_len: u64, initrd_len: u64) -> UkiLayout {
    let page = |x: u64| x.div_ceil(0x1000) * 0x1000;
    let cmdline = page(stub_end);
    let initrd = page(cmdline + cmdline_len);
    let linux = page(initrd + initrd_len);
    UkiLayout {
        cmdline,
        initrd,
        linux,
    }
}

/// ImageBase + SizeOfImage of a PE32+ file: the first address after it.
fn pe_image_end(pe: &[u8]) -> Result<u64> {
    let u16_at = |o: usize| pe.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        pe.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        pe.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    };
    if pe.get(..2) != Some(b"MZ") {
        bail!("not a PE file (no MZ header)");
    }
    let pe_off = u32_at(0x3C).context("truncated DOS header")? as usize;
    if pe.get(pe_off..pe_off + 4) != Some(b"PE\0\0") {
        bail!("not a PE file (no PE signature)");
    }
    let opt = pe_off + 24;
    if u16_at(opt) != Some(0x20B) {
        bail!("not a PE32+ image");
    }
    let base = u64_at(opt + 24).context("truncated optional header")?;
    let size = u32_at(opt + 56).context("truncated optional header")?;
    Ok(base + u64::from(size))
}

/// `objcopy` the stub with the command line, initramfs and kernel as sections.
fn make_uki(stub: &Path, kernel: &Path, initrd: &Path, cmdline: &Path, out: &Path) -> Result<()> {
    let stub_bytes = fs::read(stub).with_context(|| format!("reading {}", stub.display()))?;
    let end = pe_image_end(&stub_bytes).with_context(|| format!("parsing {}", stub.display()))?;
    let layout = uki_layout(end, file_len(cmdline)?, file_len(initrd)?);
    let mut cmd = Command::new("objcopy");
    for (name, file, vma) in [
        (".cmdline", cmdline, layout.cmdline),
        (".initrd", initrd, layout.initrd),
        (".linux", kernel, layout.linux),
    ] {
        cmd.arg("--add-section")
            .arg(format!("{name}={}", file.display()))
            .arg("--change-section-vma")
            .arg(format!("{name}={vma:#x}"))
            .arg("--set-section-flags")
            .arg(format!("{name}=data,readonly"));
    }
    cmd.arg(stub).arg(out);
    steps::run(&mut cmd)
}

/// A FAT file system image holding the UKI at the removable-media boot path.
fn make_esp(uki: &Path, esp: &Path) -> Result<()> {
    let _ = fs::remove_file(esp);
    // Room for the UKI plus FAT overhead, in KiB blocks.
    let kib = (file_len(uki)? * 11 / 10 + (4 << 20)) / 1024;
    steps::run(
        Command::new("mkfs.fat")
            .args(["-C", "-i", "5356544d", "-n", "SVTPM-ESP"])
            .arg(esp)
            .arg(kib.to_string()),
    )?;
    let mtools = |args: &[&str], extra: Option<&Path>| {
        let mut c = Command::new(args[0]);
        c.env("MTOOLS_SKIP_CHECK", "1").arg("-i").arg(esp);
        if let Some(p) = extra {
            c.arg(p);
        }
        c.args(&args[1..]);
        steps::run(&mut c)
    };
    mtools(&["mmd", "::/EFI", "::/EFI/BOOT"], None)?;
    mtools(&["mcopy", "::/EFI/BOOT/BOOTX64.EFI"], Some(uki))
}

fn file_len(p: &Path) -> Result<u64> {
    Ok(fs::metadata(p)
        .with_context(|| format!("reading {}", p.display()))?
        .len())
}

/// Step `name` of `s`: builds (or reuses) the guest boot medium.
pub fn medium_step(ws: &Workspace, s: &mut Steps, name: &str) -> Result<Medium> {
    let mut medium = None;
    s.run(name, || {
        medium = Some(build(ws)?);
        Ok(Outcome::Done)
    })?;
    medium.context("no boot medium")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_release_comes_from_the_metapackage_dependency() {
        assert_eq!(
            release_from_depends("linux-image-6.1.0-56-amd64 (= 6.1.192-2)").as_deref(),
            Some("6.1.0-56-amd64")
        );
        assert_eq!(
            release_from_depends("linux-base, linux-image-6.12.9-amd64 (= 6.12.9-1)").as_deref(),
            Some("6.12.9-amd64")
        );
        assert_eq!(release_from_depends("linux-image-amd64-signed"), None);
        assert_eq!(release_from_depends(""), None);
    }

    #[test]
    fn readelf_output_gives_interpreter_and_needed() {
        let text = "\
Program Headers:
  INTERP         0x000318 0x0000000000000318 0x0000000000000318 0x00001c 0x00001c R   0x1
      [Requesting program interpreter: /lib64/ld-linux-x86-64.so.2]
Dynamic section at offset 0x2d000 contains 30 entries:
  Tag        Type                         Name/Value
 0x0000000000000001 (NEEDED)             Shared library: [libtss2-esys.so.0]
 0x0000000000000001 (NEEDED)             Shared library: [libc.so.6]
 0x000000000000000e (SONAME)             Library soname: [libfoo.so.1]
";
        assert_eq!(
            parse_readelf(text),
            ElfDeps {
                interpreter: Some("/lib64/ld-linux-x86-64.so.2".into()),
                needed: vec!["libtss2-esys.so.0".into(), "libc.so.6".into()],
            }
        );
        assert_eq!(
            parse_readelf("There is no dynamic section in this file.\n"),
            ElfDeps::default()
        );
    }

    #[test]
    fn modules_load_after_their_dependencies_and_builtins_are_skipped() {
        let dep = "\
kernel/drivers/char/tpm/tpm_crb.ko.xz: kernel/drivers/char/tpm/tpm.ko.xz kernel/lib/asn1.ko.xz
kernel/drivers/char/tpm/tpm_tis.ko.xz: kernel/drivers/char/tpm/tpm_tis_core.ko.xz kernel/drivers/char/tpm/tpm.ko.xz
kernel/drivers/char/tpm/tpm_tis_core.ko.xz: kernel/drivers/char/tpm/tpm.ko.xz
kernel/drivers/char/tpm/tpm.ko.xz: kernel/lib/asn1.ko.xz
kernel/lib/asn1.ko.xz:
";
        let order = module_load_order(&["tpm_tis", "tpm_crb"], "", dep).unwrap();
        let names: Vec<&str> = order
            .iter()
            .map(|p| p.rsplit('/').next().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "asn1.ko.xz",
                "tpm.ko.xz",
                "tpm_tis_core.ko.xz",
                "tpm_tis.ko.xz",
                "tpm_crb.ko.xz"
            ]
        );
        let builtin = "kernel/drivers/char/tpm/tpm_tis.ko\nkernel/drivers/char/tpm/tpm_crb.ko\n";
        assert!(module_load_order(&["tpm_tis", "tpm_crb"], builtin, dep)
            .unwrap()
            .is_empty());
        assert!(module_load_order(&["tpm_nope"], builtin, dep).is_err());
        let cycle = "a.ko: b.ko\nb.ko: a.ko\n";
        assert!(module_load_order(&["a"], "", cycle).is_err());
    }

    #[test]
    fn compressed_modules_are_named_ko_in_the_initramfs() {
        assert_eq!(
            decompressed_name("k/tpm.ko").unwrap(),
            ("tpm.ko".into(), None)
        );
        assert_eq!(
            decompressed_name("k/tpm.ko.xz").unwrap(),
            ("tpm.ko".into(), Some("xz"))
        );
        assert_eq!(
            decompressed_name("k/tpm.ko.zst").unwrap(),
            ("tpm.ko".into(), Some("zstd"))
        );
        assert!(decompressed_name("k/tpm.ko.gz").is_err());
    }

    #[test]
    fn uki_sections_follow_the_stub_without_overlap() {
        let l = uki_layout(0x19300, 30, 0x8d_0001);
        assert_eq!(l.cmdline, 0x1a000);
        assert_eq!(l.initrd, 0x1b000);
        assert_eq!(l.linux, 0x1b000 + 0x8d_1000);
    }

    #[test]
    fn pe_image_end_reads_base_and_size() {
        let mut pe = vec![0u8; 0x200];
        pe[..2].copy_from_slice(b"MZ");
        pe[0x3C..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        pe[0x80..0x84].copy_from_slice(b"PE\0\0");
        let opt = 0x80 + 24;
        pe[opt..opt + 2].copy_from_slice(&0x20Bu16.to_le_bytes());
        pe[opt + 24..opt + 32].copy_from_slice(&0x1000u64.to_le_bytes());
        pe[opt + 56..opt + 60].copy_from_slice(&0x19300u32.to_le_bytes());
        assert_eq!(pe_image_end(&pe).unwrap(), 0x1a300);
        pe[opt] = 0x0B;
        pe[opt + 1] = 0x01; // PE32
        assert!(pe_image_end(&pe).is_err());
        assert!(pe_image_end(b"MZ").is_err());
        assert!(pe_image_end(b"\x7fELF").is_err());
    }

    #[test]
    fn plan_holds_the_tools_every_library_they_need_and_the_tcti() {
        // linux-image-amd64, busybox-static and tpm2-tools are packages
        // `cargo xtask test` installs.
        let ws = Workspace::locate().unwrap();
        let modules = PathBuf::from(format!("/lib/modules/{}", kernel_release().unwrap()));
        let plan = plan_initramfs(&ws, &modules).unwrap();
        let has = |p: &str| plan.entries.contains_key(p);
        for p in [
            "init",
            "svtpm-check.sh",
            "dev/console",
            "bin/busybox",
            "bin/sh",
            "usr/bin/tpm2",
            "usr/bin/tpm2_unseal",
            "usr/bin/tpm2_eventlog",
            "lib64/ld-linux-x86-64.so.2",
            "lib/x86_64-linux-gnu/libc.so.6",
            "lib/x86_64-linux-gnu/libtss2-esys.so.0",
            "lib/x86_64-linux-gnu/libtss2-tcti-device.so.0",
            "lib/modules/modules.load",
        ] {
            assert!(has(p), "{p} missing from the initramfs plan");
        }
        // Every DT_NEEDED entry of every planned library is planned too.
        for (path, source) in &plan.entries {
            if let (true, Source::Host(host, _)) = (path.starts_with(GUEST_LIB_DIR), source) {
                for needed in elf_dependencies(host).unwrap().needed {
                    assert!(
                        has(&format!("{GUEST_LIB_DIR}/{needed}")),
                        "{needed} of {path}"
                    );
                }
            }
        }
        // Every module init loads is in the archive.
        let Some(Source::Text(load, _)) = plan.entries.get("lib/modules/modules.load") else {
            panic!("modules.load is not generated text");
        };
        for ko in load.lines() {
            assert!(has(&format!("lib/modules/{ko}")), "{ko}");
        }
    }

    #[test]
    fn debian_systemd_stub_parses_when_installed() {
        // systemd-boot-efi is one of the packages `cargo xtask test` installs.
        let stub = fs::read(EFI_STUB)
            .expect("systemd-boot-efi must be installed: run `cargo xtask setup`");
        let end = pe_image_end(&stub).unwrap();
        assert!(end > 0x1000 && end < 0x100_0000, "{end:#x}");
    }
}
