//! Which package owns which path, from the image's own package database.
//!
//! Checks use this to tell a file the distribution shipped (`/usr/bin/su` from
//! `login`) from one that was added by hand, which is how backdoors look.
//!
//! # Sources
//!
//! - **dpkg**: every `var/lib/dpkg/info/<pkg>[:<arch>].list` names the absolute
//!   paths `<pkg>` installed. When `var/lib/dpkg/status` exists, only packages
//!   whose stanza says the files are on disk count (`Status: install ok
//!   installed`, and the other states after unpacking; `config-files` and
//!   `not-installed` do not), as `dpkg -S` would answer.
//! - **distroless** (dpkg without dpkg): `var/lib/dpkg/status.d/<name>` holds
//!   the stanza of one package and `status.d/<name>.md5sums` its files, one
//!   `<md5>  <path>` line each (path without the leading `/`).
//! - **apk**: `lib/apk/db/installed` (or `usr/lib/apk/db/installed`): one record
//!   per package, separated by blank lines; `P:` names the package, `F:` a
//!   folder and each following `R:` a file in it.
//!
//! # Paths are canonicalised
//!
//! Databases list the path the package was built with; the final filesystem
//! keys paths by where they really are. On a usr-merged image dpkg lists
//! `/bin/su`, but `/bin -> usr/bin`, so the file is `/usr/bin/su`. Every listed
//! path's parent is resolved through the final filesystem's symlinks (once per
//! directory), so [`PackageDb::owner`] takes the paths [`FinalFs`] reports.
//!
//! A database that lists packages but yields no file lists (`info/` deleted to
//! save space, distroless without `.md5sums`) gives no ownership: it is warned
//! about and does not count as known, so nothing is judged "not owned by any
//! package" on its word.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::fs::FinalFs;
use crate::tarstream::Kind;

const DPKG_STATUS: &str = "var/lib/dpkg/status";
const DPKG_STATUS_D: &str = "var/lib/dpkg/status.d";
const DPKG_INFO: &str = "var/lib/dpkg/info";
const APK_INSTALLED: [&str; 2] = ["lib/apk/db/installed", "usr/lib/apk/db/installed"];

/// dpkg `Status:` words (the third one) meaning the package's files are on
/// disk (dpkg `lib/dpkg/pkg-namevalues.c` `statusinfos`).
const DPKG_FILES_PRESENT: &[&str] = &[
    "installed",
    "unpacked",
    "half-configured",
    "half-installed",
    "triggers-awaited",
    "triggers-pending",
];

/// Package ownership of paths in the final filesystem.
#[derive(Debug, Default)]
pub struct PackageDb {
    /// Canonical path (relative, no leading `/`) to an index into `names`.
    owners: HashMap<Box<str>, usize>,
    /// Package names.
    names: Vec<Box<str>>,
    /// Whether a dpkg database gave ownership.
    dpkg: bool,
    /// Whether an apk database gave ownership.
    apk: bool,
}

/// Builds the path map, canonicalising each listed path's parent once.
struct Builder<'a> {
    fs: &'a FinalFs,
    parents: HashMap<String, String>,
    names: BTreeMap<String, usize>,
    db: PackageDb,
}

impl<'a> Builder<'a> {
    fn new(fs: &'a FinalFs) -> Self {
        Self {
            fs,
            parents: HashMap::new(),
            names: BTreeMap::new(),
            db: PackageDb::default(),
        }
    }

    /// Records that `pkg` owns `listed` (absolute or relative, as the database
    /// writes it). The first owner wins.
    fn add(&mut self, pkg: &str, listed: &str) {
        let rel = listed.trim_end_matches(['\r', '/']).trim_start_matches('/');
        if rel.is_empty() || rel == "." {
            return;
        }
        let (parent, base) = match rel.rfind('/') {
            Some(i) => (&rel[..i], &rel[i + 1..]),
            None => ("", rel),
        };
        if base == "." || base == ".." {
            return;
        }
        if !self.parents.contains_key(parent) {
            let canon = if parent.is_empty() {
                String::new()
            } else {
                self.fs
                    .canonical(parent, true)
                    .unwrap_or_else(|| parent.to_owned())
            };
            self.parents.insert(parent.to_owned(), canon);
        }
        let canon_parent = &self.parents[parent];
        let key = if canon_parent.is_empty() {
            base.to_owned()
        } else {
            format!("{canon_parent}/{base}")
        };
        let idx = match self.names.get(pkg) {
            Some(&i) => i,
            None => {
                let i = self.db.names.len();
                self.names.insert(pkg.to_owned(), i);
                self.db.names.push(pkg.into());
                i
            }
        };
        self.db.owners.entry(key.into()).or_insert(idx);
    }
}

