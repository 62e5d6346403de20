//! Resource providers: the resources an agent declares (prompts now; chat and
//! embedding models, tools and memory backends next), created lazily on first
//! use and cached for the plan's lifetime, as Flink Agents' resource providers.

use crate::agent::ResourceSpec;
use serde::ser::SerializeMap;
use serde_json::{Map, Value};
use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

/// The resource kinds this host knows.
pub const KINDS: &[&str] = &[Prompt::KIND];

/// Why a resource could not be created or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// No resource has that name.
    #[error("no resource named `{0}`")]
    Unknown(String),
    /// It exists but is of another kind.
    #[error("resource `{name}` is a {actual}, not a {expected}")]
    WrongKind {
        /// The resource.
        name: String,
        /// Its kind.
        actual: String,
        /// The kind asked for.
        expected: &'static str,
    },
    /// Its settings are wrong.
    #[error("resource `{name}`: {message}")]
    Invalid {
        /// The resource.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// A prompt template with `{name}` placeholders (`{{` and `}}` for braces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    template: String,
}

impl Prompt {
    /// The manifest kind.
    pub const KIND: &'static str = "prompt";

    fn from_config(name: &str, config: &Map<String, Value>) -> Result<Self, ResourceError> {
        let invalid = |message: String| ResourceError::Invalid {
            name: name.to_string(),
            message,
        };
        let template = match config.get("template") {
            Some(Value::String(t)) => t.clone(),
            Some(_) => return Err(invalid("`template` must be a string".into())),
            None => return Err(invalid("missing `template`".into())),
        };
        if let Some(unknown) = config.keys().find(|k| *k != "template") {
            return Err(invalid(format!(
                "unknown setting `{unknown}` (a prompt has `template`)"
            )));
        }
        let prompt = Prompt { template };
        prompt.render(|_| Some(String::new())).map_err(invalid)?;
        Ok(prompt)
    }

    /// Fills the placeholders from `variables`; strings are inserted as they
    /// are, other values as JSON.
    pub fn format(&self, variables: &Map<String, Value>) -> Result<String, String> {
        self.render(|name| {
            variables.get(name).map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        })
    }

    fn render(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
        let mut out = String::with_capacity(self.template.len());
        let mut rest = self.template.as_str();
        while let Some(i) = rest.find(['{', '}']) {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            if tail.starts_with("{{") || tail.starts_with("}}") {
                out.push_str(&tail[..1]);
                rest = &tail[2..];
            } else if tail.starts_with('}') {
                return Err(format!(
                    "unmatched `}}` at byte {}",
                    self.template.len() - tail.len()
                ));
            } else {
                let end = tail
                    .find('}')
                    .ok_or_else(|| "unclosed `{` in template".to_string())?;
                let name = &tail[1..end];
                let value = lookup(name).ok_or_else(|| format!("no value for `{{{name}}}`"))?;
                out.push_str(&value);
                rest = &tail[end + 1..];
            }
        }
        out.push_str(rest);
        Ok(out)
    }
}

struct Provider {
    spec: ResourceSpec,
    instance: OnceLock<Result<Arc<dyn Any + Send + Sync>, ResourceError>>,
}

/// The agent's resources, each created on first use and then shared.
#[derive(Default)]
pub struct ResourceProviders {
    providers: BTreeMap<String, Provider>,
}

impl fmt::Debug for ResourceProviders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.providers.iter().map(|(n, p)| (n, &p.spec.kind)))
            .finish()
    }
}

impl serde::Serialize for ResourceProviders {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.providers.len()))?;
        for (name, provider) in &self.providers {
            let mut entry = Map::new();
            entry.insert("kind".into(), Value::String(provider.spec.kind.clone()));
            entry.insert("config".into(), Value::Object(provider.spec.config.clone()));
            entry.insert(
                "created".into(),
                Value::Bool(provider.instance.get().is_some()),
            );
            map.serialize_entry(name, &entry)?;
        }
        map.end()
    }
}

impl ResourceProviders {
    pub(crate) fn new(specs: &BTreeMap<String, ResourceSpec>) -> Self {
        let providers = specs
            .iter()
            .map(|(name, spec)| {
                (
                    name.clone(),
                    Provider {
                        spec: spec.clone(),
                        instance: OnceLock::new(),
                    },
                )
            })
            .collect();
        ResourceProviders { providers }
    }

    /// Names of the declared resources.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.providers.keys().map(String::as_str)
    }

    /// True once resource `name` has been created.
    pub fn is_created(&self, name: &str) -> bool {
        self.providers
            .get(name)
            .is_some_and(|p| p.instance.get().is_some())
    }

    /// The prompt `name`, created on first use.
    pub fn prompt(&self, name: &str) -> Result<Arc<Prompt>, ResourceError> {
        self.get::<Prompt>(name, Prompt::KIND, |config| {
            Prompt::from_config(name, config)
        })
    }

    fn get<R: Send + Sync + 'static>(
        &self,
        name: &str,
        kind: &'static str,
        create: impl FnOnce(&Map<String, Value>) -> Result<R, ResourceError>,
    ) -> Result<Arc<R>, ResourceError> {
        let provider = self
            .providers
            .get(name)
            .ok_or_else(|| ResourceError::Unknown(name.to_string()))?;
        if provider.spec.kind != kind {
            return Err(ResourceError::WrongKind {
                name: name.to_string(),
                actual: provider.spec.kind.clone(),
                expected: kind,
            });
        }
        let instance = provider.instance.get_or_init(|| {
            tracing::debug!(resource = name, kind, "creating resource");
            create(&provider.spec.config).map(|r| Arc::new(r) as Arc<dyn Any + Send + Sync>)
        });
        match instance {
            Ok(any) => Ok(any.clone().downcast::<R>().expect("kind checked above")),
            Err(e) => Err(e.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(config: Value) -> ResourceSpec {
        ResourceSpec {
            kind: "prompt".into(),
            config: config.as_object().unwrap().clone(),
            origin: Default::default(),
        }
    }

    #[test]
    fn prompts_are_created_once_and_format() {
        let specs = BTreeMap::from([(
            "p".to_string(),
            spec(json!({"template": "Hi {name}, {{ok}} {n}"})),
        )]);
        let providers = ResourceProviders::new(&specs);
        assert!(!providers.is_created("p"));
        let first = providers.prompt("p").unwrap();
        assert!(providers.is_created("p"));
        assert!(Arc::ptr_eq(&first, &providers.prompt("p").unwrap()));
        let vars = json!({"name": "Ada", "n": 3});
        assert_eq!(
            first.format(vars.as_object().unwrap()).unwrap(),
            "Hi Ada, {ok} 3"
        );
        assert_eq!(
            first.format(&Map::new()).unwrap_err(),
            "no value for `{name}`"
        );
        assert_eq!(
            providers.prompt("q").unwrap_err(),
            ResourceError::Unknown("q".into())
        );
    }

    #[test]
    fn bad_prompt_config_is_reported_on_use() {
        let specs = BTreeMap::from([("p".to_string(), spec(json!({"template": "Hi {name"})))]);
        let err = ResourceProviders::new(&specs).prompt("p").unwrap_err();
        assert_eq!(err.to_string(), "resource `p`: unclosed `{` in template");
    }
}
