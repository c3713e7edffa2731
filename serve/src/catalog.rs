//! A small read-only client for the registry endpoints that reconciliation
//! walks ([`super::reconcile`]): `GET /v2/_catalog`, `GET /v2/NAME/tags/list`,
//! `HEAD /v2/NAME/manifests/TAG` and `GET /v2/NAME/manifests/DIGEST`.
//!
//! oci-client has `catalog` and `list_tags`, but they drop the response
//! headers (the `Link` header is how a registry says there is another page,
//! [distribution spec, "Listing Tags"]), ask for a `repository:…:pull` token
//! where `/v2/_catalog` needs `registry:catalog:*`, and read bodies without a
//! bound. So this is reqwest with the few rules that matter:
//!
//! - credentials: the allowlist entry's username and password, sent as
//!   Basic; on a `Bearer` challenge a token is fetched from the realm the
//!   registry names, for the scope it names (as docker does), and cached
//!   until it expires;
//! - pagination: the `Link: <…>; rel="next"` target, taken only when it
//!   points at the same origin and the same endpoint;
//! - bounds: every body is read up to a limit, every request has a timeout.
//!
//! [distribution spec, "Listing Tags"]: https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-tags
//!
//! # Security
//!
//! Requests go only to the allowlist entry's `scheme://host:port`. A `Link`
//! or a redirect to any other origin is refused, and a token realm on plain
//! HTTP is refused for an HTTPS registry (it would carry the password in
//! clear). The password is never logged or formatted into an error.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;

use super::config::{RegistryEntry, read_ca_certs};

/// Largest catalog or tag-list page read (distribution 2.x ignores `n` on
/// tag lists and sends them all at once).
pub(crate) const MAX_LIST_BYTES: usize = 16 << 20;
/// Largest manifest read (distribution's own limit is 4 MiB).
pub(crate) const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// Largest token answer read.
const MAX_TOKEN_BYTES: usize = 1 << 20;
/// Connect limit of each request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Whole-request limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Token lifetime when the answer gives none (distribution's default).
const DEFAULT_TOKEN_SECS: u64 = 60;

/// The manifest types asked for (`Accept`) when resolving a tag.
pub(crate) use scanner::source::media::MANIFEST_ACCEPT;

/// Why a request gave nothing usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListError {
    /// Unreachable, timed out, or a 429/5xx answer: may clear by itself,
    /// so the sweep stops and tries again later.
    Unavailable(String),
    /// A 4xx answer for this resource (a repository deleted meanwhile, an
    /// account not allowed to list): the sweep skips it.
    Refused { status: u16, message: String },
    /// An answer that breaks the protocol (bad JSON, too large, a digest
    /// mismatch, a `Link` to elsewhere).
    Invalid(String),
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(m) | Self::Invalid(m) => f.write_str(m),
            Self::Refused { status, message } => write!(f, "{message} (HTTP {status})"),
        }
    }
}

impl std::error::Error for ListError {}

/// One answer, body read.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// A cached bearer token.
#[derive(Debug, Clone)]
struct Token {
    value: String,
    expires: Instant,
}

