//! Resource providers: the resources an agent declares (prompts, chat and
//! embedding model connections and setups), created lazily on first use and
//! cached for the plan's lifetime, as Flink Agents' resource providers.

pub(crate) mod anthropic;
pub mod api;
mod http;
mod local;
pub(crate) mod openai;
mod prompt;
pub mod setup;

pub use prompt::Prompt;
pub use setup::{ChatModel, Connection, EmbeddingModel};

use crate::agent::ResourceSpec;
use serde::ser::SerializeMap;
use serde_json::{Map, Value};
use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

/// The resource kinds this host knows.
pub const KINDS: &[&str] = &[
    Prompt::KIND,
    setup::CHAT_CONNECTION,
    setup::CHAT_MODEL,
    setup::EMBEDDING_CONNECTION,
    setup::EMBEDDING_MODEL,
];

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
        self.get::<Prompt>(name, &[Prompt::KIND], |config| {
            Prompt::from_config(name, config)
        })
    }

    /// The chat model setup `name`, created (with its connection) on first use.
    pub fn chat_model(&self, name: &str) -> Result<Arc<ChatModel>, ResourceError> {
        self.get::<ChatModel>(name, &[setup::CHAT_MODEL], |config| {
            let connection = self.connection(name, config)?;
            ChatModel::create(config, connection).map_err(|m| invalid(name, m))
        })
    }

    /// The embedding model setup `name`, created on first use.
    pub fn embedding_model(&self, name: &str) -> Result<Arc<EmbeddingModel>, ResourceError> {
        self.get::<EmbeddingModel>(name, &[setup::EMBEDDING_MODEL], |config| {
            let connection = self.connection(name, config)?;
            EmbeddingModel::create(config, connection).map_err(|m| invalid(name, m))
        })
    }

    /// The connection a model setup's `connection` field names.
    fn connection(
        &self,
        setup: &str,
        config: &Map<String, Value>,
    ) -> Result<Arc<Connection>, ResourceError> {
        let name = config
            .get("connection")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(setup, "missing `connection`".into()))?;
        self.get::<Connection>(
            name,
            &[setup::CHAT_CONNECTION, setup::EMBEDDING_CONNECTION],
            |config| Connection::create(config).map_err(|m| invalid(name, m)),
        )
    }

    fn get<R: Send + Sync + 'static>(
        &self,
        name: &str,
        kinds: &[&'static str],
        create: impl FnOnce(&Map<String, Value>) -> Result<R, ResourceError>,
    ) -> Result<Arc<R>, ResourceError> {
        let provider = self
            .providers
            .get(name)
            .ok_or_else(|| ResourceError::Unknown(name.to_string()))?;
        if !kinds.contains(&provider.spec.kind.as_str()) {
            return Err(ResourceError::WrongKind {
                name: name.to_string(),
                actual: provider.spec.kind.clone(),
                expected: kinds[0],
            });
        }
        let instance = provider.instance.get_or_init(|| {
            tracing::debug!(resource = name, kind = %provider.spec.kind, "creating resource");
            create(&provider.spec.config).map(|r| Arc::new(r) as Arc<dyn Any + Send + Sync>)
        });
        match instance {
            Ok(any) => Ok(any.clone().downcast::<R>().expect("kind checked above")),
            Err(e) => Err(e.clone()),
        }
    }
}

fn invalid(name: &str, message: String) -> ResourceError {
    ResourceError::Invalid {
        name: name.to_string(),
        message,
    }
}

/// Checks a resource's settings at plan time, without creating it; returns
/// the resources it refers to.
pub(crate) fn check(spec: &ResourceSpec) -> Result<setup::References, String> {
    match spec.kind.as_str() {
        Prompt::KIND => Prompt::from_config("", &spec.config)
            .map(|_| setup::References::default())
            .map_err(|e| match e {
                ResourceError::Invalid { message, .. } => message,
                other => other.to_string(),
            }),
        kind if KINDS.contains(&kind) => setup::check(kind, &spec.config),
        kind => Err(format!(
            "unknown resource kind `{kind}` (known: {})",
            KINDS.join(", ")
        )),
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
