//! The CI recipes of docs/ci.md, as shipped under docs/ci/: each YAML file
//! parses and has the shape its CI needs (hardened GitHub workflow, GitLab's
//! JUnit report artifact uploaded when the gate fails), docs/ci.md quotes
//! each file whole, and every `imgscan` command line in them runs, as
//! written, against the sample image (for `image.tar`): exit 1 (the sample
//! fails the gate), and each report it writes exists and parses.
//! See: issue #12.

use std::path::Path;
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

use crate::util::{root, testdata};

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> Yaml {
    let docs = YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert_eq!(docs.len(), 1, "{rel}: one YAML document");
    docs.into_iter().next().unwrap()
}

/// The `imgscan ...` command lines of `text` (shell lines, or the single-
/// quoted argument of a Jenkins `sh` step), without a trailing `|| rc=$?`.
fn imgscan_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for line in text.lines() {
        let mut l = line.trim().trim_start_matches("- ").trim();
        if let Some(rest) = l.strip_prefix("sh '") {
            l = rest.strip_suffix('\'').expect("one-line sh step");
        }
        if !l.starts_with("imgscan ") {
            continue;
        }
        let l = l.split(" || ").next().unwrap();
        lines.push(l.to_owned());
    }
    lines
}

/// Every string under `y` (run steps, script lists).
fn strings(y: &Yaml, out: &mut Vec<String>) {
    match y {
        Yaml::String(s) => out.push(s.clone()),
        Yaml::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Yaml::Hash(h) => h.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// Runs `line` in `dir` with the sample for `image.tar`; returns the files
/// it was told to write, by flag.
fn run_recipe_line(recipe: &str, line: &str, dir: &Path) -> Vec<(String, String)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[0], "imgscan");
    assert!(
        !line.contains(['"', '\'', '$', '`', '\\']),
        "{recipe}: keep the imgscan line free of shell quoting so the test runs it as written: {line}"
    );
    assert!(
        words.contains(&"image.tar"),
        "{recipe}: scans image.tar: {line}"
    );
    let sample = testdata("sample-docker.tar");
    let args: Vec<&str> = words[1..]
        .iter()
        .map(|w| {
            if *w == "image.tar" {
                sample.as_str()
            } else {
                w
            }
        })
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_imgscan"))
        .args(&args)
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{recipe}: `{line}` on the sample: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("imgscan: gate failed: ") && stderr.lines().count() == 1,
        "{recipe}: {stderr}"
    );
    let mut files = Vec::new();
    for pair in words.windows(2) {
        let (flag, file) = (pair[0], pair[1]);
        if !matches!(flag, "--json" | "--sarif" | "--junit" | "--output" | "-o") {
            continue;
        }
        let bytes = std::fs::read(dir.join(file))
            .unwrap_or_else(|e| panic!("{recipe}: `{line}` wrote no {file}: {e}"));
        let text = String::from_utf8(bytes).unwrap();
        match flag {
            "--json" => {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert!(v["findings"].is_array(), "{recipe}: {file}");
            }
            "--sarif" => {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["version"], "2.1.0", "{recipe}: {file}");
            }
            "--junit" => {
                let doc = roxmltree::Document::parse(&text).unwrap();
                assert_eq!(doc.root_element().tag_name().name(), "testsuites");
                assert!(
                    doc.descendants().any(|n| n.has_tag_name("failure")),
                    "{recipe}: {file} records the gate's failures"
                );
            }
            _ => {}
        }
        files.push((flag.to_owned(), file.to_owned()));
    }
    files
}

/// The file `flag` names in `files`.
fn file_of<'a>(files: &'a [(String, String)], flag: &str) -> &'a str {
    files
        .iter()
        .find(|(f, _)| f == flag)
        .map(|(_, p)| p.as_str())
        .unwrap_or_else(|| panic!("no {flag} in the recipe's imgscan line"))
}

/// Runs every imgscan line of a recipe; the files they write.
fn run_recipe(recipe: &str, text: &str) -> Vec<(String, String)> {
    let lines = imgscan_lines(text);
    assert!(!lines.is_empty(), "{recipe} runs no imgscan command");
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for line in &lines {
        files.extend(run_recipe_line(recipe, line, dir.path()));
    }
    files
}

