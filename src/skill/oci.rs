//! Skills as OCI artifacts: push to and pull from any registry speaking the
//! OCI distribution API (the reference `registry`, Harbor, GHCR, ...).
//!
//! A skill is an OCI image manifest with `artifactType`
//! `application/vnd.weir.skill.v1`, the wasm ecosystem's config media type
//! (`application/vnd.wasm.config.v0+json`), the package archive as its first
//! layer, and each component as an `application/wasm` layer so that wasm
//! tooling sees them. Installing pulls the archive layer, checks its digest
//! and installs it like any archive.
//!
//! Written on the crate's own HTTP client: `oci-client` 0.17 needs
//! aws-lc-rs (C and cmake) for TLS, and weir uses only this small part of
//! the protocol (monolithic blob upload, manifests, anonymous, basic and
//! bearer-token auth).

use super::package::PackageManifest;
use super::store::{InstalledSkill, SkillStore, StoreError, digest_hex, expect_digest};
use reqwest::{Client, Response, StatusCode, header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The manifest's artifact type.
pub const ARTIFACT_TYPE: &str = "application/vnd.weir.skill.v1";
/// The package archive layer.
pub const ARCHIVE_MEDIA_TYPE: &str = "application/vnd.weir.skill.v1.tar+gzip";
/// The config blob (the wasm OCI artifact convention).
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// A component layer.
pub const WASM_MEDIA_TYPE: &str = "application/wasm";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// A parsed reference: `registry/repository:tag` or
/// `registry/repository@sha256:<hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]`.
    pub registry: String,
    /// `namespace/name`.
    pub repository: String,
    /// A tag or a `sha256:` digest.
    pub reference: String,
}

impl Reference {
    /// Parses `registry/namespace/name:tag` or `...@sha256:<hex>`. The
    /// registry part is required (weir has no default registry).
    pub fn parse(text: &str) -> Result<Reference, String> {
        let bad = |why: &str| format!("`{text}` is not an OCI reference: {why}");
        let (registry, rest) = text
            .split_once('/')
            .ok_or_else(|| bad("expected registry/namespace/name:tag"))?;
        if !(registry.contains(['.', ':']) || registry == "localhost") {
            return Err(bad(
                "the first part must be a registry host, like `ghcr.io` or `127.0.0.1:5000`",
            ));
        }
        let (repository, reference) = if let Some((repo, digest)) = rest.split_once('@') {
            if digest_hex(digest).is_none() {
                return Err(bad("a digest is `sha256:` and 64 lowercase hex digits"));
            }
            (repo, digest.to_string())
        } else {
            match rest.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => (repo, tag.to_string()),
                _ => (rest, "latest".to_string()),
            }
        };
        let valid_repo = !repository.is_empty()
            && repository.split('/').all(|part| {
                !part.is_empty()
                    && part.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
            });
        if !valid_repo {
            return Err(bad(
                "the repository is lowercase letters, digits, `.`, `_`, `-` and `/`",
            ));
        }
        Ok(Reference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            reference,
        })
    }

    fn base(&self) -> String {
        // Loopback registries speak plain HTTP (as docker and oras assume).
        let loopback = ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .any(|host| self.registry == *host || self.registry.starts_with(&format!("{host}:")));
        let scheme = if loopback { "http" } else { "https" };
        format!("{scheme}://{}/v2/{}", self.registry, self.repository)
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sep = if self.reference.starts_with("sha256:") {
            '@'
        } else {
            ':'
        };
        write!(
            f,
            "{}/{}{sep}{}",
            self.registry, self.repository, self.reference
        )
    }
}

/// A registry conversation that failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry could not be reached.
    #[error("cannot reach the registry for {reference}: {source}")]
    Unreachable {
        /// What was asked for.
        reference: String,
        /// The HTTP error.
        source: reqwest::Error,
    },
    /// The registry answered with an error status.
    #[error("{reference}: the registry answered {status} to {what}{}", hint(*status))]
    Status {
        /// What was asked for.
        reference: String,
        /// What weir was doing.
        what: String,
        /// The status.
        status: StatusCode,
    },
    /// The registry sent something that is not a weir skill.
    #[error("{reference}: {message}")]
    Invalid {
        /// What was asked for.
        reference: String,
        /// What is wrong.
        message: String,
    },
    /// Installing what was pulled failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Local I/O.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

