//! The sealed-state boot on the svm platform: attaches the host channel the
//! command line names, takes VMPCK0 from the secrets page, and runs
//! [`unlock`](crate::unlock::unlock) with the channel as the way to the
//! key broker, the PSP and the state store. What comes back is the
//! storage the engine runs on. Every failure is a [`SealedError`] naming
//! its stage; nothing is written before the state has been opened.
//!
//! On this platform the secrets page arrives as the fw_cfg file
//! `opt/svtpm/secrets` (the "launch" of a simulated SNP guest); on SEV-SNP
//! the PSP places it in the guest's memory at launch and it never passes
//! through the host.
// The channel's memory: a raw pointer into the identity-mapped hidden slot.
#![allow(unsafe_code)]

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use core::fmt;
use core::ops::Range;

use zeroize::Zeroizing;

use super::bootcfg::{BootConfig, ChannelRange};
use crate::arch::clock;
use crate::arch::entropy::HwEntropy;
use crate::arch::fwcfg;
use crate::arch::fwcfg_io::FwCfg;
use crate::attest::kbs::VtpmId;
use crate::attest::snp::{GuestMessenger, SecretsPage, SnpEvidence};
use crate::engine::NvStorage;
use crate::hostchan::{Channel, ChannelGuestRequest, ChannelHttp, ChannelSlots, MemRegion};
use crate::unlock::{self, Clock, Outcome};

/// The fw_cfg file holding the secrets page.
pub const SECRETS_FILE: &str = "opt/svtpm/secrets";
/// How long to wait for the proxy to serve the channel.
const ATTACH_WAIT_MS: u64 = 30_000;
/// The first wait between attempts at the broker.
const BACKOFF_MS: u64 = 1_000;
/// Size of a secrets page.
const SECRETS_LEN: usize = 4096;

/// Why the sealed boot stopped, with the stage for the console.
#[derive(Debug)]
pub struct SealedError {
    /// The stage ("configuration", "host channel", "secrets page",
    /// "attestation", "key release", "state").
    pub stage: &'static str,
    /// What went wrong.
    pub reason: String,
}

impl SealedError {
    fn new(stage: &'static str, reason: impl fmt::Display) -> Self {
        Self {
            stage,
            reason: reason.to_string(),
        }
    }
}

impl fmt::Display for SealedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.stage, self.reason)
    }
}

/// The TSC clock; waiting spins.
struct ImageClock;

impl Clock for ImageClock {
    fn now_ms(&self) -> u64 {
        clock::now_ns() / 1_000_000
    }
    fn sleep_ms(&self, ms: u64) {
        let until = clock::now_ns().saturating_add(ms.saturating_mul(1_000_000));
        while clock::now_ns() < until {
            core::hint::spin_loop();
        }
    }
}

fn now_ms() -> u64 {
    clock::now_ns() / 1_000_000
}

/// Reads the secrets page into private memory.
fn secrets_page(fw: &FwCfg) -> Result<SecretsPage, SealedError> {
    let stage = "secrets page";
    let files = fw
        .files()
        .map_err(|e| SealedError::new(stage, format!("{e:?}")))?;
    let file = fwcfg::find(&files, SECRETS_FILE).map_err(|_| {
        SealedError::new(
            stage,
            format!("no fw_cfg file {SECRETS_FILE} (the SNP secrets page of this launch)"),
        )
    })?;
    if file.size as usize != SECRETS_LEN {
        return Err(SealedError::new(
            stage,
            format!(
                "{SECRETS_FILE} is {} bytes, expected {SECRETS_LEN}",
                file.size
            ),
        ));
    }
    let mut buf = Zeroizing::new(vec![0u8; SECRETS_LEN]);
    fw.read_file(file, &mut buf)
        .map_err(|e| SealedError::new(stage, format!("{e:?}")))?;
    SecretsPage::read(&buf).map_err(|e| SealedError::new(stage, e))
}

