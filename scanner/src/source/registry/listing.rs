//! A small read-only client for the registry endpoints that walk what a
//! registry holds (`imgscan serve`'s catalog reconciliation):
//! `GET /v2/_catalog`, `GET /v2/NAME/tags/list`, `HEAD /v2/NAME/manifests/TAG`
//! and `GET /v2/NAME/manifests/DIGEST`.
//!
//! oci-client has `catalog` and `list_tags`, but they drop the response
//! headers (the `Link` header is how a registry says there is another page,
//! [distribution spec, "Listing Tags"]), ask for a `repository:…:pull` token
//! where `/v2/_catalog` needs `registry:catalog:*`, and read bodies without a
//! bound. So this is reqwest, set up as pulls set it up, with the few rules
//! that matter:
//!
//! - connection: the pulls' HTTP client settings and retry policy
//!   (`session.rs`: the user agent, the extra `ca_certs` on top of the
//!   system's roots, unverified TLS for an `insecure` registry, retries of
//!   429/408/5xx and broken connections with backoff and `Retry-After`);
//! - credentials: [`RegistryOptions::credentials`] only (the docker and
//!   podman configs are not consulted: a listing sends what its caller
//!   configured, or nothing), sent as Basic; on a `Bearer` challenge a token
//!   is fetched from the realm the registry names, for the scope it names
//!   (as docker does), and cached until it expires (`auth.rs`'s challenge
//!   parser and token cache);
//! - pagination: the `Link: <…>; rel="next"` target, taken only when it
//!   points at the same origin and the same endpoint;
//! - bounds: every body is read up to a limit, every request has a timeout,
//!   every call (retries included) [`RegistryOptions::timeout`].
//!
//! Failures are a [`ListError`], sorted by what a walk should do next: stop
//! and come back later ([`ListError::Unavailable`]), skip this resource
//! ([`ListError::Refused`]) or distrust the answer ([`ListError::Invalid`]).
//!
//! [distribution spec, "Listing Tags"]: https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-tags
//!
//! # Security
//!
//! Requests go only to the registry's `scheme://host:port`. A `Link` or a
//! redirect to any other origin is refused, and a token realm on plain HTTP
//! is refused for an HTTPS registry (it would carry the password in clear).
//! The password is never logged or formatted into an error, and [`Client`]'s
//! `Debug` shows the origin only.

use std::fmt;
use std::time::Duration;

use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode, Url};
use sha2::{Digest as _, Sha256};
use tokio::time::Instant;

use super::auth::{self, Challenge, TokenCache};
use super::error::{self as classify, Class, Failure};
use super::session;
use super::{RegistryError, RegistryOptions, is_insecure};
use crate::error::Result;
use crate::source::media::MANIFEST_ACCEPT;

/// Largest catalog or tag-list page read (distribution 2.x ignores `n` on
/// tag lists and sends them all at once).
pub const MAX_LIST_BYTES: usize = 16 << 20;
/// Largest manifest read (distribution's own limit is 4 MiB).
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// Largest token answer read.
const MAX_TOKEN_BYTES: usize = 1 << 20;
/// Longest connect of each request (at most `request_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Redirects followed, within the origin.
const MAX_REDIRECTS: usize = 5;
const USER_AGENT: &str = concat!("imgscan/", env!("CARGO_PKG_VERSION"), " (listing)");

/// Why a request gave nothing usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// Unreachable, timed out, or a 429/5xx answer after the retries: may
    /// clear by itself, so a walk stops and tries again later.
    #[error("{0}")]
    Unavailable(String),
    /// A 4xx answer for this resource (a repository deleted meanwhile, an
    /// account not allowed to list): a walk skips it.
    #[error("{message} (HTTP {status})")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The request, and what was refused.
        message: String,
    },
    /// An answer that breaks the protocol (bad JSON, too large, a `Link` to
    /// elsewhere, a token realm refused).
    #[error("{0}")]
    Invalid(String),
}

/// One page of `/v2/_catalog` or `tags/list`, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// The JSON body (at most [`MAX_LIST_BYTES`]).
    pub body: Vec<u8>,
    /// The path and query of the next page (the `Link` target, checked to
    /// stay on the registry and the endpoint), when there is one.
    pub next: Option<String>,
}

/// A manifest as the registry sent it (not checked against any digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Its `Content-Type`.
    pub media_type: Option<String>,
    /// Its bytes (at most [`MAX_MANIFEST_BYTES`]).
    pub bytes: Vec<u8>,
}

