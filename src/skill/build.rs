//! Making skills: `new` scaffolds a skill (a Rust crate, a Python module or a
//! JavaScript module), `build` compiles it to a wasm32-wasip2 component
//! (cargo, componentize-py: see `python`, or componentize-qjs: see `js`) and
//! lays out the package (SKILL.md, references,
//! assets, components, and a `weir-skill.toml` recording each component's
//! sha256 and what it carries).

use super::package::{
    MANIFEST_FILE, PackageManifest, PackagedCommand, PackagedComponent, SKILL_MD_FILE,
};
use crate::sandbox::Sandbox;
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The language a skill's actions and tools are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// A crate built with cargo for wasm32-wasip2 with the Rust guest SDK.
    Rust,
    /// A module built with componentize-py and the Python guest SDK.
    Python,
    /// A module built with componentize-qjs and the JavaScript guest SDK.
    JavaScript,
}

impl Language {
    /// The language of the skill `name` in `dir`: a crate (`Cargo.toml`),
    /// else a module named after the skill (`NAME.py`, `NAME.js`).
    pub fn of(dir: &Path, name: &str) -> anyhow::Result<Language> {
        let module = super::toolchain::module_name(name);
        if dir.join("Cargo.toml").is_file() {
            Ok(Language::Rust)
        } else if dir.join(format!("{module}.py")).is_file() {
            Ok(Language::Python)
        } else if dir.join(format!("{module}.js")).is_file() {
            Ok(Language::JavaScript)
        } else {
            anyhow::bail!(
                "{} holds no skill named {name}: a Rust skill has a Cargo.toml, a Python one \
                 {module}.py, a JavaScript one {module}.js",
                dir.display()
            )
        }
    }
}

/// Creates a new skill `name` in `parent/name`: a Rust crate using the
/// guest SDK at `sdk` (a path dependency; needed for Rust only), or a
/// Python or JavaScript module.
pub fn new_skill(
    parent: &Path,
    name: &str,
    language: Language,
    sdk: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    let violations = super::skill_md::validate(
        name,
        &format!("---\nname: {name}\ndescription: x\n---\nx\n"),
    )
    .err()
    .unwrap_or_default();
    if let Some(v) = violations.iter().find(|v| v.field == "name") {
        anyhow::bail!("`{name}` cannot be a skill name: it {}", v.message);
    }
    let dir = parent.join(name);
    anyhow::ensure!(!dir.exists(), "{} already exists", dir.display());
    std::fs::create_dir_all(dir.join("references"))?;
    let mut files = match language {
        Language::Rust => {
            let sdk =
                sdk.ok_or_else(|| anyhow::anyhow!("a Rust skill needs the guest SDK's path"))?;
            std::fs::create_dir_all(dir.join("src"))?;
            rust_files(name, sdk)
        }
        Language::Python => super::python::scaffold(name),
        Language::JavaScript => super::js::scaffold(name),
    };
    files.extend([
        (
            SKILL_MD_FILE.to_string(),
            format!(
                "---\nname: {name}\ndescription: Upper-cases text and counts words. Use when text must be shouted or measured.\nlicense: Apache-2.0\n---\n# {name}\n\nThe `shout` action answers `{{\"text\": ...}}` with the text upper-cased; the `count_words`\ntool counts the words of a text.\n\nSee [the style notes](references/style.md).\n"
            ),
        ),
        (
            "references/style.md".to_string(),
            "Keep answers short.\n".to_string(),
        ),
        (
            MANIFEST_FILE.to_string(),
            format!(
                "[skill]\nname = \"{name}\"\nversion = \"0.1.0\"\n\n# What the skill asks to be granted: models, tools, http, dirs, env.\n[permissions]\n"
            ),
        ),
    ]);
    for (file, text) in files {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, text)?;
    }
    Ok(dir)
}