/// A database file's captured text.
struct Text {
    text: String,
    /// Whether all of it was read.
    complete: bool,
}

/// The captured text of `path` (symlinks followed), warning when it exists
/// but was not captured, or only in part. `None` when there is no such file.
fn read_text(fs: &FinalFs, path: &str, warnings: &mut Vec<String>) -> Option<Text> {
    let (resolved, node) = fs.resolve(path)?;
    if !node.is_regular() {
        return None;
    }
    let Some(content) = fs.read(path) else {
        warnings.push(format!(
            "/{resolved} exists but its contents were not read; package ownership may be incomplete"
        ));
        return Some(Text {
            text: String::new(),
            complete: false,
        });
    };
    if content.truncated {
        warnings.push(format!(
            "/{resolved} was only partly read ({} bytes); package ownership may be incomplete",
            content.data.len()
        ));
    }
    Some(Text {
        text: String::from_utf8_lossy(&content.data).into_owned(),
        complete: !content.truncated,
    })
}

/// Splits a deb822 control file into stanzas of `(field, value)` pairs
/// (continuation lines are dropped: no field checks read needs them).
fn stanzas(text: &str) -> Vec<Vec<(&str, &str)>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with([' ', '\t', '#']) {
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            cur.push((k.trim(), v.trim()));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn field<'a>(stanza: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    stanza
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

/// Which packages of a dpkg status file have their files on disk, and which
/// are recorded as gone.
#[derive(Default)]
struct DpkgStatus {
    present: BTreeSet<String>,
    absent: BTreeSet<String>,
}

fn parse_dpkg_status(text: &str) -> DpkgStatus {
    let mut st = DpkgStatus::default();
    for stanza in stanzas(text) {
        let Some(pkg) = field(&stanza, "Package") else {
            continue;
        };
        let state = field(&stanza, "Status")
            .and_then(|s| s.split_whitespace().nth(2))
            .unwrap_or("installed");
        if DPKG_FILES_PRESENT.contains(&state) {
            st.present.insert(pkg.to_owned());
        } else {
            st.absent.insert(pkg.to_owned());
        }
    }
    st
}

impl PackageDb {
    /// Whether the layer scan keeps this file (see [`super::captures`]): the
    /// dpkg status (and distroless `status.d`) and file lists, the apk
    /// database.
    pub fn captures(path: &str) -> bool {
        matches!(
            path,
            "var/lib/dpkg/status" | "lib/apk/db/installed" | "usr/lib/apk/db/installed"
        ) || super::child_of(path, "var/lib/dpkg/info").is_some_and(|n| n.ends_with(".list"))
            || super::child_of(path, "var/lib/dpkg/status.d").is_some()
    }

    /// Loads package ownership from the final filesystem. Problems that limit
    /// it (a truncated database file) are added to `warnings`.
    pub fn load(fs: &FinalFs, warnings: &mut Vec<String>) -> Self {
        let mut b = Builder::new(fs);
        let dpkg = load_dpkg(&mut b, warnings);
        let apk = load_apk(&mut b, warnings);
        b.db.dpkg = dpkg;
        b.db.apk = apk;
        b.db
    }

    /// The package that owns `path` (relative, as [`FinalFs`] keys it).
    pub fn owner(&self, path: &str) -> Option<&str> {
        self.owners
            .get(path.trim_start_matches('/'))
            .map(|&i| &*self.names[i])
    }

    /// Which databases gave ownership: `"dpkg"`, `"apk"`, `"dpkg+apk"` or `"none"`.
    pub fn kind(&self) -> &'static str {
        match (self.dpkg, self.apk) {
            (true, true) => "dpkg+apk",
            (true, false) => "dpkg",
            (false, true) => "apk",
            (false, false) => "none",
        }
    }

    /// Whether the image has a package database that says which package owns
    /// which file, so that "no package owns this" means something.
    pub fn is_known(&self) -> bool {
        self.dpkg || self.apk
    }

    /// Number of paths with an owner.
    pub fn owned_paths(&self) -> usize {
        self.owners.len()
    }

    /// "owned by package login", "not owned by any package" or, without a
    /// database, "no package database to tell who installed it".
    pub(crate) fn ownership_phrase(&self, path: &str) -> String {
        match self.owner(path) {
            Some(p) => format!("owned by package {p}"),
            None if self.is_known() => "not owned by any package".to_owned(),
            None => "no package database to tell who installed it".to_owned(),
        }
    }
}

