//! The gate teams keep on (issue #12): the policy file and its precedence,
//! ignore entries that stay honest (pins, expiry, stale entries, paths to
//! root named explicitly), `imgscan baseline`, and baselines (a base image,
//! an earlier report). Images are written in code: a base layer with a
//! setuid `su`, an app layer on top adding a setuid tool and a
//! world-writable config.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::support::env::{CleanEnv, Run, output};
use crate::util::{LayerBuilder, counting, docker_archive};

fn base_layer(su: &[u8]) -> Vec<u8> {
    LayerBuilder::new()
        .dir("etc", 0o755)
        .file(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .file("etc/group", 0o644, b"root:x:0:\napp:x:1000:\n")
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .file("usr/bin/su", 0o4755, su)
        .build()
}

fn app_layer(tool_mode: u32) -> Vec<u8> {
    LayerBuilder::new()
        .dir("usr/local", 0o755)
        .dir("usr/local/bin", 0o755)
        .file("usr/local/bin/tool", tool_mode, b"\x7fELF tool")
        .file("etc/app.conf", 0o666, b"x=1\n")
        .build()
}

/// A scratch directory with `base.tar` (one layer) and `app.tar` (the base
/// layer and an app layer), both run as `app`.
struct Images {
    dir: tempfile::TempDir,
    env: CleanEnv,
}

impl Images {
    fn new() -> Self {
        let i = Self {
            dir: tempfile::tempdir().unwrap(),
            env: CleanEnv::new(),
        };
        i.write("base.tar", &[base_layer(b"su v1")], json!({"User": "app"}));
        i.write(
            "app.tar",
            &[base_layer(b"su v1"), app_layer(0o4755)],
            json!({"User": "app"}),
        );
        i
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, layers: &[Vec<u8>], config: Value) {
        std::fs::write(self.path(name), docker_archive(layers, config, "x/app:1")).unwrap();
    }

    /// imgscan in the scratch directory (so `./imgscan.toml` is its own).
    fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut c = self.env.imgscan();
        c.current_dir(self.dir.path()).args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        output(&mut c, None)
    }

    fn json(&self, args: &[&str]) -> (Run, Value) {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        let r = self.run(&all);
        let v = r.json();
        (r, v)
    }

    fn policy(&self, text: &str) {
        std::fs::write(self.path("imgscan.toml"), text).unwrap();
    }
}

fn finding<'a>(report: &'a Value, rule: &str, path: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule_id"] == rule && f["path"] == path)
        .unwrap_or_else(|| panic!("no {rule} {path} in {report:#}"))
}

