//! The attested boot in `cargo xtask test`: the image, svtpm-proxy and the
//! development broker end to end, then every way the boot must be refused.
//!
//! - Set-up: the host programs, a stack directory `target/svtpm-test/`
//!   (fresh each run except its two test chains), the
//!   policy allowing the image as built, a freshly provisioned vTPM.
//! - Boot 1 (TIS): the image provisions the new vTPM; the guest passes its
//!   checks and writes an NV index (`SVTPM-PERSIST wrote`).
//! - Boot 2 (CRB): a new proxy and QEMU on the same broker data and state
//!   directory; the image opens the state at the generation the broker
//!   recorded, the guest reads the NV value back and sees the same EK, then
//!   writes a new value (so the generation advances), while the proxy
//!   records the attest request for the replay case.
//! - Refused boots ([`crate::refusal`]), each its own step.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};

use crate::acpi;
use crate::console::Persist;
use crate::guest::Medium;
use crate::hosttools::{self, HostTools};
use crate::imagelog::{ImageBoot, StateOutcome};
use crate::interrupt;
use crate::qemu::{self, Report, Tpm};
use crate::refusal;
use crate::run::Interface;
use crate::snapshot::Snapshot;
use crate::stack::{self, Stack, StackDir};
use crate::steps::{Outcome, Steps};
use crate::workspace::Workspace;

/// The time limit of a boot that runs the guest's checks.
const GUEST_BOOT_TIMEOUT: Duration = Duration::from_secs(360);

/// What the steps share.
#[derive(Debug)]
pub struct Ctx {
    /// The host programs.
    pub tools: HostTools,
    /// `target/svtpm-test/`.
    pub dir: StackDir,
    /// The image under test.
    pub image: PathBuf,
    /// Its launch digest.
    pub measurement: String,
    /// The vTPM the boots use.
    pub id: String,
    /// A second test chain, unknown to the broker.
    pub other_chain: PathBuf,
    /// Where boot 2's proxy records its attest request.
    pub attest_body: PathBuf,
    /// What boot 1 left.
    pub after_boot1: Option<AfterBoot1>,
}

/// What boot 1 left behind.
#[derive(Debug, Clone)]
pub struct AfterBoot1 {
    /// The NV value and EK the guest reported.
    pub persist: Persist,
    /// The proxy's state directory.
    pub state: Snapshot,
    /// The broker's generation record.
    pub record: u64,
    /// The secrets page boot 1 ran with (boot 2 must get new VMPCKs).
    pub secrets: Vec<u8>,
}

/// Adds the attested steps to `s`: skipped with the reason when there is
/// no image.
pub fn steps(
    ws: &Workspace,
    s: &mut Steps,
    image: Result<&Path, &str>,
    medium: &Medium,
) -> Result<()> {
    let mut ctx: Result<Ctx, String> = Err(String::new());
    s.run(
        "attested stack set-up (host programs, test chains, policy, new vTPM)",
        || match image {
            Ok(image) => {
                ctx = Ok(setup(ws, image)?);
                Ok(Outcome::Done)
            }
            Err(why) => {
                ctx = Err(why.to_string());
                Ok(Outcome::Skipped(why.to_string()))
            }
        },
    )?;
    s.run(
        "attested boot 1 (TIS): the image provisions the new vTPM, guest checks, NV index written",
        || match &mut ctx {
            Ok(c) => boot1(ws, c, medium),
            Err(why) => Ok(Outcome::Skipped(why.clone())),
        },
    )?;
    s.run(
        "attested boot 2 (CRB): new proxy and QEMU, same vTPM reopened, NV value and EK read back",
        || match &mut ctx {
            Ok(c) => boot2(ws, c, medium),
            Err(why) => Ok(Outcome::Skipped(why.clone())),
        },
    )?;
    for case in refusal::CASES {
        s.run(
            &format!("refused before the guest: {}", case.title),
            || match &ctx {
                Ok(c) => refusal::run(ws, c, case),
                Err(why) => Ok(Outcome::Skipped(why.clone())),
            },
        )?;
    }
    Ok(())
}

/// Host programs, directory, chains, policy, vTPM.
fn setup(ws: &Workspace, image: &Path) -> Result<Ctx> {
    interrupt::install()?;
    let tools = HostTools::build(ws, hosttools::ALL)?;
    let dir = StackDir::new(ws.target_dir().join("svtpm-test"));
    let other_chain = dir.root().join("chain-other");
    let psp_sim_changed = newest_change(&ws.path("host/psp-sim/src"))?
        .max(std::fs::metadata(ws.path("host/psp-sim/Cargo.toml"))?.modified()?);
    fresh_test_dir(&dir, &other_chain, psp_sim_changed)?;
    dir.ensure_base(&tools)?;
    if tools.gen_chain(&other_chain)? {
        println!(
            "second test chain (the bad-chain case) in {}",
            other_chain.display()
        );
    }
    let measurement = tools.measure(image)?;
    dir.write_policy(std::slice::from_ref(&measurement))?;
    let (id, new) = dir.ensure_vtpm(&tools, None)?;
    if !new {
        bail!("{} was not fresh: vTPM {id} existed", dir.root().display());
    }
    println!(
        "image launch digest {measurement}\nvTPM {id} provisioned in {}",
        dir.kbs_data().display()
    );
    Ok(Ctx {
        tools,
        attest_body: dir.root().join("attest-request.json"),
        dir,
        image: image.to_path_buf(),
        measurement,
        id,
        other_chain,
        after_boot1: None,
    })
}

