//! What the image's command line asks for at boot: whether the TPM state is
//! sealed (the attested flow, the default) or ephemeral, where the host
//! channel is, which vTPM this is, and how long to wait and how often to
//! try. The command line comes from the host, so every value is checked;
//! the channel's range must lie inside svtpm's hidden slot, clear of the
//! image's own memory (see [`BootConfig::channel_in`]).

use alloc::string::{String, ToString};
use core::fmt;
use core::ops::Range;

/// Where the TPM state lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateMode {
    /// Sealed under a key the broker releases after attestation, stored
    /// by the host through the channel (the default).
    Sealed,
    /// In memory only, lost at power-off; no attestation
    /// (`svtpm.state=ephemeral`, for tests and throwaway guests).
    Ephemeral,
}

/// The host channel's guest-physical range as given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelRange {
    /// Start address.
    pub gpa: u64,
    /// Size in bytes.
    pub size: u64,
}

/// Smallest channel accepted.
pub const CHANNEL_MIN: u64 = 64 << 10;
/// Largest channel accepted.
pub const CHANNEL_MAX: u64 = 16 << 20;
/// Attempts per broker step unless the command line says otherwise.
pub const DEFAULT_ATTEMPTS: u32 = 4;
/// Per-request channel timeout unless the command line says otherwise.
pub const DEFAULT_TIMEOUT_MS: u64 = 15_000;

/// The boot configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootConfig {
    /// Sealed or ephemeral.
    pub state: StateMode,
    /// `svtpm.hostchan=<gpa>,<size>`.
    pub channel: Option<ChannelRange>,
    /// `svtpm.vtpm=<id>`.
    pub vtpm: Option<String>,
    /// `svtpm.kbs_attempts=<n>` (1..=32).
    pub attempts: u32,
    /// `svtpm.hostchan_timeout_ms=<n>` (100..=600000).
    pub timeout_ms: u64,
}

/// A command-line value that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootConfigError {
    /// `svtpm.state` is neither `sealed` nor `ephemeral`.
    State(String),
    /// A value is not a number, or out of its range.
    Value {
        /// The key.
        key: &'static str,
        /// The text given.
        text: String,
    },
    /// The channel is misaligned, too small or too large.
    ChannelShape(ChannelRange),
    /// The channel is not inside svtpm's hidden slot, or overlaps the
    /// image's own memory.
    ChannelPlace(ChannelRange),
}

impl fmt::Display for BootConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::State(t) => write!(f, "svtpm.state={t}: expected sealed or ephemeral"),
            Self::Value { key, text } => write!(f, "{key}={text}: not a valid value"),
            Self::ChannelShape(c) => write!(
                f,
                "host channel {:#x}+{:#x}: must be 4 KiB aligned and {} KiB..{} MiB",
                c.gpa,
                c.size,
                CHANNEL_MIN >> 10,
                CHANNEL_MAX >> 20
            ),
            Self::ChannelPlace(c) => write!(
                f,
                "host channel {:#x}+{:#x}: must lie in svtpm's hidden slot, clear of the image",
                c.gpa, c.size
            ),
        }
    }
}

fn number(key: &'static str, text: &str) -> Result<u64, BootConfigError> {
    let bad = || BootConfigError::Value {
        key,
        text: text.to_string(),
    };
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).map_err(|_| bad()),
        None => text.parse().map_err(|_| bad()),
    }
}

fn bounded(key: &'static str, text: &str, range: Range<u64>) -> Result<u64, BootConfigError> {
    let v = number(key, text)?;
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(BootConfigError::Value {
            key,
            text: text.to_string(),
        })
    }
}

