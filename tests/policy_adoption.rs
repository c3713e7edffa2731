//! Adopting the gate on a realistic image, as a team would (issue #12): a
//! real Debian base (debootstrap, the escalation tests' cached tree, with
//! sudo, python3 and openssh-server) and an app built on it that adds a
//! setuid `find` (a path to root for its user) and a world-writable file.
//!
//! - `imgscan baseline` accepts the base's findings; the base passes at any
//!   threshold, and so does a rebuild of it (the same files in a new tar:
//!   other diff_id, other layer digest).
//! - The app judged with the base's policy, and the app judged against the
//!   base image (`--baseline`), report exactly what the app added, from a
//!   docker-archive and from a real registry (skopeo pushes), where the base
//!   is named by reference.
//!
//! Needs root and debootstrap (the base), GNU tar, skopeo and
//! docker-registry.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::escalation::base;
use crate::support::registry::Registry;
use crate::support::tools::run;
use crate::util::{counting, docker_archive, imgscan};

fn scan(args: &[&str]) -> (i32, Value) {
    let mut all = vec!["--format", "json"];
    if !args.contains(&"--config") {
        all.push("--no-config");
    }
    all.extend_from_slice(args);
    let out = imgscan(&all);
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 1,
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code, serde_json::from_slice(&out.stdout).unwrap())
}

fn tar_of(root: &Path, out: &Path, extra: &[&str], members: &[&str]) {
    run(Command::new("tar")
        .arg("-C")
        .arg(root)
        .args([
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=security.capability",
            "--format=posix",
        ])
        .args(extra)
        .arg("-cf")
        .arg(out)
        .args(members));
}

#[test]
fn a_team_adopts_the_gate_on_a_debian_based_app() {
    let base_dir = base();
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let s = |n: &str| p(n).to_str().unwrap().to_owned();
    let base_layer = std::fs::read(base_dir.join("base.tar")).unwrap();
    let user = json!({"User": "app"});
    std::fs::write(
        p("base.tar"),
        docker_archive(std::slice::from_ref(&base_layer), user.clone(), "x/base:1"),
    )
    .unwrap();
    // The same tree tarred again, sorted and with other times: a rebuild.
    tar_of(
        &base_dir.join("rootfs"),
        &p("rebuilt-layer.tar"),
        &["--sort=name", "--mtime=@86400"],
        &["."],
    );
    let rebuilt_layer = std::fs::read(p("rebuilt-layer.tar")).unwrap();
    assert_ne!(rebuilt_layer, base_layer);
    std::fs::write(
        p("rebuilt.tar"),
        docker_archive(&[rebuilt_layer], user.clone(), "x/base:2"),
    )
    .unwrap();
    // The app's layer: a setuid copy of find, a world-writable config.
    let top = p("top");
    std::fs::create_dir_all(top.join("usr/local/bin")).unwrap();
    std::fs::create_dir_all(top.join("etc")).unwrap();
    std::fs::copy(
        base_dir.join("rootfs/usr/bin/find"),
        top.join("usr/local/bin/find"),
    )
    .unwrap();
    run(Command::new("chmod")
        .arg("4755")
        .arg(top.join("usr/local/bin/find")));
    std::fs::write(top.join("etc/app.conf"), "x=1\n").unwrap();
    run(Command::new("chmod")
        .arg("0666")
        .arg(top.join("etc/app.conf")));
    tar_of(
        &top,
        &p("top.tar"),
        &["--no-recursion"],
        &["usr/local/bin/find", "etc/app.conf"],
    );
    let app_layers = vec![base_layer.clone(), std::fs::read(p("top.tar")).unwrap()];
    std::fs::write(
        p("app.tar"),
        docker_archive(&app_layers, user.clone(), "x/app:1"),
    )
    .unwrap();
    let added = [
        "setuid-binary /usr/local/bin/find",
        "setuid-root-shell /usr/local/bin/find",
        "world-writable-path /etc/app.conf",
    ];

    // The base has findings of its own (setuid su, passwd, …; sshd).
    let (_, base_report) = scan(&["--fail-on", "info", &s("base.tar")]);
    let n = base_report["findings"].as_array().unwrap().len();
    assert!(n >= 5, "{:#}", base_report["findings"]);

    // Accept them all; the base passes at any threshold.
    let out = imgscan(&[
        "baseline",
        "--quiet",
        "-o",
        &s("policy.toml"),
        &s("base.tar"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let policy = s("policy.toml");
    let (code, v) = scan(&["--config", &policy, "--fail-on", "info", &s("base.tar")]);
    assert_eq!(
        (code, v["summary"]["suppressed"].as_u64()),
        (0, Some(n as u64))
    );
    // The rebuild keeps every acceptance (content, mode, owner, fingerprint).
    let (code, v) = scan(&["--config", &policy, "--fail-on", "info", &s("rebuilt.tar")]);
    assert_ne!(
        v["image"]["layers"][0]["diff_id"],
        base_report["image"]["layers"][0]["diff_id"]
    );
    assert_eq!(code, 0, "{:?}", counting(&v));
    assert!(v["policy"]["stale"].as_array().unwrap().is_empty());

    // The app with the base's policy: only what it added counts.
    let (code, v) = scan(&["--config", &policy, "--fail-on", "low", &s("app.tar")]);
    assert_eq!(code, 1);
    assert_eq!(counting(&v), added);
    // The app against the base image: the same, without any policy.
    let (code, v) = scan(&[
        "--baseline",
        &s("base.tar"),
        "--fail-on",
        "low",
        &s("app.tar"),
    ]);
    assert_eq!(code, 1);
    assert_eq!(counting(&v), added);
    assert_eq!(v["summary"]["baselined"].as_u64(), Some(n as u64));

    // From a real registry, the base named by reference.
    let reg = Registry::start();
    reg.push(
        &format!("docker-archive:{}", s("base.tar")),
        "team/base:1",
        &[],
    );
    reg.push(
        &format!("docker-archive:{}", s("app.tar")),
        "team/app:1",
        &[],
    );
    let (code, v) = scan(&[
        "--no-cache",
        "--baseline",
        &format!("{}/team/base:1", reg.host()),
        "--fail-on",
        "low",
        &format!("{}/team/app:1", reg.host()),
    ]);
    assert_eq!(code, 1);
    assert_eq!(counting(&v), added);
    // The registry image with the base's policy: the same again.
    let (_, v) = scan(&[
        "--no-cache",
        "--config",
        &policy,
        "--fail-on",
        "low",
        &format!("{}/team/app:1", reg.host()),
    ]);
    assert_eq!(counting(&v), added);
}
