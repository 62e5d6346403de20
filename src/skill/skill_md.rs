//! `SKILL.md` (Agent Skills) parsing and validation.
//!
//! A skill is a folder holding a `SKILL.md` file: YAML frontmatter between two
//! `---` lines, then a Markdown body with the skill's instructions (the format
//! of [agentskills.io](https://agentskills.io/specification)). Clients disclose
//! skills progressively: the `name` and `description` of every skill first,
//! the body when a skill is activated, and files in its `scripts/`,
//! `references/` and `assets/` folders when the body points at them.
//!
//! Two readers share one parser:
//!
//! - [`validate`] is strict, for authors and publishing: it checks every rule
//!   of the specification and reports every [`Violation`] at once, each at the
//!   line and column of the offending key or value (or of the frontmatter's
//!   opening `---` when a required field is missing, or of the body's first
//!   line when the body is empty).
//! - [`load`] is lenient, for running skills written for other clients, as the
//!   specification's client guidance advises: it logs what the validator would
//!   reject and loads the skill anyway whenever it can (a name that does not
//!   match the folder, over-long fields, unknown fields, numbers where strings
//!   belong, values with an unquoted `: `). It fails only when the skill cannot
//!   be disclosed: no frontmatter, YAML that cannot be parsed, frontmatter that
//!   is not a mapping, or no description.
//!
//! Both accept a byte-order mark and CRLF line endings; lines and columns are
//! 1-based and columns count characters.
//!
//! The rules follow the specification and its reference validator
//! (`skills-ref`): `name` is 1 to 64 lowercase letters (Unicode letters too),
//! digits and hyphens, with no hyphen at either end and no two in a row, and
//! equals the folder name; `description` is 1 to 1024 characters;
//! `compatibility` 1 to 500; `license` is a string; `metadata` maps strings to
//! strings; `allowed-tools` is a space-separated string or a list of strings;
//! no other field is allowed. In addition the body must not be empty, and a
//! key must not appear twice in a mapping. Unlike `skills-ref`, names are
//! compared as written, without Unicode normalisation.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, Tag};
use serde::{Deserialize, Serialize};

/// The most characters a skill's `name` may have.
pub const MAX_NAME_CHARS: usize = 64;
/// The most characters a skill's `description` may have.
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
/// The most characters a skill's `compatibility` may have.
pub const MAX_COMPATIBILITY_CHARS: usize = 500;
/// The frontmatter fields the specification defines; [`validate`] rejects any other.
pub const FIELDS: [&str; 6] = [
    "name",
    "description",
    "license",
    "compatibility",
    "metadata",
    "allowed-tools",
];

/// Deeper YAML nesting than this is rejected (no field of a skill needs more than two levels).
const MAX_DEPTH: usize = 32;
/// At most this many YAML nodes, aliases expanded: a bound on what a hostile file can cost.
const MAX_NODES: usize = 10_000;

/// A skill's `SKILL.md`: its frontmatter fields and its Markdown body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillMd {
    /// The skill's name: lowercase letters, digits and hyphens; equal to its folder's name.
    pub name: String,
    /// What the skill does and when to use it: what a model sees before activating it.
    pub description: String,
    /// The license: its name, or the name of a license file bundled with the skill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// The environment the skill needs (product, system packages, network access...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility: Option<String>,
    /// Further properties, for clients' own use.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Tools pre-approved while the skill runs (experimental in the specification), in order:
    /// the items of a list, or the words of a string (a word's parenthesised part, as in
    /// `Bash(git status:*)`, may hold spaces).
    #[serde(
        default,
        rename = "allowed-tools",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub allowed_tools: Vec<String>,
    /// The Markdown instructions after the frontmatter, without leading blank lines and
    /// trailing white space, with `\n` line endings.
    pub body: String,
}

/// A rule of the specification that a `SKILL.md` breaks, and where.
///
/// Displays as `SKILL.md:LINE:COLUMN: FIELD: MESSAGE`; [`Violation::at`] puts a real path in
/// place of `SKILL.md`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// 1-based line in the file.
    pub line: usize,
    /// 1-based column, in characters (a byte-order mark is not counted).
    pub column: usize,
    /// The field: a frontmatter key (`name`, `metadata.version`, or an unknown key), or
    /// `frontmatter` for the frontmatter as a whole, or `body`.
    pub field: String,
    /// What is wrong, as the end of a sentence whose subject is the field ("must be ...").
    pub message: String,
}

