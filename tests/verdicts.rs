//! The verdict and the default gate on the image archetypes a platform team
//! pushes (issue #11), built in code: a distroless-style app, an nginx-style
//! Debian service, a root image, the OpenShift gid-0 pattern, a setuid shell
//! added by hand, sudo with and without NOPASSWD. The default gate
//! (`--fail-on high`) must fail root images and images with a path, and pass
//! the correctly non-root ones. (The same paths are exploited for real in
//! the e2e tier, `tests/escalation.rs`.)

use serde_json::{Value, json};

use crate::util::{Comp, LayerBuilder, imgscan, write_oci_layout};

const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/bash\n\
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n\
app:x:10001:10001::/home/app:/bin/sh\n";
const GROUP: &[u8] = b"root:x:0:\nwww-data:x:33:\napp:x:10001:\n";
const SHADOW: &[u8] =
    b"root:*:20000:0:99999:7:::\nwww-data:*:20000:0:99999:7:::\napp:!:20000::::::\n";

/// A Debian-style base: accounts, the distribution's setuid programs owned
/// by dpkg packages, `/bin` -> `usr/bin`.
fn debian() -> LayerBuilder {
    LayerBuilder::new()
        .dir("etc/", 0o755)
        .file("etc/passwd", 0o644, PASSWD)
        .file("etc/group", 0o644, GROUP)
        .file_owned("etc/shadow", 0o640, 0, 42, SHADOW)
        .dir("usr/", 0o755)
        .dir("usr/bin/", 0o755)
        .symlink("bin", "usr/bin")
        .file("usr/bin/su", 0o4755, b"\x7fELF")
        .file("usr/bin/passwd", 0o4755, b"\x7fELF")
        .file("usr/bin/mount", 0o4755, b"\x7fELF")
        .file("usr/bin/bash", 0o755, b"\x7fELF")
        .file("usr/bin/find", 0o755, b"\x7fELF")
        .dir("var/lib/dpkg/info/", 0o755)
        .file(
            "var/lib/dpkg/status",
            0o644,
            b"Package: login\nStatus: install ok installed\n\n\
Package: passwd\nStatus: install ok installed\n\n\
Package: mount\nStatus: install ok installed\n",
        )
        .file("var/lib/dpkg/info/login.list", 0o644, b"/bin/su\n")
        .file("var/lib/dpkg/info/passwd.list", 0o644, b"/usr/bin/passwd\n")
        .file("var/lib/dpkg/info/mount.list", 0o644, b"/bin/mount\n")
        .dir("tmp/", 0o1777)
}

/// Scans layers with a container config; (exit code, JSON report).
fn gate(layers: Vec<Vec<u8>>, container: Value) -> (i32, Value) {
    let dir = tempfile::tempdir().unwrap();
    write_oci_layout(dir.path(), &layers, Comp::Gzip, container);
    let path = dir.path().to_str().unwrap();
    let code = imgscan(&[path]).status.code().unwrap();
    let out = imgscan(&["--format", "json", "--fail-on", "none", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code, serde_json::from_slice(&out.stdout).unwrap())
}

fn paths(r: &Value) -> Vec<String> {
    r["escalation"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["rule_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn non_root_debian_service_passes_and_as_root_fails() {
    let (code, r) = gate(
        vec![debian().build()],
        json!({"User": "www-data", "ExposedPorts": {"80/tcp": {}}}),
    );
    assert_eq!(
        r["escalation"]["verdict"], "no-known-path",
        "{}",
        r["escalation"]
    );
    assert_eq!(
        code, 0,
        "the distribution's setuid files must not fail the default gate"
    );
    let su = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/usr/bin/su")
        .unwrap();
    assert_eq!(su["severity"], "low");
    assert_eq!(r["escalation"]["runtime_user"]["uid"], 33);
    assert_eq!(
        r["hardening"]["add_capabilities"],
        json!(["NET_BIND_SERVICE"])
    );
    assert_eq!(r["hardening"]["run_as_user"], 33);

    let (code, r) = gate(vec![debian().build()], json!({}));
    assert_eq!(r["escalation"]["verdict"], "runs-as-root");
    assert_eq!(paths(&r), ["root-user"]);
    assert_eq!(code, 1);
}

#[test]
fn distroless_style_passes() {
    let layer = LayerBuilder::new()
        .dir("etc/", 0o755)
        .file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
        .file("etc/group", 0o644, b"root:x:0:\nnonroot:x:65532:\n")
        .file("app", 0o755, b"\x7fELF")
        .build();
    let (code, r) = gate(
        vec![layer],
        json!({"User": "65532", "Entrypoint": ["/app"]}),
    );
    assert_eq!(code, 0, "{}", r["findings"]);
    assert_eq!(r["escalation"]["verdict"], "no-known-path");
    assert_eq!(r["hardening"]["pod_security_restricted"]["allowed"], true);
}

#[test]
fn gid0_pattern_with_a_group_writable_passwd_is_a_path() {
    // OpenShift style: chgrp 0 + chmod g=u on /etc, USER 1001 with no entry.
    let top = LayerBuilder::new()
        .file_owned("etc/passwd", 0o664, 0, 0, PASSWD)
        .build();
    let (code, r) = gate(vec![debian().build(), top], json!({"User": "1001"}));
    assert_eq!(r["escalation"]["runtime_user"]["gid"], 0);
    assert_eq!(paths(&r), ["writable-account-file"]);
    assert_eq!(r["escalation"]["verdict"], "can-become-root");
    assert_eq!(code, 1);
    // One step fewer: the user has its own group.
    let top = LayerBuilder::new()
        .file_owned("etc/passwd", 0o664, 0, 0, PASSWD)
        .build();
    let (code, r) = gate(vec![debian().build(), top], json!({"User": "1001:1001"}));
    assert!(paths(&r).is_empty(), "{:?}", paths(&r));
    assert_eq!(code, 0);
}

#[test]
fn setuid_shell_and_sudo_paths() {
    let top = LayerBuilder::new()
        .file("usr/bin/bash", 0o4755, b"\x7fELF")
        .build();
    let (code, r) = gate(vec![debian().build(), top], json!({"User": "app"}));
    assert_eq!(paths(&r), ["setuid-root-shell"]);
    assert_eq!(code, 1);
    // Reached through the `/bin` symlink too (the finding is on the file).
    let p = &r["escalation"]["paths"][0];
    assert_eq!(p["closed_by"], json!(["no-new-privileges"]));

    let sudo = |rule: &[u8]| {
        LayerBuilder::new()
            .file("usr/bin/sudo", 0o4755, b"\x7fELF")
            .dir("etc/sudoers.d/", 0o750)
            .file(
                "etc/sudoers",
                0o440,
                b"root ALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n",
            )
            .file("etc/sudoers.d/app", 0o440, rule)
            .build()
    };
    let (code, r) = gate(
        vec![debian().build(), sudo(b"app ALL=(ALL) NOPASSWD: ALL\n")],
        json!({"User": "app"}),
    );
    assert_eq!(paths(&r), ["sudo-root"]);
    assert_eq!(code, 1);
    let (code, r) = gate(
        vec![debian().build(), sudo(b"app ALL=(ALL) ALL\n")],
        json!({"User": "app"}),
    );
    assert!(
        paths(&r).is_empty(),
        "a password the user does not have: {:?}",
        paths(&r)
    );
    assert_eq!(code, 0);
}
