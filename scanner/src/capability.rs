//! Decoding the `security.capability` extended attribute (`vfs_cap_data`).
//!
//! Layout (linux `include/uapi/linux/capability.h`, all little-endian u32):
//! `magic_etc`, then `permitted`/`inheritable` pairs, one pair for revision 1
//! (12 bytes), two for revisions 2 (20 bytes) and 3 (24 bytes, plus `rootid`).
//! The kernel (`security/commoncap.c`) rejects any other size for a revision,
//! and so do we: a malformed value is reported as such, never guessed at.

use base64::Engine as _;

const REVISION_MASK: u32 = 0xFF00_0000;
const FLAG_EFFECTIVE: u32 = 0x0000_0001;

/// Capability names by number (`CAP_LAST_CAP` is 40 in mainline Linux).
pub const NAMES: [&str; 41] = [
    "cap_chown",
    "cap_dac_override",
    "cap_dac_read_search",
    "cap_fowner",
    "cap_fsetid",
    "cap_kill",
    "cap_setgid",
    "cap_setuid",
    "cap_setpcap",
    "cap_linux_immutable",
    "cap_net_bind_service",
    "cap_net_broadcast",
    "cap_net_admin",
    "cap_net_raw",
    "cap_ipc_lock",
    "cap_ipc_owner",
    "cap_sys_module",
    "cap_sys_rawio",
    "cap_sys_chroot",
    "cap_sys_ptrace",
    "cap_sys_pacct",
    "cap_sys_admin",
    "cap_sys_boot",
    "cap_sys_nice",
    "cap_sys_resource",
    "cap_sys_time",
    "cap_sys_tty_config",
    "cap_mknod",
    "cap_lease",
    "cap_audit_write",
    "cap_audit_control",
    "cap_setfcap",
    "cap_mac_override",
    "cap_mac_admin",
    "cap_syslog",
    "cap_wake_alarm",
    "cap_block_suspend",
    "cap_audit_read",
    "cap_perfmon",
    "cap_bpf",
    "cap_checkpoint_restore",
];

/// Capabilities that amount to root (a process holding one can become root or
/// do what root does).
pub const ROOT_EQUIVALENT: &[&str] = &[
    "cap_sys_admin",
    "cap_sys_ptrace",
    "cap_sys_module",
    "cap_dac_override",
    "cap_dac_read_search",
    "cap_setuid",
    "cap_setgid",
    "cap_setfcap",
    "cap_setpcap",
    "cap_chown",
    "cap_fowner",
    "cap_sys_rawio",
    "cap_bpf",
];

/// The bounding set Docker and containerd give a container by default
/// (moby `oci/caps/defaults.go` `DefaultCapabilities`, containerd
/// `pkg/oci/spec.go` `defaultUnixCaps`); podman drops `cap_net_raw`,
/// `cap_mknod` and `cap_audit_write` from it.
pub const DOCKER_DEFAULT: &[&str] = &[
    "cap_chown",
    "cap_dac_override",
    "cap_fsetid",
    "cap_fowner",
    "cap_mknod",
    "cap_net_raw",
    "cap_setgid",
    "cap_setuid",
    "cap_setfcap",
    "cap_setpcap",
    "cap_net_bind_service",
    "cap_sys_chroot",
    "cap_kill",
    "cap_audit_write",
];

/// Powerful capabilities short of root.
pub const DANGEROUS: &[&str] = &[
    "cap_net_admin",
    "cap_sys_chroot",
    "cap_sys_boot",
    "cap_sys_time",
    "cap_sys_nice",
    "cap_sys_resource",
    "cap_sys_tty_config",
    "cap_mknod",
    "cap_kill",
    "cap_ipc_owner",
    "cap_linux_immutable",
    "cap_audit_control",
    "cap_mac_admin",
    "cap_mac_override",
    "cap_syslog",
    "cap_perfmon",
    "cap_checkpoint_restore",
    "cap_fsetid",
    "cap_sys_pacct",
    "cap_lease",
];

/// The name of capability number `n` (`cap_<n>` for numbers past the table).
pub fn name(n: u32) -> String {
    NAMES
        .get(n as usize)
        .map_or_else(|| format!("cap_{n}"), |s| (*s).to_owned())
}

/// A decoded `security.capability` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCaps {
    /// 1, 2 or 3.
    pub revision: u8,
    /// Whether the effective flag is set (`=ep` rather than `=p`).
    pub effective: bool,
    /// Permitted set, bit n = capability n.
    pub permitted: u64,
    /// Inheritable set.
    pub inheritable: u64,
    /// Revision 3 only: the uid of the user-namespace root the caps apply to.
    pub rootid: Option<u32>,
}

