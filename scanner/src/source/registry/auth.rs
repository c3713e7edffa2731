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
//! # Security
//!
//! Passwords live only in [`Credentials`] and oci-client's `RegistryAuth`,
//! whose `Debug` impls redact them; they are never formatted into messages.
//! Passing them on the command line is not offered, so they never show in
//! process listings.

use std::path::PathBuf;

use docker_credential::{CredentialRetrievalError, DockerCredential};
use oci_client::secrets::RegistryAuth;

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

#[cfg(test)]
mod tests {
    use super::*;

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
