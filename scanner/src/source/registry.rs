//! Images in a registry (`HOST[:PORT]/REPO[:TAG|@DIGEST]`, `docker://…`),
//! pulled with the `oci-client` crate and scanned as they stream in.
//!
//! # How a pull goes
//!
//! 1. The reference is parsed and normalised as docker does (`alpine` is
//!    `docker.io/library/alpine:latest`, served by `index.docker.io`).
//! 2. `GET /v2/` (our own request) finds the scheme and the auth scheme:
//!    HTTPS first; plain HTTP only for loopback hosts and `--insecure-registry`
//!    hosts whose HTTPS handshake failed (the rule docker applies to
//!    `127.0.0.0/8`). A Basic challenge is checked with the credentials right
//!    away, so wrong ones fail before anything is pulled; a Bearer challenge
//!    goes through oci-client's token flow (realm, service, scope).
//! 3. The manifest is pulled raw and checked against its digest (oci-client
//!    checks the `Docker-Content-Digest` header and the reference digest; we
//!    check the descriptor digest and size again). An index is resolved with
//!    our own platform rules (variants, attestations skipped, an error listing
//!    the platforms offered), shared with OCI layouts.
//! 4. The config blob is pulled (at most [`super::MAX_JSON`] bytes) and its
//!    sha256 checked against the manifest.
//! 5. Layers stream from `pull_blob_stream` through a bounded channel into
//!    [`layer::scan_layer`] on a small thread pool, a few layers at a time:
//!    nothing touches the disk, downloads overlap with scanning, and the same
//!    [`crate::scan::finish`] as for local images verifies the blob digest and
//!    diff_id, builds the final filesystem and runs the checks.
//!
//! Blobs are always requested by bare digest, so descriptor `urls` (foreign
//! layers) are never fetched: a hostile manifest cannot make imgscan fetch
//! arbitrary URLs.
//!
//! # Retries and timeouts
//!
//! 429, 408 and 5xx answers, timeouts and broken connections are retried with
//! exponential backoff (`Retry-After` is honoured where imgscan sees the
//! response headers, on `GET /v2/`; oci-client does not expose them for
//! manifests and blobs). A blob whose connection drops half-way resumes with a
//! `Range` request from where it stopped; our own hash covers the whole blob.
//! Each request has a connect and idle-read limit, the whole image an overall
//! one.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use oci_client::Reference;
use oci_client::client::{
    BlobResponse, Certificate, CertificateEncoding, ClientConfig, ClientProtocol,
};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::oci::{self, Descriptor, Document};
use super::{Container, Input, LayerPlan, Plan, Selection};
use crate::digest::{self, Digest};
use crate::error::{Error, Result};
use crate::layer::{self, LayerIndex, LayerOptions};
use crate::model::Report;
use crate::scan::ScanOptions;

mod auth;
mod error;

pub use auth::{CredentialSource, Credentials};
pub use error::RegistryError;
use error::{Class, Failure};

const MANIFEST_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];
/// Chunks buffered between a download and its layer scanner (chunks are
/// what the HTTP body yields, at most a few tens of KiB each).
const CHANNEL_CHUNKS: usize = 64;
/// After a layer fails to parse, read at most this much more so that
/// oci-client's digest check can say whether the blob was corrupt.
const DRAIN_LIMIT: u64 = 256 << 20;
/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Most times one blob download resumes after a broken connection.
const MAX_RESUMES: u32 = 20;
const USER_AGENT: &str = concat!("imgscan/", env!("CARGO_PKG_VERSION"));

/// How to talk to registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Explicit credentials (`--username` + `--password-stdin`). When `None`,
    /// `IMGSCAN_USERNAME`/`IMGSCAN_PASSWORD`, then the docker and podman
    /// configs are consulted.
    pub credentials: Option<Credentials>,
    /// Extra trusted root certificates (PEM files), added to the system roots.
    pub ca_certs: Vec<PathBuf>,
    /// Registries (`host` or `host:port`) reached over plain HTTP or
    /// unverified TLS.
    pub insecure: Vec<String>,
    /// Limit for one image, from the first request to the last byte.
    pub timeout: Duration,
    /// Connect limit and idle-read limit of each request.
    pub request_timeout: Duration,
    /// Tries per request for retryable failures (1 = no retries).
    pub attempts: u32,
    /// First backoff delay (doubled on each retry, capped at 8 s).
    pub backoff: Duration,
    /// Layers downloaded and scanned at once.
    pub concurrency: usize,
    /// Layer scans shared between images of one run, by blob digest.
    pub layer_cache: Option<Arc<LayerCache>>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            credentials: None,
            ca_certs: Vec::new(),
            insecure: Vec::new(),
            timeout: Duration::from_secs(30 * 60),
            request_timeout: Duration::from_secs(60),
            attempts: 5,
            backoff: Duration::from_millis(250),
            concurrency: rayon::current_num_threads().max(3),
            layer_cache: None,
        }
    }
}

