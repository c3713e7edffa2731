//! Platforms (`os/arch[/variant]`) and how an index entry is matched and
//! ranked.
//!
//! # Runtime fidelity
//!
//! Both follow containerd's `platforms` package (which moby, nerdctl and
//! the CRI use to pick from an index):
//!
//! - Normalisation is `Normalize` (`database.go` `normalizeArch`): os and
//!   arch lowercased, `macos` is `darwin`, `x86_64`/`x86-64` are `amd64`
//!   and `amd64/v1` is plain `amd64`, `aarch64` is `arm64`, `arm64/v8`
//!   (`8`, `v8.0`) is plain `arm64` and `arm64/9` is `arm64/v9`, `armhf` is
//!   `arm/v7`, `armel` is `arm/v6`, `arm` without a variant (or `7`) is
//!   `arm/v7` and `arm/5`, `6`, `8` get their `v`; `i386` is `386`.
//! - Matching and ranking is `Only` (`compare.go` `platformVector`): the
//!   wanted platform first, then what it can also run, best first:
//!   `amd64/vN` takes `amd64/vN-1` ... `amd64` (v1), then `386`; `arm/vN`
//!   takes `arm/vN-1` ... `arm/v5`; `arm64/v9.x` takes `v9.x-1` ...
//!   `v9`, `v8.x+5` ... `v8`, and `arm64` takes `arm/v8` ... `arm/v5`.
//!   Variants must be equal: a wanted plain `amd64` (what containerd asks
//!   for on any amd64 host: it detects variants on ARM only) does not take
//!   `amd64/v3`. Among index entries the best-ranked one wins, the first in
//!   index order on a tie (containerd sorts with `sort.SliceStable`).

use std::fmt;

use crate::error::{Error, Result};

/// An `os/arch[/variant]` triple, normalised.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    /// Operating system (`linux`).
    pub os: String,
    /// Architecture (`amd64`, `arm64`, ...).
    pub architecture: String,
    /// Variant (`v7`), empty when none.
    pub variant: String,
}

