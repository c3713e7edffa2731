//! The reports every emitter test renders.

use std::collections::BTreeMap;

use scanner::model::{Finding, ImageInfo, LayerInfo, Report, Severity};
use scanner::rules::RuleId;
use serde_json::{Value, json};

/// `sha256:` and 64 copies of `c`.
fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn details(v: Value) -> BTreeMap<String, Value> {
    match v {
        Value::Object(map) => map.into_iter().collect(),
        other => panic!("details must be an object, not {other}"),
    }
}

fn layer(index: usize, created_by: &str) -> LayerInfo {
    LayerInfo {
        index,
        digest: digest(char::from(b'1' + index as u8)),
        diff_id: digest(char::from(b'4' + index as u8)),
        media_type: "application/vnd.docker.image.rootfs.diff.tar".to_owned(),
        size: 1024 * (index as u64 + 1),
        compression: "none".to_owned(),
        entries: 10 * (index as u64 + 1),
        created_by: Some(created_by.to_owned()),
    }
}

#[allow(clippy::too_many_arguments)]
fn finding(
    rule_id: RuleId,
    severity: Severity,
    path: Option<&str>,
    layer: Option<&LayerInfo>,
    message: &str,
    details_: Value,
    fingerprint: u8,
) -> Finding {
    Finding {
        rule_id,
        severity,
        path: path.map(str::to_owned),
        layer_index: layer.map(|l| l.index),
        layer_digest: layer.map(|l| l.digest.clone()),
        layer_created_by: layer.and_then(|l| l.created_by.clone()),
        message: message.to_owned(),
        details: details(details_),
        fingerprint: format!("{fingerprint:064x}"),
        suppression: None,
        baseline: None,
        counts: true,
    }
}

/// An image with findings of several rules and every severity: a config
/// finding (no path), setuid files with and without a package, file
/// capabilities with details, a path with a space, and a warning.
pub(crate) fn sample_report() -> Report {
    let layers = vec![
        layer(0, "/bin/sh -c #(nop) ADD file:0a1b2c in / "),
        layer(1, "RUN apt-get install -y openssh-server sudo iputils-ping"),
        layer(
            2,
            "RUN chmod 4755 /usr/local/bin/helper && setcap cap_setuid+ep /usr/bin/python3.11",
        ),
    ];
    let [l0, l1, l2] = [&layers[0], &layers[1], &layers[2]];
    let findings = vec![
        finding(
            RuleId::RootUser,
            Severity::High,
            None,
            None,
            "The image runs as root: its config has no User.",
            json!({
                "user": null,
                "uid": 0,
                "resolved_by": "default",
                "steps": ["the image config sets no User: the container runs as root"],
                "closed_by": ["non-root-user"],
            }),
            1,
        ),
        finding(
            RuleId::SetuidBinary,
            Severity::Critical,
            Some("/usr/local/bin/helper"),
            Some(l2),
            "/usr/local/bin/helper is setuid root and no package owns it.",
            json!({ "mode": "4755", "uid": 0, "gid": 0, "package": null, "package_db": "dpkg", "sha256": "5d41402abc4b2a76b9719d911017c592bc3d4b2fd4e8bbbf8e0d8a4b63a8e3c1" }),
            2,
        ),
        finding(
            RuleId::SetuidBinary,
            Severity::High,
            Some("/usr/bin/su"),
            Some(l0),
            "/usr/bin/su is setuid root.",
            json!({ "mode": "4755", "uid": 0, "gid": 0, "package": "util-linux", "package_db": "dpkg", "sha256": null }),
            3,
        ),
        finding(
            RuleId::FileCapability,
            Severity::Critical,
            Some("/usr/bin/python3.11"),
            Some(l2),
            "/usr/bin/python3.11 has the root-equivalent file capability cap_setuid (effective).",
            json!({ "capabilities": ["cap_setuid"], "effective": true, "revision": 2, "rootid": null, "getcap": "cap_setuid=ep", "package": null, "package_db": "dpkg", "sha256": null }),
            4,
        ),
        finding(
            RuleId::FileCapability,
            Severity::Medium,
            Some("/usr/bin/ping"),
            Some(l1),
            "/usr/bin/ping has the file capability cap_net_raw (effective).",
            json!({ "capabilities": ["cap_net_raw"], "effective": true, "revision": 2, "rootid": null, "getcap": "cap_net_raw=ep", "package": "iputils-ping", "package_db": "dpkg", "sha256": null }),
            5,
        ),
        finding(
            RuleId::FileCapability,
            Severity::Info,
            Some("/usr/bin/empty-caps"),
            Some(l1),
            "/usr/bin/empty-caps has a security.capability attribute with no capabilities in it.",
            json!({ "capabilities": [], "effective": false, "revision": 3, "rootid": 100000, "getcap": "=", "package": null, "package_db": "dpkg", "sha256": null }),
            6,
        ),
        finding(
            RuleId::SetgidBinary,
            Severity::Medium,
            Some("/opt/my app/helper"),
            Some(l2),
            "/opt/my app/helper is setgid to group staff.",
            json!({ "mode": "2755", "uid": 0, "gid": 50, "package": null, "package_db": "dpkg", "sha256": null }),
            7,
        ),
        finding(
            RuleId::RemoteShellDaemon,
            Severity::High,
            Some("/usr/sbin/sshd"),
            Some(l1),
            "/usr/sbin/sshd is an ssh server, and the config exposes port 22/tcp; containers are entered with exec, not a remote shell.",
            json!({ "daemon": "sshd", "protocol": "ssh", "exposed_port": true, "started_by_config": false }),
            8,
        ),
        finding(
            RuleId::WorldWritablePath,
            Severity::Low,
            Some("/srv/cache"),
            Some(l2),
            "/srv/cache is a world-writable directory owned by root without the sticky bit.",
            json!({ "mode": "0777", "uid": 0, "gid": 0, "kind": "dir" }),
            9,
        ),
    ];
    let image = ImageInfo {
        source: "docker-archive:/tmp/build/app.tar".to_owned(),
        format: "docker-archive".to_owned(),
        reference: Some("docker.io/acme/app:1.4.2".to_owned()),
        manifest_digest: Some(digest('d')),
        index_digest: None,
        config_digest: digest('c'),
        platform: "linux/amd64".to_owned(),
        user: None,
        layers,
        base: None,
    };
    let escalation = scanner::checks::escalation::escalation(Default::default(), &findings);
    Report::new(
        image,
        findings,
        vec!["/var/lib/dpkg/status lists a file twice; the first owner is used".to_owned()],
        escalation,
        Default::default(),
    )
}

