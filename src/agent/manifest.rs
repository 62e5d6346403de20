//! The TOML agent manifest.
//!
//! ```toml
//! [agent]
//! name = "word-stats"
//!
//! [config]                       # visible to every action
//! top = 3
//!
//! [components.tokenizer]
//! path = "components/skill_tokenizer.wasm"
//!
//! [actions.tokenize]
//! component = "tokenizer"
//! export = "tokenize"            # optional, defaults to the action's name
//! listen = ["_input_event"]
//! config = { min_length = 2 }    # optional, overlays [config]
//! models = ["gpt"]               # grants (optional): models, tools, http, dirs, env
//! http = ["https://api.example.com"]
//! dirs = [{ host = "data", guest = "/data", write = false }]
//! env = ["REGION"]
//! limits = { memory_mb = 64 }    # optional, overlays [limits]
//! isolation = "fresh"            # or { reuse = "key" | "any", max_tasks = N }
//!
//! [skills.greeter]              # an installed skill (`weir skill install`), pinned in weir.lock
//! version = "0.1.0"
//! http = ["https://api.example.com"]   # what its tools are granted
//!
//! [resources.greeting]
//! kind = "prompt"
//! template = "Hello {name}"
//!
//! [runtime]                      # optional
//! max_concurrency = 64
//! max_depth = 32
//!
//! [event_log]                    # optional: what `--event-log` keeps
//! level = "STANDARD"             # OFF | STANDARD | VERBOSE
//! types = { "com.acme.order" = "VERBOSE" }   # by event type or dotted prefix
//! standard = { max_string_length = 2000, max_array_elements = 20, max_depth = 5 }
//!
//! [limits]                       # optional: every task's limits
//! cpu_ms = 10000
//! ```

use super::{
    ActionSpec, Agent, ComponentSpec, DirGrant, GrantSpec, Isolation, Location, Origin, ReactSpec,
    ResourceSpec, RuntimeSettings, SkillUse,
};
use crate::limits::LimitSettings;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toml::Spanned;