/// Layer scans by blob digest, so that a layer shared by several images of
/// one run is downloaded and scanned once.
#[derive(Debug, Default)]
pub struct LayerCache {
    layers: Mutex<BTreeMap<String, LayerIndex>>,
}

impl LayerCache {
    fn get(&self, digest: &Digest) -> Option<LayerIndex> {
        self.layers.lock().ok()?.get(&digest.to_string()).cloned()
    }

    fn insert(&self, digest: &Digest, idx: &LayerIndex) {
        if let Ok(mut m) = self.layers.lock() {
            m.insert(digest.to_string(), idx.clone());
        }
    }

    /// How many layers are cached.
    pub fn len(&self) -> usize {
        self.layers.lock().map_or(0, |m| m.len())
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Parses and normalises an image reference as docker does.
pub fn parse_reference(s: &str) -> std::result::Result<Reference, RegistryError> {
    s.parse::<Reference>()
        .map_err(|e| RegistryError::BadReference {
            reference: error::clip(s),
            why: e.to_string(),
        })
}

/// Whether `s` parses as an image reference.
pub fn is_reference(s: &str) -> bool {
    parse_reference(s).is_ok()
}

fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.rsplit_once(':').map_or(registry, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            registry
        }
    })
}

/// Whether the registry host is this machine (`localhost`, `127.0.0.0/8`, `::1`).
pub fn is_loopback(registry: &str) -> bool {
    let host = host_of(registry);
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn is_insecure(registry: &str, list: &[String]) -> bool {
    list.iter().any(|i| {
        let i = i
            .trim()
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/');
        i == registry || i == host_of(registry)
    })
}

/// A connected registry: the runtime and the network side.
struct Session {
    rt: tokio::runtime::Runtime,
    net: Arc<Net>,
}

/// The client, the resolved auth and the retry policy; shared with the
/// download tasks (which must not own the runtime).
struct Net {
    client: Client,
    reference: Reference,
    /// `host[:port]` as requests go (`index.docker.io` for Docker Hub).
    registry: String,
    auth: RegistryAuth,
    credentials: CredentialSource,
    deadline: Instant,
    opts: RegistryOptions,
}

/// What `GET /v2/` answered.
struct Ping {
    status: u16,
    challenge: Option<String>,
    body: String,
}

fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER))
}

fn jitter(base: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let half = (base.as_millis() as u64 / 2).max(1);
    Duration::from_millis(u64::from(nanos) % half)
}

impl Session {
    fn connect(reference: Reference, opts: &RegistryOptions) -> std::result::Result<Self, Error> {
        // reqwest and oci-client are built without a bundled crypto
        // provider; ring is ours. Installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("imgscan-net")
            .enable_all()
            .build()
            .map_err(|e| Error::read("starting the network runtime", e))?;
        let registry = reference.resolve_registry().to_owned();
        let insecure = is_insecure(&registry, &opts.insecure);
        let loopback = is_loopback(&registry);
        let mut pems = Vec::new();
        for path in &opts.ca_certs {
            let pem = std::fs::read(path).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| RegistryError::Setup {
                what: format!("--ca-cert {}", path.display()),
                why: format!("not a PEM certificate: {}", error::clip(&error::chain(&e))),
            })?;
            pems.push(pem);
        }
        let (auth, credentials) = auth::resolve(&registry, opts.credentials.as_ref());
        let deadline = Instant::now() + opts.timeout;
        let mut http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(opts.request_timeout)
            .read_timeout(opts.request_timeout)
            .danger_accept_invalid_certs(insecure);
        for pem in &pems {
            for c in reqwest::Certificate::from_pem_bundle(pem).unwrap_or_default() {
                http = http.tls_certs_merge([c]);
            }
        }
        let http = http.build().map_err(|e| RegistryError::Setup {
            what: "the HTTP client".into(),
            why: error::clip(&error::chain(&e)),
        })?;
        let mut net = Net {
            client: Client::default(),
            reference,
            registry,
            auth,
            credentials,
            deadline,
            opts: opts.clone(),
        };
        let (scheme, ping) = rt.block_on(net.choose_scheme(&http, loopback || insecure))?;
        net.check_ping(&rt, &http, scheme, &ping)?;
        let protocol = if scheme == "http" {
            ClientProtocol::HttpsExcept(vec![net.registry.clone()])
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            accept_invalid_certificates: insecure,
            extra_root_certificates: pems
                .into_iter()
                .map(|data| Certificate {
                    encoding: CertificateEncoding::Pem,
                    data,
                })
                .collect(),
            platform_resolver: None,
            read_timeout: Some(opts.request_timeout),
            connect_timeout: Some(opts.request_timeout),
            user_agent: USER_AGENT,
            ..ClientConfig::default()
        };
        net.client = Client::try_from(config).map_err(|e| RegistryError::Setup {
            what: "the registry client".into(),
            why: error::clip(&error::chain(&e)),
        })?;
        // The token flow (Bearer challenge) or Basic; errors here are the
        // token server refusing the credentials.
        let (client, reference, auth) =
            (net.client.clone(), net.reference.clone(), net.auth.clone());
        rt.block_on(net.retrying(|| {
            let (client, reference, auth) = (client.clone(), reference.clone(), auth.clone());
            async move {
                client
                    .auth(&reference, &auth, RegistryOperation::Pull)
                    .await
            }
        }))
        .map_err(|(f, n)| net.fail(f, n, "the token request"))?;
        Ok(Self {
            rt,
            net: Arc::new(net),
        })
    }
}

