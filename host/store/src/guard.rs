//! [`FileGuard`]: a generation guard kept in a small file, for the
//! simulator and development. On the real platform the key broker (KBS)
//! holds the newest generation, where the host cannot change it; here a
//! file in *another directory* than the state stands in for it, so that
//! putting back an older copy of the state directory (both slots) is caught
//! across restarts. Whoever can replace that file too can still roll the
//! state back: this is a development stand-in, not a protection against
//! the host.
//!
//! File format (text, one file per vTPM):
//! ```text
//! svtpm generation guard v1
//! <generation, decimal>
//! ```
//! A missing file means "nothing recorded" (a vTPM never provisioned with
//! this guard). Every call reads the file; a record replaces it atomically
//! (temporary file, fsync, rename, fsync of the directory) and refuses to
//! go back ([`GuardError::Regression`]).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use svtpm::nvstate::{GenerationGuard, GuardError};

/// First line of a guard file.
const HEADER: &str = "svtpm generation guard v1";

/// Largest guard file read (the header, 20 digits and newlines fit easily).
const MAX_FILE_LEN: u64 = 128;

/// Why the guard file could not be used.
#[derive(Debug)]
pub enum GuardFileError {
    /// Reading or writing failed.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        error: io::Error,
    },
    /// The file is not a guard file.
    Malformed {
        /// The file.
        path: PathBuf,
    },
    /// No default place beside the state directory (e.g. it is `/` or `.`).
    NoDefault {
        /// The state directory.
        state_dir: PathBuf,
    },
    /// The guard file would be inside the state directory, where whoever
    /// replaces the state replaces the guard with it.
    InsideStateDir {
        /// The guard file.
        path: PathBuf,
        /// The state directory.
        state_dir: PathBuf,
    },
}

impl fmt::Display for GuardFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardFileError::Io { path, error } => {
                write!(f, "generation guard file {}: {error}", path.display())
            }
            GuardFileError::Malformed { path } => write!(
                f,
                "{} is not a generation guard file (expected \"{HEADER}\" and a generation)",
                path.display()
            ),
            GuardFileError::NoDefault { state_dir } => write!(
                f,
                "no default place for the generation guard file beside {}; pass --guard-file",
                state_dir.display()
            ),
            GuardFileError::InsideStateDir { path, state_dir } => write!(
                f,
                "the generation guard file {} must not be inside the state directory {}",
                path.display(),
                state_dir.display()
            ),
        }
    }
}

impl std::error::Error for GuardFileError {}

/// The default guard file of `state_dir`: `NAME.guard` beside it (in its
/// parent directory), e.g. `target/svtpm-state.guard` for
/// `target/svtpm-state`.
pub fn default_guard_path(state_dir: &Path) -> Result<PathBuf, GuardFileError> {
    let no_default = || GuardFileError::NoDefault {
        state_dir: state_dir.to_path_buf(),
    };
    let name = state_dir.file_name().ok_or_else(no_default)?;
    if name == ".." {
        return Err(no_default());
    }
    let parent = match state_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        Some(_) => Path::new("."),
        None => return Err(no_default()),
    };
    let mut file = name.to_os_string();
    file.push(".guard");
    Ok(parent.join(file))
}

/// `p` made absolute and with `.` and `..` resolved by name (symbolic links
/// are not followed: for paths that do not exist yet).
fn lexical(p: &Path) -> PathBuf {
    let abs = std::env::current_dir()
        .map(|d| d.join(p))
        .unwrap_or_else(|_| p.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// Refuses a guard file whose directory is `state_dir` itself: compared
/// after resolving both when both exist, by name otherwise (the state
/// directory may be about to be created).
pub fn check_outside(guard: &Path, state_dir: &Path) -> Result<(), GuardFileError> {
    let parent = match guard.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let same = match (fs::canonicalize(parent), fs::canonicalize(state_dir)) {
        (Ok(a), Ok(b)) => a == b,
        _ => lexical(parent) == lexical(state_dir),
    };
    if same {
        return Err(GuardFileError::InsideStateDir {
            path: guard.to_path_buf(),
            state_dir: state_dir.to_path_buf(),
        });
    }
    Ok(())
}

/// A [`GenerationGuard`] kept in a file (see the module docs).
#[derive(Debug)]
pub struct FileGuard {
    path: PathBuf,
    last_error: Option<String>,
}

impl FileGuard {
    /// Uses the guard file at `path`, checking now that it is readable and
    /// well formed (or absent).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, GuardFileError> {
        let g = Self {
            path: path.as_ref().to_path_buf(),
            last_error: None,
        };
        g.read()?;
        Ok(g)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The generation on record, read from the file.
    pub fn read(&self) -> Result<Option<u64>, GuardFileError> {
        let io_err = |error| GuardFileError::Io {
            path: self.path.clone(),
            error,
        };
        let text = match File::open(&self.path) {
            Ok(f) => {
                let mut text = String::new();
                io::Read::read_to_string(&mut io::Read::take(f, MAX_FILE_LEN), &mut text).map_err(
                    |e| {
                        if e.kind() == io::ErrorKind::InvalidData {
                            GuardFileError::Malformed {
                                path: self.path.clone(),
                            }
                        } else {
                            io_err(e)
                        }
                    },
                )?;
                text
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(e)),
        };
        parse(&text).map(Some).ok_or(GuardFileError::Malformed {
            path: self.path.clone(),
        })
    }

    /// Writes `generation` as the record, atomically and durably.
    pub fn write(&self, generation: u64) -> Result<(), GuardFileError> {
        let io_err = |error| GuardFileError::Io {
            path: self.path.clone(),
            error,
        };
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut tmp_name = self
            .path
            .file_name()
            .ok_or_else(|| io_err(io::Error::new(io::ErrorKind::InvalidInput, "no file name")))?
            .to_os_string();
        tmp_name.push(".tmp");
        let tmp = dir.join(tmp_name);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err)?;
        f.write_all(format!("{HEADER}\n{generation}\n").as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io_err)?;
        drop(f);
        fs::rename(&tmp, &self.path).map_err(io_err)?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(io_err)
    }

    /// The error behind the last [`GuardError::Unavailable`], for the log.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    fn unavailable(&mut self, e: GuardFileError) -> GuardError {
        self.last_error = Some(e.to_string());
        GuardError::Unavailable
    }
}

