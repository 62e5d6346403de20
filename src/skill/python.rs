//! Python skills: a module of `@action` and `@tool` functions, built with
//! the Python guest SDK into a component by componentize-py.
//!
//! The SDK and the WIT contract are compiled into weir, so a build needs
//! only componentize-py (pinned; installed into weir's tools cache, never
//! into the user's Python).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The componentize-py release weir's SDK is built and tested with.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// The WIT contract and the SDK, as weir was built with them.
const WIT: [(&str, &str); 2] = [
    ("agent.wit", include_str!("../../wit/agent.wit")),
    ("model.wit", include_str!("../../wit/model.wit")),
];
const SDK: [(&str, &str); 2] = [
    (
        "__init__.py",
        include_str!("../../sdk/python/weir_sdk/__init__.py"),
    ),
    (
        "_schema.py",
        include_str!("../../sdk/python/weir_sdk/_schema.py"),
    ),
];

/// The module a Python skill named `name` keeps its actions and tools in:
/// `NAME.py`, dashes as underscores.
pub fn module_name(skill: &str) -> String {
    skill.replace('-', "_")
}

/// Whether `dir` holds a Python skill named `skill` (its module, and no
/// Cargo.toml).
pub fn is_python_skill(dir: &Path, skill: &str) -> bool {
    !dir.join("Cargo.toml").exists() && dir.join(format!("{}.py", module_name(skill))).is_file()
}

/// The starting module of a new Python skill: one action and one tool.
pub fn scaffold_module(skill: &str) -> String {
    format!(
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
    )
}

/// Where weir's tools live: `$WEIR_TOOLS_DIR`, else the user's cache dir +
/// `weir/tools`.
fn tools_dir() -> Option<PathBuf> {
    match std::env::var_os("WEIR_TOOLS_DIR") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => dirs::cache_dir().map(|d| d.join("weir").join("tools")),
    }
}

/// The componentize-py to build with: `$WEIR_COMPONENTIZE_PY`, else the
/// pinned one in weir's tools cache; if neither is there, an error that
/// says how to install it.
fn componentize_py() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("WEIR_COMPONENTIZE_PY") {
        return Ok(PathBuf::from(path));
    }
    let venv = tools_dir()
        .ok_or_else(|| anyhow::anyhow!("no cache directory: set WEIR_TOOLS_DIR"))?
        .join(format!("componentize-py-{COMPONENTIZE_PY_VERSION}"));
    let binary = venv.join("bin").join("componentize-py");
    anyhow::ensure!(
        venv.join(".complete").is_file() && binary.is_file(),
        "building a Python skill needs componentize-py {v}, which is not installed; install it into \
         weir's tools cache with:\n  python3 -m venv {venv} && {venv}/bin/pip install componentize-py=={v} \
         && touch {venv}/.complete\n(weir's `scripts/python-tools` does the same; or point \
         WEIR_COMPONENTIZE_PY at a componentize-py {v})",
        v = COMPONENTIZE_PY_VERSION,
        venv = venv.display(),
    );
    Ok(binary)
}

/// Builds the Python skill `skill` in `dir` into a component under
/// `target_dir`; returns the component's path.
pub fn build(dir: &Path, skill: &str, target_dir: &Path) -> anyhow::Result<PathBuf> {
    let componentize = componentize_py()?;
    let module = module_name(skill);
    // The contract, the SDK and an entry module that imports the skill
    // (registering its actions and tools) and the SDK's exports.
    let stage = tempfile::tempdir()?;
    let wit = stage.path().join("wit");
    let sdk = stage.path().join("sdk").join("weir_sdk");
    std::fs::create_dir_all(&wit)?;
    std::fs::create_dir_all(&sdk)?;
    for (file, text) in WIT {
        std::fs::write(wit.join(file), text)?;
    }
    for (file, text) in SDK {
        std::fs::write(sdk.join(file), text)?;
    }
    std::fs::write(
        stage.path().join("weir_app.py"),
        format!(
            "import {module}  # registers its actions and tools\n\
             from weir_sdk import Handler, Reconciler, ToolProvider  # the exports\n"
        ),
    )?;
    let out_dir = target_dir.join("wasm32-wasip2").join("python");
    std::fs::create_dir_all(&out_dir)?;
    let out = out_dir.join(format!("{module}.wasm"));
    let status = Command::new(&componentize)
        .arg("-d")
        .arg(&wit)
        .args(["-w", "skill", "componentize", "weir_app", "-p"])
        .arg(stage.path())
        .arg("-p")
        .arg(stage.path().join("sdk"))
        .arg("-p")
        .arg(dir)
        .arg("-o")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", componentize.display()))?;
    anyhow::ensure!(
        status.success(),
        "componentize-py failed to build {} (its error is above: a Python error in {module}.py, or \
         a tool whose type hints have no JSON Schema)",
        dir.display()
    );
    Ok(out)
}