impl Net {
    /// `GET /v2/` over HTTPS, then plain HTTP when allowed.
    async fn choose_scheme(
        &self,
        http: &reqwest::Client,
        http_allowed: bool,
    ) -> std::result::Result<(&'static str, Ping), Error> {
        let https = self.ping(http, "https", None).await;
        let (f, n) = match https {
            Ok(p) => return Ok(("https", p)),
            Err(e) => e,
        };
        if http_allowed
            && (f.tls || f.class == Class::Connect)
            && let Ok(p) = self.ping(http, "http", None).await
        {
            // A TLS server answers plain HTTP with 400 ("Client sent an
            // HTTP request to an HTTPS server"): then the TLS error is the
            // one to report.
            let tls_server = p.status == 400 && p.body.to_ascii_lowercase().contains("https");
            if !tls_server {
                return Ok(("http", p));
            }
        }
        Err(self.fail(f, n, "GET /v2/"))
    }

    /// One `GET /v2/`, retried on 429/5xx (honouring `Retry-After`) and on
    /// connection failures.
    async fn ping(
        &self,
        http: &reqwest::Client,
        scheme: &str,
        basic: Option<(&str, &str)>,
    ) -> std::result::Result<Ping, (Failure, u32)> {
        let url = format!("{scheme}://{}/v2/", self.registry);
        let mut n = 0;
        loop {
            n += 1;
            let mut req = http.get(&url);
            if let Some((u, p)) = basic {
                req = req.basic_auth(u, Some(p));
            }
            let sent = tokio::time::timeout_at(self.deadline, req.send()).await;
            let (failure, wait) = match sent {
                Err(_) => return Err((self.overall_timeout(), n)),
                Ok(Err(e)) => (error::from_reqwest(&e), None),
                Ok(Ok(resp)) => {
                    let status = resp.status().as_u16();
                    let challenge = resp
                        .headers()
                        .get(reqwest::header::WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let wait = retry_after(resp.headers());
                    let body = resp.text().await.unwrap_or_default();
                    if matches!(status, 408 | 429 | 500 | 502 | 503 | 504) {
                        (
                            Failure {
                                class: Class::Transient,
                                status: Some(status),
                                message: error::clip(&body),
                                ..Failure::default()
                            },
                            wait,
                        )
                    } else {
                        return Ok(Ping {
                            status,
                            challenge,
                            body: error::clip(&body),
                        });
                    }
                }
            };
            if !self.may_retry(&failure, n) {
                return Err((failure, n));
            }
            self.backoff(n, wait, failure.status).await;
        }
    }

    fn check_ping(
        &self,
        rt: &tokio::runtime::Runtime,
        http: &reqwest::Client,
        scheme: &str,
        ping: &Ping,
    ) -> std::result::Result<(), Error> {
        match ping.status {
            200..=299 => Ok(()),
            401 => {
                let scheme_name = ping
                    .challenge
                    .as_deref()
                    .and_then(|c| c.split_whitespace().next())
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if scheme_name == "bearer" {
                    // oci-client's token flow handles it.
                    return Ok(());
                }
                let RegistryAuth::Basic(user, pass) = &self.auth else {
                    return Err(self.unauthorized(
                        "GET /v2/",
                        "; the registry wants a username and password: run `docker login`, or pass \
                         --username with --password-stdin, or set IMGSCAN_USERNAME and IMGSCAN_PASSWORD",
                    ));
                };
                let again = rt
                    .block_on(self.ping(http, scheme, Some((user, pass))))
                    .map_err(|(f, n)| self.fail(f, n, "GET /v2/"))?;
                match again.status {
                    200..=299 => Ok(()),
                    401 => Err(self.unauthorized(
                        "GET /v2/ with the credentials",
                        "; the username or password is wrong",
                    )),
                    s => Err(self.http_status(s, "GET /v2/", &again.body)),
                }
            }
            s => Err(self.http_status(s, "GET /v2/", &ping.body)),
        }
    }

    fn http_status(&self, status: u16, what: &str, body: &str) -> Error {
        RegistryError::Protocol {
            registry: self.registry.clone(),
            what: what.to_owned(),
            why: format!(
                "answered HTTP {status}, not a registry API (OCI distribution v2){}",
                if body.is_empty() {
                    String::new()
                } else {
                    format!(": {body}")
                }
            ),
        }
        .into()
    }

    fn unauthorized(&self, what: &str, hint: &str) -> Error {
        RegistryError::Unauthorized {
            registry: self.registry.clone(),
            what: what.to_owned(),
            credentials: self.credentials.to_string(),
            hint: hint.to_owned(),
        }
        .into()
    }

    fn overall_timeout(&self) -> Failure {
        Failure {
            timeout: true,
            overall: true,
            message: "the overall limit".into(),
            ..Failure::default()
        }
    }

    fn may_retry(&self, f: &Failure, n: u32) -> bool {
        let max = match f.class {
            Class::Transient => self.opts.attempts,
            Class::Connect => self.opts.attempts.min(2),
            Class::Permanent => 1,
        };
        n < max && !f.overall
    }

    async fn backoff(&self, n: u32, retry_after: Option<Duration>, status: Option<u16>) {
        let base = if status == Some(429) {
            self.opts.backoff.max(Duration::from_secs(1))
        } else {
            self.opts.backoff
        };
        let delay = retry_after.unwrap_or_else(|| {
            let exp = base.saturating_mul(1 << (n - 1).min(6));
            exp.min(Duration::from_secs(8)) + jitter(base)
        });
        let until = (Instant::now() + delay).min(self.deadline);
        tokio::time::sleep_until(until).await;
    }

    /// Runs an oci-client request with retries and the overall deadline.
    async fn retrying<T, F, Fut>(&self, mut op: F) -> std::result::Result<T, (Failure, u32)>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, OciDistributionError>>,
    {
        let mut n = 0;
        loop {
            n += 1;
            let failure = match tokio::time::timeout_at(self.deadline, op()).await {
                Err(_) => return Err((self.overall_timeout(), n)),
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => error::from_oci(&e),
            };
            if !self.may_retry(&failure, n) {
                return Err((failure, n));
            }
            self.backoff(n, None, failure.status).await;
        }
    }

    /// Turns a failed request into an error that says what happened.
    fn fail(&self, f: Failure, attempts: u32, what: &str) -> Error {
        let registry = self.registry.clone();
        let tries = if attempts > 1 {
            format!(" after {attempts} attempts")
        } else {
            String::new()
        };
        if let Some((expected, actual)) = f.mismatch {
            return Error::DigestMismatch {
                what: format!("{what} from {registry}"),
                expected,
                actual,
            };
        }
        if f.timeout {
            let limit = if f.overall {
                format!("--timeout {}s", self.opts.timeout.as_secs())
            } else {
                format!("--request-timeout {}s", self.opts.request_timeout.as_secs())
            };
            return RegistryError::Timeout {
                registry,
                what: what.to_owned(),
                limit,
            }
            .into();
        }
        if f.tls {
            return RegistryError::Tls {
                registry: registry.clone(),
                why: f.message,
                hint: format!(
                    "for a private CA pass --ca-cert FILE; to skip verification (or use plain \
                     HTTP) pass --insecure-registry {registry}"
                ),
            }
            .into();
        }
        if f.class == Class::Connect {
            return RegistryError::Unreachable {
                url: format!("{what} on {registry}"),
                registry,
                why: f.message,
                hint: "; check the host name and port, and the network".into(),
            }
            .into();
        }
        match f.status {
            Some(401) => {
                let hint = if self.credentials.is_anonymous() {
                    format!(
                        "; log in with `docker login {}`, or pass --username with --password-stdin \
                         (a registry may also answer 401 for a repository that does not exist)",
                        self.reference.registry()
                    )
                } else {
                    "; check the username and password, and that they may pull this repository"
                        .to_owned()
                };
                RegistryError::Unauthorized {
                    registry,
                    what: what.to_owned(),
                    credentials: self.credentials.to_string(),
                    hint: if f.message.is_empty() || f.message == "unauthorized" {
                        hint
                    } else {
                        format!("{hint} (registry said: {})", f.message)
                    },
                }
                .into()
            }
            Some(403) => RegistryError::Forbidden {
                registry,
                what: what.to_owned(),
                credentials: self.credentials.to_string(),
            }
            .into(),
            Some(404) => {
                let code = f.code.clone().unwrap_or_default();
                let subject = match code.as_str() {
                    "NAME_UNKNOWN" => format!("repository {}", self.reference.repository()),
                    _ => what.to_owned(),
                };
                RegistryError::NotFound {
                    registry,
                    what: subject,
                    code: if code.is_empty() {
                        "404".into()
                    } else {
                        format!("404 {code}")
                    },
                }
                .into()
            }
            Some(s) => RegistryError::Http {
                registry,
                what: what.to_owned(),
                status: match &f.code {
                    Some(c) => format!("{s} {c}"),
                    None => s.to_string(),
                },
                attempts: tries,
                message: f.message,
            }
            .into(),
            None => RegistryError::Transfer {
                registry,
                what: what.to_owned(),
                attempts: tries,
                why: f.message,
            }
            .into(),
        }
    }
}

/// Describes a reference's target for messages (`tag v1 of lab/app`).
fn describe_target(r: &Reference) -> String {
    match (r.digest(), r.tag()) {
        (Some(d), _) => format!("manifest {d} of {}", r.repository()),
        (None, Some(t)) => format!("tag {t} of {}", r.repository()),
        (None, None) => format!("repository {}", r.repository()),
    }
}

impl Session {
    /// Pulls a manifest or index, checked against its digest.
    fn pull_manifest(&self, r: &Reference, what: &str) -> Result<(Vec<u8>, Digest)> {
        let net = &self.net;
        let (body, digest) = self
            .rt
            .block_on(net.retrying(|| {
                let (client, r, auth) = (net.client.clone(), r.clone(), net.auth.clone());
                async move {
                    client
                        .pull_manifest_raw(&r, &auth, MANIFEST_MEDIA_TYPES)
                        .await
                }
            }))
            .map_err(|(f, n)| net.fail(f, n, what))?;
        if body.len() as u64 > super::MAX_JSON {
            return Err(Error::Limit {
                what: what.to_owned(),
                limit: format!("{} bytes", super::MAX_JSON),
                why: "manifests are small".into(),
            });
        }
        let digest = Digest::parse(&digest)?;
        digest::verify_bytes(what, &digest, &body)?;
        if let Some(want) = r.digest() {
            digest::verify_bytes(what, &Digest::parse(want)?, &body)?;
        }
        Ok((body.to_vec(), digest))
    }