#[test]
fn a_base_image_baseline_gates_only_what_the_app_added() {
    let i = Images::new();
    let (r, v) = i.json(&["--fail-on", "low", "--baseline", "base.tar", "app.tar"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let su = finding(&v, "setuid-binary", "/usr/bin/su");
    assert_eq!(su["baseline"], "inherited");
    assert_eq!(su["counts"], false);
    let tool = finding(&v, "setuid-binary", "/usr/local/bin/tool");
    assert_eq!(tool["baseline"], "new");
    assert_eq!(tool["counts"], true);
    assert!(!counting(&v).iter().any(|c| c.contains("/usr/bin/su")));
    assert_eq!(v["summary"]["baselined"], 1);
    assert_eq!(v["policy"]["baseline"]["kind"], "image");
    assert_eq!(v["policy"]["baseline"]["base_layers"], 1);
    assert!(
        r.stderr.contains("in the baseline do not count"),
        "{}",
        r.stderr
    );

    // The base alone, rebuilt with another config: nothing new, the gate passes.
    i.write(
        "rebuilt.tar",
        &[base_layer(b"su v1")],
        json!({"User": "app", "Env": ["A=1"]}),
    );
    let r = i.run(&["--fail-on", "low", "--baseline", "base.tar", "rebuilt.tar"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("1 in the baseline"), "{}", r.stdout);

    // --gate all counts inherited findings again.
    let (_, v) = i.json(&[
        "--fail-on",
        "low",
        "--baseline",
        "base.tar",
        "--gate",
        "all",
        "app.tar",
    ]);
    assert_eq!(finding(&v, "setuid-binary", "/usr/bin/su")["counts"], true);

    // SARIF marks the same.
    let r = i.run(&[
        "--format",
        "sarif",
        "--fail-on",
        "low",
        "--baseline",
        "base.tar",
        "app.tar",
    ]);
    let sarif: Value = serde_json::from_str(&r.stdout).unwrap();
    let states: Vec<(String, String)> = sarif["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["locations"][0]["logicalLocations"][0]["name"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                x["baselineState"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        states.contains(&("/usr/bin/su".into(), "unchanged".into())),
        "{states:?}"
    );
    assert!(
        states.contains(&("/usr/local/bin/tool".into(), "new".into())),
        "{states:?}"
    );
}

#[test]
fn a_baseline_that_is_not_the_base_is_refused() {
    let i = Images::new();
    i.write("other.tar", &[base_layer(b"su v2")], json!({"User": "app"}));
    let r = i.run(&["--baseline", "other.tar", "app.tar"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("is not the base of"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
    let r = i.run(&["--baseline", "auto", "app.tar"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("names no base image"), "{}", r.stderr);
}

#[test]
fn a_report_baseline_gates_only_new_fingerprints() {
    let i = Images::new();
    let r = i.run(&["--fail-on", "low", "--json", "before.json", "app.tar"]);
    assert_eq!(r.code, 1);
    // The same image against its own report: everything unchanged, passes.
    let (r, v) = i.json(&["--fail-on", "low", "--baseline", "before.json", "app.tar"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(counting(&v).is_empty(), "{:?}", counting(&v));
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["baseline"] == "unchanged")
    );
    // A rebuild that adds a setuid file: only that one counts.
    let extra = LayerBuilder::new()
        .dir("opt", 0o755)
        .file("opt/new-helper", 0o4755, b"new")
        .build();
    i.write(
        "app2.tar",
        &[base_layer(b"su v1"), app_layer(0o4755), extra],
        json!({"User": "app"}),
    );
    let (r, v) = i.json(&["--fail-on", "low", "--baseline", "before.json", "app2.tar"]);
    assert_eq!(r.code, 1);
    assert_eq!(counting(&v), ["setuid-binary /opt/new-helper"]);
    assert_eq!(v["policy"]["baseline"]["absent"], 0);
    // The base image against the app's report: the app's findings are gone.
    let (_, v) = i.json(&["--fail-on", "low", "--baseline", "before.json", "base.tar"]);
    assert!(
        v["policy"]["baseline"]["absent"].as_u64().unwrap() >= 2,
        "{:#}",
        v["policy"]
    );
    // Not a report, not an image.
    std::fs::write(i.path("junk.json"), "{\"x\": 1}").unwrap();
    let r = i.run(&["--baseline", "junk.json", "app.tar"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no `findings`"), "{}", r.stderr);
}

#[test]
fn imgscan_baseline_accepts_today_and_stops_when_a_file_changes() {
    let i = Images::new();
    let r = i.run(&["baseline", "app.tar"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let toml = std::fs::read_to_string(i.path("imgscan.toml")).unwrap();
    assert!(toml.contains("reason = \"TODO\""));
    assert!(toml.contains("path = \"/usr/local/bin/tool\""));
    assert!(toml.contains("mode = \"4755\""));
    // It does not replace a policy file without --force.
    let r = i.run(&["baseline", "app.tar"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);

    // Every finding accepted: the gate passes at any threshold, nothing is dropped.
    let (r, v) = i.json(&["--fail-on", "info", "app.tar"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let n = v["findings"].as_array().unwrap().len();
    assert!(n >= 3);
    assert_eq!(v["summary"]["suppressed"], n);
    assert_eq!(v["summary"]["total"], 0);
    assert!(
        r.stderr.contains("still say reason = \"TODO\""),
        "{}",
        r.stderr
    );
    for f in v["findings"].as_array().unwrap() {
        assert_eq!(f["suppression"]["status"], "accepted", "{f:#}");
        assert!(
            f["suppression"]["entry"]
                .as_str()
                .unwrap()
                .starts_with("imgscan.toml: ignore ")
        );
    }
    let r = i.run(&["--format", "sarif", "--fail-on", "info", "app.tar"]);
    let sarif: Value = serde_json::from_str(&r.stdout).unwrap();
    for x in sarif["runs"][0]["results"].as_array().unwrap() {
        assert_eq!(
            x["suppressions"],
            json!([{"kind": "external", "status": "accepted", "justification": "TODO",
                    "properties": x["suppressions"][0]["properties"].clone()}])
        );
    }
    let r = i.run(&["--format", "junit", "--fail-on", "info", "app.tar"]);
    assert!(
        r.stdout.contains(r#"<testsuites name="imgscan" tests="#),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("<failure"), "{}", r.stdout);
    assert!(r.stdout.contains("suppressed by imgscan.toml: ignore"));
    // The table counts them and lists them only with --show-suppressed.
    let r = i.run(&["--fail-on", "info", "app.tar"]);
    assert!(
        r.stdout.contains(&format!("no findings; {n} suppressed")),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("/usr/local/bin/tool"));
    let r = i.run(&["--fail-on", "info", "--show-suppressed", "app.tar"]);
    assert!(r.stdout.contains("/usr/local/bin/tool"));
    assert!(r.stdout.contains("[suppressed: TODO]"));

    // A rebuild with the same files (other layer bytes: a new config) stays accepted.
    i.write(
        "app.tar",
        &[base_layer(b"su v1"), app_layer(0o4755)],
        json!({"User": "app", "Labels": {"build": "2"}}),
    );
    assert_eq!(i.run(&["--fail-on", "info", "app.tar"]).code, 0);

    // The tool's content changes, its mode does not: the sha256 pin catches it.
    let tool_sha = crate::util::sha256(b"\x7fELF tool");
    assert!(
        toml.contains(&format!("sha256 = \"{}\"", &tool_sha[7..])),
        "{toml}"
    );
    let evil = LayerBuilder::new()
        .dir("usr/local", 0o755)
        .dir("usr/local/bin", 0o755)
        .file("usr/local/bin/tool", 0o4755, b"\x7fELF evil")
        .file("etc/app.conf", 0o666, b"x=1\n")
        .build();
    i.write(
        "evil.tar",
        &[base_layer(b"su v1"), evil],
        json!({"User": "app"}),
    );
    let (r, v) = i.json(&["--fail-on", "info", "evil.tar"]);
    assert_eq!(r.code, 1);
    let tool = finding(&v, "setuid-binary", "/usr/local/bin/tool");
    assert_eq!(tool["suppression"]["status"], "changed");
    assert_eq!(
        tool["suppression"]["differs"][0].as_str().unwrap(),
        format!(
            "sha256: pinned {}, now {}",
            &tool_sha[7..],
            &crate::util::sha256(b"\x7fELF evil")[7..]
        )
    );
    assert_eq!(counting(&v), ["setuid-binary /usr/local/bin/tool"]);

    // The tool's mode changes: its entry no longer holds, it counts again.
    i.write(
        "app.tar",
        &[base_layer(b"su v1"), app_layer(0o6755)],
        json!({"User": "app"}),
    );
    let (r, v) = i.json(&["--fail-on", "info", "app.tar"]);
    assert_eq!(r.code, 1);
    let tool = finding(&v, "setuid-binary", "/usr/local/bin/tool");
    assert_eq!(tool["suppression"]["status"], "changed");
    assert_eq!(
        tool["suppression"]["differs"],
        json!(["mode: pinned 4755, now 6755"])
    );
    assert_eq!(tool["counts"], true);
    assert_eq!(v["summary"]["expired"], 1);
    // The setgid bit is a new finding: no entry names it.
    let sgid = finding(&v, "setgid-binary", "/usr/local/bin/tool");
    assert_eq!(sgid["suppression"], Value::Null);
    assert_eq!(sgid["counts"], true);
}

#[test]
fn expired_entries_count_again_and_stale_entries_are_reported() {
    let i = Images::new();
    i.policy(
        r#"
fail_on = "low"

[[ignore]]
rule = "setuid-binary"
path = "/usr/local/bin/*"
reason = "vendor tool, ticket OPS-1"
expires = 2000-01-01

[[ignore]]
rule = "world-writable-path"
path = "/etc/app.conf"
reason = "read at start only"
expires = "2999-12-31"

[[ignore]]
rule = "setuid-binary"
path = "/opt/**"
reason = "removed long ago"
"#,
    );
    let (r, v) = i.json(&["app.tar"]);
    assert_eq!(r.code, 1);
    let tool = finding(&v, "setuid-binary", "/usr/local/bin/tool");
    assert_eq!(tool["suppression"]["status"], "expired");
    assert_eq!(tool["suppression"]["expires"], "2000-01-01");
    assert_eq!(tool["counts"], true);
    let conf = finding(&v, "world-writable-path", "/etc/app.conf");
    assert_eq!(conf["suppression"]["status"], "accepted");
    assert_eq!(conf["suppression"]["reason"], "read at start only");
    assert_eq!(v["policy"]["stale"].as_array().unwrap().len(), 1);
    assert_eq!(v["policy"]["stale"][0]["path"], "/opt/**");
    assert_eq!(v["policy"]["config"], "imgscan.toml");
    let r = i.run(&["app.tar"]);
    assert!(
        r.stdout
            .contains("stale ignore entry (matched nothing): imgscan.toml: ignore 3 (line 15)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("expired on 2000-01-01"), "{}", r.stdout);
    assert!(r.stdout.contains("1 suppressed"), "{}", r.stdout);
}

#[test]
fn a_path_to_root_is_set_aside_only_by_naming_its_rule() {
    let i = Images::new();
    // No User: root-user, a path to root.
    i.write("root.tar", &[base_layer(b"su v1")], json!({}));
    i.policy(
        r#"
[[ignore]]
rule = "setuid-binary"
path = "/**"
reason = "all setuid files are fine here"
"#,
    );
    let (r, v) = i.json(&["root.tar"]);
    assert_eq!(r.code, 1, "root-user still fails the default gate");
    assert_eq!(counting(&v), ["root-user -"]);
    // Against a base that also runs as root, root-user is still new (the
    // image's own config), and a path is never waived by a baseline.
    i.write("rootbase.tar", &[base_layer(b"su v1")], json!({}));
    let (r, v) = i.json(&["--baseline", "rootbase.tar", "root.tar"]);
    assert_eq!(r.code, 1);
    assert_eq!(counting(&v), ["root-user -"]);
    // Disabling a path rule is refused; naming it in an entry accepts it.
    i.policy("disabled_rules = [\"root-user\"]\n");
    let r = i.run(&["root.tar"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("path to root and cannot be disabled"),
        "{}",
        r.stderr
    );
    i.policy("[[ignore]]\nrule = \"root-user\"\nreason = \"init needs root; tracked in OPS-7\"\n");
    let (r, v) = i.json(&["root.tar"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        v["escalation"]["verdict"], "runs-as-root",
        "the verdict still says so"
    );
    assert_eq!(
        finding_config(&v, "root-user")["suppression"]["status"],
        "accepted"
    );
}

fn finding_config<'a>(report: &'a Value, rule: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule_id"] == rule)
        .unwrap()
}

#[test]
fn flags_win_over_the_environment_which_wins_over_the_file() {
    let i = Images::new();
    std::fs::create_dir(i.path("ci")).unwrap();
    std::fs::write(
        i.path("ci/policy.toml"),
        "fail_on = \"none\"\njson = \"out.json\"\n[severity]\nsetuid-binary = \"critical\"\n",
    )
    .unwrap();
    let r = i.run(&["--config", "ci/policy.toml", "app.tar"]);
    assert_eq!(r.code, 0, "the file's fail_on: {}", r.stderr);
    // Relative to the policy file's directory.
    let out: Value =
        serde_json::from_slice(&std::fs::read(i.path("ci/out.json")).unwrap()).unwrap();
    assert_eq!(
        finding(&out, "setuid-binary", "/usr/local/bin/tool")["severity"],
        "critical"
    );
    assert_eq!(
        out["policy"]["severity_overrides"]["setuid-binary"],
        "critical"
    );
    let r = i.run_env(
        &["--config", "ci/policy.toml", "app.tar"],
        &[("IMGSCAN_FAIL_ON", "critical")],
    );
    assert_eq!(r.code, 1, "the environment over the file");
    let r = i.run_env(
        &["--config", "ci/policy.toml", "--fail-on", "none", "app.tar"],
        &[("IMGSCAN_FAIL_ON", "critical")],
    );
    assert_eq!(r.code, 0, "the flag over the environment");
    let r = i.run_env(&["app.tar"], &[("IMGSCAN_CONFIG", "ci/policy.toml")]);
    assert_eq!(r.code, 0, "IMGSCAN_CONFIG names the file");
    // Cache settings too (a bad size is an error naming the key).
    i.policy("cache_max_size = \"lots\"\n");
    let r = i.run(&["app.tar"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("cache_max_size"), "{}", r.stderr);
    std::fs::remove_file(i.path("imgscan.toml")).unwrap();
    // Boolean variables take the usual words.
    let r = i.run_env(&["--no-config", "app.tar"], &[("IMGSCAN_QUIET", "1")]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    // ./imgscan.toml is read by default, --no-config skips it.
    i.policy("fail_on = \"none\"\n");
    assert_eq!(i.run(&["app.tar"]).code, 0);
    assert_eq!(i.run(&["--no-config", "app.tar"]).code, 1);
}

#[test]
fn bad_policy_files_are_refused_with_the_reason() {
    let i = Images::new();
    for (text, want) in [
        ("fail_om = \"low\"\n", "unknown field `fail_om`"),
        ("fail_on = \"loud\"\n", "expected one of"),
        (
            "[[ignore]]\nrule = \"setuid-binary\"\npath = \"/x\"\n",
            "no `reason`",
        ),
        (
            "[[ignore]]\nrule = \"no-such-rule\"\nreason = \"r\"\n",
            "unknown rule `no-such-rule`",
        ),
        (
            "[[ignore]]\nrule = \"setuid-binary\"\npath = \"x\"\nreason = \"r\"\n",
            "not absolute",
        ),
        (
            "[[ignore]]\nrule = \"setuid-binary\"\nreason = \"r\"\nexpires = 2026-02-30\n",
            "expires",
        ),
        (
            "[[ignore]]\nrule = \"setuid-binary\"\nreason = \"r\"\nmode = \"9\"\n",
            "octal",
        ),
        ("[severity]\nsetuid-binary = \"urgent\"\n", "not a severity"),
        ("[[ignore]\n", "imgscan.toml"),
    ] {
        i.policy(text);
        let r = i.run(&["app.tar"]);
        assert_eq!(r.code, 2, "{text}: {}", r.stderr);
        assert!(
            r.stderr.contains(want),
            "{text}: want {want:?} in {}",
            r.stderr
        );
        assert!(r.stdout.is_empty());
    }
    let r = i.run(&["--config", "missing.toml", "app.tar"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("missing.toml"));
}

#[test]
fn the_manifest_names_its_base_image() {
    // An OCI layout whose manifest carries the base annotations.
    let l = crate::support::rawtar::Layout::new();
    let tars = vec![base_layer(b"su v1")];
    let mut m: Value = serde_json::from_slice(&l.manifest(
        &tars,
        &[(crate::support::rawtar::TAR, tars[0].clone())],
        json!({"User": "app"}),
        "layers",
    ))
    .unwrap();
    let digest = format!("sha256:{}", "a".repeat(64));
    m["annotations"] = json!({
        "org.opencontainers.image.base.name": "registry.example/library/debian:12",
        "org.opencontainers.image.base.digest": digest,
    });
    let doc = serde_json::to_vec(&m).unwrap();
    let d = l.tagged(crate::support::rawtar::MANIFEST, &doc);
    l.index(vec![d]);
    let env = CleanEnv::new();
    let layout = format!("oci:{}", l.path().display());
    let run = |args: &[&str]| output(env.imgscan().args(args).arg(&layout), None);
    let v = run(&["--format", "json", "--no-config"]).json();
    assert_eq!(
        v["image"]["base"]["name"],
        "registry.example/library/debian:12"
    );
    let t = run(&["--no-config"]);
    assert!(
        t.stdout
            .contains("base image (from the manifest's annotations):"),
        "{}",
        t.stdout
    );
    assert!(
        t.stdout
            .contains(&format!("registry.example/library/debian@{digest}"))
    );
}

/// `--baseline auto` pulls the base the manifest's annotations name, here
/// from an in-process registry on 127.0.0.1, and marks what it brought.
#[cfg(feature = "registry")]
#[test]
fn baseline_auto_pulls_the_annotated_base() {
    use crate::support::fake_registry::{FakeRegistry, Image};
    use crate::util::{Comp, write_oci_layout};
    let base_dir = tempfile::tempdir().unwrap();
    write_oci_layout(
        base_dir.path(),
        &[base_layer(b"su v1")],
        Comp::Gzip,
        json!({"User": "app"}),
    );
    let base = Image::from_layout(base_dir.path(), "team/base", "1");
    let base_digest = base.digest.clone();
    let reg = FakeRegistry::start(move |r| base.answer(r));

    let l = crate::support::rawtar::Layout::new();
    let tars = vec![base_layer(b"su v1"), app_layer(0o4755)];
    let blobs: Vec<(&str, Vec<u8>)> = tars
        .iter()
        .map(|t| (crate::support::rawtar::TAR, t.clone()))
        .collect();
    let mut m: Value =
        serde_json::from_slice(&l.manifest(&tars, &blobs, json!({"User": "app"}), "layers"))
            .unwrap();
    m["annotations"] = json!({
        "org.opencontainers.image.base.name": format!("{}/team/base:1", reg.host()),
        "org.opencontainers.image.base.digest": base_digest,
    });
    let doc = serde_json::to_vec(&m).unwrap();
    l.index(vec![l.tagged(crate::support::rawtar::MANIFEST, &doc)]);
    let env = CleanEnv::new();
    let r = output(
        env.imgscan()
            .args([
                "--format",
                "json",
                "--no-config",
                "--fail-on",
                "low",
                "--baseline",
                "auto",
            ])
            .arg(format!("oci:{}", l.path().display())),
        None,
    );
    let v = r.json();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(
        v["policy"]["baseline"]["source"],
        format!("{}/team/base@{base_digest}", reg.host())
    );
    assert_eq!(
        finding(&v, "setuid-binary", "/usr/bin/su")["baseline"],
        "inherited"
    );
    assert_eq!(
        counting(&v),
        [
            "setuid-binary /usr/local/bin/tool",
            "world-writable-path /etc/app.conf"
        ]
    );
}
