//! The rule registry: ids, codes, default severities and documentation.
//!
//! Rule ids are a public contract (JSON `rule_id`, SARIF `ruleId`, `--fail-on`
//! gates, suppressions): never rename or reuse one. The `codes_unique` test
//! snapshots the full list so a change shows up in review.

use serde::{Deserialize, Serialize};
use strum::{EnumIter, EnumString, IntoStaticStr};

use crate::model::Severity;

/// Stable identifier of a rule.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    EnumIter,
    EnumString,
    IntoStaticStr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum RuleId {
    /// The container runs as root.
    RootUser,
    /// The configured user name does not resolve in the image's `/etc/passwd`.
    UnresolvedUser,
    /// The container runs with the root group.
    RootGroup,
    /// A regular file with the set-user-ID bit.
    SetuidBinary,
    /// A regular file with the set-group-ID bit.
    SetgidBinary,
    /// A file with `security.capability`.
    FileCapability,
    /// A root-owned path that anyone can write.
    WorldWritablePath,
    /// An ssh or telnet (remote shell) server.
    RemoteShellDaemon,
    /// An account other than root with uid 0.
    Uid0Account,
    /// An ssh host private key baked into the image.
    SshHostKey,
    /// A sudoers rule that needs no password.
    SudoersNopasswd,
}

impl RuleId {
    /// The kebab-case id, as in reports.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// This rule's metadata.
    pub fn meta(self) -> &'static RuleMeta {
        RULES
            .iter()
            .find(|m| m.id == self)
            .expect("every RuleId has an entry in RULES (tested)")
    }
}

impl std::fmt::Display for RuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Documentation and defaults for one rule.
#[derive(Debug)]
pub struct RuleMeta {
    /// Stable id.
    pub id: RuleId,
    /// Stable short code (`IS001`), never reused.
    pub code: &'static str,
    /// Title case name for SARIF `name`.
    pub name: &'static str,
    /// The severity most findings of this rule get.
    pub default_severity: Severity,
    /// One sentence: what is flagged.
    pub summary: &'static str,
    /// How the severity is chosen.
    pub severity_note: &'static str,
    /// Markdown: `## What it does`, `## Why is this bad?`, `## Example`, `## References`.
    pub explanation: &'static str,
}

impl RuleMeta {
    /// A link to this rule's section of the rules documentation.
    pub fn help_uri(&self) -> String {
        format!(
            "{}/blob/main/docs/rules.md#{}",
            env!("CARGO_PKG_REPOSITORY"),
            self.id.as_str()
        )
    }
}

