//! The content-addressed skill store.
//!
//! ```text
//! <root>/blobs/sha256/<hex>               package archives, named by their sha256
//! <root>/packages/sha256-<hex>/            each archive unpacked (never changed)
//! <root>/installed/<name>/<version>.json   what is installed: digest, source, grants
//! <root>/tmp/                              installs in progress
//! ```
//!
//! An install downloads or copies the archive into `tmp/`, checks its digest,
//! unpacks and verifies it there, and only then renames it into place, so a
//! failed or interrupted install leaves nothing behind and concurrent
//! installs of the same package are safe (renames are atomic; the second
//! finds the package already there). Installs place their files under a
//! shared lock on `<root>/store.lock`; removing and collecting garbage take
//! it exclusively, so they never delete a package an install is about to
//! point a record at.
//!
//! A name and version name one package: installing a different package
//! under an installed name@version is refused (agents pinning that version
//! would silently run other code) unless the store was opened
//! [`replacing`](SkillStore::replacing).

use super::archive::{self, ArchiveLimits};
use super::package::{self, PackageManifest, Permissions, SKILL_MD_FILE};
use super::skill_md;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A skill store on disk.
#[derive(Debug, Clone)]
pub struct SkillStore {
    root: PathBuf,
    /// Installs may replace another package of the same name@version.
    replace: bool,
}

/// A temporary directory for one install, removed when dropped; its lock
/// tells other processes it is in use.
#[derive(Debug)]
pub struct Staging {
    dir: tempfile::TempDir,
    _lock: std::fs::File,
}

impl Staging {
    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A package directory's name is this, then its archive's sha256 (hex).
const PACKAGE_PREFIX: &str = "sha256-";

/// The lock file in an install's temporary directory.
const STAGING_LOCK: &str = ".in-use";

/// True for a temporary directory no live install holds: its lock is free,
/// or it has none and is over an hour old (a directory is made a moment
/// before its lock, so a young one without a lock may be starting).
fn abandoned(dir: &Path) -> bool {
    match std::fs::File::open(dir.join(STAGING_LOCK)) {
        Ok(file) => file.try_lock().is_ok(),
        Err(_) => {
            let stale = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
            std::fs::metadata(dir)
                .and_then(|m| m.modified())
                .is_ok_and(|modified| modified < stale)
        }
    }
}

/// An installed skill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledSkill {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// sha256 of its package archive, `sha256:<hex>`.
    pub digest: String,
    /// Where it was installed from.
    pub source: String,
    /// What the skill requests.
    pub requested: Permissions,
    /// The skill's description (from SKILL.md).
    pub description: String,
    /// The unpacked package.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// Why a store operation failed. Nothing is left installed by a failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// I/O in the store.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// The archive's digest is not the one expected.
    #[error("digest mismatch for {source_name}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// Where the archive came from.
        source_name: String,
        /// The digest asked for.
        expected: String,
        /// The archive's digest.
        actual: String,
    },
    /// The archive is unsafe or too big.
    #[error("{source_name}: {error}")]
    Archive {
        /// Where the archive came from.
        source_name: String,
        /// What is wrong.
        error: archive::ArchiveError,
    },
    /// The package is not a valid skill.
    #[error("{source_name} is not a valid skill package:\n{}", problems.join("\n"))]
    Invalid {
        /// Where it came from.
        source_name: String,
        /// Every problem found.
        problems: Vec<String>,
    },
    /// No such skill is installed.
    #[error("no skill `{0}` is installed (see `weir skill list`)")]
    NotInstalled(String),
    /// Another package is installed under the same name and version.
    #[error(transparent)]
    Conflict(Box<Conflict>),
}

