//! Names of things on the broker: [`ResourcePath`] (Trustee's
//! `<repository>/<type>/<tag>`, served at `/kbs/v0/resource/...`) and
//! [`VtpmId`], the identity of one vTPM, with the resource paths svtpm uses.
//!
//! Every segment is 1 to 64 characters of `[A-Za-z0-9_.-]`, and not `.` or
//! `..`, so a name is the same thing in a URL, a file name and a log line.

use alloc::string::String;
use core::fmt;

use super::KbsError;

/// Repository of svtpm's resources.
pub const SVTPM_REPOSITORY: &str = "svtpm";
/// Tag of the state key resource.
pub const STATE_KEY_TAG: &str = "state-key";

const MAX_SEGMENT: usize = 64;

fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SEGMENT
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A validated resource path.
#[derive(Clone, PartialEq, Eq)]
pub struct ResourcePath {
    repository: String,
    kind: String,
    tag: String,
}

impl ResourcePath {
    /// Checks the three segments.
    pub fn new(repository: &str, kind: &str, tag: &str) -> Result<Self, KbsError> {
        if [repository, kind, tag].iter().all(|s| valid_segment(s)) {
            Ok(Self {
                repository: repository.into(),
                kind: kind.into(),
                tag: tag.into(),
            })
        } else {
            Err(KbsError::Malformed {
                what: "resource path segment",
            })
        }
    }

    /// Repository.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// Type.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Tag.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The request path, `/kbs/v0/resource/<repository>/<type>/<tag>`.
    pub fn url_path(&self) -> String {
        alloc::format!(
            "/kbs/v0/resource/{}/{}/{}",
            self.repository,
            self.kind,
            self.tag
        )
    }
}

impl fmt::Debug for ResourcePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.repository, self.kind, self.tag)
    }
}

/// Identity of one vTPM: a resource type segment.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VtpmId(String);

impl VtpmId {
    /// Checks `id` (see the module docs for the alphabet).
    pub fn new(id: &str) -> Result<Self, KbsError> {
        if valid_segment(id) {
            Ok(Self(id.into()))
        } else {
            Err(KbsError::Malformed { what: "vTPM id" })
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Where the broker keeps this vTPM's state key:
    /// `svtpm/<vtpm-id>/state-key`.
    pub fn state_key_path(&self) -> ResourcePath {
        ResourcePath {
            repository: SVTPM_REPOSITORY.into(),
            kind: self.0.clone(),
            tag: STATE_KEY_TAG.into(),
        }
    }
}

impl fmt::Debug for VtpmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VtpmId({})", self.0)
    }
}

impl fmt::Display for VtpmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_checked() {
        let p = ResourcePath::new("default", "key", "k1.v2").unwrap();
        assert_eq!(p.url_path(), "/kbs/v0/resource/default/key/k1.v2");
        for bad in ["", ".", "..", "a/b", "a?b", "a b", "é", &"x".repeat(65)] {
            assert!(ResourcePath::new("r", bad, "t").is_err(), "{bad:?}");
            assert!(VtpmId::new(bad).is_err(), "{bad:?}");
        }
        let id = VtpmId::new("vm-42").unwrap();
        assert_eq!(
            id.state_key_path().url_path(),
            "/kbs/v0/resource/svtpm/vm-42/state-key"
        );
    }
}
