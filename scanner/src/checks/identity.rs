//! The runtime user: who the container's process runs as, resolved from the
//! config's `User` and the image's own `/etc/passwd` and `/etc/group` as
//! runc's `libcontainer/user` (`GetExecUser`) resolves it for moby and
//! podman, and containerd's `WithUser`/`WithAdditionalGIDs` for its CRI.
//! `root-user`, `unresolved-user` and `root-group` report from the same
//! resolution, and every path to root is judged for the identity
//! [`runtime_user`] returns.
//!
//! Where runtimes differ, the worst case is kept: a uid any runtime may run
//! as that is 0 makes the image run as root, and every gid any runtime may
//! give the process is one of its groups (see `root_user`'s module docs for
//! the cases).
//!
//! Sources: runc `libcontainer/user/user.go` (now `github.com/moby/sys/user`)
//! `GetExecUser`: "a numeric uid with no passwd entry" keeps the defaults
//! (uid given, gid 0, no supplementary groups, home `/`); supplementary groups
//! are the `/etc/group` lines whose member list names the user.

use serde::Serialize;

use super::accounts::{Accounts, GoAtoi, PasswdEntry, go_atoi};
use crate::config::ImageConfig;
use crate::model::{Resolution, RuntimeUser};

/// The largest uid or gid current runtimes accept (`math.MaxInt32`).
pub(crate) const MAX_ID: i64 = i32::MAX as i64;

/// How a uid or gid was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
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
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Config => "config",
            Self::Passwd => "passwd",
            Self::Group => "group",
        }
    }
}

/// One uid some runtime may run the process as.
#[derive(Debug, Clone)]
pub(crate) struct UserRun<'a> {
    pub(crate) uid: u32,
    pub(crate) via: Via,
    /// The passwd entry the runtime took (primary gid, supplementary groups).
    pub(crate) entry: Option<&'a PasswdEntry>,
    /// Which runtimes do this, when they do not all agree.
    pub(crate) note: Option<String>,
}

/// One gid some runtime may run the process with.
#[derive(Debug, Clone)]
pub(crate) struct GroupRun {
    pub(crate) gid: u32,
    pub(crate) via: Via,
    /// How the gid came about, for the message.
    pub(crate) how: String,
    pub(crate) note: Option<String>,
}

/// The uids the user part may run as (worst cases included), or why no
/// runtime resolves it.
pub(crate) fn resolve_user<'a>(user: &str, acc: &'a Accounts) -> Result<Vec<UserRun<'a>>, String> {
    if user.is_empty() {
        return Ok(vec![UserRun {
            uid: 0,
            via: Via::Default,
            entry: acc.user_by_uid(0),
            note: None,
        }]);
    }
    match go_atoi(user.as_bytes()) {
        GoAtoi::Int(v) if (0..=MAX_ID).contains(&v) => Ok(vec![UserRun {
            uid: v as u32,
            via: Via::Config,
            entry: acc.user_by_uid(v),
            note: (user != v.to_string())
                .then(|| format!("runtimes read `{user}` with Go's strconv.Atoi, as {v}")),
        }]),
        GoAtoi::Int(v) => {
            let t = v as u32;
            let mut runs = vec![UserRun {
                uid: t,
                via: Via::Config,
                entry: acc.user_by_uid(i64::from(t)),
                note: Some(format!(
                    "containerd before 1.6.38, 1.7.27 and 2.0.4 stores {v} in the OCI spec's \
                     32-bit uid as {t} (CVE-2024-40635); current moby, podman and containerd \
                     refuse a uid outside 0..={MAX_ID}"
                )),
            }];
            if let Some(e) = acc.user_by_uid(v) {
                runs.push(UserRun {
                    uid: e.runtime_uid(),
                    via: Via::Passwd,
                    entry: Some(e),
                    note: Some(format!(
                        "runc's libcontainer/user (moby/sys/user before 0.4.1) takes the \
                         /etc/passwd entry with uid {v} (line {}) unchecked, which the runtime \
                         stores as uid {}",
                        e.line,
                        e.runtime_uid()
                    )),
                });
            }
            Ok(runs)
        }
        atoi => {
            let beyond = matches!(atoi, GoAtoi::Range(_)).then(|| {
                format!(
                    "`{user}` is a number beyond 64 bits: current runtimes refuse it, older \
                     ones look it up as a name"
                )
            });
            if let Some(e) = acc.user_by_name(user) {
                Ok(vec![UserRun {
                    uid: e.runtime_uid(),
                    via: Via::Passwd,
                    entry: Some(e),
                    note: beyond.or_else(|| e.odd_uid0()),
                }])
            } else if user == "root" {
                Ok(vec![UserRun {
                    uid: 0,
                    via: Via::Config,
                    entry: None,
                    note: None,
                }])
            } else if acc.has_passwd() {
                Err(format!("no user named `{user}` in /etc/passwd"))
            } else {
                Err("the image has no /etc/passwd".to_owned())
            }
        }
    }
}

