//! The modules of `scanner/src` import each other without cycles: sources
//! do not call back into the orchestrator, errors do not name the sources,
//! and so on. A cycle makes two modules one (neither can be read, tested or
//! moved without the other), so it fails this test instead of growing
//! quietly.
//!
//! The graph is read from the source text: every `crate::…` and `super::…`
//! path (in `use` items, including `{…}` groups, and inline), and paths
//! through a module's own submodules (`blob::RegistryContainer` in
//! `registry.rs`). Comments, string literals and `#[cfg(test)]` modules are
//! left out: unit tests may reach anywhere. Paths through the crate root's
//! re-exports (`crate::Result`) count as no edge.
//!
//! The check runs at every depth: modules are collapsed to their first one,
//! two, … segments (so `source::registry::blob -> scan` is also
//! `source -> scan`), and each collapsed graph must be acyclic, except for:
//!
//! - **a parent and its children**, which may import each other: the parent
//!   is their registry or their shared vocabulary (`checks` lists the
//!   checks, each check uses `checks`' helpers; `source` dispatches to
//!   `source::archive`, which implements `source::Container`);
//! - the temporary entries of [`ALLOWED`], each saying when it goes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Edges allowed although they close a cycle: (from, to, why). `from` and
/// `to` match a module and everything under it.
const ALLOWED: &[(&str, &str, &str)] = &[];

/// A module path, `[]` for the crate root.
type Module = Vec<String>;

#[test]
fn scanner_modules_import_no_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = module_files(&src);
    assert!(files.len() > 10, "found only {} modules", files.len());
    let modules: BTreeSet<Module> = files.keys().cloned().collect();
    // (from, to) -> a file that makes the edge, for the message.
    let mut edges: BTreeMap<(Module, Module), String> = BTreeMap::new();
    for (module, file) in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let code = strip_test_modules(&strip_comments_and_strings(&text));
        for path in referenced_paths(&code, module, &modules) {
            let Some(target) = resolve(&path, &modules) else {
                continue;
            };
            if target.is_empty() || &target == module {
                continue;
            }
            let shown = file.strip_prefix(&src).unwrap_or(file).display();
            edges
                .entry((module.clone(), target))
                .or_insert_with(|| format!("{shown}: {}", path.join("::")));
        }
    }
    assert!(
        edges
            .keys()
            .any(|(a, b)| a == &m("scan") && b == &m("source")),
        "the parser no longer sees `scan -> source`: {:?}",
        edges.keys().collect::<Vec<_>>()
    );

    let depth = modules.iter().map(Vec::len).max().unwrap_or(1);
    let mut problems = Vec::new();
    for d in 1..=depth {
        let mut graph: BTreeMap<Module, BTreeMap<Module, String>> = BTreeMap::new();
        for ((from, to), why) in &edges {
            let (a, b) = (collapse(from, d), collapse(to, d));
            if a == b || is_prefix(&a, &b) || is_prefix(&b, &a) || allowed(from, to) {
                continue;
            }
            graph
                .entry(a)
                .or_default()
                .entry(b)
                .or_insert_with(|| why.clone());
        }
        for scc in cycles(&graph) {
            let names: Vec<String> = scc.iter().map(name).collect();
            let mut lines = vec![format!(
                "cycle between {} (modules collapsed to depth {d}):",
                names.join(", ")
            )];
            for a in &scc {
                for (b, why) in graph.get(a).into_iter().flatten() {
                    if scc.contains(b) {
                        lines.push(format!("  {} -> {}   ({why})", name(a), name(b)));
                    }
                }
            }
            problems.push(lines.join("\n"));
        }
    }
    problems.dedup();
    assert!(
        problems.is_empty(),
        "import cycles in scanner/src (see the allow-list in scanner/tests/imports.rs):\n{}",
        problems.join("\n")
    );
}