/// One answer, body read.
#[derive(Debug)]
struct Fetched {
    headers: HeaderMap,
    body: Vec<u8>,
}

/// The listing client of one registry.
pub struct Client {
    http: reqwest::Client,
    /// `scheme://authority` of the registry.
    origin: String,
    https: bool,
    /// `Basic …` for the credentials. Never shown.
    basic: Option<String>,
    /// Bearer tokens by the scope our request needs.
    tokens: TokenCache,
    /// Tries per request, first backoff delay, limit of one call.
    attempts: u32,
    backoff: Duration,
    timeout: Duration,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("origin", &self.origin)
            .field("credentials", &self.basic.is_some())
            .finish_non_exhaustive()
    }
}

/// `scheme://host[:port]` of `url`, lowercase, with the default port left
/// out, to compare origins.
fn origin_of(url: &Url) -> Option<String> {
    let host = url.host_str()?.to_ascii_lowercase();
    Some(match url.port() {
        Some(p) => format!("{}://{host}:{p}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    })
}

/// The token scope a request for `path` needs.
fn scope_for(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    if path == "/v2/_catalog" {
        return "registry:catalog:*".to_owned();
    }
    let name = path
        .strip_prefix("/v2/")
        .and_then(|p| {
            p.rsplit_once("/tags/list")
                .map(|(n, _)| n)
                .or_else(|| p.rsplit_once("/manifests/").map(|(n, _)| n))
        })
        .unwrap_or("");
    format!("repository:{name}:pull")
}

/// The `rel="next"` target of a `Link` header, if any.
fn next_link(headers: &HeaderMap) -> Option<String> {
    for v in headers.get_all(header::LINK) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(',') {
            let Some((target, params)) = part
                .trim()
                .strip_prefix('<')
                .and_then(|p| p.split_once('>'))
            else {
                continue;
            };
            let next = params.split(';').any(|p| {
                let p = p.trim().to_ascii_lowercase();
                p == "rel=\"next\"" || p == "rel=next"
            });
            if next {
                return Some(target.trim().to_owned());
            }
        }
    }
    None
}

/// A header's value as text.
fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// ` after N attempts` when a request was tried more than once.
fn tries(n: u32) -> String {
    if n > 1 {
        format!(" after {n} attempts")
    } else {
        String::new()
    }
}

fn setup(what: &str, why: String) -> RegistryError {
    RegistryError::Setup {
        what: what.to_owned(),
        why,
    }
}

impl Client {
    /// A client for the registry at `url` (`http://host:port` or
    /// `https://host`), with `opts`' credentials, `ca_certs`, `insecure`
    /// list, `request_timeout`, `attempts`, `backoff` and `timeout` (the
    /// limit of one call, retries included). Nothing is sent yet.
    pub fn new(url: &str, opts: &RegistryOptions) -> Result<Self> {
        session::install_crypto_provider();
        let origin = url.trim().trim_end_matches('/').to_owned();
        let what = format!("the registry URL `{origin}`");
        let parsed = Url::parse(&origin).map_err(|e| setup(&what, e.to_string()))?;
        let https = match parsed.scheme() {
            "https" => true,
            "http" => false,
            s => return Err(setup(&what, format!("scheme {s}, not http or https")).into()),
        };
        let authority = origin.split_once("://").map_or("", |(_, a)| a);
        if authority.is_empty()
            || authority.contains(['/', '?', '#', '@'])
            || parsed.host_str().is_none()
        {
            return Err(setup(&what, "not scheme://host[:port]".to_owned()).into());
        }
        let insecure = https && is_insecure(authority, &opts.insecure);
        let pems = session::read_ca_pems(&opts.ca_certs)?;
        // Redirects only within the origin they started from.
        let policy = reqwest::redirect::Policy::custom(|attempt| {
            let same = attempt
                .previous()
                .first()
                .and_then(origin_of)
                .is_some_and(|o| origin_of(attempt.url()).as_deref() == Some(o.as_str()));
            if same && attempt.previous().len() < MAX_REDIRECTS {
                attempt.follow()
            } else {
                attempt.stop()
            }
        });
        let http = session::http_client(opts, insecure, &pems)
            .user_agent(USER_AGENT)
            .connect_timeout(opts.request_timeout.min(CONNECT_TIMEOUT))
            .timeout(opts.request_timeout)
            .redirect(policy)
            .build()
            .map_err(|e| setup("the HTTP client", classify::clip(&classify::chain(&e))))?;
        Ok(Self {
            http,
            origin,
            https,
            basic: opts.credentials.as_ref().map(auth::basic_authorization),
            tokens: TokenCache::default(),
            attempts: opts.attempts.max(1),
            backoff: opts.backoff,
            timeout: opts.timeout,
        })
    }

    /// One page of a list (`/v2/_catalog?n=…`, `/v2/NAME/tags/list?…`, or
    /// the previous page's [`ListPage::next`]): its body and the next page.
    pub async fn list_page(&self, path: &str) -> Result<ListPage, ListError> {
        let got = self
            .fetch(Method::GET, path, Some("application/json"), MAX_LIST_BYTES)
            .await?;
        let next = next_link(&got.headers)
            .map(|l| self.follow(path, &l))
            .transpose()?;
        Ok(ListPage {
            body: got.body,
            next,
        })
    }

    /// The digest the manifest `repo:reference` has: `Docker-Content-Digest`
    /// of a `HEAD`, or (not every registry sends it on `HEAD`) the sha256 of
    /// the manifest's bytes. As the registry said it: the caller checks it.
    pub async fn manifest_digest(&self, repo: &str, reference: &str) -> Result<String, ListError> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let got = self
            .fetch(Method::HEAD, &path, Some(MANIFEST_ACCEPT), 0)
            .await?;
        if let Some(d) = header_str(&got.headers, "docker-content-digest") {
            return Ok(d.trim().to_owned());
        }
        let got = self
            .fetch(
                Method::GET,
                &path,
                Some(MANIFEST_ACCEPT),
                MAX_MANIFEST_BYTES,
            )
            .await?;
        Ok(format!("sha256:{:x}", Sha256::digest(&got.body)))
    }

    /// The manifest `repo@reference`: its `Content-Type` and bytes.
    pub async fn manifest(&self, repo: &str, reference: &str) -> Result<Manifest, ListError> {
        let got = self
            .fetch(
                Method::GET,
                &format!("/v2/{repo}/manifests/{reference}"),
                Some(MANIFEST_ACCEPT),
                MAX_MANIFEST_BYTES,
            )
            .await?;
        Ok(Manifest {
            media_type: header_str(&got.headers, "content-type").map(str::to_owned),
            bytes: got.body,
        })
    }

    /// Turns a `Link` target into a path and query on this registry, or
    /// refuses it: it must stay on the same origin and endpoint as `path`.
    fn follow(&self, path: &str, link: &str) -> Result<String, ListError> {
        let base = Url::parse(&format!("{}{path}", self.origin))
            .map_err(|e| ListError::Invalid(format!("bad request path {path}: {e}")))?;
        let url = base
            .join(link)
            .map_err(|e| ListError::Invalid(format!("bad Link target `{link}`: {e}")))?;
        if origin_of(&url) != origin_of(&base) || url.path() != base.path() {
            return Err(ListError::Invalid(format!(
                "the Link header points at `{link}`, away from {}{}",
                self.origin,
                base.path()
            )));
        }
        Ok(match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        })
    }

    /// Sends the request `build` makes, again after a broken connection or
    /// a 429/408/5xx answer, as pulls retry (`session.rs`): the answer that
    /// ended it (a success, another status, or the last retryable one), and
    /// the tries it took. No answer at all is [`ListError::Unavailable`].
    async fn send(
        &self,
        what: &str,
        deadline: Instant,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<(reqwest::Response, u32), ListError> {
        let mut n = 0;
        loop {
            n += 1;
            let (failure, wait) = match tokio::time::timeout_at(deadline, build().send()).await {
                Err(_) => {
                    return Err(ListError::Unavailable(format!(
                        "{what}: timed out{} (limit {}s)",
                        tries(n),
                        self.timeout.as_secs()
                    )));
                }
                Ok(Err(e)) => (classify::from_reqwest(&e), None),
                Ok(Ok(resp)) => {
                    let status = resp.status().as_u16();
                    let failure = Failure {
                        class: classify::status_class(status),
                        status: Some(status),
                        ..Failure::default()
                    };
                    if failure.class != Class::Transient
                        || !session::may_retry(&failure, n, self.attempts)
                    {
                        return Ok((resp, n));
                    }
                    (failure, session::retry_after(resp.headers()))
                }
            };
            if !session::may_retry(&failure, n, self.attempts) {
                return Err(ListError::Unavailable(format!(
                    "{what}{}: {}",
                    tries(n),
                    failure.message
                )));
            }
            session::backoff(n, wait, failure.status, self.backoff, deadline).await;
        }
    }

    /// Fetches a bearer token for `scope` from the challenge's realm and
    /// keeps it as `cache_as`.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        cache_as: &str,
        deadline: Instant,
    ) -> Result<(), ListError> {
        let mut url = Url::parse(realm)
            .map_err(|e| ListError::Invalid(format!("bad token realm `{realm}`: {e}")))?;
        match url.scheme() {
            "https" => {}
            "http" if !self.https => {}
            s => {
                return Err(ListError::Invalid(format!(
                    "refusing the token realm `{realm}`: scheme {s} for an https registry"
                )));
            }
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            q.append_pair("scope", scope);
        }
        let what = format!("getting a token from {realm}");
        let (resp, n) = self
            .send(&what, deadline, || {
                let rb = self.http.get(url.clone());
                match &self.basic {
                    Some(b) => rb.header(header::AUTHORIZATION, b),
                    None => rb,
                }
            })
            .await?;
        let status = resp.status();
        let body = read_body(resp, MAX_TOKEN_BYTES).await?;
        if !status.is_success() {
            return Err(classify_status(
                status,
                format!(
                    "the token service {realm} refused scope {scope}{}",
                    tries(n)
                ),
            ));
        }
        let (value, ttl) = auth::parse_token(&body)
            .map_err(|m| ListError::Invalid(format!("the token answer from {realm} {m}")))?;
        self.tokens.put(cache_as, value, ttl);
        Ok(())
    }

    /// `method path` (path and query, starting `/v2/`) with `accept`, read
    /// up to `limit` bytes. A 2xx answer is returned; anything else is a
    /// [`ListError`]. A 401 with a challenge is answered once.
    async fn fetch(
        &self,
        method: Method,
        path: &str,
        accept: Option<&str>,
        limit: usize,
    ) -> Result<Fetched, ListError> {
        if !path.starts_with("/v2/") {
            return Err(ListError::Invalid(format!(
                "refusing to request {path}: not a registry API path"
            )));
        }
        let scope = scope_for(path);
        let url = format!("{}{path}", self.origin);
        let what = format!("{method} {url}");
        let deadline = Instant::now() + self.timeout;
        let mut challenged = false;
        loop {
            let token = self.tokens.get(&scope);
            let (resp, n) = self
                .send(&what, deadline, || {
                    let mut rb = self.http.request(method.clone(), &url);
                    if let Some(a) = accept {
                        rb = rb.header(header::ACCEPT, a);
                    }
                    if let Some(t) = &token {
                        rb = rb.bearer_auth(t);
                    } else if let Some(b) = &self.basic {
                        rb = rb.header(header::AUTHORIZATION, b);
                    }
                    rb
                })
                .await?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && !challenged {
                challenged = true;
                let challenge = header_str(resp.headers(), header::WWW_AUTHENTICATE.as_str())
                    .and_then(auth::parse_challenge);
                if let Some(Challenge::Bearer {
                    realm,
                    service,
                    scope: asked,
                }) = challenge
                {
                    self.tokens.forget(&scope);
                    let want = asked.unwrap_or_else(|| scope.clone());
                    self.fetch_token(&realm, service.as_deref(), &want, &scope, deadline)
                        .await?;
                    continue;
                }
            }
            let headers = resp.headers().clone();
            let body = if method == Method::HEAD {
                Vec::new()
            } else {
                read_body(resp, limit).await?
            };
            if !status.is_success() {
                let mut message = what;
                message.push_str(&tries(n));
                if status == StatusCode::UNAUTHORIZED {
                    message.push_str(if self.basic.is_some() {
                        ": the registry refused the configured credentials"
                    } else {
                        ": the registry needs credentials (username and password_file)"
                    });
                }
                return Err(classify_status(status, message));
            }
            return Ok(Fetched { headers, body });
        }
    }
}

