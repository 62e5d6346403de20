//! Turning an agent's `[skills]` into components: find each installed skill
//! in the store, check it against `weir.lock` and its own manifest, and add
//! its components with the grants the agent gives them.

use super::Problem;
use crate::agent::{Agent, ComponentSpec};
use crate::skill::lock::{LockedSkill, Lockfile};
use crate::skill::package::{PackageManifest, Permissions, RequestedDir};
use crate::skill::store::SkillStore;
use crate::tools::disclosure::{SkillCommand, SkillDoc};

/// `agent` with its skills' components added, what models are told about
/// each skill, and every problem found. When there are none and the
/// lockfile changed (a skill added or its version changed), the lockfile is
/// written.
pub(crate) fn resolve(agent: &Agent) -> (Agent, Vec<Problem>, Vec<SkillDoc>) {
    let mut resolved = agent.clone();
    let mut problems = Vec::new();
    let mut docs = Vec::new();
    if agent.skills.is_empty() {
        return (resolved, problems, docs);
    }
    let store = SkillStore::open(
        agent
            .skill_store
            .clone()
            .unwrap_or_else(SkillStore::default_root),
    );
    let (mut lock, lock_path) = match &agent.lockfile {
        Some(path) => match Lockfile::read(path) {
            Ok(lock) => (lock, Some(path.clone())),
            Err(message) => {
                problems.push(Problem {
                    location: None,
                    subject: "weir.lock".into(),
                    message,
                });
                return (resolved, problems, docs);
            }
        },
        None => (Lockfile::default(), None),
    };
    let original = lock.clone();
    for (name, used) in &agent.skills {
        let mut problem = |field: &str, message: String| {
            problems.push(Problem {
                location: used.origin.of(field).cloned(),
                subject: format!("skills.{name}.{field}"),
                message,
            })
        };
        let installed = match store.get(name, Some(&used.version)) {
            Ok(installed) => installed,
            Err(e) => {
                problem(
                    "version",
                    format!(
                        "{e}; install it with `weir skill install REFERENCE` (store: {})",
                        store.root().display()
                    ),
                );
                continue;
            }
        };
        let granted = Permissions {
            models: used.grants.models.clone(),
            tools: used.grants.tools.clone(),
            http: used.grants.http.clone(),
            dirs: used
                .grants
                .dirs
                .iter()
                .map(|d| RequestedDir {
                    guest: d.guest.clone(),
                    write: d.write,
                })
                .collect(),
            env: used.grants.env.clone(),
        };
        for line in installed.requested.describe() {
            if !granted.describe().contains(&line) {
                tracing::warn!(skill = %name, "the skill requests {line}, which the agent does not grant");
            }
        }
        match lock.get(name) {
            Some(pin) if pin.version == used.version && pin.digest != installed.digest => {
                problem(
                    "version",
                    format!(
                        "{name}@{} is installed as {} but weir.lock pins {} (from {}): the package changed. \
                         Install the locked one again, or delete its entry from weir.lock to accept the new one",
                        used.version, installed.digest, pin.digest, pin.source
                    ),
                );
                continue;
            }
            Some(pin) if pin.version == used.version && pin.granted == granted => {}
            _ => {
                lock.skills.retain(|s| s.name != *name);
                lock.skills.push(LockedSkill {
                    name: name.clone(),
                    version: used.version.clone(),
                    digest: installed.digest.clone(),
                    source: installed.source.clone(),
                    granted,
                });
            }
        }
        // The store is the user's to change: check the files on every plan.
        if let Err(e) = store.verify(&installed) {
            problem("version", e.to_string());
            continue;
        }
        let manifest = match PackageManifest::read(&installed.dir) {
            Ok(m) => m,
            Err(e) => {
                problem("version", e.to_string());
                continue;
            }
        };
        docs.push(SkillDoc {
            name: name.clone(),
            description: installed.description.clone(),
            dir: installed.dir.clone(),
            tools: manifest
                .components
                .values()
                .flat_map(|c| c.tools.iter().cloned())
                .collect(),
            commands: manifest
                .commands
                .iter()
                .map(|(command, c)| SkillCommand {
                    name: command.clone(),
                    description: c.description.clone(),
                    path: installed.dir.join(&c.path),
                    component: None,
                })
                .collect(),
            policy: None,
        });
        let single = manifest.components.len() == 1;
        for (component, packaged) in &manifest.components {
            let key = if single {
                name.clone()
            } else {
                format!("{name}.{component}")
            };
            if resolved.components.contains_key(&key) {
                problem(
                    "version",
                    format!("its component `{key}` has the name of a component the agent declares"),
                );
                continue;
            }
            resolved.components.insert(
                key,
                ComponentSpec {
                    path: installed.dir.join(&packaged.path),
                    grants: used.grants.clone(),
                    limits: used.limits,
                    origin: used.origin.clone(),
                },
            );
        }
    }
    lock.skills.retain(|s| agent.skills.contains_key(&s.name));
    if problems.is_empty()
        && lock != original
        && let Some(path) = lock_path
        && let Err(e) = lock.write(&path)
    {
        problems.push(Problem {
            location: None,
            subject: "weir.lock".into(),
            message: format!("cannot write {}: {e}", path.display()),
        });
    }
    (resolved, problems, docs)
}