impl FileCaps {
    /// Decodes the raw xattr bytes.
    pub fn parse(raw: &[u8]) -> Result<Self, String> {
        let word = |i: usize| -> u32 {
            u32::from_le_bytes([raw[i * 4], raw[i * 4 + 1], raw[i * 4 + 2], raw[i * 4 + 3]])
        };
        if raw.len() < 4 {
            return Err(format!("{} bytes, too short for vfs_cap_data", raw.len()));
        }
        let magic = word(0);
        let (revision, want) = match magic & REVISION_MASK {
            0x0100_0000 => (1, 12),
            0x0200_0000 => (2, 20),
            0x0300_0000 => (3, 24),
            other => return Err(format!("unknown revision 0x{:08x}", other)),
        };
        if raw.len() != want {
            return Err(format!(
                "revision {revision} needs {want} bytes, found {}",
                raw.len()
            ));
        }
        let mut permitted = u64::from(word(1));
        let mut inheritable = u64::from(word(2));
        if revision >= 2 {
            permitted |= u64::from(word(3)) << 32;
            inheritable |= u64::from(word(4)) << 32;
        }
        Ok(Self {
            revision,
            effective: magic & FLAG_EFFECTIVE != 0,
            permitted,
            inheritable,
            rootid: (revision == 3).then(|| word(5)),
        })
    }

    /// Lowercase names of every permitted or inheritable capability, by number.
    pub fn names(&self) -> Vec<String> {
        let all = self.permitted | self.inheritable;
        (0..64).filter(|b| all & (1 << b) != 0).map(name).collect()
    }

    /// Lowercase names of the permitted capabilities.
    pub fn permitted_names(&self) -> Vec<String> {
        (0..64)
            .filter(|b| self.permitted & (1 << b) != 0)
            .map(name)
            .collect()
    }

    /// `getcap`-style text: `cap_net_raw=ep`.
    pub fn getcap_text(&self) -> String {
        let p = names_of(self.permitted);
        let i = names_of(self.inheritable);
        let e = if self.effective { "e" } else { "" };
        match (p.is_empty(), i.is_empty()) {
            (true, true) => "=".to_owned(),
            (false, true) => format!("{}={e}p", p.join(",")),
            (true, false) => format!("{}=i", i.join(",")),
            (false, false) if p == i => format!("{}={e}ip", p.join(",")),
            (false, false) => format!("{}={e}p {}+i", p.join(","), i.join(",")),
        }
    }
}

fn names_of(bits: u64) -> Vec<String> {
    (0..64).filter(|b| bits & (1 << b) != 0).map(name).collect()
}

/// Decodes a `LIBARCHIVE.xattr.*` value: base64 with or without `=` padding.
pub fn decode_libarchive_base64(value: &[u8]) -> Option<Vec<u8>> {
    let trimmed: Vec<u8> = value
        .iter()
        .copied()
        .filter(|b| *b != b'=' && !b.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(&trimmed)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_net_raw_bind_ep() {
        // setcap cap_net_raw,cap_net_bind_service+ep (the textual form of libcap's cap_from_text(3))
        let raw = [
            1, 0, 0, 2, 0, 0x24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let c = FileCaps::parse(&raw).unwrap();
        assert_eq!(c.revision, 2);
        assert!(c.effective);
        assert_eq!(c.names(), ["cap_net_bind_service", "cap_net_raw"]);
        assert_eq!(c.getcap_text(), "cap_net_bind_service,cap_net_raw=ep");
        assert_eq!(c.rootid, None);
    }

    #[test]
    fn v1_and_v3() {
        let v1 = [0, 0, 0, 1, 0x80, 0, 0, 0, 0, 0, 0, 0];
        let c = FileCaps::parse(&v1).unwrap();
        assert_eq!((c.revision, c.effective), (1, false));
        assert_eq!(c.names(), ["cap_setuid"]);
        let mut v3 = vec![1, 0, 0, 3, 0, 0, 0x20, 0, 0, 0, 0, 0];
        v3.extend_from_slice(&[0, 1, 0, 0]); // permitted hi: bit 40 (8 of hi word) -> cap_checkpoint_restore
        v3.extend_from_slice(&[0, 0, 0, 0]);
        v3.extend_from_slice(&1000u32.to_le_bytes());
        let c = FileCaps::parse(&v3).unwrap();
        assert_eq!(c.revision, 3);
        assert_eq!(c.rootid, Some(1000));
        assert_eq!(c.names(), ["cap_sys_admin", "cap_checkpoint_restore"]);
    }

    #[test]
    fn malformed() {
        assert!(FileCaps::parse(&[1, 2]).is_err());
        assert!(FileCaps::parse(&[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(FileCaps::parse(&[0, 0, 0, 9, 0, 0, 0, 0]).is_err());
        assert_eq!(name(50), "cap_50");
    }

    #[test]
    fn libarchive_base64_with_and_without_padding() {
        let want = vec![
            1, 0, 0, 2, 0, 0x24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(
            decode_libarchive_base64(b"AQAAAgAkAAAAAAAAAAAAAAAAAAA").unwrap(),
            want
        );
        assert_eq!(
            decode_libarchive_base64(b"AQAAAgAkAAAAAAAAAAAAAAAAAAA=").unwrap(),
            want
        );
        assert!(decode_libarchive_base64(b"!!!").is_none());
    }
}
