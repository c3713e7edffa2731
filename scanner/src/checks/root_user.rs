//! `root-user`, `unresolved-user` and `root-group`: who the container runs as.
//!
//! The documentation `imgscan explain`, SARIF help and `docs/rules.md` show is
//! the Markdown of [`ROOT_USER`], [`UNRESOLVED_USER`], [`ROOT_GROUP`]
//! (`checks/docs/root-user.md` and `checks/docs/unresolved-user.md` and
//! `checks/docs/root-group.md`), included here.
//!
//! These findings are about the config, so they have no path; their subject
//! is the `User` string (for a group that does not resolve, the string plus
//! ` (group)`, so the two `unresolved-user` findings of `app:staff` differ).
#![doc = "# `root-user`"]
#![doc = include_str!("docs/root-user.md")]
#![doc = "# `unresolved-user`"]
#![doc = include_str!("docs/unresolved-user.md")]
#![doc = "# `root-group`"]
#![doc = include_str!("docs/root-group.md")]
//!
//! # Runtime fidelity
//!
//! The `User` string is resolved as moby (`daemon/oci_linux.go` `getUser`,
//! runc's `libcontainer/user` `GetExecUser`, vendored as moby/sys/user),
//! podman (the same `GetExecUser`) and containerd (`pkg/oci/spec_opts.go`
//! `WithUser`, `WithUserID`, `WithUsername`, `WithAdditionalGIDs`) resolve
//! it. Where they differ, the worst case is reported and the message says
//! which runtime does it:
//!
//! - Splitting: `GetExecUser` (`parseLine`) takes the first two `:` fields
//!   and ignores the rest; containerd refuses three or more.
//! - A part is a number when `strconv.Atoi` takes it: a sign is accepted
//!   (`+0`, `-0` are uid 0), white space is not (` 0` is a name). Current
//!   runtimes refuse numbers outside `0..=2147483647`; containerd before
//!   1.6.38, 1.7.27 and 2.0.4 stored `uint32(v)` (CVE-2024-40635:
//!   `4294967296` runs as uid 0), and runc's `libcontainer/user` before
//!   moby/sys/user 0.4.1 took a passwd entry with that uid unchecked. A
//!   number beyond 64 bits is refused by current runtimes and looked up as a
//!   name by older ones.
//! - A uid without a passwd entry gets gid 0 (runc's default `ExecUser`,
//!   containerd's `WithUserID`); `user:` gets gid 0 from containerd (its
//!   empty group part is a group name that is never looked up) and the
//!   passwd gid from runc.
//! - Ids read from the files are Go `int`s stored in the OCI spec's
//!   `uint32`: truncated to 32 bits.
//! - Supplementary groups: runc adds the groups whose member list names the
//!   matched user when no group is given; containerd's CRI adds them even
//!   with a group.

use serde::Serialize;
use serde_json::Value;

use super::identity::{Via, candidate_gids, resolve_user, split_user};
use super::{Check, Context, Findings, NewFinding, details};
use crate::model::Closer;
use crate::rules::{Reach, RuleId, RuleKind, RuleMeta, RuleStatus};
use crate::severity::Severity;

/// `root-user` (IS001).
pub const ROOT_USER: RuleMeta = RuleMeta {
    id: RuleId::RootUser,
    code: "IS001",
    name: "RootUser",
    default_severity: Severity::High,
    summary: "The image runs as root: its config User is missing, empty, root, uid 0, or a name that the image's /etc/passwd maps to uid 0.",
    severity_note: "high.",
    // CWE-250: Execution with Unnecessary Privileges.
    tags: &["container-user", "external/cwe/cwe-250"],
    status: RuleStatus::Active,
    kind: RuleKind::Path(Reach::Local),
    explanation: include_str!("docs/root-user.md"),
};

/// `unresolved-user` (IS002).
pub const UNRESOLVED_USER: RuleMeta = RuleMeta {
    id: RuleId::UnresolvedUser,
    code: "IS002",
    name: "UnresolvedUser",
    default_severity: Severity::Medium,
    summary: "The image config names a user (or group) that the image's own /etc/passwd (or /etc/group) does not define.",
    severity_note: "medium.",
    tags: &["container-user"],
    status: RuleStatus::Active,
    kind: RuleKind::Fact,
    explanation: include_str!("docs/unresolved-user.md"),
};

/// `root-group` (IS003).
pub const ROOT_GROUP: RuleMeta = RuleMeta {
    id: RuleId::RootGroup,
    code: "IS003",
    name: "RootGroup",
    default_severity: Severity::Low,
    summary: "The image runs as a non-root user whose primary group is root (gid 0).",
    severity_note: "low.",
    // CWE-250: Execution with Unnecessary Privileges.
    tags: &["container-user", "external/cwe/cwe-250"],
    status: RuleStatus::Active,
    kind: RuleKind::Fact,
    explanation: include_str!("docs/root-group.md"),
};