/// The shared channel, for the life of the image.
fn attach(
    range: Range<u64>,
    image: &Range<u64>,
    timeout_ms: u64,
) -> Result<&'static spin::Mutex<Channel<MemRegion>>, SealedError> {
    let stage = "host channel";
    if !crate::arch::paging::forbid_execute(&range, image) {
        log::warn!("host channel: its pages could not be made non-executable");
    }
    let len = (range.end - range.start) as usize;
    // SAFETY: the range was checked to lie in svtpm's hidden slot, outside
    // the image; the image's page tables identity-map the slot, and
    // nothing else in the image uses this memory. The host may change it
    // at any time, which `MemRegion` and `Channel` allow for.
    let region = unsafe { MemRegion::new(range.start as *mut u8, len) };
    let mut seed = [0u8; 8];
    if !crate::arch::entropy::fill(&mut seed) {
        return Err(SealedError::new(
            stage,
            "no entropy for the channel's sequence numbers",
        ));
    }
    log::info!(
        "host channel at {:#x}..{:#x}: waiting up to {} s for svtpm-proxy",
        range.start,
        range.end,
        ATTACH_WAIT_MS / 1000
    );
    let mut chan = Channel::attach(
        region,
        clock::now_ns,
        u64::from_le_bytes(seed),
        ATTACH_WAIT_MS * 1_000_000,
    )
    .map_err(|e| SealedError::new(stage, e))?;
    chan.set_timeout_ns(timeout_ms * 1_000_000);
    log::info!("host channel: served by {}", chan.proxy_name());
    Ok(Box::leak(Box::new(spin::Mutex::new(chan))))
}

/// Attests, obtains the key and opens (or provisions) the sealed state;
/// returns the engine's storage. `hidden` is svtpm's hidden slot, `image`
/// the image's own memory.
pub fn open(
    cfg: &BootConfig,
    fw: &FwCfg,
    hidden: &Range<u64>,
    image: &Range<u64>,
) -> Result<Box<dyn NvStorage + Send>, SealedError> {
    let t0 = now_ms();
    let range: ChannelRange = cfg.channel.ok_or_else(|| {
        SealedError::new(
            "configuration",
            "no host channel given (svtpm.hostchan=<gpa>,<size>); the sealed state needs one. \
             Pass svtpm.state=ephemeral for a TPM whose state is lost at power-off",
        )
    })?;
    let id = cfg
        .vtpm
        .as_deref()
        .ok_or_else(|| SealedError::new("configuration", "no vTPM id given (svtpm.vtpm=<id>)"))?;
    let id = VtpmId::new(id).map_err(|e| SealedError::new("configuration", e))?;
    let range = BootConfig::channel_in(range, hidden, image)
        .map_err(|e| SealedError::new("configuration", e))?;

    let mut secrets = secrets_page(fw)?;
    let vmpck0 = secrets.vmpck(0);
    // Only VMPCK0 is used, from its own zeroizing copy.
    for id in 0..4 {
        let _ = secrets.wipe_vmpck(id);
    }
    let vmpck0 = vmpck0.map_err(|e| SealedError::new("secrets page", e))?;
    let messenger = GuestMessenger::new(vmpck0, 0, GuestMessenger::FIRST_SEQNO)
        .map_err(|e| SealedError::new("secrets page", e))?;

    let chan = attach(range, image, cfg.timeout_ms)?;
    let t1 = now_ms();
    log::info!("boot-time phase=hostchan ms={}", t1 - t0);

    let messenger: &'static mut GuestMessenger = Box::leak(Box::new(messenger));
    // The PSP, reached through the channel (the extended guest request
    // brings the host's certificate table along).
    let psp: &'static mut ChannelGuestRequest<'static, MemRegion> =
        Box::leak(Box::new(ChannelGuestRequest::new(chan)));
    let evidence = SnpEvidence::new(messenger, psp);
    let config = unlock::Config {
        id: id.clone(),
        attempts: cfg.attempts,
        backoff_ms: BACKOFF_MS,
    };
    let unlocked = unlock::unlock(
        &config,
        &ImageClock,
        ChannelSlots::new(chan),
        ChannelHttp::new(chan),
        evidence,
        HwEntropy,
    )
    .map_err(|e| SealedError::new(e.stage().name(), e))?;
    let t = unlocked.timings;
    log::info!("boot-time phase=attestation ms={}", t.attestation_ms);
    log::info!("boot-time phase=key ms={}", t.key_ms);
    log::info!("boot-time phase=state ms={}", t.state_ms);
    match unlocked.outcome {
        Outcome::Opened { generation, slot } => log::info!(
            "vTPM {}: state opened (generation {generation}, {slot})",
            id.as_str()
        ),
        Outcome::Provisioned => log::info!(
            "vTPM {}: provisioned a new vTPM (generation 1)",
            id.as_str()
        ),
    }
    Ok(Box::new(unlocked.state))
}