/// The listing client of one allowlist entry.
pub(crate) struct Client {
    http: reqwest::Client,
    /// `scheme://authority` of the entry.
    origin: String,
    https: bool,
    /// `Basic …` for the entry's credentials.
    basic: Option<String>,
    /// Bearer tokens by the scope our request needs.
    tokens: Mutex<BTreeMap<String, Token>>,
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

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Basic realm="…"` or `Bearer realm="…",service="…",scope="…"`
/// (RFC 7235 auth-params; quoted values may hold commas).
pub(crate) fn parse_challenge(v: &str) -> Option<Challenge> {
    let v = v.trim();
    let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    let mut rest = rest.trim_start();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = q.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            out.push(n);
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => out.push(c),
                }
            }
            (out, &q[end?..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        params.insert(key, value);
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge::Bearer {
        realm: params.remove("realm")?,
        service: params.remove("service"),
        scope: params.remove("scope"),
    })
}

/// The `rel="next"` target of a `Link` header, if any.
pub(crate) fn next_link(headers: &HeaderMap) -> Option<String> {
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

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Folds a reqwest error and its sources onto one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

impl Client {
    /// A client for `entry`.
    pub(crate) fn new(entry: &RegistryEntry) -> Result<Self, ListError> {
        // reqwest is built without a bundled crypto provider; ring is ours
        // (as in the scanner's registry source). Installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let origin = entry.url();
        let https = entry.scheme == "https";
        // Redirects only within the origin they started from.
        let policy = reqwest::redirect::Policy::custom(|attempt| {
            let same = attempt
                .previous()
                .first()
                .and_then(origin_of)
                .is_some_and(|o| origin_of(attempt.url()).as_deref() == Some(o.as_str()));
            if same && attempt.previous().len() < 5 {
                attempt.follow()
            } else {
                attempt.stop()
            }
        });
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!(
                "imgscan/",
                env!("CARGO_PKG_VERSION"),
                " (reconcile)"
            ))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(policy)
            .danger_accept_invalid_certs(https && entry.insecure);
        // The entry's private CA (`ca_cert`), added to the system's roots as
        // the scanner does for pulls (`--ca-cert`).
        if let Some(path) = &entry.ca_cert {
            let certs = read_ca_certs(path).map_err(|m| {
                ListError::Invalid(format!("ca_cert of registry `{}`: {m}", entry.name))
            })?;
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(|e| {
            ListError::Invalid(format!("setting up the HTTP client: {}", chain(&e)))
        })?;
        let basic = match (&entry.username, &entry.password) {
            (Some(u), Some(p)) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{}", p.expose()))
            )),
            _ => None,
        };
        Ok(Self {
            http,
            origin,
            https,
            basic,
            tokens: Mutex::new(BTreeMap::new()),
        })
    }

    /// Turns a `Link` target into a path and query on this registry, or
    /// refuses it: it must stay on the same origin and endpoint as `path`.
    pub(crate) fn follow(&self, path: &str, link: &str) -> Result<String, ListError> {
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

    fn cached_token(&self, scope: &str) -> Option<String> {
        let mut m = self.tokens.lock().ok()?;
        match m.get(scope) {
            Some(t) if t.expires > Instant::now() => Some(t.value.clone()),
            Some(_) => {
                m.remove(scope);
                None
            }
            None => None,
        }
    }

    /// Fetches a bearer token for `scope` from the challenge's realm.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        cache_as: &str,
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
        let mut rb = self.http.get(url);
        if let Some(b) = &self.basic {
            rb = rb.header(header::AUTHORIZATION, b);
        }
        let resp = rb.send().await.map_err(|e| {
            ListError::Unavailable(format!("getting a token from {realm}: {}", chain(&e)))
        })?;
        let status = resp.status();
        let body = read_body(resp, MAX_TOKEN_BYTES).await?;
        if !status.is_success() {
            return Err(classify_status(
                status,
                format!("the token service {realm} refused scope {scope}"),
            ));
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            ListError::Invalid(format!("the token answer from {realm} is not JSON: {e}"))
        })?;
        let Some(value) = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
        else {
            return Err(ListError::Invalid(format!(
                "the token answer from {realm} holds no token"
            )));
        };
        // Renew a little early.
        let secs = answer.expires_in.unwrap_or(DEFAULT_TOKEN_SECS).max(10) - 5;
        if let Ok(mut m) = self.tokens.lock() {
            m.insert(
                cache_as.to_owned(),
                Token {
                    value,
                    expires: Instant::now() + Duration::from_secs(secs),
                },
            );
        }
        Ok(())
    }

    /// `method path` (path and query, starting `/v2/`) with `accept`, read
    /// up to `limit` bytes. A 2xx answer is returned; anything else is a
    /// [`ListError`]. A 401 with a challenge is answered once.
    pub(crate) async fn fetch(
        &self,
        method: Method,
        path: &str,
        accept: Option<&str>,
        limit: usize,
    ) -> Result<Fetched, ListError> {
        let scope = scope_for(path);
        let what = format!("{method} {}{path}", self.origin);
        let mut challenged = false;
        loop {
            let mut rb = self
                .http
                .request(method.clone(), format!("{}{path}", self.origin));
            if let Some(a) = accept {
                rb = rb.header(header::ACCEPT, a);
            }
            if let Some(t) = self.cached_token(&scope) {
                rb = rb.bearer_auth(t);
            } else if let Some(b) = &self.basic {
                rb = rb.header(header::AUTHORIZATION, b);
            }
            let resp = rb
                .send()
                .await
                .map_err(|e| ListError::Unavailable(format!("{what}: {}", chain(&e))))?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && !challenged {
                challenged = true;
                let challenge = resp
                    .headers()
                    .get(header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_challenge);
                if let Some(Challenge::Bearer {
                    realm,
                    service,
                    scope: asked,
                }) = challenge
                {
                    if let Ok(mut m) = self.tokens.lock() {
                        m.remove(&scope);
                    }
                    let want = asked.unwrap_or_else(|| scope.clone());
                    self.fetch_token(&realm, service.as_deref(), &want, &scope)
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
    if resp
        .content_length()
        .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
    {
        return Err(ListError::Invalid(format!(
            "the answer of {url} is larger than {limit} bytes"
        )));
    }
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if body.len() + c.len() > limit {
                    return Err(ListError::Invalid(format!(
                        "the answer of {url} is larger than {limit} bytes"
                    )));
                }
                body.extend_from_slice(&c);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(ListError::Unavailable(format!(
                    "reading the answer of {url}: {}",
                    chain(&e)
                )));
            }
        }
    }
}

/// A header's value as text.
pub(crate) fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v: &HeaderValue| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(url: &str) -> RegistryEntry {
        let (scheme, authority) = super::super::config::split_url(url).unwrap();
        RegistryEntry {
            name: "r".into(),
            scheme,
            authority: authority.clone(),
            hosts: vec![authority],
            username: None,
            password: None,
            insecure: false,
            ca_cert: None,
            reconcile_every: None,
        }
    }

    #[test]
    fn challenges_parse() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="registry:catalog:*""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("registry:catalog:*".into()),
            })
        );
        // Quoted commas, escapes, unquoted values, odd spacing.
        assert_eq!(
            parse_challenge(
                r#"bearer realm="https://h/t", scope="repository:a/b:pull,push", service=x"#
            ),
            Some(Challenge::Bearer {
                realm: "https://h/t".into(),
                service: Some("x".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge(r#"Bearer service="no realm""#), None);
        assert_eq!(parse_challenge(r#"Bearer realm="unterminated"#), None);
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge(""), None);
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
        let c = Client::new(&entry("http://127.0.0.1:5000")).unwrap();
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
}
