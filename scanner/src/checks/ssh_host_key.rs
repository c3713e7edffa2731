//! `ssh-host-key`: ssh server host private keys baked into the image.
//!
//! The documentation `imgscan explain`, SARIF help and `docs/rules.md` show is
//! the Markdown of [`SSH_HOST_KEY`] (`checks/docs/ssh-host-key.md`), included
//! here.
#![doc = include_str!("docs/ssh-host-key.md")]

use serde::Serialize;

use super::{Check, Context, Findings, NewFinding, details};
use crate::rules::{RuleId, RuleKind, RuleMeta, RuleStatus};
use crate::severity::Severity;

/// `ssh-host-key` (IS010).
pub const SSH_HOST_KEY: RuleMeta = RuleMeta {
    id: RuleId::SshHostKey,
    code: "IS010",
    name: "SshHostKey",
    default_severity: Severity::Medium,
    summary: "An ssh server host private key is baked into the image.",
    severity_note: "medium: every container of the image shares the host key, so one leaked container lets anyone impersonate all of them; it is not a way to root.",
    // CWE-321: Use of Hard-coded Cryptographic Key.
    tags: &["remote-access", "external/cwe/cwe-321"],
    status: RuleStatus::Active,
    kind: RuleKind::Fact,
    explanation: include_str!("docs/ssh-host-key.md"),
};

/// `ssh-host-key` details.
#[derive(Debug, Serialize)]
pub struct SshHostKeyDetails {
    /// The key type from the file name: `rsa`, `ecdsa`, `ed25519`, `dss`,
    /// ... (`rsa1` for OpenSSH's protocol 1 `ssh_host_key`).
    pub key_type: String,
    /// Whose key it is: `openssh` or `dropbear`.
    pub server: &'static str,
}

/// Reports `ssh-host-key`.
pub struct SshHostKey;

/// The key type if `name` is a host private key of `server`.
fn key_type(server: &str, name: &str) -> Option<String> {
    let middle = match server {
        "openssh" if name == "ssh_host_key" => return Some("rsa1".to_owned()),
        "openssh" => name.strip_prefix("ssh_host_")?.strip_suffix("_key")?,
        _ => name.strip_prefix("dropbear_")?.strip_suffix("_host_key")?,
    };
    (!middle.is_empty()).then(|| middle.to_owned())
}

impl Check for SshHostKey {
    fn run(&self, ctx: &Context<'_>, out: &mut Findings) {
        for (server, dir) in [("dropbear", "etc/dropbear"), ("openssh", "etc/ssh")] {
            let Some(dir) = ctx.fs.canonical(dir, true) else {
                continue;
            };
            for (name, node) in ctx.fs.children(&dir) {
                if !node.is_regular() {
                    continue;
                }
                let Some(kind) = key_type(server, name) else {
                    continue;
                };
                let path = format!("{dir}/{name}");
                out.push(
                    ctx,
                    NewFinding {
                        rule: RuleId::SshHostKey,
                        severity: Severity::Medium,
                        at: Some((&path, node)),
                        message: format!(
                            "{server} host private key /{path} ({kind}) is baked into the image"
                        ),
                        details: details(&SshHostKeyDetails {
                            key_type: kind,
                            server,
                        }),
                        subject: String::new(),
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::packages::test_support::*;

    #[test]
    fn openssh_and_dropbear_private_keys() {
        let fs = fs_of(vec![vec![
            dir("etc/ssh", 0o755),
            file("etc/ssh/ssh_host_ed25519_key", 0o600),
            file("etc/ssh/ssh_host_ed25519_key.pub", 0o644),
            file("etc/ssh/ssh_host_rsa_key", 0o600),
            file("etc/ssh/ssh_host_ecdsa_key", 0o600),
            file("etc/ssh/ssh_host_key", 0o600),
            file("etc/ssh/sshd_config", 0o644),
            file("etc/ssh/ssh_host__key", 0o600),
            dir("etc/ssh/ssh_host_dir_key", 0o700),
            symlink("etc/ssh/ssh_host_dsa_key", "/nowhere"),
            file("etc/dropbear/dropbear_rsa_host_key", 0o600),
            file("etc/dropbear/dropbear_ed25519_host_key.pub", 0o600),
            file("root/ssh_host_rsa_key", 0o600),
        ]]);
        let out = run(&SshHostKey, &fs, &config_user(None));
        assert_eq!(
            brief(&out.findings),
            [
                "ssh-host-key medium /etc/dropbear/dropbear_rsa_host_key",
                "ssh-host-key medium /etc/ssh/ssh_host_ecdsa_key",
                "ssh-host-key medium /etc/ssh/ssh_host_ed25519_key",
                "ssh-host-key medium /etc/ssh/ssh_host_key",
                "ssh-host-key medium /etc/ssh/ssh_host_rsa_key",
            ]
        );
        let types: Vec<&str> = out
            .findings
            .iter()
            .map(|f| f.details["key_type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["rsa", "ecdsa", "ed25519", "rsa1", "rsa"]);
        insta::assert_json_snapshot!(out.findings);
    }

    #[test]
    fn symlinked_config_dir_and_clean_image() {
        let fs = fs_of(vec![vec![
            dir("config/ssh", 0o755),
            file("config/ssh/ssh_host_rsa_key", 0o600),
            symlink("etc/ssh", "/config/ssh"),
        ]]);
        let out = run(&SshHostKey, &fs, &config_user(None));
        assert_eq!(
            brief(&out.findings),
            ["ssh-host-key medium /config/ssh/ssh_host_rsa_key"]
        );

        let fs = fs_of(vec![vec![file("etc/ssh/ssh_host_rsa_key.pub", 0o644)]]);
        assert!(
            run(&SshHostKey, &fs, &config_user(None))
                .findings
                .is_empty()
        );
    }
}
