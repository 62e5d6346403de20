//! The chat template: the GGUF's Jinja template in minijinja, with the
//! few Python string methods HF templates call.

use anyhow::{Result, anyhow};
use minijinja::value::Value as JinjaValue;
use minijinja::{Environment, ErrorKind as JinjaErrorKind};

pub(super) fn build_template_env(source: String) -> Result<Environment<'static>> {
    let mut env = Environment::new();
    // Same whitespace handling as HF transformers' apply_chat_template (jinja2 trim/lstrip blocks).
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| anyhow!("{e}"))?,
    );
    env.add_function(
        "raise_exception",
        |msg: String| -> Result<JinjaValue, minijinja::Error> {
            Err(minijinja::Error::new(JinjaErrorKind::InvalidOperation, msg))
        },
    );
    env.set_unknown_method_callback(python_string_methods);
    env.add_template_owned("chat", source)?;
    Ok(env)
}

/// The few Python `str`/`dict` methods HF chat templates commonly call.
pub(super) fn python_string_methods(
    _state: &mut minijinja::State,
    value: &JinjaValue,
    method: &str,
    args: &[JinjaValue],
) -> Result<JinjaValue, minijinja::Error> {
    use minijinja::value::ValueKind;
    let arg_str = |i: usize| args.get(i).and_then(|a| a.as_str()).map(str::to_string);
    if let Some(s) = value.as_str() {
        let chars: Option<Vec<char>> = arg_str(0).map(|c| c.chars().collect());
        let is_strip = |c: char| {
            chars
                .as_ref()
                .map_or(c.is_whitespace(), |set| set.contains(&c))
        };
        let out: JinjaValue = match method {
            "strip" => s.trim_matches(is_strip).into(),
            "lstrip" => s.trim_start_matches(is_strip).into(),
            "rstrip" => s.trim_end_matches(is_strip).into(),
            "lower" => s.to_lowercase().into(),
            "upper" => s.to_uppercase().into(),
            "startswith" => arg_str(0).is_some_and(|p| s.starts_with(&p)).into(),
            "endswith" => arg_str(0).is_some_and(|p| s.ends_with(&p)).into(),
            "replace" => match (arg_str(0), arg_str(1)) {
                (Some(a), Some(b)) => s.replace(&a, &b).into(),
                _ => {
                    return Err(minijinja::Error::new(
                        JinjaErrorKind::MissingArgument,
                        "replace(old, new)",
                    ));
                }
            },
            "split" => match arg_str(0) {
                Some(sep) if !sep.is_empty() => s
                    .split(sep.as_str())
                    .map(JinjaValue::from)
                    .collect::<Vec<_>>()
                    .into(),
                _ => s
                    .split_whitespace()
                    .map(JinjaValue::from)
                    .collect::<Vec<_>>()
                    .into(),
            },
            _ => return Err(minijinja::Error::from(JinjaErrorKind::UnknownMethod)),
        };
        return Ok(out);
    }
    if value.kind() == ValueKind::Map {
        match method {
            "items" => {
                let mut out = Vec::new();
                for k in value.try_iter()? {
                    let v = value.get_item(&k)?;
                    out.push(JinjaValue::from(vec![k, v]));
                }
                return Ok(out.into());
            }
            "keys" => return Ok(value.try_iter()?.collect::<Vec<_>>().into()),
            "values" => {
                let mut out = Vec::new();
                for k in value.try_iter()? {
                    out.push(value.get_item(&k)?);
                }
                return Ok(out.into());
            }
            "get" => {
                let key = args.first().cloned().unwrap_or(JinjaValue::UNDEFINED);
                let v = value.get_item(&key)?;
                return Ok(if v.is_undefined() {
                    args.get(1).cloned().unwrap_or(JinjaValue::from(()))
                } else {
                    v
                });
            }
            _ => {}
        }
    }
    Err(minijinja::Error::from(JinjaErrorKind::UnknownMethod))
}