/// 429, 408 and 5xx: [`ListError::Unavailable`]; other statuses:
/// [`ListError::Refused`].
fn classify_status(status: StatusCode, message: String) -> ListError {
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        ListError::Unavailable(format!("{message}: HTTP {}", status.as_u16()))
    } else {
        ListError::Refused {
            status: status.as_u16(),
            message,
        }
    }
}

/// Reads a body, refusing more than `limit` bytes.
async fn read_body(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, ListError> {
    let url = resp.url().clone();
    let too_large =
        || ListError::Invalid(format!("the answer of {url} is larger than {limit} bytes"));
    if resp
        .content_length()
        .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if body.len() + c.len() > limit {
                    return Err(too_large());
                }
                body.extend_from_slice(&c);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(ListError::Unavailable(format!(
                    "reading the answer of {url}: {}",
                    classify::clip(&classify::chain(&e))
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::registry::Credentials;

    fn client(url: &str) -> Client {
        Client::new(url, &RegistryOptions::default()).unwrap()
    }

    #[test]
    fn scopes_follow_the_endpoint() {
        assert_eq!(scope_for("/v2/_catalog?n=10"), "registry:catalog:*");
        assert_eq!(
            scope_for("/v2/lab/app/tags/list?n=2&last=v1"),
            "repository:lab/app:pull"
        );
        assert_eq!(
            scope_for("/v2/lab/app/manifests/sha256:00"),
            "repository:lab/app:pull"
        );
    }

    #[test]
    fn next_links_parse() {
        let mut h = HeaderMap::new();
        h.insert(
            header::LINK,
            r#"</v2/_catalog?last=lab%2Fb&n=2>; rel="next""#.parse().unwrap(),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("/v2/_catalog?last=lab%2Fb&n=2")
        );
        h.insert(
            header::LINK,
            r#"<https://x/doc>; rel="help""#.parse().unwrap(),
        );
        assert_eq!(next_link(&h), None);
        assert_eq!(next_link(&HeaderMap::new()), None);
    }

    #[test]
    fn links_stay_on_the_registry() {
        let c = client("http://127.0.0.1:5000");
        assert_eq!(
            c.follow("/v2/_catalog?n=2", "/v2/_catalog?last=lab%2Fb&n=2")
                .unwrap(),
            "/v2/_catalog?last=lab%2Fb&n=2"
        );
        assert_eq!(
            c.follow("/v2/_catalog", "http://127.0.0.1:5000/v2/_catalog?last=a")
                .unwrap(),
            "/v2/_catalog?last=a"
        );
        assert_eq!(
            c.follow("/v2/lab/a/tags/list", "?n=2&last=v1").unwrap(),
            "/v2/lab/a/tags/list?n=2&last=v1"
        );
        for bad in [
            "http://evil.example/v2/_catalog?last=a",
            "https://127.0.0.1:5000/v2/_catalog",
            "//evil.example/v2/_catalog",
            "/v2/other/tags/list",
            "/admin",
        ] {
            assert!(
                matches!(c.follow("/v2/_catalog", bad), Err(ListError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn statuses_sort_into_retry_or_skip() {
        assert!(matches!(
            classify_status(StatusCode::SERVICE_UNAVAILABLE, "x".into()),
            ListError::Unavailable(_)
        ));
        assert!(matches!(
            classify_status(StatusCode::TOO_MANY_REQUESTS, "x".into()),
            ListError::Unavailable(_)
        ));
        assert_eq!(
            classify_status(StatusCode::NOT_FOUND, "x".into()),
            ListError::Refused {
                status: 404,
                message: "x".into()
            }
        );
    }

    #[test]
    fn only_registry_urls_are_taken() {
        for bad in [
            "ftp://x",
            "http://",
            "http://x/v2/",
            "http://user@x",
            "x:5000",
        ] {
            assert!(
                Client::new(bad, &RegistryOptions::default()).is_err(),
                "{bad}"
            );
        }
        assert_eq!(
            client("https://Reg.example:443/").origin,
            "https://Reg.example:443"
        );
    }

    #[test]
    fn the_password_is_never_shown() {
        let opts = RegistryOptions {
            credentials: Some(Credentials {
                username: "u".into(),
                password: "hunter2".into(),
                origin: "test".into(),
            }),
            ..RegistryOptions::default()
        };
        let c = Client::new("https://127.0.0.1:5000", &opts).unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("aHVudGVy"),
            "{shown}"
        );
    }

    /// Requests stay on the registry's API: nothing is sent for other paths
    /// or for a token realm on plain HTTP behind an https registry.
    #[test]
    fn refusals_happen_before_sending() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let c = client("https://127.0.0.1:9");
        let e = rt
            .block_on(c.fetch(Method::GET, "/admin", None, 10))
            .unwrap_err();
        assert!(matches!(e, ListError::Invalid(_)), "{e}");
        let deadline = Instant::now() + Duration::from_secs(5);
        let e = rt
            .block_on(c.fetch_token("http://127.0.0.1:9/token", None, "s", "s", deadline))
            .unwrap_err();
        assert!(
            matches!(&e, ListError::Invalid(m) if m.contains("refusing the token realm")),
            "{e}"
        );
    }
}
