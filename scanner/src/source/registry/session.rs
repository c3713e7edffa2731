//! Connecting to a registry (scheme, TLS, credentials, the token flow),
//! retrying requests, turning failures into errors that say what happened,
//! and resolving a reference to a [`Plan`].
//!
//! The HTTP client setup ([`http_client`]: user agent, timeouts, the extra
//! `ca_certs`, `insecure`) and the retry policy ([`may_retry`], [`backoff`],
//! [`retry_after`]) are shared with the listing client
//! ([`super::listing`]), so that a pull and a catalog walk of the same
//! registry trust the same roots and retry alike.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use oci_client::Reference;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use tokio::time::Instant;

use super::CredentialSource;
use super::auth;
use super::error::{self, Class, Failure};
use super::{RegistryError, RegistryOptions, is_insecure, is_loopback};
use crate::digest::{self, Digest};
use crate::error::{Error, Result};
use crate::source::oci::{self, Descriptor, Document};
use crate::source::{MAX_JSON, Plan, Platform, Selection};

use crate::source::media::MANIFESTS as MANIFEST_MEDIA_TYPES;
/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Longest backoff delay without a `Retry-After`.
const MAX_BACKOFF: Duration = Duration::from_secs(8);
const USER_AGENT: &str = concat!("imgscan/", env!("CARGO_PKG_VERSION"));

/// A connected registry: the runtime and the network side.
pub(super) struct Session {
    pub(super) rt: tokio::runtime::Runtime,
    pub(super) net: Arc<Net>,
}

/// The client, the resolved auth and the retry policy; shared with the
/// download tasks (which must not own the runtime).
pub(super) struct Net {
    pub(super) client: Client,
    pub(super) reference: Reference,
    /// `host[:port]` as requests go (`index.docker.io` for Docker Hub).
    pub(super) registry: String,
    pub(super) auth: RegistryAuth,
    pub(super) credentials: CredentialSource,
    pub(super) deadline: Instant,
    pub(super) opts: RegistryOptions,
}

/// What `GET /v2/` answered.
struct Ping {
    status: u16,
    challenge: Option<String>,
    body: String,
}

/// The `Retry-After` delay of an answer (seconds; capped at a minute).
pub(super) fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
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

/// Whether the `n`th failed try of a request is tried again: transient
/// failures up to `attempts` tries, connection failures twice, nothing
/// after the overall deadline.
pub(super) fn may_retry(f: &Failure, n: u32, attempts: u32) -> bool {
    let max = match f.class {
        Class::Transient => attempts,
        Class::Connect => attempts.min(2),
        Class::Permanent => 1,
    };
    n < max && !f.overall
}

/// Waits before try `n + 1`: `Retry-After` when the answer gave one, else
/// `base` doubled each try (at least a second after a 429; capped at 8 s),
/// with jitter; never past `deadline`.
pub(super) async fn backoff(
    n: u32,
    retry_after: Option<Duration>,
    status: Option<u16>,
    base: Duration,
    deadline: Instant,
) {
    let base = if status == Some(429) {
        base.max(Duration::from_secs(1))
    } else {
        base
    };
    let delay = retry_after.unwrap_or_else(|| {
        let exp = base.saturating_mul(1 << (n - 1).min(6));
        exp.min(MAX_BACKOFF) + jitter(base)
    });
    let until = (Instant::now() + delay).min(deadline);
    tokio::time::sleep_until(until).await;
}

/// Installs ring as rustls' crypto provider: reqwest and oci-client are
/// built without a bundled one. Installing twice is harmless.
pub(super) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Reads the extra root certificates (`--ca-cert`, serve's `ca_cert`), as
/// PEM files.
pub(super) fn read_ca_pems(
    paths: &[std::path::PathBuf],
) -> std::result::Result<Vec<Vec<u8>>, Error> {
    let mut pems = Vec::new();
    for path in paths {
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
    Ok(pems)
}

/// The reqwest client settings every registry request shares: the user
/// agent, the connect and idle-read limit (`request_timeout`), the system's
/// roots plus `pems`, and unverified TLS for an `insecure` registry.
pub(super) fn http_client(
    opts: &RegistryOptions,
    insecure: bool,
    pems: &[Vec<u8>],
) -> reqwest::ClientBuilder {
    let mut http = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(opts.request_timeout)
        .read_timeout(opts.request_timeout)
        .danger_accept_invalid_certs(insecure);
    for pem in pems {
        for c in reqwest::Certificate::from_pem_bundle(pem).unwrap_or_default() {
            http = http.tls_certs_merge([c]);
        }
    }
    http
}

impl Session {
    pub(super) fn connect(
        reference: Reference,
        opts: &RegistryOptions,
    ) -> std::result::Result<Self, Error> {
        install_crypto_provider();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("imgscan-net")
            .enable_all()
            .build()
            .map_err(|e| Error::read("starting the network runtime", e))?;
        let registry = reference.resolve_registry().to_owned();
        let insecure = is_insecure(&registry, &opts.insecure);
        let loopback = is_loopback(&registry);
        let pems = read_ca_pems(&opts.ca_certs)?;
        let (auth, credentials) = auth::resolve(&registry, opts.credentials.as_ref());
        let deadline = Instant::now() + opts.timeout;
        let http =
            http_client(opts, insecure, &pems)
                .build()
                .map_err(|e| RegistryError::Setup {
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

    pub(super) fn overall_timeout(&self) -> Failure {
        Failure {
            timeout: true,
            overall: true,
            message: "the overall limit".into(),
            ..Failure::default()
        }
    }

    pub(super) fn may_retry(&self, f: &Failure, n: u32) -> bool {
        may_retry(f, n, self.opts.attempts)
    }

    pub(super) async fn backoff(&self, n: u32, retry_after: Option<Duration>, status: Option<u16>) {
        backoff(n, retry_after, status, self.opts.backoff, self.deadline).await;
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
    pub(super) fn fail(&self, f: Failure, attempts: u32, what: &str) -> Error {
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
                    "for a private CA pass --ca-cert FILE (imgscan serve: `ca_cert` in the \
                     registry's [[registry]] entry); to skip verification (or use plain HTTP) \
                     pass --insecure-registry {registry} (imgscan serve: `insecure = true`)"
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
        if body.len() as u64 > MAX_JSON {
            return Err(Error::Limit {
                what: what.to_owned(),
                limit: format!("{} bytes", MAX_JSON),
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
            && size as u64 > MAX_JSON
        {
            return Err(Error::Limit {
                what: what.to_owned(),
                limit: format!("{} bytes", MAX_JSON),
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
                        if (out.len() + chunk.len()) as u64 > MAX_JSON {
                            return Err(OciDistributionError::SpecViolationError(format!(
                                "blob larger than {} bytes",
                                MAX_JSON
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
    pub(super) fn resolve(&self, sel: &Selection) -> Result<Plan> {
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
                            Platform::new(&p.os, &p.architecture, p.variant.as_deref()).to_string()
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