/// Loads dpkg and distroless ownership; returns whether it counts as known.
fn load_dpkg(b: &mut Builder<'_>, warnings: &mut Vec<String>) -> bool {
    let fs = b.fs;
    let before = b.db.owners.len();
    let mut listed_packages = 0usize;
    let mut present = false;

    let mut status_complete = true;
    let status = read_text(fs, DPKG_STATUS, warnings).map(|t| {
        present = true;
        status_complete = t.complete;
        parse_dpkg_status(&t.text)
    });
    if let Some(st) = &status {
        listed_packages += st.present.len();
    }

    // info/<pkg>[:arch].list
    // Parent directories need no entries of their own in a layer: look for
    // children, not for the directory.
    if let Some(info) = fs.canonical(DPKG_INFO, true) {
        for (name, node) in fs.children(&info) {
            let Some(stem) = name.strip_suffix(".list") else {
                continue;
            };
            if !node.is_regular() {
                continue;
            }
            present = true;
            let pkg = stem.split_once(':').map_or(stem, |(p, _)| p);
            let counts = match &status {
                None => true,
                // A partly read status file may miss the stanza: only an
                // explicit "gone" state excludes the package then.
                Some(st) if !status_complete => {
                    !st.absent.contains(pkg) || st.present.contains(pkg)
                }
                Some(st) => st.present.contains(pkg),
            };
            if !counts {
                continue;
            }
            let path = format!("{info}/{name}");
            let Some(text) = read_text(fs, &path, warnings) else {
                continue;
            };
            if status.is_none() {
                listed_packages += 1;
            }
            for line in text.text.lines() {
                b.add(pkg, line);
            }
        }
    }

    // Distroless: status.d/<name> stanzas and status.d/<name>.md5sums.
    if let Some(dir) = fs.canonical(DPKG_STATUS_D, true)
        && (fs.get(&dir).is_some_and(|n| n.kind == Kind::Dir) || fs.children(&dir).next().is_some())
    {
        present = true;
        let mut package_of: BTreeMap<String, String> = BTreeMap::new();
        let mut sums: Vec<(String, String)> = Vec::new();
        for (name, node) in fs.children(&dir) {
            if !node.is_regular() {
                continue;
            }
            let path = format!("{dir}/{name}");
            if let Some(stem) = name.strip_suffix(".md5sums") {
                sums.push((stem.to_owned(), path));
                continue;
            }
            let Some(text) = read_text(fs, &path, warnings) else {
                continue;
            };
            let st = parse_dpkg_status(&text.text);
            listed_packages += st.present.len();
            if let Some(pkg) = st.present.iter().next() {
                package_of.insert(name.to_owned(), pkg.clone());
            }
        }
        for (stem, path) in sums {
            let pkg = package_of.get(&stem).cloned().unwrap_or(stem);
            let Some(text) = read_text(fs, &path, warnings) else {
                continue;
            };
            for line in text.text.lines() {
                let line = line.trim_end_matches('\r');
                if let Some((_, p)) = line.split_once(char::is_whitespace) {
                    b.add(&pkg, p.trim_start());
                }
            }
        }
    }

    let owned = b.db.owners.len() > before;
    if present && !owned && listed_packages > 0 {
        warnings.push(format!(
            "the dpkg database lists {listed_packages} installed package(s) but no file lists \
             (/{DPKG_INFO}/*.list, /{DPKG_STATUS_D}/*.md5sums); package ownership is unknown"
        ));
        return false;
    }
    present
}