fn hint(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            " (for a registry that needs a login set WEIR_REGISTRY_HOST to it, and WEIR_REGISTRY_USER and WEIR_REGISTRY_PASSWORD)"
        }
        StatusCode::NOT_FOUND => " (no such repository, tag or digest)",
        _ => "",
    }
}

/// A client for one repository, handling auth challenges.
struct Session {
    http: Client,
    reference: Reference,
    token: Option<String>,
}

impl Session {
    fn new(reference: &Reference) -> Session {
        Session {
            http: Client::builder()
                .user_agent(concat!("weir/", env!("CARGO_PKG_VERSION")))
                .build()
                .expect("an HTTP client with default settings"),
            reference: reference.clone(),
            token: None,
        }
    }

    fn unreachable(&self, source: reqwest::Error) -> RegistryError {
        RegistryError::Unreachable {
            reference: self.reference.to_string(),
            source,
        }
    }

    fn status(&self, what: &str, status: StatusCode) -> RegistryError {
        RegistryError::Status {
            reference: self.reference.to_string(),
            what: what.to_string(),
            status,
        }
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match (&self.token, credentials(&self.reference.registry)) {
            (Some(token), _) => request.bearer_auth(token),
            (None, Some((user, password))) => request.basic_auth(user, Some(password)),
            (None, None) => request,
        }
    }

    /// Sends the request built by `make`; on a bearer challenge, fetches a
    /// token and sends it again.
    async fn send(
        &mut self,
        what: &str,
        make: impl Fn(&Client) -> reqwest::RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let response = self
            .authorize(make(&self.http))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if response.status() != StatusCode::UNAUTHORIZED || self.token.is_some() {
            return Ok(response);
        }
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let Some(params) = challenge.strip_prefix("Bearer ") else {
            return Err(self.status(what, StatusCode::UNAUTHORIZED));
        };
        let field = |name: &str| {
            params.split(',').find_map(|kv| {
                let (k, v) = kv.trim().split_once('=')?;
                (k == name).then(|| v.trim_matches('"').to_string())
            })
        };
        let realm = field("realm").ok_or_else(|| self.status(what, StatusCode::UNAUTHORIZED))?;
        let mut query = Vec::new();
        if let Some(service) = field("service") {
            query.push(("service", service));
        }
        if let Some(scope) = field("scope") {
            query.push(("scope", scope));
        }
        let mut token_request = self.http.get(&realm).query(&query);
        // The login goes to the token service only over https (or to the
        // registry's own host).
        let realm_ok = reqwest::Url::parse(&realm).is_ok_and(|url| {
            url.scheme() == "https"
                || url
                    .host_str()
                    .is_some_and(|h| self.reference.registry.split(':').next() == Some(h))
        });
        if realm_ok && let Some((user, password)) = credentials(&self.reference.registry) {
            token_request = token_request.basic_auth(user, Some(password));
        }
        let answer: Value = token_request
            .send()
            .await
            .map_err(|e| self.unreachable(e))?
            .error_for_status()
            .map_err(|e| {
                self.status(
                    "a token request",
                    e.status().unwrap_or(StatusCode::UNAUTHORIZED),
                )
            })?
            .json()
            .await
            .map_err(|e| self.unreachable(e))?;
        let token = answer["token"]
            .as_str()
            .or(answer["access_token"].as_str())
            .ok_or_else(|| self.status("a token request", StatusCode::UNAUTHORIZED))?;
        self.token = Some(token.to_string());
        self.authorize(make(&self.http))
            .send()
            .await
            .map_err(|e| self.unreachable(e))
    }

    async fn blob_exists(&mut self, digest: &str) -> Result<bool, RegistryError> {
        let url = format!("{}/blobs/{digest}", self.reference.base());
        let response = self.send("a blob check", |c| c.head(&url)).await?;
        Ok(response.status().is_success())
    }