/// A second image, with no findings, from an OCI layout whose reference is a
/// bare tag.
pub(crate) fn clean_report() -> Report {
    let image = ImageInfo {
        source: "oci:/srv/layouts/base:1.0".to_owned(),
        format: "oci-layout".to_owned(),
        reference: Some("1.0".to_owned()),
        manifest_digest: Some(digest('e')),
        index_digest: Some(digest('f')),
        config_digest: digest('b'),
        platform: "linux/arm64/v8".to_owned(),
        user: Some("10001:10001".to_owned()),
        layers: vec![layer(0, "ADD rootfs.tar /")],
        base: None,
    };
    let user = scanner::model::RuntimeUser {
        user: Some("10001:10001".to_owned()),
        resolution: scanner::model::Resolution::User,
        uid: Some(10001),
        gid: Some(10001),
        home: Some("/".to_owned()),
        ..Default::default()
    };
    let escalation = scanner::checks::escalation::escalation(user, &[]);
    Report::new(
        image,
        Vec::new(),
        Vec::new(),
        escalation,
        Default::default(),
    )
}

/// The workspace root.
pub(crate) fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The sample image in two of its forms, as inputs for real scans.
pub(crate) fn sample_inputs() -> [String; 2] {
    [
        format!(
            "docker-archive:{}",
            root().join("testdata/sample-docker.tar").display()
        ),
        format!(
            "oci:{}:sample",
            root().join("testdata/sample/oci").display()
        ),
    ]
}

/// A real scan of `image`.
pub(crate) fn scan(image: &str) -> Report {
    let input = scanner::Input::parse(image).unwrap();
    scanner::scan(&input, &scanner::ScanOptions::default())
        .unwrap_or_else(|e| panic!("{image}: {e}"))
}
