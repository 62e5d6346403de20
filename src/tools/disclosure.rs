//! Agent Skills progressive disclosure for models: a chat-model setup that
//! lists skills puts their names and descriptions in the system prompt and
//! offers the built-in `load_skill` tool, which returns a skill's SKILL.md
//! body or one of its reference files on demand, beside the skill's own
//! tools.

use crate::host::HostError;
use crate::resources::api::ToolSpec;
use crate::skill::package::inside;
use serde_json::{Value, json};
use std::path::PathBuf;

pub use crate::host::{LOAD_SKILL, RUN_SKILL_COMMAND};

/// Longest text `load_skill` returns; longer files are cut with a note.
const MAX_LOAD_BYTES: usize = 64 << 10;

/// What a model is told about an installed skill, and where its files are.
#[derive(Debug, Clone)]
pub struct SkillDoc {
    /// The skill's name.
    pub name: String,
    /// Its description (from SKILL.md).
    pub description: String,
    /// The unpacked package.
    pub dir: PathBuf,
    /// The tools its components provide.
    pub tools: Vec<String>,
    /// Its wasi:cli commands.
    pub commands: Vec<SkillCommand>,
    /// What its tools and commands run with.
    pub(crate) policy: Option<super::ToolPolicy>,
}

/// A wasi:cli command a skill carries.
#[derive(Clone)]
pub struct SkillCommand {
    /// Its name.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// The component file.
    pub path: PathBuf,
    pub(crate) component: Option<std::sync::Arc<crate::sandbox::CommandComponent>>,
}

impl std::fmt::Debug for SkillCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkillCommand")
            .field("name", &self.name)
            .field("path", &self.path)
            .finish()
    }
}

/// The `run_skill_command` tool's spec.
pub(crate) fn run_command_spec() -> ToolSpec {
    ToolSpec {
        name: RUN_SKILL_COMMAND.into(),
        description:
            "Run one of a skill's commands (a sandboxed program) with arguments and standard \
                      input; returns its exit code, standard output and standard error."
                .into(),
        parameters: json!({
            "type": "object",
            "properties": {
                "skill": { "type": "string", "description": "The skill's name." },
                "command": { "type": "string", "description": "The command's name." },
                "args": { "type": "array", "items": { "type": "string" }, "description": "Arguments." },
                "stdin": { "type": "string", "description": "Standard input." }
            },
            "required": ["skill", "command"],
            "additionalProperties": false
        }),
    }
}

/// The `load_skill` tool's spec.
pub(crate) fn load_skill_spec() -> ToolSpec {
    ToolSpec {
        name: LOAD_SKILL.into(),
        description: "Load the instructions of one of the available skills (its SKILL.md), or one of \
                      the files it refers to (for example `references/guide.md`). Load a skill before \
                      using it."
            .into(),
        parameters: json!({
            "type": "object",
            "properties": {
                "name": { "type": "string", "description": "The skill's name." },
                "file": {
                    "type": "string",
                    "description": "A file of the skill, relative to it (default: SKILL.md)."
                }
            },
            "required": ["name"],
            "additionalProperties": false
        }),
    }
}

/// The system-prompt block naming `skills`.
pub(crate) fn prompt_block<'a>(skills: impl Iterator<Item = &'a SkillDoc>) -> String {
    let mut block = String::from(
        "You can use these skills. Before using one, call the `load_skill` tool with its name to \
         read its instructions; they may point to further files, which `load_skill` also returns.\n",
    );
    for skill in skills {
        block.push_str(&format!("- {}: {}\n", skill.name, skill.description));
        for command in &skill.commands {
            block.push_str(&format!(
                "  - command `{}` (run it with `run_skill_command`): {}\n",
                command.name, command.description
            ));
        }
    }
    block
}

/// Answers a `load_skill` call on `skill`.
pub(crate) fn load(skill: &SkillDoc, arguments: &Value) -> Result<Value, HostError> {
    let file = arguments["file"].as_str().unwrap_or("SKILL.md");
    let relative = inside(file).ok_or_else(|| {
        HostError::Invalid(format!(
            "`{file}` is not a file of skill `{}` (give a path relative to the skill)",
            skill.name
        ))
    })?;
    if relative.as_os_str() == "SKILL.md" {
        let text = std::fs::read_to_string(skill.dir.join("SKILL.md"))
            .map_err(|e| HostError::Failed(format!("skill `{}`: {e}", skill.name)))?;
        let body = crate::skill::skill_md::load(&skill.name, &text)
            .map(|s| s.body)
            .unwrap_or(text);
        return Ok(json!({ "name": skill.name, "file": "SKILL.md", "content": cut(body) }));
    }
    let top = relative
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    if !matches!(top.as_deref(), Some("references" | "assets")) {
        return Err(HostError::Invalid(format!(
            "skill `{}` shares SKILL.md and files under references/ and assets/, not `{file}`",
            skill.name
        )));
    }
    let mut bytes = Vec::new();
    let read = std::fs::File::open(skill.dir.join(&relative)).and_then(|f| {
        use std::io::Read;
        f.take(MAX_LOAD_BYTES as u64 + 1).read_to_end(&mut bytes)
    });
    read.map_err(|e| {
        HostError::Invalid(format!(
            "skill `{}` has no readable file `{file}`: {e}",
            skill.name
        ))
    })?;
    if bytes.len() > MAX_LOAD_BYTES {
        // Only the start of a long file is read, and shown.
        bytes.truncate(MAX_LOAD_BYTES);
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        text.push_str("\n[... cut: the file is longer]");
        return Ok(json!({ "name": skill.name, "file": file, "content": text }));
    }
    let content = String::from_utf8(bytes).map_err(|_| {
        HostError::Invalid(format!("`{file}` of skill `{}` is not text", skill.name))
    })?;
    Ok(json!({ "name": skill.name, "file": file, "content": content }))
}

fn cut(mut text: String) -> String {
    if text.len() > MAX_LOAD_BYTES {
        let end = crate::util::head(&text, MAX_LOAD_BYTES).len();
        text.truncate(end);
        text.push_str("\n[... cut: the file is longer]");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_the_body_and_references_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("references")).unwrap();
        std::fs::write(
            dir.path().join("SKILL.md"),
            "---\nname: demo\ndescription: A demo.\n---\n# Demo\nDo it well.\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("references/a.md"), "Details.").unwrap();
        std::fs::write(dir.path().join("weir-skill.toml"), "secret").unwrap();
        let skill = SkillDoc {
            name: "demo".into(),
            description: "A demo.".into(),
            dir: dir.path().to_path_buf(),
            tools: vec![],
            commands: vec![],
            policy: None,
        };
        let body = load(&skill, &json!({ "name": "demo" })).unwrap();
        assert_eq!(body["content"], "# Demo\nDo it well.");
        let reference = load(
            &skill,
            &json!({ "name": "demo", "file": "references/a.md" }),
        )
        .unwrap();
        assert_eq!(reference["content"], "Details.");
        for bad in [
            "weir-skill.toml",
            "../x",
            "/etc/passwd",
            "references/../weir-skill.toml",
        ] {
            assert!(
                load(&skill, &json!({ "name": "demo", "file": bad })).is_err(),
                "{bad}"
            );
        }
        assert!(prompt_block([&skill].into_iter()).contains("- demo: A demo."));
    }
}
