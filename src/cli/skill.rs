//! `weir skill ...`: package, install, list, inspect, verify and remove
//! skills in the local store.

use anyhow::Context as _;
use clap::Subcommand;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use weir::skill::oci::{self, Reference};
use weir::skill::store::{self, InstalledSkill, SkillStore};
use weir::skill::{archive, build};

/// `weir skill new --lang`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Lang {
    /// A Rust crate.
    Rust,
    /// A Python module (built with componentize-py).
    Python,
    /// A JavaScript module (built with componentize-qjs).
    Js,
}

#[derive(Subcommand)]
pub enum SkillCommand {
    /// Create a new skill: a Rust crate (built to wasm32-wasip2 with the guest SDK), a Python or a JavaScript module.
    New {
        /// The skill's name (lowercase letters, digits and single hyphens).
        name: String,
        /// Where to create it.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The language its actions and tools are written in.
        #[arg(long, value_enum, default_value_t = Lang::Rust)]
        lang: Lang,
        /// The Rust guest SDK crate (`sdk/` of weir's source); Python and JavaScript skills need none.
        #[arg(long, env = "WEIR_SDK_PATH")]
        sdk: Option<PathBuf>,
    },
    /// Build a skill (a Rust crate with cargo, a Python module with componentize-py, a JavaScript one with componentize-qjs) and lay out its package.
    Build {
        /// The skill's directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Where the package goes (default: DIR/target/skill/NAME).
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// Where builds write (Cargo's target dir; Python and JavaScript components go under wasm32-wasip2/).
        #[arg(long, env = "CARGO_TARGET_DIR")]
        target_dir: Option<PathBuf>,
    },
    /// Build a module to one component file, without a package: a Python module (MODULE.py), a JavaScript one (MODULE.js) or a Rust crate, for an agent manifest's `[components.NAME] path`.
    Component {
        /// The directory holding the module.
        dir: PathBuf,
        /// The component file to write.
        #[arg(short, long)]
        out: PathBuf,
        /// The module's name (MODULE.py or MODULE.js; default: the skill's name in DIR/weir-skill.toml, else DIR's name, dashes as underscores).
        #[arg(long)]
        module: Option<String>,
        /// Where builds write (Cargo's target dir; Python and JavaScript components go under wasm32-wasip2/).
        #[arg(long, env = "CARGO_TARGET_DIR")]
        target_dir: Option<PathBuf>,
    },
    /// Check a skill directory's SKILL.md (strictly, every violation with its place).
    Validate {
        /// The skill directory.
        dir: PathBuf,
    },
    /// Pack a skill directory into one archive, and print its digest.
    Pack {
        /// The skill directory (with SKILL.md and weir-skill.toml).
        dir: PathBuf,
        /// The archive to write (default: NAME-VERSION.tar.gz here).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Publish a skill to an OCI registry (installing it locally first if it is a directory).
    Push {
        /// An installed skill (NAME or NAME@VERSION) or a skill package directory.
        skill: String,
        /// Where to: `registry/namespace/name:tag`.
        reference: String,
        /// The store.
        #[arg(long, env = "WEIR_SKILLS_DIR")]
        store: Option<PathBuf>,
        /// Replace what is already there under this name and version (in the
        /// local store and at the tag) with another package.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Install a skill from an OCI registry, a directory, an archive file, or an https URL.
    Install {
        /// `registry/namespace/name:tag` or `...@sha256:<hex>`, a skill directory, a
        /// `.tar.gz` archive, or an `https://` URL of one.
        reference: String,
        /// The archive's expected digest (`sha256:<hex>`); required for URLs.
        #[arg(long)]
        sha256: Option<String>,
        /// The store (default: `$WEIR_SKILLS_DIR`, else the user's data dir).
        #[arg(long, env = "WEIR_SKILLS_DIR")]
        store: Option<PathBuf>,
        /// Replace an installed package of the same name and version.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// List installed skills.
    List {
        /// The store.
        #[arg(long, env = "WEIR_SKILLS_DIR")]
        store: Option<PathBuf>,
    },
    /// Show an installed skill: version, digest, source, requested permissions, files.
    Inspect {
        /// NAME or NAME@VERSION.
        skill: String,
        /// The store.
        #[arg(long, env = "WEIR_SKILLS_DIR")]
        store: Option<PathBuf>,
    },
    /// Re-check installed skills' digests and files (all, or one).
    Verify {
        /// NAME or NAME@VERSION; all installed skills if omitted.
        skill: Option<String>,
        /// The store.
        #[arg(long, env = "WEIR_SKILLS_DIR")]
        store: Option<PathBuf>,
    },
    /// Uninstall a skill (one version, or every version).
    Remove {
        /// NAME or NAME@VERSION.
        skill: String,
        /// The store.
        #[arg(long, env = "WEIR_SKILLS_DIR")]
        store: Option<PathBuf>,
    },
    /// Remove archives and packages no installed skill uses.
    Gc {
        /// The store.
        #[arg(long, env = "WEIR_SKILLS_DIR")]
        store: Option<PathBuf>,
    },
}

/// How to talk to registries and download URLs.
#[derive(clap::Args)]
pub struct RegistryArgs {
    /// Seconds each registry request or download may take, its whole body included.
    #[arg(long = "timeout", env = "WEIR_REGISTRY_TIMEOUT", default_value_t = 300)]
    timeout_secs: u64,
}

impl RegistryArgs {
    fn options(&self, force: bool) -> oci::RegistryOptions {
        oci::RegistryOptions {
            timeout: std::time::Duration::from_secs(self.timeout_secs),
            replace: force,
            ..oci::RegistryOptions::default()
        }
    }
}

fn open_store(store: Option<PathBuf>) -> SkillStore {
    SkillStore::open(store.unwrap_or_else(SkillStore::default_root))
}

/// `NAME` or `NAME@VERSION`.
fn split_ref(reference: &str) -> (&str, Option<&str>) {
    match reference.split_once('@') {
        Some((name, version)) => (name, Some(version)),
        None => (reference, None),
    }
}

impl SkillCommand {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            SkillCommand::New {
                name,
                dir,
                lang,
                sdk,
            } => {
                let created = match lang {
                    Lang::Rust => {
                        let sdk = match sdk {
                            Some(sdk) => sdk,
                            None => {
                                let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("sdk");
                                anyhow::ensure!(
                                    built_from.is_dir(),
                                    "where is the guest SDK? pass --sdk PATH (weir's `sdk/` directory)"
                                );
                                built_from
                            }
                        };
                        let sdk = sdk
                            .canonicalize()
                            .with_context(|| format!("no SDK at {}", sdk.display()))?;
                        build::new_skill(&dir, &name, build::Language::Rust, Some(&sdk))?
                    }
                    Lang::Python => build::new_skill(&dir, &name, build::Language::Python, None)?,
                    Lang::Js => build::new_skill(&dir, &name, build::Language::JavaScript, None)?,
                };
                println!("created {}", created.display());
                println!("next: weir skill build {}", created.display());
                Ok(ExitCode::SUCCESS)
            }
            SkillCommand::Build {
                dir,
                out,
                target_dir,
            } => {
                let manifest = weir::skill::package::PackageManifest::read(&dir)?;
                let out = out
                    .unwrap_or_else(|| dir.join("target").join("skill").join(&manifest.skill.name));
                let sandbox = weir::Sandbox::shared()?;
                let (dir2, out2) = (dir.clone(), out.clone());
                let built = tokio::task::spawn_blocking(move || {
                    build::build_skill(&dir2, &out2, target_dir.as_deref(), &sandbox)
                })
                .await??;
                println!(
                    "built {}@{} in {}",
                    built.skill.name,
                    built.skill.version,
                    out.display()
                );
                for (name, c) in &built.components {
                    println!(
                        "  component {name}: actions [{}], tools [{}]",
                        c.actions.join(", "),
                        c.tools.join(", ")
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            SkillCommand::Component {
                dir,
                out,
                module,
                target_dir,
            } => {
                let module = match module {
                    Some(module) => module,
                    None if dir.join(weir::skill::package::MANIFEST_FILE).is_file() => {
                        weir::skill::package::PackageManifest::read(&dir)?
                            .skill
                            .name
                    }
                    None => std::path::absolute(&dir)?
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .context("give the module's name with --module")?,
                };
                let (dir2, out2) = (dir.clone(), out.clone());
                tokio::task::spawn_blocking(move || {
                    build::build_component(&dir2, &module, &out2, target_dir.as_deref())
                })
                .await??;
                println!("built {}", out.display());
                Ok(ExitCode::SUCCESS)
            }
            SkillCommand::Validate { dir } => validate(&dir),
            SkillCommand::Pack { dir, output } => pack(&dir, output),
            SkillCommand::Install {
                reference,
                sha256,
                store,
                force,
                registry,
            } => {
                let store = open_store(store).replacing(force);
                install(
                    &store,
                    &reference,
                    sha256.as_deref(),
                    &registry.options(force),
                )
                .await
            }
            SkillCommand::Push {
                skill,
                reference,
                store,
                force,
                registry,
            } => {
                let store = open_store(store).replacing(force);
                let reference = Reference::parse(&reference).map_err(anyhow::Error::msg)?;
                let installed = if Path::new(&skill).is_dir() {
                    store.install_dir(Path::new(&skill))?
                } else {
                    let (name, version) = split_ref(&skill);
                    store.get(name, version)?
                };
                let digest =
                    oci::push(&store, &installed, &reference, &registry.options(force)).await?;
                println!(
                    "pushed {}@{} to {reference} (manifest {digest}, package {})",
                    installed.name, installed.version, installed.digest
                );
                Ok(ExitCode::SUCCESS)
            }
            SkillCommand::List { store } => {
                let skills = open_store(store).list()?;
                if skills.is_empty() {
                    eprintln!("no skills installed");
                }
                for s in skills {
                    println!("{}@{}  {}  {}", s.name, s.version, s.digest, s.description);
                }
                Ok(ExitCode::SUCCESS)
            }
            SkillCommand::Inspect { skill, store } => {
                let (name, version) = split_ref(&skill);
                let installed = open_store(store).get(name, version)?;
                inspect(&installed)?;
                Ok(ExitCode::SUCCESS)
            }
            SkillCommand::Verify { skill, store } => {
                let store = open_store(store);
                let skills = match &skill {
                    Some(reference) => {
                        let (name, version) = split_ref(reference);
                        vec![store.get(name, version)?]
                    }
                    None => store.list()?,
                };
                let mut failed = 0;
                for s in &skills {
                    match store.verify(s) {
                        Ok(()) => println!("ok      {}@{} {}", s.name, s.version, s.digest),
                        Err(e) => {
                            failed += 1;
                            println!("FAILED  {}@{}: {e}", s.name, s.version);
                        }
                    }
                }
                Ok(if failed == 0 {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            }
            SkillCommand::Remove { skill, store } => {
                let (name, version) = split_ref(&skill);
                for s in open_store(store).remove(name, version)? {
                    println!("removed {}@{}", s.name, s.version);
                }
                Ok(ExitCode::SUCCESS)
            }
            SkillCommand::Gc { store } => {
                let (entries, bytes) = open_store(store).collect_garbage()?;
                println!("removed {entries} unused archives and packages ({bytes} bytes)");
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn validate(dir: &Path) -> anyhow::Result<ExitCode> {
    let path = dir.join(weir::skill::package::SKILL_MD_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let folder = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    match weir::skill::skill_md::validate(&folder, &text) {
        Ok(skill) => {
            println!("{}: valid skill `{}`", path.display(), skill.name);
            Ok(ExitCode::SUCCESS)
        }
        Err(violations) => {
            for v in &violations {
                eprintln!("{}", v.at(&path));
            }
            eprintln!("{} violation(s)", violations.len());
            Ok(ExitCode::FAILURE)
        }
    }
}

fn pack(dir: &Path, output: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let (manifest, _) = store::check_package(dir).map_err(|problems| {
        anyhow::anyhow!(
            "{} is not a valid skill package:\n{}",
            dir.display(),
            problems.join("\n")
        )
    })?;
    let output = output.unwrap_or_else(|| {
        PathBuf::from(format!(
            "{}-{}.tar.gz",
            manifest.skill.name, manifest.skill.version
        ))
    });
    archive::pack(dir, &output)?;
    let digest = store::digest_of(&output)?;
    println!("{} {digest}", output.display());
    Ok(ExitCode::SUCCESS)
}

async fn install(
    store: &SkillStore,
    reference: &str,
    sha256: Option<&str>,
    options: &oci::RegistryOptions,
) -> anyhow::Result<ExitCode> {
    if let Some(expected) = sha256 {
        anyhow::ensure!(
            store::digest_hex(expected).is_some(),
            "--sha256 must be `sha256:` and 64 lowercase hex digits, got `{expected}`"
        );
    }
    let path = Path::new(reference);
    let installed = if !path.exists()
        && let Ok(oci_ref) = Reference::parse(reference)
    {
        let bar = progress_bar(&format!("pulling {oci_ref}"));
        let installed =
            oci::install_pinned(store, &oci_ref, sha256, options, &report_to(&bar)).await?;
        if let Some(bar) = bar {
            bar.finish_with_message("pulled");
        }
        installed
    } else if reference.starts_with("https://") || reference.starts_with("http://") {
        let expected = sha256.ok_or_else(|| {
            anyhow::anyhow!(
                "installing from a URL needs the archive's digest: --sha256 sha256:<hex>"
            )
        })?;
        let staging = store.temp_dir()?;
        let file = staging.path().join("download.tar.gz");
        let bar = progress_bar(&format!("downloading {reference}"));
        let received = oci::download(reference, &file, options, &report_to(&bar)).await?;
        match bar {
            Some(bar) => bar.finish_with_message("downloaded"),
            None => eprintln!("downloaded {received} bytes"),
        }
        store.install_archive(&file, Some(expected), reference)?
    } else {
        if path.is_dir() {
            store.install_dir(path)?
        } else if path.is_file() {
            store.install_archive(path, sha256, reference)?
        } else {
            anyhow::bail!(
                "`{reference}` is neither a skill directory, an archive, nor an https URL"
            );
        }
    };
    println!(
        "installed {}@{} {}",
        installed.name, installed.version, installed.digest
    );
    let requested = installed.requested.describe();
    if !requested.is_empty() {
        println!("it requests (grant these in the agent manifest):");
        for line in requested {
            println!("  {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A progress bar on a terminal; otherwise `message` as a plain line.
fn progress_bar(message: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        eprintln!("{message}");
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    Some(bar)
}

/// Progress reports moving `bar`, if there is one.
fn report_to(bar: &Option<indicatif::ProgressBar>) -> impl Fn(u64, Option<u64>) + '_ {
    move |done, total| {
        if let Some(bar) = bar {
            bar.set_length(total.unwrap_or(0));
            bar.set_position(done);
        }
    }
}

fn inspect(skill: &InstalledSkill) -> anyhow::Result<()> {
    println!("{}@{}", skill.name, skill.version);
    println!("  {}", skill.description);
    println!("  digest:  {}", skill.digest);
    println!("  source:  {}", skill.source);
    println!("  files:   {}", skill.dir.display());
    let manifest = weir::skill::package::PackageManifest::read(&skill.dir)?;
    for (name, c) in &manifest.components {
        println!(
            "  component {name}: {} (sha256 {}), actions: {}, tools: {}",
            c.path,
            c.sha256,
            c.actions.join(", "),
            c.tools.join(", ")
        );
    }
    let requested = skill.requested.describe();
    if requested.is_empty() {
        println!("  requests no permissions");
    }
    for line in requested {
        println!("  requests {line}");
    }
    Ok(())
}