impl Violation {
    fn new(
        line: usize,
        column: usize,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Violation {
            line,
            column,
            field: field.into(),
            message: message.into(),
        }
    }

    /// Displays the violation with `path` (the real path of the `SKILL.md`) in place of
    /// `SKILL.md`: `PATH:LINE:COLUMN: FIELD: MESSAGE`.
    pub fn at<'a>(&'a self, path: &'a Path) -> ViolationAt<'a> {
        ViolationAt {
            violation: self,
            path,
        }
    }

    fn fmt_with(&self, f: &mut fmt::Formatter<'_>, path: &dyn fmt::Display) -> fmt::Result {
        write!(
            f,
            "{path}:{}:{}: {}: {}",
            self.line, self.column, self.field, self.message
        )
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_with(f, &"SKILL.md")
    }
}

impl std::error::Error for Violation {}

/// A [`Violation`] displayed with the path of its file; made by [`Violation::at`].
#[derive(Debug, Clone, Copy)]
pub struct ViolationAt<'a> {
    violation: &'a Violation,
    path: &'a Path,
}

impl fmt::Display for ViolationAt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.violation.fmt_with(f, &self.path.display())
    }
}

/// Checks a `SKILL.md` against the specification, strictly.
///
/// `dir_name` is the name of the skill's folder, which `name` must equal; `text` is the
/// file's content. Returns the skill when it breaks no rule, and otherwise every
/// violation, ordered by position.
pub fn validate(dir_name: &str, text: &str) -> Result<SkillMd, Vec<Violation>> {
    let analysis = analyze(dir_name, text, false);
    let violations: Vec<Violation> = analysis.findings.into_iter().map(|f| f.violation).collect();
    match analysis.skill {
        Some(skill) if violations.is_empty() => Ok(skill),
        _ if violations.is_empty() => Err(vec![Violation::new(
            1,
            1,
            "frontmatter",
            "could not be read",
        )]),
        _ => Err(violations),
    }
}

/// Loads a `SKILL.md` leniently, as the specification advises clients to: every violation
/// that still leaves a usable skill is logged with `tracing::warn!` and the skill is loaded.
///
/// Fails, with the first violation that prevents loading, when there is no frontmatter or it
/// is not closed, when its YAML cannot be parsed (even after quoting values that contain an
/// unquoted `: `), when it is not a mapping, or when `description` is missing, empty or not
/// text. A missing or empty `name` falls back to `dir_name`; numbers and booleans where
/// strings belong are read as written; values of the wrong shape and unknown fields are
/// ignored; of a duplicated key the last value counts.
pub fn load(dir_name: &str, text: &str) -> Result<SkillMd, Violation> {
    let (skill, warnings) = load_with_warnings(dir_name, text)?;
    for warning in &warnings {
        tracing::warn!(skill = dir_name, "{warning} (loaded anyway)");
    }
    Ok(skill)
}

/// Like [`load`], but returns the violations it tolerated instead of logging them, so that a
/// caller can show them (in a diagnostics command, say).
pub fn load_with_warnings(
    dir_name: &str,
    text: &str,
) -> Result<(SkillMd, Vec<Violation>), Violation> {
    let analysis = analyze(dir_name, text, true);
    if let Some(fatal) = analysis.findings.iter().find(|f| f.fatal) {
        return Err(fatal.violation.clone());
    }
    let warnings = analysis.findings.into_iter().map(|f| f.violation).collect();
    match analysis.skill {
        Some(skill) => Ok((skill, warnings)),
        None => Err(Violation::new(1, 1, "frontmatter", "could not be read")),
    }
}

// ---------------------------------------------------------------------------------------------
// Analysis: one pass that finds every violation and builds the lenient reading of the skill.

/// A violation, and whether [`load`] must fail on it too.
struct Finding {
    violation: Violation,
    fatal: bool,
}