/// A new Rust skill's crate: its manifest and its source.
fn rust_files(name: &str, sdk: &Path) -> Vec<(String, String)> {
    let crate_name = format!("skill-{name}");
    vec![
        (
            "Cargo.toml".to_string(),
            format!(
                r#"[package]
name = "{crate_name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
weir-sdk = {{ path = "{sdk}" }}
serde = {{ version = "1", features = ["derive"] }}

# A skill builds on its own, not as part of an enclosing workspace.
[workspace]

[profile.release]
opt-level = "s"
debug = false
strip = true
"#,
                sdk = sdk.display()
            ),
        ),
        (
            "src/lib.rs".to_string(),
            r##"//! A weir skill: actions (and tools) as plain Rust functions.

use serde::Deserialize;
use weir_sdk::{Event, Result, context, emit_output, json};

#[derive(Deserialize)]
struct Input {
    text: String,
}

/// Answers each input with its text, upper-cased, prefixed by the `prefix` config.
fn shout(event: Event) -> Result<()> {
    let input: Input = event.payload()?;
    let prefix: String = context::config("prefix")?.unwrap_or_default();
    emit_output(&json!({ "text": format!("{prefix}{}", input.text.to_uppercase()) }))?;
    Ok(())
}

#[derive(Deserialize)]
struct CountArgs {
    text: String,
}

/// Counts the words of a text.
fn count_words(args: CountArgs) -> Result<weir_sdk::Value> {
    Ok(json!({ "words": args.text.split_whitespace().count() }))
}

weir_sdk::skill! {
    actions {
        /// Upper-cases the input text.
        "shout" => shout,
    }
    tools {
        /// Counts the words of a text.
        "count_words" (r#"{"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}"#) => count_words,
    }
}
"##
            .to_string(),
        ),
    ]
}

/// Builds the skill crate in `dir` for wasm32-wasip2 and lays out its
/// package in `out` (replaced if it exists). Returns the package manifest.
pub fn build_skill(
    dir: &Path,
    out: &Path,
    target_dir: Option<&Path>,
    sandbox: &std::sync::Arc<Sandbox>,
) -> anyhow::Result<PackageManifest> {
    let mut manifest = PackageManifest::read(dir)?;
    anyhow::ensure!(
        manifest.components.is_empty(),
        "{}: a skill's source manifest lists no components; `weir skill build` adds them",
        dir.join(MANIFEST_FILE).display()
    );
    let name = manifest.skill.name.clone();
    let skill_md = std::fs::read_to_string(dir.join(SKILL_MD_FILE))?;
    if let Err(violations) = super::skill_md::validate(&name, &skill_md) {
        let path = dir.join(SKILL_MD_FILE);
        let lines: Vec<String> = violations.iter().map(|v| v.at(&path).to_string()).collect();
        anyhow::bail!("{}", lines.join("\n"));
    }

    let (wasm_files, command_files) = compile(dir, &name, target_dir)?;

    if out.exists() {
        // Replace only a package we laid out before, never another directory.
        anyhow::ensure!(
            out.join(MANIFEST_FILE).is_file() && !dir.starts_with(out),
            "{} exists and is not a skill package built before: choose another --out",
            out.display()
        );
        std::fs::remove_dir_all(out)?;
    }
    std::fs::create_dir_all(out.join("components"))?;
    std::fs::copy(dir.join(SKILL_MD_FILE), out.join(SKILL_MD_FILE))?;
    for sub in ["references", "assets"] {
        if dir.join(sub).is_dir() {
            copy_tree(&dir.join(sub), &out.join(sub))?;
        }
    }
    for wasm in wasm_files {
        let file_name = wasm
            .file_name()
            .expect("a file")
            .to_string_lossy()
            .into_owned();
        let relative = format!("components/{file_name}");
        let target = out.join(&relative);
        std::fs::copy(&wasm, &target)?;
        let component = sandbox
            .load_component_blocking(&target)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let key = file_name.trim_end_matches(".wasm").replace('_', "-");
        manifest.components.insert(
            key,
            PackagedComponent {
                path: relative,
                sha256: component.digest().to_string(),
                actions: component.actions().iter().map(|a| a.name.clone()).collect(),
                tools: component.tools().iter().map(|t| t.name.clone()).collect(),
            },
        );
    }
    // The crate's binaries are wasi:cli commands models may run.
    for wasm in command_files {
        let name = wasm
            .file_stem()
            .expect("a file")
            .to_string_lossy()
            .into_owned();
        let relative = format!("commands/{name}.wasm");
        std::fs::create_dir_all(out.join("commands"))?;
        std::fs::copy(&wasm, out.join(&relative))?;
        sandbox
            .load_command(&out.join(&relative))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let entry = manifest
            .commands
            .entry(name.clone())
            .or_insert_with(|| PackagedCommand {
                description: format!("Runs `{name}`."),
                path: String::new(),
                sha256: String::new(),
            });
        entry.path = relative.clone();
        entry.sha256 = super::package::sha256_file(&out.join(&relative))?;
    }
    manifest.commands.retain(|_, c| !c.path.is_empty());
    std::fs::write(out.join(MANIFEST_FILE), manifest.to_toml())?;
    Ok(manifest)
}

/// Compiles the skill `name` in `dir` (its language decided by its files):
/// its components, then its commands (a Rust crate's binaries).
fn compile(
    dir: &Path,
    name: &str,
    target_dir: Option<&Path>,
) -> anyhow::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let module_target = || target_dir.map_or_else(|| dir.join("target"), Path::to_path_buf);
    let built = match Language::of(dir, name)? {
        Language::Rust => cargo_build(dir, target_dir)?,
        Language::Python => (
            vec![super::python::build(dir, name, &module_target())?],
            Vec::new(),
        ),
        Language::JavaScript => (
            vec![super::js::build(dir, name, &module_target())?],
            Vec::new(),
        ),
    };
    anyhow::ensure!(
        !built.0.is_empty(),
        "cargo built no cdylib in {} (a skill crate has `crate-type = [\"cdylib\"]`)",
        dir.display()
    );
    Ok(built)
}

