//! The broker's data directory:
//!
//! ```text
//! DIR/token-key                  the broker's P-256 token signing key (64 hex digits)
//! DIR/vtpm/<vtpm-id>/state-key   the vTPM's 256-bit state key (64 hex digits)
//! DIR/vtpm/<vtpm-id>/generation  the newest recorded generation (decimal); absent: none
//! ```
//!
//! Secret files are created mode 0600 and never overwritten. The generation
//! record is replaced atomically (write, fsync, rename, fsync the
//! directory) and only ever upwards; [`DataDir::record_generation`] holds a
//! lock across read-check-write.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context};
use svtpm::attest::kbs::VtpmId;
use zeroize::Zeroizing;

/// Length of a state key.
pub const KEY_LEN: usize = 32;

/// What recording a generation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordResult {
    /// `offered` is now the record (it was not below the old one).
    Recorded,
    /// Refused: the record is higher.
    Regression {
        /// The record kept.
        recorded: u64,
    },
}

/// The data directory.
#[derive(Debug)]
pub struct DataDir {
    root: PathBuf,
    generation_lock: Mutex<()>,
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode_32(text: &str) -> Option<Zeroizing<[u8; 32]>> {
    let t = text.trim();
    if t.len() != 64 {
        return None;
    }
    let mut out = Zeroizing::new([0u8; 32]);
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(t.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn write_new_secret(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let text = Zeroizing::new(format!("{}\n", hex_encode(bytes)));
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn read_small(path: &Path) -> io::Result<Zeroizing<String>> {
    let mut text = Zeroizing::new(String::new());
    File::open(path)?.take(256).read_to_string(&mut text)?;
    Ok(text)
}

impl DataDir {
    /// Opens (creating if needed) the data directory `root`.
    pub fn open(root: impl AsRef<Path>) -> anyhow::Result<Self> {
        let root = root.as_ref().to_path_buf();
        fs::create_dir_all(root.join("vtpm"))
            .with_context(|| format!("cannot create data directory {}", root.display()))?;
        Ok(Self {
            root,
            generation_lock: Mutex::new(()),
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn vtpm_dir(&self, id: &VtpmId) -> PathBuf {
        self.root.join("vtpm").join(id.as_str())
    }

    /// Creates vTPM `id` (a random id if `None`) with a fresh random state
    /// key. Refuses an id that exists.
    pub fn provision(&self, id: Option<VtpmId>) -> anyhow::Result<VtpmId> {
        let id = match id {
            Some(id) => id,
            None => {
                let mut raw = [0u8; 16];
                crate::random(&mut raw)?;
                VtpmId::new(&hex_encode(&raw)).map_err(|e| anyhow::anyhow!("{e}"))?
            }
        };
        let dir = self.vtpm_dir(&id);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                bail!(
                    "vTPM {id} is already provisioned ({}); refusing to replace its key",
                    dir.display()
                )
            }
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        crate::random(key.as_mut())?;
        write_new_secret(&dir.join("state-key"), key.as_ref())?;
        sync_dir(&dir).and_then(|()| sync_dir(&self.root.join("vtpm")))?;
        Ok(id)
    }

    /// The state key of `id`; `Ok(None)` if `id` was never provisioned.
    pub fn state_key(&self, id: &VtpmId) -> anyhow::Result<Option<Zeroizing<[u8; KEY_LEN]>>> {
        let path = self.vtpm_dir(id).join("state-key");
        match read_small(&path) {
            Ok(text) => hex_decode_32(&text)
                .map(Some)
                .with_context(|| format!("{} is not 64 hex digits", path.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// The generation on record for `id`.
    pub fn generation(&self, id: &VtpmId) -> anyhow::Result<Option<u64>> {
        let path = self.vtpm_dir(id).join("generation");
        match read_small(&path) {
            Ok(text) => text
                .trim()
                .parse::<u64>()
                .map(Some)
                .with_context(|| format!("{} is not a generation number", path.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Records `offered` for `id` unless the record is higher.
    pub fn record_generation(&self, id: &VtpmId, offered: u64) -> anyhow::Result<RecordResult> {
        let _guard = self
            .generation_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(recorded) = self.generation(id)? {
            if offered < recorded {
                return Ok(RecordResult::Regression { recorded });
            }
            if offered == recorded {
                return Ok(RecordResult::Recorded);
            }
        }
        let dir = self.vtpm_dir(id);
        let tmp = dir.join("generation.tmp");
        let path = dir.join("generation");
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(format!("{offered}\n").as_bytes())
            .and_then(|()| f.sync_all())
            .and_then(|()| fs::rename(&tmp, &path))
            .and_then(|()| sync_dir(&dir))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(RecordResult::Recorded)
    }

    /// The token signing key, created on first use.
    pub fn token_key(&self) -> anyhow::Result<p256::ecdsa::SigningKey> {
        let path = self.root.join("token-key");
        for _ in 0..2 {
            match read_small(&path) {
                Ok(text) => {
                    let raw = hex_decode_32(&text)
                        .with_context(|| format!("{} is not 64 hex digits", path.display()))?;
                    return p256::ecdsa::SigningKey::from_slice(raw.as_ref())
                        .with_context(|| format!("{} is not a P-256 key", path.display()));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let mut raw = Zeroizing::new([0u8; 32]);
                    let key = loop {
                        crate::random(raw.as_mut())?;
                        if let Ok(k) = p256::ecdsa::SigningKey::from_slice(raw.as_ref()) {
                            break k;
                        }
                    };
                    match write_new_secret(&path, raw.as_ref()) {
                        Ok(()) => return Ok(key),
                        // Another process made it first: read theirs.
                        Err(_) if path.exists() => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
            }
        }
        bail!("cannot create or read {}", path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provision_keys_and_generations() {
        let tmp = tempfile::tempdir().unwrap();
        let d = DataDir::open(tmp.path()).unwrap();
        let id = VtpmId::new("vm-a").unwrap();
        assert!(d.state_key(&id).unwrap().is_none());
        assert_eq!(d.provision(Some(id.clone())).unwrap(), id);
        let key = d.state_key(&id).unwrap().unwrap();
        assert_ne!(*key, [0u8; 32]);
        let err = d.provision(Some(id.clone())).unwrap_err();
        assert!(err.to_string().contains("already provisioned"), "{err}");
        assert_eq!(*d.state_key(&id).unwrap().unwrap(), *key, "key unchanged");
        let mode = fs::metadata(tmp.path().join("vtpm/vm-a/state-key"))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let random = d.provision(None).unwrap();
        assert_eq!(random.as_str().len(), 32);

        assert_eq!(d.generation(&id).unwrap(), None);
        assert_eq!(d.record_generation(&id, 3).unwrap(), RecordResult::Recorded);
        assert_eq!(d.record_generation(&id, 3).unwrap(), RecordResult::Recorded);
        assert_eq!(
            d.record_generation(&id, 2).unwrap(),
            RecordResult::Regression { recorded: 3 }
        );
        assert_eq!(d.record_generation(&id, 9).unwrap(), RecordResult::Recorded);
        assert_eq!(d.generation(&id).unwrap(), Some(9));
        let k1 = d.token_key().unwrap();
        let k2 = d.token_key().unwrap();
        assert_eq!(k1.to_bytes(), k2.to_bytes());
    }
}
