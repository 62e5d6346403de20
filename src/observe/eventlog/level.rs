//! How much of an event the log keeps: a level per event type, resolved by
//! its dot-separated segments (`com.acme.order.Created`, then
//! `com.acme.order`, `com.acme`, `com`, then the default), as Flink Agents
//! resolves its per-type event-log levels.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

/// An event-log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum LogLevel {
    /// Not logged.
    Off,
    /// Logged with long strings, big arrays and deep values cut (each cut
    /// says what it left out). The default.
    #[default]
    Standard,
    /// Logged whole.
    Verbose,
}

impl LogLevel {
    /// Parses `off`, `standard` or `verbose` (any case).
    pub fn parse(text: &str) -> Result<LogLevel, String> {
        match text.to_ascii_uppercase().as_str() {
            "OFF" => Ok(LogLevel::Off),
            "STANDARD" => Ok(LogLevel::Standard),
            "VERBOSE" => Ok(LogLevel::Verbose),
            _ => Err(format!(
                "`{text}` is not an event-log level: use OFF, STANDARD or VERBOSE"
            )),
        }
    }

    /// Its name, as the records and the configuration write it.
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Off => "OFF",
            LogLevel::Standard => "STANDARD",
            LogLevel::Verbose => "VERBOSE",
        }
    }
}

impl serde::Serialize for LogLevel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for LogLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        LogLevel::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Event types resolved at most: they come from guests, so the cache of
/// resolutions is bounded; past it, types are resolved each time.
const MAX_CACHED_TYPES: usize = 4096;

/// The default level and the per-type ones, with a bounded cache of what
/// each event type seen resolved to.
#[derive(Debug)]
pub(crate) struct Levels {
    default: LogLevel,
    by_type: BTreeMap<String, LogLevel>,
    cache: RwLock<HashMap<String, LogLevel>>,
}

impl Levels {
    pub(crate) fn new(default: LogLevel, by_type: BTreeMap<String, LogLevel>) -> Levels {
        Levels {
            default,
            by_type,
            cache: RwLock::default(),
        }
    }

    /// The level of events of `event_type`.
    pub(crate) fn of(&self, event_type: &str) -> LogLevel {
        if self.by_type.is_empty() {
            return self.default;
        }
        if let Some(level) = self.cache.read().expect("levels lock").get(event_type) {
            return *level;
        }
        let level = self.resolve(event_type);
        let mut cache = self.cache.write().expect("levels lock");
        if cache.len() < MAX_CACHED_TYPES {
            cache.insert(event_type.to_string(), level);
        }
        level
    }

    fn resolve(&self, event_type: &str) -> LogLevel {
        let mut name = event_type;
        loop {
            if let Some(level) = self.by_type.get(name) {
                return *level;
            }
            match name.rfind('.') {
                Some(dot) => name = &name[..dot],
                None => return self.default,
            }
        }
    }

    /// Whether any event type may be logged at all.
    pub(crate) fn any_on(&self) -> bool {
        self.default != LogLevel::Off || self.by_type.values().any(|l| *l != LogLevel::Off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_type_takes_the_level_of_its_longest_configured_prefix() {
        let levels = Levels::new(
            LogLevel::Standard,
            BTreeMap::from([
                ("com.acme".to_string(), LogLevel::Verbose),
                ("com.acme.order.Deleted".to_string(), LogLevel::Off),
                ("com".to_string(), LogLevel::Off),
            ]),
        );
        for (event_type, level) in [
            ("com.acme.order.Created", LogLevel::Verbose),
            ("com.acme.order.Deleted", LogLevel::Off),
            ("com.acme", LogLevel::Verbose),
            ("com.acmeish", LogLevel::Off),
            ("com", LogLevel::Off),
            ("org.other", LogLevel::Standard),
            ("_input_event", LogLevel::Standard),
            ("", LogLevel::Standard),
        ] {
            assert_eq!(levels.of(event_type), level, "{event_type}");
            // Again, from the cache.
            assert_eq!(levels.of(event_type), level, "{event_type}");
        }
    }

    #[test]
    fn levels_parse_in_any_case_and_say_what_is_allowed() {
        assert_eq!(LogLevel::parse("verbose"), Ok(LogLevel::Verbose));
        assert_eq!(LogLevel::parse("OFF"), Ok(LogLevel::Off));
        let err = LogLevel::parse("loud").unwrap_err();
        assert!(err.contains("OFF, STANDARD or VERBOSE"), "{err}");
    }
}
