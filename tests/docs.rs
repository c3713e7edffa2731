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
