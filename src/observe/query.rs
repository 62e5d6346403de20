//! `weir log query`: a jq filter run over every record of an event log, as
//! `jq -c` over JSON lines would. jq because its users already know it for
//! JSON logs, in jaq's dialect (pure Rust, maintained); an embedded SQL
//! engine was the other choice, at minutes of build time against seconds.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use jaq_json::Val;
use serde_json::Value;

type Filter = jaq_core::compile::Filter<jaq_core::Native<data::JustLut<Val>>>;

/// A compiled jq filter.
pub struct Query {
    filter: Filter,
}

impl std::fmt::Debug for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query").finish_non_exhaustive()
    }
}

/// Longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 64 << 10;

impl Query {
    /// Compiles `code` (jq, with jq's standard library); an error says
    /// where the code is wrong and what was expected there.
    pub fn compile(code: &str) -> Result<Query, String> {
        if code.len() > MAX_QUERY_BYTES {
            return Err(format!("the query is over {MAX_QUERY_BYTES} bytes"));
        }
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        let funs = jaq_core::funs()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs());
        let arena = Arena::default();
        let at = |rest: &str| {
            let offset = (rest.as_ptr() as usize).saturating_sub(code.as_ptr() as usize);
            let offset = offset.min(code.len());
            let (line, column) = crate::util::line_column(code, offset);
            let near = crate::util::head(&code[offset..], 20);
            format!("line {line}, column {column} (at `{near}`)")
        };
        let modules = Loader::new(defs)
            .load(&arena, File { code, path: () })
            .map_err(|errors| {
                let mut lines = Vec::new();
                let expected = |what: &str, rest: &str| format!("expected {what} at {}", at(rest));
                for (_, error) in errors {
                    match error {
                        jaq_core::load::Error::Lex(errors) => {
                            for (what, rest) in errors {
                                lines.push(expected(what.as_str(), rest));
                            }
                        }
                        jaq_core::load::Error::Parse(errors) => {
                            for (what, rest) in errors {
                                lines.push(expected(what.as_str(), rest));
                            }
                        }
                        jaq_core::load::Error::Io(errors) => {
                            for (name, why) in errors {
                                lines.push(format!("cannot load `{name}`: {why}"));
                            }
                        }
                    }
                }
                format!("the query does not parse: {}", lines.join("; "))
            })?;
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errors| {
                let names: Vec<String> = errors
                    .into_iter()
                    .flat_map(|(_, errors)| errors)
                    .map(|(name, _)| format!("`{name}` at {}", at(name)))
                    .collect();
                format!(
                    "the query uses what jq does not define: {}",
                    names.join(", ")
                )
            })?;
        Ok(Query { filter })
    }

    /// The filter's outputs for `record`, each a value or the error the
    /// filter raised.
    pub fn run(&self, record: Value) -> Vec<Result<Value, String>> {
        let input: Val = match serde_json::from_value(record) {
            Ok(input) => input,
            Err(e) => return vec![Err(e.to_string())],
        };
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, Vars::new([]));
        self.filter
            .id
            .run((ctx, input))
            .map(unwrap_valr)
            .map(|result| match result {
                // jaq's values print as JSON; read back as serde_json's.
                Ok(value) => serde_json::from_str(&value.to_string())
                    .map_err(|e| format!("the query made a value JSON cannot hold ({e})")),
                Err(e) => Err(e.to_string()),
            })
            .collect()
    }
}

/// `rows` (query outputs) as an aligned text table: a column per field of
/// the objects (in order of first appearance), or one `value` column.
pub fn table(rows: &[Value]) -> String {
    const WIDTH: usize = 48;
    let mut columns: Vec<String> = Vec::new();
    for row in rows {
        match row {
            Value::Object(fields) => {
                for name in fields.keys() {
                    if !columns.contains(name) {
                        columns.push(name.clone());
                    }
                }
            }
            _ => {
                if !columns.iter().any(|c| c == "value") {
                    columns.push("value".into());
                }
            }
        }
    }
    let cell = |row: &Value, column: &str| -> String {
        let value = match row {
            Value::Object(fields) => fields.get(column).cloned().unwrap_or(Value::Null),
            other if column == "value" => other.clone(),
            _ => Value::Null,
        };
        let text = match value {
            Value::Null => String::new(),
            Value::String(s) => s,
            other => other.to_string(),
        };
        let text: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if text.chars().count() > WIDTH {
            let kept: String = text.chars().take(WIDTH - 3).collect();
            format!("{kept}...")
        } else {
            text
        }
    };
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|c| cell(row, c)).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|row| row[i].chars().count())
                .chain([c.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: &[String]| -> String {
        let padded: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = line(&columns);
    out.push('\n');
    for row in &cells {
        out.push_str(&line(row));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_filter_selects_and_reshapes_records() {
        let query = Query::compile(
            r#"select(.eventType == "_execution_failed_event") | {action: .entityName, error: .eventAttributes.errorMessage}"#,
        )
        .unwrap();
        let failed = json!({"eventType": "_execution_failed_event", "entityName": "a",
                            "eventAttributes": {"errorMessage": "boom"}});
        let ok = json!({"eventType": "_execution_finished_event", "entityName": "b"});
        assert_eq!(
            query.run(failed).into_iter().collect::<Result<Vec<_>, _>>(),
            Ok(vec![json!({"action": "a", "error": "boom"})])
        );
        assert!(query.run(ok).is_empty());
        let error = Query::compile(".a | error(\"no\")")
            .unwrap()
            .run(json!({"a": 1}));
        assert!(error[0].is_err());
    }

    #[test]
    fn a_bad_query_says_where_and_what_was_expected() {
        let err = Query::compile("select(.a == ").unwrap_err();
        assert!(
            err.contains("does not parse") && err.contains("column"),
            "{err}"
        );
        let err = Query::compile("nosuchfn(.a)").unwrap_err();
        assert!(err.contains("`nosuchfn`"), "{err}");
    }

    #[test]
    fn rows_make_an_aligned_table() {
        let text = table(&[json!({"a": 1, "b": "x"}), json!({"a": 22, "c": [1]})]);
        assert_eq!(text, "a   b  c\n1   x\n22     [1]\n");
    }
}