    /// Pulls a small blob (the config) whole, checked against its digest.
    fn pull_small_blob(&self, d: &Descriptor, what: &str) -> Result<Vec<u8>> {
        let digest = d.parsed_digest()?;
        if let Some(size) = d.size
            && size as u64 > super::MAX_JSON
        {
            return Err(Error::Limit {
                what: what.to_owned(),
                limit: format!("{} bytes", super::MAX_JSON),
                why: "image configs are small".into(),
            });
        }
        let net = &self.net;
        let d_str = digest.to_string();
        let body = self
            .rt
            .block_on(net.retrying(|| {
                let (client, r, d_str) = (net.client.clone(), net.reference.clone(), d_str.clone());
                async move {
                    let mut s = client.pull_blob_stream(&r, d_str.as_str()).await?;
                    let mut out = Vec::new();
                    while let Some(chunk) = s.next().await {
                        let chunk = chunk?;
                        if (out.len() + chunk.len()) as u64 > super::MAX_JSON {
                            return Err(OciDistributionError::SpecViolationError(format!(
                                "blob larger than {} bytes",
                                super::MAX_JSON
                            )));
                        }
                        out.extend_from_slice(&chunk);
                    }
                    Ok(out)
                }
            }))
            .map_err(|(f, n)| net.fail(f, n, what))?;
        digest::verify_bytes(what, &digest, &body)?;
        Ok(body)
    }