/// `root-user` details.
#[derive(Debug, Serialize)]
pub struct RootUserDetails<'a> {
    /// The config's `User` as written; `None` (null) when the config has
    /// none (an empty `User` is `""`).
    pub user: Option<&'a str>,
    /// Always 0.
    pub uid: u32,
    /// How the uid was found: `default` (no user part: the runtime's
    /// default), `config` (a number, or `root`, in `User` itself) or
    /// `passwd` (the name or uid looked up in `/etc/passwd`).
    pub resolved_by: &'static str,
    /// Which runtimes do this, when they disagree (`;`-separated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The proof: the `User` and how it resolved.
    pub steps: Vec<String>,
    /// What closes it: running as a non-root user.
    pub closed_by: Vec<Closer>,
}

/// `root-group` details.
#[derive(Debug, Serialize)]
pub struct RootGroupDetails<'a> {
    /// The config's `User` as written.
    pub user: &'a str,
    /// The group: the group part of `User` (`""` for `app:`, null when
    /// there is none), or for a supplementary group, its name.
    pub group: Option<&'a str>,
    /// Always 0.
    pub gid: u32,
    /// How the gid was found: `default` (no group: the runtime's default
    /// for a uid without a passwd entry, or an empty group part),
    /// `config` (a number, or `root`, in `User`), `passwd` (the user's
    /// primary group), `group` (a name looked up in `/etc/group`) or
    /// `supplementary` (`/etc/group` lists the user in a gid-0 group).
    pub resolved_by: &'static str,
    /// Which runtimes do this, when they disagree (`;`-separated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `unresolved-user` details.
#[derive(Debug, Serialize)]
pub struct UnresolvedUserDetails<'a> {
    /// The config's `User` as written.
    pub user: &'a str,
    /// The name that does not resolve.
    pub name: &'a str,
    /// Which part of `User` it is: `user` or `group`.
    pub part: &'a str,
    /// Why it does not resolve.
    pub reason: &'a str,
}

/// Reports `root-user`, `unresolved-user` and `root-group`.
pub struct RootUser;

