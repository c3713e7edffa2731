//! Platforms (`os/arch[/variant]`) and how an index entry is matched,
//! normalised as containerd does (`x86_64` is `amd64`, `aarch64` is `arm64`,
//! `arm` without a variant is `arm/v7`, `arm64/v8` is `arm64`).

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

fn normalize(os: &str, arch: &str, variant: &str) -> Platform {
    let os = match os.to_ascii_lowercase().as_str() {
        "macos" => "darwin".to_owned(),
        o => o.to_owned(),
    };
    let (arch, variant) = match (arch.to_ascii_lowercase().as_str(), variant) {
        ("x86_64" | "x86-64" | "amd64", "v1") => ("amd64".to_owned(), String::new()),
        ("x86_64" | "x86-64", v) => ("amd64".to_owned(), v.to_owned()),
        ("aarch64" | "arm64", "8" | "v8") => ("arm64".to_owned(), String::new()),
        ("aarch64", v) => ("arm64".to_owned(), v.to_owned()),
        ("armhf", _) => ("arm".to_owned(), "v7".to_owned()),
        ("armel", _) => ("arm".to_owned(), "v6".to_owned()),
        ("arm", "") => ("arm".to_owned(), "v7".to_owned()),
        ("arm", v) if !v.starts_with('v') => ("arm".to_owned(), format!("v{v}")),
        ("i386" | "i486" | "i586" | "i686", v) => ("386".to_owned(), v.to_owned()),
        (a, v) => (a.to_owned(), v.to_owned()),
    };
    Platform {
        os,
        architecture: arch,
        variant,
    }
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

    /// Whether an index entry's platform satisfies this one. A wanted empty
    /// variant accepts any variant of the architecture.
    pub fn matches(&self, other: &Self) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_empty() || self.variant == other.variant)
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
        assert!(!want.matches(&Platform::new("linux", "arm", Some("v6"))));
        let any = Platform::parse("linux/amd64").unwrap();
        assert!(any.matches(&Platform::new("linux", "amd64", Some("v3"))));
    }
}
