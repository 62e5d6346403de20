//! Short-term and sensory memory, with Apache Flink Agents' semantics.
//!
//! A [`MemoryObject`] is a JSON object addressed by dot-separated paths
//! (`"stats.counts"`); the empty path is the root. Short-term memory belongs
//! to a key and lasts across agent runs; sensory memory lasts one run. Writes
//! made by an action are undone if the action fails, so a failed task leaves
//! memory as it found it.

use serde_json::{Map, Value};

/// Why a memory path could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A path segment is empty (`"a..b"`, `".a"`, `"a."`).
    #[error("memory path `{0}` has an empty segment")]
    EmptySegment(String),
    /// A path goes through a value that is not an object.
    #[error("memory path `{path}`: `{at}` holds {kind}, not an object")]
    NotAnObject {
        /// The full path.
        path: String,
        /// The prefix that holds a non-object.
        at: String,
        /// What it holds.
        kind: &'static str,
    },
    /// The root can only be replaced by an object.
    #[error("the memory root can only hold an object, not {0}")]
    RootNotObject(&'static str),
}

/// A JSON object addressed by dot-separated paths.
#[derive(Debug, Clone, Default)]
pub struct MemoryObject {
    root: Map<String, Value>,
    /// About how many bytes its JSON takes, kept up to date by every write
    /// (see [`MemoryObject::size`]).
    size: usize,
}

impl PartialEq for MemoryObject {
    fn eq(&self, other: &Self) -> bool {
        self.root == other.root
    }
}

/// About how many bytes `value`'s JSON takes (strings without escapes),
/// measured without recursion.
fn json_size(value: &Value) -> usize {
    let mut size = 0;
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        size += match value {
            Value::Null | Value::Bool(_) => 5,
            Value::Number(_) => 8,
            Value::String(s) => s.len() + 2,
            Value::Array(items) => {
                pending.extend(items);
                items.len() + 2
            }
            Value::Object(map) => {
                pending.extend(map.values());
                map.keys().map(|k| k.len() + 4).sum::<usize>() + 2
            }
        };
    }
    size
}

/// What to restore to undo one write: the value `path` held before, or
/// `None` if nothing was there.
#[derive(Debug, Clone)]
pub struct Undo {
    path: String,
    previous: Option<Value>,
}