/// An install that would replace another package of the same name@version.
#[derive(Debug, thiserror::Error)]
#[error(
    "{name}@{version} is already installed as another package ({installed}, from {installed_from}); {source_name} is {digest}. Give the skill a new version, or replace the installed one with --force (or `weir skill remove {name}@{version}` first)"
)]
pub struct Conflict {
    /// The skill's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The installed package's digest.
    pub installed: String,
    /// Where the installed package came from.
    pub installed_from: String,
    /// Where the new package came from.
    pub source_name: String,
    /// The new package's digest.
    pub digest: String,
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError {
    let context = context.into();
    move |source| StoreError::Io { context, source }
}

/// `sha256:<hex>` of a file.
pub fn digest_of(path: &Path) -> std::io::Result<String> {
    Ok(format!("sha256:{}", package::sha256_file(path)?))
}

/// `Ok` if `actual` is the `expected` digest (or none is expected), else
/// the mismatch for `source`.
pub fn expect_digest(source: &str, expected: Option<&str>, actual: &str) -> Result<(), StoreError> {
    match expected {
        Some(expected) if expected != actual => Err(StoreError::DigestMismatch {
            source_name: source.to_string(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        }),
        _ => Ok(()),
    }
}

/// The hex part of a `sha256:<hex>` digest, if it is one.
pub fn digest_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then_some(hex)
}

/// Reads and checks the package unpacked in `dir`: its SKILL.md, its
/// manifest, and every component's digest. Returns every problem found.
pub fn check_package(dir: &Path) -> Result<(PackageManifest, skill_md::SkillMd), Vec<String>> {
    let mut problems = Vec::new();
    let manifest = match PackageManifest::read(dir) {
        Ok(m) => Some(m),
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    };
    let skill_md_path = dir.join(SKILL_MD_FILE);
    let folder = manifest
        .as_ref()
        .map(|m| m.skill.name.clone())
        .unwrap_or_default();
    let skill = match std::fs::read_to_string(&skill_md_path) {
        Ok(text) => match skill_md::validate(&folder, &text) {
            Ok(skill) => Some(skill),
            Err(violations) => {
                problems.extend(violations.iter().map(|v| v.at(&skill_md_path).to_string()));
                None
            }
        },
        Err(e) => {
            problems.push(format!("{}: {e}", skill_md_path.display()));
            None
        }
    };
    if let Some(manifest) = &manifest
        && let Err(found) = manifest.verify_files(dir)
    {
        problems.extend(found.iter().map(ToString::to_string));
    }
    match (manifest, skill) {
        (Some(m), Some(s)) if problems.is_empty() => Ok((m, s)),
        _ => Err(problems),
    }
}

impl SkillStore {
    /// The store at `root` (created on first install).
    pub fn open(root: impl Into<PathBuf>) -> SkillStore {
        SkillStore {
            root: root.into(),
            replace: false,
        }
    }

    /// This store, whose installs replace (`true`) or refuse (`false`, the
    /// default) an installed package of the same name@version with another
    /// digest.
    pub fn replacing(self, replace: bool) -> SkillStore {
        SkillStore { replace, ..self }
    }

    /// `Ok` unless `record` is another package of the skill `new` is.
    fn check_replace(&self, record: &Path, new: &InstalledSkill) -> Result<(), StoreError> {
        if self.replace {
            return Ok(());
        }
        // A damaged record hides nothing (`list` skips it): it may go.
        match self.read_record(record) {
            Ok(old) if old.digest != new.digest => Err(StoreError::Conflict(Box::new(Conflict {
                name: new.name.clone(),
                version: new.version.clone(),
                installed: old.digest,
                installed_from: old.source,
                source_name: new.source.clone(),
                digest: new.digest.clone(),
            }))),
            _ => Ok(()),
        }
    }

    /// `$WEIR_SKILLS_DIR`, else the user's data dir + `weir/skills`.
    pub fn default_root() -> PathBuf {
        match std::env::var_os("WEIR_SKILLS_DIR") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => dirs::data_dir()
                .unwrap_or_else(std::env::temp_dir)
                .join("weir")
                .join("skills"),
        }
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn blob(&self, hex: &str) -> PathBuf {
        self.blobs().join(hex)
    }

