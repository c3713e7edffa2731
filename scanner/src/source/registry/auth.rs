//! Where registry credentials come from, in this order:
//!
//! 1. explicit: `--username` with `--password-stdin` (given to the library as
//!    [`Credentials`]), or `IMGSCAN_USERNAME` + `IMGSCAN_PASSWORD`;
//! 2. the docker config, `$DOCKER_CONFIG/config.json` or
//!    `~/.docker/config.json`: `credHelpers[host]`, `auths[host]` (`auth` or
//!    `username`/`password`), then `credsStore` (through
//!    `docker-credential-NAME get`), read with the `docker_credential` crate;
//! 3. podman's `auth.json` (`$REGISTRY_AUTH_FILE`,
//!    `$XDG_RUNTIME_DIR/containers/auth.json`, `$DOCKER_CONFIG/containers/auth.json`);
//! 4. anonymous.
//!
//! Whatever is found is described by [`CredentialSource`] so that a 401 can
//! say which credentials were refused.
//!
//! Pulls answer a `Bearer` challenge through oci-client's token flow. The
//! listing client ([`super::listing`]) needs scopes oci-client does not ask
//! for (`registry:catalog:*`), so the pieces of that flow it runs itself
//! live here: [`parse_challenge`], the token answer ([`parse_token`]) and a
//! [`TokenCache`] by scope.
//!
//! # Security
//!
//! Passwords live only in [`Credentials`] and oci-client's `RegistryAuth`,
//! whose `Debug` impls redact them; they are never formatted into messages.
//! Passing them on the command line is not offered, so they never show in
//! process listings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use docker_credential::{CredentialRetrievalError, DockerCredential};
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

use super::credentials::{CredentialSource, Credentials};

fn docker_config_dir() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
}

fn podman_auth_file() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(x).join("containers/auth.json");
        if p.is_file() {
            return Some(p);
        }
    }
    docker_config_dir().map(|d| d.join("containers/auth.json"))
}

/// The keys docker uses for a registry host in config files and helpers.
fn server_keys(registry: &str) -> Vec<String> {
    match registry {
        "index.docker.io" | "docker.io" | "registry-1.docker.io" => vec![
            "https://index.docker.io/v1/".to_owned(),
            "index.docker.io".to_owned(),
            "docker.io".to_owned(),
        ],
        r => vec![r.to_owned()],
    }
}

/// Describes how a config file would answer for `key`, without secrets.
fn describe_origin(path: &std::path::Path, key: &str) -> String {
    let parsed: Option<serde_json::Value> = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let shown = path.display();
    let Some(v) = parsed else {
        return shown.to_string();
    };
    if let Some(h) = v
        .get("credHelpers")
        .and_then(|h| h.get(key))
        .and_then(|h| h.as_str())
        .filter(|h| !h.is_empty())
    {
        return format!("credential helper docker-credential-{h} (credHelpers in {shown})");
    }
    let in_auths = v.get("auths").and_then(|a| a.as_object()).is_some_and(|a| {
        a.keys().any(|k| {
            let k = k
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            let k = k.split('/').next().unwrap_or(k);
            server_keys(k).iter().any(|x| x == key) || k == key
        })
    });
    if in_auths {
        return format!("auths in {shown}");
    }
    if let Some(h) = v.get("credsStore").and_then(|h| h.as_str()) {
        return format!("credential store docker-credential-{h} (credsStore in {shown})");
    }
    shown.to_string()
}

fn describe_failure(e: &CredentialRetrievalError) -> String {
    match e {
        // The helper's stdout may hold a secret: name the helper, show a
        // line of its stderr only.
        CredentialRetrievalError::HelperFailure { helper, stderr, .. } => {
            let line = stderr.lines().next().unwrap_or("").trim();
            format!(
                "{helper} failed{}",
                if line.is_empty() {
                    String::new()
                } else {
                    format!(": {}", super::error::clip(line))
                }
            )
        }
        CredentialRetrievalError::HelperCommunicationError => {
            "the credential helper could not be run (is it on PATH?)".to_owned()
        }
        other => other.to_string().to_lowercase(),
    }
}

/// Looks up credentials for `registry` (as oci-client resolves it:
/// `index.docker.io` for Docker Hub) in the docker and podman configs.
fn from_configs(
    registry: &str,
    notes: &mut Vec<String>,
) -> Option<(RegistryAuth, CredentialSource)> {
    type Lookup = fn(&str) -> Result<DockerCredential, CredentialRetrievalError>;
    let sources: [(&str, Option<PathBuf>, Lookup); 2] = [
        (
            "docker config",
            docker_config_dir().map(|d| d.join("config.json")),
            docker_credential::get_credential,
        ),
        (
            "podman auth.json",
            podman_auth_file(),
            docker_credential::get_podman_credential,
        ),
    ];
    for (name, path, lookup) in sources {
        let Some(path) = path else { continue };
        if !path.is_file() {
            continue;
        }
        for key in server_keys(registry) {
            match lookup(&key) {
                Ok(DockerCredential::UsernamePassword(username, password)) => {
                    let origin = describe_origin(&path, &key);
                    return Some((
                        RegistryAuth::Basic(username.clone(), password),
                        CredentialSource::Config { username, origin },
                    ));
                }
                Ok(DockerCredential::IdentityToken(_)) => {
                    notes.push(format!(
                        "{name} {} has an identity token for {key}, which imgscan cannot exchange; \
                         use --username and --password-stdin",
                        path.display()
                    ));
                    break;
                }
                Err(CredentialRetrievalError::NoCredentialConfigured) => {}
                Err(e) => {
                    notes.push(format!(
                        "{name} {} for {key}: {}",
                        path.display(),
                        describe_failure(&e)
                    ));
                    break;
                }
            }
        }
    }
    None
}