/// containerd's `Normalize` for os, architecture and variant.
fn normalize(os: &str, arch: &str, variant: &str) -> Platform {
    let os = match os.to_ascii_lowercase().as_str() {
        "macos" => "darwin".to_owned(),
        o => o.to_owned(),
    };
    let arch = arch.to_ascii_lowercase();
    let variant = variant.to_ascii_lowercase();
    let (arch, variant) = match arch.as_str() {
        "i386" => ("386".to_owned(), String::new()),
        "x86_64" | "x86-64" | "amd64" => (
            "amd64".to_owned(),
            if variant == "v1" {
                String::new()
            } else {
                variant
            },
        ),
        "aarch64" | "arm64" => (
            "arm64".to_owned(),
            match variant.as_str() {
                "8" | "v8" | "v8.0" => String::new(),
                "9" | "9.0" | "v9.0" => "v9".to_owned(),
                _ => variant,
            },
        ),
        "armhf" => ("arm".to_owned(), "v7".to_owned()),
        "armel" => ("arm".to_owned(), "v6".to_owned()),
        "arm" => (
            "arm".to_owned(),
            match variant.as_str() {
                "" | "7" => "v7".to_owned(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            },
        ),
        _ => (arch, variant),
    };
    Platform {
        os,
        architecture: arch,
        variant,
    }
}

/// `strconv.Atoi(strings.TrimPrefix(v, "v"))` for the small numbers of
/// variants (`None` when it is not one).
fn variant_number(v: &str) -> Option<i64> {
    let n = v.strip_prefix('v').unwrap_or(v);
    let digits = n.strip_prefix(['+', '-']).unwrap_or(n);
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// containerd's `arm64variantToVersion`: the majors and, for each, the
/// highest minor an `arm64` variant can also run.
fn arm64_versions(variant: &str) -> Option<&'static [(u32, u32)]> {
    Some(match variant {
        "v8" | "v8.0" => &[(8, 0)],
        "v8.1" => &[(8, 1)],
        "v8.2" => &[(8, 2)],
        "v8.3" => &[(8, 3)],
        "v8.4" => &[(8, 4)],
        "v8.5" => &[(8, 5)],
        "v8.6" => &[(8, 6)],
        "v8.7" => &[(8, 7)],
        "v8.8" => &[(8, 8)],
        "v8.9" => &[(8, 9)],
        "v9" | "v9.0" => &[(9, 0), (8, 5)],
        "v9.1" => &[(9, 1), (8, 6)],
        "v9.2" => &[(9, 2), (8, 7)],
        "v9.3" => &[(9, 3), (8, 8)],
        "v9.4" => &[(9, 4), (8, 9)],
        "v9.5" => &[(9, 5), (8, 9)],
        "v9.6" => &[(9, 6), (8, 9)],
        "v9.7" => &[(9, 7), (8, 9)],
        _ => return None,
    })
}

impl Platform {
    /// A normalised platform from its parts.
    pub fn new(os: &str, arch: &str, variant: Option<&str>) -> Self {
        normalize(os, arch, variant.unwrap_or(""))
    }

    /// Parses `os/arch[/variant]` (or just `arch`, meaning linux).
    pub fn parse(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [arch] if !arch.is_empty() => Ok(normalize("linux", arch, "")),
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(normalize(os, arch, "")),
            [os, arch, v] if !os.is_empty() && !arch.is_empty() => Ok(normalize(os, arch, v)),
            _ => Err(Error::Usage(format!(
                "bad platform `{s}`: expected os/arch[/variant], such as linux/amd64 or linux/arm/v7"
            ))),
        }
    }

    /// `linux/<this machine's architecture>`.
    pub fn host_default() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            other => other,
        };
        normalize("linux", arch, "")
    }

    /// What this wanted platform runs, best first: containerd's
    /// `platformVector` (each entry normalised, as `NewMatcher` does).
    fn vector(&self) -> Vec<Self> {
        let with = |arch: &str, variant: &str| normalize(&self.os, arch, variant);
        let mut v = vec![self.clone()];
        match self.architecture.as_str() {
            "amd64" => {
                if let Some(n) = variant_number(&self.variant).filter(|n| *n > 1) {
                    // Bounded: nobody needs 2^63 entries to be told no.
                    for k in (1..n).rev().take(64) {
                        v.push(with("amd64", &format!("v{k}")));
                    }
                }
                v.push(with("386", ""));
            }
            "arm" => {
                if let Some(n) = variant_number(&self.variant).filter(|n| *n > 5) {
                    for k in (5..n).rev().take(64) {
                        v.push(with("arm", &format!("v{k}")));
                    }
                }
            }
            "arm64" => {
                let variant = if self.variant.is_empty() {
                    "v8"
                } else {
                    self.variant.as_str()
                };
                v.clear();
                let Some(versions) = arm64_versions(variant) else {
                    return v;
                };
                for &(major, max_minor) in versions {
                    for minor in (0..=max_minor).rev() {
                        let var = if minor == 0 {
                            format!("v{major}")
                        } else {
                            format!("v{major}.{minor}")
                        };
                        v.push(with("arm64", &var));
                    }
                }
                // Every arm64/v8.x and v9.x runs arm/v8 and below.
                v.extend(with("arm", "v8").vector());
            }
            _ => {}
        }
        v
    }

    /// How well an index entry's platform fits this wanted one, as
    /// containerd's `Only` ranks it: 0 is the wanted platform itself,
    /// higher is a worse fallback, `None` is not a match.
    pub fn rank(&self, other: &Self) -> Option<usize> {
        let other = normalize(&other.os, &other.architecture, &other.variant);
        self.vector().iter().position(|p| *p == other)
    }

    /// Whether an index entry's platform satisfies this one.
    pub fn matches(&self, other: &Self) -> bool {
        self.rank(other).is_some()
    }

    /// The best-ranked of `entries` (those with a platform that matches),
    /// the first in order on a tie, as containerd picks from an index.
    pub fn best<T>(&self, entries: impl IntoIterator<Item = (T, Option<Self>)>) -> Option<T> {
        let vector = self.vector();
        entries
            .into_iter()
            .filter_map(|(t, p)| {
                let p = p?;
                let p = normalize(&p.os, &p.architecture, &p.variant);
                vector.iter().position(|v| *v == p).map(|r| (r, t))
            })
            // `min_by_key` keeps the first of equal keys.
            .min_by_key(|(r, _)| *r)
            .map(|(_, t)| t)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("linux/arm").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64"
        );
        assert_eq!(Platform::parse("arm64").unwrap().to_string(), "linux/arm64");
        assert!(Platform::parse("a/b/c/d").is_err());
        assert!(Platform::parse("").is_err());
    }

    #[test]
    fn matching() {
        let want = Platform::parse("linux/arm").unwrap();
        assert!(want.matches(&Platform::new("linux", "arm", Some("v7"))));
        assert!(want.matches(&Platform::new("linux", "arm", Some("v6"))));
        assert!(!want.matches(&Platform::new("linux", "arm", Some("v8"))));
        let amd64 = Platform::parse("linux/amd64").unwrap();
        assert!(!amd64.matches(&Platform::new("linux", "amd64", Some("v3"))));
        assert!(amd64.matches(&Platform::new("linux", "amd64", Some("v1"))));
        assert!(amd64.matches(&Platform::new("linux", "386", None)));
        assert!(!amd64.matches(&Platform::new("windows", "amd64", None)));
    }

    /// Normalisation is containerd's `Normalize`, not more.
    #[test]
    fn normalises_as_containerd() {
        for (os, arch, variant, want) in [
            ("Linux", "AMD64", "V1", "linux/amd64"),
            ("linux", "aarch64", "v8.0", "linux/arm64"),
            ("linux", "arm64", "9", "linux/arm64/v9"),
            ("linux", "arm", "5", "linux/arm/v5"),
            ("linux", "arm", "9", "linux/arm/9"),
            ("linux", "i386", "x", "linux/386"),
            ("linux", "i686", "", "linux/i686"),
        ] {
            assert_eq!(
                Platform::new(os, arch, Some(variant)).to_string(),
                want,
                "{os}/{arch}/{variant}"
            );
        }
    }

    /// containerd's compatibility orders (`platformVector`).
    #[test]
    fn ranks_follow_containerd_only() {
        let order = |want: &str| -> Vec<String> {
            Platform::parse(want)
                .unwrap()
                .vector()
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(order("linux/amd64"), ["linux/amd64", "linux/386"]);
        assert_eq!(
            order("linux/amd64/v4"),
            [
                "linux/amd64/v4",
                "linux/amd64/v3",
                "linux/amd64/v2",
                "linux/amd64",
                "linux/386"
            ]
        );
        assert_eq!(
            order("linux/arm/v8"),
            [
                "linux/arm/v8",
                "linux/arm/v7",
                "linux/arm/v6",
                "linux/arm/v5"
            ]
        );
        assert_eq!(order("linux/arm/v5"), ["linux/arm/v5"]);
        assert_eq!(
            order("linux/arm64"),
            [
                "linux/arm64",
                "linux/arm/v8",
                "linux/arm/v7",
                "linux/arm/v6",
                "linux/arm/v5"
            ]
        );
        let v92 = order("linux/arm64/v9.2");
        assert_eq!(
            v92[..5],
            [
                "linux/arm64/v9.2",
                "linux/arm64/v9.1",
                "linux/arm64/v9",
                "linux/arm64/v8.7",
                "linux/arm64/v8.6"
            ]
        );
        assert_eq!(v92[10], "linux/arm64");
        assert_eq!(v92[11], "linux/arm/v8");
        // An unknown arm64 variant runs nothing, as in containerd.
        assert!(order("linux/arm64/v7").is_empty());
        assert_eq!(
            order("linux/amd64/v99999999999999999999"),
            ["linux/amd64/v99999999999999999999", "linux/386"]
        );
    }

    /// The best-ranked entry wins, whatever the index order; plain amd64
    /// over amd64/v3 when no variant is asked.
    #[test]
    fn best_entry_whatever_the_order() {
        let p = |s: &str| Some(Platform::parse(s).unwrap());
        let entries = [
            ("v3", p("linux/amd64/v3")),
            ("386", p("linux/386")),
            ("none", None),
            ("v2", p("linux/amd64/v2")),
            ("plain", p("linux/amd64")),
            ("arm", p("linux/arm64")),
        ];
        let pick = |want: &str, order: &[usize]| {
            Platform::parse(want)
                .unwrap()
                .best(order.iter().map(|&i| entries[i].clone()))
        };
        for order in [[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0], [1, 3, 0, 5, 2, 4]] {
            assert_eq!(pick("linux/amd64", &order), Some("plain"), "{order:?}");
            assert_eq!(pick("linux/amd64/v3", &order), Some("v3"), "{order:?}");
            assert_eq!(pick("linux/amd64/v4", &order), Some("v3"), "{order:?}");
            assert_eq!(pick("linux/arm64", &order), Some("arm"), "{order:?}");
            assert_eq!(pick("linux/386", &order), Some("386"), "{order:?}");
        }
        // Without plain amd64, amd64 falls back to 386, not to v2 or v3.
        assert_eq!(pick("linux/amd64", &[0, 3, 1]), Some("386"));
        assert_eq!(pick("linux/amd64/v3", &[1, 3]), Some("v2"));
        assert_eq!(pick("linux/amd64", &[0, 3]), None);
        // Ties keep index order.
        let tie = [("a", p("linux/arm/v7")), ("b", p("linux/arm/7"))];
        assert_eq!(Platform::parse("linux/arm").unwrap().best(tie), Some("a"));
    }
}
