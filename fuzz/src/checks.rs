//! What must hold for every parser of outside input, one function per fuzz
//! target. The fuzz targets (`fuzz/fuzz_targets/*.rs`, libFuzzer) and the
//! corpus replay (`tests/it/fuzz_corpus.rs`, stable `cargo test`) both call
//! these, so a corpus file checks exactly what the fuzzer checked.
//!
//! Each check panics on a violated property; returning means the input
//! passed. Parsers may refuse anything: only panics, hangs, unbounded
//! allocation (libFuzzer's limits) and broken properties are failures.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A check: panics if `data` breaks what must hold.
pub type Check = fn(&[u8]);

/// Every target, by name: the corpus folder `fuzz/corpus/<name>/` and the
/// fuzz target `fuzz/fuzz_targets/<name>.rs`.
pub const TARGETS: &[(&str, Check)] = &[
    ("agent_manifest", agent_manifest),
    ("skill_md", skill_md),
    ("package_manifest", package_manifest),
    ("archive", archive),
    ("input_line", input_line),
    ("journal", journal),
    ("oci", oci),
    ("openai_reply", openai_reply),
    ("anthropic_reply", anthropic_reply),
];

/// Text parsers take UTF-8; other bytes are read lossily, so the fuzzer's
/// mutations still reach the parser.
fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// Scratch space on tmpfs when there is one (the journal and archive
/// checks write files: fsync there costs nothing).
fn scratch() -> tempfile::TempDir {
    static SHM: OnceLock<bool> = OnceLock::new();
    let shm = *SHM.get_or_init(|| Path::new("/dev/shm").is_dir());
    if shm && let Ok(dir) = tempfile::tempdir_in("/dev/shm") {
        return dir;
    }
    tempfile::tempdir().expect("a temporary directory")
}

/// An agent manifest (`agent.toml`): parsing is deterministic.
pub fn agent_manifest(data: &[u8]) {
    let text = text(data);
    let path = PathBuf::from("/fuzz/agent.toml");
    let first = weir::Agent::from_manifest_str(&path, &text);
    let again = weir::Agent::from_manifest_str(&path, &text);
    assert_eq!(
        format!("{first:?}"),
        format!("{again:?}"),
        "not deterministic"
    );
    if let Ok(agent) = first {
        assert_eq!(agent.manifest.as_deref(), Some(path.as_path()));
    }
}

/// A `SKILL.md`: a file that validates strictly also loads leniently, to
/// the same skill, without warnings; a loaded skill has a description.
pub fn skill_md(data: &[u8]) {
    use weir::skill::skill_md;
    let text = text(data);
    let dir = "fuzz-skill";
    let strict = skill_md::validate(dir, &text);
    let lenient = skill_md::load_with_warnings(dir, &text);
    if let Ok(skill) = &strict {
        let (loaded, warnings) = lenient
            .as_ref()
            .expect("a valid SKILL.md must load leniently");
        assert_eq!(loaded, skill, "strict and lenient reads differ");
        assert!(
            warnings.is_empty(),
            "warnings for a valid file: {warnings:?}"
        );
        assert_eq!(skill.name, dir, "a valid skill is named after its folder");
    }
    if let Ok((skill, _)) = &lenient {
        assert!(
            !skill.description.trim().is_empty(),
            "an empty description loaded"
        );
    }
}

/// A package manifest (`weir-skill.toml`): what parses re-serialises, and
/// that parses back to the same manifest.
pub fn package_manifest(data: &[u8]) {
    use weir::skill::package::PackageManifest;
    let text = text(data);
    let path = Path::new("weir-skill.toml");
    if let Ok(manifest) = PackageManifest::parse(path, &text) {
        let toml = manifest.to_toml();
        let back = PackageManifest::parse(path, &toml)
            .unwrap_or_else(|e| panic!("its own TOML does not parse: {e}\n{toml}"));
        assert_eq!(back, manifest, "the TOML round trip changed it:\n{toml}");
    }
}

/// A skill package archive (`.tar.gz`), unpacked with small limits: never
/// writes outside its folder, never makes a link or special file, never
/// more than the limits allow. Input that is not gzip is taken as the tar
/// inside it (stored, uncompressed), so the fuzzer mutates tar headers.
pub fn archive(data: &[u8]) {
    use weir::skill::archive::{ArchiveLimits, unpack};
    let limits = ArchiveLimits {
        max_file_bytes: 64 << 10,
        max_total_bytes: 256 << 10,
        max_entries: 64,
        max_header_bytes: 4 << 10,
    };
    let scratch = scratch();
    let file = scratch.path().join("package.tar.gz");
    let gz = if data.starts_with(&[0x1f, 0x8b]) {
        data.to_vec()
    } else {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
        encoder.write_all(data).expect("gzip in memory");
        encoder.finish().expect("gzip in memory")
    };
    std::fs::write(&file, gz).expect("writing the archive");
    let into = scratch.path().join("out");
    std::fs::create_dir(&into).expect("the target folder");
    let _ = unpack(&file, &into, limits);

    // Nothing but the archive and its folder next to it.
    let mut beside: Vec<_> = std::fs::read_dir(scratch.path())
        .expect("scratch")
        .map(|e| e.expect("entry").file_name())
        .collect();
    beside.sort();
    assert_eq!(
        beside,
        ["out", "package.tar.gz"],
        "wrote outside its folder"
    );
    // Only files and folders inside, within the limits.
    let (mut files, mut bytes) = (0usize, 0u64);
    let mut stack = vec![into];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("an unpacked folder") {
            let entry = entry.expect("entry");
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                stack.push(entry.path());
            } else {
                assert!(kind.is_file(), "not a file or folder: {:?}", entry.path());
                let len = entry.metadata().expect("metadata").len();
                assert!(len <= limits.max_file_bytes, "a file over the limit");
                files += 1;
                bytes += len;
            }
        }
    }
    assert!(files <= limits.max_entries, "more entries than the limit");
    assert!(bytes <= limits.max_total_bytes, "more bytes than the limit");
}

