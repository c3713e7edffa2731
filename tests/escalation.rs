//! Paths to root, exploited for real as the runtime user (issue #11).
//!
//! Every fixture starts from one Debian root filesystem
//! (`tests/escalation/build-base.sh`: debootstrap minbase with sudo and
//! python3, an account `app` uid 10001), changes one thing, and becomes a
//! two-layer docker-archive (the base tree, then the changed paths) that
//! imgscan scans. The same tree is then entered with `chroot --userspec` as
//! the image's runtime user and the path is walked: the test asserts that
//! `id -u` (or `os.getuid()`) prints 0 where imgscan claims a path, and
//! that it does not in the twin with one step removed, where imgscan must
//! claim none. The remote path (root's authorized keys and sshd) is walked
//! from outside: the image's own sshd runs in the tree on 127.0.0.1 and the
//! host's ssh client logs in with the key. Needs root, debootstrap, a
//! Debian mirror, setcap, GNU tar and the OpenSSH client.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::tools::{require_root, require_tool, run};
use crate::util::{docker_archive, imgscan};

/// The cached base: `rootfs/` and `base.tar`, built once per version of
/// the build script.
pub(crate) fn base() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        require_root("the escalation fixtures are built with debootstrap and entered with chroot");
        require_tool("debootstrap");
        let script = crate::util::root().join("tests/escalation/build-base.sh");
        let hash = hex(&Sha256::digest(std::fs::read(&script).unwrap()))[..12].to_owned();
        let dir = std::env::temp_dir().join(format!("imgscan-escalation-{hash}"));
        if !dir.join("base.tar").exists() {
            run(Command::new("bash").arg(&script).arg(&dir));
        }
        dir
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One fixture: a copy of the base tree with `change` applied (a shell
/// script run with `$R` the tree), scanned and entered as `user`.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    archive: PathBuf,
    user: String,
}

impl Fixture {
    fn new(user: &str, change: &str, changed: &[&str]) -> Self {
        let base = base();
        let dir = tempfile::Builder::new()
            .prefix("imgscan-esc-")
            .tempdir_in(std::env::temp_dir())
            .unwrap();
        let root = dir.path().join("rootfs");
        run(Command::new("cp")
            .arg("-a")
            .arg(base.join("rootfs"))
            .arg(&root));
        run(Command::new("bash")
            .args(["-euc", change])
            .env("R", &root)
            .env(
                "PATH",
                "/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin",
            ));
        let top = dir.path().join("top.tar");
        run(Command::new("tar")
            .arg("-C")
            .arg(&root)
            .args([
                "--numeric-owner",
                "--xattrs",
                "--xattrs-include=security.capability",
                "--format=posix",
                "--no-recursion",
                "-cf",
            ])
            .arg(&top)
            .args(changed));
        let layers = vec![
            std::fs::read(base.join("base.tar")).unwrap(),
            std::fs::read(&top).unwrap(),
        ];
        let archive = dir.path().join("image.tar");
        std::fs::write(
            &archive,
            docker_archive(&layers, json!({ "User": user }), "x/escalation:t"),
        )
        .unwrap();
        Self {
            _dir: dir,
            root,
            archive,
            user: user.to_owned(),
        }
    }

