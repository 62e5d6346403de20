//! The specification's rules: one pass over a `SKILL.md` that finds every
//! violation and builds the lenient reading of the skill; splitting the
//! frontmatter from the body.

use super::yaml::{Kind, Node, Pos, ScalarType, parse_yaml};
use super::{
    FIELDS, MAX_COMPATIBILITY_CHARS, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, SkillMd, Violation,
};
use std::collections::{BTreeMap, HashMap};

// ---------------------------------------------------------------------------------------------
// Analysis: one pass that finds every violation and builds the lenient reading of the skill.

/// A violation, and whether [`load`] must fail on it too.
pub(super) struct Finding {
    pub(super) violation: Violation,
    pub(super) fatal: bool,
}

#[derive(Default)]
pub(super) struct Findings(Vec<Finding>);

impl Findings {
    pub(super) fn push(&mut self, at: Pos, field: &str, message: impl Into<String>, fatal: bool) {
        self.0.push(Finding {
            violation: Violation::new(at.line, at.column, field, message),
            fatal,
        });
    }

    /// A violation that [`load`] tolerates.
    pub(super) fn warn(&mut self, at: Pos, field: &str, message: impl Into<String>) {
        self.push(at, field, message, false);
    }

    /// A violation that [`load`] fails on.
    pub(super) fn fatal(&mut self, at: Pos, field: &str, message: impl Into<String>) {
        self.push(at, field, message, true);
    }
}

pub(super) struct Analysis {
    pub(super) findings: Vec<Finding>,
    /// The lenient reading; `None` only alongside a fatal finding.
    pub(super) skill: Option<SkillMd>,
}

/// Where a missing field is reported: the frontmatter's opening `---`.
pub(super) const START: Pos = Pos { line: 1, column: 1 };

pub(super) fn analyze(dir_name: &str, text: &str, lenient: bool) -> Analysis {
    let mut out = Findings::default();
    let skill = read(dir_name, text, lenient, &mut out);
    let mut findings = out.0;
    // Stable: violations at one position keep the order of the checks.
    findings.sort_by_key(|f| (f.violation.line, f.violation.column));
    Analysis { findings, skill }
}

pub(super) fn read(
    dir_name: &str,
    text: &str,
    lenient: bool,
    out: &mut Findings,
) -> Option<SkillMd> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let text = text.replace("\r\n", "\n");
    let parts = match split(&text) {
        Ok(parts) => parts,
        Err(message) => {
            out.fatal(START, "frontmatter", message);
            return None;
        }
    };

    let body = trim_body(parts.body);
    if body.is_empty() {
        out.warn(
            Pos {
                line: parts.body_line,
                column: 1,
            },
            "body",
            "must not be empty: it holds the skill's instructions",
        );
    }

    let documents = match parse_yaml(parts.yaml, 2) {
        Ok(documents) => documents,
        Err(error) => {
            let repaired = if lenient {
                quote_colon_values(parts.yaml)
            } else {
                None
            };
            match repaired.map(|yaml| parse_yaml(&yaml, 2)) {
                Some(Ok(documents)) => {
                    out.warn(
                        error.pos,
                        "frontmatter",
                        format!(
                            "{}; read after quoting values that contain `: `",
                            error.message
                        ),
                    );
                    documents
                }
                _ => {
                    out.fatal(error.pos, "frontmatter", error.message);
                    return None;
                }
            }
        }
    };

    let mut documents = documents.into_iter();
    let root = documents.next().unwrap_or(Node {
        pos: START,
        kind: Kind::Map(Vec::new()),
    });
    if let Some(extra) = documents.next() {
        out.warn(
            extra.pos,
            "frontmatter",
            "must be a single YAML document (this one is ignored)",
        );
    }
    let Kind::Map(entries) = &root.kind else {
        out.fatal(
            root.pos,
            "frontmatter",
            format!(
                "must be a YAML mapping of fields, found {}",
                root.describe()
            ),
        );
        return None;
    };

    let fields = read_fields(dir_name, entries, out);
    let description = fields.description?;
    Some(SkillMd {
        name: fields.name.unwrap_or_else(|| dir_name.to_string()),
        description,
        license: fields.license,
        compatibility: fields.compatibility,
        metadata: fields.metadata,
        allowed_tools: fields.allowed_tools,
        body: body.to_string(),
    })
}