/// Empties the test directory but for the chains, which take seconds to
/// generate; they are regenerated when svtpm-psp-sim's
/// sources (`changed`: their newest modification) changed since.
fn fresh_test_dir(dir: &StackDir, other_chain: &Path, changed: SystemTime) -> Result<()> {
    let keep = [dir.chain(), other_chain.to_path_buf()];
    for k in &keep {
        let made = std::fs::metadata(k.join("ark.pem"))
            .or_else(|_| std::fs::metadata(k))
            .and_then(|m| m.modified());
        if made.is_ok_and(|t| t < changed) {
            remove(k)?;
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir.root()) {
        for e in entries {
            let path = e?.path();
            if !keep.contains(&path) {
                remove(&path)?;
            }
        }
    }
    Ok(())
}

/// The newest modification time of the files under `dir`.
fn newest_change(dir: &Path) -> Result<SystemTime> {
    let mut newest = SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let t = if kind.is_dir() {
            newest_change(&entry.path())?
        } else {
            entry.metadata()?.modified()?
        };
        newest = newest.max(t);
    }
    Ok(newest)
}

fn remove(path: &Path) -> Result<()> {
    let r = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match r {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// One attested boot with the guest's checks; `smbios` adds a guest
/// setting, `faults` proxy faults.
fn guest_boot(
    ws: &Workspace,
    ctx: &Ctx,
    name: &str,
    interface: Interface,
    medium: &Medium,
    smbios: Option<&str>,
    faults: Vec<String>,
) -> Result<Report> {
    let logs = ctx.dir.root().join(name);
    let tables = acpi::write_tables(&ws.target_dir().join("guest/acpi"), interface)?;
    let cfg = stack::Config {
        logs: logs.clone(),
        faults,
        ..stack::Config::on(&ctx.dir, &ctx.image, &ctx.id)
    };
    let mut stack = Stack::start(&ctx.tools, &cfg)?;
    let extra: Vec<String> = smbios
        .map(|v| vec!["-smbios".to_string(), format!("type=11,value={v}")])
        .unwrap_or_default();
    let report = qemu::boot_into(
        ws,
        &qemu::Boot {
            medium: Some(medium),
            image: Some(&ctx.image),
            acpi: Some(&tables),
            append: stack::attested_cmdline(&ctx.id),
            hostchan: Some(stack.hostchan()),
            epoch: Some(stack.epoch),
            ..qemu::Boot::new(Tpm::Svtpm, interface, GUEST_BOOT_TIMEOUT)
        },
        &logs,
        &extra,
    )?;
    stack.stop();
    println!("{}", report.timing_line());
    println!("{}", ImageBoot::from_lines(&report.lines).summary());
    report.verdict(&qemu::required_checks(interface))?;
    Ok(report)
}

/// The secrets page the last boot ran with.
fn read_secrets(ctx: &Ctx) -> Result<Vec<u8>> {
    let path = ctx.dir.secrets();
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

fn record_of(ctx: &Ctx) -> Result<u64> {
    let text = ctx
        .dir
        .generation_record(&ctx.id)?
        .with_context(|| format!("the broker has no generation record of vTPM {}", ctx.id))?;
    text.parse()
        .with_context(|| format!("the broker's generation record is not a number: {text:?}"))
}

fn boot1(ws: &Workspace, ctx: &mut Ctx, medium: &Medium) -> Result<Outcome> {
    let report = guest_boot(ws, ctx, "boot1", Interface::Tis, medium, None, Vec::new())?;
    let image = ImageBoot::from_lines(&report.lines);
    let want = StateOutcome::Provisioned {
        id: ctx.id.clone(),
        generation: 1,
    };
    if image.state.as_ref() != Some(&want) {
        bail!(
            "the image did not provision vTPM {} as generation 1: {}",
            ctx.id,
            image.summary()
        );
    }
    let persist = match report.summary.persist.as_slice() {
        [p] if p.wrote => p.clone(),
        other => bail!("boot 1 must write the NV index once on the new TPM; it reported {other:?}"),
    };
    let record = record_of(ctx)?;
    let state = Snapshot::take(&ctx.dir.state(&ctx.id))?;
    if state.len() == 0 {
        bail!("the proxy's state directory is empty after the boot");
    }
    println!(
        "boot 1: NV value {} written, EK sha256 {}; broker generation record {record}; \
         {} state files ({} bytes) in {}",
        persist.value,
        persist.ek,
        state.len(),
        state.bytes(),
        ctx.dir.state(&ctx.id).display()
    );
    ctx.after_boot1 = Some(AfterBoot1 {
        persist,
        state,
        record,
        secrets: read_secrets(ctx)?,
    });
    Ok(Outcome::Done)
}

fn boot2(ws: &Workspace, ctx: &mut Ctx, medium: &Medium) -> Result<Outcome> {
    let Some(b1) = ctx.after_boot1.clone() else {
        bail!("boot 1 left nothing to compare with");
    };
    let report = guest_boot(
        ws,
        ctx,
        "boot2",
        Interface::Crb,
        medium,
        Some("svtpm.persist=rewrite"),
        vec![format!("record-attest={}", ctx.attest_body.display())],
    )?;
    let image = ImageBoot::from_lines(&report.lines);
    match &image.state {
        Some(StateOutcome::Opened { id, generation, .. })
            if *id == ctx.id && *generation == b1.record => {}
        _ => bail!(
            "the image did not open vTPM {} at generation {} (the broker's record after \
             boot 1): {}",
            ctx.id,
            b1.record,
            image.summary()
        ),
    }
    carried_over(&b1.persist, &report.summary.persist).map_err(anyhow::Error::msg)?;
    // Boot 1 ended with TPM2_Shutdown, committed before QEMU exited: the
    // TPM must not count it as a power loss.
    match report.summary.check("da-counter") {
        Some(c) if c.detail.starts_with("failed-auth counter 0 ") => {}
        other => bail!("boot 1 did not end with an orderly TPM shutdown the state kept: {other:?}"),
    }
    if read_secrets(ctx)? == b1.secrets {
        bail!(
            "boot 2 ran with boot 1's secrets page: the same VMPCK0 with message \
             counters restarted at 1 repeats AES-GCM IVs"
        );
    }
    let record = record_of(ctx)?;
    if record <= b1.record {
        bail!(
            "the broker's generation record did not advance in boot 2 ({} -> {record}) \
             although the guest wrote NV",
            b1.record
        );
    }
    let body = std::fs::metadata(&ctx.attest_body)
        .map(|m| m.len())
        .unwrap_or(0);
    if body == 0 {
        bail!(
            "the proxy recorded no attest request in {}",
            ctx.attest_body.display()
        );
    }
    println!(
        "boot 2: NV value {} and EK {} read back; generation record {} -> {record}; \
         attest request recorded ({body} bytes)",
        b1.persist.value, b1.persist.ek, b1.record
    );
    Ok(Outcome::Done)
}

/// Whether the second boot read back what the first wrote, under the same
/// EK: the first boot wrote exactly once, the second's first line is a read
/// of that value.
pub fn carried_over(first: &Persist, second: &[Persist]) -> Result<(), String> {
    if !first.wrote {
        return Err("the first boot did not write the NV index".into());
    }
    let Some(read) = second.first() else {
        return Err("the second boot printed no SVTPM-PERSIST line".into());
    };
    if read.wrote {
        return Err(format!(
            "the second boot found no NV index and wrote a new one ({}): the TPM state \
             did not persist",
            read.value
        ));
    }
    if read.value != first.value {
        return Err(format!(
            "the second boot read {} from the NV index, the first wrote {}",
            read.value, first.value
        ));
    }
    if read.ek != first.ek {
        return Err(format!(
            "the EK changed between the boots ({} -> {}): not the same TPM",
            first.ek, read.ek
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(wrote: bool, value: &str, ek: &str) -> Persist {
        Persist {
            wrote,
            value: value.into(),
            ek: ek.into(),
        }
    }

    #[test]
    fn persistence_needs_the_same_value_and_ek_read_back() {
        let w = p(true, "aa", "e1");
        assert!(carried_over(&w, &[p(false, "aa", "e1")]).is_ok());
        assert!(carried_over(&w, &[p(false, "aa", "e1"), p(true, "bb", "e1")]).is_ok());
        let cases = [
            (vec![], "no SVTPM-PERSIST"),
            (vec![p(true, "cc", "e1")], "did not persist"),
            (vec![p(false, "ab", "e1")], "read ab"),
            (vec![p(false, "aa", "e2")], "EK changed"),
        ];
        for (second, want) in cases {
            let err = carried_over(&w, &second).unwrap_err();
            assert!(err.contains(want), "{err}");
        }
        assert!(carried_over(&p(false, "aa", "e1"), &[p(false, "aa", "e1")]).is_err());
    }
}
