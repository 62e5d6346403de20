//! What the Python and JavaScript builds share: the pinned toolchain in
//! weir's tools cache (never the user's system), the WIT contract and guest
//! SDK compiled into weir, and the staging directory a build reads them from.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The WIT contract, as weir was built with it.
pub(crate) const WIT: [(&str, &str); 2] = [
    ("agent.wit", include_str!("../../wit/agent.wit")),
    ("model.wit", include_str!("../../wit/model.wit")),
];

/// The WASI 0.2 packages the Python and JavaScript worlds import from
/// (wasi:http and what it uses, wasi:random), as the wasmtime-wasi-http
/// crate weir links ships them (staged by build.rs), for `wit/deps/`.
pub(crate) const WASI_WIT: [(&str, &str); 7] = [
    (
        "http.wit",
        include_str!(concat!(env!("OUT_DIR"), "/wasi-wit/http.wit")),
    ),
    (
        "io.wit",
        include_str!(concat!(env!("OUT_DIR"), "/wasi-wit/io.wit")),
    ),
    (
        "clocks.wit",
        include_str!(concat!(env!("OUT_DIR"), "/wasi-wit/clocks.wit")),
    ),
    (
        "random.wit",
        include_str!(concat!(env!("OUT_DIR"), "/wasi-wit/random.wit")),
    ),
    (
        "cli.wit",
        include_str!(concat!(env!("OUT_DIR"), "/wasi-wit/cli.wit")),
    ),
    (
        "filesystem.wit",
        include_str!(concat!(env!("OUT_DIR"), "/wasi-wit/filesystem.wit")),
    ),
    (
        "sockets.wit",
        include_str!(concat!(env!("OUT_DIR"), "/wasi-wit/sockets.wit")),
    ),
];

/// The module a Python or JavaScript skill named `skill` keeps its actions
/// and tools in, without its extension: dashes as underscores.
pub fn module_name(skill: &str) -> String {
    skill.replace('-', "_")
}

/// Where weir's tools live: `$WEIR_TOOLS_DIR`, else the user's cache dir +
/// `weir/tools`.
fn tools_dir() -> Option<PathBuf> {
    match std::env::var_os("WEIR_TOOLS_DIR") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => dirs::cache_dir().map(|d| d.join("weir").join("tools")),
    }
}

/// A guest toolchain weir builds with: one pinned release, installed into
/// `<tools dir>/<name>-<version>` and marked complete there by `.complete`.
pub(crate) struct Pinned {
    /// The tool's name, as its package registry spells it.
    pub name: &'static str,
    /// The release weir's SDK is built and tested with.
    pub version: &'static str,
    /// A variable naming another build of the same release to use instead.
    pub env: &'static str,
    /// The tool's program, relative to its install directory.
    pub program: &'static str,
    /// The shell commands that install it into a directory (`{dir}`).
    pub install: &'static str,
    /// weir's script that runs those commands.
    pub script: &'static str,
}

impl Pinned {
    /// The program to build with: `$env`, else the pinned one in weir's
    /// tools cache; if neither is there, an error that says how to install it.
    pub fn locate(&self) -> anyhow::Result<PathBuf> {
        if let Some(path) = std::env::var_os(self.env).filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(path));
        }
        let dir = tools_dir()
            .ok_or_else(|| anyhow::anyhow!("no cache directory: set WEIR_TOOLS_DIR"))?
            .join(format!("{}-{}", self.name, self.version));
        let program = dir.join(self.program);
        anyhow::ensure!(
            dir.join(".complete").is_file() && program.is_file(),
            "building this skill needs {name} {version}, which is not installed; install it into \
             weir's tools cache with:\n  {install} && touch {dir}/.complete\n(weir's `{script}` \
             does the same; or point {env} at a {name} {version})",
            name = self.name,
            version = self.version,
            install = self.install.replace("{dir}", &dir.display().to_string()),
            dir = dir.display(),
            script = self.script,
            env = self.env,
        );
        Ok(program)
    }
}

/// A build's working directory: the WIT contract under `wit/` and whatever
/// else the build writes; removed when dropped.
pub(crate) struct Stage {
    dir: tempfile::TempDir,
}

impl Stage {
    /// A new stage holding the WIT contract, the SDK's `world` (its file
    /// name and text) and the WASI packages it imports from.
    pub fn new(world: (&str, &str)) -> anyhow::Result<Stage> {
        let stage = Stage {
            dir: tempfile::tempdir()?,
        };
        for (file, text) in WIT.into_iter().chain([world]) {
            stage.write(&Path::new("wit").join(file), text)?;
        }
        for (file, text) in WASI_WIT {
            stage.write(&Path::new("wit/deps").join(file), text)?;
        }
        Ok(stage)
    }

    /// The stage's root.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` to `relative` under the stage, making its directories.
    pub fn write(&self, relative: &Path, text: &str) -> anyhow::Result<()> {
        let path = self.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, text)?;
        Ok(())
    }
}

/// Runs a toolchain's build `command`, its output on the user's terminal;
/// `failed` says what a failure means.
pub(crate) fn run(mut command: Command, failed: impl FnOnce() -> String) -> anyhow::Result<()> {
    let program = command.get_program().to_owned();
    let status = command
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", Path::new(&program).display()))?;
    anyhow::ensure!(status.success(), "{}", failed());
    Ok(())
}

/// Where a build of `dir` writes its component `module.wasm`, for `lang`.
pub(crate) fn output(target_dir: &Path, lang: &str, module: &str) -> anyhow::Result<PathBuf> {
    let out_dir = target_dir.join("wasm32-wasip2").join(lang);
    std::fs::create_dir_all(&out_dir)?;
    Ok(out_dir.join(format!("{module}.wasm")))
}