    /// A tag was not found: says whether the repository exists, and which
    /// tags it has.
    fn explain_missing_tag(&self, r: &Reference) -> Error {
        let net = &self.net;
        let listed = self.rt.block_on(async {
            tokio::time::timeout(
                net.opts.request_timeout,
                net.client.list_tags(r, &net.auth, Some(1000), None),
            )
            .await
        });
        let (what, code) = match listed {
            Ok(Ok(t)) if t.tags.is_empty() => (
                format!("repository {} (it has no tags)", r.repository()),
                "404 MANIFEST_UNKNOWN".to_owned(),
            ),
            Ok(Ok(t)) => {
                let mut tags = t.tags;
                tags.sort();
                let shown: Vec<&str> = tags.iter().take(20).map(String::as_str).collect();
                (
                    format!(
                        "tag {} of {} (its tags: {}{})",
                        r.tag().unwrap_or("latest"),
                        r.repository(),
                        shown.join(", "),
                        if tags.len() > shown.len() {
                            ", …"
                        } else {
                            ""
                        }
                    ),
                    "404 MANIFEST_UNKNOWN".to_owned(),
                )
            }
            Ok(Err(e)) if error::from_oci(&e).status == Some(404) => (
                format!("repository {}", r.repository()),
                "404 NAME_UNKNOWN".to_owned(),
            ),
            _ => (
                format!("tag {} of {}", r.tag().unwrap_or("latest"), r.repository()),
                "404 MANIFEST_UNKNOWN".to_owned(),
            ),
        };
        RegistryError::NotFound {
            registry: net.registry.clone(),
            what,
            code,
        }
        .into()
    }