/// The lenient reading of the frontmatter's fields.
#[derive(Default)]
pub(super) struct Fields {
    pub(super) name: Option<String>,
    pub(super) description: Option<String>,
    pub(super) license: Option<String>,
    pub(super) compatibility: Option<String>,
    pub(super) metadata: BTreeMap<String, String>,
    pub(super) allowed_tools: Vec<String>,
}

pub(super) fn read_fields(dir_name: &str, entries: &[(Node, Node)], out: &mut Findings) -> Fields {
    let mut fields = Fields::default();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (key, value) in entries {
        let Some(key_text) = key.as_str() else {
            out.warn(
                key.pos,
                "frontmatter",
                format!("field names must be strings, found {}", key.describe()),
            );
            continue;
        };
        if let Some(first_line) = seen.insert(key_text, key.pos.line) {
            out.warn(
                key.pos,
                key_text,
                format!("is defined twice (first on line {first_line}); the last value counts"),
            );
        }
        match key_text {
            "name" => fields.name = read_name(dir_name, value, out),
            "description" => fields.description = read_description(value, out),
            "license" => fields.license = string_field(value, "license", false, out),
            "compatibility" => fields.compatibility = read_compatibility(value, out),
            "metadata" => fields.metadata = read_metadata(value, out),
            "allowed-tools" => fields.allowed_tools = read_allowed_tools(value, out),
            unknown => out.warn(
                key.pos,
                unknown,
                format!(
                    "is not a field of SKILL.md; the fields are {}",
                    FIELDS.join(", ")
                ),
            ),
        }
    }
    if !seen.contains_key("name") {
        out.warn(
            START,
            "name",
            "is required: the skill's name, equal to its folder name",
        );
    }
    if !seen.contains_key("description") {
        out.fatal(
            START,
            "description",
            "is required: what the skill does and when to use it",
        );
    }
    fields
}

/// Reads a field that must be a string. Numbers and booleans are violations read as written;
/// null, lists and mappings are violations read as nothing (fatal ones if `required`).
pub(super) fn string_field(
    node: &Node,
    field: &str,
    required: bool,
    out: &mut Findings,
) -> Option<String> {
    match &node.kind {
        Kind::Scalar(scalar) if scalar.ty == ScalarType::Str => Some(scalar.text.clone()),
        Kind::Scalar(scalar) if scalar.ty != ScalarType::Null => {
            out.warn(
                node.pos,
                field,
                format!(
                    "must be a string, found {} (quote it: \"{}\")",
                    node.describe(),
                    scalar.text
                ),
            );
            Some(scalar.text.clone())
        }
        _ => {
            out.push(
                node.pos,
                field,
                format!("must be a string, found {}", node.describe()),
                required,
            );
            None
        }
    }
}

