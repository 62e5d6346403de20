//! Stages the WASI 0.2 WIT that Python and JavaScript skills are built
//! against (their worlds import wasi:http's outgoing handler, and
//! JavaScript's wasi:random) from the wasmtime-wasi-http crate weir links,
//! so that a guest's contract is exactly what this host serves.
//! `src/skill/toolchain.rs` embeds them from `$OUT_DIR/wasi-wit`.

use std::path::PathBuf;

/// The WIT packages wasi:http needs, as wasmtime-wasi-http ships them.
const PACKAGES: [&str; 7] = [
    "http",
    "io",
    "clocks",
    "random",
    "cli",
    "filesystem",
    "sockets",
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=Cargo.lock");
    let deps = wasi_http_wit().join("deps");
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("wasi-wit");
    std::fs::create_dir_all(&out).expect("create $OUT_DIR/wasi-wit");
    for package in PACKAGES {
        let from = deps.join(format!("{package}.wit"));
        std::fs::copy(&from, out.join(format!("{package}.wit")))
            .unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
}

/// The `wit` directory of the wasmtime-wasi-http package this build uses:
/// its version from Cargo.lock, its source where cargo unpacked it from
/// crates.io (`$CARGO_HOME/registry/src/*/wasmtime-wasi-http-VERSION`), or
/// a `cargo vendor` directory beside the manifest (`vendor/`).
fn wasi_http_wit() -> PathBuf {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let lock = std::fs::read_to_string(manifest_dir.join("Cargo.lock")).expect("read Cargo.lock");
    let version = lock
        .split("[[package]]")
        .find(|entry| entry.contains("name = \"wasmtime-wasi-http\""))
        .and_then(|entry| {
            let line = entry.lines().find(|l| l.starts_with("version = "))?;
            Some(
                line.trim_start_matches("version = ")
                    .trim_matches('"')
                    .to_string(),
            )
        })
        .expect("Cargo.lock names wasmtime-wasi-http's version");
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .expect("CARGO_HOME or HOME");
    let registry = cargo_home.join("registry").join("src");
    let package = format!("wasmtime-wasi-http-{version}");
    let vendored = ["wasmtime-wasi-http", package.as_str()]
        .map(|name| manifest_dir.join("vendor").join(name).join("wit"));
    std::fs::read_dir(&registry)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|index| index.path().join(&package).join("wit"))
        .chain(vendored)
        .find(|wit| wit.is_dir())
        .unwrap_or_else(|| {
            panic!(
                "no {package} under {} or {}/vendor",
                registry.display(),
                manifest_dir.display()
            )
        })
}
