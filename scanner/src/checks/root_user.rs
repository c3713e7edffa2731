//! `root-user`, `unresolved-user` and `root-group`: who the container runs as.
//!
//! ## What it does
//! Reads `config.User` (`user`, `uid`, `user:group`, `uid:gid`, `uid:group`,
//! `user:gid`, image-spec `config.md`) and resolves it against the image's own
//! final `/etc/passwd` and `/etc/group`, as the runtime will:
//!
//! - `root-user` (high): `User` missing or empty (the runtime default is
//!   root), an empty user part (`:1000`), uid `0`, or a name that
//!   `/etc/passwd` maps to uid 0 (`toor:x:0:0` counts). `root` is uid 0 even
//!   without an `/etc/passwd`.
//! - `unresolved-user` (medium): a user name (not a number) that
//!   `/etc/passwd` does not list, or a group name missing from `/etc/group`
//!   (`root` always resolves). An unresolved user is not also reported as root:
//!   imgscan cannot know what the platform will substitute.
//! - `root-group` (low): a user that is not root whose group is gid 0: an
//!   explicit `:0` or `:root` (or a name `/etc/group` maps to 0), or, with no
//!   group part, the primary gid of the user's `/etc/passwd` line (found by
//!   name, or by uid for a numeric user).
//!
//! These findings are about the config, so they have no path; their subject
//! is the `User` string (for a group that does not resolve, the string plus
//! ` (group)`, so the two `unresolved-user` findings of `app:staff` differ).
//!
//! ## Why is this bad?
//! A process that is root in the container is root on the host's kernel; a
//! user the image does not define may be replaced by the platform's default
//! (often root); group root reaches everything group-root and group-writable.
//!
//! ## Example
//! ```dockerfile
//! RUN useradd -r -u 10001 app
//! USER app
//! ```
//!
//! ## References
//! - <https://github.com/opencontainers/image-spec/blob/main/config.md> (`User`)
//! - <https://docs.docker.com/reference/dockerfile/#user>

use serde_json::Value;

use super::{Check, Context, Findings, NewFinding, details};
use crate::model::Severity;
use crate::rules::RuleId;

/// Reports `root-user`, `unresolved-user` and `root-group`.
pub struct RootUser;

/// How a uid or gid was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// Nothing configured: the runtime default.
    Default,
    /// A number, or `root`, in the config itself.
    Config,
    /// Looked up in `/etc/passwd`.
    Passwd,
    /// Looked up in `/etc/group`.
    Group,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Config => "config",
            Self::Passwd => "passwd",
            Self::Group => "group",
        }
    }
}

fn numeric(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl Check for RootUser {
    fn rules(&self) -> &'static [RuleId] {
        &[RuleId::RootUser, RuleId::UnresolvedUser, RuleId::RootGroup]
    }

    fn run(&self, ctx: &Context<'_>, out: &mut Findings) {
        let accounts = ctx.accounts;
        let raw = ctx.config.user.as_deref().unwrap_or("");
        let (user, group) = match raw.split_once(':') {
            Some((u, g)) => (u, (!g.is_empty()).then_some(g)),
            None => (raw, None),
        };
        let config_finding =
            |rule, severity, message: String, details, subject: String| NewFinding {
                rule,
                severity,
                at: None,
                message,
                details,
                subject,
            };

        // The user part: Some((uid, via, primary gid from passwd)) or None
        // when it does not resolve.
        let resolved: Option<(u64, Via, Option<u64>)> = if user.is_empty() {
            Some((0, Via::Default, None))
        } else if let Some(uid) = numeric(user) {
            Some((uid, Via::Config, accounts.user_by_uid(uid).map(|u| u.gid)))
        } else if let Some(u) = accounts.user_by_name(user) {
            Some((u.uid, Via::Passwd, Some(u.gid)))
        } else if user == "root" {
            Some((0, Via::Config, None))
        } else {
            None
        };

        match resolved {
            Some((0, via, _)) => {
                let message = match via {
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
                let user_value = if ctx.config.user.is_some() {
                    Value::from(raw)
                } else {
                    Value::Null
                };
                out.push(
                    ctx,
                    config_finding(
                        RuleId::RootUser,
                        Severity::High,
                        message,
                        details([
                            ("user", user_value),
                            ("uid", Value::from(0)),
                            ("resolved_by", Value::from(via.as_str())),
                        ]),
                        raw.to_owned(),
                    ),
                );
                // Root has every group's access already.
                return;
            }
            Some(_) => {}
            None => {
                let reason = if accounts.has_passwd() {
                    format!("no user named `{user}` in /etc/passwd")
                } else {
                    "the image has no /etc/passwd".to_owned()
                };
                out.push(ctx, unresolved(raw, user, "user", &reason, raw.to_owned()));
            }
        }

        // The group: explicit, or the primary group from /etc/passwd.
        let gid: Option<(u64, Via)> = match group {
            Some(g) => {
                if let Some(gid) = numeric(g) {
                    Some((gid, Via::Config))
                } else if let Some(e) = accounts.group_by_name(g) {
                    Some((e.gid, Via::Group))
                } else if g == "root" {
                    Some((0, Via::Config))
                } else {
                    let reason = if accounts.has_group() {
                        format!("no group named `{g}` in /etc/group")
                    } else {
                        "the image has no /etc/group".to_owned()
                    };
                    out.push(
                        ctx,
                        unresolved(raw, g, "group", &reason, format!("{raw} (group)")),
                    );
                    None
                }
            }
            None => resolved.and_then(|(_, _, gid)| gid.map(|g| (g, Via::Passwd))),
        };
        if let Some((0, via)) = gid {
            let how = match via {
                Via::Passwd => "its primary group in /etc/passwd",
                Via::Group => "its group in /etc/group",
                _ => "its configured group",
            };
            out.push(
                ctx,
                config_finding(
                    RuleId::RootGroup,
                    Severity::Low,
                    format!("User `{raw}` runs with the root group (gid 0, {how})"),
                    details([
                        ("user", Value::from(raw)),
                        ("group", group.map_or(Value::Null, Value::from)),
                        ("gid", Value::from(0)),
                        ("resolved_by", Value::from(via.as_str())),
                    ]),
                    raw.to_owned(),
                ),
            );
        }
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
        details: details([
            ("user", Value::from(raw)),
            ("name", Value::from(name)),
            ("part", Value::from(part)),
            ("reason", Value::from(reason)),
        ]),
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
        assert!(check(&fs, Some("app:")).is_empty());
        // A numeric uid needs no passwd entry.
        assert!(check(&fs_of(vec![]), Some("10001")).is_empty());
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