impl Check for RootUser {
    fn run(&self, ctx: &Context<'_>, out: &mut Findings) {
        let accounts = ctx.accounts;
        let raw = ctx.config.user.as_deref().unwrap_or("");
        // moby's runc parser (`parseLine`) takes the first two `:` fields
        // and ignores the rest; containerd and moby/sys/user 0.5 refuse
        // more: the worst case is the one that runs.
        let (user, group, split_note) = split_user(raw);
        let resolved = resolve_user(user, accounts);
        let runs = resolved.as_deref().unwrap_or(&[]);

        if let Some(run) = runs.iter().find(|r| r.uid == 0) {
            let mut message = match run.via {
                Via::Default if raw.is_empty() => {
                    "the image config sets no User: the container runs as root".to_owned()
                }
                Via::Default => {
                    format!("User `{raw}` has no user part: the container runs as root (uid 0)")
                }
                Via::Passwd if user != "root" => format!(
                    "User `{raw}` is uid 0 in the image's /etc/passwd: the container runs as root"
                ),
                _ => format!("User `{raw}` is root (uid 0)"),
            };
            let notes: Vec<&str> = [run.note.as_deref(), split_note.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            if !notes.is_empty() {
                message = format!("{message} ({})", notes.join("; "));
            }
            let d = details(&RootUserDetails {
                user: ctx.config.user.is_some().then_some(raw),
                uid: 0,
                resolved_by: run.via.as_str(),
                note: (!notes.is_empty()).then(|| notes.join("; ")),
                steps: vec![
                    message.clone(),
                    "uid 0 in the container holds every capability of its bounding set \
                     (Docker's default 14 include cap_dac_override, cap_setuid and cap_chown)"
                        .to_owned(),
                ],
                closed_by: vec![Closer::NonRootUser],
            });
            out.push(
                ctx,
                config_finding(RuleId::RootUser, Severity::High, message, d, raw),
            );
            // Root has every group's access already.
            return;
        }
        if let Err(reason) = &resolved {
            out.push(ctx, unresolved(raw, user, "user", reason, raw.to_owned()));
        }

        // The gids the process may get: explicit, or implicit from the user.
        let gids = candidate_gids(group, runs, accounts).unwrap_or_else(|reason| {
            let g = group.unwrap_or("");
            out.push(
                ctx,
                unresolved(raw, g, "group", &reason, format!("{raw} (group)")),
            );
            Vec::new()
        });
        if let Some(g) = gids.iter().find(|g| g.gid == 0) {
            let mut message = format!("User `{raw}` runs with the root group (gid 0, {})", g.how);
            let notes: Vec<&str> = [g.note.as_deref(), split_note.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            let note = (!notes.is_empty()).then(|| notes.join("; "));
            if let Some(note) = &note {
                message = format!("{message} ({note})");
            }
            let d = details(&RootGroupDetails {
                user: raw,
                group,
                gid: 0,
                resolved_by: g.via.as_str(),
                note,
            });
            out.push(
                ctx,
                config_finding(RuleId::RootGroup, Severity::Low, message, d, raw),
            );
            return;
        }
        // Supplementary groups: runc adds the groups listing the user when
        // no group is given; containerd's CRI adds them (those not named
        // after the user) even with one. The worst case is the union.
        let sup = runs.iter().find_map(|r| {
            let e = r.entry?;
            accounts
                .groups_of(e.name_bytes())
                .find(|g| g.runtime_gid() == 0)
                .map(|g| (e, g))
        });
        if let Some((e, g)) = sup {
            out.push(
                ctx,
                config_finding(
                    RuleId::RootGroup,
                    Severity::Low,
                    format!(
                        "User `{raw}` runs with the root group (gid 0) as a supplementary group: \
                         /etc/group lists {} as a member of {} (line {})",
                        e.name, g.name, g.line
                    ),
                    details(&RootGroupDetails {
                        user: raw,
                        group: Some(g.name.as_str()),
                        gid: 0,
                        resolved_by: "supplementary",
                        note: None,
                    }),
                    raw,
                ),
            );
        }
    }
}

/// A finding about the config (no path).
fn config_finding(
    rule: RuleId,
    severity: Severity,
    message: String,
    details: std::collections::BTreeMap<String, Value>,
    raw: &str,
) -> NewFinding<'static> {
    NewFinding {
        rule,
        severity,
        at: None,
        message,
        details,
        subject: raw.to_owned(),
    }
}

/// An `unresolved-user` finding for the user or group `part` of `raw`.
fn unresolved(
    raw: &str,
    name: &str,
    part: &str,
    reason: &str,
    subject: String,
) -> NewFinding<'static> {
    NewFinding {
        rule: RuleId::UnresolvedUser,
        severity: Severity::Medium,
        at: None,
        message: format!("User `{raw}` does not resolve: {reason}"),
        details: details(&UnresolvedUserDetails {
            user: raw,
            name,
            part,
            reason,
        }),
        subject,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::packages::test_support::*;
    use crate::fs::FinalFs;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
toor:x:0:0::/root:/bin/sh\n\
app:x:1000:1000::/home/app:/bin/sh\n\
ops:x:1001:0::/home/ops:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:0:\napp:x:1000:\nstaff:x:50:\n";

    fn image() -> FinalFs {
        fs_of(vec![vec![
            text("etc/passwd", PASSWD),
            text("etc/group", GROUP),
        ]])
    }

    fn check(fs: &FinalFs, user: Option<&str>) -> Vec<String> {
        let out = run(&RootUser, fs, &config_user(user));
        out.findings
            .iter()
            .map(|f| {
                assert!(f.path.is_none() && f.layer_index.is_none());
                format!(
                    "{} {} {}",
                    f.rule_id,
                    f.severity,
                    f.details
                        .get("resolved_by")
                        .or_else(|| f.details.get("part"))
                        .and_then(Value::as_str)
                        .unwrap_or("-")
                )
            })
            .collect()
    }

    #[test]
    fn no_user_or_empty_user_is_root() {
        let fs = image();
        assert_eq!(check(&fs, None), ["root-user high default"]);
        assert_eq!(check(&fs, Some("")), ["root-user high default"]);
        assert_eq!(check(&fs, Some(":1000")), ["root-user high default"]);
        let out = run(&RootUser, &fs, &config_user(None));
        assert_eq!(out.findings[0].details["user"], Value::Null);
        insta::assert_json_snapshot!(out.findings);
    }

    #[test]
    fn root_by_number_name_or_passwd_mapping() {
        let fs = image();
        assert_eq!(check(&fs, Some("0")), ["root-user high config"]);
        assert_eq!(check(&fs, Some("0:0")), ["root-user high config"]);
        assert_eq!(check(&fs, Some("root")), ["root-user high passwd"]);
        assert_eq!(check(&fs, Some("root:app")), ["root-user high passwd"]);
        assert_eq!(check(&fs, Some("toor")), ["root-user high passwd"]);
        // No /etc/passwd: root is still root, by name.
        let empty = fs_of(vec![]);
        assert_eq!(check(&empty, Some("root")), ["root-user high config"]);
        let out = run(&RootUser, &fs, &config_user(Some("toor")));
        assert!(
            out.findings[0]
                .message
                .contains("uid 0 in the image's /etc/passwd")
        );
        insta::assert_json_snapshot!(out.findings);
    }

    #[test]
    fn non_root_users_are_fine() {
        let fs = image();
        assert!(check(&fs, Some("1000")).is_empty());
        assert!(check(&fs, Some("app")).is_empty());
        assert!(check(&fs, Some("app:staff")).is_empty());
        assert!(check(&fs, Some("1000:1000")).is_empty());
        assert!(check(&fs, Some("10001:10001")).is_empty());
        assert!(check(&fs_of(vec![]), Some("10001:10001")).is_empty());
    }

    /// A uid `/etc/passwd` does not list runs with gid 0, as runtimes do.
    #[test]
    fn unlisted_uid_gets_gid_0() {
        assert_eq!(
            check(&fs_of(vec![]), Some("10001")),
            ["root-group low default"]
        );
        assert_eq!(check(&image(), Some("4242")), ["root-group low default"]);
    }

    /// `app:` is gid 0 under containerd (its empty group part is never
    /// looked up), the passwd gid under runc: the worst case is reported.
    #[test]
    fn empty_group_part_is_gid_0_under_containerd() {
        let out = run(&RootUser, &image(), &config_user(Some("app:")));
        assert_eq!(brief(&out.findings), ["root-group low -"]);
        assert!(out.findings[0].message.contains("containerd"));
        assert_eq!(check(&image(), Some("1000:")), ["root-group low default"]);
    }

    /// Go's `strconv.Atoi` takes a sign and leading zeros: `+0`, `-0` and
    /// `00` are uid 0.
    #[test]
    fn signed_and_padded_zero_are_root() {
        for u in ["+0", "-0", "00", "+0:app", "-0:1000"] {
            let out = run(&RootUser, &image(), &config_user(Some(u)));
            assert_eq!(brief(&out.findings), ["root-user high -"], "{u}");
            assert!(out.findings[0].message.contains("strconv.Atoi"), "{u}");
        }
        // White space is not a number: ` 0` is a name no one has.
        assert_eq!(check(&image(), Some(" 0")), ["unresolved-user medium user"]);
    }

    /// A uid of 2^32 or more is truncated to 32 bits by older containerd
    /// (CVE-2024-40635): `4294967296` is root; current runtimes refuse it.
    #[test]
    fn uids_beyond_32_bits_are_judged_truncated() {
        let out = run(&RootUser, &image(), &config_user(Some("4294967296")));
        assert_eq!(brief(&out.findings), ["root-user high -"]);
        assert!(out.findings[0].message.contains("CVE-2024-40635"));
        assert_eq!(
            check(&image(), Some("-4294967296")),
            ["root-user high config"]
        );
        assert_eq!(
            check(&image(), Some("-9223372036854775808")),
            ["root-user high config"]
        );
        // 2^32 + 1000 truncates to app's uid, and so to app's gid.
        assert!(check(&image(), Some("4294968296")).is_empty());
        // -1 is uid 4294967295: not root, and unlisted, so gid 0.
        assert_eq!(check(&image(), Some("-1")), ["root-group low default"]);
        let out = run(&RootUser, &image(), &config_user(Some("2147483648")));
        assert_eq!(brief(&out.findings), ["root-group low -"]);
        assert!(out.findings[0].message.contains("refuse"));
        // A gid of 2^32 is gid 0 the same way.
        let out = run(&RootUser, &image(), &config_user(Some("app:4294967296")));
        assert_eq!(brief(&out.findings), ["root-group low -"]);
        assert!(out.findings[0].message.contains("CVE-2024-40635"));
        // Beyond 64 bits: refused, or looked up as a name (older runtimes).
        assert_eq!(
            check(&image(), Some("99999999999999999999")),
            ["unresolved-user medium user"]
        );
        // A passwd entry with that very uid (old runc takes it unchecked).
        let fs = fs_of(vec![vec![text(
            "etc/passwd",
            "root:x:0:0::/root:/bin/sh\nbig:x:8589934592:5::/:/bin/sh\n",
        )]]);
        assert_eq!(check(&fs, Some("8589934592")), ["root-user high config"]);
        assert_eq!(check(&fs, Some("big")), ["root-user high passwd"]);
    }

    /// runc reads an unparsable uid field (`1000x`, ` 1000`, empty) as 0:
    /// that account is root.
    #[test]
    fn user_with_unparsable_uid_field_is_root() {
        let fs = fs_of(vec![vec![text(
            "etc/passwd",
            "root:x:0:0::/root:/bin/sh\napp:x:1000x:1000::/home/app:/bin/sh\n\
             sp:x: 1000:1000::/:/bin/sh\ne:x::1000::/:/bin/sh\nok:x:1000:1000::/:/bin/sh\n",
        )]]);
        for u in ["app", "sp", "e", "app:1000"] {
            let out = run(&RootUser, &fs, &config_user(Some(u)));
            assert_eq!(brief(&out.findings), ["root-user high -"], "{u}");
            assert!(out.findings[0].message.contains("reads as 0"), "{u}");
        }
        assert!(check(&fs, Some("ok")).is_empty());
        // The numeric user 1000 is the first entry whose uid parses as 1000.
        assert!(check(&fs, Some("1000")).is_empty());
    }

    /// `a:b:c`: moby's parser takes `a:b`, containerd refuses it.
    #[test]
    fn extra_fields_are_ignored_as_moby_does() {
        assert!(check(&image(), Some("app:staff:junk")).is_empty());
        let out = run(&RootUser, &image(), &config_user(Some("app:root:junk")));
        assert_eq!(brief(&out.findings), ["root-group low -"]);
        assert!(out.findings[0].message.contains("`app:root`"));
        assert_eq!(check(&image(), Some("root:x:y")), ["root-user high passwd"]);
    }

    /// A member of a gid-0 group gets it as a supplementary group.
    #[test]
    fn supplementary_root_group() {
        let fs = fs_of(vec![vec![
            text("etc/passwd", PASSWD),
            text("etc/group", "root:x:0:\nwheel:x:0:ops2,app\nstaff:x:50:\n"),
        ]]);
        let out = run(&RootUser, &fs, &config_user(Some("app")));
        assert_eq!(brief(&out.findings), ["root-group low -"]);
        assert!(out.findings[0].message.contains("member of wheel"));
        // By uid too, and even with an explicit group (containerd's CRI).
        assert_eq!(check(&fs, Some("1000")), ["root-group low supplementary"]);
        assert_eq!(
            check(&fs, Some("app:staff")),
            ["root-group low supplementary"]
        );
        // Members are compared exactly (` app` is not `app`).
        let fs = fs_of(vec![vec![
            text("etc/passwd", PASSWD),
            text("etc/group", "wheel:x:0:ops2, app\n"),
        ]]);
        assert!(check(&fs, Some("app")).is_empty());
    }

    #[test]
    fn unresolved_names() {
        let fs = image();
        assert_eq!(check(&fs, Some("nobody")), ["unresolved-user medium user"]);
        assert_eq!(
            check(&fs, Some("app:nogroup")),
            ["unresolved-user medium group"]
        );
        assert_eq!(
            check(&fs, Some("ghost:ghosts")),
            [
                "unresolved-user medium user",
                "unresolved-user medium group"
            ]
        );
        // Without /etc/passwd any name but root is unresolved.
        let out = run(&RootUser, &fs_of(vec![]), &config_user(Some("app")));
        assert_eq!(brief(&out.findings), ["unresolved-user medium -"]);
        assert_eq!(
            out.findings[0].details["reason"],
            "the image has no /etc/passwd"
        );
        // The two findings of one User have distinct fingerprints.
        let out = run(&RootUser, &fs, &config_user(Some("ghost:ghosts")));
        assert_ne!(out.findings[0].fingerprint, out.findings[1].fingerprint);
        insta::assert_json_snapshot!(out.findings);
    }

    #[test]
    fn root_group() {
        let fs = image();
        assert_eq!(check(&fs, Some("1000:0")), ["root-group low config"]);
        assert_eq!(check(&fs, Some("app:root")), ["root-group low group"]);
        assert_eq!(check(&fs, Some("app:wheel")), ["root-group low group"]);
        // Primary group from /etc/passwd, by name and by uid.
        assert_eq!(check(&fs, Some("ops")), ["root-group low passwd"]);
        assert_eq!(check(&fs, Some("1001")), ["root-group low passwd"]);
        assert!(check(&fs, Some("ops:staff")).is_empty());
        // `root` resolves without /etc/group.
        assert_eq!(
            check(&fs_of(vec![]), Some("10001:root")),
            ["root-group low config"]
        );
        // An unresolved user with an explicit root group.
        assert_eq!(
            check(&fs, Some("ghost:0")),
            ["unresolved-user medium user", "root-group low config"]
        );
    }
}
