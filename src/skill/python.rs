//! Python skills: a module of `@action` and `@tool` functions, built with
//! the Python guest SDK into a component by componentize-py.
//!
//! The SDK and the WIT contract are compiled into weir, so a build needs
//! only componentize-py (pinned; installed into weir's tools cache, never
//! into the user's Python).

use super::toolchain::{self, Pinned, Stage, module_name};
use std::path::{Path, PathBuf};
use std::process::Command;

/// componentize-py, pinned: the release weir's SDK is built and tested with.
pub(crate) const COMPONENTIZE_PY: Pinned = Pinned {
    name: "componentize-py",
    version: "0.25.1",
    env: "WEIR_COMPONENTIZE_PY",
    program: "bin/componentize-py",
    install: "python3 -m venv {dir} && {dir}/bin/pip install componentize-py==0.25.1",
    script: "scripts/python-tools",
};

/// The SDK, as weir was built with it.
const SDK: [(&str, &str); 3] = [
    (
        "__init__.py",
        include_str!("../../sdk/python/weir_sdk/__init__.py"),
    ),
    (
        "_schema.py",
        include_str!("../../sdk/python/weir_sdk/_schema.py"),
    ),
    ("http.py", include_str!("../../sdk/python/weir_sdk/http.py")),
];

/// The SDK's world: `skill` and wasi:http's outgoing handler.
const WORLD: (&str, &str) = (
    "skill-py.wit",
    include_str!("../../sdk/python/wit/skill-py.wit"),
);

/// The files of a new Python skill: its module, with one action and one tool.
pub fn scaffold(skill: &str) -> Vec<(String, String)> {
    let module = format!(
        r#""""The {skill} skill: actions and tools as Python functions (weir_sdk)."""

from weir_sdk import Event, RunnerContext, action, tool


@action
def shout(event: Event, ctx: RunnerContext) -> None:
    """Answers each input with its text, upper-cased, prefixed by the `prefix` config."""
    text = event.payload["text"]
    ctx.send_output({{"text": ctx.config("prefix", "") + text.upper()}})


@tool
def count_words(text: str) -> dict:
    """Counts the words of a text.

    Args:
        text: The text to count.
    """
    return {{"words": len(text.split())}}
"#
    );
    vec![(format!("{}.py", module_name(skill)), module)]
}

/// Builds the Python skill `skill` in `dir` into a component under
/// `target_dir`; returns the component's path.
pub fn build(dir: &Path, skill: &str, target_dir: &Path) -> anyhow::Result<PathBuf> {
    let componentize = COMPONENTIZE_PY.locate()?;
    let module = module_name(skill);
    // The contract, the SDK and an entry module that imports the skill
    // (registering its actions and tools) and the SDK's exports.
    let stage = Stage::new(WORLD)?;
    for (file, text) in SDK {
        stage.write(&Path::new("sdk/weir_sdk").join(file), text)?;
    }
    stage.write(
        Path::new("weir_app.py"),
        &format!(
            "import {module}  # registers its actions and tools\n\
             from weir_sdk import Handler, Reconciler, ToolProvider  # the exports\n"
        ),
    )?;
    let out = toolchain::output(target_dir, "python", &module)?;
    let mut command = Command::new(&componentize);
    command
        .arg("-d")
        .arg(stage.path().join("wit"))
        .args(["-w", "skill-py", "componentize", "weir_app", "-p"])
        .arg(stage.path())
        .arg("-p")
        .arg(stage.path().join("sdk"))
        .arg("-p")
        .arg(dir)
        .arg("-o")
        .arg(&out);
    toolchain::run(command, || {
        format!(
            "componentize-py failed to build {} (its error is above: a Python error in {module}.py, or \
             a tool whose type hints have no JSON Schema)",
            dir.display()
        )
    })?;
    Ok(out)
}
