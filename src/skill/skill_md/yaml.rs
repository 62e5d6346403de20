//! A small YAML tree with positions.

use super::{MAX_DEPTH, MAX_NODES};
use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, Tag};
use std::collections::HashMap;

// ---------------------------------------------------------------------------------------------
// YAML: a small tree with positions, built from saphyr-parser's events so that every key is
// kept (duplicates too) with its position, and scalars keep the text they were written as.

/// A 1-based position in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pos {
    pub(super) line: usize,
    pub(super) column: usize,
}

#[derive(Debug, Clone)]
pub(super) struct Node {
    pub(super) pos: Pos,
    pub(super) kind: Kind,
}

#[derive(Debug, Clone)]
pub(super) enum Kind {
    Scalar(Scalar),
    List(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone)]
pub(super) struct Scalar {
    pub(super) text: String,
    pub(super) ty: ScalarType,
}

/// The type of a scalar by the YAML 1.2 core schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ScalarType {
    Str,
    Null,
    Bool,
    Int,
    Float,
}

impl Node {
    pub(super) fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(scalar) if scalar.ty == ScalarType::Str => Some(&scalar.text),
            _ => None,
        }
    }

    /// The node's type, for messages ("found ...").
    pub(super) fn describe(&self) -> &'static str {
        match &self.kind {
            Kind::Scalar(scalar) => match scalar.ty {
                ScalarType::Str => "a string",
                ScalarType::Null => "no value",
                ScalarType::Bool => "a boolean",
                ScalarType::Int => "an integer",
                ScalarType::Float => "a number",
            },
            Kind::List(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

pub(super) struct YamlError {
    pub(super) pos: Pos,
    pub(super) message: String,
}

/// A collection whose end event has not come yet.
pub(super) struct Open {
    pub(super) pos: Pos,
    pub(super) anchor: usize,
    /// Nodes in it so far, itself included, aliases expanded.
    pub(super) size: usize,
    pub(super) items: Vec<Node>,
    pub(super) is_map: bool,
}

/// Parses YAML whose first line is line `first_line` of the file into its documents.
pub(super) fn parse_yaml(yaml: &str, first_line: usize) -> Result<Vec<Node>, YamlError> {
    let position = |span: &Span| Pos {
        line: span.start.line() + first_line - 1,
        column: span.start.col() + 1,
    };
    let scan_error = |error: ScanError| YamlError {
        pos: Pos {
            line: error.marker().line() + first_line - 1,
            column: error.marker().col() + 1,
        },
        message: format!("is not valid YAML: {}", error.info()),
    };
    let limit = |pos: Pos, what: &str| YamlError {
        pos,
        message: format!("is too large: {what}"),
    };

    let mut documents = Vec::new();
    let mut stack: Vec<Open> = Vec::new();
    let mut anchors: HashMap<usize, (Node, usize)> = HashMap::new();
    let mut nodes = 0usize;
    let mut parser = Parser::new_from_str(yaml);
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(scan_error)?;
        let pos = position(&span);
        let (node, size, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                nodes += 1;
                let ty = scalar_type(&text, style, tag.as_deref());
                let text = text.into_owned();
                (
                    Node {
                        pos,
                        kind: Kind::Scalar(Scalar { text, ty }),
                    },
                    1,
                    anchor,
                )
            }
            Event::Alias(id) => {
                let Some((node, size)) = anchors.get(&id) else {
                    return Err(YamlError {
                        pos,
                        message: "is not valid YAML: an alias refers to an unknown anchor".into(),
                    });
                };
                nodes += size;
                if nodes > MAX_NODES {
                    return Err(limit(pos, "too many values once aliases are expanded"));
                }
                let mut node = node.clone();
                node.pos = pos;
                (node, *size, 0)
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                nodes += 1;
                if stack.len() >= MAX_DEPTH {
                    return Err(limit(pos, "values nested too deeply"));
                }
                let is_map = matches!(event, Event::MappingStart(..));
                stack.push(Open {
                    pos,
                    anchor,
                    size: 1,
                    items: Vec::new(),
                    is_map,
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(open) = stack.pop() else { continue };
                let kind = if open.is_map {
                    let mut items = open.items.into_iter();
                    let mut pairs = Vec::new();
                    while let (Some(key), Some(mut value)) = (items.next(), items.next()) {
                        // A value left out (`key:`) is reported where its key is.
                        if matches!(&value.kind, Kind::Scalar(s) if s.text.is_empty() && s.ty == ScalarType::Null)
                        {
                            value.pos = key.pos;
                        }
                        pairs.push((key, value));
                    }
                    Kind::Map(pairs)
                } else {
                    Kind::List(open.items)
                };
                (
                    Node {
                        pos: open.pos,
                        kind,
                    },
                    open.size,
                    open.anchor,
                )
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd => continue,
        };
        if nodes > MAX_NODES {
            return Err(limit(pos, "too many values"));
        }
        if anchor > 0 {
            anchors.insert(anchor, (node.clone(), size));
        }
        match stack.last_mut() {
            Some(parent) => {
                parent.size += size;
                parent.items.push(node);
            }
            None => documents.push(node),
        }
    }
    Ok(documents)
}

/// Resolves a scalar's type by the YAML 1.2 core schema: quoted and block scalars are
/// strings; plain ones may be null, booleans, integers or floats; core tags (`!!str`) decide.
pub(super) fn scalar_type(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> ScalarType {
    if let Some(tag) = tag {
        if tag.is_yaml_core_schema() {
            return match tag.suffix.as_str() {
                "null" => ScalarType::Null,
                "bool" => ScalarType::Bool,
                "int" => ScalarType::Int,
                "float" => ScalarType::Float,
                _ => ScalarType::Str,
            };
        }
        if tag.handle == "!" && tag.suffix.is_empty() {
            return ScalarType::Str;
        }
    }
    if style != ScalarStyle::Plain {
        return ScalarType::Str;
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => ScalarType::Null,
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => ScalarType::Bool,
        _ if is_core_int(text) => ScalarType::Int,
        _ if is_core_float(text) => ScalarType::Float,
        _ => ScalarType::Str,
    }
}

pub(super) fn all_digits(text: &str, radix: u32) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_digit(radix))
}

pub(super) fn is_core_int(text: &str) -> bool {
    if let Some(octal) = text.strip_prefix("0o") {
        return all_digits(octal, 8);
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return all_digits(hex, 16);
    }
    all_digits(text.strip_prefix(['-', '+']).unwrap_or(text), 10)
}

pub(super) fn is_core_float(text: &str) -> bool {
    if matches!(text, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (unsigned, None),
    };
    if let Some(exponent) = exponent
        && !all_digits(exponent.strip_prefix(['-', '+']).unwrap_or(exponent), 10)
    {
        return false;
    }
    match mantissa.split_once('.') {
        Some(("", fraction)) => all_digits(fraction, 10),
        Some((whole, fraction)) => {
            all_digits(whole, 10) && (fraction.is_empty() || all_digits(fraction, 10))
        }
        None => all_digits(mantissa, 10),
    }
}
