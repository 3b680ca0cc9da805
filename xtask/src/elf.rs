//! The freestanding image: whether it exists yet, building it, and the check
//! that its ELF is fully linked (no undefined symbols, no shared libraries).
//!
//! A libtpms/libcrypto symbol the libc shim does not provide would otherwise
//! only show up as a crash at run time, so the link check is part of
//! `cargo xtask test`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::steps::{self, Outcome, Steps};
use crate::toolchain::IMAGE_TARGET;
use crate::workspace::Workspace;

/// The image's binary target in the `svtpm` package.
pub const IMAGE_BIN: &str = "svtpm";

/// Why the image steps do not apply yet, or `None` when they do.
///
/// The image is the `svtpm` binary built for x86_64-unknown-none; it can only
/// build there once `src/main.rs` is a freestanding program, i.e. has a
/// crate-level `no_main` (plain or under `cfg_attr`).
pub fn image_missing(ws: &Workspace) -> Result<Option<String>> {
    let main = ws.path("src/main.rs");
    let text =
        std::fs::read_to_string(&main).with_context(|| format!("reading {}", main.display()))?;
    if declares_no_main(&text) {
        Ok(None)
    } else {
        Ok(Some(
            "src/main.rs is not a freestanding (no_main) image yet".to_string(),
        ))
    }
}

/// Whether a crate root has a `#![no_main]` or `#![cfg_attr(..., no_main)]`.
fn declares_no_main(crate_root: &str) -> bool {
    crate_root.lines().map(str::trim).any(|l| {
        l.starts_with("#![")
            && l.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|w| w == "no_main")
    })
}

/// Builds the release image and returns the path of its ELF.
pub fn build_image(ws: &Workspace) -> Result<PathBuf> {
    let mut cmd = ws.cargo();
    cmd.args([
        "build",
        "--release",
        "--package",
        "svtpm",
        "--target",
        IMAGE_TARGET,
    ])
    .args(["--bin", IMAGE_BIN]);
    let messages = cargo_build(&mut cmd, "the image")?;
    executable_from_messages(&messages, IMAGE_BIN)
        .context("cargo reported no executable for the image")
}

