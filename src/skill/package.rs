//! The weir manifest of a skill package (`weir-skill.toml`), beside its
//! `SKILL.md`: the skill's version, its components with their sha256, what
//! each carries, and the permissions the skill requests.
//!
//! ```toml
//! [skill]
//! name = "greeter"
//! version = "0.1.0"
//!
//! [components.greeter]
//! path = "components/skill_greeter.wasm"
//! sha256 = "5f1c..."
//! actions = ["greet"]
//! tools = ["add"]
//!
//! [permissions]              # what the skill asks to be granted
//! models = ["chat"]
//! http = ["https://api.example.com"]
//! ```

use crate::agent::DirGrant;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// The file name of the weir manifest in a skill package.
pub const MANIFEST_FILE: &str = "weir-skill.toml";
/// The file name of the Agent Skills description.
pub const SKILL_MD_FILE: &str = "SKILL.md";

/// A skill package's weir manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageManifest {
    /// Name and version.
    pub skill: SkillId,
    /// Components by name.
    #[serde(default)]
    pub components: BTreeMap<String, PackagedComponent>,
    /// wasi:cli command components by name, which models may run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub commands: BTreeMap<String, PackagedCommand>,
    /// What the skill asks to be granted.
    #[serde(default)]
    pub permissions: Permissions,
}

/// A skill's name and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillId {
    /// The skill's name, as in its `SKILL.md`.
    pub name: String,
    /// Its version (semver).
    pub version: String,
}

/// A component file of a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackagedComponent {
    /// Path inside the package, with `/` separators.
    pub path: String,
    /// sha256 of the file, hex.
    pub sha256: String,
    /// Actions it carries.
    #[serde(default)]
    pub actions: Vec<String>,
    /// Tools it provides.
    #[serde(default)]
    pub tools: Vec<String>,
}

/// A wasi:cli command component of a package (a source manifest gives
/// only its description; `weir skill build` fills in the rest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackagedCommand {
    /// What it does, for the model.
    #[serde(default)]
    pub description: String,
    /// Path inside the package.
    #[serde(default)]
    pub path: String,
    /// sha256 of the file, hex.
    #[serde(default)]
    pub sha256: String,
}

/// Capabilities a skill requests. Unknown capabilities are refused when
/// the manifest is read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    /// Chat/embedding model resources, by the name the agent gives them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Tools of other skills it calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// Outbound HTTP destinations (`scheme://host[:port]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<String>,
    /// Directories, by the guest path it expects (`/data`), and whether it
    /// writes there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dirs: Vec<RequestedDir>,
    /// Environment variables, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
}

/// A directory a skill expects to be granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedDir {
    /// Where the guest expects it.
    pub guest: String,
    /// Whether it writes there.
    #[serde(default)]
    pub write: bool,
}

impl Permissions {
    /// True if nothing is requested.
    pub fn is_empty(&self) -> bool {
        self == &Permissions::default()
    }

    /// One line per requested capability, for the user to read before
    /// installing.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut list = |what: &str, items: &[String]| {
            if !items.is_empty() {
                lines.push(format!("{what}: {}", items.join(", ")));
            }
        };
        list("models", &self.models);
        list("tools", &self.tools);
        list("outbound HTTP", &self.http);
        list("environment variables", &self.env);
        for dir in &self.dirs {
            let mode = if dir.write { "read-write" } else { "read-only" };
            lines.push(format!("directory {} ({mode})", dir.guest));
        }
        lines
    }

    /// The host directories granted for the requested guest paths.
    pub fn dirs_granted(&self, host_for: impl Fn(&str) -> PathBuf) -> Vec<DirGrant> {
        self.dirs
            .iter()
            .map(|d| DirGrant {
                host: host_for(&d.guest),
                guest: d.guest.clone(),
                write: d.write,
            })
            .collect()
    }
}

