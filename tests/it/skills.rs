//! Skill packages: pack, install into the content-addressed store from a
//! directory, an archive, an https URL and a real OCI registry on loopback,
//! verify, remove; and every bad input leaves nothing installed.

use crate::support::registry::Registry;
use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use weir::skill::archive;
use weir::skill::oci::{self, Reference};
use weir::skill::package::sha256_file;
use weir::skill::store::{SkillStore, StoreError, digest_of};

const SKILL_MD: &str = "---
name: greeter
description: Greets visitors by name and counts their visits. Use when a visitor arrives.
license: Apache-2.0
metadata:
  author: weir
---
# Greeter

Emits a greeting with the visitor's name and how many times they came.
";

/// A valid package of the greeter skill in `parent/greeter`.
fn greeter_package(parent: &Path) -> PathBuf {
    let dir = parent.join("greeter");
    std::fs::create_dir_all(dir.join("components")).unwrap();
    std::fs::create_dir_all(dir.join("references")).unwrap();
    let wasm = dir.join("components/skill_greeter.wasm");
    std::fs::copy(component("skill_greeter.wasm"), &wasm).unwrap();
    std::fs::write(dir.join("SKILL.md"), SKILL_MD).unwrap();
    std::fs::write(dir.join("references/style.md"), "Be warm.\n").unwrap();
    std::fs::write(
        dir.join("weir-skill.toml"),
        format!(
            "[skill]\nname = \"greeter\"\nversion = \"0.1.0\"\n\n[components.greeter]\npath = \"components/skill_greeter.wasm\"\nsha256 = \"{}\"\nactions = [\"greet\"]\n\n[permissions]\nhttp = [\"https://api.example.com\"]\n",
            sha256_file(&wasm).unwrap()
        ),
    )
    .unwrap();
    dir
}

/// Nothing of a failed install is left: no record, package, blob or temp dir.
fn assert_empty(store: &SkillStore) {
    assert!(store.list().unwrap().is_empty());
    for sub in ["packages", "blobs/sha256", "installed"] {
        let dir = store.root().join(sub);
        let count = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        assert_eq!(count, 0, "{} is not empty", dir.display());
    }
    let tmp = store.root().join("tmp");
    let left = std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "temp files left in {}", tmp.display());
}

#[test]
fn a_directory_installs_verifies_and_removes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = greeter_package(tmp.path());
    let store = SkillStore::open(tmp.path().join("store"));
    let installed = store.install_dir(&dir).unwrap();
    assert_eq!(
        (installed.name.as_str(), installed.version.as_str()),
        ("greeter", "0.1.0")
    );
    assert!(installed.description.starts_with("Greets visitors"));
    assert_eq!(installed.requested.http, ["https://api.example.com"]);

    // The digest is that of the deterministic archive of the directory.
    let archive_path = tmp.path().join("greeter.tar.gz");
    archive::pack(&dir, &archive_path).unwrap();
    assert_eq!(installed.digest, digest_of(&archive_path).unwrap());
    assert_eq!(
        std::fs::read(installed.dir.join("references/style.md")).unwrap(),
        b"Be warm.\n"
    );
    assert_eq!(store.get("greeter", None).unwrap(), installed);
    store.verify(&installed).unwrap();

    // Installing again (or the same archive) changes nothing.
    let again = store
        .install_archive(&archive_path, Some(&installed.digest), "again")
        .unwrap();
    assert_eq!(again.digest, installed.digest);
    assert_eq!(store.list().unwrap().len(), 1);

    let removed = store.remove("greeter", None).unwrap();
    assert_eq!(removed.len(), 1);
    assert!(!installed.dir.exists());
    assert_empty(&store);
}

#[test]
fn only_abandoned_install_dirs_are_cleaned_up() {
    let tmp = tempfile::tempdir().unwrap();
    let store = SkillStore::open(tmp.path().join("store"));
    // An install in progress (its directory held), however old it is.
    let running = store.temp_dir().unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::open(running.path())
        .unwrap()
        .set_modified(old)
        .unwrap();
    // The directory of an install that died: its lock file, free.
    let died = store.root().join("tmp").join("install-died");
    std::fs::create_dir_all(&died).unwrap();
    std::fs::write(died.join(".in-use"), b"").unwrap();
    // One that is just being made (no lock yet), and an old one without.
    let starting = store.root().join("tmp").join("install-starting");
    std::fs::create_dir_all(&starting).unwrap();
    let ancient = store.root().join("tmp").join("install-ancient");
    std::fs::create_dir_all(&ancient).unwrap();
    std::fs::File::open(&ancient)
        .unwrap()
        .set_modified(old)
        .unwrap();

    // Another install comes along and cleans up.
    let next = store.temp_dir().unwrap();
    assert!(
        running.path().is_dir(),
        "an install in progress was removed"
    );
    assert!(starting.is_dir(), "a starting install was removed");
    assert!(!died.exists(), "an abandoned install was left");
    assert!(!ancient.exists(), "an old unlocked directory was left");
    drop((running, next));
    std::fs::remove_dir(&starting).unwrap();
    let left = std::fs::read_dir(store.root().join("tmp")).unwrap().count();
    assert_eq!(left, 0, "dropped installs leave nothing");
}

