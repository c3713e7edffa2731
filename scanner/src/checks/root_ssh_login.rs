//! `root-ssh-login`: root's `authorized_keys` in an image with an ssh
//! server that lets root log in; and `private-key`, private keys baked into
//! the image beyond the ssh host keys.
//!
//! The documentation `imgscan explain`, SARIF help and `docs/rules.md` show is
//! the Markdown of [`ROOT_SSH_LOGIN`] and [`PRIVATE_KEY`]
//! (`checks/docs/root-ssh-login.md`, `checks/docs/private-key.md`), included
//! here.
#![doc = "# `root-ssh-login`"]
#![doc = include_str!("docs/root-ssh-login.md")]
#![doc = "# `private-key`"]
#![doc = include_str!("docs/private-key.md")]

use serde::Serialize;

use super::base_name;
use super::escalation::{NewPath, push_path};
use super::{Check, Context, Findings, NewFinding, details};
use crate::model::{Closer, Resolution};
use crate::rules::{Reach, RuleId, RuleKind, RuleMeta, RuleStatus};
use crate::severity::Severity;

/// `root-ssh-login` (IS018).
pub const ROOT_SSH_LOGIN: RuleMeta = RuleMeta {
    id: RuleId::RootSshLogin,
    code: "IS018",
    name: "RootSshLogin",
    default_severity: Severity::High,
    summary: "root has authorized ssh keys and the image has an ssh server that lets root log in: whoever holds the key is root in every container of the image.",
    severity_note: "high: remote root access (it needs the ssh server to run and its port to be reachable); closed by a non-root runtime user, which cannot run sshd for other users.",
    // CWE-798: Use of Hard-coded Credentials.
    tags: &["remote-access", "path-to-root", "external/cwe/cwe-798"],
    status: RuleStatus::Active,
    kind: RuleKind::Path(Reach::Remote),
    explanation: include_str!("docs/root-ssh-login.md"),
};

/// `private-key` (IS019).
pub const PRIVATE_KEY: RuleMeta = RuleMeta {
    id: RuleId::PrivateKey,
    code: "IS019",
    name: "PrivateKey",
    default_severity: Severity::High,
    summary: "A private key (a user's ssh key, a TLS key) is baked into the image: every container, and everyone who can pull the image, has it.",
    severity_note: "high for a private key in a file the image's tools read as one (PEM or OpenSSH private key header); ssh host keys are `ssh-host-key`.",
    // CWE-321: Use of Hard-coded Cryptographic Key.
    tags: &["secrets", "external/cwe/cwe-321"],
    status: RuleStatus::Active,
    kind: RuleKind::Fact,
    explanation: include_str!("docs/private-key.md"),
};

/// `root-ssh-login` facts (with `steps` and `closed_by`).
#[derive(Debug, Serialize)]
pub struct RootSshFacts {
    /// The ssh server binary.
    pub server: String,
    /// Size in bytes of the `authorized_keys` file.
    pub keys_bytes: u64,
}

/// `private-key` details.
#[derive(Debug, Serialize)]
pub struct PrivateKeyDetails {
    /// The key's PEM header (`-----BEGIN RSA PRIVATE KEY-----`).
    pub header: String,
}

/// Reports `root-ssh-login` and `private-key`.
pub struct RootSshLogin;

const SERVERS: &[&str] = &[
    "usr/sbin/sshd",
    "usr/bin/sshd",
    "usr/sbin/dropbear",
    "usr/bin/dropbear",
];
const SSHD_CONFIG: &str = "etc/ssh/sshd_config";

/// File names of user ssh keys (OpenSSH's defaults, `ssh-keygen`).
const SSH_KEY_NAMES: &[&str] = &[
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
    "id_ecdsa_sk",
    "id_ed25519_sk",
];

/// Directories of TLS private keys (Debian `ssl-cert`, RHEL `pki`).
const KEY_DIRS: &[&str] = &["etc/ssl/private/", "etc/pki/tls/private/"];

/// Whether a path may hold a private key worth capturing: a user ssh key
/// by name, anything in a TLS private-key directory, a `*.key` file.
fn key_candidate(path: &str) -> bool {
    // Cheap first: this runs for every member. Every name matched below
    // ends in one of these bytes, unless it is in a key directory (under
    // `etc/`).
    let Some(last) = path.as_bytes().last() else {
        return false;
    };
    let by_name = matches!(last, b'a' | b'9' | b'k' | b'y' | b'm');
    let in_key_dir = path.starts_with("etc/") && KEY_DIRS.iter().any(|d| path.starts_with(d));
    if !by_name && !in_key_dir {
        return false;
    }
    let name = base_name(path);
    if path.starts_with("etc/ssh/") || path.starts_with("usr/share/") {
        // Host keys are `ssh-host-key`; documentation examples are not keys.
        return false;
    }
    SSH_KEY_NAMES.contains(&name)
        || (KEY_DIRS.iter().any(|d| path.starts_with(d)) && !name.ends_with(".pub"))
        || name.ends_with(".key")
        || name.ends_with(".pem")
}

/// The private-key header a file starts with (after white space).
fn private_header(data: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(&data[..data.len().min(4096)]);
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("-----BEGIN "))?;
    (line.contains("PRIVATE KEY-----")).then(|| line.to_owned())
}