/// One JSON line of input: an event it reads writes back as a line that
/// reads back to the same event.
pub fn input_line(data: &[u8]) {
    let text = text(data);
    let Ok(Some(event)) = weir::event::parse_input_line(&text, "fuzz", 1) else {
        return;
    };
    assert!(
        weir::event::types::input_problem(&event.event_type).is_none(),
        "an input event of a type inputs may not have: {}",
        event.event_type
    );
    let line = event.to_json_line();
    let back = weir::event::parse_input_line(&line, "fuzz", 1)
        .unwrap_or_else(|e| panic!("its own line does not parse: {e}\n{line}"))
        .expect("its own line is not blank");
    assert_eq!(
        (&back.id, &back.event_type, &back.key, &back.attributes),
        (&event.id, &event.event_type, &event.key, &event.attributes),
        "the line round trip changed it: {line}"
    );
    assert!(
        same_json(&back.payload, &event.payload),
        "the line round trip changed its payload: {line}"
    );
}

/// JSON values equal up to float rounding (serde_json's default float
/// parsing may be one unit off in the last place).
fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x == y || (x - y).abs() <= f64::EPSILON * x.abs().max(y.abs()) * 4.0
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// A journal file (`journal.log`) as a crash or a bad disk may leave it:
/// read twice, it reads the same; reading never changes the file.
pub fn journal(data: &[u8]) {
    let scratch = scratch();
    let file = scratch.path().join("journal.log");
    std::fs::write(&file, data).expect("writing the journal");
    let first = weir::journal::inspect(scratch.path());
    let again = weir::journal::inspect(scratch.path());
    assert_eq!(
        format!("{first:?}"),
        format!("{again:?}"),
        "two reads differ"
    );
    assert_eq!(
        std::fs::read(&file).expect("the journal"),
        data,
        "reading changed it"
    );
    if let Ok(inspection) = first {
        assert_eq!(inspection.file_bytes, data.len() as u64);
        assert!(inspection.torn_bytes <= inspection.file_bytes);
    }
}

/// A registry's answers and a user's references: the first byte picks the
/// parser (an OCI reference, a manifest's package layer, a bearer
/// challenge, a token answer). A reference prints back as itself; a
/// layer's digest is `sha256:` and 64 lowercase hex digits.
pub fn oci(data: &[u8]) {
    use weir::skill::oci::{BearerChallenge, PackageLayer, Reference, token_of};
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            let Ok(reference) = Reference::parse(&text(rest)) else {
                return;
            };
            let shown = reference.to_string();
            assert_eq!(
                Reference::parse(&shown).as_ref(),
                Ok(&reference),
                "`{shown}` does not parse back to itself"
            );
            let registry = &reference.registry;
            assert!(
                !registry.is_empty()
                    && registry
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)),
                "a registry that is not a host[:port]: `{registry}`"
            );
            let tag = &reference.reference;
            if !tag.starts_with("sha256:") {
                assert!(
                    !tag.is_empty()
                        && tag.len() <= 128
                        && !tag.starts_with(['.', '-'])
                        && tag
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
                    "a tag outside the OCI grammar: `{tag}`"
                );
            }
        }
        1 => {
            if let Ok(layer) = PackageLayer::parse(rest) {
                let hex = layer.digest.strip_prefix("sha256:").expect("sha256:");
                assert_eq!(hex.len(), 64);
                assert!(hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
            }
        }
        2 => {
            if let Some(challenge) = BearerChallenge::parse(&text(rest)) {
                assert!(text(rest).starts_with("Bearer "));
                assert!(!challenge.realm.contains(','), "a realm past its field");
            }
        }
        _ => {
            let _ = token_of(rest);
        }
    }
}

/// What must hold of any reply read: tool calls have names, their
/// arguments are JSON objects, and the reply survives serde.
fn reply_holds(reply: &weir::resources::api::ChatReply) {
    for call in &reply.message.tool_calls {
        assert!(!call.name.is_empty(), "a tool call without a name");
        assert!(
            call.arguments.is_object(),
            "tool call arguments that are not an object: {}",
            call.arguments
        );
    }
    assert!(!reply.finish_reason.is_empty());
    let json = serde_json::to_string(reply).expect("a reply serialises");
    let back: weir::resources::api::ChatReply =
        serde_json::from_str(&json).expect("a reply deserialises");
    assert!(
        serde_json::to_value(&back).ok() == serde_json::to_value(reply).ok(),
        "a reply changed through serde"
    );
}

/// An OpenAI-compatible chat completion body (tool calls with JSON
/// arguments in strings).
pub fn openai_reply(data: &[u8]) {
    if let Ok(reply) = weir::fuzzing::openai_reply(data) {
        reply_holds(&reply);
    }
}

/// An Anthropic messages body (`tool_use` blocks).
pub fn anthropic_reply(data: &[u8]) {
    if let Ok(reply) = weir::fuzzing::anthropic_reply(data) {
        reply_holds(&reply);
    }
}
