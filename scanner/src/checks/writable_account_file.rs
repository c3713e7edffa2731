//! `writable-account-file`: an account, sudo, PAM or loader file the
//! runtime user can change, with the setuid program that turns the change
//! into root.
//!
//! The documentation `imgscan explain`, SARIF help and `docs/rules.md` show is
//! the Markdown of [`WRITABLE_ACCOUNT_FILE`]
//! (`checks/docs/writable-account-file.md`), included here.
#![doc = include_str!("docs/writable-account-file.md")]

use serde::Serialize;

use super::access::{Granted, Perm, access, can_modify};
use super::escalation::{NewPath, push_path, who_step};
use super::identity::Who;
use super::sudo::setuid_program;
use super::{Check, Context, Findings};
use crate::model::Closer;
use crate::rules::{Reach, RuleId, RuleKind, RuleMeta, RuleStatus};
use crate::severity::Severity;

/// `writable-account-file` (IS017).
pub const WRITABLE_ACCOUNT_FILE: RuleMeta = RuleMeta {
    id: RuleId::WritableAccountFile,
    code: "IS017",
    name: "WritableAccountFile",
    default_severity: Severity::Critical,
    summary: "The runtime user can change an account, sudo, PAM or dynamic-loader file (by owner, group or other bits, or through its directory), and a setuid program it can run turns the change into root: a path to root.",
    severity_note: "critical: it works under the default runtime settings; closed by no-new-privileges (the setuid program gives nothing) and by a read-only root filesystem (the write fails).",
    // CWE-732: Incorrect Permission Assignment for Critical Resource.
    tags: &[
        "privilege-escalation",
        "path-to-root",
        "external/cwe/cwe-732",
    ],
    status: RuleStatus::Active,
    kind: RuleKind::Path(Reach::Local),
    explanation: include_str!("docs/writable-account-file.md"),
};

/// `writable-account-file` facts (with `steps` and `closed_by`).
#[derive(Debug, Serialize)]
pub struct WritableFacts {
    /// The file that can be changed.
    pub file: String,
    /// The setuid program that uses it.
    pub program: String,
}

/// Reports `writable-account-file`.
pub struct WritableAccountFile;

const SU: &[&str] = &["usr/bin/su", "bin/su"];
const SUDO: &[&str] = &["usr/bin/sudo", "bin/sudo", "usr/local/bin/sudo"];

/// The C libraries and loaders every dynamically linked setuid program
/// maps: replacing one runs the replacement's code as root.
const LIBC: &[&str] = &[
    "usr/lib/x86_64-linux-gnu/libc.so.6",
    "lib/x86_64-linux-gnu/libc.so.6",
    "lib64/ld-linux-x86-64.so.2",
    "usr/lib/aarch64-linux-gnu/libc.so.6",
    "lib/aarch64-linux-gnu/libc.so.6",
    "lib/ld-linux-aarch64.so.1",
    "usr/lib64/libc.so.6",
    "lib/ld-musl-x86_64.so.1",
    "lib/ld-musl-aarch64.so.1",
];

/// The PAM module directories of common layouts.
const PAM_MODULES: &[&str] = &[
    "usr/lib/x86_64-linux-gnu/security/pam_unix.so",
    "lib/x86_64-linux-gnu/security/pam_unix.so",
    "usr/lib/aarch64-linux-gnu/security/pam_unix.so",
    "usr/lib64/security/pam_unix.so",
    "lib/security/pam_unix.so",
];

/// Any setuid-root program the user can run, for loader paths.
fn any_setuid(ctx: &Context<'_>, who: &Who) -> Option<(String, String)> {
    ctx.inventory
        .select(|_, n| n.is_regular() && n.uid == 0 && n.mode & 0o4000 != 0)
        .into_iter()
        .find_map(|(p, _)| access(ctx.fs, who, &p, Perm::Exec).ok().map(|g| (p, g.why)))
}