/// The parser on the shapes the tree uses.
#[test]
fn paths_are_read_from_use_trees() {
    let modules: BTreeSet<Module> = [
        "",
        "error",
        "scan",
        "source",
        "source::archive",
        "source::registry",
        "source::registry::blob",
    ]
    .iter()
    .map(|s| m(s))
    .collect();
    let code = strip_test_modules(&strip_comments_and_strings(
        r#"
        use crate::error::{Error, Result};
        use crate::source::{self, archive::{self, X}, Container};
        use super::Input; // crate::scan in a comment
        /* crate::scan in a block comment */
        let s = "crate::scan in a string";
        let c = '"'; let l: &'static str = "";
        mod blob;
        fn f() { blob::RegistryContainer::new(); crate::scan::finish(); }
        #[cfg(test)]
        mod tests { use crate::scan::ScanOptions; }
        "#,
    ));
    let here = m("source::registry");
    let got: BTreeSet<Module> = referenced_paths(&code, &here, &modules)
        .iter()
        .filter_map(|p| resolve(p, &modules))
        .collect();
    let want: BTreeSet<Module> = [
        "error",
        "source",
        "source::archive",
        "source::registry::blob",
        "scan",
    ]
    .iter()
    .map(|s| m(s))
    .collect();
    assert_eq!(got, want);
}

fn m(s: &str) -> Module {
    s.split("::")
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

fn name(m: &Module) -> String {
    if m.is_empty() {
        "crate".to_owned()
    } else {
        m.join("::")
    }
}

fn is_prefix(a: &Module, b: &Module) -> bool {
    b.len() > a.len() && b[..a.len()] == a[..]
}

fn collapse(m: &Module, d: usize) -> Module {
    m[..m.len().min(d)].to_vec()
}

fn allowed(from: &Module, to: &Module) -> bool {
    let under = |x: &Module, p: &str| {
        let p = m(p);
        x == &p || is_prefix(&p, x)
    };
    ALLOWED
        .iter()
        .any(|(a, b, _)| under(from, a) && under(to, b))
}

/// Every module file of the crate: `lib.rs` is the root, `a.rs` and
/// `a/mod.rs` are `a`, `a/b.rs` is `a::b`.
fn module_files(src: &Path) -> BTreeMap<Module, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = p.strip_prefix(src).unwrap();
            let mut parts: Vec<String> = rel
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            let last = parts.pop().unwrap();
            let stem = last.trim_end_matches(".rs");
            if !(parts.is_empty() && stem == "lib" || stem == "mod") {
                parts.push(stem.to_owned());
            }
            out.insert(parts, p);
        }
    }
    out
}

