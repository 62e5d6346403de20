//! Replays the fuzz corpus (`fuzz/corpus/<target>/`) through the same
//! checks the cargo-fuzz targets run (`fuzz/src/checks.rs`), on the stable
//! toolchain: every input the fuzzers kept, and every crash they found,
//! stays a regression test.

#[path = "../../fuzz/src/checks.rs"]
#[allow(dead_code)]
mod checks;

use std::path::Path;

fn replay(target: &str) {
    let check = checks::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, check)| *check)
        .expect("a target");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: an empty corpus", dir.display());
    for file in files {
        let data = std::fs::read(&file).expect("a corpus file");
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(
            outcome.is_ok(),
            "{target}: {} fails its check",
            file.display()
        );
    }
}

#[test]
fn every_target_has_a_corpus_and_a_fuzz_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (name, _) in checks::TARGETS {
        assert!(
            root.join("corpus").join(name).is_dir(),
            "no corpus for {name}"
        );
        assert!(
            root.join("fuzz_targets")
                .join(format!("{name}.rs"))
                .is_file(),
            "no fuzz target for {name}"
        );
    }
}

#[test]
fn agent_manifest() {
    replay("agent_manifest");
}

#[test]
fn skill_md() {
    replay("skill_md");
}

#[test]
fn package_manifest() {
    replay("package_manifest");
}

#[test]
fn archive() {
    replay("archive");
}

#[test]
fn input_line() {
    replay("input_line");
}

#[test]
fn journal() {
    replay("journal");
}

#[test]
fn oci() {
    replay("oci");
}

#[test]
fn openai_reply() {
    replay("openai_reply");
}

#[test]
fn anthropic_reply() {
    replay("anthropic_reply");
}