impl WritableAccountFile {
    /// Reports the path through the changeable file `write` (where it
    /// resolved and why it can be changed) and the setuid `program`
    /// (path, why the user can run it), `then` saying how the two give root.
    fn report(
        &self,
        ctx: &Context<'_>,
        out: &mut Findings,
        first: &str,
        write: Granted,
        program: (String, String),
        then: String,
    ) {
        let (file, write_why) = (write.path.as_str(), write.why);
        let at = ctx.fs.node_at(file).map(|n| (file, n));
        let steps = vec![
            first.to_owned(),
            format!("/{file} can be changed: {write_why}"),
            format!("/{} is setuid root and {}", program.0, program.1),
            then,
        ];
        push_path(
            ctx,
            out,
            NewPath {
                rule: RuleId::WritableAccountFile,
                severity: Severity::Critical,
                at,
                message: format!(
                    "the runtime user can change /{file}, which setuid-root /{} then trusts: a path to root",
                    program.0
                ),
                facts: WritableFacts {
                    file: format!("/{file}"),
                    program: format!("/{}", program.0),
                },
                steps,
                closed_by: vec![Closer::NoNewPrivileges, Closer::ReadOnlyRootfs],
                subject: file.to_owned(),
            },
        );
    }
}

impl Check for WritableAccountFile {
    fn run(&self, ctx: &Context<'_>, out: &mut Findings) {
        let Some((who, first)) = who_step(ctx) else {
            return;
        };
        let su = setuid_program(ctx, &who, SU)
            .ok()
            .map(|(p, _, g)| (p, g.why));
        // sudo refuses a caller without a passwd entry.
        let sudo = setuid_program(ctx, &who, SUDO)
            .ok()
            .filter(|_| super::sudo::invoker_known(ctx))
            .map(|(p, _, g)| (p, g.why));
        // passwd and shadow: a line (or root's hash) with a password the
        // writer chose, then su to it.
        if let Some(su) = &su {
            for (file, then) in [
                (
                    "etc/passwd",
                    "append an account with uid 0 and a password hash of one's choosing, then su to it",
                ),
                (
                    "etc/shadow",
                    "set root's password hash to one of one's choosing, then su root",
                ),
                (
                    "etc/pam.d/su",
                    "make su's auth stack `pam_permit.so`, then su root with no password",
                ),
                (
                    "etc/pam.d/common-auth",
                    "make the shared auth stack `pam_permit.so`, then su root with no password",
                ),
            ] {
                if ctx.fs.node_at(file).is_none() {
                    continue;
                }
                if let Ok(g) = can_modify(ctx.fs, &who, file) {
                    self.report(ctx, out, &first, g, su.clone(), then.to_owned());
                }
            }
            for m in PAM_MODULES {
                if ctx.fs.node_at(m).is_some()
                    && let Ok(g) = can_modify(ctx.fs, &who, m)
                {
                    self.report(
                        ctx,
                        out,
                        &first,
                        g,
                        su.clone(),
                        "replace the PAM module su loads, which then runs as root".to_owned(),
                    );
                }
            }
        }
        if let Some(sudo) = &sudo {
            // sudo refuses a sudoers file that is world-writable, or
            // group-writable with a group other than 0 (sudoers(5), "SECURITY
            // NOTES"), and one not owned by root: only an existing file
            // written in place, by its group 0, is a path.
            let mut files = vec!["etc/sudoers".to_owned()];
            if let Some(d) = ctx.fs.canonical("etc/sudoers.d", true) {
                files.extend(
                    ctx.fs
                        .children(&d)
                        .filter(|(n, _)| !n.ends_with('~') && !n.contains('.'))
                        .map(|(n, _)| format!("{d}/{n}")),
                );
            }
            for f in files {
                let Ok(g) = access(ctx.fs, &who, &f, Perm::Write) else {
                    continue;
                };
                let Some(node) = ctx.fs.get(&g.path) else {
                    continue;
                };
                if node.uid != 0
                    || node.mode & 0o002 != 0
                    || (node.mode & 0o020 != 0 && node.gid != 0)
                {
                    continue;
                }
                self.report(
                    ctx,
                    out,
                    &first,
                    g,
                    sudo.clone(),
                    "add `ALL ALL=(ALL) NOPASSWD: ALL`, then sudo sh".to_owned(),
                );
            }
            if ctx.fs.node_at("etc/pam.d/sudo").is_some()
                && let Ok(g) = can_modify(ctx.fs, &who, "etc/pam.d/sudo")
            {
                self.report(
                    ctx,
                    out,
                    &first,
                    g,
                    sudo.clone(),
                    "make sudo's auth stack `pam_permit.so`, then sudo sh".to_owned(),
                );
            }
            // /etc/group: join a group that sudo lets run anything as root
            // without a password.
            let policy = ctx.sudo;
            if let Some((group, grant, gives)) =
                policy.nopasswd_group_grants(ctx).into_iter().next()
            {
                for file in ["etc/group", "etc/gshadow"] {
                    if file == "etc/gshadow" && ctx.fs.node_at(file).is_none() {
                        continue;
                    }
                    if let Ok(g) = can_modify(ctx.fs, &who, file) {
                        self.report(
                            ctx,
                            out,
                            &first,
                            g,
                            sudo.clone(),
                            format!(
                                "add oneself to group {group}, which /{} line {} lets run {gives} as root with NOPASSWD, then sudo",
                                grant.file, grant.line
                            ),
                        );
                        break;
                    }
                }
            }
        }
        // The loader: /etc/ld.so.preload (also read for setuid programs) and
        // the C library itself.
        if let Some(prog) = any_setuid(ctx, &who) {
            if let Ok(g) = can_modify(ctx.fs, &who, "etc/ld.so.preload") {
                self.report(ctx, out, &first, g, prog.clone(), "name a library of one's own in /etc/ld.so.preload, which the loader maps into every setuid program".to_owned());
            }
            for lib in LIBC {
                if ctx.fs.node_at(lib).is_some()
                    && let Ok(g) = can_modify(ctx.fs, &who, lib)
                {
                    self.report(
                        ctx,
                        out,
                        &first,
                        g,
                        prog.clone(),
                        "replace the C library or loader every setuid program maps".to_owned(),
                    );
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::packages::test_support::*;
    use crate::layer::Entry;

    fn moded(mut e: Entry, mode: u32) -> Entry {
        e.mode = mode;
        e
    }

    fn image(passwd_mode: u32, su_mode: u32) -> crate::fs::FinalFs {
        fs_of(vec![vec![
            dir("etc", 0o755),
            moded(
                text("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
                passwd_mode,
            ),
            file("usr/bin/su", su_mode),
        ]])
    }

    #[test]
    fn gid0_writable_passwd_with_su_is_a_path() {
        // USER 10001 (no passwd entry) runs with gid 0.
        let out = run(
            &WritableAccountFile,
            &image(0o664, 0o4755),
            &config_user(Some("10001")),
        );
        assert_eq!(
            brief(&out.findings),
            ["writable-account-file critical /etc/passwd"]
        );
        assert_eq!(
            out.findings[0].details["closed_by"],
            serde_json::json!(["no-new-privileges", "read-only-rootfs"])
        );
        // Twins: passwd not group-writable; su not setuid; a non-zero gid.
        assert!(
            run(
                &WritableAccountFile,
                &image(0o644, 0o4755),
                &config_user(Some("10001"))
            )
            .findings
            .is_empty()
        );
        assert!(
            run(
                &WritableAccountFile,
                &image(0o664, 0o755),
                &config_user(Some("10001"))
            )
            .findings
            .is_empty()
        );
        assert!(
            run(
                &WritableAccountFile,
                &image(0o664, 0o4755),
                &config_user(Some("10001:10001"))
            )
            .findings
            .is_empty()
        );
    }

    #[test]
    fn world_writable_sudoers_is_refused_by_sudo() {
        let fs = |mode| {
            fs_of(vec![vec![
                text(
                    "etc/passwd",
                    "root:x:0:0::/root:/bin/sh\napp:x:10001:10001::/home/app:/bin/sh\n",
                ),
                moded(text("etc/sudoers", "root ALL=(ALL) ALL\n"), mode),
                file("usr/bin/sudo", 0o4755),
            ]])
        };
        let paths = |mode, user| {
            brief(&run(&WritableAccountFile, &fs(mode), &config_user(Some(user))).findings)
        };
        assert_eq!(
            paths(0o660, "app:0"),
            ["writable-account-file critical /etc/sudoers"]
        );
        // sudo refuses a world-writable sudoers, and a caller without a
        // passwd entry.
        assert!(paths(0o666, "app:0").is_empty());
        assert!(paths(0o660, "20000").is_empty());
    }
}