/// The code with comments removed and string and character literals
/// emptied, so that braces and paths in them count for nothing.
fn strip_comments_and_strings(s: &str) -> String {
    let c: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    while i < c.len() {
        let next = c.get(i + 1).copied();
        match c[i] {
            '/' if next == Some('/') => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                let mut depth = 0;
                while i < c.len() {
                    if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                out.push(' ');
            }
            'r' | 'b' if i == 0 || !ident(c[i - 1]) => {
                // r"…", r#"…"#, br"…", b"…"
                let mut j = i + 1;
                if c[i] == 'b' && c.get(j) == Some(&'r') {
                    j += 1;
                }
                let raw = c[i] == 'r' || c.get(i + 1) == Some(&'r');
                let mut hashes = 0;
                while raw && c.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if raw && c.get(j) == Some(&'"') {
                    j += 1;
                    'scan: while j < c.len() {
                        if c[j] == '"' && (0..hashes).all(|k| c.get(j + 1 + k) == Some(&'#')) {
                            j += 1 + hashes;
                            break 'scan;
                        }
                        j += 1;
                    }
                    out.push_str("\"\"");
                    i = j;
                } else {
                    out.push(c[i]);
                    i += 1;
                }
            }
            '"' => {
                i += 1;
                while i < c.len() && c[i] != '"' {
                    if c[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                out.push_str("\"\"");
            }
            '\'' => {
                // A character literal ('x', '\n', '\u{1F600}'), or a lifetime.
                if next == Some('\\') {
                    i += 2;
                    while i < c.len() && c[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                    out.push_str("' '");
                } else if c.get(i + 2) == Some(&'\'') {
                    i += 3;
                    out.push_str("' '");
                } else {
                    out.push('\'');
                    i += 1;
                }
            }
            ch => {
                out.push(ch);
                i += 1;
            }
        }
    }
    out
}

/// The code without `#[cfg(test)] mod … { … }` items (also
/// `#[cfg(all(test, …))]`).
fn strip_test_modules(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = ["#[cfg(test)]", "#[cfg(all(test,"]
        .iter()
        .filter_map(|a| rest.find(a))
        .min()
    {
        out.push_str(&rest[..at]);
        let attr_end = rest[at..].find(']').map_or(rest.len(), |e| at + e + 1);
        let attr = &rest[at..attr_end];
        let after = &rest[attr_end..];
        let t = after.trim_start();
        if !t.starts_with("mod ") {
            out.push_str(attr);
            rest = after;
            continue;
        }
        let Some(open) = t.find(['{', ';']) else {
            return out;
        };
        if t.as_bytes()[open] == b';' {
            rest = &t[open + 1..];
            continue;
        }
        let mut depth = 0usize;
        let mut end = t.len();
        for (k, ch) in t[open..].char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &t[end..];
    }
    out.push_str(rest);
    out
}

/// Every module path the code names, made absolute: `crate::a::b`,
/// `super::b` and `child::b` (a submodule of `here`), with `{…}` groups
/// expanded.
fn referenced_paths(code: &str, here: &Module, modules: &BTreeSet<Module>) -> Vec<Vec<String>> {
    let c: Vec<char> = code.chars().collect();
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if !ident(c[i]) || (i > 0 && (ident(c[i - 1]) || c[i - 1] == '$' || c[i - 1] == ':')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < c.len() && ident(c[i]) {
            i += 1;
        }
        let word: String = c[start..i].iter().collect();
        if !(c.get(i) == Some(&':') && c.get(i + 1) == Some(&':')) {
            continue;
        }
        let base: Module = match word.as_str() {
            "crate" => Vec::new(),
            "super" => {
                let mut b = here[..here.len().saturating_sub(1)].to_vec();
                let mut j = i;
                while c[j..].starts_with(&[':', ':', 's', 'u', 'p', 'e', 'r']) {
                    b.pop();
                    j += 7;
                }
                i = j;
                b
            }
            "self" => here.clone(),
            w => {
                let mut child = here.clone();
                child.push(w.to_owned());
                if !modules.contains(&child) {
                    continue;
                }
                // Re-read the word as the first segment below `here`.
                i = start;
                let mut paths = Vec::new();
                tree(&c, &mut i, here.clone(), &mut paths);
                out.extend(paths);
                continue;
            }
        };
        i += 2;
        tree(&c, &mut i, base, &mut out);
    }
    out
}

/// Reads a use tree at `c[*i..]` below `prefix`: `a::b`, `a::{b, c::d}`,
/// `{self, x}`, `*`.
fn tree(c: &[char], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let skip_ws = |i: &mut usize| {
        while *i < c.len() && c[*i].is_whitespace() {
            *i += 1;
        }
    };
    let mut path = prefix;
    loop {
        skip_ws(i);
        match c.get(*i) {
            Some('{') => {
                *i += 1;
                loop {
                    skip_ws(i);
                    match c.get(*i) {
                        Some('}') | None => {
                            *i += 1;
                            return;
                        }
                        Some(',') => *i += 1,
                        _ => {
                            let before = *i;
                            tree(c, i, path.clone(), out);
                            // `as name` and anything unexpected.
                            while *i < c.len() && !matches!(c[*i], ',' | '}') {
                                *i += 1;
                            }
                            if *i == before {
                                *i += 1;
                            }
                        }
                    }
                }
            }
            Some('*') => {
                *i += 1;
                out.push(path);
                return;
            }
            Some(&ch) if ident(ch) => {
                let start = *i;
                while *i < c.len() && ident(c[*i]) {
                    *i += 1;
                }
                let word: String = c[start..*i].iter().collect();
                if word != "self" {
                    path.push(word);
                }
                if c.get(*i) == Some(&':') && c.get(*i + 1) == Some(&':') {
                    *i += 2;
                    continue;
                }
                out.push(path);
                return;
            }
            _ => {
                out.push(path);
                return;
            }
        }
    }
}

/// The module a path lands in: its longest prefix that is a module.
fn resolve(path: &[String], modules: &BTreeSet<Module>) -> Option<Module> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
}

/// The strongly connected components of more than one module (Tarjan).
fn cycles(graph: &BTreeMap<Module, BTreeMap<Module, String>>) -> Vec<Vec<Module>> {
    struct State<'a> {
        graph: &'a BTreeMap<Module, BTreeMap<Module, String>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on_stack: BTreeSet<&'a Module>,
        out: Vec<Vec<Module>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flat_map(BTreeMap::keys) {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                scc.push(w.clone());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                s.out.push(scc);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    let nodes: BTreeSet<&Module> = graph
        .iter()
        .flat_map(|(a, bs)| std::iter::once(a).chain(bs.keys()))
        .collect();
    for v in nodes {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}
