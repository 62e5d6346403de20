//! `weir.lock`: beside an agent manifest, the digest of every skill the
//! agent uses, so a run is reproducible and a changed package is refused.
//!
//! ```toml
//! # weir.lock: written by weir; pins each skill to its package digest.
//! [[skill]]
//! name = "greeter"
//! version = "0.1.0"
//! digest = "sha256:5f1c..."
//! source = "127.0.0.1:5000/acme/greeter:0.1.0"
//! granted = { http = ["https://api.example.com"] }
//! ```

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use crate::agent::LOCK_FILE;

/// One pinned skill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedSkill {
    /// The skill's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The package archive's digest, `sha256:<hex>`.
    pub digest: String,
    /// Where it was installed from, for the user.
    pub source: String,
    /// What the agent grants it (recorded so a change shows in review).
    #[serde(default, skip_serializing_if = "super::package::Permissions::is_empty")]
    pub granted: super::package::Permissions,
}

/// The contents of a lockfile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lockfile {
    /// Pinned skills, by name.
    #[serde(default, rename = "skill")]
    pub skills: Vec<LockedSkill>,
}

impl Lockfile {
    /// The lockfile for the agent manifest at `manifest`.
    pub fn path_for(manifest: &Path) -> PathBuf {
        crate::agent::lockfile_path(manifest)
    }

    /// Reads `path`; a missing file is an empty lockfile.
    pub fn read(path: &Path) -> Result<Lockfile, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lockfile::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// The pin of `name`, if any.
    pub fn get(&self, name: &str) -> Option<&LockedSkill> {
        self.skills.iter().find(|s| s.name == name)
    }

    /// Writes the lockfile atomically (temp file, then rename).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut skills = self.skills.clone();
        skills.sort_by(|a, b| a.name.cmp(&b.name));
        let body = toml::to_string_pretty(&Lockfile { skills }).expect("lockfiles serialise");
        let text = format!(
            "# {LOCK_FILE}: written by weir; pins each skill to its package digest.\n{body}"
        );
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        let mut temp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut temp, text.as_bytes())?;
        temp.as_file().sync_all()?;
        temp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}