/// A manifest that could not be read, or a package that does not match it.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// I/O on a package file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The manifest is malformed.
    #[error("{path}:{line}:{column}: {message}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The package's files do not agree with its manifest or its SKILL.md.
    #[error("{path}: {message}")]
    Invalid {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl PackageManifest {
    /// Parses manifest text; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<PackageManifest, PackageError> {
        toml::from_str(text).map_err(|e| {
            let (line, column) = crate::util::line_column(text, e.span().map_or(0, |s| s.start));
            PackageError::Manifest {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().trim_end().to_string(),
            }
        })
    }

    /// Reads `weir-skill.toml` in `dir`.
    pub fn read(dir: &Path) -> Result<PackageManifest, PackageError> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| PackageError::Io {
            path: path.clone(),
            source,
        })?;
        Self::parse(&path, &text)
    }

    /// The manifest as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("package manifests always serialise")
    }

    /// Checks the package in `dir` against this manifest: component paths
    /// stay inside the package and each file's sha256 is the one recorded.
    /// Every problem is reported.
    pub fn verify_files(&self, dir: &Path) -> Result<(), Vec<PackageError>> {
        let manifest = dir.join(MANIFEST_FILE);
        let mut problems = Vec::new();
        if !valid_version(&self.skill.version) {
            problems.push(PackageError::Invalid {
                path: manifest.clone(),
                message: format!(
                    "skill.version `{}` is not a semantic version (MAJOR.MINOR.PATCH)",
                    self.skill.version
                ),
            });
        }
        let files = self
            .components
            .iter()
            .map(|(n, c)| (format!("components.{n}"), &c.path, &c.sha256))
            .chain(
                self.commands
                    .iter()
                    .map(|(n, c)| (format!("commands.{n}"), &c.path, &c.sha256)),
            );
        for (name, path, sha256) in files {
            let Some(relative) = inside(path) else {
                problems.push(PackageError::Invalid {
                    path: manifest.clone(),
                    message: format!(
                        "{name}.path `{path}` must be a relative path inside the package"
                    ),
                });
                continue;
            };
            let file = dir.join(relative);
            match sha256_file(&file) {
                Ok(digest) if digest == *sha256 => {}
                Ok(digest) => problems.push(PackageError::Invalid {
                    path: file,
                    message: format!(
                        "sha256 is {digest}, the manifest records {sha256} ({name}.sha256): the file was changed"
                    ),
                }),
                Err(source) => problems.push(PackageError::Io { path: file, source }),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// `path` as a relative path that stays inside its root, if it does.
pub(crate) fn inside(path: &str) -> Option<PathBuf> {
    let path = Path::new(path);
    let mut clean = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(p) => clean.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!clean.as_os_str().is_empty()).then_some(clean)
}

/// True for a semantic version: `MAJOR.MINOR.PATCH`, then optionally
/// `-pre` and `+build`, whose dot-separated parts are `[0-9A-Za-z-]`. (A
/// version names files in the skill store, so nothing else may pass.)
pub fn valid_version(version: &str) -> bool {
    let (rest, build) = match version.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (version, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let identifiers = |text: &str| {
        text.split('.').all(|part| {
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
    };
    let parts: Vec<&str> = core.split('.').collect();
    version.len() <= 128
        && parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && pre.is_none_or(identifiers)
        && build.is_none_or(identifiers)
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[skill]
name = "greeter"
version = "0.1.0"

[components.greeter]
path = "components/g.wasm"
sha256 = "00"
actions = ["greet"]

[permissions]
http = ["https://api.example.com"]
dirs = [{ guest = "/data" }]
"#;

    #[test]
    fn parses_and_describes_permissions() {
        let m = PackageManifest::parse(Path::new("weir-skill.toml"), GOOD).unwrap();
        assert_eq!(m.skill.name, "greeter");
        assert_eq!(m.components["greeter"].actions, ["greet"]);
        assert_eq!(
            m.permissions.describe(),
            [
                "outbound HTTP: https://api.example.com",
                "directory /data (read-only)"
            ]
        );
        let again = PackageManifest::parse(Path::new("x"), &m.to_toml()).unwrap();
        assert_eq!(again, m);
    }

    #[test]
    fn unknown_capabilities_are_refused_with_their_location() {
        let bad = GOOD.replace("[permissions]", "[permissions]\nraw_sockets = true");
        let err = PackageManifest::parse(Path::new("weir-skill.toml"), &bad)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("weir-skill.toml:12:1:"), "{err}");
        assert!(err.contains("raw_sockets"), "{err}");
    }

    #[test]
    fn paths_must_stay_inside() {
        assert_eq!(inside("a/b.wasm"), Some(PathBuf::from("a/b.wasm")));
        assert_eq!(inside("./a.wasm"), Some(PathBuf::from("a.wasm")));
        assert_eq!(inside("../a.wasm"), None);
        assert_eq!(inside("/etc/passwd"), None);
        assert_eq!(inside("a/../../b"), None);
        assert_eq!(inside(""), None);
    }

    #[test]
    fn versions_are_semver() {
        assert!(valid_version("0.1.0"));
        assert!(valid_version("1.2.3-rc.1+build.5"));
        assert!(!valid_version("1.2"));
        assert!(!valid_version("v1.2.3"));
        assert!(!valid_version("1.x.3"));
        assert!(!valid_version("0.1.0-a/../../../../home/u/.docker/config"));
        assert!(!valid_version("0.1.0+a/b"));
        assert!(!valid_version("0.1.0-"));
    }
}