/// The gids an explicit, non-empty group part may give, or why no runtime
/// resolves it.
pub(crate) fn resolve_group(group: &str, acc: &Accounts) -> Result<Vec<GroupRun>, String> {
    match go_atoi(group.as_bytes()) {
        GoAtoi::Int(v) if (0..=MAX_ID).contains(&v) => Ok(vec![GroupRun {
            gid: v as u32,
            via: Via::Config,
            how: "its configured group".into(),
            note: (group != v.to_string())
                .then(|| format!("runtimes read `{group}` with Go's strconv.Atoi, as {v}")),
        }]),
        GoAtoi::Int(v) => {
            let t = v as u32;
            let mut runs = vec![GroupRun {
                gid: t,
                via: Via::Config,
                how: "its configured group".into(),
                note: Some(format!(
                    "containerd before 1.6.38, 1.7.27 and 2.0.4 stores {v} in the OCI spec's \
                     32-bit gid as {t} (CVE-2024-40635); current runtimes refuse it"
                )),
            }];
            if let Some(g) = acc.group_by_gid(v) {
                runs.push(GroupRun {
                    gid: g.runtime_gid(),
                    via: Via::Group,
                    how: "its group in /etc/group".into(),
                    note: Some(format!(
                        "runc's libcontainer/user (moby/sys/user before 0.4.1) takes the \
                         /etc/group entry with gid {v} unchecked, stored as gid {}",
                        g.runtime_gid()
                    )),
                });
            }
            Ok(runs)
        }
        _ => {
            if let Some(g) = acc.group_by_name(group) {
                Ok(vec![GroupRun {
                    gid: g.runtime_gid(),
                    via: Via::Group,
                    how: "its group in /etc/group".into(),
                    note: None,
                }])
            } else if group == "root" {
                Ok(vec![GroupRun {
                    gid: 0,
                    via: Via::Config,
                    how: "its configured group".into(),
                    note: None,
                }])
            } else if acc.has_group() {
                Err(format!("no group named `{group}` in /etc/group"))
            } else {
                Err("the image has no /etc/group".to_owned())
            }
        }
    }
}

/// The primary gid without an explicit group: the passwd entry's, or 0
/// when the uid has none (runc's default, containerd's `WithUserID`).
pub(crate) fn implicit_gid(run: &UserRun<'_>) -> GroupRun {
    match run.entry {
        Some(e) => GroupRun {
            gid: e.runtime_gid(),
            via: Via::Passwd,
            how: "its primary group in /etc/passwd".into(),
            note: run.note.clone(),
        },
        None => GroupRun {
            gid: 0,
            via: Via::Default,
            how: "the runtime's default: its uid has no /etc/passwd entry".into(),
            note: run.note.clone(),
        },
    }
}

/// A `User` string split as the runtimes split it: the user part, the
/// group part, and a note when moby's runc parser (`parseLine`: the first
/// two `:` fields, the rest ignored) and containerd (which refuses three or
/// more) disagree.
pub(crate) fn split_user(raw: &str) -> (&str, Option<&str>, Option<String>) {
    let parts: Vec<&str> = raw.split(':').collect();
    let user = parts.first().copied().unwrap_or("");
    let group = parts.get(1).copied();
    let note = (parts.len() > 2).then(|| {
        format!(
            "moby's runc parser reads it as `{user}:{}` (containerd refuses it)",
            group.unwrap_or("")
        )
    });
    (user, group, note)
}