/// Picks the credentials for `registry`.
pub(crate) fn resolve(
    registry: &str,
    explicit: Option<&Credentials>,
) -> (RegistryAuth, CredentialSource) {
    if let Some(c) = explicit.cloned().or_else(Credentials::from_env) {
        return (
            RegistryAuth::Basic(c.username.clone(), c.password),
            CredentialSource::Explicit {
                username: c.username,
                origin: c.origin,
            },
        );
    }
    let mut notes = Vec::new();
    if let Some(found) = from_configs(registry, &mut notes) {
        return found;
    }
    let mut searched = format!(
        "nothing for {registry} in {} or podman's auth.json",
        docker_config_dir().map_or_else(
            || "the docker config".to_owned(),
            |d| d.join("config.json").display().to_string()
        )
    );
    for n in notes {
        searched.push_str("; ");
        searched.push_str(&n);
    }
    (
        RegistryAuth::Anonymous,
        CredentialSource::Anonymous { searched },
    )
}

/// The `Authorization: Basic …` value for `c`. Never log it.
pub(crate) fn basic_authorization(c: &Credentials) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password))
    )
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `Basic realm="…"`.
    Basic,
    /// `Bearer realm="…",service="…",scope="…"`: a token is to be fetched
    /// from `realm`.
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

/// Token lifetime when the answer gives none (distribution's default).
const DEFAULT_TOKEN_SECS: u64 = 60;

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// A token service's answer: the token (`token`, or OAuth2's
/// `access_token`) and how long to keep it (`expires_in`, renewed a little
/// early), or what is wrong with it.
pub(crate) fn parse_token(body: &[u8]) -> Result<(String, Duration), String> {
    let answer: TokenAnswer =
        serde_json::from_slice(body).map_err(|e| format!("is not JSON: {e}"))?;
    let Some(value) = answer
        .token
        .or(answer.access_token)
        .filter(|t| !t.is_empty())
    else {
        return Err("holds no token".to_owned());
    };
    let secs = answer.expires_in.unwrap_or(DEFAULT_TOKEN_SECS).max(10) - 5;
    Ok((value, Duration::from_secs(secs)))
}

/// A cached bearer token.
#[derive(Clone)]
struct Token {
    value: String,
    expires: Instant,
}

/// Bearer tokens by the scope a request needs, until they expire. Its
/// `Debug` shows the scopes only.
#[derive(Default)]
pub(crate) struct TokenCache {
    tokens: Mutex<BTreeMap<String, Token>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scopes: Vec<String> = self
            .tokens
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("TokenCache")
            .field("scopes", &scopes)
            .finish()
    }
}

impl TokenCache {
    /// The token for `scope`, unless it expired.
    pub(crate) fn get(&self, scope: &str) -> Option<String> {
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

    /// Keeps `value` for `scope` for `ttl`.
    pub(crate) fn put(&self, scope: &str, value: String, ttl: Duration) {
        if let Ok(mut m) = self.tokens.lock() {
            m.insert(
                scope.to_owned(),
                Token {
                    value,
                    expires: Instant::now() + ttl,
                },
            );
        }
    }

    /// Drops the token for `scope` (the registry refused it).
    pub(crate) fn forget(&self, scope: &str) {
        if let Ok(mut m) = self.tokens.lock() {
            m.remove(scope);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn token_answers_parse() {
        let (t, ttl) = parse_token(br#"{"token":"abc","expires_in":300}"#).unwrap();
        assert_eq!((t.as_str(), ttl), ("abc", Duration::from_secs(295)));
        let (t, ttl) = parse_token(br#"{"access_token":"xyz"}"#).unwrap();
        assert_eq!((t.as_str(), ttl), ("xyz", Duration::from_secs(55)));
        assert!(parse_token(br#"{"token":""}"#).is_err());
        assert!(parse_token(b"<html>").is_err());
    }

    #[test]
    fn tokens_are_kept_by_scope_and_never_shown() {
        let c = TokenCache::default();
        c.put(
            "registry:catalog:*",
            "secret-token".into(),
            Duration::from_secs(60),
        );
        c.put("repository:a:pull", "old".into(), Duration::ZERO);
        assert_eq!(c.get("registry:catalog:*").as_deref(), Some("secret-token"));
        assert_eq!(c.get("repository:a:pull"), None);
        assert!(!format!("{c:?}").contains("secret-token"));
        c.forget("registry:catalog:*");
        assert_eq!(c.get("registry:catalog:*"), None);
    }

    #[test]
    fn basic_authorization_encodes_user_and_password() {
        let c = Credentials {
            username: "u".into(),
            password: "p".into(),
            origin: "test".into(),
        };
        assert_eq!(basic_authorization(&c), "Basic dTpw");
    }

    #[test]
    fn debug_redacts_the_password() {
        let c = Credentials {
            username: "u".into(),
            password: "hunter2".into(),
            origin: "test".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn docker_hub_has_three_keys() {
        assert_eq!(server_keys("index.docker.io").len(), 3);
        assert_eq!(server_keys("127.0.0.1:5000"), vec!["127.0.0.1:5000"]);
    }
}
