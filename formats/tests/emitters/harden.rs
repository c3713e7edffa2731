//! `imgscan harden`'s text is a YAML stream whose fields are real: the
//! Kubernetes container fields it sets are fields of `Container` and
//! `SecurityContext`, and its compose service validates against the
//! compose specification's own JSON Schema (vendored, see
//! formats/schema/README.md).

use scanner::model::Report;
use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

use crate::sample::{root, sample_inputs, scan};

/// Fields of Kubernetes' `SecurityContext` (k8s.io/api/core/v1
/// `types.go`, `type SecurityContext struct`, JSON names).
const SECURITY_CONTEXT: &[&str] = &[
    "capabilities",
    "privileged",
    "seLinuxOptions",
    "windowsOptions",
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "readOnlyRootFilesystem",
    "allowPrivilegeEscalation",
    "procMount",
    "seccompProfile",
    "appArmorProfile",
];

fn keys(y: &Yaml) -> Vec<String> {
    y.as_hash()
        .map(|h| {
            h.keys()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// YAML to JSON, for the compose schema.
fn json(y: &Yaml) -> Value {
    match y {
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| (k.as_str().unwrap_or("").to_owned(), json(v)))
                .collect(),
        ),
        Yaml::Array(a) => Value::Array(a.iter().map(json).collect()),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Real(r) => Value::String(r.clone()),
        _ => Value::Null,
    }
}

fn harden_text(image: &str) -> (Report, String) {
    let report = scan(image);
    let mut out = Vec::new();
    formats::human::harden(&mut out, &report).unwrap();
    (report, String::from_utf8(out).unwrap())
}

#[test]
fn harden_yaml_parses_and_names_real_fields() {
    let compose_schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("formats/schema/compose-spec.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&compose_schema).unwrap();
    for image in sample_inputs() {
        let (report, text) = harden_text(&image);
        let docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(docs.len() >= 3, "{text}");
        let container = &docs[0];
        for k in keys(container) {
            assert!(
                ["securityContext", "volumeMounts"].contains(&k.as_str()),
                "{k}"
            );
        }
        let sc = &container["securityContext"];
        for k in keys(sc) {
            assert!(
                SECURITY_CONTEXT.contains(&k.as_str()),
                "not a SecurityContext field: {k}"
            );
        }
        assert_eq!(sc["allowPrivilegeEscalation"], Yaml::Boolean(false));
        assert_eq!(sc["readOnlyRootFilesystem"], Yaml::Boolean(true));
        assert_eq!(sc["runAsNonRoot"], Yaml::Boolean(true));
        assert_eq!(sc["capabilities"]["drop"][0].as_str(), Some("ALL"));
        assert_eq!(
            sc["seccompProfile"]["type"].as_str(),
            Some("RuntimeDefault")
        );
        match report.hardening.run_as_user {
            Some(uid) => assert_eq!(sc["runAsUser"].as_i64(), Some(i64::from(uid))),
            None => assert!(sc["runAsUser"].is_badvalue(), "no placeholder uid"),
        }
        let mounts = container["volumeMounts"].as_vec().unwrap();
        assert_eq!(mounts[0]["mountPath"].as_str(), Some("/tmp"));
        let pod = &docs[1];
        assert_eq!(keys(pod), ["volumes"]);
        assert_eq!(pod["volumes"].as_vec().unwrap().len(), mounts.len());
        let compose = docs.iter().find(|d| !d["services"].is_badvalue()).unwrap();
        let value = json(compose);
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert_eq!(errors, Vec::<String>::new(), "{text}");
        assert_eq!(compose["services"]["app"]["read_only"], Yaml::Boolean(true));
    }
}

/// The vendored compose schema is the one its README names.
#[test]
fn compose_schema_is_the_vendored_one() {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(root().join("formats/schema/compose-spec.json")).unwrap();
    let hex: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        hex,
        "1f91e091f16b2dd50ab8860e02bb391d22df553d91c145eacedb1b6eff9c3f0e"
    );
}