#[test]
fn garbage_collection_removes_only_what_no_skill_uses() {
    let tmp = tempfile::tempdir().unwrap();
    let store = SkillStore::open(tmp.path().join("store"));
    let installed = store.install_dir(&greeter_package(tmp.path())).unwrap();
    // What an install killed between its renames leaves: an archive and a
    // package that no record points at.
    let orphan = "ab".repeat(32);
    let blob = store.root().join("blobs/sha256").join(&orphan);
    std::fs::write(&blob, vec![7u8; 1000]).unwrap();
    let package = store
        .root()
        .join("packages")
        .join(format!("sha256-{orphan}"));
    std::fs::create_dir_all(package.join("components")).unwrap();
    std::fs::write(package.join("components/x.wasm"), vec![1u8; 500]).unwrap();

    let (entries, bytes) = store.collect_garbage().unwrap();
    assert_eq!((entries, bytes), (2, 1500));
    assert!(!blob.exists() && !package.exists());
    // The installed skill is whole.
    store.verify(&installed).unwrap();
    assert_eq!(store.collect_garbage().unwrap(), (0, 0));
    store.remove("greeter", None).unwrap();
    assert_empty(&store);
}

#[test]
fn a_tampered_installed_component_fails_verification() {
    let tmp = tempfile::tempdir().unwrap();
    let store = SkillStore::open(tmp.path().join("store"));
    let installed = store.install_dir(&greeter_package(tmp.path())).unwrap();
    let wasm = installed.dir.join("components/skill_greeter.wasm");
    let mut bytes = std::fs::read(&wasm).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&wasm, bytes).unwrap();
    let err = store.verify(&installed).unwrap_err().to_string();
    assert!(err.contains("the file was changed"), "{err}");
}

#[test]
fn bad_packages_are_refused_and_leave_nothing() {
    type Spoil = fn(&Path);
    let cases: [(&str, Spoil, &str); 5] = [
        (
            "component changed after packing",
            |dir| {
                std::fs::write(dir.join("components/skill_greeter.wasm"), b"\0asm tampered")
                    .unwrap()
            },
            "the file was changed",
        ),
        (
            "SKILL.md violations",
            |dir| std::fs::write(dir.join("SKILL.md"), "---\nname: Greeter--x\n---\n").unwrap(),
            "SKILL.md:2:7: name:",
        ),
        (
            "a capability weir does not know",
            |dir| {
                let path = dir.join("weir-skill.toml");
                let text = std::fs::read_to_string(&path).unwrap();
                std::fs::write(
                    path,
                    text.replace("[permissions]", "[permissions]\nraw_sockets = true"),
                )
                .unwrap()
            },
            "unknown field `raw_sockets`",
        ),
        (
            "a component path leaving the package",
            |dir| {
                let path = dir.join("weir-skill.toml");
                let text = std::fs::read_to_string(&path).unwrap();
                std::fs::write(
                    path,
                    text.replace("components/skill_greeter.wasm", "../../etc/passwd"),
                )
                .unwrap()
            },
            "must be a relative path inside the package",
        ),
        (
            "no manifest",
            |dir| std::fs::remove_file(dir.join("weir-skill.toml")).unwrap(),
            "weir-skill.toml",
        ),
    ];
    for (what, spoil, expect) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let dir = greeter_package(tmp.path());
        spoil(&dir);
        let store = SkillStore::open(tmp.path().join("store"));
        let err = store.install_dir(&dir).unwrap_err().to_string();
        assert!(err.contains(expect), "{what}: {err}");
        assert_empty(&store);
    }
}

#[test]
fn a_digest_mismatch_installs_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let archive_path = tmp.path().join("greeter.tar.gz");
    archive::pack(&greeter_package(tmp.path()), &archive_path).unwrap();
    let store = SkillStore::open(tmp.path().join("store"));
    let wrong = format!("sha256:{}", "0".repeat(64));
    let err = store
        .install_archive(&archive_path, Some(&wrong), "test")
        .unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert_empty(&store);
}

