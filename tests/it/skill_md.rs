//! The `SKILL.md` corpus in `tests/fixtures/skill-md`: every skill under `valid/` passes the
//! strict validator; every case under `invalid/` yields exactly the violations its
//! `expected.txt` lists (one `LINE:COLUMN: FIELD` a line; `#` starts a comment); and the
//! lenient loader loads what it can of them.

use std::fs;
use std::path::{Path, PathBuf};

use weir::skill::skill_md::{self, SkillMd, Violation};

/// The folder name and `SKILL.md` path of every skill under `tests/fixtures/skill-md/KIND`.
fn corpus(kind: &str) -> Vec<(String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/skill-md")
        .join(kind);
    let mut skills: Vec<(String, PathBuf)> = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|entry| {
            let dir = entry.unwrap().path();
            let name = dir.file_name().unwrap().to_str().unwrap().to_string();
            (name, dir.join("SKILL.md"))
        })
        .collect();
    skills.sort();
    skills
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn positions(violations: &[Violation]) -> Vec<String> {
    violations
        .iter()
        .map(|v| format!("{}:{}: {}", v.line, v.column, v.field))
        .collect()
}

fn expected(case_dir: &Path) -> Vec<String> {
    read(&case_dir.join("expected.txt"))
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn valid(name: &str) -> SkillMd {
    let (_, path) = corpus("valid")
        .into_iter()
        .find(|(dir, _)| dir == name)
        .unwrap();
    skill_md::validate(name, &read(&path)).unwrap()
}

fn invalid_text(name: &str) -> String {
    let (_, path) = corpus("invalid")
        .into_iter()
        .find(|(dir, _)| dir == name)
        .unwrap();
    read(&path)
}

#[test]
fn every_valid_skill_validates_and_loads_the_same() {
    let skills = corpus("valid");
    assert!(skills.len() >= 6, "only {} valid skills", skills.len());
    for (dir, path) in skills {
        let text = read(&path);
        let skill = skill_md::validate(&dir, &text).unwrap_or_else(|violations| {
            let lines: Vec<String> = violations.iter().map(|v| v.at(&path).to_string()).collect();
            panic!("{} should be valid:\n{}", path.display(), lines.join("\n"))
        });
        assert_eq!(skill.name, dir);
        assert!(!skill.description.is_empty() && !skill.body.is_empty());
        assert_eq!(
            skill_md::load_with_warnings(&dir, &text),
            Ok((skill, vec![]))
        );
    }
}

#[test]
fn valid_skills_read_every_field() {
    let pdf = valid("pdf-processing");
    assert!(
        pdf.description
            .starts_with("Extracts text and tables from PDF files")
    );
    assert_eq!(pdf.license.as_deref(), Some("Apache-2.0"));
    assert_eq!(
        pdf.compatibility.as_deref(),
        Some("Requires Python 3.11+ with pypdf, and poppler-utils on the PATH")
    );
    let metadata: Vec<(&str, &str)> = pdf
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        metadata,
        [
            ("author", "example-org"),
            ("category", "documents"),
            ("version", "2.1")
        ]
    );
    assert_eq!(
        pdf.allowed_tools,
        ["Bash(python:*)", "Bash(pdftotext:*)", "Read", "Write"]
    );
    assert!(
        pdf.body
            .starts_with("# PDF processing\n\n## Extract text\n")
    );
    assert!(pdf.body.ends_with("for field types and edge cases."));

    let minimal = valid("data-analysis");
    assert_eq!(minimal.license, None);
    assert_eq!(minimal.compatibility, None);
    assert!(minimal.metadata.is_empty() && minimal.allowed_tools.is_empty());

    // CRLF line endings: values and body come out with `\n`.
    let raw = |name: &str| {
        fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/skill-md")
                .join(name)
                .join("SKILL.md"),
        )
        .unwrap()
    };
    assert!(
        raw("valid/release-notes").ends_with(b".\r\n"),
        "the fixture lost its CRLF"
    );
    assert!(
        raw("valid/code-review").starts_with("\u{feff}---".as_bytes()),
        "the fixture lost its BOM"
    );
    assert!(raw("invalid/many-violations").starts_with("\u{feff}---\r\n".as_bytes()));
    let crlf = valid("release-notes");
    assert_eq!(crlf.metadata["version"], "1.0");
    assert!(!crlf.body.contains('\r'));
    assert!(
        crlf.body
            .starts_with("# Release notes\n\n1. Find the last tag")
    );

    let unicode = valid("translate-docs");
    assert_eq!(
        unicode.description,
        "Übersetzt Dokumentation zwischen Deutsch, Français, 日本語 und English, und behält \
         Fachbegriffe bei — Use when translating docs 🌍."
    );
    assert_eq!(unicode.metadata["glossary"], "references/glossaire-é.md");

    // A byte-order mark, a folded description, allowed-tools as a list.
    let review = valid("code-review");
    assert_eq!(
        review.description,
        "Reviews a change for correctness, security and readability, and suggests concrete \
         fixes. Use when the user asks for a review of a diff, a pull request or a file."
    );
    assert_eq!(
        review.allowed_tools,
        ["Read", "Bash(git diff:*)", "Bash(git log:*)"]
    );

    // Comments, quoted keys and values, a plain description over several lines.
    let commit = valid("git-commit-helper");
    assert!(commit.description.starts_with("Writes a commit message for the staged changes, following the repository's conventions (subject"));
    assert_eq!(
        commit.license.as_deref(),
        Some("Proprietary. LICENSE.txt has complete terms")
    );
    assert_eq!(commit.metadata["author"], "dev-tools");
    assert_eq!(
        commit.metadata["homepage"],
        "https://example.org/git-commit-helper"
    );
    assert_eq!(
        commit.allowed_tools,
        [
            "Bash(git status:*)",
            "Bash(git diff:*)",
            "Bash(git commit:*)"
        ]
    );
    assert!(commit.body.starts_with("## Steps\n"));

    // The longest values allowed.
    let boundary = valid(&format!("boundary-{}", "x".repeat(55)));
    assert_eq!(boundary.name.chars().count(), skill_md::MAX_NAME_CHARS);
    assert_eq!(
        boundary.description.chars().count(),
        skill_md::MAX_DESCRIPTION_CHARS
    );
    assert_eq!(
        boundary.compatibility.unwrap().chars().count(),
        skill_md::MAX_COMPATIBILITY_CHARS
    );

    // Escapes in a quoted description; blank lines before the body dropped, its indentation kept.
    let csv = valid("csv-to-json");
    assert!(csv.description.contains(r#"the header "columns" as keys"#));
    assert!(csv.body.starts_with("    Indented first line"));
    assert!(csv.body.ends_with("OUT.json`."));
}

#[test]
fn every_invalid_skill_yields_exactly_the_expected_violations() {
    let cases = corpus("invalid");
    assert!(cases.len() >= 15, "only {} invalid cases", cases.len());
    let mut failures = Vec::new();
    for (dir, path) in cases {
        let want = expected(path.parent().unwrap());
        match skill_md::validate(&dir, &read(&path)) {
            Ok(_) => failures.push(format!("{dir}: validated, expected {want:?}")),
            Err(violations) => {
                let got = positions(&violations);
                if got != want {
                    let shown: Vec<String> = violations.iter().map(|v| format!("  {v}")).collect();
                    failures.push(format!(
                        "{dir}: expected {want:?}, got:\n{}",
                        shown.join("\n")
                    ));
                }
                for v in &violations {
                    assert!(!v.message.is_empty(), "{dir}: {v:?}");
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Invalid cases that the lenient loader must refuse: no usable frontmatter or no description.
const NOT_LOADABLE: &[&str] = &[
    "description-not-string",
    "empty-description",
    "empty-frontmatter",
    "frontmatter-not-at-start",
    "frontmatter-not-mapping",
    "invalid-yaml-indentation",
    "many-violations",
    "missing-description",
    "no-frontmatter",
    "unclosed-frontmatter",
];

#[test]
fn lenient_loader_on_the_invalid_corpus() {
    for (dir, path) in corpus("invalid") {
        let text = read(&path);
        let strict = skill_md::validate(&dir, &text).unwrap_err();
        match skill_md::load_with_warnings(&dir, &text) {
            Err(error) => {
                assert!(NOT_LOADABLE.contains(&dir.as_str()), "{dir}: {error}");
                assert!(
                    strict.contains(&error),
                    "{dir}: {error} is not among {strict:?}"
                );
            }
            Ok((skill, warnings)) => {
                assert!(!NOT_LOADABLE.contains(&dir.as_str()), "{dir} loaded");
                assert!(
                    !skill.name.is_empty() && !skill.description.is_empty(),
                    "{dir}"
                );
                if dir != "invalid-yaml-colon" {
                    // It tolerated exactly what the validator rejects.
                    assert_eq!(warnings, strict, "{dir}");
                }
                assert_eq!(skill_md::load(&dir, &text), Ok(skill), "{dir}");
            }
        }
    }
}

#[test]
fn lenient_loader_reads_what_it_can() {
    let load = |name: &str| skill_md::load(name, &invalid_text(name)).unwrap();

    assert_eq!(load("name-mismatch").name, "other-skill");
    assert_eq!(load("name-uppercase").name, "Name-Uppercase");
    assert_eq!(load("name-not-string").name, "2024");
    // No name: the folder's name.
    assert_eq!(load("missing-name").name, "missing-name");

    let metadata = load("metadata-non-string-values").metadata;
    assert_eq!(metadata["version"], "1.0", "read as written, not as 1");
    assert_eq!(metadata["stable"], "true");
    assert_eq!(metadata["build"], "42");
    assert_eq!(metadata["author"], "example-org");
    assert!(load("metadata-not-mapping").metadata.is_empty());

    // Of a duplicated key the last value counts.
    let duplicates = load("duplicate-keys");
    assert_eq!(duplicates.description, "Second description.");
    assert_eq!(duplicates.metadata["author"], "someone-else");

    let unknown = load("unknown-fields");
    assert_eq!(
        unknown.description,
        "Uses fields the specification does not define."
    );

    assert_eq!(
        load("description-too-long").description.chars().count(),
        skill_md::MAX_DESCRIPTION_CHARS + 1
    );
    assert_eq!(load("compatibility-empty").compatibility, None);
    assert_eq!(load("license-not-string").license, None);
    assert!(load("allowed-tools-wrong-type").allowed_tools.is_empty());
    assert_eq!(
        load("allowed-tools-non-string-item").allowed_tools,
        ["Read", "42"]
    );
    assert_eq!(load("empty-body").body, "");

    // An unquoted `: ` in a value, which many YAML-ish parsers accept: quoted, then read.
    let text = invalid_text("invalid-yaml-colon");
    let (skill, warnings) = skill_md::load_with_warnings("invalid-yaml-colon", &text).unwrap();
    assert_eq!(
        skill.description,
        "Use this skill when: the user asks about PDFs."
    );
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].field, "frontmatter");
}

#[test]
fn violations_display_with_their_path() {
    let path = Path::new("skills/name-mismatch/SKILL.md");
    let violations =
        skill_md::validate("name-mismatch", &invalid_text("name-mismatch")).unwrap_err();
    assert_eq!(
        violations[0].at(path).to_string(),
        "skills/name-mismatch/SKILL.md:2:7: name: must match the skill's folder name `name-mismatch`"
    );
    assert_eq!(
        violations[0].to_string(),
        "SKILL.md:2:7: name: must match the skill's folder name `name-mismatch`"
    );

    let unknown =
        skill_md::validate("unknown-fields", &invalid_text("unknown-fields")).unwrap_err();
    assert_eq!(
        unknown[0].to_string(),
        "SKILL.md:4:1: version: is not a field of SKILL.md; the fields are name, description, \
         license, compatibility, metadata, allowed-tools"
    );
}
