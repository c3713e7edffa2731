//! `docs/rules.md` is generated from the rule registry and must be current
//! (regenerate with `IMGSCAN_UPDATE_DOCS=1 cargo test --test integration docs`).

/// docs/rules.md matches the registry (`scanner::rules::render_markdown`).
#[test]
fn rules_doc_is_current() {
    let path = crate::util::root().join("docs/rules.md");
    let want = scanner::rules::render_markdown(scanner::checks::RULES);
    if std::env::var_os("IMGSCAN_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/rules.md is stale (the rules' docs live in scanner/src/checks): regenerate it with \
         IMGSCAN_UPDATE_DOCS=1 cargo test --locked --test integration rules_doc_is_current"
    );
}

/// The fenced ```yaml blocks of a Markdown section (from its heading to the
/// next heading of the same or a higher level), each parsed as a stream.
fn yaml_blocks(markdown: &str, heading: &str) -> Vec<Vec<yaml_rust2::Yaml>> {
    let start = markdown
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?}"));
    let level = heading.chars().take_while(|c| *c == '#').count();
    let body = &markdown[start + heading.len()..];
    let end = body
        .match_indices("\n#")
        .find(|(i, _)| {
            let h = &body[i + 1..];
            h.chars().take_while(|c| *c == '#').count() <= level
        })
        .map_or(body.len(), |(i, _)| i);
    let mut out = Vec::new();
    let mut rest = &body[..end];
    while let Some(i) = rest.find("```yaml\n") {
        let block = &rest[i + 8..];
        let j = block.find("\n```").expect("a closed block");
        out.push(
            yaml_rust2::YamlLoader::load_from_str(&block[..j])
                .unwrap_or_else(|e| panic!("{heading}: {e}\n{}", &block[..j])),
        );
        rest = &block[j..];
    }
    out
}

/// docs/serve.md's Kubernetes recipe (issue #13): it parses; three
/// replicas behind a Service on the container's port; the container's
/// securityContext is what `imgscan harden` recommends for an image whose
/// USER is 65532 (built here and hardened by the binary); every
/// environment variable it sets is one `imgscan serve` reads; the
/// ConfigMap's serve.toml is TOML; and the registry's notifications block
/// points at the Service and the ConfigMap's registry name.
#[test]
fn the_kubernetes_recipe_is_what_imgscan_recommends() {
    use yaml_rust2::Yaml;
    let md = std::fs::read_to_string(crate::util::root().join("docs/serve.md")).unwrap();
    let blocks = yaml_blocks(&md, "### Kubernetes");
    assert_eq!(
        blocks.len(),
        2,
        "the manifests, then the notifications block"
    );
    let kind = |k: &str| -> &Yaml {
        blocks[0]
            .iter()
            .find(|d| d["kind"].as_str() == Some(k))
            .unwrap_or_else(|| panic!("no {k}"))
    };
    let deploy = kind("Deployment");
    assert_eq!(deploy["spec"]["replicas"].as_i64(), Some(3));
    let container = &deploy["spec"]["template"]["spec"]["containers"][0];
    let port = container["ports"][0]["containerPort"].as_i64().unwrap();
    let service = kind("Service");
    assert_eq!(service["spec"]["ports"][0]["port"].as_i64(), Some(port));
    assert_eq!(
        service["spec"]["selector"],
        deploy["spec"]["template"]["metadata"]["labels"]
    );

    // What imgscan harden says for a USER 65532 image.
    let layer = crate::util::LayerBuilder::new()
        .dir("etc", 0o755)
        .file(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532::/home/nonroot:/sbin/nologin\n",
        )
        .file("etc/group", 0o644, b"root:x:0:\nnonroot:x:65532:\n")
        .build();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("imgscan.tar");
    std::fs::write(
        &image,
        crate::util::docker_archive(
            &[layer],
            serde_json::json!({"User": "65532"}),
            "x/imgscan:1",
        ),
    )
    .unwrap();
    let out = crate::util::imgscan(&["harden", "--no-config", image.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hardened =
        yaml_rust2::YamlLoader::load_from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
    let want = hardened
        .iter()
        .find(|d| !d["securityContext"].is_badvalue())
        .map(|d| &d["securityContext"])
        .expect("harden's securityContext");
    let have = &container["securityContext"];
    let Yaml::Hash(want_map) = want else {
        panic!("{want:?}")
    };
    assert!(want_map.len() >= 5, "{want:?}");
    for (k, v) in want_map {
        assert_eq!(&have[k.as_str().unwrap()], v, "securityContext.{k:?}");
    }
    assert_eq!(have["runAsUser"].as_i64(), Some(65532));

    // Every variable the recipe sets, `imgscan serve` reads.
    let help = crate::util::imgscan(&["serve", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let config_src =
        std::fs::read_to_string(crate::util::root().join("serve/src/config.rs")).unwrap();
    for e in container["env"].as_vec().unwrap() {
        let name = e["name"].as_str().unwrap();
        assert!(
            help.contains(name) || config_src.contains(&format!("\"{name}\"")),
            "imgscan serve does not read {name}"
        );
    }

    // The ConfigMap's serve.toml, and the notifications pointing at it.
    let toml_text = kind("ConfigMap")["data"]["serve.toml"].as_str().unwrap();
    let serve_toml: toml::Value = toml::from_str(toml_text).unwrap();
    let registry = serve_toml["registry"][0]["name"].as_str().unwrap();
    let url = blocks[1][0]["notifications"]["endpoints"][0]["url"]
        .as_str()
        .unwrap();
    let svc = service["metadata"]["name"].as_str().unwrap();
    let ns = service["metadata"]["namespace"].as_str().unwrap();
    assert_eq!(
        url,
        format!("http://{svc}.{ns}.svc:{port}/v1/events/{registry}")
    );
}