#[test]
fn concurrent_installs_of_one_package_are_safe() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = greeter_package(tmp.path());
    let store = SkillStore::open(tmp.path().join("store"));
    let digests: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| store.install_dir(&dir).unwrap().digest))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(digests.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(store.list().unwrap().len(), 1);
    store
        .verify(&store.get("greeter", Some("0.1.0")).unwrap())
        .unwrap();
    assert_eq!(
        std::fs::read_dir(store.root().join("packages"))
            .unwrap()
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skills_push_to_and_install_from_a_real_oci_registry() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let publisher = SkillStore::open(tmp.path().join("publisher"));
    let installed = publisher.install_dir(&greeter_package(tmp.path())).unwrap();
    let tag = Reference::parse(&format!("{}/skills/greeter:0.1.0", registry.host)).unwrap();
    let manifest_digest = oci::push(&publisher, &installed, &tag, &Default::default())
        .await
        .unwrap();

    // By tag, into another store.
    let user = SkillStore::open(tmp.path().join("user"));
    let seen = std::sync::atomic::AtomicU64::new(0);
    let progress =
        |done: u64, _: Option<u64>| seen.store(done, std::sync::atomic::Ordering::SeqCst);
    let pulled = oci::install(&user, &tag, &progress).await.unwrap();
    assert_eq!(pulled.digest, installed.digest);
    assert_eq!(pulled.source, tag.to_string());
    assert!(seen.load(std::sync::atomic::Ordering::SeqCst) > 0);
    user.verify(&pulled).unwrap();

    // By manifest digest; a wrong digest is refused and installs nothing.
    let by_digest = Reference::parse(&format!(
        "{}/skills/greeter@{manifest_digest}",
        registry.host
    ))
    .unwrap();
    let other = SkillStore::open(tmp.path().join("other"));
    assert_eq!(
        oci::install(&other, &by_digest, &|_, _| {})
            .await
            .unwrap()
            .digest,
        installed.digest
    );
    let wrong = Reference::parse(&format!(
        "{}/skills/greeter@sha256:{}",
        registry.host,
        "1".repeat(64)
    ))
    .unwrap();
    let empty = SkillStore::open(tmp.path().join("empty"));
    let err = oci::install(&empty, &wrong, &|_, _| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("404") || err.contains("mismatch"), "{err}");
    let missing = Reference::parse(&format!("{}/skills/greeter:9.9.9", registry.host)).unwrap();
    let err = oci::install(&empty, &missing, &|_, _| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("404") && err.contains("no such repository, tag or digest"),
        "{err}"
    );
    assert_empty(&empty);

    // The registry holds a standard OCI manifest with the wasm media types.
    let manifest: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "http://{}/v2/skills/greeter/manifests/0.1.0",
            registry.host
        ))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(manifest["artifactType"], oci::ARTIFACT_TYPE);
    assert_eq!(manifest["config"]["mediaType"], oci::CONFIG_MEDIA_TYPE);
    assert_eq!(manifest["layers"][0]["digest"], installed.digest.as_str());
    assert_eq!(manifest["layers"][1]["mediaType"], oci::WASM_MEDIA_TYPE);

    // A registry that is down: a clear error, nothing installed.
    drop(registry);
    let err = oci::install(&empty, &tag, &|_, _| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot reach the registry"), "{err}");
    assert_empty(&empty);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_installs_from_an_https_style_url_only_with_the_right_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let archive_path = tmp.path().join("greeter.tar.gz");
    archive::pack(&greeter_package(tmp.path()), &archive_path).unwrap();
    let digest = digest_of(&archive_path).unwrap();
    let bytes = std::fs::read(&archive_path).unwrap();
    let app = axum::Router::new().route(
        "/greeter.tar.gz",
        axum::routing::get(move || async move { bytes.clone() }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/greeter.tar.gz", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let store = tmp.path().join("store");
    let weir = |args: &[&str]| {
        let url = url.clone();
        let store = store.clone();
        let args: Vec<String> = args.iter().map(|a| a.replace("URL", &url)).collect();
        async move {
            tokio::task::spawn_blocking(move || {
                Command::new(env!("CARGO_BIN_EXE_weir"))
                    .args(&args)
                    .env("WEIR_SKILLS_DIR", &store)
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    let wrong = format!("sha256:{}", "2".repeat(64));
    let out = weir(&["skill", "install", "URL", "--sha256", &wrong]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("digest mismatch"),
        "{out:?}"
    );
    let out = weir(&["skill", "install", "URL"]).await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs the archive's digest"),
        "{out:?}"
    );

    let out = weir(&["skill", "install", "URL", "--sha256", &digest]).await;
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("installed greeter@0.1.0 {digest}")),
        "{said}"
    );
    assert!(
        said.contains("outbound HTTP: https://api.example.com"),
        "{said}"
    );
    // Not a terminal: plain progress lines.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("downloaded"),
        "{out:?}"
    );

    let out = weir(&["skill", "list"]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("greeter@0.1.0  {digest}")));
    let out = weir(&["skill", "verify"]).await;
    assert!(out.status.success(), "{out:?}");
    let out = weir(&["skill", "remove", "greeter@0.1.0"]).await;
    assert!(out.status.success(), "{out:?}");
    let out = weir(&["skill", "inspect", "greeter"]).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("no skill `greeter` is installed"));
}