fn segments(path: &str) -> Result<Vec<&str>, PathError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<&str> = path.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(PathError::EmptySegment(path.to_string()));
    }
    Ok(parts)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl MemoryObject {
    /// An empty memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.root.is_empty()
    }

    /// About how many bytes the memory's JSON takes: what a key's memory
    /// costs to keep and to write to the journal.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The whole memory as JSON text.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.root).expect("memory is JSON")
    }

    /// The whole memory as a JSON object.
    pub fn to_value(&self) -> Value {
        Value::Object(self.root.clone())
    }

    /// The value at `path`; the empty path gives the root object.
    pub fn get(&self, path: &str) -> Result<Option<Value>, PathError> {
        let parts = segments(path)?;
        let Some((last, parents)) = parts.split_last() else {
            return Ok(Some(self.to_value()));
        };
        let mut node = &self.root;
        for part in parents {
            match node.get(*part) {
                Some(Value::Object(child)) => node = child,
                _ => return Ok(None),
            }
        }
        Ok(node.get(*last).cloned())
    }

    /// Stores `value` at `path`, creating objects on the way, and returns how
    /// to undo the write.
    pub fn set(&mut self, path: &str, value: Value) -> Result<Undo, PathError> {
        let parts = segments(path)?;
        let Some((last, parents)) = parts.split_last() else {
            let size = json_size(&value);
            let Value::Object(map) = value else {
                return Err(PathError::RootNotObject(kind(&value)));
            };
            let previous = std::mem::replace(&mut self.root, map);
            self.size = size;
            return Ok(Undo {
                path: String::new(),
                previous: Some(Value::Object(previous)),
            });
        };
        // Undo of a write that creates objects removes the first created one.
        let mut created_at: Option<usize> = None;
        let mut node = &mut self.root;
        for (i, part) in parents.iter().enumerate() {
            let child = node.entry(part.to_string()).or_insert_with(|| {
                created_at.get_or_insert(i);
                Value::Object(Map::new())
            });
            match child {
                Value::Object(map) => node = map,
                other => {
                    return Err(PathError::NotAnObject {
                        path: path.to_string(),
                        at: parts[..=i].join("."),
                        kind: kind(other),
                    });
                }
            }
        }
        let added = json_size(&value) + last.len() + 4;
        let previous = node.insert(last.to_string(), value);
        let removed = previous
            .as_ref()
            .map_or(0, |p| json_size(p) + last.len() + 4);
        let created = created_at.map_or(0, |i| parents[i..].iter().map(|p| p.len() + 6).sum());
        self.size = (self.size + added + created).saturating_sub(removed);
        Ok(match created_at {
            Some(i) => Undo {
                path: parts[..=i].join("."),
                previous: None,
            },
            None => Undo {
                path: path.to_string(),
                previous,
            },
        })
    }

    /// Removes the value at `path`; the empty path clears everything.
    pub fn remove(&mut self, path: &str) -> Result<(Option<Value>, Undo), PathError> {
        let parts = segments(path)?;
        let Some((last, parents)) = parts.split_last() else {
            let previous = std::mem::take(&mut self.root);
            self.size = 0;
            let had = !previous.is_empty();
            let previous = Value::Object(previous);
            let undo = Undo {
                path: String::new(),
                previous: Some(previous.clone()),
            };
            return Ok((had.then_some(previous), undo));
        };
        let mut node = &mut self.root;
        for part in parents {
            match node.get_mut(*part) {
                Some(Value::Object(child)) => node = child,
                _ => {
                    let undo = Undo {
                        path: path.to_string(),
                        previous: None,
                    };
                    return Ok((None, undo));
                }
            }
        }
        let removed = node.remove(*last);
        if let Some(value) = &removed {
            self.size = self.size.saturating_sub(json_size(value) + last.len() + 4);
        }
        let undo = Undo {
            path: path.to_string(),
            previous: removed.clone(),
        };
        Ok((removed, undo))
    }

    /// Field names of the object at `path`, in insertion order; empty if
    /// `path` holds no object.
    pub fn field_names(&self, path: &str) -> Result<Vec<String>, PathError> {
        Ok(match self.get(path)? {
            Some(Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        })
    }

    /// Applies `undo` records, newest first, restoring the memory as it was
    /// before those writes.
    pub fn rollback(&mut self, undo: Vec<Undo>) {
        for Undo { path, previous } in undo.into_iter().rev() {
            // The paths were valid when recorded, so these cannot fail.
            let _ = match previous {
                Some(value) => self.set(&path, value).map(drop),
                None => self.remove(&path).map(drop),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_paths() {
        let mut m = MemoryObject::new();
        m.set("a.b.c", json!(1)).unwrap();
        assert_eq!(m.get("a.b").unwrap(), Some(json!({"c": 1})));
        assert_eq!(m.get("a.b.c").unwrap(), Some(json!(1)));
        assert_eq!(m.get("a.x.c").unwrap(), None);
        assert_eq!(m.field_names("a").unwrap(), vec!["b"]);
        assert_eq!(m.get("").unwrap(), Some(json!({"a": {"b": {"c": 1}}})));
    }

    #[test]
    fn bad_paths() {
        let mut m = MemoryObject::new();
        assert!(matches!(
            m.set("a..b", json!(1)),
            Err(PathError::EmptySegment(_))
        ));
        m.set("n", json!(3)).unwrap();
        let err = m.set("n.x", json!(1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "memory path `n.x`: `n` holds a number, not an object"
        );
        assert!(matches!(
            m.set("", json!(1)),
            Err(PathError::RootNotObject(_))
        ));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Paths over a small alphabet of segments, so that writes meet,
        /// nest and overwrite each other; now and then malformed.
        fn path() -> impl Strategy<Value = String> {
            prop_oneof![
                9 => prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "d"]), 0..5)
                    .prop_map(|parts| parts.join(".")),
                1 => prop::sample::select(vec!["a..b", ".a", "a.", "."]).prop_map(String::from),
            ]
        }

        fn value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<i32>().prop_map(Value::from),
                "[a-z]{0,3}".prop_map(Value::from),
            ];
            leaf.prop_recursive(3, 12, 3, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                    prop::collection::btree_map("[a-d]", inner, 0..3)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        #[derive(Debug, Clone)]
        enum Op {
            Set(String, Value),
            Remove(String),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                3 => (path(), value()).prop_map(|(p, v)| Op::Set(p, v)),
                1 => path().prop_map(Op::Remove),
            ]
        }

        proptest! {
            /// Any sequence of writes, rolled back, leaves memory exactly as
            /// it was; a write reads back; a refused write changes nothing;
            /// what memory holds always serialises and parses back.
            #[test]
            fn writes_read_back_and_roll_back_exactly(
                before in prop::collection::vec(op(), 0..6),
                ops in prop::collection::vec(op(), 0..12),
            ) {
                let mut m = MemoryObject::new();
                for op in before {
                    let _ = match op {
                        Op::Set(p, v) => m.set(&p, v).map(drop),
                        Op::Remove(p) => m.remove(&p).map(drop),
                    };
                }
                let start = m.clone();
                let mut undo = Vec::new();
                for op in ops {
                    let was = m.clone();
                    match op {
                        Op::Set(p, v) => match m.set(&p, v.clone()) {
                            Ok(u) => {
                                let expected = if p.is_empty() && !v.is_object() { None } else { Some(v) };
                                prop_assert_eq!(m.get(&p).unwrap(), expected);
                                undo.push(u);
                            }
                            Err(_) => prop_assert_eq!(&m, &was),
                        },
                        Op::Remove(p) => match m.remove(&p) {
                            Ok((_, u)) => {
                                if !p.is_empty() {
                                    prop_assert_eq!(m.get(&p).unwrap(), None);
                                }
                                undo.push(u);
                            }
                            Err(_) => prop_assert_eq!(&m, &was),
                        },
                    }
                    let text = m.to_json();
                    let back: Value = serde_json::from_slice(&text).unwrap();
                    prop_assert_eq!(back, m.to_value());
                    // The kept size follows the JSON's (within what the
                    // estimate leaves out: numbers' digits, escapes).
                    let exact = text.len();
                    prop_assert!(m.size() + 16 >= exact / 2 && m.size() <= exact * 3 + 16,
                        "size {} for {} bytes: {}", m.size(), exact, String::from_utf8_lossy(&text));
                }
                m.rollback(undo);
                prop_assert_eq!(m, start);
            }
        }
    }

    #[test]
    fn rollback_restores_exactly() {
        let mut m = MemoryObject::new();
        m.set("keep", json!("x")).unwrap();
        m.set("over.write", json!(1)).unwrap();
        let before = m.clone();
        let undo = vec![
            m.set("over.write", json!(2)).unwrap(),
            m.set("new.deep.path", json!(true)).unwrap(),
            m.remove("keep").unwrap().1,
            m.set("over.write", json!(3)).unwrap(),
            m.remove("").unwrap().1,
            m.set("", json!({"replaced": true})).unwrap(),
        ];
        assert_ne!(m, before);
        m.rollback(undo);
        assert_eq!(m, before);
    }
}
