//! The file parsers of the checks — passwd, group, sudoers (and
//! `sudoers.d`), the dpkg status database, `status.d` and `info/*.list`, the
//! apk database — through their public entry point: a one-layer final
//! filesystem (`fs::FinalFs`) holding fuzzed files, and `checks::run_all`.
//!
//! Input: sections separated by the two bytes `0xff '\n'`. The first section
//! is the config's `User`; each further one is a selector byte (which path,
//! and whether it is a symlink whose target is the rest) and the contents.
//! `scripts/fuzz` writes seeds in this form from real files.
//!
//! Invariants: no panic; loading and checking the same filesystem twice
//! gives the same findings, warnings, accounts and package owners.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scanner::checks::accounts::Accounts;
use scanner::checks::packages::PackageDb;
use scanner::checks::run_all;
use scanner::config::ImageConfig;
use scanner::fs::FinalFs;
use scanner::layer::{Content, Entry, LayerIndex};
use scanner::model::LayerInfo;
use scanner::tarstream::Kind;

/// The paths a section can fill (selector byte modulo the count).
const PATHS: &[&str] = &[
    "etc/passwd",
    "etc/group",
    "etc/sudoers",
    "etc/sudoers.d/custom",
    "var/lib/dpkg/status",
    "var/lib/dpkg/info/pkg.list",
    "var/lib/dpkg/status.d/pkg",
    "lib/apk/db/installed",
    "usr/lib/apk/db/installed",
    // Files the checks judge, for the databases and accounts to be about.
    "usr/bin/sudo",
    "usr/sbin/sshd",
    "etc/ssh/ssh_host_rsa_key",
    "bin/su",
    "etc",
    "var/lib/dpkg/info",
    "var/lib/dpkg/status.d",
    // Where a symlinked /etc/passwd commonly points.
    "usr/lib/passwd",
    "usr/share/base-passwd/passwd.master",
    "usr/lib/group",
];

fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(2).position(|w| w == b"\xff\n") {
        out.push(&rest[..i]);
        rest = &rest[i + 2..];
    }
    out.push(rest);
    out
}

fn layer(sections: &[&[u8]]) -> LayerIndex {
    let mut entries = Vec::new();
    for s in sections {
        let Some((&sel, body)) = s.split_first() else {
            continue;
        };
        let path = PATHS[usize::from(sel & 0x3f) % PATHS.len()];
        let mode = if path.starts_with("usr/bin") || path.starts_with("bin") {
            0o4755
        } else {
            0o644
        };
        let e = if sel & 0x80 != 0 {
            Entry {
                path: path.into(),
                kind: Kind::Symlink,
                mode: 0o777,
                uid: 0,
                gid: 0,
                size: body.len() as u64,
                link: Some(String::from_utf8_lossy(body).into()),
                caps: None,
                content: None,
            }
        } else if sel & 0x40 != 0 {
            Entry {
                path: path.into(),
                kind: Kind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                size: 0,
                link: None,
                caps: None,
                content: None,
            }
        } else {
            Entry {
                path: path.into(),
                kind: Kind::File,
                mode,
                uid: 0,
                gid: 0,
                size: body.len() as u64,
                link: None,
                caps: None,
                content: Some(Box::new(Content {
                    data: body.to_vec(),
                    truncated: false,
                })),
            }
        };
        entries.push(e);
    }
    LayerIndex::from_entries(entries)
}

fn run(sections: &[&[u8]]) -> String {
    let mut fs = FinalFs::new();
    fs.apply(0, layer(&sections[1..]));
    let user = String::from_utf8_lossy(sections[0]).into_owned();
    let config = ImageConfig {
        user: (!user.is_empty()).then_some(user),
        ..ImageConfig::default()
    };
    let layers = [LayerInfo {
        index: 0,
        digest: "sha256:0".into(),
        diff_id: "sha256:0".into(),
        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        size: 0,
        compression: "none".into(),
        entries: 0,
        created_by: None,
    }];
    // Debug text, so that this holds whether these return a value or a
    // Result (a file the runtime cannot read as it does fails the scan).
    let findings = format!("{:?}", run_all(&fs, &config, &layers));
    let mut warnings = Vec::new();
    let accounts = format!("{:?}", Accounts::load(&fs, &mut warnings));
    let packages = PackageDb::load(&fs, &mut warnings);
    let owners: Vec<Option<&str>> = PATHS.iter().map(|p| packages.owner(p)).collect();
    format!(
        "{findings}\n{accounts}\n{warnings:?}\n{owners:?} {} {}\n{:?}",
        packages.kind(),
        packages.owned_paths(),
        fs.warnings(),
    )
}

fuzz_target!(|data: &[u8]| {
    let sections = split(data);
    let first = run(&sections);
    let second = run(&sections);
    assert_eq!(first, second, "the same files judged twice differ");
});