#[test]
fn the_cli_pushes_a_directory_and_installs_it_by_reference() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = greeter_package(tmp.path());
    let reference = format!("{}/acme/greeter:0.1.0", registry.host);
    let weir = |store: &str, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .env("WEIR_SKILLS_DIR", tmp.path().join(store))
            .output()
            .unwrap()
    };
    let out = weir(
        "publisher",
        &["skill", "push", dir.to_str().unwrap(), &reference],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("pushed greeter@0.1.0"));
    let out = weir("user", &["skill", "install", &reference]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("pulling {reference}")));
    let out = weir("user", &["skill", "inspect", "greeter@0.1.0"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("source:  {reference}")), "{said}");
    assert!(
        said.contains("component greeter: components/skill_greeter.wasm"),
        "{said}"
    );
    assert!(
        said.contains("requests outbound HTTP: https://api.example.com"),
        "{said}"
    );
    let out = weir(
        "user",
        &[
            "skill",
            "install",
            &format!("{}/acme/nothing:1.0.0", registry.host),
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("404"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_runs_an_installed_skill_pinned_by_its_lockfile() {
    let tmp = tempfile::tempdir().unwrap();
    let store_root = tmp.path().join("store");
    let store = SkillStore::open(&store_root);
    let installed = store.install_dir(&greeter_package(tmp.path())).unwrap();
    let agent_dir = tmp.path().join("agent");
    std::fs::create_dir(&agent_dir).unwrap();
    let manifest = write(
        &agent_dir,
        "agent.toml",
        r#"[agent]
name = "visits"

[skills.greeter]
version = "0.1.0"

[actions.greet]
component = "greeter"
listen = ["_input_event"]
config = { greeting = "Welcome" }
"#,
    );
    let load = || {
        let mut agent = weir::Agent::from_manifest(&manifest).unwrap();
        agent.skill_store = Some(store_root.clone());
        agent
    };
    let plan = weir::AgentPlan::from_agent_in(&load(), sandbox())
        .await
        .unwrap();
    let (outputs, _) = run(
        plan,
        vec![weir::Event::input(
            "ada",
            serde_json::json!({ "name": "Ada" }),
        )],
    )
    .await;
    assert_eq!(outputs[0].payload["text"], "Welcome, Ada! Visit #1");

    // The lockfile pins the digest.
    let lock = weir::skill::lock::Lockfile::read(&agent_dir.join("weir.lock")).unwrap();
    assert_eq!(lock.skills.len(), 1);
    assert_eq!(lock.skills[0].digest, installed.digest);

    // What the agent grants the skill is recorded in the lockfile.
    let granting = std::fs::read_to_string(&manifest).unwrap().replace(
        "version = \"0.1.0\"\n",
        "version = \"0.1.0\"\nhttp = [\"https://api.example.com\"]\n",
    );
    std::fs::write(&manifest, granting).unwrap();
    weir::AgentPlan::from_agent_in(&load(), sandbox())
        .await
        .unwrap();
    let lock = weir::skill::lock::Lockfile::read(&agent_dir.join("weir.lock")).unwrap();
    assert_eq!(lock.skills[0].granted.http, ["https://api.example.com"]);
    assert_eq!(lock.skills[0].digest, installed.digest);

    // The same name and version, different bytes: refused.
    let changed = greeter_package(&tmp.path().join("changed"));
    std::fs::write(changed.join("references/style.md"), "Be curt.\n").unwrap();
    store.remove("greeter", None).unwrap();
    let other = store.install_dir(&changed).unwrap();
    assert_ne!(other.digest, installed.digest);
    let err = weir::AgentPlan::from_agent_in(&load(), sandbox())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("agent.toml:5:11: skills.greeter.version"),
        "{err}"
    );
    assert!(err.contains("the package changed"), "{err}");

    // A skill that is not installed is named with its place in the manifest.
    store.remove("greeter", None).unwrap();
    let err = weir::AgentPlan::from_agent_in(&load(), sandbox())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no skill `greeter@0.1.0` is installed"),
        "{err}"
    );
}

/// The README's flow: new, build, push, install from the registry, run.
#[test]
fn a_new_skill_goes_through_build_push_install_and_run() {
    let sdk = repo().join("sdk");
    new_skill_builds_pushes_installs_and_runs(
        "hello",
        &["--sdk", sdk.to_str().unwrap()],
        "src/lib.rs",
    );
}

/// The README's flow for a skill `name` that `weir skill new name NEW_ARGS`
/// scaffolds (its source file `source` among what it writes): build, push,
/// install from the registry, run its `shout` action. For every language
/// (tests/it/langs.rs runs it for Python and JavaScript).
pub(crate) fn new_skill_builds_pushes_installs_and_runs(
    name: &str,
    new_args: &[&str],
    source: &str,
) {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let weir = |store: &str, args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .current_dir(tmp.path())
            .env("WEIR_SKILLS_DIR", tmp.path().join(store))
            .env("CARGO_TARGET_DIR", &target_dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "weir {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    weir("dev", &[&["skill", "new", name][..], new_args].concat());
    assert!(tmp.path().join(name).join(source).is_file(), "{source}");
    let said = weir("dev", &["skill", "build", name]);
    assert!(said.contains(&format!("built {name}@0.1.0")), "{said}");
    assert!(
        said.contains("actions [shout], tools [count_words]"),
        "{said}"
    );
    let reference = format!("{}/acme/{name}:0.1.0", registry.host);
    let package = format!("{name}/target/skill/{name}");
    weir("dev", &["skill", "push", &package, &reference]);
    weir("user", &["skill", "install", &reference]);

    std::fs::write(
        tmp.path().join("agent.toml"),
        format!("[agent]\nname = \"shouter\"\n\n[skills.{name}]\nversion = \"0.1.0\"\n\n[actions.shout]\ncomponent = \"{name}\"\nlisten = [\"_input_event\"]\nconfig = {{ prefix = \"> \" }}\n"),
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("in.jsonl"),
        "{\"key\": \"k\", \"payload\": {\"text\": \"quiet please\"}}\n",
    )
    .unwrap();
    let out = weir("user", &["run", "agent.toml", "--input", "in.jsonl"]);
    let event: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(event["payload"]["text"], "> QUIET PLEASE");
    assert!(tmp.path().join("weir.lock").exists());
}

/// Progressive disclosure: the model sees the skill's name and description,
/// loads SKILL.md and a reference on demand through `load_skill`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_is_offered_skills_and_loads_them_on_demand() {
    use crate::support::model_server::{ModelServer, Reply, openai_text, openai_tool_call};
    let tmp = tempfile::tempdir().unwrap();
    let store_root = tmp.path().join("store");
    SkillStore::open(&store_root)
        .install_dir(&greeter_package(tmp.path()))
        .unwrap();
    let server = ModelServer::start().await;
    server.script([
        Reply::Json(openai_tool_call(
            "c1",
            "load_skill",
            serde_json::json!({ "name": "greeter" }),
        )),
        Reply::Json(openai_tool_call(
            "c2",
            "load_skill",
            serde_json::json!({ "name": "greeter", "file": "references/style.md" }),
        )),
        Reply::Json(openai_text("Hello, warmly.", 40, 4)),
    ]);
    let agent = weir::Agent::builder("skilled")
        .skill("greeter", "0.1.0", weir::GrantSpec::default())
        .skill_store(&store_root)
        .resource(
            "conn",
            "chat-model-connection",
            serde_json::json!({ "provider": "openai", "base_url": format!("{}/v1", server.url), "max_retries": 0 }),
        )
        .resource(
            "assistant",
            "chat-model",
            serde_json::json!({ "connection": "conn", "model": "m", "system_prompt": "Be kind.", "skills": ["greeter"] }),
        )
        .react("assistant", None, None, 6)
        .build();
    let plan = weir::AgentPlan::from_agent_in(&agent, sandbox())
        .await
        .unwrap();
    let (outputs, _) = run(
        plan,
        vec![weir::Event::input("k", serde_json::json!("Greet Ada"))],
    )
    .await;
    assert_eq!(outputs[0].payload, "Hello, warmly.", "{outputs:#?}");

    let requests = server.received();
    assert_eq!(requests.len(), 3);
    let system = requests[0].body["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(system.starts_with("Be kind."), "{system}");
    assert!(
        system.contains("- greeter: Greets visitors by name"),
        "{system}"
    );
    let tools: Vec<&str> = requests[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["load_skill"]);
    let tool_result = |request: usize| {
        let messages = requests[request].body["messages"].as_array().unwrap();
        messages.last().unwrap()["content"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        tool_result(1).contains("Emits a greeting with the visitor's name"),
        "{}",
        tool_result(1)
    );
    assert!(
        !tool_result(1).contains("description:"),
        "the body only: {}",
        tool_result(1)
    );
    assert!(tool_result(2).contains("Be warm."), "{}", tool_result(2));
}

/// Where Agent Skills run `scripts/` in a shell, weir skills carry wasi:cli
/// commands that a model runs in the sandbox, under the skill's grants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_runs_a_skills_command_in_the_sandbox() {
    use crate::support::model_server::{ModelServer, Reply, openai_text, openai_tool_call};
    let tmp = tempfile::tempdir().unwrap();
    let dir = greeter_package(tmp.path());
    std::fs::create_dir(dir.join("commands")).unwrap();
    let wasm = dir.join("commands/tool.wasm");
    std::fs::copy(component("guest-command.wasm"), &wasm).unwrap();
    let manifest = dir.join("weir-skill.toml");
    let text = std::fs::read_to_string(&manifest).unwrap().replace(
        "[permissions]",
        &format!(
            "[commands.tool]\ndescription = \"Counts words on stdin.\"\npath = \"commands/tool.wasm\"\nsha256 = \"{}\"\n\n[permissions]",
            sha256_file(&wasm).unwrap()
        ),
    );
    std::fs::write(&manifest, text).unwrap();
    let store_root = tmp.path().join("store");
    SkillStore::open(&store_root).install_dir(&dir).unwrap();

    let run_command = |id: &str, args: serde_json::Value, stdin: &str| {
        Reply::Json(openai_tool_call(
            id,
            "run_skill_command",
            serde_json::json!({ "skill": "greeter", "command": "tool", "args": args, "stdin": stdin }),
        ))
    };
    let server = ModelServer::start().await;
    server.script([
        run_command("c1", serde_json::json!(["count"]), "one two three"),
        run_command("c2", serde_json::json!(["exit", "3"]), ""),
        run_command("c3", serde_json::json!(["read", "/etc/passwd"]), ""),
        Reply::Json(openai_text("done", 10, 1)),
    ]);
    let agent = weir::Agent::builder("commands")
        .skill("greeter", "0.1.0", weir::GrantSpec::default())
        .skill_store(&store_root)
        .resource(
            "conn",
            "chat-model-connection",
            serde_json::json!({ "provider": "openai", "base_url": format!("{}/v1", server.url), "max_retries": 0 }),
        )
        .resource(
            "assistant",
            "chat-model",
            serde_json::json!({ "connection": "conn", "model": "m", "skills": ["greeter"] }),
        )
        .react("assistant", None, None, 6)
        .build();
    let plan = weir::AgentPlan::from_agent_in(&agent, sandbox())
        .await
        .unwrap();
    let (outputs, _) = run(
        plan,
        vec![weir::Event::input("k", serde_json::json!("Count"))],
    )
    .await;
    assert_eq!(outputs[0].payload, "done", "{outputs:#?}");

    let requests = server.received();
    let system = requests[0].body["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(system.contains("command `tool`"), "{system}");
    let offered: Vec<&str> = requests[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(offered, ["load_skill", "run_skill_command"]);
    assert!(system.contains("Counts words on stdin."), "{system}");
    let result = |request: usize| -> serde_json::Value {
        let messages = requests[request].body["messages"].as_array().unwrap();
        serde_json::from_str(messages.last().unwrap()["content"].as_str().unwrap()).unwrap()
    };
    assert_eq!(
        result(1),
        serde_json::json!({ "exit_code": 0, "stdout": "3 words\n", "stderr": "" })
    );
    // wasi:cli 0.2's exit carries success or failure only: any failure is 1.
    assert_eq!(result(2)["exit_code"], 1);
    assert_eq!(result(2)["stderr"], "exiting with 3\n");
    // The skill is granted no directories: the host's files are not there.
    assert_eq!(result(3)["exit_code"], 1);
    assert!(
        result(3)["stderr"]
            .as_str()
            .unwrap()
            .contains("cannot read /etc/passwd")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_wants_a_login_gets_a_clear_error() {
    use axum::http::{StatusCode, header};
    let app = axum::Router::new().fallback(|| async {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"registry\"")],
            "{\"errors\": [{\"code\": \"UNAUTHORIZED\"}]}",
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let tmp = tempfile::tempdir().unwrap();
    let store = SkillStore::open(tmp.path().join("store"));
    let reference = Reference::parse(&format!("{host}/acme/greeter:0.1.0")).unwrap();
    let err = oci::install(&store, &reference, &|_, _| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("401"), "{err}");
    assert!(err.contains("WEIR_REGISTRY_USER"), "{err}");
    assert_empty(&store);
}

/// Runs the weir binary with `env`, killed after `limit` so that a hang is
/// a failure, not a stuck suite.
fn weir_within(
    limit: std::time::Duration,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!("weir {args:?} still running after {limit:?}: {out:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Serves `app` on loopback; returns `host:port`.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    host
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_service_that_never_ends_its_body_is_cut_at_the_limit() {
    use crate::support::model_server::Endless;
    use axum::http::{StatusCode, header};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let challenge = format!("Bearer realm=\"http://{host}/token\",service=\"test\"");
    let app = axum::Router::new()
        .route(
            "/token",
            axum::routing::get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    Endless::body(" ".repeat(64 << 10), std::time::Duration::from_millis(1)),
                )
            }),
        )
        .fallback(move || async move {
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, challenge)],
                "",
            )
        });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let reference = format!("{host}/acme/greeter:0.1.0");
    let out = tokio::task::spawn_blocking(move || {
        weir_within(
            std::time::Duration::from_secs(60),
            &["skill", "install", &reference],
            &[("WEIR_SKILLS_DIR", store.as_os_str())],
        )
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("the token service's answer is over the 4194304 byte limit"),
        "{said}"
    );
    assert_empty(&SkillStore::open(tmp.path().join("store")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_and_download_bodies_that_stall_fail_at_the_deadline() {
    use crate::support::model_server::Stalled;
    let host = serve(
        axum::Router::new()
            .route(
                "/v2/acme/greeter/manifests/0.1.0",
                axum::routing::get(|| async { Stalled::body("{\"schemaVersion\": ") }),
            )
            .route(
                "/greeter.tar.gz",
                axum::routing::get(|| async { Stalled::body(vec![0x1f, 0x8b]) }),
            ),
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let run = |args: Vec<String>, timeout: Option<&str>| {
        let store = store.clone();
        let timeout = timeout.map(std::ffi::OsString::from);
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut env = vec![("WEIR_SKILLS_DIR", store.as_os_str())];
            if let Some(timeout) = &timeout {
                env.push(("WEIR_REGISTRY_TIMEOUT", timeout.as_os_str()));
            }
            weir_within(std::time::Duration::from_secs(60), &args, &env)
        })
    };
    let digest = format!("sha256:{}", "3".repeat(64));
    let outs = [
        // The deadline from the environment, and from the flag.
        run(
            vec![
                "skill".into(),
                "install".into(),
                format!("{host}/acme/greeter:0.1.0"),
            ],
            Some("2"),
        ),
        run(
            vec![
                "skill".into(),
                "install".into(),
                format!("http://{host}/greeter.tar.gz"),
                "--sha256".into(),
                digest,
                "--timeout".into(),
                "2".into(),
            ],
            None,
        ),
    ];
    let mut said = Vec::new();
    for out in outs {
        let out = out.await.unwrap();
        assert!(!out.status.success());
        said.push(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    assert!(
        said[0].contains("the manifest did not arrive within 2 s"),
        "{}",
        said[0]
    );
    assert!(said[0].contains("--timeout"), "{}", said[0]);
    assert!(
        said[1].contains("the package did not arrive within 2 s"),
        "{}",
        said[1]
    );
    assert_empty(&SkillStore::open(&store));
}

/// A response with `status`, `headers` and `body`.
fn reply(
    status: u16,
    headers: &[(axum::http::HeaderName, String)],
    body: &str,
) -> axum::response::Response {
    let mut response = axum::response::Response::new(axum::body::Body::from(body.to_string()));
    *response.status_mut() = axum::http::StatusCode::from_u16(status).unwrap();
    for (name, value) in headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_goes_only_to_the_registry_s_own_origin() {
    use axum::http::{HeaderMap, Method, Uri, header};
    use std::sync::{Arc, Mutex};
    type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;
    fn record(seen: &Seen, method: &Method, uri: &Uri, headers: &HeaderMap) {
        let auth = headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap().to_string());
        let what = format!("{method} {}", uri.path());
        seen.lock().unwrap().push((what, auth));
    }
    // An internal service on another port of the same host: it must never
    // see the login, whatever the registry points at it.
    let internal_seen = Seen::default();
    let seen = internal_seen.clone();
    let internal = serve(axum::Router::new().fallback(
        // The body is read before the answer: answering an upload before
        // reading it makes the server close the connection under the
        // client, which may still be sending (a flaky failure under load).
        move |method: Method, uri: Uri, headers: HeaderMap, _body: axum::body::Bytes| async move {
            record(&seen, &method, &uri, &headers);
            match method {
                Method::PUT => reply(201, &[], ""),
                _ => reply(200, &[], "{\"token\": \"internal\"}"),
            }
        },
    ))
    .await;
    let registry_seen = Seen::default();
    let seen = registry_seen.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let (own, to_internal) = (format!("http://{host}/token"), format!("http://{internal}"));
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, _body: axum::body::Bytes| async move {
            record(&seen, &method, &uri, &headers);
            let path = uri.path();
            let challenge = |realm: &str| {
                reply(
                    401,
                    &[(
                        header::WWW_AUTHENTICATE,
                        format!("Bearer realm=\"{realm}\""),
                    )],
                    "",
                )
            };
            let authorized = headers
                .get(header::AUTHORIZATION)
                .is_some_and(|v| v.as_bytes().starts_with(b"Bearer "));
            if path == "/token" {
                reply(200, &[], "{\"token\": \"own\"}")
            } else if path.starts_with("/v2/acme/leak/") {
                // Sends the token request to the internal service.
                challenge(&format!("{to_internal}/token"))
            } else if path.starts_with("/v2/acme/own/") && !authorized {
                challenge(&own)
            } else if path.ends_with("/blobs/uploads/") {
                // Uploads go to another origin (as registries on object
                // stores do): no login goes with them.
                reply(
                    202,
                    &[(header::LOCATION, format!("{to_internal}/upload/1"))],
                    "",
                )
            } else if method == Method::PUT {
                reply(201, &[], "")
            } else {
                reply(404, &[], "")
            }
        },
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let tmp = tempfile::tempdir().unwrap();
    let dir = greeter_package(tmp.path());
    let store = tmp.path().join("store");
    let weir = |args: Vec<String>| {
        let (store, host) = (store.clone(), host.clone());
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let env = [
                ("WEIR_SKILLS_DIR", store.as_os_str()),
                ("WEIR_REGISTRY_HOST", std::ffi::OsStr::new(&host)),
                ("WEIR_REGISTRY_USER", std::ffi::OsStr::new("ada")),
                ("WEIR_REGISTRY_PASSWORD", std::ffi::OsStr::new("secret")),
            ];
            weir_within(std::time::Duration::from_secs(60), &args, &env)
        })
    };
    let install = |repo: &str| {
        weir(vec![
            "skill".into(),
            "install".into(),
            format!("{host}/acme/{repo}:0.1.0"),
        ])
    };
    // A realm on another origin gets no login, and the error says why.
    let out = install("leak").await.unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("did not send it your login"), "{said}");
    // The registry's own token service gets it.
    let out = install("own").await.unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("404"),
        "{out:?}"
    );
    // A push: the login goes to the registry, not to the upload location.
    let out = weir(vec![
        "skill".into(),
        "push".into(),
        dir.display().to_string(),
        format!("{host}/acme/push:0.1.0"),
    ])
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");

    let basic = "Basic YWRhOnNlY3JldA=="; // ada:secret
    let internal_seen = internal_seen.lock().unwrap().clone();
    assert!(
        internal_seen.iter().any(|(what, _)| what == "GET /token"),
        "{internal_seen:?}"
    );
    assert!(
        internal_seen
            .iter()
            .any(|(what, _)| what.starts_with("PUT /upload/1")),
        "{internal_seen:?}"
    );
    assert!(
        internal_seen.iter().all(|(_, auth)| auth.is_none()),
        "{internal_seen:?}"
    );
    let registry_seen = registry_seen.lock().unwrap().clone();
    let auth_of = |what: &str| {
        registry_seen
            .iter()
            .find(|(w, _)| w == what)
            .and_then(|(_, auth)| auth.clone())
    };
    assert_eq!(
        auth_of("GET /token").as_deref(),
        Some(basic),
        "{registry_seen:?}"
    );
    assert_eq!(
        auth_of("POST /v2/acme/push/blobs/uploads/").as_deref(),
        Some(basic),
        "{registry_seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_package_of_one_name_and_version_is_refused_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let store = SkillStore::open(tmp.path().join("store"));
    let first = store.install_dir(&greeter_package(tmp.path())).unwrap();
    let changed = greeter_package(&tmp.path().join("changed"));
    std::fs::write(changed.join("references/style.md"), "Be curt.\n").unwrap();

    // The store: refused, nothing placed, the first package stays.
    let err = store.install_dir(&changed).unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    let said = err.to_string();
    assert!(
        said.contains("greeter@0.1.0 is already installed as another package")
            && said.contains(&first.digest)
            && said.contains("--force"),
        "{said}"
    );
    assert_eq!(store.get("greeter", Some("0.1.0")).unwrap(), first);
    let blobs = std::fs::read_dir(store.root().join("blobs/sha256")).unwrap();
    assert_eq!(blobs.count(), 1);
    // The same package again is no conflict; replacing is explicit.
    store.install_dir(&greeter_package(tmp.path())).unwrap();
    let second = store.clone().replacing(true).install_dir(&changed).unwrap();
    assert_ne!(second.digest, first.digest);
    assert_eq!(store.get("greeter", None).unwrap().digest, second.digest);

    // The CLI says how to force, and --force does.
    let cli_store = tmp.path().join("cli-store");
    let env = [("WEIR_SKILLS_DIR", cli_store.as_os_str())];
    let limit = std::time::Duration::from_secs(60);
    let original = greeter_package(tmp.path()).display().to_string();
    let changed_dir = changed.display().to_string();
    let out = weir_within(limit, &["skill", "install", &original], &env);
    assert!(out.status.success(), "{out:?}");
    let out = weir_within(limit, &["skill", "install", &changed_dir], &env);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--force"),
        "{out:?}"
    );
    let out = weir_within(limit, &["skill", "install", &changed_dir, "--force"], &env);
    assert!(out.status.success(), "{out:?}");

    // A registry tag naming another package of greeter@0.1.0 is not moved
    // without --force; a tag may move to another version.
    let registry = Registry::start();
    let tag = Reference::parse(&format!("{}/skills/greeter:0.1.0", registry.host)).unwrap();
    let publisher = SkillStore::open(tmp.path().join("publisher"));
    let first = publisher.install_dir(&greeter_package(tmp.path())).unwrap();
    oci::push(&publisher, &first, &tag, &Default::default())
        .await
        .unwrap();
    // The same package again is fine.
    oci::push(&publisher, &first, &tag, &Default::default())
        .await
        .unwrap();
    let other = SkillStore::open(tmp.path().join("other"));
    let second = other.install_dir(&changed).unwrap();
    let err = oci::push(&other, &second, &tag, &Default::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("this tag already names another package of greeter@0.1.0")
            && err.contains("--force"),
        "{err}"
    );
    let pulled = oci::install(&SkillStore::open(tmp.path().join("u1")), &tag, &|_, _| {})
        .await
        .unwrap();
    assert_eq!(pulled.digest, first.digest);
    let force = oci::RegistryOptions {
        replace: true,
        ..Default::default()
    };
    oci::push(&other, &second, &tag, &force).await.unwrap();
    let pulled = oci::install(&SkillStore::open(tmp.path().join("u2")), &tag, &|_, _| {})
        .await
        .unwrap();
    assert_eq!(pulled.digest, second.digest);
    let latest = Reference::parse(&format!("{}/skills/greeter:latest", registry.host)).unwrap();
    oci::push(&publisher, &first, &latest, &Default::default())
        .await
        .unwrap();
    let newer = greeter_package(&tmp.path().join("newer"));
    let manifest = std::fs::read_to_string(newer.join("weir-skill.toml")).unwrap();
    std::fs::write(
        newer.join("weir-skill.toml"),
        manifest.replace("version = \"0.1.0\"", "version = \"0.2.0\""),
    )
    .unwrap();
    let newer = publisher.install_dir(&newer).unwrap();
    oci::push(&publisher, &newer, &latest, &Default::default())
        .await
        .unwrap();
}

#[test]
fn the_cli_ends_quietly_when_its_reader_goes_away() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    SkillStore::open(&store)
        .install_dir(&greeter_package(tmp.path()))
        .unwrap();
    for args in [
        &["skill", "inspect", "greeter"][..],
        &["skill", "list"],
        &["skill", "verify"],
    ] {
        // A pipe whose reader is gone before weir writes (`| head` that
        // has had its lines).
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .env("WEIR_SKILLS_DIR", &store)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!said.contains("panicked"), "{args:?}: {said}");
        assert!(said.is_empty(), "{args:?}: {said}");
        assert_eq!(out.status.code(), Some(141), "{args:?}: {out:?}");
    }
}
