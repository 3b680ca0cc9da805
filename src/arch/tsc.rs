//! Time from the TSC: its rate measured against the PIT (1.193182 MHz), and
//! the conversion of TSC readings to nanoseconds since a fixed origin.
//! Pure arithmetic; `clock` does the measuring.

/// The PIT input clock in Hz.
pub const PIT_HZ: u64 = 1_193_182;

/// A rate that makes no sense for a TSC (below 10 MHz or above 100 GHz).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Implausible {
    /// The computed rate in Hz.
    pub hz: u64,
}

/// The TSC rate from `tsc_ticks` TSC ticks counted over `pit_ticks` PIT ticks.
pub fn rate(tsc_ticks: u64, pit_ticks: u64) -> Result<u64, Implausible> {
    let hz = if pit_ticks == 0 {
        0
    } else {
        (u128::from(tsc_ticks) * u128::from(PIT_HZ) / u128::from(pit_ticks)) as u64
    };
    if (10_000_000..=100_000_000_000).contains(&hz) {
        Ok(hz)
    } else {
        Err(Implausible { hz })
    }
}

/// A monotonic clock over the TSC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TscClock {
    /// TSC ticks per second.
    pub hz: u64,
    /// TSC value at time 0.
    pub origin: u64,
}

impl TscClock {
    /// Nanoseconds since the origin at TSC value `tsc` (0 before it).
    pub fn nanos(&self, tsc: u64) -> u64 {
        let ticks = tsc.saturating_sub(self.origin);
        let ns = u128::from(ticks) * 1_000_000_000 / u128::from(self.hz.max(1));
        u64::try_from(ns).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_from_a_10ms_window() {
        // 11932 PIT ticks are 10 ms; a 2.5 GHz TSC counts 25,000,000 in it.
        let hz = rate(25_000_000, 11_932).unwrap();
        assert!((2_499_000_000..2_501_000_000).contains(&hz), "{hz}");
    }

    #[test]
    fn implausible_rates() {
        assert_eq!(rate(1000, 0), Err(Implausible { hz: 0 }));
        assert!(rate(10, 11_932).is_err());
        assert!(rate(u64::MAX, 1).is_err());
    }

    #[test]
    fn nanos_advance() {
        let c = TscClock {
            hz: 2_000_000_000,
            origin: 1000,
        };
        assert_eq!(c.nanos(500), 0);
        assert_eq!(c.nanos(1000), 0);
        assert_eq!(c.nanos(1000 + 2_000_000_000), 1_000_000_000);
        assert_eq!(c.nanos(1000 + 3), 1);
        assert!(c.nanos(u64::MAX) > c.nanos(u64::MAX / 2));
    }
}