/// docs/ci/github-actions.yml: hardened (no default permissions, no
/// persisted credentials, actions pinned by commit with a version comment),
/// uploads the SARIF its scan writes with upload-sarif, and gates last.
#[test]
fn github_actions_recipe() {
    let rel = "docs/ci/github-actions.yml";
    let text = read(rel);
    let y = yaml(rel);
    assert!(
        y["permissions"].as_hash().is_some_and(|h| h.is_empty()),
        "{rel}: permissions: {{}} at the top"
    );
    let job = &y["jobs"]["scan"];
    assert_eq!(
        job["permissions"]["security-events"].as_str(),
        Some("write")
    );
    let steps = job["steps"].as_vec().unwrap();
    let mut runs = Vec::new();
    strings(&y["jobs"], &mut runs);
    let files = run_recipe(rel, &runs.join("\n"));
    let uses: Vec<&str> = steps.iter().filter_map(|s| s["uses"].as_str()).collect();
    assert!(uses.iter().any(|u| u.starts_with("actions/checkout@")));
    for u in &uses {
        let sha = u.split('@').nth(1).unwrap();
        assert!(
            sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
            "{rel}: {u} is pinned by commit"
        );
        let line = text.lines().find(|l| l.contains(u)).unwrap();
        assert!(line.contains(" # v"), "{rel}: {u} has a version comment");
    }
    let checkout = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/checkout@"))
        })
        .unwrap();
    assert_eq!(
        checkout["with"]["persist-credentials"].as_bool(),
        Some(false)
    );
    let upload = steps
        .iter()
        .position(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("github/codeql-action/upload-sarif@"))
        })
        .expect("an upload-sarif step");
    assert_eq!(
        steps[upload]["with"]["sarif_file"].as_str(),
        Some(file_of(&files, "--sarif"))
    );
    let scan = steps
        .iter()
        .position(|s| s["run"].as_str().is_some_and(|r| r.contains("imgscan --")))
        .unwrap();
    let gate = steps.len() - 1;
    assert!(
        scan < upload && upload < gate,
        "{rel}: scan, upload, then gate"
    );
    assert_eq!(steps[gate]["name"].as_str(), Some("Gate"));
    assert_eq!(steps[scan]["id"].as_str(), Some("scan"));
}

/// docs/ci/gitlab-ci.yml: the imgscan job's JUnit file is its
/// `artifacts:reports:junit`, uploaded `when: always`.
#[test]
fn gitlab_ci_recipe() {
    let rel = "docs/ci/gitlab-ci.yml";
    let y = yaml(rel);
    let job = &y["imgscan"];
    let mut script = Vec::new();
    strings(&job["script"], &mut script);
    let files = run_recipe(rel, &script.join("\n"));
    let artifacts = &job["artifacts"];
    assert_eq!(
        artifacts["reports"]["junit"].as_str(),
        Some(file_of(&files, "--junit"))
    );
    assert_eq!(artifacts["when"].as_str(), Some("always"));
    let needs = job["needs"].as_vec().unwrap();
    let build = needs[0].as_str().unwrap();
    let paths = y[build]["artifacts"]["paths"].as_vec().unwrap();
    assert!(paths.iter().any(|p| p.as_str() == Some("image.tar")));
}

/// docs/ci/Jenkinsfile: the `junit` step records the file the scan writes,
/// in `post { always }`.
#[test]
fn jenkins_recipe() {
    let rel = "docs/ci/Jenkinsfile";
    let text = read(rel);
    let files = run_recipe(rel, &text);
    let junit = file_of(&files, "--junit");
    assert!(
        text.contains(&format!("junit testResults: '{junit}'")),
        "{rel}: the junit step reads {junit}"
    );
    let always = text.find("always {").expect("post { always { ... } }");
    assert!(
        text[always..].contains("junit "),
        "{rel}: junit in post always"
    );
    assert_eq!(text.matches('{').count(), text.matches('}').count());
}

/// docs/ci.md quotes each recipe whole, so the page and the tested files
/// cannot drift apart; the README links the page.
#[test]
fn ci_doc_quotes_the_recipes() {
    let doc = read("docs/ci.md");
    for (rel, lang) in [
        ("docs/ci/github-actions.yml", "yaml"),
        ("docs/ci/gitlab-ci.yml", "yaml"),
        ("docs/ci/Jenkinsfile", "groovy"),
    ] {
        let block = format!("```{lang}\n{}```\n", read(rel));
        assert!(
            doc.contains(&block),
            "docs/ci.md must quote {rel} whole, in a ```{lang} block (copy the file in)"
        );
    }
    assert!(read("README.md").contains("(docs/ci.md)"));
}