/// Runs the `cargo build` command `cmd` with JSON messages on stdout and
/// diagnostics on the terminal; returns the messages. `what` names what
/// was built in the error.
pub fn cargo_build(cmd: &mut Command, what: &str) -> Result<String> {
    cmd.arg("--message-format=json-render-diagnostics")
        .stderr(std::process::Stdio::inherit());
    println!("$ {}", steps::describe(cmd));
    let out = cmd
        .output()
        .with_context(|| format!("could not start `{}`", steps::describe(cmd)))?;
    if !out.status.success() {
        bail!("building {what} failed ({})", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `executable` of the compiler-artifact message of binary `bin`.
pub fn executable_from_messages(messages: &str, bin: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == bin)
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
}

/// Checks that `elf` has no undefined symbols and needs no shared library.
pub fn check_fully_linked(elf: &Path) -> Result<()> {
    let dynamic = steps::stdout_of(
        Command::new("readelf").arg("--dynamic").arg(elf),
        "readelf from binutils",
    )?;
    let needed: Vec<&str> = dynamic.lines().filter(|l| l.contains("(NEEDED)")).collect();
    if !needed.is_empty() {
        bail!(
            "{} needs shared libraries: {}",
            elf.display(),
            needed.join("; ")
        );
    }
    let symbols = steps::stdout_of(
        Command::new("readelf").args(["--syms", "--wide"]).arg(elf),
        "readelf from binutils",
    )?;
    if !symbols.contains("Symbol table") {
        bail!(
            "{} has no symbol table (stripped?): cannot check it",
            elf.display()
        );
    }
    let undefined = undefined_symbols(&symbols);
    if !undefined.is_empty() {
        let shown: Vec<&str> = undefined.iter().take(40).map(String::as_str).collect();
        bail!(
            "{} has {} undefined symbols (the libc shim or a stub is missing them): {}{}",
            elf.display(),
            undefined.len(),
            shown.join(" "),
            if undefined.len() > shown.len() {
                " ..."
            } else {
                ""
            }
        );
    }
    let size = std::fs::metadata(elf)
        .with_context(|| format!("reading {}", elf.display()))?
        .len();
    println!(
        "{}: fully linked, no undefined symbols ({:.1} MiB)",
        elf.display(),
        size as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

/// Names of the undefined symbols in `readelf --syms --wide` output (both the
/// static and the dynamic table): entries whose section index is `UND`, minus
/// the unnamed null entry every table starts with.
fn undefined_symbols(readelf_output: &str) -> Vec<String> {
    let mut names: Vec<String> = readelf_output
        .lines()
        .filter_map(|l| {
            // Num: Value Size Type Bind Vis Ndx Name [version info]
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 8 && f[0].ends_with(':') && f[6] == "UND").then(|| f[7].to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Step `name` of `s`: builds the release image. Returns the image, or why
/// the step was skipped (the image's target or linker inputs are missing).
pub fn image_step(ws: &Workspace, s: &mut Steps, name: &str) -> Result<Result<PathBuf, String>> {
    let mut image = Err(String::new());
    s.run(name, || {
        if let Some(why) = image_missing(ws)? {
            image = Err(why.clone());
            return Ok(Outcome::Skipped(why));
        }
        image = Ok(build_image(ws)?);
        Ok(Outcome::Done)
    })?;
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_binary_artifact_among_cargo_messages() {
        let msgs = r#"{"reason":"compiler-artifact","target":{"name":"svtpm","kind":["lib"]},"executable":null}
{"reason":"compiler-artifact","target":{"name":"svtpm","kind":["bin"]},"executable":"/t/x86_64-unknown-none/release/svtpm"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            executable_from_messages(msgs, "svtpm"),
            Some(PathBuf::from("/t/x86_64-unknown-none/release/svtpm"))
        );
        assert_eq!(executable_from_messages(msgs, "other"), None);
    }

    #[test]
    fn no_main_is_found_plain_or_under_cfg_attr() {
        assert!(declares_no_main("//! doc\n#![no_std]\n#![no_main]\n"));
        assert!(declares_no_main(
            "#![cfg_attr(target_os = \"none\", no_std, no_main)]\nfn main() {}"
        ));
        assert!(!declares_no_main("//! no_main later\nfn main() {}\n"));
        assert!(!declares_no_main("#![no_std]\n#![no_mangle_everything]\n"));
    }

    #[test]
    fn readelf_output_yields_the_undefined_names() {
        let out = "Symbol table '.symtab' contains 4 entries:
   Num:    Value          Size Type    Bind   Vis      Ndx Name
     0: 0000000000000000     0 NOTYPE  LOCAL  DEFAULT  UND 
     1: 0000000000000000     0 FILE    LOCAL  DEFAULT  ABS shim.c
     2: 0000000000001000    16 FUNC    GLOBAL DEFAULT    1 memcpy
     3: 0000000000000000     0 NOTYPE  GLOBAL DEFAULT  UND __longjmp_chk
     4: 0000000000000000     0 NOTYPE  WEAK   DEFAULT  UND __gmon_start__
";
        assert_eq!(undefined_symbols(out), ["__gmon_start__", "__longjmp_chk"]);
    }

    #[test]
    fn link_check_rejects_a_dynamically_linked_program() {
        // Any ordinary host program needs libc.so.
        let err = check_fully_linked(Path::new("/bin/true")).unwrap_err();
        assert!(format!("{err}").contains("needs shared libraries"), "{err}");
    }

    #[test]
    fn link_check_rejects_an_object_with_an_unresolved_call() {
        let dir = std::env::temp_dir().join(format!("xtask-elf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("unresolved.c");
        let obj = dir.join("unresolved.o");
        std::fs::write(
            &src,
            "int svtpm_missing(void); int f(void) { return svtpm_missing(); }\n",
        )
        .unwrap();
        let status = Command::new("gcc")
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .status()
            .unwrap();
        assert!(status.success());
        let err = check_fully_linked(&obj).unwrap_err();
        let _ = std::fs::remove_dir_all(&dir);
        let text = format!("{err}");
        assert!(
            text.contains("1 undefined symbols") && text.contains("svtpm_missing"),
            "{text}"
        );
    }
}