/// The primary gids the process may get for the group part `group` and
/// the uids `runs`: the explicit group resolved, or the implicit one from
/// the user (for `user:` both runc's passwd gid and containerd's 0). `Err`
/// with why when an explicit group does not resolve.
pub(crate) fn candidate_gids(
    group: Option<&str>,
    runs: &[UserRun<'_>],
    accounts: &Accounts,
) -> Result<Vec<GroupRun>, String> {
    let mut gids: Vec<GroupRun> = Vec::new();
    match group {
        Some(g) if !g.is_empty() => gids.extend(resolve_group(g, accounts)?),
        Some(_) => {
            // `user:`: runc takes the passwd gid; containerd's `WithUser`
            // leaves the gid at 0.
            gids.extend(runs.iter().map(implicit_gid));
            if !runs.is_empty() {
                gids.push(GroupRun {
                    gid: 0,
                    via: Via::Default,
                    how: "an empty group part".into(),
                    note: Some(
                        "containerd's WithUser leaves the gid at 0 when the group part is \
                         empty; runc's libcontainer/user takes the passwd entry's"
                            .into(),
                    ),
                });
            }
        }
        None => gids.extend(runs.iter().map(implicit_gid)),
    }
    Ok(gids)
}

/// The runtime user of an image (see the module docs).
pub fn runtime_user(config: &ImageConfig, accounts: &Accounts) -> RuntimeUser {
    let raw = config.user.as_deref().unwrap_or("");
    let (user, group, split_note) = split_user(raw);
    let mut out = RuntimeUser {
        user: config.user.clone(),
        resolution: Resolution::User,
        uid: None,
        gid: None,
        ..RuntimeUser::default()
    };
    out.notes.extend(split_note);
    let runs = match resolve_user(user, accounts) {
        Ok(runs) => runs,
        Err(reason) => {
            out.resolution = Resolution::WillNotStart;
            out.reason = Some(format!("User `{raw}` does not resolve: {reason}"));
            return out;
        }
    };
    out.notes.extend(runs.iter().filter_map(|r| r.note.clone()));
    // `resolve_user` returns at least one run on success.
    let Some(run) = runs.iter().find(|r| r.uid == 0).or(runs.first()) else {
        out.resolution = Resolution::WillNotStart;
        return out;
    };
    if run.uid == 0 {
        out.resolution = Resolution::Root;
    }
    out.uid = Some(run.uid);
    if let Some(e) = run.entry {
        out.name = Some(e.name.clone());
        out.home = Some(e.home.clone());
        out.shell = Some(e.shell.clone());
    } else {
        // runc's default ExecUser: home `/`, no shell.
        out.home = Some("/".to_owned());
    }
    let gids = match candidate_gids(group, &runs, accounts) {
        Ok(gids) => gids,
        Err(reason) => {
            out.resolution = Resolution::WillNotStart;
            out.reason = Some(format!("User `{raw}` does not resolve: {reason}"));
            return out;
        }
    };
    for g in &gids {
        if let Some(n) = &g.note
            && !out.notes.contains(n)
        {
            out.notes.push(n.clone());
        }
    }
    let mut all: Vec<u32> = gids.iter().map(|g| g.gid).collect();
    // Supplementary groups: runc adds them when no group is given,
    // containerd's CRI even with one; the worst case is the union.
    for r in &runs {
        if let Some(e) = r.entry {
            all.extend(accounts.groups_of(e.name_bytes()).map(|g| g.runtime_gid()));
        }
    }
    out.gid = all.first().copied();
    let primary = out.gid;
    all.sort_unstable();
    all.dedup();
    out.groups = all.into_iter().filter(|g| Some(*g) != primary).collect();
    out
}

/// The uid and gids access is judged for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Who {
    /// The uid.
    pub uid: u32,
    /// The primary gid first, then the supplementary ones.
    pub gids: Vec<u32>,
}

impl Who {
    /// The identity of a resolved runtime user; `None` when the container
    /// does not start.
    pub fn of(user: &RuntimeUser) -> Option<Self> {
        if user.resolution == Resolution::WillNotStart {
            return None;
        }
        let mut gids: Vec<u32> = user.gid.into_iter().collect();
        gids.extend(&user.groups);
        Some(Self {
            uid: user.uid.unwrap_or(0),
            gids,
        })
    }

    /// Whether the process is in group `gid`.
    pub fn in_group(&self, gid: u64) -> bool {
        self.gids.iter().any(|g| u64::from(*g) == gid)
    }

    /// `uid 1000, gid 1000, groups 27,100` for steps.
    pub fn describe(&self, user: &RuntimeUser) -> String {
        let who = match &user.name {
            Some(n) => format!("{n} (uid {})", self.uid),
            None => format!("uid {}", self.uid),
        };
        let groups: Vec<String> = self.gids.iter().map(u32::to_string).collect();
        format!("{who}, groups {}", groups.join(","))
    }
}
