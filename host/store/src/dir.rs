//! [`DirStore`]: the two state slots as `slot-a.svtpm` and `slot-b.svtpm` in
//! one directory.
//!
//! A write goes to a temporary file in the same directory, is fsynced and
//! renamed over the slot file; `flush` fsyncs the directory, which makes the
//! renames durable. So a slot file always holds a complete old or new blob,
//! never a torn one, and every write before a returned `flush` is durable
//! (one directory fsync per commit, not one per write). A crash can leave a
//! stale temporary file; it is ignored and replaced by the next write of
//! that slot.
//!
//! Only one process may use a state at a time (two writers would fork it):
//! [`DirStore::lock`] takes an exclusive advisory lock on the directory
//! itself, without creating any file in it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use svtpm::nvstate::backend::StoreOp;
use svtpm::nvstate::format::MAX_BLOB_LEN;
use svtpm::nvstate::{SlotId, SlotStore, StoreError};

/// The slot files' mode: the blobs are sealed, but nobody else needs them.
const FILE_MODE: u32 = 0o600;

/// An exclusive lock on a state directory, held until dropped.
#[derive(Debug)]
pub struct DirLock {
    _dir: File,
}

/// Two slot files in a directory.
#[derive(Debug, Clone)]
pub struct DirStore {
    dir: PathBuf,
}

fn io_error(op: StoreOp, slot: Option<SlotId>, e: &io::Error) -> StoreError {
    StoreError::Io {
        op,
        slot,
        code: e.raw_os_error().unwrap_or(0),
    }
}

impl DirStore {
    /// Uses the existing directory `dir`.
    pub fn open(dir: impl AsRef<Path>) -> io::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        if !fs::metadata(&dir)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                dir.display().to_string(),
            ));
        }
        Ok(Self { dir })
    }

    /// Creates `dir` (and its parents) if needed, then uses it.
    pub fn create(dir: impl AsRef<Path>) -> io::Result<Self> {
        fs::create_dir_all(dir.as_ref())?;
        Self::open(dir)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the exclusive lock on the directory (`flock`), or fails with
    /// [`io::ErrorKind::WouldBlock`] if another process holds it.
    pub fn lock(&self) -> io::Result<DirLock> {
        let dir = File::open(&self.dir)?;
        match flock(&dir, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(DirLock { _dir: dir }),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is in use by another process", self.dir.display()),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether either slot file exists (a state, possibly damaged, is
    /// stored here).
    pub fn holds_slots(&self) -> io::Result<bool> {
        for slot in SlotId::ALL {
            match fs::symlink_metadata(self.slot_path(slot)) {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// The file holding `slot`.
    pub fn slot_path(&self, slot: SlotId) -> PathBuf {
        self.dir.join(format!("slot-{}.svtpm", slot.name()))
    }

    fn temp_path(&self, slot: SlotId) -> PathBuf {
        self.dir.join(format!(".slot-{}.svtpm.tmp", slot.name()))
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    fn write_atomically(&self, slot: SlotId, data: &[u8]) -> io::Result<()> {
        let tmp = self.temp_path(slot);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        // Durable at the next `flush` (the directory's fsync).
        fs::rename(&tmp, self.slot_path(slot))
    }
}

impl SlotStore for DirStore {
    fn read_slot(&mut self, slot: SlotId) -> Result<Option<Vec<u8>>, StoreError> {
        let f = match File::open(self.slot_path(slot)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(StoreOp::Read, Some(slot), &e)),
        };
        // One byte past the largest blob is enough for the parser to refuse
        // an oversized file without reading all of it.
        let mut data = Vec::new();
        f.take(MAX_BLOB_LEN as u64 + 1)
            .read_to_end(&mut data)
            .map_err(|e| io_error(StoreOp::Read, Some(slot), &e))?;
        Ok(Some(data))
    }

    fn write_slot(&mut self, slot: SlotId, data: &[u8]) -> Result<(), StoreError> {
        if data.len() > MAX_BLOB_LEN {
            return Err(StoreError::TooLarge {
                len: data.len(),
                max: MAX_BLOB_LEN,
            });
        }
        self.write_atomically(slot, data)
            .map_err(|e| io_error(StoreOp::Write, Some(slot), &e))
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        self.sync_dir()
            .map_err(|e| io_error(StoreOp::Flush, None, &e))
    }
}