pub(super) fn read_name(dir_name: &str, node: &Node, out: &mut Findings) -> Option<String> {
    let name = string_field(node, "name", false, out)?;
    for problem in name_problems(&name) {
        out.warn(node.pos, "name", problem);
    }
    if !name.is_empty() && name != dir_name {
        out.warn(
            node.pos,
            "name",
            format!("must match the skill's folder name `{dir_name}`"),
        );
    }
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// What is wrong with a skill name, by the specification's rules (all of them, in order).
pub(super) fn name_problems(name: &str) -> Vec<String> {
    let chars = name.chars().count();
    if chars == 0 {
        return vec!["must not be empty".into()];
    }
    let mut problems = Vec::new();
    if chars > MAX_NAME_CHARS {
        problems.push(format!(
            "must be at most {MAX_NAME_CHARS} characters, found {chars}"
        ));
    }
    let not_lowercase = |c: char| c.to_lowercase().ne(std::iter::once(c));
    if name.chars().any(not_lowercase) {
        problems.push("must be lowercase".into());
    }
    let mut invalid: Vec<char> = name
        .chars()
        .filter(|&c| c != '-' && !c.is_alphanumeric() && !not_lowercase(c))
        .collect();
    invalid.dedup();
    if !invalid.is_empty() {
        let list: Vec<String> = invalid.iter().map(|c| format!("{c:?}")).collect();
        problems.push(format!(
            "may only contain lowercase letters, digits and hyphens, found {}",
            list.join(", ")
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        problems.push("must not start or end with a hyphen".into());
    }
    if name.contains("--") {
        problems.push("must not contain consecutive hyphens".into());
    }
    problems
}

pub(super) fn read_description(node: &Node, out: &mut Findings) -> Option<String> {
    let description = string_field(node, "description", true, out)?;
    let description = description.trim();
    let chars = description.chars().count();
    if chars == 0 {
        out.fatal(
            node.pos,
            "description",
            "must not be empty: it tells when to use the skill",
        );
        return None;
    }
    if chars > MAX_DESCRIPTION_CHARS {
        out.warn(
            node.pos,
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters, found {chars}"),
        );
    }
    Some(description.to_string())
}

pub(super) fn read_compatibility(node: &Node, out: &mut Findings) -> Option<String> {
    let compatibility = string_field(node, "compatibility", false, out)?;
    let chars = compatibility.chars().count();
    if chars == 0 {
        out.warn(
            node.pos,
            "compatibility",
            format!("must be 1 to {MAX_COMPATIBILITY_CHARS} characters, found none (leave the field out instead)"),
        );
        return None;
    }
    if chars > MAX_COMPATIBILITY_CHARS {
        out.warn(
            node.pos,
            "compatibility",
            format!("must be at most {MAX_COMPATIBILITY_CHARS} characters, found {chars}"),
        );
    }
    Some(compatibility)
}

pub(super) fn read_metadata(node: &Node, out: &mut Findings) -> BTreeMap<String, String> {
    let mut metadata = BTreeMap::new();
    let Kind::Map(entries) = &node.kind else {
        out.warn(
            node.pos,
            "metadata",
            format!(
                "must be a mapping of strings to strings, found {}",
                node.describe()
            ),
        );
        return metadata;
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (key, value) in entries {
        let key_text = match &key.kind {
            Kind::Scalar(scalar) if scalar.ty == ScalarType::Str => scalar.text.clone(),
            Kind::Scalar(scalar) if scalar.ty != ScalarType::Null => {
                out.warn(
                    key.pos,
                    "metadata",
                    format!(
                        "keys must be strings, found {} (quote it: \"{}\")",
                        key.describe(),
                        scalar.text
                    ),
                );
                scalar.text.clone()
            }
            _ => {
                out.warn(
                    key.pos,
                    "metadata",
                    format!("keys must be strings, found {}", key.describe()),
                );
                continue;
            }
        };
        let field = format!("metadata.{key_text}");
        if let Some(first_line) = seen.insert(key_text.clone(), key.pos.line) {
            out.warn(
                key.pos,
                &field,
                format!("is defined twice (first on line {first_line}); the last value counts"),
            );
        }
        if let Some(text) = string_field(value, &field, false, out) {
            metadata.insert(key_text, text);
        } else {
            metadata.remove(&key_text);
        }
    }
    metadata
}

pub(super) fn read_allowed_tools(node: &Node, out: &mut Findings) -> Vec<String> {
    const SHAPE: &str = "must be a space-separated string or a list of strings";
    match &node.kind {
        Kind::Scalar(scalar) if scalar.ty == ScalarType::Str => split_tools(&scalar.text),
        Kind::List(items) => items
            .iter()
            .filter_map(|item| {
                let text = match &item.kind {
                    Kind::Scalar(scalar) if scalar.ty == ScalarType::Str => &scalar.text,
                    Kind::Scalar(scalar) if scalar.ty != ScalarType::Null => {
                        out.warn(
                            item.pos,
                            "allowed-tools",
                            format!(
                                "items must be strings, found {} (quote it: \"{}\")",
                                item.describe(),
                                scalar.text
                            ),
                        );
                        &scalar.text
                    }
                    _ => {
                        out.warn(
                            item.pos,
                            "allowed-tools",
                            format!("items must be strings, found {}", item.describe()),
                        );
                        return None;
                    }
                };
                let text = text.trim();
                (!text.is_empty()).then(|| text.to_string())
            })
            .collect(),
        _ => {
            out.warn(
                node.pos,
                "allowed-tools",
                format!("{SHAPE}, found {}", node.describe()),
            );
            Vec::new()
        }
    }
}

/// Splits a space-separated `allowed-tools` string. Separators inside parentheses belong to
/// the tool (`Bash(git status:*)`), and commas separate too, as some clients write them.
pub(super) fn split_tools(text: &str) -> Vec<String> {
    let mut tools = Vec::new();
    let mut tool = String::new();
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth == 0 && (c.is_whitespace() || c == ',') {
            if !tool.is_empty() {
                tools.push(std::mem::take(&mut tool));
            }
        } else {
            tool.push(c);
        }
    }
    if !tool.is_empty() {
        tools.push(tool);
    }
    tools
}

// ---------------------------------------------------------------------------------------------
// Frontmatter and body.

pub(super) struct Parts<'a> {
    pub(super) yaml: &'a str,
    pub(super) body: &'a str,
    /// The line after the closing `---`.
    pub(super) body_line: usize,
}

/// Splits a `SKILL.md` (`\n` line endings) into the YAML between its first two `---` lines
/// and the body after them.
pub(super) fn split(text: &str) -> Result<Parts<'_>, &'static str> {
    let is_delimiter = |line: &str| line.trim_end_matches(['\n', '\r', ' ', '\t']) == "---";
    let mut lines = text.split_inclusive('\n');
    if !lines.next().is_some_and(is_delimiter) {
        return Err(
            "is missing: SKILL.md must start with a `---` line, then the YAML fields, then a `---` line",
        );
    }
    let yaml_start = text.find('\n').map_or(text.len(), |i| i + 1);
    let mut offset = yaml_start;
    for (index, line) in lines.enumerate() {
        if is_delimiter(line) {
            return Ok(Parts {
                yaml: &text[yaml_start..offset],
                body: &text[offset + line.len()..],
                body_line: index + 3,
            });
        }
        offset += line.len();
    }
    Err("is not closed: no `---` line after the YAML fields")
}

/// The body without its leading blank lines and trailing white space.
pub(super) fn trim_body(body: &str) -> &str {
    let body = body.trim_end();
    let mut start = 0;
    for line in body.split_inclusive('\n') {
        if !line.trim().is_empty() {
            break;
        }
        start += line.len();
    }
    &body[start..]
}

/// The client guidance's repair for YAML that other clients accept: values written plain
/// although they hold `: ` (`description: Use when: ...`) are single-quoted. `None` when no
/// line needed it. Lines keep their numbers.
pub(super) fn quote_colon_values(yaml: &str) -> Option<String> {
    let mut changed = false;
    let mut repaired = String::with_capacity(yaml.len() + 16);
    for line in yaml.split_inclusive('\n') {
        let content = line.trim_end_matches('\n');
        let indent = content.len() - content.trim_start_matches(' ').len();
        let key_len = content[indent..]
            .find(|c: char| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .unwrap_or(0);
        let rest = &content[indent + key_len..];
        let value = rest.strip_prefix(": ").map(str::trim);
        match value {
            Some(value)
                if key_len > 0
                    && value.contains(": ")
                    && !value.starts_with([
                        '\'', '"', '|', '>', '[', '{', '&', '*', '!', '#', '%', '@', '`',
                    ]) =>
            {
                changed = true;
                repaired.push_str(&content[..indent + key_len]);
                repaired.push_str(": '");
                repaired.push_str(&value.replace('\'', "''"));
                repaired.push('\'');
                if line.ends_with('\n') {
                    repaired.push('\n');
                }
            }
            _ => repaired.push_str(line),
        }
    }
    changed.then_some(repaired)
}
