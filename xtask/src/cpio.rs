//! The initramfs archive format: cpio "newc" (SVR4 without checksums), as
//! the Linux kernel unpacks it (Documentation/driver-api/early-userspace/
//! buffer-format.rst).
//!
//! Written here rather than with the `cpio` tool so that the archive can hold
//! a `/dev/console` device node without root privileges or `mknod` in a
//! staging directory (the kernel opens it for PID 1's stdio before any file
//! system is mounted), and so that it is byte-for-byte reproducible: every
//! entry has owner 0, mtime 0 and an inode number given by its position.

use std::collections::BTreeSet;

use anyhow::{bail, Result};

const MAGIC: &[u8] = b"070701";
const TRAILER: &str = "TRAILER!!!";

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// What an archive entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file with its contents.
    File(Vec<u8>),
    /// A symbolic link to the given target.
    Symlink(String),
    /// A character device node (major, minor).
    CharDev(u32, u32),
}

/// An archive under construction: entries in the order they were added, each
/// path at most once, every parent directory added before its children.
#[derive(Debug, Default)]
pub struct Archive {
    entries: Vec<(String, u32, Kind)>,
    paths: BTreeSet<String>,
}

impl Archive {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `path` (relative, `/`-separated, no `.` or `..` parts) with
    /// permission bits `perm`. Missing parent directories are added first
    /// (mode 0755); adding a path twice is an error unless both are
    /// directories.
    pub fn add(&mut self, path: &str, perm: u32, kind: Kind) -> Result<()> {
        let path = path.trim_start_matches('/');
        if path.is_empty()
            || path
                .split('/')
                .any(|part| part.is_empty() || part == "." || part == "..")
        {
            bail!("invalid archive path `{path}`");
        }
        if perm & !0o7777 != 0 {
            bail!("invalid permission bits {perm:#o} for `{path}`");
        }
        let mut parent = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            if !self.paths.contains(&parent) {
                self.insert(parent.clone(), 0o755, Kind::Dir);
            } else if !self.is_dir(&parent) {
                bail!("`{parent}` is not a directory but `{path}` lies under it");
            }
        }
        if self.paths.contains(path) {
            if kind == Kind::Dir && self.is_dir(path) {
                return Ok(());
            }
            bail!("`{path}` is already in the archive");
        }
        self.insert(path.to_string(), perm, kind);
        Ok(())
    }

    fn is_dir(&self, path: &str) -> bool {
        self.entries
            .iter()
            .any(|(p, _, k)| p == path && *k == Kind::Dir)
    }

    fn insert(&mut self, path: String, perm: u32, kind: Kind) {
        self.paths.insert(path.clone());
        self.entries.push((path, perm, kind));
    }

    /// Total bytes of file contents, for progress output.
    pub fn content_bytes(&self) -> usize {
        self.entries
            .iter()
            .map(|(_, _, k)| match k {
                Kind::File(data) => data.len(),
                _ => 0,
            })
            .sum()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The archive in newc format, ending with the trailer entry.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.content_bytes() + self.entries.len() * 128);
        for (index, (path, perm, kind)) in self.entries.iter().enumerate() {
            let (mode, data, rdev): (u32, &[u8], (u32, u32)) = match kind {
                Kind::Dir => (S_IFDIR, &[], (0, 0)),
                Kind::File(data) => (S_IFREG, data, (0, 0)),
                Kind::Symlink(target) => (S_IFLNK, target.as_bytes(), (0, 0)),
                Kind::CharDev(major, minor) => (S_IFCHR, &[], (*major, *minor)),
            };
            let ino = u32::try_from(index + 1)?;
            let nlink = if *kind == Kind::Dir { 2 } else { 1 };
            write_entry(&mut out, path, ino, mode | perm, nlink, data, rdev)?;
        }
        write_entry(&mut out, TRAILER, 0, 0, 1, &[], (0, 0))?;
        Ok(out)
    }
}

