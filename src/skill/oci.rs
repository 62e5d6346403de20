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
//!
//! A registry is outside input: every request has a deadline that covers
//! its whole body, every body is read through a size bound, a login goes
//! only to the registry's own origin, and a tag already naming another
//! package of the same name and version is not overwritten unless asked.

use super::package::PackageManifest;
use super::store::{InstalledSkill, SkillStore, StoreError, digest_hex, expect_digest};
/// Why a body from a registry or download could not be read.
pub use crate::util::BodyError;
use crate::util::BoundedBody;
use reqwest::{Client, Response, StatusCode, header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;

/// The manifest's artifact type.
pub const ARTIFACT_TYPE: &str = "application/vnd.weir.skill.v1";
/// The package archive layer.
pub const ARCHIVE_MEDIA_TYPE: &str = "application/vnd.weir.skill.v1.tar+gzip";
/// The config blob (the wasm OCI artifact convention).
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// A component layer.
pub const WASM_MEDIA_TYPE: &str = "application/wasm";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// How weir talks to a registry (and its token service, and a download URL).
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Deadline of one request, from sending it to the end of its answer's
    /// body (a package download included).
    pub timeout: Duration,
    /// Largest manifest or token answer, in bytes.
    pub max_document_bytes: u64,
    /// Largest package archive, in bytes.
    pub max_package_bytes: u64,
    /// Push over a tag that names another package of the same skill name
    /// and version (`--force`).
    pub replace: bool,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            timeout: Duration::from_secs(300),
            max_document_bytes: 4 << 20,
            max_package_bytes: super::archive::ArchiveLimits::default().max_total_bytes,
            replace: false,
        }
    }
}

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
        // Both go into URLs as they are: a registry with `@`, `#` or `?`
        // would send requests (and the login) to another host, a tag with
        // `/`, `?` or `..` to another path.
        let valid_registry = registry
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
        if !valid_registry {
            return Err(bad(
                "the registry is a host and port: letters, digits, `.`, `-`, `:`, `[` and `]`",
            ));
        }
        let valid_tag = reference.starts_with("sha256:")
            || (reference.len() <= 128
                && !reference.starts_with(['.', '-'])
                && !reference.is_empty()
                && reference
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
        if !valid_tag {
            return Err(bad(
                "a tag is up to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`",
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
    /// An answer's body was too big, too slow or cut.
    #[error("{reference}: {source}{}", body_hint(source))]
    Body {
        /// What was asked for.
        reference: String,
        /// What went wrong.
        source: BodyError,
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

fn body_hint(error: &BodyError) -> &'static str {
    match error {
        BodyError::TooBig { .. } => {
            " (the server is not a registry weir can use, or is misbehaving)"
        }
        BodyError::TimedOut { .. } => {
            " (give it longer with --timeout SECONDS or WEIR_REGISTRY_TIMEOUT)"
        }
        BodyError::Transport { .. } => "",
    }
}

/// weir's HTTP client for registries and downloads: the deadline covers
/// each whole request, body included.
fn client(options: &RegistryOptions) -> Client {
    Client::builder()
        .user_agent(concat!("weir/", env!("CARGO_PKG_VERSION")))
        .timeout(options.timeout)
        .build()
        .expect("an HTTP client with default settings")
}

/// A client for one repository, handling auth challenges.
struct Session {
    http: Client,
    reference: Reference,
    options: RegistryOptions,
    token: Option<String>,
    /// Set when a login was not sent to a token service on another origin.
    withheld: Option<String>,
}

impl Session {
    fn new(reference: &Reference, options: &RegistryOptions) -> Session {
        Session {
            http: client(options),
            reference: reference.clone(),
            options: options.clone(),
            token: None,
            withheld: None,
        }
    }

    /// Sends `request` and reads its whole answer (at most `max_bytes`)
    /// within the deadline; returns the status and body.
    async fn fetch(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
        max_bytes: u64,
    ) -> Result<(StatusCode, Vec<u8>), RegistryError> {
        let started = tokio::time::Instant::now();
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let body = self.bounded(response, what, max_bytes, started)?;
        Ok((status, body.read_all().await.map_err(|e| self.body(e))?))
    }

    fn bounded(
        &self,
        response: Response,
        what: &str,
        max_bytes: u64,
        started: tokio::time::Instant,
    ) -> Result<BoundedBody, RegistryError> {
        BoundedBody::new(response, what, max_bytes, started, self.options.timeout)
            .map_err(|e| self.body(e))
    }

    fn body(&self, source: BodyError) -> RegistryError {
        RegistryError::Body {
            reference: self.reference.to_string(),
            source,
        }
    }

    fn unreachable(&self, source: reqwest::Error) -> RegistryError {
        RegistryError::Unreachable {
            reference: self.reference.to_string(),
            source,
        }
    }

    fn status(&self, what: &str, status: StatusCode) -> RegistryError {
        if let Some(realm) = &self.withheld
            && matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
        {
            return RegistryError::Invalid {
                reference: self.reference.to_string(),
                message: format!(
                    "the registry answered {status} to {what}: its token service {realm} is not on the registry's own origin, so weir did not send it your login (credentials go only to the registry itself; use the token service's host as the registry, or a registry that serves its own tokens)"
                ),
            };
        }
        RegistryError::Status {
            reference: self.reference.to_string(),
            what: what.to_string(),
            status,
        }
    }

    /// Adds the token or login, only to requests for the registry's own
    /// origin (an upload location may name any host).
    fn authorize(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, RegistryError> {
        let built = request.build().map_err(|e| self.unreachable(e))?;
        let ours = same_origin(built.url().as_str(), &self.reference.base());
        let request = reqwest::RequestBuilder::from_parts(self.http.clone(), built);
        if !ours {
            return Ok(request);
        }
        Ok(match (&self.token, credentials(&self.reference.registry)) {
            (Some(token), _) => request.bearer_auth(token),
            (None, Some((user, password))) => request.basic_auth(user, Some(password)),
            (None, None) => request,
        })
    }

    /// Sends the request built by `make`; on a bearer challenge, fetches a
    /// token and sends it again.
    async fn send(
        &mut self,
        what: &str,
        make: impl Fn(&Client) -> reqwest::RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let response = self
            .authorize(make(&self.http))?
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
        let Some(BearerChallenge {
            realm,
            service,
            scope,
        }) = BearerChallenge::parse(&challenge)
        else {
            return Err(self.status(what, StatusCode::UNAUTHORIZED));
        };
        let mut query = Vec::new();
        if let Some(service) = service {
            query.push(("service", service));
        }
        if let Some(scope) = scope {
            query.push(("scope", scope));
        }
        let mut token_request = self.http.get(&realm).query(&query);
        // The challenge is the registry's word: it may name any host (an
        // internal service, say). The login goes only to the registry's own
        // origin (scheme, host and port).
        if let Some((user, password)) = credentials(&self.reference.registry) {
            if same_origin(&realm, &self.reference.base()) {
                token_request = token_request.basic_auth(user, Some(password));
            } else {
                tracing::warn!(
                    registry = %self.reference.registry,
                    %realm,
                    "not sending the registry login to a token service on another origin"
                );
                self.withheld = Some(realm.clone());
            }
        }
        let (status, body) = self
            .fetch(
                "token service's answer",
                token_request,
                self.options.max_document_bytes,
            )
            .await?;
        if !status.is_success() {
            return Err(self.status("a token request", status));
        }
        let token = token_of(&body)
            .map_err(|message| RegistryError::Invalid {
                reference: self.reference.to_string(),
                message,
            })?
            .ok_or_else(|| self.status("a token request", StatusCode::UNAUTHORIZED))?;
        self.token = Some(token);
        self.authorize(make(&self.http))?
            .send()
            .await
            .map_err(|e| self.unreachable(e))
    }

    /// The manifest the reference names (its bytes, as digests cover them).
    async fn manifest(&mut self) -> Result<Vec<u8>, RegistryError> {
        let url = format!(
            "{}/manifests/{}",
            self.reference.base(),
            self.reference.reference
        );
        let started = tokio::time::Instant::now();
        let response = self
            .send("a manifest request", |c| {
                c.get(&url).header(header::ACCEPT, MANIFEST_MEDIA_TYPE)
            })
            .await?;
        if !response.status().is_success() {
            return Err(self.status("a manifest request", response.status()));
        }
        let body = self.bounded(
            response,
            "manifest",
            self.options.max_document_bytes,
            started,
        )?;
        body.read_all().await.map_err(|e| self.body(e))
    }

    /// Refuses to move a tag that names another package of `skill`'s name
    /// and version: installs by that tag would silently get other code.
    async fn check_tag(&mut self, skill: &InstalledSkill) -> Result<(), RegistryError> {
        if self.reference.reference.starts_with("sha256:") {
            return Ok(());
        }
        let body = match self.manifest().await {
            Ok(body) => body,
            Err(RegistryError::Status { status, .. }) if status == StatusCode::NOT_FOUND => {
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        // Anything but a weir skill of this name and version may be moved.
        let Ok(manifest) = serde_json::from_slice::<Value>(&body) else {
            return Ok(());
        };
        let annotations = &manifest["annotations"];
        let package = manifest["layers"]
            .as_array()
            .and_then(|layers| layers.iter().find(|l| l["mediaType"] == ARCHIVE_MEDIA_TYPE))
            .and_then(|layer| layer["digest"].as_str());
        match package {
            Some(digest)
                if digest != skill.digest
                    && annotations["org.opencontainers.image.title"] == skill.name.as_str()
                    && annotations["org.opencontainers.image.version"]
                        == skill.version.as_str() =>
            {
                Err(RegistryError::Invalid {
                    reference: self.reference.to_string(),
                    message: format!(
                        "this tag already names another package of {}@{} ({digest}, not {}): pushing would change what everyone installing it gets. Give the skill a new version, or pass --force to replace it",
                        skill.name, skill.version, skill.digest
                    ),
                })
            }
            _ => Ok(()),
        }
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

/// A `WWW-Authenticate: Bearer realm="...",service="...",scope="..."`
/// challenge (a registry's answer: untrusted).
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerChallenge {
    /// Where to ask for a token.
    pub realm: String,
    /// The `service` to ask it for.
    pub service: Option<String>,
    /// The `scope` to ask it for.
    pub scope: Option<String>,
}

impl BearerChallenge {
    /// The challenge in a `WWW-Authenticate` header; None if it is not a
    /// bearer challenge with a realm.
    #[doc(hidden)]
    pub fn parse(header: &str) -> Option<BearerChallenge> {
        let params = header.strip_prefix("Bearer ")?;
        let field = |name: &str| {
            params.split(',').find_map(|kv| {
                let (k, v) = kv.trim().split_once('=')?;
                (k == name).then(|| v.trim_matches('"').to_string())
            })
        };
        Some(BearerChallenge {
            realm: field("realm")?,
            service: field("service"),
            scope: field("scope"),
        })
    }
}

/// The token in a token service's answer (`token` or `access_token`);
/// an error if the answer is not JSON.
#[doc(hidden)]
pub fn token_of(body: &[u8]) -> Result<Option<String>, String> {
    let answer: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the token service's answer is not JSON: {e}"))?;
    Ok(answer["token"]
        .as_str()
        .or(answer["access_token"].as_str())
        .map(str::to_string))
}

/// The package layer of a weir skill's OCI manifest (a registry's answer:
/// untrusted).
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageLayer {
    /// `sha256:<64 lowercase hex digits>`.
    pub digest: String,
    /// Its declared size in bytes (0 if not given).
    pub size: u64,
}

impl PackageLayer {
    /// Reads the manifest's `application/vnd.weir.skill...` layer.
    #[doc(hidden)]
    pub fn parse(manifest: &[u8]) -> Result<PackageLayer, String> {
        let manifest: Value = serde_json::from_slice(manifest)
            .map_err(|e| format!("the manifest is not JSON: {e}"))?;
        let layer = manifest["layers"]
            .as_array()
            .and_then(|layers| layers.iter().find(|l| l["mediaType"] == ARCHIVE_MEDIA_TYPE))
            .ok_or_else(|| format!("not a weir skill: no `{ARCHIVE_MEDIA_TYPE}` layer"))?;
        let digest = layer["digest"].as_str().unwrap_or("").to_string();
        if digest_hex(&digest).is_none() {
            return Err(format!("bad layer digest `{digest}`"));
        }
        Ok(PackageLayer {
            digest,
            size: layer["size"].as_u64().unwrap_or(0),
        })
    }
}

/// True when `url` has the same scheme, host and port as `base`.
fn same_origin(url: &str, base: &str) -> bool {
    let origin = |text: &str| {
        reqwest::Url::parse(text).ok().map(|u| {
            (
                u.scheme().to_string(),
                u.host_str().map(str::to_ascii_lowercase),
                u.port_or_known_default(),
            )
        })
    };
    origin(url).is_some_and(|o| Some(o) == origin(base))
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
/// manifest's digest. A tag that already names another package of the same
/// skill name and version is left alone unless `options.replace`.
pub async fn push(
    store: &SkillStore,
    skill: &InstalledSkill,
    reference: &Reference,
    options: &RegistryOptions,
) -> Result<String, RegistryError> {
    let mut session = Session::new(reference, options);
    if !options.replace {
        session.check_tag(skill).await?;
    }
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
    install_pinned(
        store,
        reference,
        None,
        &RegistryOptions::default(),
        progress,
    )
    .await
}

/// As [`install`], and the package archive must have digest `expected`
/// (`sha256:<hex>`, as `weir skill pack` prints and weir.lock records).
pub async fn install_pinned(
    store: &SkillStore,
    reference: &Reference,
    expected: Option<&str>,
    options: &RegistryOptions,
    progress: &dyn Fn(u64, Option<u64>),
) -> Result<InstalledSkill, RegistryError> {
    let mut session = Session::new(reference, options);
    let invalid = |message: String| RegistryError::Invalid {
        reference: reference.to_string(),
        message,
    };
    let body = session.manifest().await?;
    if reference.reference.starts_with("sha256:") {
        expect_digest(
            &reference.to_string(),
            Some(&reference.reference),
            &sha256_bytes(&body),
        )?;
    }
    let PackageLayer { digest, size } = PackageLayer::parse(&body).map_err(invalid)?;
    expect_digest(&reference.to_string(), expected, &digest)?;
    let limit = options.max_package_bytes;
    if size > limit {
        return Err(invalid(format!(
            "the package is {size} bytes, over the {limit} byte limit"
        )));
    }

    let staging = store.temp_dir()?;
    let file = staging.path().join("package.tar.gz");
    let url = format!("{}/blobs/{digest}", reference.base());
    let started = tokio::time::Instant::now();
    let response = session.send("a blob download", |c| c.get(&url)).await?;
    if !response.status().is_success() {
        return Err(session.status("a blob download", response.status()));
    }
    let body = BoundedBody::new(response, "package", limit, started, options.timeout)
        .map_err(|e| session.body(e))?;
    save(body, &file, Some(size), progress)
        .await
        .map_err(|e| e.for_reference(&reference.to_string()))?;
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

/// Downloads the package archive at `url` (https, or http) to `file`
/// within `options`' bounds; returns its size.
pub async fn download(
    url: &str,
    file: &Path,
    options: &RegistryOptions,
    progress: &dyn Fn(u64, Option<u64>),
) -> Result<u64, RegistryError> {
    let failed = |message: String| RegistryError::Invalid {
        reference: url.to_string(),
        message,
    };
    let started = tokio::time::Instant::now();
    let response = client(options)
        .get(url)
        .send()
        .await
        .map_err(|e| failed(format!("cannot fetch it: {e}")))?;
    if !response.status().is_success() {
        return Err(failed(format!("answered {}", response.status())));
    }
    let total = response.content_length();
    let body = BoundedBody::new(
        response,
        "package",
        options.max_package_bytes,
        started,
        options.timeout,
    )
    .map_err(|source| RegistryError::Body {
        reference: url.to_string(),
        source,
    })?;
    save(body, file, total, progress)
        .await
        .map_err(|e| e.for_reference(url))
}

/// Why saving a body failed, before it is put in terms of a reference.
enum SaveError {
    Body(BodyError),
    Io(std::io::Error, String),
}

impl SaveError {
    fn for_reference(self, reference: &str) -> RegistryError {
        match self {
            SaveError::Body(source) => RegistryError::Body {
                reference: reference.to_string(),
                source,
            },
            SaveError::Io(source, context) => RegistryError::Io { context, source },
        }
    }
}

/// Streams `body` into a new `file`, reporting progress (of `total` when
/// known); returns the bytes written.
async fn save(
    mut body: BoundedBody,
    file: &Path,
    total: Option<u64>,
    progress: &dyn Fn(u64, Option<u64>),
) -> Result<u64, SaveError> {
    use tokio::io::AsyncWriteExt;
    let io = |e| SaveError::Io(e, file.display().to_string());
    let mut out = tokio::fs::File::create(file).await.map_err(io)?;
    while let Some(chunk) = body.chunk().await.map_err(SaveError::Body)? {
        out.write_all(&chunk).await.map_err(io)?;
        progress(body.received(), total);
    }
    out.flush().await.map_err(io)?;
    Ok(body.received())
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

    /// Found by the `oci` fuzz target: registries and tags go into URLs
    /// unescaped, so anything outside their grammar is refused.
    #[test]
    fn references_refuse_what_would_change_the_url() {
        for bad in [
            "ghcr.io/a:",
            "ghcr.io/a:-x",
            "ghcr.io/a:.x",
            "ghcr.io/a:x?digest=1",
            "ghcr.io/a:x#y",
            "ghcr.io/a:x y",
            "ghcr.io/a:x%2f..",
            "user:pw@evil.example/a:1",
            "evil.example?x/a:1",
            "evil.example#/a:1",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
        assert!(Reference::parse(&format!("ghcr.io/a:{}", "v".repeat(129))).is_err());
        for good in [
            "ghcr.io/a:V1.0_rc-2",
            "[::1]:5000/a:1",
            "localhost/a/b:_x",
            "reg-1.example.com:443/a:latest",
        ] {
            let r = Reference::parse(good).unwrap();
            assert_eq!(r.to_string(), good);
        }
    }
}