/// A manifest that could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("{path}: cannot read the agent manifest: {source}")]
    Read {
        /// The manifest path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or does not have the manifest's shape.
    #[error("{location}: {message}")]
    Invalid {
        /// Where the problem is.
        location: Location,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    agent: RawHeader,
    #[serde(default)]
    config: toml::Table,
    #[serde(default)]
    components: BTreeMap<String, Spanned<RawComponent>>,
    #[serde(default)]
    skills: BTreeMap<String, Spanned<RawSkill>>,
    #[serde(default)]
    actions: BTreeMap<String, Spanned<RawAction>>,
    #[serde(default)]
    resources: BTreeMap<String, Spanned<toml::Table>>,
    #[serde(default)]
    runtime: Option<RuntimeSettings>,
    #[serde(default)]
    event_log: Option<crate::observe::eventlog::EventLogSettings>,
    #[serde(default)]
    limits: Option<LimitSettings>,
    #[serde(default)]
    react: Option<Spanned<RawReact>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReact {
    model: String,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    output_schema: Option<toml::Value>,
    #[serde(default = "default_max_steps")]
    max_steps: u32,
}

fn default_max_steps() -> u32 {
    10
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    path: Spanned<String>,
    #[serde(default)]
    models: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    tools: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    http: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    dirs: Option<Spanned<Vec<DirGrant>>>,
    #[serde(default)]
    env: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    limits: Option<Spanned<LimitSettings>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    component: Spanned<String>,
    #[serde(default)]
    export: Option<Spanned<String>>,
    listen: Spanned<Vec<String>>,
    #[serde(default)]
    config: Option<Spanned<toml::Table>>,
    #[serde(default)]
    models: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    tools: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    http: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    dirs: Option<Spanned<Vec<DirGrant>>>,
    #[serde(default)]
    env: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    limits: Option<Spanned<LimitSettings>>,
    #[serde(default)]
    isolation: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSkill {
    version: Spanned<String>,
    #[serde(default)]
    models: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    tools: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    http: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    dirs: Option<Spanned<Vec<DirGrant>>>,
    #[serde(default)]
    env: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    limits: Option<Spanned<LimitSettings>>,
}

/// The grant fields of a raw action, component or skill.
macro_rules! raw_grants {
    ($raw:expr) => {
        RawGrants {
            models: $raw.models,
            tools: $raw.tools,
            http: $raw.http,
            dirs: $raw.dirs,
            env: $raw.env,
        }
    };
}

/// The grant fields an action or a component carries, as read.
struct RawGrants {
    models: Option<Spanned<Vec<String>>>,
    tools: Option<Spanned<Vec<String>>>,
    http: Option<Spanned<Vec<String>>>,
    dirs: Option<Spanned<Vec<DirGrant>>>,
    env: Option<Spanned<Vec<String>>>,
}

impl RawGrants {
    /// The grants, noting where each field was written; granted dirs are
    /// resolved against the manifest's directory.
    fn into_spec(self, locator: &Locator, origin: &mut Origin, base: &Path) -> GrantSpec {
        let mut list = |field: &'static str, list: Option<Spanned<Vec<String>>>| match list {
            Some(list) => {
                origin.set(field, locator.at(list.span()));
                list.into_inner()
            }
            None => Vec::new(),
        };
        let models = list("models", self.models);
        let tools = list("tools", self.tools);
        let http = list("http", self.http);
        let env = list("env", self.env);
        let dirs = match self.dirs {
            Some(dirs) => {
                origin.set("dirs", locator.at(dirs.span()));
                dirs.into_inner()
                    .into_iter()
                    .map(|d| DirGrant {
                        host: if d.host.is_absolute() {
                            d.host
                        } else {
                            base.join(d.host)
                        },
                        ..d
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        GrantSpec {
            models,
            tools,
            http,
            dirs,
            env,
        }
    }
}

fn limits_of(
    locator: &Locator,
    origin: &mut Origin,
    limits: Option<Spanned<LimitSettings>>,
) -> LimitSettings {
    match limits {
        Some(limits) => {
            origin.set("limits", locator.at(limits.span()));
            limits.into_inner()
        }
        None => LimitSettings::default(),
    }
}

pub(super) fn load(path: PathBuf) -> Result<Agent, ManifestError> {
    let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Read {
        path: path.clone(),
        source,
    })?;
    parse(path, &text)
}

/// Maps byte offsets of one manifest text to line and column.
struct Locator<'a> {
    file: Arc<PathBuf>,
    text: &'a str,
}

impl Locator<'_> {
    fn at(&self, span: Range<usize>) -> Location {
        let (line, column) = crate::util::line_column(self.text, span.start);
        Location {
            file: self.file.clone(),
            line,
            column,
        }
    }

    fn error(&self, span: Range<usize>, message: impl Into<String>) -> ManifestError {
        ManifestError::Invalid {
            location: self.at(span),
            message: message.into(),
        }
    }
}

fn to_json(table: toml::Table) -> Map<String, Value> {
    match serde_json::to_value(table) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// The directory model files are looked up in: `$WEIR_MODELS`, else the
/// user's cache dir + `weir/models` (where `scripts/fetch-models` puts them).
pub fn models_dir() -> PathBuf {
    match std::env::var_os("WEIR_MODELS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => dirs::cache_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("weir")
            .join("models"),
    }
}

/// Resolves a resource's `*_path` setting: `${WEIR_MODELS}` is the models
/// dir, other `${NAME}`s are environment variables, and relative paths are
/// relative to the manifest's directory.
fn resolve_path(text: &str, base: &Path) -> Result<PathBuf, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| format!("unclosed `${{` in `{text}`"))?;
        let name = &rest[start + 2..start + end];
        let value = if name == "WEIR_MODELS" {
            models_dir().display().to_string()
        } else {
            std::env::var(name)
                .map_err(|_| format!("the environment variable `{name}` is not set"))?
        };
        out.push_str(&value);
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    let path = PathBuf::from(out);
    Ok(if path.is_absolute() {
        path
    } else {
        base.join(path)
    })
}

pub(super) fn parse(path: PathBuf, text: &str) -> Result<Agent, ManifestError> {
    let locator = Locator {
        file: Arc::new(path.clone()),
        text,
    };
    let raw: RawManifest = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        locator.error(span, e.message().trim_end().to_string())
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();

    let name_span = raw.agent.name.span();
    let name = raw.agent.name.into_inner();
    if name.trim().is_empty() {
        return Err(locator.error(name_span, "agent.name: must not be empty"));
    }

    let mut components = BTreeMap::new();
    for (component_name, raw_component) in raw.components {
        let whole = raw_component.span();
        let raw_component = raw_component.into_inner();
        let mut origin = Origin::default();
        origin.set_whole(locator.at(whole));
        origin.set("path", locator.at(raw_component.path.span()));
        let file = PathBuf::from(raw_component.path.into_inner());
        let grants = raw_grants!(raw_component).into_spec(&locator, &mut origin, &base);
        let limits = limits_of(&locator, &mut origin, raw_component.limits);
        components.insert(
            component_name,
            ComponentSpec {
                path: if file.is_absolute() {
                    file
                } else {
                    base.join(file)
                },
                grants,
                limits,
                origin,
            },
        );
    }

    let mut skills = BTreeMap::new();
    for (skill_name, raw_skill) in raw.skills {
        let whole = raw_skill.span();
        let raw_skill = raw_skill.into_inner();
        let mut origin = Origin::default();
        origin.set_whole(locator.at(whole));
        origin.set("version", locator.at(raw_skill.version.span()));
        let grants = raw_grants!(raw_skill).into_spec(&locator, &mut origin, &base);
        let limits = limits_of(&locator, &mut origin, raw_skill.limits);
        skills.insert(
            skill_name,
            SkillUse {
                version: raw_skill.version.into_inner(),
                grants,
                limits,
                origin,
            },
        );
    }

    let mut actions = Vec::new();
    for (action_name, raw_action) in raw.actions {
        let whole = raw_action.span();
        let raw_action = raw_action.into_inner();
        let mut origin = Origin::default();
        origin.set_whole(locator.at(whole));
        origin.set("component", locator.at(raw_action.component.span()));
        origin.set("listen", locator.at(raw_action.listen.span()));
        let export = match raw_action.export {
            Some(export) => {
                origin.set("export", locator.at(export.span()));
                export.into_inner()
            }
            None => action_name.clone(),
        };
        let config = match raw_action.config {
            Some(config) => {
                origin.set("config", locator.at(config.span()));
                to_json(config.into_inner())
            }
            None => Map::new(),
        };
        let grants = raw_grants!(raw_action).into_spec(&locator, &mut origin, &base);
        let limits = limits_of(&locator, &mut origin, raw_action.limits);
        let isolation = match raw_action.isolation {
            Some(value) => Isolation::from_toml(value.get_ref()).map_err(|message| {
                locator.error(
                    value.span(),
                    format!("actions.{action_name}.isolation: {message}"),
                )
            })?,
            None => Isolation::Fresh,
        };
        actions.push(ActionSpec {
            name: action_name,
            component: raw_action.component.into_inner(),
            grants,
            limits,
            isolation,
            export,
            listen: raw_action.listen.into_inner(),
            config,
            origin,
        });
    }

    let mut resources = BTreeMap::new();
    for (resource_name, raw_resource) in raw.resources {
        let whole = raw_resource.span();
        let mut table = raw_resource.into_inner();
        let mut origin = Origin::default();
        origin.set_whole(locator.at(whole.clone()));
        let kind = match table.remove("kind") {
            Some(toml::Value::String(kind)) => kind,
            Some(_) => {
                return Err(locator.error(
                    whole,
                    format!("resources.{resource_name}.kind: must be a string"),
                ));
            }
            None => {
                return Err(locator.error(
                    whole,
                    format!("resources.{resource_name}: missing field `kind`"),
                ));
            }
        };
        let mut config = to_json(table);
        for (key, value) in config.iter_mut() {
            if let (true, Value::String(path)) = (key.ends_with("_path"), &value) {
                let resolved = resolve_path(path, &base).map_err(|message| {
                    locator.error(
                        whole.clone(),
                        format!("resources.{resource_name}.{key}: {message}"),
                    )
                })?;
                *value = Value::String(resolved.display().to_string());
            }
        }
        resources.insert(
            resource_name,
            ResourceSpec {
                kind,
                config,
                origin,
            },
        );
    }

    let react = raw.react.map(|raw_react| {
        let mut origin = Origin::default();
        origin.set_whole(locator.at(raw_react.span()));
        let r = raw_react.into_inner();
        ReactSpec {
            model: r.model,
            prompt: r.prompt,
            output_schema: r.output_schema.and_then(|v| serde_json::to_value(v).ok()),
            max_steps: r.max_steps,
            origin,
        }
    });

    Ok(Agent {
        name,
        react,
        description: raw.agent.description,
        components,
        skills,
        skill_store: None,
        lockfile: Some(super::lockfile_path(&path)),
        actions,
        resources,
        config: to_json(raw.config),
        runtime: raw.runtime.unwrap_or_default(),
        event_log: raw.event_log.unwrap_or_default(),
        limits: raw.limits.unwrap_or_default(),
        manifest: Some(path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[agent]
name = "demo"

[config]
top = 3

[components.tok]
path = "tok.wasm"

[actions.tokenize]
component = "tok"
listen = ["_input_event"]
config = { min_length = 2 }

[resources.greeting]
kind = "prompt"
template = "Hi {name}"
"#;

    #[test]
    fn parses_a_manifest() {
        let agent = parse(PathBuf::from("dir/agent.toml"), GOOD).unwrap();
        assert_eq!(agent.name, "demo");
        assert_eq!(agent.components["tok"].path, PathBuf::from("dir/tok.wasm"));
        let action = &agent.actions[0];
        assert_eq!(action.export, "tokenize");
        assert_eq!(action.config["min_length"], 2);
        assert_eq!(action.origin.of("component").unwrap().line, 12);
        assert_eq!(agent.resources["greeting"].kind, "prompt");
        assert_eq!(agent.resources["greeting"].config["template"], "Hi {name}");
        assert_eq!(agent.config["top"], 3);
    }

    #[test]
    fn errors_point_at_line_and_field() {
        let bad = GOOD.replace("listen = [\"_input_event\"]", "listen = \"_input_event\"");
        let err = parse(PathBuf::from("agent.toml"), &bad)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("agent.toml:13:"), "{err}");
        assert!(err.contains("sequence"), "{err}");

        let typo = GOOD.replace("component = \"tok\"", "componnet = \"tok\"");
        let err = parse(PathBuf::from("agent.toml"), &typo)
            .unwrap_err()
            .to_string();
        assert!(err.contains("componnet"), "{err}");
        assert!(err.starts_with("agent.toml:12:"), "{err}");

        let no_kind = GOOD.replace("kind = \"prompt\"\n", "");
        let err = parse(PathBuf::from("agent.toml"), &no_kind)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("resources.greeting: missing field `kind`"),
            "{err}"
        );
    }

    #[test]
    fn resource_paths_resolve_against_the_manifest_and_the_models_dir() {
        let base = Path::new("/agents/demo");
        assert_eq!(
            resolve_path("m.gguf", base).unwrap(),
            PathBuf::from("/agents/demo/m.gguf")
        );
        assert_eq!(
            resolve_path("/abs/m.gguf", base).unwrap(),
            PathBuf::from("/abs/m.gguf")
        );
        assert_eq!(
            resolve_path("${WEIR_MODELS}/m.gguf", base).unwrap(),
            models_dir().join("m.gguf")
        );
        let err = resolve_path("${WEIR_SURELY_UNSET_VAR}/m", base).unwrap_err();
        assert_eq!(
            err,
            "the environment variable `WEIR_SURELY_UNSET_VAR` is not set"
        );
        assert!(
            resolve_path("${OOPS", base)
                .unwrap_err()
                .contains("unclosed")
        );
    }
}
