//! Persists the engine's NV blobs in a directory, one file per libtpms blob
//! name, each replaced atomically (temp file, fsync, rename, fsync of the
//! directory) so a crash at any point leaves either the old or the new blob.
//!
//! Plain files are the development stand-in for the sealed, encrypted state;
//! the engine only sees the [`NvStorage`] trait.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use svtpm::engine::{NvStorage, StorageError};

/// Suffix of the temporary files a store writes before renaming.
const TMP_SUFFIX: &str = ".tmp";

/// An [`NvStorage`] over a directory.
#[derive(Debug)]
pub struct FileStorage {
    dir: PathBuf,
}

impl FileStorage {
    /// Opens (creating if needed) the state directory and removes temporary
    /// files left by a store that was interrupted before its rename.
    pub fn open(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_string_lossy().ends_with(TMP_SUFFIX) {
                log::warn!(
                    "state: removing {} left by an interrupted write",
                    entry.path().display()
                );
                fs::remove_file(entry.path())?;
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The names of the blobs present, sorted.
    pub fn names(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if valid_name(&name) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn path(&self, name: &str) -> Result<PathBuf, StorageError> {
        if valid_name(name) {
            Ok(self.dir.join(name))
        } else {
            Err(StorageError::Backend(format!("invalid blob name {name:?}")))
        }
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    fn write_atomically(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(TMP_SUFFIX);
        let tmp = PathBuf::from(tmp);
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, path)?;
            self.sync_dir()
        })();
        if result.is_err() {
            // Best effort: the old blob is intact, only the temp file may remain.
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

/// Blob names are libtpms' own (`permall`, `volatilestate`, ...): plain
/// words, never paths and never our temporary names.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && !name.ends_with(TMP_SUFFIX)
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

fn backend(op: &str, path: &Path, e: &io::Error) -> StorageError {
    let why = format!("{op} {}: {e}", path.display());
    log::error!("state: {why}");
    StorageError::Backend(why)
}

impl NvStorage for FileStorage {
    fn load(&mut self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let path = self.path(name)?;
        match fs::read(&path) {
            Ok(data) => {
                log::debug!("state: loaded {name} ({} bytes)", data.len());
                Ok(Some(data))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(backend("reading", &path, &e)),
        }
    }

    fn store(&mut self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        let path = self.path(name)?;
        self.write_atomically(&path, data)
            .map_err(|e| backend("writing", &path, &e))?;
        log::debug!("state: stored {name} ({} bytes)", data.len());
        Ok(())
    }

    fn delete(&mut self, name: &str) -> Result<(), StorageError> {
        let path = self.path(name)?;
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StorageError::NotFound),
            Err(e) => return Err(backend("deleting", &path, &e)),
        }
        self.sync_dir()
            .map_err(|e| backend("syncing", &self.dir, &e))?;
        log::debug!("state: deleted {name}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_load_replace_delete() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStorage::open(dir.path()).unwrap();
        assert_eq!(s.load("permall").unwrap(), None);
        s.store("permall", b"one").unwrap();
        assert_eq!(s.load("permall").unwrap().as_deref(), Some(&b"one"[..]));
        s.store("permall", b"two, longer").unwrap();
        assert_eq!(
            s.load("permall").unwrap().as_deref(),
            Some(&b"two, longer"[..])
        );
        assert_eq!(s.names().unwrap(), vec!["permall".to_string()]);
        // The blob is a plain file named after it, with no temp file left.
        assert_eq!(
            fs::read(dir.path().join("permall")).unwrap(),
            b"two, longer"
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        s.delete("permall").unwrap();
        assert_eq!(s.load("permall").unwrap(), None);
        assert_eq!(s.delete("permall"), Err(StorageError::NotFound));
    }

    #[test]
    fn survives_reopen_and_cleans_interrupted_writes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = FileStorage::open(dir.path()).unwrap();
            s.store("volatilestate", &[1, 2, 3]).unwrap();
        }
        fs::write(dir.path().join("permall.tmp"), b"half").unwrap();
        let mut s = FileStorage::open(dir.path()).unwrap();
        assert!(!dir.path().join("permall.tmp").exists());
        assert_eq!(s.load("permall").unwrap(), None);
        assert_eq!(
            s.load("volatilestate").unwrap().as_deref(),
            Some(&[1u8, 2, 3][..])
        );
    }

    #[test]
    fn refuses_names_that_are_paths() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStorage::open(dir.path()).unwrap();
        for bad in ["", "../x", "a/b", ".hidden", "x.tmp", "nul\0"] {
            assert!(
                matches!(s.store(bad, b"x"), Err(StorageError::Backend(_))),
                "{bad:?} accepted"
            );
            assert!(s.load(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn write_failure_keeps_the_old_blob() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStorage::open(dir.path()).unwrap();
        s.store("permall", b"old").unwrap();
        // A directory in the temp file's place makes the write fail.
        fs::create_dir(dir.path().join("permall.tmp")).unwrap();
        assert!(matches!(
            s.store("permall", b"new"),
            Err(StorageError::Backend(_))
        ));
        assert_eq!(s.load("permall").unwrap().as_deref(), Some(&b"old"[..]));
    }
}