    /// Resolves the reference to a plan: manifest (through an index when
    /// there is one), config, layers.
    fn resolve(&self, sel: &Selection) -> Result<Plan> {
        let reference = &self.net.reference;
        let whole = reference.whole();
        let what = format!("the {}", describe_target(reference));
        let (mut bytes, mut digest) = match self.pull_manifest(reference, &what) {
            Err(Error::Registry(RegistryError::NotFound { .. }))
                if reference.digest().is_none() =>
            {
                return Err(self.explain_missing_tag(reference));
            }
            other => other?,
        };
        let mut media_type: Option<String> = None;
        let mut index_digest = None;
        for _depth in 0..4 {
            let doc_what = format!("manifest {digest} of {whole}");
            match oci::parse_document(&bytes, media_type.as_deref(), &doc_what)? {
                Document::Index(children) => {
                    let refs: Vec<&Descriptor> = children.iter().collect();
                    let picked =
                        oci::pick_platform(&refs, sel, &format!("image index {digest} ({whole})"))?
                            .clone();
                    let child = picked.parsed_digest()?;
                    let child_ref = reference.clone_with_digest(child.to_string());
                    let platform = picked
                        .platform
                        .as_ref()
                        .map(|p| {
                            super::Platform::new(&p.os, &p.architecture, p.variant.as_deref())
                                .to_string()
                        })
                        .unwrap_or_else(|| "(no platform)".into());
                    let child_what =
                        format!("manifest {child} (platform {platform}) listed by index {digest}");
                    let (b, d) = self.pull_manifest(&child_ref, &child_what)?;
                    oci::check_size(&picked, b.len() as u64, &child_what)?;
                    if d != child {
                        return Err(Error::DigestMismatch {
                            what: child_what,
                            expected: child.to_string(),
                            actual: d.to_string(),
                        });
                    }
                    index_digest = Some(digest);
                    media_type = picked.media_type.clone();
                    bytes = b;
                    digest = d;
                }
                Document::Manifest(m) => {
                    let cfg_digest = m.config.parsed_digest()?;
                    let cfg = self.pull_small_blob(&m.config, &format!("config {cfg_digest}"))?;
                    return oci::plan_from_config(
                        *m,
                        digest,
                        index_digest,
                        Some(whole),
                        "registry",
                        &cfg,
                    );
                }
            }
        }
        Err(Error::malformed(
            format!("the manifest of {whole}"),
            "indexes nested more than 4 deep",
        ))
    }
}

/// Shared between a download task and the scanner reading it.
#[derive(Default)]
struct BlobState {
    /// The error that ended the download.
    fatal: Mutex<Option<Error>>,
    /// oci-client's end-of-stream digest check failed: (expected, actual).
    mismatch: Mutex<Option<(String, String)>>,
}

impl BlobState {
    fn take_fatal(&self) -> Option<Error> {
        self.fatal.lock().ok()?.take()
    }