fn parse(text: &str) -> Option<u64> {
    let mut lines = text.lines();
    if lines.next()? != HEADER {
        return None;
    }
    let digits = lines.next()?;
    if lines.next().is_some()
        || !text.ends_with('\n')
        || digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    digits.parse().ok()
}

impl GenerationGuard for FileGuard {
    fn recorded(&mut self) -> Result<Option<u64>, GuardError> {
        self.read().map_err(|e| self.unavailable(e))
    }

    fn record(&mut self, generation: u64) -> Result<(), GuardError> {
        match self.read().map_err(|e| self.unavailable(e))? {
            Some(recorded) if generation < recorded => {
                return Err(GuardError::Regression {
                    recorded,
                    offered: generation,
                })
            }
            Some(recorded) if generation == recorded => return Ok(()),
            _ => {}
        }
        self.write(generation).map_err(|e| self.unavailable(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopening_and_never_go_back() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("vtpm.guard");
        let mut g = FileGuard::open(&path).unwrap();
        assert_eq!(g.recorded(), Ok(None));
        assert!(!path.exists(), "opening wrote the file");
        g.record(1).unwrap();
        g.record(7).unwrap();
        g.record(7).unwrap();
        assert_eq!(
            g.record(6),
            Err(GuardError::Regression {
                recorded: 7,
                offered: 6
            })
        );
        let mut again = FileGuard::open(&path).unwrap();
        assert_eq!(again.recorded(), Ok(Some(7)));
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "svtpm generation guard v1\n7\n"
        );
        let names: Vec<_> = fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temporary file left behind");
    }

    #[test]
    fn malformed_files_are_refused_not_read_as_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("g");
        for bad in [
            "",
            "7\n",
            "svtpm generation guard v1\n",
            "svtpm generation guard v1\n7",
            "svtpm generation guard v1\n-7\n",
            "svtpm generation guard v1\n+7\n",
            "svtpm generation guard v1\n7\n8\n",
            "svtpm generation guard v1\n99999999999999999999999\n",
            "svtpm generation guard v2\n7\n",
        ] {
            fs::write(&path, bad).unwrap();
            assert!(
                matches!(
                    FileGuard::open(&path),
                    Err(GuardFileError::Malformed { .. })
                ),
                "{bad:?}"
            );
        }
        fs::write(&path, [0xff, 0xfe, b'\n']).unwrap();
        assert!(matches!(
            FileGuard::open(&path),
            Err(GuardFileError::Malformed { .. })
        ));
        // Broken after opening: the trait reports it as unavailable, with
        // the reason kept for the log.
        fs::write(&path, "svtpm generation guard v1\n3\n").unwrap();
        let mut g = FileGuard::open(&path).unwrap();
        fs::write(&path, "junk").unwrap();
        assert_eq!(g.record(4), Err(GuardError::Unavailable));
        assert!(g.last_error().unwrap().contains("not a generation guard"));
    }

    #[test]
    fn default_place_is_beside_the_state_directory() {
        let p = |s: &str| default_guard_path(Path::new(s)).map_err(|e| e.to_string());
        assert_eq!(
            p("target/svtpm-state"),
            Ok("target/svtpm-state.guard".into())
        );
        assert_eq!(
            p("target/svtpm-state/"),
            Ok("target/svtpm-state.guard".into())
        );
        assert_eq!(p("state"), Ok("./state.guard".into()));
        assert_eq!(p("/var/lib/vtpm"), Ok("/var/lib/vtpm.guard".into()));
        for bad in ["/", ".", "..", "a/.."] {
            assert!(p(bad).unwrap_err().contains("--guard-file"), "{bad}");
        }
    }

    #[test]
    fn a_guard_inside_the_state_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        fs::create_dir(&state).unwrap();
        assert!(matches!(
            check_outside(&state.join("g"), &state),
            Err(GuardFileError::InsideStateDir { .. })
        ));
        assert!(check_outside(&tmp.path().join("g"), &state).is_ok());
        // A state directory that does not exist yet is compared by name.
        let new = tmp.path().join("new");
        assert!(matches!(
            check_outside(&new.join("./g"), &tmp.path().join("x/../new")),
            Err(GuardFileError::InsideStateDir { .. })
        ));
        assert!(check_outside(&tmp.path().join("state.guard"), &tmp.path().join("new")).is_ok());
    }
}