#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn push(&mut self, at: Pos, field: &str, message: impl Into<String>, fatal: bool) {
        self.0.push(Finding {
            violation: Violation::new(at.line, at.column, field, message),
            fatal,
        });
    }

    /// A violation that [`load`] tolerates.
    fn warn(&mut self, at: Pos, field: &str, message: impl Into<String>) {
        self.push(at, field, message, false);
    }

    /// A violation that [`load`] fails on.
    fn fatal(&mut self, at: Pos, field: &str, message: impl Into<String>) {
        self.push(at, field, message, true);
    }
}

struct Analysis {
    findings: Vec<Finding>,
    /// The lenient reading; `None` only alongside a fatal finding.
    skill: Option<SkillMd>,
}

/// A 1-based position in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    line: usize,
    column: usize,
}

/// Where a missing field is reported: the frontmatter's opening `---`.
const START: Pos = Pos { line: 1, column: 1 };

fn analyze(dir_name: &str, text: &str, lenient: bool) -> Analysis {
    let mut out = Findings::default();
    let skill = read(dir_name, text, lenient, &mut out);
    let mut findings = out.0;
    // Stable: violations at one position keep the order of the checks.
    findings.sort_by_key(|f| (f.violation.line, f.violation.column));
    Analysis { findings, skill }
}

