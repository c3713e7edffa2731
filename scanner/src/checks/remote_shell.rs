//! `remote-shell-daemon`: ssh, telnet and r-services servers in the image.
//!
//! The documentation `imgscan explain`, SARIF help and `docs/rules.md` show is
//! the Markdown of [`REMOTE_SHELL_DAEMON`] (`checks/docs/remote-shell-
//! daemon.md`), included here.
#![doc = include_str!("docs/remote-shell-daemon.md")]

use serde::Serialize;

use super::{Check, Context, Findings, NewFinding, base_name, details};
use crate::rules::{RuleId, RuleKind, RuleMeta, RuleStatus};
use crate::severity::Severity;
use crate::tarstream::Kind;

/// `remote-shell-daemon` (IS008).
pub const REMOTE_SHELL_DAEMON: RuleMeta = RuleMeta {
    id: RuleId::RemoteShellDaemon,
    code: "IS008",
    name: "RemoteShellDaemon",
    default_severity: Severity::Medium,
    summary: "The image contains an ssh or telnet (remote shell) server: sshd, dropbear, tinysshd, telnetd, utelnetd, rlogind, rshd or rexecd (and their in. forms), including links to a multi-call binary such as busybox.",
    severity_note: "medium for ssh servers, high for cleartext ones (telnet, rlogin, rsh, rexec); one level higher when the config exposes port 22/23 (or 513/514/512) or the entrypoint/command starts the daemon.",
    tags: &["remote-access"],
    status: RuleStatus::Active,
    kind: RuleKind::Fact,
    explanation: include_str!("docs/remote-shell-daemon.md"),
};

/// `remote-shell-daemon` details.
#[derive(Debug, Serialize)]
pub struct RemoteShellDetails {
    /// The daemon the file name matched (`sshd`, `in.telnetd`, ...).
    pub daemon: &'static str,
    /// Its protocol: `ssh`, `telnet`, `rlogin`, `rsh` or `rexec`.
    pub protocol: &'static str,
    /// Whether the config's `ExposedPorts` has the daemon's port.
    pub exposed_port: bool,
    /// Whether a word of `Entrypoint` + `Cmd` names the daemon.
    pub started_by_config: bool,
    /// For a symlink, the file it resolves to (absolute).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// For a hard link, the path it links to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardlink_to: Option<String>,
}

/// Reports `remote-shell-daemon`.
pub struct RemoteShellDaemon;

/// A daemon name, its protocol and the port it listens on.
struct Daemon {
    name: &'static str,
    protocol: &'static str,
    port: u16,
}

const fn d(name: &'static str, protocol: &'static str, port: u16) -> Daemon {
    Daemon {
        name,
        protocol,
        port,
    }
}

const DAEMONS: &[Daemon] = &[
    d("sshd", "ssh", 22),
    d("dropbear", "ssh", 22),
    d("dropbearmulti", "ssh", 22),
    d("tinysshd", "ssh", 22),
    d("telnetd", "telnet", 23),
    d("in.telnetd", "telnet", 23),
    d("utelnetd", "telnet", 23),
    d("rlogind", "rlogin", 513),
    d("in.rlogind", "rlogin", 513),
    d("rshd", "rsh", 514),
    d("in.rshd", "rsh", 514),
    d("rexecd", "rexec", 512),
    d("in.rexecd", "rexec", 512),
];

/// Directories whose files are named after daemons without being them.
const NOT_DAEMON_DIRS: &[&str] = &["etc/", "usr/share/"];

/// Whether `ExposedPorts` has `port` (`"23/tcp"` or `"23"`).
fn exposes(ports: &[String], port: u16) -> bool {
    ports.iter().any(|key| {
        let (num, proto) = key.split_once('/').unwrap_or((key, "tcp"));
        num.trim().parse::<u16>() == Ok(port) && proto.trim().eq_ignore_ascii_case("tcp")
    })
}

/// The words of the entrypoint and command, shell strings split too.
fn command_words(entrypoint: &[String], cmd: &[String]) -> Vec<String> {
    entrypoint
        .iter()
        .chain(cmd)
        .flat_map(|arg| {
            arg.split(|c: char| {
                c.is_whitespace() || matches!(c, ';' | '&' | '|' | '(' | ')' | '\'' | '"' | '`')
            })
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
        })
        .collect()
}

