//! On-disk cache of compiled components, keyed by the component's sha256 and
//! the engine's compatibility hash, so a second run does not recompile.

use anyhow::Context as _;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a compiled component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CompileSource {
    /// Compiled now (and stored if the cache is on).
    Compiled,
    /// Loaded from the cache.
    Cached,
}

pub(crate) struct CompileCache {
    dir: PathBuf,
    engine_key: String,
}

impl CompileCache {
    pub(crate) fn new(engine: &Engine, dir: PathBuf) -> Self {
        // The engine hash covers wasmtime's version and every setting that
        // affects compiled code; SipHash with fixed keys is stable per build.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        CompileCache {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    fn entry(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_key))
    }

    /// The compiled component for `bytes` (whose sha256 is `digest`), from the
    /// cache when present and valid, else compiled and stored.
    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        digest: &str,
        bytes: &[u8],
    ) -> anyhow::Result<(Component, CompileSource)> {
        let path = self.entry(digest);
        if path.exists() {
            // SAFETY: the file was written by `store` below from wasmtime's own
            // output, into the user's cache dir; wasmtime checks its header
            // and engine compatibility, and any failure falls back to compiling.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, CompileSource::Cached)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring a bad cache entry")
                }
            }
        }
        let compiled = engine.precompile_component(bytes)?;
        if let Err(e) = store(&self.dir, &path, &compiled) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write the compile cache");
        }
        // SAFETY: `compiled` was produced by this engine just above.
        let component = unsafe { Component::deserialize(engine, &compiled)? };
        Ok((component, CompileSource::Compiled))
    }
}

/// Writes atomically: a temp file in the same dir, then a rename, so readers
/// never see half an entry and concurrent writers do not clash.
fn store(dir: &Path, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(path)?;
    Ok(())
}