    fn packages(&self) -> PathBuf {
        self.root.join("packages")
    }

    fn package_dir(&self, hex: &str) -> PathBuf {
        self.packages().join(format!("{PACKAGE_PREFIX}{hex}"))
    }

    fn record(&self, name: &str, version: &str) -> PathBuf {
        self.root
            .join("installed")
            .join(name)
            .join(format!("{version}.json"))
    }

    /// A fresh temporary directory inside the store (same filesystem, so a
    /// rename out of it is atomic); removed when dropped. It holds a lock
    /// while in use; leftovers of installs that died (their lock free) are
    /// removed first.
    pub fn temp_dir(&self) -> Result<Staging, StoreError> {
        let tmp = self.root.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(io(tmp.display().to_string()))?;
        for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
            if abandoned(&entry.path()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("install-")
            .tempdir_in(&tmp)
            .map_err(io(tmp.display().to_string()))?;
        // Locked before it takes its name: another install seeing the lock
        // file must never find it free (created, not yet locked) and take
        // this live directory for an abandoned one.
        let lock_path = dir.path().join(STAGING_LOCK);
        let locking = dir.path().join(".locking");
        let lock = std::fs::File::create(&locking)
            .and_then(|file| file.lock().map(|()| file))
            .and_then(|file| std::fs::rename(&locking, &lock_path).map(|()| file))
            .map_err(io(lock_path.display().to_string()))?;
        Ok(Staging { dir, _lock: lock })
    }

    /// Packs the skill directory `dir` and installs it.
    pub fn install_dir(&self, dir: &Path) -> Result<InstalledSkill, StoreError> {
        let staging = self.temp_dir()?;
        let archive_path = staging.path().join("package.tar.gz");
        archive::pack(dir, &archive_path).map_err(|error| StoreError::Archive {
            source_name: dir.display().to_string(),
            error,
        })?;
        self.install_archive(&archive_path, None, &dir.display().to_string())
    }

    /// Installs the package archive at `archive`, checking its digest
    /// against `expected` (`sha256:<hex>`) when given.
    pub fn install_archive(
        &self,
        archive_path: &Path,
        expected: Option<&str>,
        source: &str,
    ) -> Result<InstalledSkill, StoreError> {
        let digest = digest_of(archive_path).map_err(io(archive_path.display().to_string()))?;
        expect_digest(source, expected, &digest)?;
        let hex = digest_hex(&digest).expect("we made it").to_string();
        let staging = self.temp_dir()?;
        let unpacked = staging.path().join("package");
        std::fs::create_dir(&unpacked).map_err(io(unpacked.display().to_string()))?;
        archive::unpack(archive_path, &unpacked, ArchiveLimits::default()).map_err(|error| {
            StoreError::Archive {
                source_name: source.to_string(),
                error,
            }
        })?;
        let (manifest, skill) =
            check_package(&unpacked).map_err(|problems| StoreError::Invalid {
                source_name: source.to_string(),
                problems,
            })?;
        // Name and version name files here: only plain names may pass
        // (check_package already holds them to the SKILL.md and semver
        // rules; this guards the store whatever those rules become).
        let plain = |s: &str| {
            !s.is_empty()
                && !s.starts_with('.')
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'+'))
        };
        if !plain(&manifest.skill.name) || !plain(&manifest.skill.version) {
            return Err(StoreError::Invalid {
                source_name: source.to_string(),
                problems: vec![format!(
                    "`{}@{}` cannot name a store entry",
                    manifest.skill.name, manifest.skill.version
                )],
            });
        }

        let package_dir = self.package_dir(&hex);
        let installed = InstalledSkill {
            name: manifest.skill.name.clone(),
            version: manifest.skill.version.clone(),
            digest,
            source: source.to_string(),
            requested: manifest.permissions.clone(),
            description: skill.description,
            dir: package_dir.clone(),
        };
        let record = self.record(&installed.name, &installed.version);
        // Checked before anything is placed, and again when the record is.
        self.check_replace(&record, &installed)?;