impl BootConfig {
    /// Parses the `svtpm.*` words of `cmdline`; the last of a repeated key
    /// wins, unknown words are ignored.
    pub fn parse(cmdline: &str) -> Result<Self, BootConfigError> {
        let mut cfg = BootConfig {
            state: StateMode::Sealed,
            channel: None,
            vtpm: None,
            attempts: DEFAULT_ATTEMPTS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
        };
        for word in cmdline.split_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            match key {
                "svtpm.state" => {
                    cfg.state = match value {
                        "sealed" => StateMode::Sealed,
                        "ephemeral" => StateMode::Ephemeral,
                        other => return Err(BootConfigError::State(other.to_string())),
                    }
                }
                "svtpm.hostchan" => {
                    let (gpa, size) =
                        value
                            .split_once(',')
                            .ok_or_else(|| BootConfigError::Value {
                                key: "svtpm.hostchan",
                                text: value.to_string(),
                            })?;
                    let range = ChannelRange {
                        gpa: number("svtpm.hostchan", gpa)?,
                        size: number("svtpm.hostchan", size)?,
                    };
                    if !range.gpa.is_multiple_of(4096)
                        || !range.size.is_multiple_of(4096)
                        || !(CHANNEL_MIN..=CHANNEL_MAX).contains(&range.size)
                    {
                        return Err(BootConfigError::ChannelShape(range));
                    }
                    cfg.channel = Some(range);
                }
                "svtpm.vtpm" => cfg.vtpm = Some(value.to_string()),
                "svtpm.kbs_attempts" => {
                    cfg.attempts = bounded("svtpm.kbs_attempts", value, 1..33)? as u32
                }
                "svtpm.hostchan_timeout_ms" => {
                    cfg.timeout_ms = bounded("svtpm.hostchan_timeout_ms", value, 100..600_001)?
                }
                _ => {}
            }
        }
        Ok(cfg)
    }

    /// Checks that `channel` lies inside `hidden` and clear of `image`
    /// (both host-physical = guest-physical ranges).
    pub fn channel_in(
        channel: ChannelRange,
        hidden: &Range<u64>,
        image: &Range<u64>,
    ) -> Result<Range<u64>, BootConfigError> {
        let end = channel
            .gpa
            .checked_add(channel.size)
            .ok_or(BootConfigError::ChannelPlace(channel))?;
        let r = channel.gpa..end;
        if r.start < hidden.start
            || r.end > hidden.end
            || (r.start < image.end && image.start < r.end)
        {
            return Err(BootConfigError::ChannelPlace(channel));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_sealed_with_no_channel() {
        let c = BootConfig::parse("svtpm.interface=crb").unwrap();
        assert_eq!(c.state, StateMode::Sealed);
        assert_eq!(c.channel, None);
        assert_eq!(c.vtpm, None);
        assert_eq!(c.attempts, DEFAULT_ATTEMPTS);
        assert_eq!(c.timeout_ms, DEFAULT_TIMEOUT_MS);
    }

    #[test]
    fn every_key_parses() {
        let c = BootConfig::parse(
            "console=x svtpm.state=sealed svtpm.hostchan=0x104000000,0x200000 svtpm.vtpm=abc-1 \
             svtpm.kbs_attempts=2 svtpm.hostchan_timeout_ms=2000",
        )
        .unwrap();
        assert_eq!(
            c.channel,
            Some(ChannelRange {
                gpa: 0x1_0400_0000,
                size: 0x20_0000
            })
        );
        assert_eq!(c.vtpm.as_deref(), Some("abc-1"));
        assert_eq!((c.attempts, c.timeout_ms), (2, 2000));
        assert_eq!(
            BootConfig::parse("svtpm.state=ephemeral").unwrap().state,
            StateMode::Ephemeral
        );
    }

    #[test]
    fn bad_values_are_refused_with_their_key() {
        for (line, what) in [
            ("svtpm.state=maybe", "svtpm.state=maybe"),
            ("svtpm.hostchan=0x1000", "svtpm.hostchan=0x1000"),
            ("svtpm.hostchan=zz,0x10000", "svtpm.hostchan=zz"),
            ("svtpm.kbs_attempts=0", "svtpm.kbs_attempts=0"),
            ("svtpm.kbs_attempts=99", "svtpm.kbs_attempts=99"),
            ("svtpm.hostchan_timeout_ms=5", "svtpm.hostchan_timeout_ms=5"),
        ] {
            let e = BootConfig::parse(line).unwrap_err();
            assert!(alloc::format!("{e}").starts_with(what), "{line}: {e}");
        }
        for shape in [
            "svtpm.hostchan=0x104000800,0x200000",
            "svtpm.hostchan=0x104000000,0x200800",
            "svtpm.hostchan=0x104000000,0x1000",
            "svtpm.hostchan=0x104000000,0x2000000",
        ] {
            assert!(matches!(
                BootConfig::parse(shape),
                Err(BootConfigError::ChannelShape(_))
            ));
        }
    }

    #[test]
    fn the_channel_must_sit_in_the_hidden_slot_clear_of_the_image() {
        let hidden = 0x1_0000_0000..0x1_4000_0000;
        let image = 0x1_0000_0000..0x1_0300_0000;
        let at = |gpa, size| ChannelRange { gpa, size };
        assert_eq!(
            BootConfig::channel_in(at(0x1_0400_0000, 0x20_0000), &hidden, &image).unwrap(),
            0x1_0400_0000..0x1_0420_0000
        );
        for bad in [
            at(0x1_0200_0000, 0x20_0000),  // inside the image
            at(0x1_02ff_f000, 0x2000),     // straddles its end
            at(0xfee0_0000, 0x10_0000),    // below the slot (guest-visible)
            at(0x1_3ff0_0000, 0x20_0000),  // past the slot's end
            at(u64::MAX - 0xfff, 0x10000), // wraps
        ] {
            assert!(
                BootConfig::channel_in(bad, &hidden, &image).is_err(),
                "{bad:x?}"
            );
        }
    }
}