/// One header, name and data, each padded to 4 bytes.
fn write_entry(
    out: &mut Vec<u8>,
    name: &str,
    ino: u32,
    mode: u32,
    nlink: u32,
    data: &[u8],
    (rdev_major, rdev_minor): (u32, u32),
) -> Result<()> {
    let size = u32::try_from(data.len())
        .map_err(|_| anyhow::anyhow!("`{name}` is too large for a newc archive"))?;
    let namesize = u32::try_from(name.len() + 1)?;
    out.extend_from_slice(MAGIC);
    // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor
    // rdevminor namesize check, each as 8 hex digits.
    for field in [
        ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev_major, rdev_minor, namesize, 0,
    ] {
        out.extend_from_slice(format!("{field:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
    Ok(())
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry read back: name, mode, rdev (major, minor), data.
    type Entry = (String, u32, (u32, u32), Vec<u8>);

    /// Parses a newc archive back into its entries.
    fn parse(mut b: &[u8]) -> Vec<Entry> {
        let mut out = Vec::new();
        let total = b.len();
        loop {
            assert_eq!(&b[..6], MAGIC);
            let field = |i: usize| {
                let s = std::str::from_utf8(&b[6 + 8 * i..14 + 8 * i]).unwrap();
                u32::from_str_radix(s, 16).unwrap()
            };
            let (mode, size, namesize) = (field(1), field(6) as usize, field(11) as usize);
            let rdev = (field(9), field(10));
            let name_end = 110 + namesize;
            let name = std::str::from_utf8(&b[110..name_end - 1])
                .unwrap()
                .to_string();
            assert_eq!(b[name_end - 1], 0, "names are NUL-terminated");
            let data_start = name_end.div_ceil(4) * 4;
            let data = b[data_start..data_start + size].to_vec();
            let next = (data_start + size).div_ceil(4) * 4;
            assert_eq!((total - b.len() + next) % 4, 0);
            b = &b[next..];
            if name == TRAILER {
                assert!(b.is_empty(), "nothing follows the trailer");
                return out;
            }
            out.push((name, mode, rdev, data));
        }
    }

    #[test]
    fn round_trips_every_kind_with_parents_first() {
        let mut a = Archive::new();
        a.add("/bin/busybox", 0o755, Kind::File(b"\x7fELF...".to_vec()))
            .unwrap();
        a.add("bin/sh", 0o777, Kind::Symlink("busybox".into()))
            .unwrap();
        a.add("dev/console", 0o600, Kind::CharDev(5, 1)).unwrap();
        a.add("dev", 0o755, Kind::Dir).unwrap();
        let entries = parse(&a.to_bytes().unwrap());
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            ["bin", "bin/busybox", "bin/sh", "dev", "dev/console"]
        );
        assert_eq!(entries[0].1, 0o040_755);
        assert_eq!(entries[1].1, 0o100_755);
        assert_eq!(entries[1].3, b"\x7fELF...");
        assert_eq!(entries[2].1, 0o120_777);
        assert_eq!(entries[2].3, b"busybox");
        assert_eq!(entries[4].1, 0o020_600);
        assert_eq!(entries[4].2, (5, 1));
    }

    #[test]
    fn output_is_reproducible_and_padded() {
        let build = || {
            let mut a = Archive::new();
            for (i, name) in ["a", "bb", "ccc", "dddd"].iter().enumerate() {
                a.add(name, 0o644, Kind::File(vec![b'x'; i])).unwrap();
            }
            a.to_bytes().unwrap()
        };
        let bytes = build();
        assert_eq!(bytes, build());
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(parse(&bytes).len(), 4);
    }

    #[test]
    fn rejects_duplicates_bad_paths_and_files_as_parents() {
        let mut a = Archive::new();
        a.add("etc/x", 0o644, Kind::File(vec![])).unwrap();
        assert!(a.add("etc/x", 0o644, Kind::File(vec![])).is_err());
        assert!(a.add("etc/x/y", 0o644, Kind::File(vec![])).is_err());
        assert!(a.add("etc/../x", 0o644, Kind::File(vec![])).is_err());
        assert!(a.add("", 0o644, Kind::Dir).is_err());
        assert!(a.add("z", 0o10_000, Kind::Dir).is_err());
        assert!(a.add("etc", 0o755, Kind::Dir).is_ok(), "directories merge");
        assert_eq!(a.len(), 2);
    }
}
