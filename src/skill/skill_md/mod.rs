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

mod rules;
mod yaml;

use rules::analyze;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

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

#[cfg(test)]
mod tests {
    use super::rules::*;
    use super::yaml::*;
    use super::*;
    use saphyr_parser::ScalarStyle;

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