    fn mismatch(&self) -> Option<(String, String)> {
        self.mismatch.lock().ok()?.clone()
    }
}

/// Reads the chunks a download task sends.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur.advance(n);
        Ok(n)
    }
}

/// Aborts a task when dropped (a scanner that stops early stops its download).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a download task needs.
struct Pump {
    reference: Reference,
    digest: String,
    size: Option<u64>,
    what: String,
    tx: mpsc::Sender<io::Result<Bytes>>,
    state: Arc<BlobState>,
}

impl Net {
    /// Streams one blob into `p.tx`, resuming with `Range` requests after
    /// broken connections. Our own hash (in the layer scanner) covers the
    /// whole blob; oci-client's check runs on unresumed streams too.
    async fn pump(&self, p: Pump) {
        let mut offset: u64 = 0;
        let mut failures: u32 = 0;
        let mut resumes: u32 = 0;
        let fail = |f: Failure, n: u32| {
            let e = self.fail(f, n, &p.what);
            let msg = e.to_string();
            if let Ok(mut s) = p.state.fatal.lock() {
                *s = Some(e);
            }
            msg
        };
        'attempt: loop {
            let opened = tokio::time::timeout_at(self.deadline, async {
                if offset == 0 {
                    self.client
                        .pull_blob_stream(&p.reference, p.digest.as_str())
                        .await
                        .map(|s| (s, 0u64))
                } else {
                    match self
                        .client
                        .pull_blob_stream_partial(&p.reference, p.digest.as_str(), offset, None)
                        .await?
                    {
                        // The server ignored the range: skip what we have.
                        BlobResponse::Full(s) => Ok((s, offset)),
                        BlobResponse::Partial(s) => Ok((s, 0)),
                    }
                }
            })
            .await;
            let failure = match opened {
                Err(_) => self.overall_timeout(),
                Ok(Err(e)) => error::from_oci(&e),
                Ok(Ok((mut stream, mut skip))) => loop {
                    let Ok(next) = tokio::time::timeout_at(self.deadline, stream.next()).await
                    else {
                        break self.overall_timeout();
                    };
                    match next {
                        None => return,
                        Some(Ok(mut b)) => {
                            if skip > 0 {
                                let k = (skip as usize).min(b.len());
                                b.advance(k);
                                skip -= k as u64;
                            }
                            if b.is_empty() {
                                continue;
                            }
                            offset += b.len() as u64;
                            failures = 0;
                            if let Some(size) = p.size
                                && offset > size
                            {
                                let msg = fail(
                                    Failure {
                                        message: format!(
                                            "the registry sent more than the {size} bytes the manifest gives"
                                        ),
                                        ..Failure::default()
                                    },
                                    1,
                                );
                                let _ = p.tx.send(Err(io::Error::other(msg))).await;
                                return;
                            }
                            if p.tx.send(Ok(b)).await.is_err() {
                                // The scanner stopped.
                                return;
                            }
                        }
                        Some(Err(e)) => {
                            if let Some(m) = error::io_mismatch(&e) {
                                // All bytes were sent; our own check decides,
                                // this one backs it up.
                                if let Ok(mut s) = p.state.mismatch.lock() {
                                    *s = Some(m);
                                }
                                return;
                            }
                            break error::from_io(&e);
                        }
                    }
                },
            };
            failures += 1;
            let resumable = offset > 0 && failure.class != Class::Permanent && !failure.overall;
            if resumable && resumes < MAX_RESUMES && failures < self.opts.attempts.max(1) {
                resumes += 1;
                self.backoff(failures, None, failure.status).await;
                continue 'attempt;
            }
            if offset == 0 && self.may_retry(&failure, failures) {
                self.backoff(failures, None, failure.status).await;
                continue 'attempt;
            }
            let msg = fail(failure, failures);
            let _ = p.tx.send(Err(io::Error::other(msg))).await;
            return;
        }
    }
}

/// The registry as a [`Container`]: layers come from the network.
struct RegistryContainer<'a> {
    session: &'a Session,
    cache: Option<&'a LayerCache>,
}