    async fn push_blob(&mut self, bytes: Vec<u8>, digest: &str) -> Result<(), RegistryError> {
        if self.blob_exists(digest).await? {
            return Ok(());
        }
        let start = format!("{}/blobs/uploads/", self.reference.base());
        let response = self.send("starting an upload", |c| c.post(&start)).await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(self.status("starting an upload", response.status()));
        }
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Invalid {
                reference: self.reference.to_string(),
                message: "the registry gave no upload location".into(),
            })?;
        let mut url = reqwest::Url::parse(&start)
            .and_then(|base| base.join(location))
            .map_err(|e| RegistryError::Invalid {
                reference: self.reference.to_string(),
                message: format!("bad upload location `{location}`: {e}"),
            })?;
        url.query_pairs_mut().append_pair("digest", digest);
        let response = self
            .send("a blob upload", |c| {
                c.put(url.clone())
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .body(bytes.clone())
            })
            .await?;
        if response.status() != StatusCode::CREATED {
            return Err(self.status("a blob upload", response.status()));
        }
        Ok(())
    }
}

/// The login for `registry`: `WEIR_REGISTRY_USER` / `WEIR_REGISTRY_PASSWORD`,
/// only when `WEIR_REGISTRY_HOST` names this registry (credentials never go
/// to another host).
fn credentials(registry: &str) -> Option<(String, String)> {
    let host = std::env::var("WEIR_REGISTRY_HOST").ok()?;
    if host != registry {
        return None;
    }
    let user = std::env::var("WEIR_REGISTRY_USER").ok()?;
    let password = std::env::var("WEIR_REGISTRY_PASSWORD").unwrap_or_default();
    Some((user, password))
}

fn sha256_bytes(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn read(path: &Path) -> Result<Vec<u8>, RegistryError> {
    std::fs::read(path).map_err(|source| RegistryError::Io {
        context: path.display().to_string(),
        source,
    })
}

/// Pushes the installed skill to `reference` (a tag); returns the
/// manifest's digest.
pub async fn push(
    store: &SkillStore,
    skill: &InstalledSkill,
    reference: &Reference,
) -> Result<String, RegistryError> {
    let mut session = Session::new(reference);
    let archive = read(&store.archive_of(skill))?;
    expect_digest(
        &store.archive_of(skill).display().to_string(),
        Some(&skill.digest),
        &sha256_bytes(&archive),
    )?;
    let manifest = PackageManifest::read(&skill.dir).map_err(|e| RegistryError::Invalid {
        reference: reference.to_string(),
        message: e.to_string(),
    })?;
    let mut layers = vec![json!({
        "mediaType": ARCHIVE_MEDIA_TYPE,
        "digest": skill.digest,
        "size": archive.len(),
        "annotations": { "org.opencontainers.image.title": format!("{}-{}.tar.gz", skill.name, skill.version) },
    })];
    session.push_blob(archive, &skill.digest).await?;
    for (name, component) in &manifest.components {
        let path = skill.dir.join(&component.path);
        let bytes = read(&path)?;
        let digest = format!("sha256:{}", component.sha256);
        layers.push(json!({
            "mediaType": WASM_MEDIA_TYPE,
            "digest": digest,
            "size": bytes.len(),
            "annotations": { "org.opencontainers.image.title": format!("{name}.wasm") },
        }));
        session.push_blob(bytes, &digest).await?;
    }
    let layer_digests: Vec<&Value> = layers.iter().map(|l| &l["digest"]).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": layer_digests,
    }))
    .expect("JSON");
    let config_digest = sha256_bytes(&config);
    let config_len = config.len();
    session.push_blob(config, &config_digest).await?;
    let oci_manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": { "mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config_len },
        "layers": layers,
        "annotations": {
            "org.opencontainers.image.title": skill.name,
            "org.opencontainers.image.version": skill.version,
            "org.opencontainers.image.description": skill.description,
        },
    }))
    .expect("JSON");
    let manifest_digest = sha256_bytes(&oci_manifest);
    let url = format!("{}/manifests/{}", reference.base(), reference.reference);
    let response = session
        .send("a manifest upload", |c| {
            c.put(&url)
                .header(header::CONTENT_TYPE, MANIFEST_MEDIA_TYPE)
                .body(oci_manifest.clone())
        })
        .await?;
    if response.status() != StatusCode::CREATED {
        return Err(session.status("a manifest upload", response.status()));
    }
    Ok(manifest_digest)
}

/// Pulls the skill at `reference` and installs it; by digest, the manifest
/// must have exactly that digest.
pub async fn install(
    store: &SkillStore,
    reference: &Reference,
    progress: &dyn Fn(u64, Option<u64>),
) -> Result<InstalledSkill, RegistryError> {
    install_pinned(store, reference, None, progress).await
}