/// Every rule, in code order.
pub static RULES: &[RuleMeta] = &[
    RuleMeta {
        id: RuleId::RootUser,
        code: "IS001",
        name: "RootUser",
        default_severity: Severity::High,
        summary: "The image runs as root: its config User is missing, empty, root, uid 0, or a name that the image's /etc/passwd maps to uid 0.",
        severity_note: "high.",
        explanation: r#"## What it does
Reads `config.User` of the image (`user`, `uid`, `user:group`, `uid:gid`) and
resolves its user part against the image's own final `/etc/passwd` the way
runc's `libcontainer/user` (used by moby, podman and containerd) does, then
flags the container when it runs as uid 0:

- `User` missing or empty (the runtime default is root), or an empty user
  part (`:1000`);
- a number Go's `strconv.Atoi` reads as 0: `0`, `+0`, `-0`, `00`;
- `root`, even when the image has no `/etc/passwd`;
- a name (or uid) whose `/etc/passwd` line has uid 0: `toor:x:0:0` counts,
  and so does a uid field runc cannot parse as a number (`1000x`, ` 1000`,
  empty), which it reads as 0;
- an id beyond 32 bits, which runtimes store in the OCI spec's 32-bit uid:
  `4294967296` is judged truncated to uid 0 (containerd before 1.6.38, 1.7.27
  and 2.0.4, CVE-2024-40635; current runtimes refuse it), whether it is
  written in `User` or in the passwd line it names.

`/etc/passwd` is found on the final filesystem as the runtime opens it,
inside the image root: symlinks (relative or absolute, also a symlinked
`/etc`) and hard links are followed. A passwd file imgscan could not read in
full (too large to capture, or cut short) fails the scan rather than being
taken as "no such user".

## Why is this bad?
A process that is root in the container is root on the host's kernel. Every
container escape, every writable host mount and every kernel bug then starts
from uid 0. Most services need no root at all once their ports are above 1024.

## Example
```dockerfile
FROM debian:bookworm
RUN useradd -r -u 10001 app
USER app            # fixes root-user
```

## References
- https://docs.docker.com/reference/dockerfile/#user
- https://github.com/opencontainers/image-spec/blob/main/config.md (`User`)
- runc `libcontainer/user/user.go` (`GetExecUser`, `parseLine`; now `github.com/moby/sys/user`)
- moby `daemon/oci_linux.go` (`getUser`); containerd `pkg/oci/spec_opts.go` (`WithUser`, `WithUserID`, `WithUsername`)
- https://github.com/advisories/GHSA-265r-hfxg-fhmg (containerd CVE-2024-40635, uids beyond 32 bits)
- CIS Docker Benchmark 4.1 "Ensure that a user for the container has been created"
"#,
    },
    RuleMeta {
        id: RuleId::UnresolvedUser,
        code: "IS002",
        name: "UnresolvedUser",
        default_severity: Severity::Medium,
        summary: "The image config names a user (or group) that the image's own /etc/passwd (or /etc/group) does not define.",
        severity_note: "medium.",
        explanation: r#"## What it does
Flags a `config.User` whose user part is a name that the final `/etc/passwd`
does not list, or whose group part is a name missing from `/etc/group`, and a
name when the image has no `/etc/passwd` at all. A part is a name when Go's
`strconv.Atoi` does not read it as a number (` 1000` with a space is a name,
`+1000` is the number 1000). Names are compared byte for byte with the
passwd and group lines as runc parses them (the first matching line wins;
`root` always resolves). The files are found through symlinks and hard links
inside the image, and a file imgscan could not read in full fails the scan.

An unresolved user is not also reported as `root-user`: imgscan cannot know
what the platform will substitute.

## Why is this bad?
The runtime cannot resolve the name, so the container fails to start, or a
platform that rewrites the user falls back to a default it chooses (often
root). Either way what the image declares is not what will run, and imgscan
cannot prove the process is unprivileged.

## Example
```dockerfile
USER app            # but no `app` line in /etc/passwd
```
Create the account in the image, or use a numeric uid such as `USER 10001`.

## References
- https://github.com/opencontainers/image-spec/blob/main/config.md (`User`)
- runc `libcontainer/user/user.go` (`GetExecUser`; now `github.com/moby/sys/user`)
"#,
    },
    RuleMeta {
        id: RuleId::RootGroup,
        code: "IS003",
        name: "RootGroup",
        default_severity: Severity::Low,
        summary: "The image runs as a non-root user whose primary group is root (gid 0).",
        severity_note: "low.",
        explanation: r#"## What it does
Flags a non-root `config.User` that runs with group root (gid 0), as the
runtime resolves it:

- an explicit group `:0` (or `:+0`, `:00`), `:root`, or a group name that
  `/etc/group` maps to gid 0;
- with no group part, the primary gid of the user's `/etc/passwd` line
  (found by name, or by uid for a numeric user);
- a numeric uid that `/etc/passwd` does not list: runc and containerd then
  run it with gid 0 (`USER 10001` in an image without that uid);
- an empty group part (`app:`): containerd runs it with gid 0 (runc takes the
  passwd gid), so the worst case is reported and the message says so;
- a supplementary group with gid 0: `/etc/group` lists the user as a member
  of a gid-0 group (runc adds such groups when no group is given,
  containerd's CRI even with one).

Gids read from the files are truncated to 32 bits as runtimes store them, so
`4294967296` is gid 0.

## Why is this bad?
Group root can read and write everything in the image that is group-root and
group-writable, which often includes files root relies on. Some platforms
(OpenShift) use gid 0 on purpose with group-writable directories; then this
is informational, and you may lower it with `--fail-on`.

## Example
```dockerfile
USER 10001:10001
```

## References
- runc `libcontainer/user/user.go` (`GetExecUser`: the default gid 0, supplementary groups)
- containerd `pkg/oci/spec_opts.go` (`WithUserID`, `WithUser`, `WithAdditionalGIDs`)
- https://docs.openshift.com/container-platform/latest/openshift_images/create-images.html (support arbitrary user ids)
"#,
    },
    RuleMeta {
        id: RuleId::SetuidBinary,
        code: "IS004",
        name: "SetuidBinary",
        default_severity: Severity::High,
        summary: "A regular file in the final filesystem has the set-user-ID bit (S_ISUID).",
        severity_note: "critical when owned by root and not owned by any package in the image's package database (added by hand); high when owned by root; medium when owned by another user.",
        explanation: r#"## What it does
Flags every regular file (or hard link to one) in the final filesystem whose
mode has S_ISUID (04000). Details give the mode, uid, gid and the package that
owns the file according to the image's own dpkg or apk database.

## Why is this bad?
A setuid-root program runs as root whoever starts it: one bug in it is a
privilege escalation inside the container. Containers rarely need `su`,
`passwd`, `mount` or `ping` to be setuid. A setuid-root file that no package
owns was added by hand, which is how backdoors look.

## Example
```dockerfile
RUN find / -xdev -perm /6000 -type f -exec chmod a-s {} +
```

## References
- https://man7.org/linux/man-pages/man2/execve.2.html (set-user-ID programs)
- CIS Docker Benchmark 4.8 "Ensure setuid and setgid permissions are removed"
"#,
    },
    RuleMeta {
        id: RuleId::SetgidBinary,
        code: "IS005",
        name: "SetgidBinary",
        default_severity: Severity::Medium,
        summary: "A regular file in the final filesystem has the set-group-ID bit (S_ISGID). Setgid directories are normal and not flagged.",
        severity_note: "high when the group is root (gid 0) or no package owns the file; medium otherwise.",
        explanation: r#"## What it does
Flags every regular file (or hard link to one) whose mode has S_ISGID (02000).
Directories with the setgid bit (`/var/mail`, `/var/local`) only make new files
inherit the group, and are not flagged.

## Why is this bad?
A setgid program runs with its group whoever starts it: `shadow` lets a bug in
`chage` read password hashes, group root reaches root-group files.

## Example
```dockerfile
RUN find / -xdev -perm /6000 -type f -exec chmod a-s {} +
```

## References
- CIS Docker Benchmark 4.8 "Ensure setuid and setgid permissions are removed"
"#,
    },
    RuleMeta {
        id: RuleId::FileCapability,
        code: "IS006",
        name: "FileCapability",
        default_severity: Severity::Medium,
        summary: "A file carries Linux file capabilities (the security.capability extended attribute).",
        severity_note: "critical when a permitted or inheritable capability is root-equivalent (cap_sys_admin, cap_sys_ptrace, cap_sys_module, cap_dac_override, cap_dac_read_search, cap_setuid, cap_setgid, cap_setfcap, cap_setpcap, cap_chown, cap_fowner, cap_sys_rawio, cap_bpf); high for other powerful ones (cap_net_admin, cap_sys_chroot, cap_mknod, cap_sys_time, ...); medium otherwise (cap_net_raw, cap_net_bind_service); info for an empty set. Capabilities namespaced to a non-zero rootid (revision 3) are one level lower.",
        explanation: r#"## What it does
Decodes `security.capability` from the layer tar as container runtimes apply
it: only the PAX record `SCHILY.xattr.security.capability` (raw bytes, as GNU
tar, Go, moby, containerd, containers/storage and umoci write and read it)
counts, the last record of the name winning, as Go's `archive/tar` keeps it.
`LIBARCHIVE.xattr.security.capability` (base64, what bsdtar writes) is not a
capability to any Go runtime (moby, containerd, containers/storage, umoci
only apply `SCHILY.xattr.*`), so it is not flagged. Revisions 1, 2 and 3
(`vfs_cap_data` / `vfs_ns_cap_data`) are decoded. Details list every
permitted or inheritable capability by lowercase name (`cap_net_raw`), the
effective flag, the revision and, for revision 3, the rootid.

## Why is this bad?
File capabilities are setuid in slices: `cap_setuid+ep` on a binary is root for
anyone who can run it, `cap_dac_override` ignores all file permissions,
`cap_sys_admin` is root. They are easy to miss because `ls -l` does not show them.

## Example
```dockerfile
RUN setcap -r /usr/bin/ping   # use an unprivileged ICMP socket instead
```

## References
- https://man7.org/linux/man-pages/man7/capabilities.7.html
- linux `include/uapi/linux/capability.h` (`vfs_cap_data`, revisions 1-3)
- Go `archive/tar` `reader.go` (`SCHILY.xattr.*` in `Header.PAXRecords` and `Header.Xattrs`)
- moby `github.com/moby/go-archive` `archive.go` (`createTarFile`: xattrs from `SCHILY.xattr.` records)
"#,
    },
    RuleMeta {
        id: RuleId::WorldWritablePath,
        code: "IS007",
        name: "WorldWritablePath",
        default_severity: Severity::Medium,
        summary: "A root-owned file or directory is writable by everyone (mode o+w). Symlinks, device nodes and sticky directories such as /tmp are not flagged.",
        severity_note: "high for files; medium for directories without the sticky bit.",
        explanation: r#"## What it does
Flags regular files, hard links and directories owned by uid 0 whose mode has
S_IWOTH (0002). Symlinks (whose mode means nothing), device nodes, FIFOs and
sockets (the runtime mounts its own `/dev`) and directories with the sticky
bit (`/tmp`, `/var/tmp`) are not flagged.

## Why is this bad?
Any user in the container, including a compromised unprivileged service, can
rewrite a world-writable root-owned file (a script root runs, a config root
reads) or replace entries in a world-writable directory without the sticky bit.

## Example
```dockerfile
RUN chmod o-w /etc/app.conf && chmod 1777 /var/shared
```

## References
- CIS Distribution Independent Linux 6.1.10 "Ensure no world writable files exist"
"#,
    },
    RuleMeta {
        id: RuleId::RemoteShellDaemon,
        code: "IS008",
        name: "RemoteShellDaemon",
        default_severity: Severity::Medium,
        summary: "The image contains an ssh or telnet (remote shell) server: sshd, dropbear, telnetd, in.telnetd, utelnetd, rlogind, rshd or rexecd, including links to a multi-call binary such as busybox.",
        severity_note: "medium for ssh servers, high for cleartext ones (telnet, rlogin, rsh, rexec); one level higher when the config exposes port 22/23 (or 513/514/512) or the entrypoint/command starts the daemon.",
        explanation: r#"## What it does
Flags files, hard links and symlinks (that resolve to a file in the image) whose
name is a remote shell server: OpenSSH `sshd`, `dropbear`/`dropbearmulti`,
`tinysshd`, `telnetd`, `in.telnetd`, `utelnetd`, `rlogind`, `rshd`, `rexecd`
and their `in.` forms. A busybox binary with no link named after a daemon is
not a finding, and neither are files under `/etc` and `/usr/share` (init
scripts and PAM files named after a daemon are configuration, not servers).

## Why is this bad?
Containers are entered with `docker exec`/`kubectl exec`; an in-container
remote shell server is an extra door with its own credentials, host keys and
patch cycle. telnet and the r-services send passwords in clear text.

## Example
```dockerfile
RUN apt-get purge -y openssh-server
```

## References
- https://docs.docker.com/engine/reference/commandline/exec/
"#,
    },
    RuleMeta {
        id: RuleId::Uid0Account,
        code: "IS009",
        name: "Uid0Account",
        default_severity: Severity::High,
        summary: "An account other than root has uid 0 in the image's /etc/passwd.",
        severity_note: "high.",
        explanation: r#"## What it does
Reads the final `/etc/passwd` as runc's `libcontainer/user` parses it (moby,
podman and containerd resolve users with it) and flags every account besides
`root` that the runtime runs as uid 0:

- a uid field of 0, however `strconv.Atoi` spells it (`0`, `+0`, `-0`, `00`):
  `toor:x:0:0:...`;
- a uid field runc cannot parse as a number, which it reads as 0: `1000x`,
  ` 1000`, an empty or missing field;
- a uid that is 0 once truncated to the OCI spec's 32 bits: `4294967296`.

Lines are split and trimmed as runc does. A line starting with `#` is an
account to runc too, but only a `User` of that very name reaches it (which
`root-user` reports) and glibc skips it, so it is not flagged here. The file
is found through symlinks and hard links inside the image; one imgscan could
not read in full fails the scan.

## Why is this bad?
A second uid-0 account is root under another name: it hides from reviews
that look for `root`, and is a classic backdoor. An account whose uid field
is garbage looks unprivileged to a reader and runs as root.

## Example
```text
toor:x:0:0:backdoor:/root:/bin/sh
app:x:1000x:1000::/home/app:/bin/sh
```
Remove the line, or give the account its own valid uid.

## References
- https://man7.org/linux/man-pages/man5/passwd.5.html
- runc `libcontainer/user/user.go` (`parseLine`, `ParsePasswdFilter`; now `github.com/moby/sys/user`)
"#,
    },
    RuleMeta {
        id: RuleId::SshHostKey,
        code: "IS010",
        name: "SshHostKey",
        default_severity: Severity::High,
        summary: "An ssh server host private key is baked into the image.",
        severity_note: "high.",
        explanation: r#"## What it does
Flags OpenSSH (`/etc/ssh/ssh_host_*_key`) and dropbear
(`/etc/dropbear/dropbear_*_host_key`) host private keys in the final filesystem.

## Why is this bad?
Every container from the image, and everyone who can pull it, shares the same
host key: anyone can impersonate the server. Generate host keys at start-up.

## Example
```dockerfile
RUN rm -f /etc/ssh/ssh_host_*
```

## References
- https://man.openbsd.org/sshd#FILES
"#,
    },
    RuleMeta {
        id: RuleId::SudoersNopasswd,
        code: "IS011",
        name: "SudoersNopasswd",
        default_severity: Severity::Medium,
        summary: "A sudoers rule lets a user or group run commands as another user without a password (NOPASSWD).",
        severity_note: "high when the rule allows ALL commands; medium otherwise.",
        explanation: r#"## What it does
Reads `/etc/sudoers` and `/etc/sudoers.d/*` in the final filesystem and flags
each non-comment line with `NOPASSWD:`.

## Why is this bad?
With `NOPASSWD: ALL`, the unprivileged user is root with one command; the
`USER` line then protects nothing.

## Example
Remove sudo from the image.

## References
- https://www.sudo.ws/docs/man/sudoers.man/
"#,
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn every_rule_has_meta_in_order() {
        let ids: Vec<RuleId> = RuleId::iter().collect();
        let meta: Vec<RuleId> = RULES.iter().map(|m| m.id).collect();
        assert_eq!(ids, meta);
    }

    #[test]
    fn codes_unique() {
        let list: Vec<String> = RULES
            .iter()
            .map(|m| format!("{} {} {}", m.code, m.id, m.default_severity))
            .collect();
        let mut codes: Vec<&str> = RULES.iter().map(|m| m.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), RULES.len());
        insta::assert_snapshot!(list.join("\n"));
    }

    #[test]
    fn explanations_have_the_sections() {
        for m in RULES {
            for h in [
                "## What it does",
                "## Why is this bad?",
                "## Example",
                "## References",
            ] {
                assert!(m.explanation.contains(h), "{} lacks {h}", m.id);
            }
            assert!(m.summary.len() <= 1024 && !m.summary.is_empty());
        }
    }

    #[test]
    fn ids_round_trip() {
        for id in RuleId::iter() {
            assert_eq!(id.as_str().parse::<RuleId>().unwrap(), id);
            assert_eq!(
                serde_json::to_string(&id).unwrap(),
                format!("\"{}\"", id.as_str())
            );
        }
    }
}