fn read(dir_name: &str, text: &str, lenient: bool, out: &mut Findings) -> Option<SkillMd> {
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
struct Fields {
    name: Option<String>,
    description: Option<String>,
    license: Option<String>,
    compatibility: Option<String>,
    metadata: BTreeMap<String, String>,
    allowed_tools: Vec<String>,
}

fn read_fields(dir_name: &str, entries: &[(Node, Node)], out: &mut Findings) -> Fields {
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
fn string_field(node: &Node, field: &str, required: bool, out: &mut Findings) -> Option<String> {
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

fn read_name(dir_name: &str, node: &Node, out: &mut Findings) -> Option<String> {
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
fn name_problems(name: &str) -> Vec<String> {
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

fn read_description(node: &Node, out: &mut Findings) -> Option<String> {
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

fn read_compatibility(node: &Node, out: &mut Findings) -> Option<String> {
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

fn read_metadata(node: &Node, out: &mut Findings) -> BTreeMap<String, String> {
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

fn read_allowed_tools(node: &Node, out: &mut Findings) -> Vec<String> {
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
fn split_tools(text: &str) -> Vec<String> {
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

struct Parts<'a> {
    yaml: &'a str,
    body: &'a str,
    /// The line after the closing `---`.
    body_line: usize,
}

/// Splits a `SKILL.md` (`\n` line endings) into the YAML between its first two `---` lines
/// and the body after them.
fn split(text: &str) -> Result<Parts<'_>, &'static str> {
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
fn trim_body(body: &str) -> &str {
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
fn quote_colon_values(yaml: &str) -> Option<String> {
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

// ---------------------------------------------------------------------------------------------
// YAML: a small tree with positions, built from saphyr-parser's events so that every key is
// kept (duplicates too) with its position, and scalars keep the text they were written as.

#[derive(Debug, Clone)]
struct Node {
    pos: Pos,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Scalar(Scalar),
    List(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone)]
struct Scalar {
    text: String,
    ty: ScalarType,
}

/// The type of a scalar by the YAML 1.2 core schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScalarType {
    Str,
    Null,
    Bool,
    Int,
    Float,
}

impl Node {
    fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(scalar) if scalar.ty == ScalarType::Str => Some(&scalar.text),
            _ => None,
        }
    }

    /// The node's type, for messages ("found ...").
    fn describe(&self) -> &'static str {
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

struct YamlError {
    pos: Pos,
    message: String,
}

/// A collection whose end event has not come yet.
struct Open {
    pos: Pos,
    anchor: usize,
    /// Nodes in it so far, itself included, aliases expanded.
    size: usize,
    items: Vec<Node>,
    is_map: bool,
}

/// Parses YAML whose first line is line `first_line` of the file into its documents.
fn parse_yaml(yaml: &str, first_line: usize) -> Result<Vec<Node>, YamlError> {
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
fn scalar_type(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> ScalarType {
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

fn all_digits(text: &str, radix: u32) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_digit(radix))
}

fn is_core_int(text: &str) -> bool {
    if let Some(octal) = text.strip_prefix("0o") {
        return all_digits(octal, 8);
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return all_digits(hex, 16);
    }
    all_digits(text.strip_prefix(['-', '+']).unwrap_or(text), 10)
}

fn is_core_float(text: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(violations: &[Violation]) -> Vec<String> {
        violations
            .iter()
            .map(|v| format!("{}:{}: {}", v.line, v.column, v.field))
            .collect()
    }

    fn strict(dir: &str, text: &str) -> Vec<String> {
        fields(&validate(dir, text).expect_err("should be invalid"))
    }

    const MINIMAL: &str = "---\nname: demo\ndescription: Does a demo.\n---\n# Demo\n\nSteps.\n";

    #[test]
    fn minimal_skill_validates() {
        let skill = validate("demo", MINIMAL).unwrap();
        assert_eq!(skill.name, "demo");
        assert_eq!(skill.description, "Does a demo.");
        assert_eq!(skill.body, "# Demo\n\nSteps.");
        assert_eq!(skill.license, None);
        assert!(skill.metadata.is_empty() && skill.allowed_tools.is_empty());
        assert_eq!(load("demo", MINIMAL).unwrap(), skill);
    }

    #[test]
    fn display_names_the_file_position_and_field() {
        let violations = validate(
            "demo",
            "---\nname: demo\ndescription: Demo.\nname: Demo\n---\nBody\n",
        )
        .unwrap_err();
        assert_eq!(
            violations[0].to_string(),
            "SKILL.md:4:1: name: is defined twice (first on line 2); the last value counts"
        );
        assert_eq!(
            violations[1]
                .at(Path::new("skills/demo/SKILL.md"))
                .to_string(),
            "skills/demo/SKILL.md:4:7: name: must be lowercase"
        );
    }

    #[test]
    fn bom_and_crlf_keep_positions() {
        let text = "\u{feff}---\r\nname: Demo\r\ndescription: Demo.\r\n---\r\nBody\r\nmore\r\n";
        assert_eq!(strict("demo", text), ["2:7: name", "2:7: name"]);
        let skill = load("demo", text).unwrap();
        assert_eq!(skill.body, "Body\nmore");
    }

    #[test]
    fn name_rules() {
        assert!(name_problems("pdf-processing").is_empty());
        assert!(name_problems("a").is_empty());
        assert!(name_problems("v2-tools-3d").is_empty());
        // Unicode lowercase letters and digits are letters and digits (as in skills-ref).
        assert!(name_problems("café-menu").is_empty());
        assert!(name_problems("日本語").is_empty());
        assert_eq!(name_problems(""), ["must not be empty"]);
        assert_eq!(name_problems("Pdf"), ["must be lowercase"]);
        assert_eq!(name_problems("İstanbul"), ["must be lowercase"]);
        assert_eq!(
            name_problems("-a--b_c d-"),
            [
                "may only contain lowercase letters, digits and hyphens, found '_', ' '",
                "must not start or end with a hyphen",
                "must not contain consecutive hyphens",
            ]
        );
        assert_eq!(
            name_problems(&"a".repeat(65)),
            ["must be at most 64 characters, found 65"]
        );
        assert!(
            name_problems(&"é".repeat(64)).is_empty(),
            "characters, not bytes"
        );
    }

    #[test]
    fn lengths_count_characters() {
        let description = "é".repeat(MAX_DESCRIPTION_CHARS);
        let text = format!("---\nname: demo\ndescription: {description}\n---\nBody\n");
        assert!(validate("demo", &text).is_ok());
        let text = format!("---\nname: demo\ndescription: {description}x\n---\nBody\n");
        assert_eq!(strict("demo", &text), ["3:14: description"]);
        assert_eq!(
            load("demo", &text).unwrap().description.chars().count(),
            1025
        );
    }

    #[test]
    fn scalar_types_follow_the_core_schema() {
        let plain = |text| scalar_type(text, ScalarStyle::Plain, None);
        assert_eq!(plain("1.0"), ScalarType::Float);
        assert_eq!(plain("-.5e3"), ScalarType::Float);
        assert_eq!(plain(".inf"), ScalarType::Float);
        assert_eq!(plain("42"), ScalarType::Int);
        assert_eq!(plain("0x1F"), ScalarType::Int);
        assert_eq!(plain("true"), ScalarType::Bool);
        assert_eq!(plain("~"), ScalarType::Null);
        for text in [
            "1.0.0", "yes", "on", "0x", "1e", "v1", ".", "+", "1_000", "Tru",
        ] {
            assert_eq!(plain(text), ScalarType::Str, "{text}");
        }
        assert_eq!(
            scalar_type("1.0", ScalarStyle::DoubleQuoted, None),
            ScalarType::Str
        );
    }

    #[test]
    fn tags_and_anchors() {
        let text = "---\nname: demo\ndescription: &d !!str 42\nmetadata:\n  copy: *d\n  n: !!int \"7\"\n---\nBody\n";
        assert_eq!(strict("demo", text), ["6:6: metadata.n"]);
        let skill = load("demo", text).unwrap();
        assert_eq!(skill.description, "42");
        assert_eq!(skill.metadata["copy"], "42");
        assert_eq!(skill.metadata["n"], "7");
    }

    #[test]
    fn metadata_values_are_read_as_written_when_lenient() {
        let text = "---\nname: demo\ndescription: Demo.\nmetadata:\n  version: 1.0\n  beta: true\n  owner: team\n  tags: [a, b]\n  empty:\n---\nBody\n";
        assert_eq!(
            strict("demo", text),
            [
                "5:12: metadata.version",
                "6:9: metadata.beta",
                "8:9: metadata.tags",
                "9:3: metadata.empty"
            ]
        );
        let (skill, warnings) = load_with_warnings("demo", text).unwrap();
        assert_eq!(warnings.len(), 4);
        let expected: BTreeMap<String, String> =
            [("version", "1.0"), ("beta", "true"), ("owner", "team")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(skill.metadata, expected);
    }

    #[test]
    fn allowed_tools_as_string_or_list() {
        let text =
            "---\nname: demo\ndescription: Demo.\nallowed-tools: Bash(git:*)  Read\n---\nBody\n";
        assert_eq!(
            validate("demo", text).unwrap().allowed_tools,
            ["Bash(git:*)", "Read"]
        );
        let text = "---\nname: demo\ndescription: Demo.\nallowed-tools:\n  - Bash(git log:*)\n  - Read\n---\nBody\n";
        assert_eq!(
            validate("demo", text).unwrap().allowed_tools,
            ["Bash(git log:*)", "Read"]
        );
        let text =
            "---\nname: demo\ndescription: Demo.\nallowed-tools: [Read, 3, {a: b}]\n---\nBody\n";
        assert_eq!(
            strict("demo", text),
            ["4:23: allowed-tools", "4:26: allowed-tools"]
        );
        assert_eq!(load("demo", text).unwrap().allowed_tools, ["Read", "3"]);
    }

    #[test]
    fn tool_patterns_keep_their_spaces() {
        assert_eq!(
            split_tools(" Bash(git status:*)  Read,Grep, Bash(a, b)\tWrite "),
            ["Bash(git status:*)", "Read", "Grep", "Bash(a, b)", "Write"]
        );
        assert!(split_tools("  ").is_empty());
    }

    #[test]
    fn unquoted_colon_is_repaired_only_when_lenient() {
        let text = "---\nname: demo\ndescription: Use this skill when: the user asks about PDFs\n---\nBody\n";
        let violations = validate("demo", text).unwrap_err();
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field, "frontmatter");
        assert_eq!(violations[0].line, 3);
        let (skill, warnings) = load_with_warnings("demo", text).unwrap();
        assert_eq!(
            skill.description,
            "Use this skill when: the user asks about PDFs"
        );
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].message.contains("quoting"), "{}", warnings[0]);
    }

    #[test]
    fn repair_keeps_quotes_and_lines() {
        assert_eq!(quote_colon_values("name: demo\n"), None);
        assert_eq!(
            quote_colon_values("a: it's: here\n  b: 'x: y'\nc: x: y").as_deref(),
            Some("a: 'it''s: here'\n  b: 'x: y'\nc: 'x: y'")
        );
    }

    #[test]
    fn lenient_fallbacks() {
        // No name: the folder's name. Unknown fields and a bad compatibility are ignored.
        let text = "---\ndescription: Demo.\nversion: 2\ncompatibility: [linux]\n---\nBody\n";
        assert_eq!(
            strict("demo", text),
            ["1:1: name", "3:1: version", "4:16: compatibility"]
        );
        let skill = load("demo", text).unwrap();
        assert_eq!(skill.name, "demo");
        assert_eq!(skill.compatibility, None);

        // Duplicates: the last value counts.
        let text = "---\nname: demo\ndescription: First.\ndescription: Second.\n---\nBody\n";
        assert_eq!(strict("demo", text), ["4:1: description"]);
        assert_eq!(load("demo", text).unwrap().description, "Second.");

        // An empty body is tolerated.
        let text = "---\nname: demo\ndescription: Demo.\n---\n\n  \n";
        assert_eq!(strict("demo", text), ["5:1: body"]);
        assert_eq!(load("demo", text).unwrap().body, "");
    }

    #[test]
    fn fatal_for_the_lenient_loader() {
        let cases = [
            ("", "1:1: frontmatter"),
            ("# Demo\n", "1:1: frontmatter"),
            ("---\nname: demo\ndescription: Demo.\n", "1:1: frontmatter"),
            ("---\n- name: demo\n---\nBody\n", "2:1: frontmatter"),
            ("---\nname: demo\n---\nBody\n", "1:1: description"),
            (
                "---\nname: demo\ndescription: '  '\n---\nBody\n",
                "3:14: description",
            ),
            (
                "---\nname: demo\ndescription:\n---\nBody\n",
                "3:1: description",
            ),
            (
                "---\nname: demo\ndescription: [a]\n---\nBody\n",
                "3:14: description",
            ),
            (
                "---\nname: [demo\ndescription: Demo.\n---\nBody\n",
                "3:12: frontmatter",
            ),
        ];
        for (text, expected) in cases {
            let error = load("demo", text).expect_err(text);
            assert_eq!(
                format!("{}:{}: {}", error.line, error.column, error.field),
                expected,
                "{text:?}: {error}"
            );
            assert!(validate("demo", text).is_err());
        }
    }

    #[test]
    fn empty_frontmatter_reports_both_required_fields() {
        assert_eq!(
            strict("demo", "---\n---\nBody\n"),
            ["1:1: name", "1:1: description"]
        );
        assert_eq!(
            strict("demo", "---\n# only a comment\n---\n"),
            ["1:1: name", "1:1: description", "4:1: body"]
        );
    }

    #[test]
    fn hostile_yaml_is_bounded() {
        let mut text = String::from(
            "---\nname: demo\ndescription: Demo.\na: &a [x, x, x, x, x, x, x, x, x, x]\n",
        );
        for i in 0..8 {
            let prev = if i == 0 {
                "a".to_string()
            } else {
                format!("a{}", i - 1)
            };
            text.push_str(&format!(
                "a{i}: &a{i} [{}]\n",
                vec![format!("*{prev}"); 10].join(", ")
            ));
        }
        text.push_str("---\nBody\n");
        let error = load("demo", &text).unwrap_err();
        assert!(error.message.contains("too large"), "{error}");

        let deep = format!(
            "---\nname: demo\ndescription: Demo.\nx: {}{}\n---\nBody\n",
            "[".repeat(100),
            "]".repeat(100)
        );
        let error = load("demo", &deep).unwrap_err();
        assert!(error.message.contains("too deeply"), "{error}");
    }

    #[test]
    fn second_document_is_reported() {
        let text = "---\nname: demo\ndescription: Demo.\n...\nother: 1\n---\nBody\n";
        assert_eq!(strict("demo", text), ["5:1: frontmatter"]);
        assert_eq!(load("demo", text).unwrap().name, "demo");
    }

    #[test]
    fn serializes_with_spec_field_names() {
        let text = "---\nname: demo\ndescription: Demo.\nallowed-tools: Read\n---\nBody\n";
        let json = serde_json::to_value(validate("demo", text).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "demo", "description": "Demo.", "allowed-tools": ["Read"], "body": "Body"
            })
        );
    }
}