/// As [`install`], and the package archive must have digest `expected`
/// (`sha256:<hex>`, as `weir skill pack` prints and weir.lock records).
pub async fn install_pinned(
    store: &SkillStore,
    reference: &Reference,
    expected: Option<&str>,
    progress: &dyn Fn(u64, Option<u64>),
) -> Result<InstalledSkill, RegistryError> {
    let mut session = Session::new(reference);
    let invalid = |message: String| RegistryError::Invalid {
        reference: reference.to_string(),
        message,
    };
    let url = format!("{}/manifests/{}", reference.base(), reference.reference);
    let response = session
        .send("a manifest request", |c| {
            c.get(&url).header(header::ACCEPT, MANIFEST_MEDIA_TYPE)
        })
        .await?;
    if !response.status().is_success() {
        return Err(session.status("a manifest request", response.status()));
    }
    let mut response = response;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| session.unreachable(e))? {
        body.extend_from_slice(&chunk);
        if body.len() > 4 << 20 {
            return Err(invalid("the manifest is over 4 MiB".into()));
        }
    }
    if reference.reference.starts_with("sha256:") {
        expect_digest(
            &reference.to_string(),
            Some(&reference.reference),
            &sha256_bytes(&body),
        )?;
    }
    let manifest: Value = serde_json::from_slice(&body)
        .map_err(|e| invalid(format!("the manifest is not JSON: {e}")))?;
    let layer = manifest["layers"]
        .as_array()
        .and_then(|layers| layers.iter().find(|l| l["mediaType"] == ARCHIVE_MEDIA_TYPE))
        .ok_or_else(|| invalid(format!("not a weir skill: no `{ARCHIVE_MEDIA_TYPE}` layer")))?;
    let digest = layer["digest"].as_str().unwrap_or("").to_string();
    if digest_hex(&digest).is_none() {
        return Err(invalid(format!("bad layer digest `{digest}`")));
    }
    expect_digest(&reference.to_string(), expected, &digest)?;
    let limit = super::archive::ArchiveLimits::default().max_total_bytes;
    let size = layer["size"].as_u64().unwrap_or(0);
    if size > limit {
        return Err(invalid(format!(
            "the package is {size} bytes, over the {limit} byte limit"
        )));
    }

    let staging = store.temp_dir()?;
    let file = staging.path().join("package.tar.gz");
    let url = format!("{}/blobs/{digest}", reference.base());
    let mut response = session.send("a blob download", |c| c.get(&url)).await?;
    if !response.status().is_success() {
        return Err(session.status("a blob download", response.status()));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| session.unreachable(e))? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > limit {
            return Err(invalid(format!(
                "the package is over the {limit} byte limit"
            )));
        }
        progress(bytes.len() as u64, Some(size));
    }
    std::fs::write(&file, &bytes).map_err(|source| RegistryError::Io {
        context: file.display().to_string(),
        source,
    })?;
    // Hashing and unpacking block: off the async workers.
    let store = store.clone();
    let source = reference.to_string();
    let installed = tokio::task::spawn_blocking(move || {
        let installed = store.install_archive(&file, Some(&digest), &source);
        drop(staging);
        installed
    })
    .await
    .map_err(|e| invalid(format!("the install task failed: {e}")))??;
    Ok(installed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse() {
        let r = Reference::parse("127.0.0.1:5000/skills/greeter:0.1.0").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "skills/greeter");
        assert_eq!(r.reference, "0.1.0");
        assert_eq!(r.base(), "http://127.0.0.1:5000/v2/skills/greeter");
        assert_eq!(r.to_string(), "127.0.0.1:5000/skills/greeter:0.1.0");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("ghcr.io/acme/greeter@{d}")).unwrap();
        assert_eq!(r.reference, d);
        assert_eq!(r.base(), "https://ghcr.io/v2/acme/greeter");
        assert_eq!(
            Reference::parse("ghcr.io/acme/greeter").unwrap().reference,
            "latest"
        );
        for bad in [
            "greeter",
            "acme/greeter:1",
            "ghcr.io/Acme/x:1",
            "ghcr.io/a@sha256:12",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}
