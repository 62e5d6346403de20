//! The library's modules form layers that import in one direction: a module
//! may use only modules listed before it in [`LAYERS`], so no change can
//! bring back a cycle (a journal that needs the host, a host that needs the
//! tool runner). `cargo test --test it layers` runs this check alone.
//!
//! It reads `src/` as text: every `crate::` path outside comments and
//! `#[cfg(test)]` modules counts, including `use crate::{a, b::c}` groups.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every top-level module of the library, lowest layer first. A new module
/// must be placed here.
const LAYERS: &[&str] = &[
    "util",      // small helpers
    "limits",    // limit settings and checks
    "event",     // events and built-in event types
    "observe",   // the event log, traces and metrics
    "memory",    // short-term memory objects
    "agent",     // the user's definition (manifest, builder, grants)
    "journal",   // durable execution's on-disk log
    "resources", // model providers
    "host",      // capabilities offered to guests, the host-call path
    "builtin",   // built-in actions (run on the host-call path)
    "sandbox",   // wasmtime engine, components, instances
    "skill",     // skill packaging: SKILL.md, packages, store, OCI
    "tools",     // the agent's tools and skills as models see them
    "plan",      // the planner
    "runtime",   // the scheduler and agent runs
    "serve",     // the HTTP service over runtimes
    "fuzzing",   // entry points for the fuzz targets
];

/// Modules held to fewer imports than their place allows: skill packaging
/// knows agents and builds components, nothing of the runtime.
const NARROWER: &[(&str, &[&str])] = &[("skill", &["util", "limits", "event", "agent", "sandbox"])];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's code without comments and without its unit tests.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.trim_start().starts_with("//") {
            true => "",
            false => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first segment of every path that follows `crate::`.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `weir_crate::`, say
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c, d::{e, f}}`: the first segment of each item.
            let mut depth = 0;
            let mut items = vec![String::new()];
            for c in group.chars() {
                match c {
                    '}' if depth == 0 => break,
                    ',' if depth == 0 => items.push(String::new()),
                    _ => {
                        depth += (c == '{') as i32 - (c == '}') as i32;
                        items.last_mut().unwrap().push(c);
                    }
                }
            }
            found.extend(items.iter().map(|item| first_word(item)));
        } else {
            found.insert(first_word(rest));
        }
    }
    found.remove("");
    found
}

fn first_word(text: &str) -> String {
    text.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The library's top-level module that `path` belongs to, if any.
fn module_of(path: &Path) -> Option<String> {
    let relative = path.strip_prefix(src()).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    // The crate roots, and the binary's own modules (they use `weir::`).
    (!matches!(name, "lib" | "main" | "cli")).then(|| name.to_string())
}

#[test]
fn modules_import_only_lower_layers() {
    let rank: BTreeMap<&str, usize> = LAYERS.iter().enumerate().map(|(i, m)| (*m, i)).collect();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut broken = Vec::new();
    let mut seen = BTreeSet::new();
    for file in &files {
        let Some(module) = module_of(file) else {
            continue;
        };
        seen.insert(module.clone());
        let Some(&own) = rank.get(module.as_str()) else {
            broken.push(format!(
                "{}: module `{module}` is not in LAYERS",
                file.display()
            ));
            continue;
        };
        let narrower = NARROWER
            .iter()
            .find(|(m, _)| *m == module)
            .map(|(_, allowed)| *allowed);
        let text = std::fs::read_to_string(file).unwrap();
        for used in crate_paths(&code(&text)) {
            let Some(&theirs) = rank.get(used.as_str()) else {
                continue; // a root re-export such as `crate::Agent`
            };
            if used == module {
                continue;
            }
            let allowed = match narrower {
                Some(allowed) => allowed.contains(&used.as_str()),
                None => theirs < own,
            };
            if !allowed {
                broken.push(format!(
                    "{}: `{module}` uses `crate::{used}`, which sits {} it",
                    file.display(),
                    if theirs > own {
                        "above"
                    } else {
                        "outside what is allowed for"
                    }
                ));
            }
        }
    }
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
    let missing: Vec<&&str> = LAYERS.iter().filter(|m| !seen.contains(**m)).collect();
    assert!(
        missing.is_empty(),
        "LAYERS lists modules that do not exist: {missing:?}"
    );
}

#[test]
fn the_path_reader_sees_groups_and_skips_comments() {
    let found = crate_paths(&code(
        "use crate::{host::{Task, Op}, limits, util::head};\n\
         // use crate::runtime::X;\n\
         let x = crate::journal::Journal::open();\n\
         use weir_crate::nothing;\n\
         #[cfg(test)]\nmod tests {\n use crate::plan::X;\n}\n",
    ));
    let found: Vec<&str> = found.iter().map(String::as_str).collect();
    assert_eq!(found, ["host", "journal", "limits", "util"]);
}
