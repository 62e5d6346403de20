//! What an action or a component's tools are granted, and how their
//! instances are isolated, as the user writes it.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Grants as written in a manifest or with the builder. Everything not
/// listed is denied; the plan checks and compiles them into
/// [`crate::Grants`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantSpec {
    /// Chat/embedding model resources, by name.
    pub models: Vec<String>,
    /// Tools, by name.
    pub tools: Vec<String>,
    /// Outbound HTTP destinations: `scheme://host[:port]`, where the scheme
    /// may be `*`, the host `*` or `*.domain`, and the port `*`.
    pub http: Vec<String>,
    /// Host directories the guest sees.
    pub dirs: Vec<DirGrant>,
    /// Environment variables the guest sees, by name (values are read when
    /// the plan is made; unset ones are left out).
    pub env: Vec<String>,
}

/// A host directory a guest may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirGrant {
    /// The directory on the host (a manifest's relative paths are relative
    /// to the manifest).
    pub host: PathBuf,
    /// Where the guest sees it, for example `/data`.
    pub guest: String,
    /// Whether the guest may create, change and delete files in it.
    #[serde(default)]
    pub write: bool,
}

/// How an action's tasks get their WebAssembly instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "mode")]
pub enum Isolation {
    /// A fresh instance per task (the default): nothing a task leaves in
    /// the guest's memory reaches another task.
    #[default]
    Fresh,
    /// Reuse a warm instance for up to `max_tasks` tasks, dropping it after
    /// any trap, timeout or limit. Guest globals and heap survive between
    /// those tasks: within one key (`scope = key`) or across keys
    /// (`scope = any`).
    Reuse {
        /// Whose tasks share an instance.
        scope: ReuseScope,
        /// Tasks one instance serves before it is dropped.
        max_tasks: u32,
    },
}

/// Whose tasks may share a reused instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReuseScope {
    /// Only tasks of the same key.
    Key,
    /// Tasks of any key.
    Any,
}

impl Isolation {
    /// Parses the manifest's `isolation`: `"fresh"`, or a table
    /// `{ reuse = "key" | "any", max_tasks = N }` (`max_tasks` defaults to
    /// 1000).
    pub(crate) fn from_toml(value: &toml::Value) -> Result<Isolation, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            reuse: ReuseScope,
            #[serde(default = "default_max_tasks")]
            max_tasks: u32,
        }
        match value {
            toml::Value::String(s) if s == "fresh" => Ok(Isolation::Fresh),
            toml::Value::Table(_) => {
                let raw: Raw = value.clone().try_into().map_err(|e: toml::de::Error| {
                    format!(
                        "{} (expected {{ reuse = \"key\" | \"any\", max_tasks = N }})",
                        e.message().trim()
                    )
                })?;
                if raw.max_tasks == 0 {
                    return Err("max_tasks must be at least 1".into());
                }
                Ok(Isolation::Reuse {
                    scope: raw.reuse,
                    max_tasks: raw.max_tasks,
                })
            }
            _ => Err("expected \"fresh\" or { reuse = \"key\" | \"any\", max_tasks = N }".into()),
        }
    }
}

fn default_max_tasks() -> u32 {
    1000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Isolation, String> {
        let table: toml::Table = toml::from_str(&format!("isolation = {text}")).unwrap();
        Isolation::from_toml(&table["isolation"])
    }

    #[test]
    fn isolation_modes_parse() {
        assert_eq!(parse("\"fresh\"").unwrap(), Isolation::Fresh);
        assert_eq!(
            parse("{ reuse = \"key\", max_tasks = 5 }").unwrap(),
            Isolation::Reuse {
                scope: ReuseScope::Key,
                max_tasks: 5
            }
        );
        assert_eq!(
            parse("{ reuse = \"any\" }").unwrap(),
            Isolation::Reuse {
                scope: ReuseScope::Any,
                max_tasks: 1000
            }
        );
        assert!(parse("\"warm\"").unwrap_err().contains("expected"));
        assert!(
            parse("{ reuse = \"all\" }")
                .unwrap_err()
                .contains("unknown variant")
        );
        assert!(
            parse("{ reuse = \"key\", max_tasks = 0 }")
                .unwrap_err()
                .contains("at least 1")
        );
    }
}
