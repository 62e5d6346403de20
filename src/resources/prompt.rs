//! Prompt resources: templates with `{name}` placeholders.

use super::ResourceError;
use serde_json::{Map, Value};

/// A prompt template with `{name}` placeholders (`{{` and `}}` for braces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    template: String,
}

impl Prompt {
    /// The manifest kind.
    pub const KIND: &'static str = "prompt";

    pub(crate) fn from_config(
        name: &str,
        config: &Map<String, Value>,
    ) -> Result<Self, ResourceError> {
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