impl Container for RegistryContainer<'_> {
    fn describe(&self) -> String {
        format!("registry image {}", self.session.net.reference)
    }

    fn exists(&self, _path: &str) -> bool {
        false
    }

    fn read_small(&self, path: &str, _limit: u64) -> Result<Vec<u8>> {
        Err(Error::MissingBlob {
            digest: path.to_owned(),
            what: "member".into(),
            container: self.describe(),
        })
    }

    fn scan_layer(&self, plan: &LayerPlan, opts: &LayerOptions) -> Result<LayerIndex> {
        let Some(digest) = &plan.digest else {
            return Err(Error::Unverifiable {
                what: format!("layer {}", plan.index),
                why: "the manifest gives no digest".into(),
            });
        };
        if let Some(hit) = self.cache.and_then(|c| c.get(digest)) {
            return Ok(hit);
        }
        let what = format!("layer {} blob {digest}", plan.index);
        let state = Arc::new(BlobState::default());
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let net = Arc::clone(&self.session.net);
        let pump = Pump {
            reference: net.reference.clone(),
            digest: digest.to_string(),
            size: plan.size,
            what: what.clone(),
            tx,
            state: Arc::clone(&state),
        };
        let task = self.session.rt.spawn(async move { net.pump(pump).await });
        let _abort = AbortOnDrop(task);
        let mut reader = ChannelReader {
            rx,
            cur: Bytes::new(),
        };
        match layer::scan_layer(&mut reader, opts) {
            Ok(idx) => {
                idx.raw.verify(&what, digest)?;
                if let Some((expected, actual)) = state.mismatch() {
                    // Our hash matched but the Docker-Content-Digest did not.
                    return Err(Error::DigestMismatch {
                        what: format!("{what} (Docker-Content-Digest)"),
                        expected,
                        actual,
                    });
                }
                if let Some(c) = self.cache {
                    idx.tar
                        .verify(&format!("layer {} diff_id", plan.index), &plan.diff_id)?;
                    c.insert(digest, &idx);
                }
                Ok(idx)
            }
            Err(e) => {
                if let Some(fatal) = state.take_fatal() {
                    return Err(fatal);
                }
                // Read on so that a corrupt blob is reported as such rather
                // than as the decompression error it caused.
                let _ = io::copy(&mut (&mut reader).take(DRAIN_LIMIT), &mut io::sink());
                if let Some(fatal) = state.take_fatal() {
                    return Err(fatal);
                }
                if let Some((expected, actual)) = state.mismatch() {
                    return Err(Error::DigestMismatch {
                        what,
                        expected,
                        actual,
                    });
                }
                Err(super::layer_error(plan, e))
            }
        }
    }
}

/// Pulls and scans the image `input` names in a registry.
pub fn scan(input: &Input, opts: &ScanOptions) -> Result<Report> {
    let raw = input.reference.as_deref().unwrap_or(&input.source);
    let reference = parse_reference(raw)?;
    let session = Session::connect(reference, &opts.registry)?;
    let plan = session.resolve(&opts.selection)?;
    let container = RegistryContainer {
        session: &session,
        cache: opts.registry.layer_cache.as_deref(),
    };
    // Layer downloads block their thread on the network, so the pool may be
    // larger than the CPU count; it bounds how many layers are in flight.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.registry.concurrency.max(1))
        .thread_name(|i| format!("imgscan-pull-{i}"))
        .build()
        .map_err(|e| Error::read("starting the layer pool", io::Error::other(e)))?;
    let report = pool.install(|| crate::scan::finish(&container, plan, input, opts));
    // Download tasks still unwinding are dropped with the runtime.
    session.rt.shutdown_background();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_normalise_like_docker() {
        let r = parse_reference("alpine").unwrap();
        assert_eq!(r.whole(), "docker.io/library/alpine:latest");
        assert_eq!(r.resolve_registry(), "index.docker.io");
        let r = parse_reference("127.0.0.1:5000/lab/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "lab/app");
        assert!(r.digest().is_some());
        assert!(parse_reference("Not/Valid").is_err());
        assert!(parse_reference("/abs/path.tar").is_err());
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example.com:5000"));
        assert!(!is_loopback("10.0.0.1"));
    }

    #[test]
    fn insecure_list_matches_host_or_host_port() {
        let l = vec!["reg.lan".to_owned(), "http://other:5000/".to_owned()];
        assert!(is_insecure("reg.lan:443", &l));
        assert!(is_insecure("other:5000", &l));
        assert!(!is_insecure("other:6000", &l));
    }
}