        // Blob, then package, then the record: each appears whole or not at
        // all, and a record only ever points at a complete package.
        let _placing = self.lock(false)?;
        let blob = self.blob(&hex);
        if !blob.exists() {
            let staged = staging.path().join("blob");
            std::fs::copy(archive_path, &staged).map_err(io(staged.display().to_string()))?;
            place(&staged, &blob)?;
        }
        if !package_dir.exists() {
            place(&unpacked, &package_dir)?;
        }
        let staged = staging.path().join("record.json");
        let json = serde_json::to_vec_pretty(&installed).expect("records serialise");
        std::fs::write(&staged, json).map_err(io(staged.display().to_string()))?;
        std::fs::File::open(&staged)
            .and_then(|f| f.sync_all())
            .map_err(io(staged.display().to_string()))?;
        if let Some(parent) = record.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent.display().to_string()))?;
        }
        // A link appears only where no record is, atomically: of two
        // installs of different packages under one name@version, the
        // second finds the first's record and is checked against it.
        if std::fs::hard_link(&staged, &record).is_err() {
            self.check_replace(&record, &installed)?;
            std::fs::rename(&staged, &record).map_err(io(record.display().to_string()))?;
        }
        Ok(installed)
    }

    /// Every installed skill, by name then version.
    pub fn list(&self) -> Result<Vec<InstalledSkill>, StoreError> {
        let installed = self.root.join("installed");
        let mut out = Vec::new();
        let Ok(names) = std::fs::read_dir(&installed) else {
            return Ok(out);
        };
        for name in names {
            let name = name.map_err(io(installed.display().to_string()))?;
            let versions =
                std::fs::read_dir(name.path()).map_err(io(name.path().display().to_string()))?;
            for version in versions {
                let path = version
                    .map_err(io(name.path().display().to_string()))?
                    .path();
                if path.extension().is_some_and(|e| e == "json") {
                    // One damaged record must not hide every other skill.
                    match self.read_record(&path) {
                        Ok(skill) => out.push(skill),
                        Err(e) => {
                            tracing::warn!(error = %e, "skipping an unreadable install record")
                        }
                    }
                }
            }
        }
        out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        Ok(out)
    }

    fn read_record(&self, path: &Path) -> Result<InstalledSkill, StoreError> {
        let text = std::fs::read(path).map_err(io(path.display().to_string()))?;
        let mut skill: InstalledSkill =
            serde_json::from_slice(&text).map_err(|e| StoreError::Io {
                context: path.display().to_string(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })?;
        let hex = digest_hex(&skill.digest).unwrap_or_default().to_string();
        skill.dir = self.package_dir(&hex);
        Ok(skill)
    }

    /// The installed skill `name`: `version` if given, else the highest
    /// installed version.
    pub fn get(&self, name: &str, version: Option<&str>) -> Result<InstalledSkill, StoreError> {
        let mut matching: Vec<InstalledSkill> = self
            .list()?
            .into_iter()
            .filter(|s| s.name == name && version.is_none_or(|v| v == s.version))
            .collect();
        matching.sort_by_key(|s| version_key(&s.version));
        matching.pop().ok_or_else(|| {
            StoreError::NotInstalled(match version {
                Some(v) => format!("{name}@{v}"),
                None => name.to_string(),
            })
        })
    }

    /// Uninstalls `name` (one version, or all). Package contents still used
    /// by another installed version stay.
    pub fn remove(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Vec<InstalledSkill>, StoreError> {
        let _removing = self.lock(true)?;
        let all = self.list()?;
        let (gone, kept): (Vec<_>, Vec<_>) = all
            .into_iter()
            .partition(|s| s.name == name && version.is_none_or(|v| v == s.version));
        if gone.is_empty() {
            return Err(StoreError::NotInstalled(name.to_string()));
        }
        for skill in &gone {
            let record = self.record(&skill.name, &skill.version);
            std::fs::remove_file(&record).map_err(io(record.display().to_string()))?;
            if let Some(name_dir) = record.parent() {
                // Only succeeds once the skill's last version is gone.
                let _ = std::fs::remove_dir(name_dir);
            }
            if kept.iter().any(|k| k.digest == skill.digest) {
                continue;
            }
            let hex = digest_hex(&skill.digest).unwrap_or_default();
            // Move aside first, so a half-deleted package is never in place.
            let doomed = self.temp_dir()?;
            let _ = std::fs::rename(self.package_dir(hex), doomed.path().join("package"));
            let _ = std::fs::remove_file(self.blob(hex));
        }
        Ok(gone)
    }

    /// Removes archives and packages no installed skill uses (left by an
    /// install killed between its renames, say). Returns how many entries
    /// went and their bytes.
    pub fn collect_garbage(&self) -> Result<(usize, u64), StoreError> {
        let _collecting = self.lock(true)?;
        let used: std::collections::HashSet<String> = self
            .list()?
            .iter()
            .filter_map(|s| digest_hex(&s.digest).map(str::to_string))
            .collect();
        let doomed = self.temp_dir()?;
        let (mut entries, mut bytes) = (0, 0);
        for entry in std::fs::read_dir(self.blobs())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !used.contains(&name) {
                bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
                if std::fs::remove_file(entry.path()).is_ok() {
                    entries += 1;
                }
            }
        }
        for entry in std::fs::read_dir(self.packages())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let hex = name.strip_prefix(PACKAGE_PREFIX).unwrap_or(&name);
            if !used.contains(hex) {
                bytes += tree_bytes(&entry.path());
                // Moved aside first, so a half-deleted package is never in
                // place; the temporary directory goes when dropped.
                let aside = doomed.path().join(&name);
                if std::fs::rename(entry.path(), aside).is_ok() {
                    entries += 1;
                }
            }
        }
        Ok((entries, bytes))
    }

    /// Locks the store: shared while an install places its files, exclusive
    /// to remove them.
    fn lock(&self, exclusive: bool) -> Result<std::fs::File, StoreError> {
        std::fs::create_dir_all(&self.root).map_err(io(self.root.display().to_string()))?;
        let path = self.root.join("store.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(path.display().to_string()))?;
        let locked = if exclusive {
            file.lock()
        } else {
            file.lock_shared()
        };
        locked.map_err(io(path.display().to_string()))?;
        Ok(file)
    }

    /// Re-checks an installed skill: the archive's digest, and every file of
    /// the unpacked package against its manifest.
    pub fn verify(&self, skill: &InstalledSkill) -> Result<(), StoreError> {
        let hex = digest_hex(&skill.digest).unwrap_or_default();
        let blob = self.blob(hex);
        let actual = digest_of(&blob).map_err(io(blob.display().to_string()))?;
        expect_digest(&blob.display().to_string(), Some(&skill.digest), &actual)?;
        check_package(&skill.dir).map_err(|problems| StoreError::Invalid {
            source_name: skill.dir.display().to_string(),
            problems,
        })?;
        Ok(())
    }

    /// The archive of an installed skill (to push it, say).
    pub fn archive_of(&self, skill: &InstalledSkill) -> PathBuf {
        self.blob(digest_hex(&skill.digest).unwrap_or_default())
    }
}

/// The bytes of the files under `dir`.
fn tree_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => tree_bytes(&entry.path()),
            _ => entry.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

/// Renames `from` to `to`, creating `to`'s parent; if another install put
/// `to` there first, that one is kept.
fn place(from: &Path, to: &Path) -> Result<(), StoreError> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent.display().to_string()))?;
    }
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(_) if to.exists() => Ok(()),
        Err(e) => Err(io(to.display().to_string())(e)),
    }
}

/// Orders versions numerically (`0.10.0` after `0.9.0`).
fn version_key(version: &str) -> Vec<u64> {
    version
        .split(['-', '+'])
        .next()
        .unwrap_or("")
        .split('.')
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}