/// Whether sshd's config forbids root logins (`PermitRootLogin no`): the
/// first setting wins in sshd_config(5), outside `Match` blocks.
fn root_login_forbidden(ctx: &Context<'_>) -> Option<String> {
    let c = ctx.fs.read(SSHD_CONFIG)?;
    let text = String::from_utf8_lossy(&c.data);
    for (i, line) in text.lines().enumerate() {
        let words: Vec<&str> = line
            .split('#')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        match words.as_slice() {
            [k, ..] if k.eq_ignore_ascii_case("match") => return None,
            [k, v, ..] if k.eq_ignore_ascii_case("permitrootlogin") => {
                return v
                    .eq_ignore_ascii_case("no")
                    .then(|| format!("/{SSHD_CONFIG} line {}", i + 1));
            }
            _ => {}
        }
    }
    None
}

impl Check for RootSshLogin {
    fn captures(path: &str) -> bool {
        path == SSHD_CONFIG || key_candidate(path)
    }

    fn run(&self, ctx: &Context<'_>, out: &mut Findings) {
        // Baked private keys: only captured files can be candidates (the
        // layer pipeline captured them by `key_candidate`).
        for (path, node) in ctx
            .inventory
            .select(|_, n| n.is_regular() && n.content().is_some())
        {
            if !key_candidate(&path) {
                continue;
            }
            let Some(c) = node.content() else {
                continue;
            };
            let Some(header) = private_header(&c.data) else {
                continue;
            };
            out.push(
                ctx,
                NewFinding {
                    rule: RuleId::PrivateKey,
                    severity: Severity::High,
                    at: Some((path.as_str(), node)),
                    message: format!("/{path} is a private key ({header}) baked into the image"),
                    details: details(&PrivateKeyDetails { header }),
                    subject: String::new(),
                },
            );
        }
        // root's authorized keys and an ssh server.
        let Some(server) = SERVERS
            .iter()
            .find_map(|s| ctx.fs.resolve(s).filter(|(_, n)| n.is_regular()))
        else {
            return;
        };
        if root_login_forbidden(ctx).is_some() {
            return;
        }
        let home = ctx.accounts.user_by_name("root").map_or_else(
            || "root".to_owned(),
            |u| u.home.trim_matches('/').to_owned(),
        );
        for name in ["authorized_keys", "authorized_keys2"] {
            let keys = format!("{home}/.ssh/{name}");
            let Some((kpath, knode)) = ctx
                .fs
                .resolve(&keys)
                .filter(|(_, n)| n.is_regular() && n.size > 0)
            else {
                continue;
            };
            let mut steps = vec![
                format!(
                    "/{kpath} holds {} bytes of authorized keys for root",
                    knode.size
                ),
                format!("/{} is an ssh server", server.0),
                match ctx.fs.resolve(SSHD_CONFIG) {
                    Some(_) => format!("/{SSHD_CONFIG} does not set PermitRootLogin no"),
                    None => "no sshd_config forbids root logins".to_owned(),
                },
            ];
            let runs_root = ctx.user.resolution == Resolution::Root;
            steps.push(if runs_root {
                "the container runs as root, so sshd can log root in".to_owned()
            } else {
                "only a container run as root can start sshd for root (the image's user is not root)".to_owned()
            });
            push_path(
                ctx,
                out,
                NewPath {
                    rule: RuleId::RootSshLogin,
                    severity: if runs_root {
                        Severity::High
                    } else {
                        Severity::Medium
                    },
                    at: Some((kpath.as_str(), knode)),
                    message: format!(
                        "root has authorized ssh keys in /{kpath} and /{} is installed: whoever holds the key logs in as root",
                        server.0
                    ),
                    facts: RootSshFacts {
                        server: format!("/{}", server.0),
                        keys_bytes: knode.size,
                    },
                    steps,
                    closed_by: vec![Closer::NonRootUser],
                    subject: String::new(),
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::packages::test_support::*;

    const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";

    #[test]
    fn keys_and_root_login() {
        let fs = fs_of(vec![vec![
            text("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
            text("root/.ssh/authorized_keys", "ssh-ed25519 AAAA me\n"),
            text("root/.ssh/id_ed25519", KEY),
            text(
                "etc/ssl/private/ssl-cert-snakeoil.key",
                "-----BEGIN PRIVATE KEY-----\nMII\n",
            ),
            text("etc/ssl/certs/x.pem", "-----BEGIN CERTIFICATE-----\n"),
            file("usr/sbin/sshd", 0o755),
        ]]);
        let out = run(&RootSshLogin, &fs, &config_user(None));
        assert_eq!(
            brief(&out.findings),
            [
                "private-key high /etc/ssl/private/ssl-cert-snakeoil.key",
                "private-key high /root/.ssh/id_ed25519",
                "root-ssh-login high /root/.ssh/authorized_keys"
            ]
        );
        assert!(captures_all(&[
            "root/.ssh/id_ed25519",
            "etc/ssl/private/a",
            "srv/tls.key"
        ]));
        assert!(!RootSshLogin::captures("etc/ssh/ssh_host_rsa_key"));
    }

    fn captures_all(paths: &[&str]) -> bool {
        paths.iter().all(|p| RootSshLogin::captures(p))
    }

    #[test]
    fn permit_root_login_no_closes_it() {
        let fs = fs_of(vec![vec![
            text("root/.ssh/authorized_keys", "ssh-ed25519 AAAA me\n"),
            text("etc/ssh/sshd_config", "PermitRootLogin no\n"),
            file("usr/sbin/sshd", 0o755),
        ]]);
        assert!(
            run(&RootSshLogin, &fs, &config_user(None))
                .findings
                .is_empty()
        );
    }
}
