//! Ctrl-C and SIGTERM while xtask runs QEMU or the attested stack.
//!
//! The terminal delivers Ctrl-C to the whole foreground process group, so
//! QEMU and the daemons get it too. [`install`] keeps xtask itself alive
//! through it: the flag [`requested`] reads is set, the loops that wait on
//! children notice it, stop what is still running and report where the logs
//! are, instead of xtask dying and leaving a daemon behind.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use anyhow::Result;

static REQUESTED: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();

/// Installs the handler (once; later calls do nothing).
pub fn install() -> Result<()> {
    let mut result = Ok(());
    INSTALL.call_once(|| {
        result = ctrlc::set_handler(|| {
            if REQUESTED.swap(true, Ordering::SeqCst) {
                eprintln!("\nxtask: interrupted again; still stopping");
            } else {
                eprintln!("\nxtask: interrupted; stopping QEMU and the daemons");
            }
        });
    });
    result.map_err(|e| anyhow::anyhow!("cannot install the Ctrl-C handler: {e}"))
}

/// Whether Ctrl-C or SIGTERM arrived.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Fails with "interrupted" once Ctrl-C arrived, so a sequence of boots stops.
pub fn check() -> Result<()> {
    if requested() {
        anyhow::bail!("interrupted");
    }
    Ok(())
}
