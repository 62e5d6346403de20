//! JavaScript skills: a module of `action(...)` and `tool(...)`
//! registrations, built with the JavaScript guest SDK into a component by
//! componentize-qjs (QuickJS, its interpreter state snapshotted at build
//! time).
//!
//! componentize-qjs rather than componentize-js (StarlingMonkey): components
//! of 1.6 MB built in about 3 s instead of 12 MB in 13 s, and a much cheaper
//! fresh instance per task (BENCHMARKS.md, "Python and JavaScript guests");
//! StarlingMonkey's web APIs (fetch, streams) are what it would buy. Built
//! `--sync`: weir's host runs the synchronous component ABI.

use super::toolchain::{self, Pinned, Stage, module_name};
use std::path::{Path, PathBuf};
use std::process::Command;

/// componentize-qjs, pinned: the release weir's SDK is built and tested with.
pub(crate) const COMPONENTIZE_QJS: Pinned = Pinned {
    name: "componentize-qjs",
    version: "0.4.5",
    env: "WEIR_COMPONENTIZE_QJS",
    program: "node_modules/.bin/componentize-qjs",
    install: "npm install --prefix {dir} --no-save componentize-qjs@0.4.5",
    script: "scripts/js-tools",
};

/// The SDK's types, for editors (`index.d.ts`).
const TYPES: &str = include_str!("../../sdk/js/index.d.ts");

/// The SDK (an npm-style package, `weir-sdk`), as weir was built with it.
const SDK: [(&str, &str); 3] = [
    ("package.json", include_str!("../../sdk/js/package.json")),
    ("index.js", include_str!("../../sdk/js/index.js")),
    ("index.d.ts", TYPES),
];

/// The SDK's world: `skill`, wasi:random (for `Math.random`) and
/// wasi:cli/environment (for `process.env`).
const WORLD: (&str, &str) = (
    "skill-js.wit",
    include_str!("../../sdk/js/wit/skill-js.wit"),
);

/// The files of a new JavaScript skill: its module (one action and one
/// tool), and the SDK's types with a `jsconfig.json` that has editors
/// check the module against them.
pub fn scaffold(skill: &str) -> Vec<(String, String)> {
    let module = format!(
        r#"// The {skill} skill: actions and tools as JavaScript functions (weir-sdk).

import {{ action, tool }} from "weir-sdk";

action(
  {{ description: "Answers each input with its text, upper-cased, prefixed by the `prefix` config." }},
  function shout(event, ctx) {{
    const text = event.payload.text;
    ctx.sendOutput({{ text: ctx.config("prefix", "") + text.toUpperCase() }});
  }},
);

tool(
  {{
    description: "Counts the words of a text.",
    parameters: {{ text: {{ type: "string", description: "The text to count." }} }},
  }},
  function count_words({{ text }}) {{
    return {{ words: text.split(/\s+/).filter((w) => w).length }};
  }},
);
"#
    );
    let jsconfig = r#"{
  "compilerOptions": {
    "checkJs": true,
    "module": "es2022",
    "target": "es2022",
    "paths": { "weir-sdk": ["./types/weir-sdk.d.ts"] }
  }
}
"#;
    vec![
        (format!("{}.js", module_name(skill)), module),
        ("jsconfig.json".to_string(), jsconfig.to_string()),
        ("types/weir-sdk.d.ts".to_string(), TYPES.to_string()),
    ]
}

/// Builds the JavaScript skill `skill` in `dir` into a component under
/// `target_dir`; returns the component's path.
pub fn build(dir: &Path, skill: &str, target_dir: &Path) -> anyhow::Result<PathBuf> {
    let componentize = COMPONENTIZE_QJS.locate()?;
    let module = module_name(skill);
    // The module root componentize-qjs resolves imports in: the skill's
    // sources, the SDK as the package `weir-sdk`, and an entry module that
    // imports the skill (registering its actions and tools) and re-exports
    // the SDK's exports.
    let stage = Stage::new(WORLD)?;
    for (file, text) in SDK {
        stage.write(&Path::new("node_modules/weir-sdk").join(file), text)?;
    }
    copy_sources(dir, &stage.path().join("skill"))?;
    stage.write(
        Path::new("weir_app.js"),
        &format!(
            "import \"./skill/{module}.js\"; // registers its actions and tools\n\
             export {{ handler, toolProvider, reconciler }} from \"weir-sdk\";\n"
        ),
    )?;
    let out = toolchain::output(target_dir, "js", &module)?;
    let mut command = Command::new(&componentize);
    command
        .arg("--wit")
        .arg(stage.path().join("wit"))
        .args(["--world", "skill-js", "--sync", "--js"])
        .arg(stage.path().join("weir_app.js"))
        .arg("--module-root")
        .arg(stage.path())
        .arg("-o")
        .arg(&out);
    toolchain::run(command, || {
        format!(
            "componentize-qjs failed to build {} (its error is above: a JavaScript error in \
             {module}.js or a module it imports, which run once at build time)",
            dir.display()
        )
    })?;
    Ok(out)
}

/// Copies the skill's JavaScript and JSON files under `from` to `to`,
/// leaving out build output, installed packages and hidden directories.
fn copy_sources(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if !(name.starts_with('.') || name == "target" || name == "node_modules") {
                copy_sources(&entry.path(), &to.join(&*name))?;
            }
        } else if kind.is_file() && [".js", ".mjs", ".json"].iter().any(|e| name.ends_with(e)) {
            std::fs::copy(entry.path(), to.join(&*name))?;
        }
    }
    Ok(())
}
