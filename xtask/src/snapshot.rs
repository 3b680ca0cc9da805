//! Byte-exact snapshots of a directory tree: what the negative boots use to
//! show that a refused boot left the vTPM's stored state untouched, and
//! the copies the stale-state check restores.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

/// Every regular file under a directory: relative path -> contents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    files: BTreeMap<String, Vec<u8>>,
}

impl Snapshot {
    /// Reads every file under `dir` (an absent directory is empty).
    pub fn take(dir: &Path) -> Result<Self> {
        let mut s = Self::default();
        if dir.exists() {
            walk(dir, "", &mut s.files)?;
        }
        Ok(s)
    }

    /// A snapshot of the given files, for tests.
    #[cfg(test)]
    pub fn of(files: &[(&str, &[u8])]) -> Self {
        Self {
            files: files
                .iter()
                .map(|(n, b)| (n.to_string(), b.to_vec()))
                .collect(),
        }
    }

    /// How many files it holds.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Total bytes.
    pub fn bytes(&self) -> usize {
        self.files.values().map(Vec::len).sum()
    }

    /// What differs from `before` to `self`, one line per file (empty:
    /// byte-identical).
    pub fn changes_since(&self, before: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        for (name, old) in &before.files {
            match self.files.get(name) {
                None => out.push(format!("{name}: removed")),
                Some(new) if new != old => out.push(format!(
                    "{name}: changed ({} -> {} bytes{})",
                    old.len(),
                    new.len(),
                    first_difference(old, new)
                        .map_or(String::new(), |at| format!(", first difference at {at:#x}"))
                )),
                Some(_) => {}
            }
        }
        for (name, new) in &self.files {
            if !before.files.contains_key(name) {
                out.push(format!("{name}: added ({} bytes)", new.len()));
            }
        }
        out
    }

    /// Writes the snapshot into `dir`, which is emptied first.
    pub fn restore(&self, dir: &Path) -> Result<()> {
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (name, bytes) in &self.files {
            let path = dir.join(name);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or_else(|| (a.len() != b.len()).then(|| a.len().min(b.len())))
}

fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Vec<u8>>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), &format!("{name}/"), out)?;
        } else if kind.is_file() {
            let bytes = fs::read(entry.path()).with_context(|| format!("reading {}", name))?;
            out.insert(name, bytes);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_every_changed_added_and_removed_file() {
        let before = Snapshot::of(&[("slot-a", b"abc"), ("slot-b", b"xyz"), ("gone", b"1")]);
        assert!(before.changes_since(&before).is_empty());
        let after = Snapshot::of(&[("slot-a", b"abd"), ("slot-b", b"xyz"), ("new", b"22")]);
        assert_eq!(
            after.changes_since(&before),
            [
                "gone: removed",
                "slot-a: changed (3 -> 3 bytes, first difference at 0x2)",
                "new: added (2 bytes)"
            ]
        );
        let longer = Snapshot::of(&[("slot-a", b"abcd")]);
        let short = Snapshot::of(&[("slot-a", b"abc")]);
        assert_eq!(
            longer.changes_since(&short),
            ["slot-a: changed (3 -> 4 bytes, first difference at 0x3)"]
        );
    }

    #[test]
    fn take_and_restore_round_trip_a_tree() {
        let root = std::env::temp_dir().join(format!("xtask-snap-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("a/sub")).unwrap();
        fs::write(root.join("a/one"), b"1").unwrap();
        fs::write(root.join("a/sub/two"), b"22").unwrap();
        let s = Snapshot::take(&root.join("a")).unwrap();
        assert_eq!((s.len(), s.bytes()), (2, 3));
        fs::write(root.join("a/one"), b"changed").unwrap();
        fs::write(root.join("a/extra"), b"x").unwrap();
        assert_eq!(
            Snapshot::take(&root.join("a"))
                .unwrap()
                .changes_since(&s)
                .len(),
            2
        );
        s.restore(&root.join("a")).unwrap();
        assert_eq!(Snapshot::take(&root.join("a")).unwrap(), s);
        assert_eq!(Snapshot::take(&root.join("missing")).unwrap().len(), 0);
        let _ = fs::remove_dir_all(&root);
    }
}