impl Check for RemoteShellDaemon {
    fn run(&self, ctx: &Context<'_>, out: &mut Findings) {
        let words = command_words(&ctx.config.entrypoint, &ctx.config.cmd);
        for (path, node) in ctx
            .fs
            .select(|name, _| DAEMONS.iter().any(|d| d.name == name))
        {
            let path = path.as_str();
            let name = base_name(path);
            let Some(daemon) = DAEMONS.iter().find(|d| d.name == name) else {
                continue;
            };
            if NOT_DAEMON_DIRS.iter().any(|d| path.starts_with(d)) {
                continue;
            }
            let target = match node.kind {
                Kind::File | Kind::Hardlink => None,
                Kind::Symlink => match ctx.fs.resolve(path) {
                    Some((resolved, n)) if n.is_regular() => Some(resolved),
                    _ => continue,
                },
                _ => continue,
            };
            let exposed = exposes(&ctx.config.exposed_ports, daemon.port);
            let started = words.iter().any(|w| base_name(w) == daemon.name);
            let base = if daemon.protocol == "ssh" {
                Severity::Medium
            } else {
                Severity::High
            };
            let severity = if exposed || started {
                base.raised()
            } else {
                base
            };
            let server = if daemon.protocol == "ssh" {
                "ssh server".to_owned()
            } else {
                format!("cleartext {} server", daemon.protocol)
            };
            let mut message = format!("{server} /{path}");
            if let Some(t) = &target {
                message.push_str(&format!(" (-> /{t})"));
            }
            match (exposed, started) {
                (true, true) => message.push_str(&format!(
                    "; the config exposes port {} and starts it",
                    daemon.port
                )),
                (true, false) => {
                    message.push_str(&format!("; the config exposes port {}", daemon.port));
                }
                (false, true) => message.push_str("; the entrypoint or command starts it"),
                (false, false) => {}
            }
            let d = details(&RemoteShellDetails {
                daemon: daemon.name,
                protocol: daemon.protocol,
                exposed_port: exposed,
                started_by_config: started,
                target: target.as_ref().map(|t| format!("/{t}")),
                hardlink_to: node
                    .link()
                    .filter(|_| node.kind == Kind::Hardlink)
                    .map(|t| format!("/{t}")),
            });
            out.push(
                ctx,
                NewFinding {
                    rule: RuleId::RemoteShellDaemon,
                    severity,
                    at: Some((path, node)),
                    message,
                    details: d,
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
    use crate::config::ImageConfig;
    use crate::fs::FinalFs;

    fn busybox_image() -> FinalFs {
        fs_of(vec![vec![
            dir("bin", 0o755),
            file("bin/busybox", 0o755),
            symlink("bin/sh", "busybox"),
            symlink("usr/sbin/telnetd", "../../bin/busybox"),
        ]])
    }

    fn config(ports: &[&str], entrypoint: &[&str], cmd: &[&str]) -> ImageConfig {
        let v = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect();
        ImageConfig {
            exposed_ports: v(ports),
            entrypoint: v(entrypoint),
            cmd: v(cmd),
            ..ImageConfig::default()
        }
    }

    #[test]
    fn busybox_telnetd_link_raised_by_expose_23() {
        let fs = busybox_image();
        let out = run(&RemoteShellDaemon, &fs, &config(&[], &[], &["/bin/sh"]));
        assert_eq!(
            brief(&out.findings),
            ["remote-shell-daemon high /usr/sbin/telnetd"]
        );
        assert_eq!(out.findings[0].details["target"], "/bin/busybox");
        assert_eq!(out.findings[0].details["protocol"], "telnet");
        assert_eq!(out.findings[0].details["exposed_port"], false);

        let out = run(
            &RemoteShellDaemon,
            &fs,
            &config(&["23/tcp"], &[], &["/bin/sh"]),
        );
        assert_eq!(
            brief(&out.findings),
            ["remote-shell-daemon critical /usr/sbin/telnetd"]
        );
        assert_eq!(out.findings[0].details["exposed_port"], true);
        assert_eq!(out.findings[0].details["started_by_config"], false);
        insta::assert_json_snapshot!(out.findings);

        // 23/udp is not the telnet port; 22 is another daemon's.
        let out = run(
            &RemoteShellDaemon,
            &fs,
            &config(&["23/udp", "22"], &[], &[]),
        );
        assert_eq!(
            brief(&out.findings),
            ["remote-shell-daemon high /usr/sbin/telnetd"]
        );
    }

    #[test]
    fn busybox_without_daemon_links_and_dangling_links_are_not_findings() {
        let fs = fs_of(vec![vec![
            file("bin/busybox", 0o755),
            symlink("bin/sh", "busybox"),
            symlink("usr/sbin/telnetd", "/bin/missing"),
            symlink("usr/sbin/sshd", "/usr"),
            dir("run/sshd", 0o755),
            file("etc/pam.d/sshd", 0o644),
            file("etc/init.d/dropbear", 0o755),
            file("usr/share/doc/rshd", 0o644),
            file("usr/bin/telnet", 0o755),
            file("usr/bin/ssh", 0o755),
        ]]);
        let out = run(
            &RemoteShellDaemon,
            &fs,
            &config(&["22/tcp", "23/tcp"], &[], &["telnetd"]),
        );
        assert!(out.findings.is_empty(), "{:?}", brief(&out.findings));
    }

    #[test]
    fn sshd_started_by_cmd_is_raised() {
        let fs = fs_of(vec![vec![
            file("usr/sbin/sshd", 0o755),
            file("usr/sbin/dropbear", 0o755),
        ]]);
        let out = run(
            &RemoteShellDaemon,
            &fs,
            &config(&[], &[], &["/usr/sbin/sshd", "-D"]),
        );
        assert_eq!(
            brief(&out.findings),
            [
                "remote-shell-daemon medium /usr/sbin/dropbear",
                "remote-shell-daemon high /usr/sbin/sshd",
            ]
        );
        assert_eq!(out.findings[1].details["started_by_config"], true);
        assert!(out.findings[1].message.contains("starts it"));

        // Inside a shell string, after other commands.
        let cfg = config(&[], &["sh", "-c"], &["ssh-keygen -A && exec sshd -D -e"]);
        let out = run(&RemoteShellDaemon, &fs, &cfg);
        assert_eq!(out.findings[1].severity, Severity::High);
        let cfg = config(
            &[],
            &["/bin/sh", "-c", "mkdir /run/x;/usr/sbin/dropbear -F"],
            &[],
        );
        let out = run(&RemoteShellDaemon, &fs, &cfg);
        assert_eq!(out.findings[0].severity, Severity::High);
        assert_eq!(out.findings[1].severity, Severity::Medium);

        // Exposed and started: raised once.
        let out = run(
            &RemoteShellDaemon,
            &fs,
            &config(&["22/tcp"], &["sshd"], &[]),
        );
        assert_eq!(
            brief(&out.findings),
            [
                "remote-shell-daemon high /usr/sbin/dropbear",
                "remote-shell-daemon high /usr/sbin/sshd",
            ]
        );
        insta::assert_json_snapshot!(out.findings);
    }

    #[test]
    fn hard_links_and_r_services() {
        let fs = fs_of(vec![vec![
            file("usr/sbin/inetutils", 0o755),
            hardlink("usr/sbin/in.rlogind", "usr/sbin/inetutils", 0o755),
            file("usr/sbin/in.rshd", 0o755),
            file("usr/sbin/rexecd", 0o755),
        ]]);
        let out = run(&RemoteShellDaemon, &fs, &config(&["514/tcp"], &[], &[]));
        assert_eq!(
            brief(&out.findings),
            [
                "remote-shell-daemon high /usr/sbin/in.rlogind",
                "remote-shell-daemon critical /usr/sbin/in.rshd",
                "remote-shell-daemon high /usr/sbin/rexecd",
            ]
        );
        assert_eq!(
            out.findings[0].details["hardlink_to"],
            "/usr/sbin/inetutils"
        );
        assert_eq!(out.findings[0].details["protocol"], "rlogin");
        assert_eq!(out.findings[2].details["protocol"], "rexec");
    }
}
