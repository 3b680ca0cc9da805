//! The channel file: the host file behind QEMU's
//! `memory-backend-file,share=on`, mapped `MAP_SHARED` so the proxy and the
//! guest see the same bytes. Created at [`CHANNEL_LEN`] if missing; a file
//! of any other size is refused (the image is told the size on its command
//! line and checks the header's `region_len` against it). An exclusive
//! `flock` keeps a second proxy off the same file.
//!
//! The mapping is shared with an untrusted party: it is only ever accessed
//! through `svtpm::hostchan::MemRegion` (per-byte atomic copies, never a
//! Rust reference into it). A process that shrinks the file under the
//! mapping makes the next access fault (SIGBUS); nothing on the host
//! should, and the file lives in a directory of the operator's choice.

// The only unsafe code of the proxy: mapping the file (memmap2) and
// handing the mapping's address to MemRegion. Both need the mapping to stay
// alive and unshrunk while used, which this module's ownership guarantees
// for the first and the flock plus the operator's setup for the second.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::marker::PhantomData;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use memmap2::{MmapMut, MmapOptions};
use rustix::fs::{flock, FlockOperation};
use svtpm::hostchan::{MemRegion, Region};

/// Size of the channel: 2 MiB, as in `-object memory-backend-file,size=2M`.
pub const CHANNEL_LEN: usize = 2 << 20;

/// Why the channel file cannot be used.
#[derive(Debug)]
pub enum ChannelFileError {
    /// Opening, creating or sizing the file failed.
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The error.
        err: io::Error,
    },
    /// The file exists with another size.
    WrongSize {
        /// The file.
        path: PathBuf,
        /// Its size.
        found: u64,
    },
    /// Another process holds the file's lock.
    InUse(PathBuf),
}

impl std::fmt::Display for ChannelFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io { path, op, err } => {
                write!(f, "channel file {}: {op}: {err}", path.display())
            }
            Self::WrongSize { path, found } => write!(
                f,
                "channel file {} is {found} bytes; the channel is {CHANNEL_LEN} bytes \
                 (size=2M on the QEMU memory-backend-file): remove it or pass the right file",
                path.display()
            ),
            Self::InUse(path) => write!(
                f,
                "channel file {} is served by another process (its lock is held)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for ChannelFileError {}

/// The mapped channel file. The mapping lives as long as this value.
#[derive(Debug)]
pub struct ChannelFile {
    path: PathBuf,
    map: MmapMut,
    // Holds the flock; declared after `map` so the mapping goes first.
    _file: File,
}

impl ChannelFile {
    /// Opens `path`, creating it at [`CHANNEL_LEN`] bytes (mode 0600) if it
    /// does not exist, refusing another size, taking its lock, and mapping
    /// it shared.
    pub fn open(path: &Path) -> Result<ChannelFile, ChannelFileError> {
        let io = |op: &'static str| {
            let path = path.to_path_buf();
            move |err| ChannelFileError::Io { path, op, err }
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io("opening"))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                return Err(ChannelFileError::InUse(path.to_path_buf()))
            }
            Err(e) => return Err(io("locking")(e.into())),
        }
        let len = file.metadata().map_err(io("reading its size"))?.len();
        if len == 0 {
            file.set_len(CHANNEL_LEN as u64)
                .map_err(io("sizing it to 2 MiB"))?;
        } else if len != CHANNEL_LEN as u64 {
            return Err(ChannelFileError::WrongSize {
                path: path.to_path_buf(),
                found: len,
            });
        }
        // SAFETY: the file is CHANNEL_LEN bytes (checked or set above) and
        // stays open in `self`; the mapping is never turned into Rust
        // references (only MemRegion's atomic accesses touch it), so
        // concurrent writes by the guest are not undefined behaviour.
        let map = unsafe { MmapOptions::new().len(CHANNEL_LEN).map_mut(&file) }
            .map_err(io("mapping it"))?;
        Ok(ChannelFile {
            path: path.to_path_buf(),
            map,
            _file: file,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A region over the mapping for `svtpm::hostchan`, borrowing the
    /// file so it cannot outlive the mapping.
    pub fn region(&mut self) -> MappedRegion<'_> {
        // SAFETY: the pointer and length describe the live shared mapping,
        // page aligned (so 4-byte aligned); the returned value borrows
        // `self`, so the mapping outlives it; MemRegion accesses it only
        // with atomics.
        let inner = unsafe { MemRegion::new(self.map.as_mut_ptr(), self.map.len()) };
        MappedRegion {
            inner,
            _map: PhantomData,
        }
    }
}

/// [`MemRegion`] over a [`ChannelFile`]'s mapping, for as long as the
/// file is borrowed.
#[derive(Debug)]
pub struct MappedRegion<'a> {
    inner: MemRegion,
    _map: PhantomData<&'a mut MmapMut>,
}

impl Region for MappedRegion<'_> {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        self.inner.read(offset, buf)
    }
    fn write(&mut self, offset: usize, data: &[u8]) {
        self.inner.write(offset, data)
    }
    fn load_u32_acquire(&self, offset: usize) -> u32 {
        self.inner.load_u32_acquire(offset)
    }
    fn store_u32_release(&mut self, offset: usize, value: u32) {
        self.inner.store_u32_release(offset, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_refuses_other_sizes_and_locks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("chan");
        let mut a = ChannelFile::open(&p).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), CHANNEL_LEN as u64);
        a.region().write(0x1000, b"shared");
        assert!(matches!(
            ChannelFile::open(&p),
            Err(ChannelFileError::InUse(_))
        ));
        drop(a);
        // The bytes are in the file.
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[0x1000..0x1006], b"shared");
        // Reopened: same size accepted.
        ChannelFile::open(&p).unwrap();

        let q = dir.path().join("small");
        std::fs::write(&q, [0u8; 4096]).unwrap();
        let e = ChannelFile::open(&q).unwrap_err();
        assert!(matches!(e, ChannelFileError::WrongSize { found: 4096, .. }));
        assert!(e.to_string().contains("4096 bytes"));
        let e = ChannelFile::open(&dir.path().join("no/such/dir/chan")).unwrap_err();
        assert!(e.to_string().contains("opening"));
    }
}