/// Builds the module `module` in `dir` (`MODULE.py`, `MODULE.js`, or a
/// crate) to one component file at `out`, without a package or SKILL.md:
/// what an agent manifest's `[components.NAME] path` names. `out` is
/// written whole or not at all.
pub fn build_component(
    dir: &Path,
    module: &str,
    out: &Path,
    target_dir: Option<&Path>,
) -> anyhow::Result<()> {
    let (mut wasm_files, _) = compile(dir, module, target_dir)?;
    anyhow::ensure!(
        wasm_files.len() == 1,
        "{} builds {} components; build it as a skill package (`weir skill build`)",
        dir.display(),
        wasm_files.len()
    );
    let built = wasm_files.remove(0);
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    std::fs::copy(&built, &partial)
        .with_context(|| format!("cannot write {}", Path::new(&partial).display()))?;
    std::fs::rename(&partial, out)?;
    Ok(())
}

/// Runs `cargo build --release --target wasm32-wasip2` in `dir`; returns
/// the `.wasm` files it produced: the library components, then the
/// binaries (commands).
fn cargo_build(
    dir: &Path,
    target_dir: Option<&Path>,
) -> anyhow::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .current_dir(dir)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .arg("--message-format=json-render-diagnostics")
        .stderr(std::process::Stdio::inherit());
    if let Some(target_dir) = target_dir {
        command.arg("--target-dir").arg(target_dir);
    }
    let output = command
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run cargo: {e}"))?;
    anyhow::ensure!(
        output.status.success(),
        "cargo build failed in {} (is the wasm32-wasip2 target installed? `rustup target add wasm32-wasip2`)",
        dir.display()
    );
    let mut wasm = Vec::new();
    let mut commands = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let kind = |wanted: &str| {
            message["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == wanted))
        };
        let local = message["package_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("path+file://"));
        let into = match (local, kind("cdylib"), kind("bin")) {
            (true, true, _) => &mut wasm,
            (true, false, true) => &mut commands,
            _ => continue,
        };
        for file in message["filenames"].as_array().into_iter().flatten() {
            if let Some(file) = file.as_str().filter(|f| f.ends_with(".wasm")) {
                into.push(PathBuf::from(file));
            }
        }
    }
    Ok((wasm, commands))
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