/// Loads apk ownership; returns whether it counts as known.
fn load_apk(b: &mut Builder<'_>, warnings: &mut Vec<String>) -> bool {
    let fs = b.fs;
    let before = b.db.owners.len();
    let mut present = false;
    let mut packages = 0usize;
    let mut seen: Vec<String> = Vec::new();
    for path in APK_INSTALLED {
        // lib -> usr/lib makes both names one file: read it once.
        let Some((resolved, _)) = fs.resolve(path) else {
            continue;
        };
        if seen.contains(&resolved) {
            continue;
        }
        seen.push(resolved);
        let Some(text) = read_text(fs, path, warnings) else {
            continue;
        };
        present = true;
        let mut pkg: Option<&str> = None;
        let mut folder = "";
        for line in text.text.lines() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                pkg = None;
                folder = "";
                continue;
            }
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            match k {
                "P" => {
                    pkg = Some(v);
                    packages += 1;
                }
                "F" => folder = v,
                "R" => {
                    if let Some(p) = pkg {
                        if folder.is_empty() {
                            b.add(p, v);
                        } else {
                            b.add(p, &format!("{folder}/{v}"));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let owned = b.db.owners.len() > before;
    if present && !owned && packages > 0 {
        warnings.push(format!(
            "the apk database lists {packages} package(s) but no files; package ownership is unknown"
        ));
        return false;
    }
    present
}

/// Builders for the checks' unit tests: layers from hand-made entries, a
/// final filesystem, and a check run with its context.
#[cfg(test)]
pub(crate) mod test_support {
    use crate::checks::{Check, Context, Findings, accounts::Accounts, packages::PackageDb};
    use crate::config::ImageConfig;
    use crate::fs::FinalFs;
    use crate::layer::{Content, Entry, LayerIndex};
    use crate::model::{Finding, LayerInfo};
    use crate::tarstream::Kind;

    /// An entry owned by root with no link, caps or content.
    pub(crate) fn entry(path: &str, kind: Kind, mode: u32) -> Entry {
        Entry {
            path: path.into(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            size: 0,
            link: None,
            caps: None,
            content: None,
        }
    }

    /// A regular file.
    pub(crate) fn file(path: &str, mode: u32) -> Entry {
        entry(path, Kind::File, mode)
    }

    /// A directory.
    pub(crate) fn dir(path: &str, mode: u32) -> Entry {
        entry(path, Kind::Dir, mode)
    }

    /// A symlink to `target` (as written).
    pub(crate) fn symlink(path: &str, target: &str) -> Entry {
        Entry {
            link: Some(target.into()),
            ..entry(path, Kind::Symlink, 0o777)
        }
    }

    /// A hard link to the root-relative `target`, with the header's `mode`.
    pub(crate) fn hardlink(path: &str, target: &str, mode: u32) -> Entry {
        Entry {
            link: Some(target.into()),
            ..entry(path, Kind::Hardlink, mode)
        }
    }

    /// A 0644 root file with captured `text`.
    pub(crate) fn text(path: &str, text: &str) -> Entry {
        Entry {
            size: text.len() as u64,
            content: Some(Box::new(Content {
                data: text.as_bytes().to_vec(),
                truncated: false,
            })),
            ..file(path, 0o644)
        }
    }

    /// `e` owned by `uid:gid`.
    pub(crate) fn owned(e: Entry, uid: u64, gid: u64) -> Entry {
        Entry { uid, gid, ..e }
    }

    /// The final filesystem of these layers (layer `i` is `layers[i]`).
    pub(crate) fn fs_of(layers: Vec<Vec<Entry>>) -> FinalFs {
        let mut fs = FinalFs::new();
        for (i, entries) in layers.into_iter().enumerate() {
            fs.apply(i, LayerIndex::from_entries(entries));
        }
        fs
    }

    /// Fake layer descriptions, enough for attribution.
    pub(crate) fn layer_infos(n: usize) -> Vec<LayerInfo> {
        (0..n)
            .map(|i| LayerInfo {
                index: i,
                digest: format!("sha256:{:064x}", i + 1),
                diff_id: format!("sha256:{:064x}", i + 0x100),
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".to_owned(),
                size: 0,
                compression: "gzip".to_owned(),
                entries: 0,
                created_by: Some(format!("layer {i}")),
            })
            .collect()
    }

    /// A config with this `User`.
    pub(crate) fn config_user(user: Option<&str>) -> ImageConfig {
        ImageConfig {
            user: user.map(str::to_owned),
            ..ImageConfig::default()
        }
    }

    /// Runs one check over `fs` as `run_all` would (packages and accounts
    /// loaded first; their warnings come first in the result).
    pub(crate) fn run(check: &dyn Check, fs: &FinalFs, config: &ImageConfig) -> Findings {
        let mut out = Findings::default();
        let packages = PackageDb::load(fs, &mut out.warnings);
        let accounts = Accounts::load(fs, &mut out.warnings).expect("account files are readable");
        let user = crate::checks::identity::runtime_user(config, &accounts);
        let inventory = crate::fs::Inventory::of(fs);
        let sudo = crate::checks::sudo::Policy::load(fs);
        let layers = layer_infos(8);
        let ctx = Context {
            fs,
            config,
            layers: &layers,
            packages: &packages,
            accounts: &accounts,
            user: &user,
            inventory: &inventory,
            sudo: &sudo,
        };
        check.run(&ctx, &mut out);
        out
    }

    /// `rule severity path` per finding, for short assertions.
    pub(crate) fn brief(findings: &[Finding]) -> Vec<String> {
        findings
            .iter()
            .map(|f| {
                format!(
                    "{} {} {}",
                    f.rule_id,
                    f.severity,
                    f.path.as_deref().unwrap_or("-")
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    const STATUS: &str = "Package: login\nStatus: install ok installed\nArchitecture: amd64\n\n\
Package: gone\nStatus: deinstall ok config-files\n\n\
Package: held\nStatus: hold ok installed\n";

    fn usr_merged() -> Vec<crate::layer::Entry> {
        vec![
            dir("usr", 0o755),
            dir("usr/bin", 0o755),
            symlink("bin", "usr/bin"),
            file("usr/bin/su", 0o4755),
        ]
    }

    #[test]
    fn dpkg_lists_canonicalised_through_usr_merge() {
        let mut l = usr_merged();
        l.extend([
            text(DPKG_STATUS, STATUS),
            text(
                "var/lib/dpkg/info/login:amd64.list",
                "/.\n/bin\n/bin/su\n/etc/login.defs\n",
            ),
            text("var/lib/dpkg/info/gone.list", "/etc/gone.conf\n/bin/gone\n"),
            text("var/lib/dpkg/info/held.list", "/usr/bin/held\n"),
        ]);
        let fs = fs_of(vec![l]);
        let mut w = Vec::new();
        let db = PackageDb::load(&fs, &mut w);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(db.kind(), "dpkg");
        assert!(db.is_known());
        assert_eq!(db.owner("usr/bin/su"), Some("login"));
        assert_eq!(db.owner("/usr/bin/su"), Some("login"));
        assert_eq!(db.owner("bin/su"), None, "keys are canonical paths");
        assert_eq!(db.owner("etc/login.defs"), Some("login"));
        assert_eq!(
            db.owner("usr/bin/gone"),
            None,
            "config-files state owns nothing"
        );
        assert_eq!(db.owner("usr/bin/held"), Some("held"));
        assert_eq!(db.owner(""), None);
    }

    #[test]
    fn dpkg_without_status_counts_every_list() {
        let fs = fs_of(vec![vec![text("var/lib/dpkg/info/x.list", "/usr/bin/x\n")]]);
        let db = PackageDb::load(&fs, &mut Vec::new());
        assert_eq!(db.owner("usr/bin/x"), Some("x"));
    }

    #[test]
    fn distroless_status_d_and_md5sums() {
        let fs = fs_of(vec![vec![
            dir("var/lib/dpkg/status.d", 0o755),
            text(
                "var/lib/dpkg/status.d/libc6",
                "Package: libc6\nVersion: 2.36\n",
            ),
            text(
                "var/lib/dpkg/status.d/libc6.md5sums",
                "0123456789abcdef0123456789abcdef  lib/x86_64-linux-gnu/libc.so.6\n\
                 fedcba9876543210fedcba9876543210  usr/share/doc/a file\n",
            ),
            text(
                "var/lib/dpkg/status.d/tzdata.md5sums",
                "00  usr/share/zoneinfo/UTC\n",
            ),
        ]]);
        let db = PackageDb::load(&fs, &mut Vec::new());
        assert_eq!(db.kind(), "dpkg");
        assert_eq!(db.owner("lib/x86_64-linux-gnu/libc.so.6"), Some("libc6"));
        assert_eq!(db.owner("usr/share/doc/a file"), Some("libc6"));
        assert_eq!(db.owner("usr/share/zoneinfo/UTC"), Some("tzdata"));
    }

    #[test]
    fn apk_folders_and_files() {
        let installed = "C:Q1abc=\nP:busybox\nV:1.36\nF:bin\nR:busybox\nF:etc\nR:securetty\n\n\
P:su-exec\nF:sbin\nR:su-exec\na:0:0:4755\n";
        let fs = fs_of(vec![vec![text("lib/apk/db/installed", installed)]]);
        let db = PackageDb::load(&fs, &mut Vec::new());
        assert_eq!(db.kind(), "apk");
        assert_eq!(db.owner("bin/busybox"), Some("busybox"));
        assert_eq!(db.owner("etc/securetty"), Some("busybox"));
        assert_eq!(db.owner("sbin/su-exec"), Some("su-exec"));
        assert_eq!(db.owned_paths(), 3);
    }

    #[test]
    fn apk_read_once_through_lib_symlink_and_mixed_kind() {
        let fs = fs_of(vec![vec![
            dir("usr/lib", 0o755),
            text("usr/lib/apk/db/installed", "P:a\nF:usr/bin\nR:a\n"),
            symlink("lib", "usr/lib"),
            text("var/lib/dpkg/info/d.list", "/usr/bin/d\n"),
        ]]);
        let db = PackageDb::load(&fs, &mut Vec::new());
        assert_eq!(db.kind(), "dpkg+apk");
        assert_eq!(db.owner("usr/bin/a"), Some("a"));
        assert_eq!(db.owner("usr/bin/d"), Some("d"));
    }

    #[test]
    fn no_database_and_databases_without_file_lists() {
        let db = PackageDb::load(
            &fs_of(vec![vec![file("usr/bin/x", 0o755)]]),
            &mut Vec::new(),
        );
        assert_eq!((db.kind(), db.is_known()), ("none", false));

        let mut w = Vec::new();
        let fs = fs_of(vec![vec![text(DPKG_STATUS, STATUS)]]);
        let db = PackageDb::load(&fs, &mut w);
        assert!(!db.is_known());
        assert_eq!(db.kind(), "none");
        assert!(w[0].contains("no file lists"), "{w:?}");

        // An empty status file: dpkg is there and nothing is installed.
        let db = PackageDb::load(&fs_of(vec![vec![text(DPKG_STATUS, "")]]), &mut Vec::new());
        assert_eq!((db.kind(), db.is_known()), ("dpkg", true));
    }

    #[test]
    fn truncated_database_warns_and_keeps_unlisted_packages() {
        let mut status = text(
            DPKG_STATUS,
            "Package: gone\nStatus: purge ok not-installed\n\nPack",
        );
        status.content.as_mut().unwrap().truncated = true;
        let mut list = text("var/lib/dpkg/info/login.list", "/usr/bin/su\n");
        list.content.as_mut().unwrap().truncated = true;
        let fs = fs_of(vec![vec![
            status,
            list,
            text("var/lib/dpkg/info/gone.list", "/usr/bin/gone\n"),
        ]]);
        let mut w = Vec::new();
        let db = PackageDb::load(&fs, &mut w);
        assert_eq!(db.owner("usr/bin/su"), Some("login"));
        assert_eq!(db.owner("usr/bin/gone"), None);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w.iter().all(|w| w.contains("only partly read")));
    }
}