    fn report(&self) -> Value {
        let out = imgscan(&[
            "--format",
            "json",
            "--fail-on",
            "none",
            self.archive.to_str().unwrap(),
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Runs `script` in the tree as the runtime user (`uid:gid`); its
    /// stdout, trimmed.
    fn as_user(&self, uidgid: &str, script: &str) -> String {
        self.run_as(uidgid, script, false)
    }

    /// The same under no_new_privs (`setpriv --no-new-privs`), as
    /// `--security-opt no-new-privileges` runs it.
    fn as_user_nnp(&self, uidgid: &str, script: &str) -> String {
        self.run_as(uidgid, script, true)
    }

    fn run_as(&self, uidgid: &str, script: &str, nnp: bool) -> String {
        let mut cmd = if nnp {
            let mut c = Command::new("setpriv");
            c.args(["--no-new-privs", "chroot"]);
            c
        } else {
            Command::new("chroot")
        };
        let out = cmd
            .arg(format!("--userspec={uidgid}"))
            .arg(&self.root)
            .args(["/bin/sh", "-c", script])
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .stdin(Stdio::null())
            .output()
            .expect("chroot");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

/// The rule ids of the report's escalation paths.
fn path_rules(report: &Value) -> Vec<String> {
    report["escalation"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["rule_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Asserts imgscan's claim and the exploit agree: with `rule` claimed the
/// exploit prints 0; in the twin (`rule` not claimed) it does not.
fn check(f: &Fixture, uidgid: &str, rule: &str, claimed: bool, exploit: &str) {
    let report = f.report();
    let rules = path_rules(&report);
    let got = f.as_user(uidgid, exploit);
    if claimed {
        assert!(
            rules.iter().any(|r| r == rule),
            "{} paths: {rules:?}",
            f.user
        );
        assert_eq!(report["escalation"]["verdict"], "can-become-root");
        let path = report["escalation"]["paths"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["rule_id"] == rule)
            .unwrap();
        assert!(path["steps"].as_array().unwrap().len() >= 3, "{path}");
        assert_eq!(
            got.lines().last(),
            Some("0"),
            "imgscan claims {rule} but the exploit gave {got:?}"
        );
        // What imgscan says closes it does close it.
        if path["closed_by"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "no-new-privileges")
        {
            let closed = f.as_user_nnp(uidgid, exploit);
            assert_ne!(
                closed.lines().last(),
                Some("0"),
                "{rule} is said to be closed by no-new-privileges, but under it: {closed:?}"
            );
        }
    } else {
        assert!(
            !rules.iter().any(|r| r == rule),
            "twin must not claim {rule}: {rules:?}"
        );
        assert_ne!(
            got.lines().last(),
            Some("0"),
            "imgscan claims no {rule} but the exploit became root"
        );
    }
}

#[test]
fn setuid_find_is_root_and_its_twin_is_not() {
    let exploit = "find /etc/hostname -exec /bin/sh -p -c 'id -u' ';'";
    let f = Fixture::new("app", "chmod 4755 \"$R/usr/bin/find\"", &["usr/bin/find"]);
    check(&f, "10001:10001", "setuid-root-shell", true, exploit);
    let twin = Fixture::new("app", "chmod 0755 \"$R/usr/bin/find\"", &["usr/bin/find"]);
    check(&twin, "10001:10001", "setuid-root-shell", false, exploit);
}

#[test]
fn setuid_cp_writes_passwd_then_su_and_its_twin_is_not() {
    // The new passwd is written by the user, then copied over /etc/passwd
    // by the setuid cp (a file cp creates would be root's).
    let exploit = "{ cat /etc/passwd; echo 'x::0:0::/:/bin/sh'; } > /tmp/p && \
                   cp /tmp/p /etc/passwd 2>/dev/null; su -c 'id -u' x 2>/dev/null";
    let f = Fixture::new("app", "chmod 4755 \"$R/usr/bin/cp\"", &["usr/bin/cp"]);
    check(&f, "10001:10001", "setuid-root-shell", true, exploit);
    let twin = Fixture::new("app", "chmod 0755 \"$R/usr/bin/cp\"", &["usr/bin/cp"]);
    check(&twin, "10001:10001", "setuid-root-shell", false, exploit);
}

#[test]
fn empty_root_password_and_su_is_root_and_a_locked_root_is_not() {
    let exploit = "su -c 'id -u' root 2>/dev/null";
    let f = Fixture::new(
        "app",
        "sed -i 's/^root:[^:]*:/root::/' \"$R/etc/shadow\"",
        &["etc/shadow"],
    );
    check(&f, "10001:10001", "su-empty-password", true, exploit);
    let report = f.report();
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["rule_id"] == "empty-password"),
        "the empty password is a fact too"
    );
    let twin = Fixture::new(
        "app",
        "sed -i 's/^root:[^:]*:/root:*:/' \"$R/etc/shadow\"",
        &["etc/shadow"],
    );
    check(&twin, "10001:10001", "su-empty-password", false, exploit);
}

#[test]
fn gid0_writable_passwd_and_su_is_root_and_0644_is_not() {
    // USER 20000 has no passwd entry: it runs with gid 0.
    let exploit =
        "echo 'x::0:0::/:/bin/sh' >> /etc/passwd 2>/dev/null; su -c 'id -u' x 2>/dev/null";
    let f = Fixture::new("20000", "chmod 0664 \"$R/etc/passwd\"", &["etc/passwd"]);
    let report = f.report();
    assert_eq!(report["escalation"]["runtime_user"]["gid"], 0);
    check(&f, "20000:0", "writable-account-file", true, exploit);
    let twin = Fixture::new("20000", "chmod 0644 \"$R/etc/passwd\"", &["etc/passwd"]);
    check(&twin, "20000:0", "writable-account-file", false, exploit);
}

#[test]
fn nopasswd_sudo_is_root_and_a_password_rule_is_not() {
    let exploit = "sudo -n id -u 2>/dev/null";
    let rule = |r: &str| {
        format!("echo '{r}' > \"$R/etc/sudoers.d/app\" && chmod 0440 \"$R/etc/sudoers.d/app\"")
    };
    let f = Fixture::new(
        "app",
        &rule("app ALL=(ALL) NOPASSWD: ALL"),
        &["etc/sudoers.d/app"],
    );
    check(&f, "10001:10001", "sudo-root", true, exploit);
    let twin = Fixture::new("app", &rule("app ALL=(ALL) ALL"), &["etc/sudoers.d/app"]);
    check(&twin, "10001:10001", "sudo-root", false, exploit);
}

#[test]
fn cap_setuid_python_is_root_and_without_it_is_not() {
    require_tool("setcap");
    let exploit = "python3 -c 'import os; os.setuid(0); print(os.getuid())' 2>/dev/null";
    let f = Fixture::new(
        "app",
        "setcap cap_setuid+ep \"$R/usr/bin/python3.11\"",
        &["usr/bin/python3.11"],
    );
    check(&f, "10001:10001", "capability-root", true, exploit);
    let twin = Fixture::new(
        "app",
        "setcap cap_net_raw+ep \"$R/usr/bin/python3.11\"",
        &["usr/bin/python3.11"],
    );
    check(&twin, "10001:10001", "capability-root", false, exploit);
}

#[test]
fn a_plain_non_root_debian_image_passes_the_default_gate() {
    // The base as shipped: setuid su, passwd, mount... owned by packages,
    // a locked root, app non-root. No path, and nothing at or above high.
    let f = Fixture::new("app", "true", &["etc/hostname"]);
    let report = f.report();
    assert_eq!(
        report["escalation"]["verdict"], "no-known-path",
        "{}",
        report["escalation"]
    );
    let out = imgscan(&[f.archive.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("runs as app (uid 10001): no known path to root"),
        "{table}"
    );
    // `imgscan harden`: the numbers come from the image's passwd, and the
    // image fits the restricted profile.
    let out = imgscan(&["harden", "--format", "json", f.archive.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let h: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(h[0]["hardening"]["run_as_user"], 10001);
    assert_eq!(h[0]["hardening"]["run_as_group"], 10001);
    assert_eq!(
        h[0]["hardening"]["pod_security_restricted"]["allowed"],
        true
    );
    let out = imgscan(&["harden", f.archive.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("runAsUser: 10001") && text.contains("allowPrivilegeEscalation: false"),
        "{text}"
    );
    assert!(text.contains("sudo and su stop working"), "{text}");
    // The same image as root fails it.
    let root = Fixture::new("", "true", &["etc/hostname"]);
    assert_eq!(root.report()["escalation"]["verdict"], "runs-as-root");
    assert_eq!(
        imgscan(&[root.archive.to_str().unwrap()]).status.code(),
        Some(1)
    );
}

#[test]
fn root_authorized_keys_and_sshd_log_root_in_and_permit_root_login_no_does_not() {
    require_tool("ssh");
    require_tool("ssh-keygen");
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("id");
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", ""])
        .arg("-f")
        .arg(&key));
    let install = format!(
        "mkdir -p \"$R/root/.ssh\" \"$R/run/sshd\" && cp {} \"$R/root/.ssh/authorized_keys\" \
         && chmod 600 \"$R/root/.ssh/authorized_keys\"",
        key.with_extension("pub").display()
    );
    let login = |f: &Fixture| -> String {
        let port = crate::support::ports::free_port();
        let log = f.root.join("sshd.log");
        let mut sshd = Command::new("chroot")
            .arg(&f.root)
            .args([
                "/usr/sbin/sshd",
                "-D",
                "-e",
                "-o",
                "ListenAddress=127.0.0.1",
                "-p",
            ])
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start the image's sshd");
        crate::support::ports::wait_for_port(port, &mut sshd, &log);
        let out = Command::new("ssh")
            .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"])
            .args([
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "ConnectTimeout=10",
            ])
            .arg("-i")
            .arg(&key)
            .arg("-p")
            .arg(port.to_string())
            .args(["root@127.0.0.1", "id -u"])
            .stdin(Stdio::null())
            .output()
            .expect("ssh");
        let _ = sshd.kill();
        let _ = sshd.wait();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let f = Fixture::new("", &install, &["root/.ssh", "root/.ssh/authorized_keys"]);
    let report = f.report();
    assert_eq!(report["escalation"]["verdict"], "runs-as-root");
    let p = report["escalation"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["rule_id"] == "root-ssh-login")
        .unwrap_or_else(|| panic!("{}", report["escalation"]));
    assert_eq!(p["reach"], "remote");
    assert_eq!(login(&f), "0", "imgscan claims root-ssh-login");

    let twin = Fixture::new(
        "",
        &format!("{install} && sed -i '1i PermitRootLogin no' \"$R/etc/ssh/sshd_config\""),
        &[
            "root/.ssh",
            "root/.ssh/authorized_keys",
            "etc/ssh/sshd_config",
        ],
    );
    assert!(
        !path_rules(&twin.report())
            .iter()
            .any(|r| r == "root-ssh-login")
    );
    assert_ne!(login(&twin), "0", "PermitRootLogin no must refuse the key");
}

/// podman over a private vfs store, running containers with runc (crun
/// refuses this machine's cgroup v1 hybrid layout) and a file limit within
/// the sandbox's hard limit (podman's default 1048576 is refused).
struct Engine {
    dir: tempfile::TempDir,
}

impl Engine {
    fn new(archive: &Path) -> Self {
        require_tool("podman");
        require_tool("runc");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("xdg")).unwrap();
        let e = Self { dir };
        run(e.podman().args(["load", "-q", "-i"]).arg(archive));
        e
    }

    fn podman(&self) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("podman");
        c.arg("--storage-driver=vfs")
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            .args([
                "--cgroup-manager=cgroupfs",
                "--events-backend=file",
                "--runtime",
                "runc",
            ])
            .env("XDG_RUNTIME_DIR", d.join("xdg"))
            .env("HOME", d);
        c
    }

    /// `podman run` of the image with `flags`, running `script` with the
    /// image's own user unless a flag says otherwise; (exit code, stdout).
    fn run(&self, flags: &[String], script: &str) -> (Option<i32>, String) {
        let out = self
            .podman()
            .args(["run", "--rm", "--network", "none"])
            .args([
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=4096:4096",
            ])
            .args(flags)
            .args(["x/escalation:t", "/bin/sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("podman run");
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout).trim(),
                if out.status.success() {
                    String::new()
                } else {
                    format!(" [stderr: {}]", String::from_utf8_lossy(&out.stderr).trim())
                }
            ),
        )
    }
}

/// In a real container (podman, runc resolving the image's USER): the
/// setuid-find path gives root as the image's user; with the flags
/// `imgscan harden` derives, the container still starts as that user and
/// the path is closed.
#[test]
fn in_a_real_container_the_path_works_and_hardens_shut() {
    let exploit = "id -u; find /etc/hostname -exec /bin/sh -p -c 'id -u' ';'";
    let f = Fixture::new("app", "chmod 4755 \"$R/usr/bin/find\"", &["usr/bin/find"]);
    assert!(
        path_rules(&f.report())
            .iter()
            .any(|r| r == "setuid-root-shell")
    );
    let engine = Engine::new(&f.archive);
    let (code, out) = engine.run(&[], exploit);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["10001", "0"],
        "as the image's user, then root"
    );

    let h = imgscan(&["harden", "--format", "json", f.archive.to_str().unwrap()]);
    assert_eq!(
        h.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&h.stderr)
    );
    let h: Value = serde_json::from_slice(&h.stdout).unwrap();
    let flags: Vec<String> = h[0]["hardening"]["settings"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["docker"].as_array().unwrap().iter())
        .flat_map(|f| {
            f.as_str()
                .unwrap()
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    for want in [
        "--user",
        "10001:10001",
        "no-new-privileges",
        "--cap-drop",
        "--read-only",
    ] {
        assert!(flags.iter().any(|f| f == want), "{want} in {flags:?}");
    }
    let (code, out) = engine.run(&flags, exploit);
    assert_eq!(
        code,
        Some(0),
        "the hardened container must still start: {out}"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"10001"), "{out}");
    assert!(
        !lines.contains(&"0"),
        "hardened, the path must be closed: {out}"
    );
    // The read-only root holds: a write outside /tmp fails, /tmp works.
    let (_, out) = engine.run(
        &flags,
        "touch /etc/x 2>/dev/null && echo wrote; touch /tmp/x && echo tmp",
    );
    assert_eq!(out, "tmp", "{out}");
}

#[test]
fn gid0_writable_sudoers_is_root_and_a_world_writable_one_is_refused_by_sudo() {
    // USER app:0: app's entry (sudo needs one) with the root group.
    let exploit =
        "echo 'ALL ALL=(ALL) NOPASSWD: ALL' >> /etc/sudoers 2>/dev/null; sudo -n id -u 2>/dev/null";
    let f = Fixture::new("app:0", "chmod 0660 \"$R/etc/sudoers\"", &["etc/sudoers"]);
    check(&f, "10001:0", "writable-account-file", true, exploit);
    // sudo refuses a world-writable sudoers: writable, but no path.
    let twin = Fixture::new("app:0", "chmod 0666 \"$R/etc/sudoers\"", &["etc/sudoers"]);
    check(&twin, "10001:0", "writable-account-file", false, exploit);
}

#[test]
fn gid0_writable_pam_config_of_su_is_root_and_0644_is_not() {
    let exploit = "{ echo 'auth sufficient pam_permit.so'; cat /etc/pam.d/su; } > /tmp/su && \
                   cat /tmp/su > /etc/pam.d/su 2>/dev/null; su -c 'id -u' root 2>/dev/null";
    let f = Fixture::new("20000", "chmod 0664 \"$R/etc/pam.d/su\"", &["etc/pam.d/su"]);
    check(&f, "20000:0", "writable-account-file", true, exploit);
    let twin = Fixture::new("20000", "chmod 0644 \"$R/etc/pam.d/su\"", &["etc/pam.d/su"]);
    check(&twin, "20000:0", "writable-account-file", false, exploit);
}
