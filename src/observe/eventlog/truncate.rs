//! STANDARD level's cuts, as Flink Agents makes them: a long string, a big
//! array and an object nested too deep are each replaced by a wrapper that
//! keeps the start and says how much was left out, so a reader can tell a
//! cut value from a real one.

use serde_json::{Map, Value};

/// How much of a value STANDARD keeps; `0` turns that cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Truncation {
    /// Characters kept of a string (default 2,000).
    pub max_string_length: usize,
    /// Elements kept of an array (default 20).
    pub max_array_elements: usize,
    /// Levels of nesting kept (default 5; the logged value is level 1):
    /// an object at this level keeps only its scalar fields.
    pub max_depth: usize,
}

impl Default for Truncation {
    fn default() -> Self {
        Truncation {
            max_string_length: 2000,
            max_array_elements: 20,
            max_depth: 5,
        }
    }
}

impl Truncation {
    /// Whether `value` (at `depth`) has anything to cut: most values do
    /// not, and are then written as they are, not copied.
    pub(crate) fn needs_cut(&self, value: &Value, depth: usize) -> bool {
        match value {
            Value::String(s) => {
                self.max_string_length != 0
                    && s.len() > self.max_string_length
                    && s.chars().count() > self.max_string_length
            }
            Value::Array(items) => {
                (self.max_array_elements != 0 && items.len() > self.max_array_elements)
                    || items.iter().any(|item| self.needs_cut(item, depth + 1))
            }
            Value::Object(fields) => {
                let deep = self.max_depth != 0 && depth >= self.max_depth;
                fields.values().any(|v| {
                    (deep && matches!(v, Value::Array(_) | Value::Object(_)))
                        || self.needs_cut(v, depth + 1)
                })
            }
            _ => false,
        }
    }

    /// `value` cut to these bounds (the logged value is at depth 1), and
    /// whether anything was cut.
    pub(crate) fn apply(&self, value: &Value) -> (Value, bool) {
        let mut cut = false;
        let value = self.at(value, 1, &mut cut);
        (value, cut)
    }

    fn at(&self, value: &Value, depth: usize, cut: &mut bool) -> Value {
        match value {
            Value::String(s) => self.string(s, cut),
            Value::Array(items) => {
                let keep = match self.max_array_elements {
                    0 => items.len(),
                    max => items.len().min(max),
                };
                let kept: Vec<Value> = items[..keep]
                    .iter()
                    .map(|item| self.at(item, depth + 1, cut))
                    .collect();
                if keep == items.len() {
                    return Value::Array(kept);
                }
                *cut = true;
                wrapper(
                    "truncatedList",
                    Value::Array(kept),
                    "omittedElements",
                    items.len() - keep,
                )
            }
            Value::Object(fields) => {
                let deep = self.max_depth != 0 && depth >= self.max_depth;
                let nested = |v: &Value| matches!(v, Value::Array(_) | Value::Object(_));
                if deep && fields.values().any(nested) {
                    *cut = true;
                    let scalars: Map<String, Value> = fields
                        .iter()
                        .filter(|(_, v)| !nested(v))
                        .map(|(k, v)| (k.clone(), self.at(v, depth + 1, cut)))
                        .collect();
                    let omitted = fields.len() - scalars.len();
                    return wrapper(
                        "truncatedObject",
                        Value::Object(scalars),
                        "omittedFields",
                        omitted,
                    );
                }
                Value::Object(
                    fields
                        .iter()
                        .map(|(k, v)| (k.clone(), self.at(v, depth + 1, cut)))
                        .collect(),
                )
            }
            scalar => scalar.clone(),
        }
    }

    fn string(&self, s: &str, cut: &mut bool) -> Value {
        let max = self.max_string_length;
        // Bytes bound characters from above: most strings need no count.
        if max == 0 || s.len() <= max {
            return Value::String(s.to_string());
        }
        let chars = s.chars().count();
        if chars <= max {
            return Value::String(s.to_string());
        }
        *cut = true;
        let end = s.char_indices().nth(max).map_or(s.len(), |(at, _)| at);
        wrapper(
            "truncatedString",
            Value::String(format!("{}...", &s[..end])),
            "omittedChars",
            chars - max,
        )
    }
}

fn wrapper(kept: &str, value: Value, omitted: &str, count: usize) -> Value {
    let mut map = Map::new();
    map.insert(kept.to_string(), value);
    map.insert(omitted.to_string(), Value::from(count));
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn small() -> Truncation {
        Truncation {
            max_string_length: 5,
            max_array_elements: 2,
            max_depth: 3,
        }
    }

    #[test]
    fn values_within_bounds_are_kept_whole() {
        let value = json!({"a": "short", "b": [1, 2], "c": {"d": {"e": 1}}, "n": null});
        assert!(!small().needs_cut(&value, 1));
        assert_eq!(small().apply(&value), (value, false));
    }

    #[test]
    fn needs_cut_agrees_with_apply() {
        for value in [
            json!("héllo world"),
            json!([1, 2, 3]),
            json!({"a": {"b": {"c": [1]}}}),
            json!({"a": {"b": {"c": 1}}}),
            json!([["aaaaaaaa"]]),
            json!({"x": "12345"}),
            json!({"x": "123456"}),
        ] {
            let (_, cut) = small().apply(&value);
            assert_eq!(small().needs_cut(&value, 1), cut, "{value}");
        }
    }

    #[test]
    fn long_strings_big_arrays_and_deep_objects_say_what_was_left_out() {
        let value = json!({
            "text": "héllo world",
            "list": [1, 2, 3, 4],
            "nested": {"level3": {"x": 1, "deeper": {"y": 2}, "s": "abcdefgh"}},
        });
        let (cut, was_cut) = small().apply(&value);
        assert!(was_cut);
        assert_eq!(
            cut,
            json!({
                "text": {"truncatedString": "héllo...", "omittedChars": 6},
                "list": {"truncatedList": [1, 2], "omittedElements": 2},
                "nested": {"level3": {
                    "truncatedObject": {"x": 1, "s": {"truncatedString": "abcde...", "omittedChars": 3}},
                    "omittedFields": 1,
                }},
            })
        );
    }

    #[test]
    fn kept_elements_are_cut_too_and_zero_turns_a_cut_off() {
        let value = json!([["aaaaaaaa"], "b", "c"]);
        let (cut, _) = small().apply(&value);
        assert_eq!(
            cut,
            json!({"truncatedList": [[{"truncatedString": "aaaaa...", "omittedChars": 3}], "b"], "omittedElements": 1})
        );
        let off = Truncation {
            max_string_length: 0,
            max_array_elements: 0,
            max_depth: 0,
        };
        assert_eq!(off.apply(&value), (value, false));
    }
}
