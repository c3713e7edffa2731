//! Hardening derived from the image: the runtime settings that close its
//! paths to root, with the numbers they need from the image itself, and
//! what each one breaks in it (`imgscan harden`, the report's `hardening`).
//!
//! Facts used: Kubernetes' `runAsNonRoot` refuses a non-numeric image
//! `USER` (kubelet `kuberuntime_container.go`: "image has non-numeric user
//! (NAME), cannot verify user is non-root"), so the user is given as the
//! uid the image's own passwd resolves; no_new_privs makes set-id bits and
//! file capabilities give nothing at exec (prctl(2)); an empty bounding set
//! makes a file with effective capabilities fail to exec
//! (capabilities(7)); Docker and podman set
//! `net.ipv4.ip_unprivileged_port_start=0` in a container's own network
//! namespace (moby#41030), Kubernetes does not, so a non-root listener
//! below 1024 needs `NET_BIND_SERVICE` there. The Pod Security Standards
//! *restricted* profile (kubernetes.io/docs/concepts/security/pod-security-standards)
//! requires `runAsNonRoot: true`, `allowPrivilegeEscalation: false`,
//! `capabilities.drop: [ALL]` with only `NET_BIND_SERVICE` added back, and a
//! `RuntimeDefault` or `Localhost` seccomp profile.

use crate::capability::FileCaps;
use crate::config::ImageConfig;
use crate::fs::{FinalFs, Inventory};
use crate::model::{Closer, Escalation, Hardening, HardeningSetting, Resolution, Restricted};

/// The `PATH` runtimes use when the config sets none (moby's default).
const DEFAULT_PATH: &[&str] = &[
    "usr/local/sbin",
    "usr/local/bin",
    "usr/sbin",
    "usr/bin",
    "sbin",
    "bin",
];

/// Names for a list in a sentence: `a, b, c and 4 more`.
fn some(names: &[String]) -> String {
    const SHOWN: usize = 4;
    let mut s = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

/// The entrypoint's program (first word of Entrypoint + Cmd), resolved in
/// the image: `(path, its file capabilities)`.
fn entrypoint(fs: &FinalFs, config: &ImageConfig) -> Option<(String, Option<FileCaps>)> {
    let prog = config.entrypoint.iter().chain(&config.cmd).next()?;
    let candidates: Vec<String> = if prog.contains('/') {
        vec![prog.trim_start_matches('/').to_owned()]
    } else {
        DEFAULT_PATH.iter().map(|d| format!("{d}/{prog}")).collect()
    };
    candidates.iter().find_map(|c| {
        let (path, node) = fs.resolve(c)?;
        node.is_regular().then(|| {
            let caps = node
                .caps()
                .and_then(|raw| FileCaps::parse(raw).ok())
                .filter(|c| c.effective && c.rootid.is_none_or(|r| r == 0));
            (path, caps)
        })
    })
}

/// The exposed TCP/UDP ports below 1024.
fn low_ports(config: &ImageConfig) -> Vec<String> {
    config
        .exposed_ports
        .iter()
        .filter(|p| {
            p.split('/')
                .next()
                .and_then(|n| n.parse::<u16>().ok())
                .is_some_and(|n| n < 1024)
        })
        .cloned()
        .collect()
}

/// The fingerprints of the paths `closer` closes.
fn closes(e: &Escalation, closer: Closer) -> Vec<String> {
    e.paths
        .iter()
        .filter(|p| p.closed_by.contains(&closer))
        .map(|p| p.fingerprint.clone())
        .collect()
}

/// Derives the hardening for an image.
pub fn derive(
    fs: &FinalFs,
    config: &ImageConfig,
    inventory: &Inventory<'_>,
    e: &Escalation,
) -> Hardening {
    let u = &e.runtime_user;
    let mut h = Hardening::default();
    let non_root = u.resolution == Resolution::User;
    if non_root {
        h.run_as_user = u.uid;
        h.run_as_group = u.gid;
    }
    let setuid: Vec<String> = inventory
        .select(|_, n| n.is_regular() && n.uid == 0 && n.mode & 0o4000 != 0)
        .into_iter()
        .map(|(p, _)| format!("/{p}"))
        .collect();
    let with_caps: Vec<String> = inventory
        .select(|_, n| n.is_regular() && n.caps().is_some())
        .into_iter()
        .map(|(p, _)| format!("/{p}"))
        .collect();
    let entry = entrypoint(fs, config);

    // Capabilities to add back: the entrypoint's own file capabilities,
    // and NET_BIND_SERVICE for a non-root listener below 1024 (Kubernetes).
    let mut add: Vec<String> = Vec::new();
    let mut add_why: Vec<String> = Vec::new();
    if let Some((path, Some(caps))) = &entry {
        for c in caps.permitted_names() {
            add.push(c.trim_start_matches("cap_").to_uppercase());
        }
        add_why.push(format!(
            "the entrypoint /{path} has file capabilities {}: without them in the bounding \
             set its exec fails with EPERM",
            caps.getcap_text()
        ));
    }
    let low = low_ports(config);
    if non_root && !low.is_empty() {
        add.push("NET_BIND_SERVICE".to_owned());
        add_why.push(format!(
            "the image exposes {} and runs as a non-root user: Kubernetes gives no \
             unprivileged low ports (Docker and podman do, in the container's own network \
             namespace)",
            low.join(", ")
        ));
    }
    add.sort();
    add.dedup();
    h.add_capabilities = add.clone();

    // 1. The user.
    let user_setting = match u.resolution {
        Resolution::User => {
            let uid = u.uid.unwrap_or(0);
            let gid = u.gid.unwrap_or(0);
            let raw = u.user.as_deref().unwrap_or("");
            let mut why = match &u.name {
                Some(name) => format!(
                    "the image's User `{raw}` is {name}, uid {uid} and gid {gid} in its own \
                     /etc/passwd; Kubernetes needs the numbers"
                ),
                None => format!(
                    "the image's User `{raw}` has no /etc/passwd entry: it runs as uid {uid} \
                     with gid {gid} (runc's default); Kubernetes needs the numbers"
                ),
            };
            if u.user.as_deref().is_some_and(|s| s.parse::<u32>().is_err()) {
                why.push_str(
                    " (runAsNonRoot alone refuses a non-numeric USER: \"cannot verify user is \
                     non-root\")",
                );
            }
            HardeningSetting {
                setting: "non-root-user".into(),
                kubernetes: vec![
                    format!("runAsUser: {uid}"),
                    format!("runAsGroup: {gid}"),
                    "runAsNonRoot: true".into(),
                ],
                docker: vec![format!("--user {uid}:{gid}")],
                why,
                breaks: if gid == 0 {
                    vec!["nothing new, but gid 0 makes files of group root writable to the process: give the user its own group".into()]
                } else {
                    Vec::new()
                },
                closes: closes(e, Closer::NonRootUser),
            }
        }
        Resolution::Root => HardeningSetting {
            setting: "non-root-user".into(),
            kubernetes: vec!["runAsNonRoot: true".into()],
            docker: Vec::new(),
            why: "the image runs as root: give it a numeric non-root USER (or set runAsUser and \
                  --user to a uid it works with); until then runAsNonRoot keeps the container \
                  from starting"
                .into(),
            breaks: vec![
                "whatever the entrypoint does as root: binding ports below 1024 outside \
                 Docker, writing root-owned files, changing users"
                    .into(),
            ],
            closes: closes(e, Closer::NonRootUser),
        },
        Resolution::WillNotStart => HardeningSetting {
            setting: "non-root-user".into(),
            kubernetes: Vec::new(),
            docker: Vec::new(),
            why: format!(
                "the container does not start: {}",
                u.reason.as_deref().unwrap_or("its User does not resolve")
            ),
            breaks: Vec::new(),
            closes: Vec::new(),
        },
    };
    h.settings.push(user_setting);

    // 2. no_new_privs.
    let mut breaks = Vec::new();
    if !setuid.is_empty() {
        let named: Vec<&str> = ["sudo", "su"]
            .into_iter()
            .filter(|n| setuid.iter().any(|p| p.rsplit('/').next() == Some(*n)))
            .collect();
        breaks.push(format!(
            "setuid programs run without their privilege: {}{}",
            some(&setuid),
            match named.as_slice() {
                [] => String::new(),
                [one] => format!(" ({one} stops working)"),
                _ => " (sudo and su stop working)".to_owned(),
            }
        ));
    }
    if !with_caps.is_empty() {
        breaks.push(format!(
            "file capabilities are not granted at exec: {}",
            some(&with_caps)
        ));
    }
    h.settings.push(HardeningSetting {
        setting: "no-new-privileges".into(),
        kubernetes: vec!["allowPrivilegeEscalation: false".into()],
        docker: vec!["--security-opt no-new-privileges".into()],
        why: "set-user-ID bits and file capabilities then give nothing at exec".into(),
        breaks,
        closes: closes(e, Closer::NoNewPrivileges),
    });

    // 3. Capabilities.
    let mut kube = vec!["capabilities:".to_owned(), "  drop: [ALL]".to_owned()];
    let mut docker = vec!["--cap-drop ALL".to_owned()];
    if !add.is_empty() {
        kube.push(format!("  add: [{}]", add.join(", ")));
        docker.extend(add.iter().map(|c| format!("--cap-add {c}")));
    }
    let mut breaks = Vec::new();
    let others: Vec<String> = with_caps
        .iter()
        .filter(|p| {
            entry
                .as_ref()
                .is_none_or(|(e, _)| p.trim_start_matches('/') != e)
        })
        .cloned()
        .collect();
    if !others.is_empty() {
        breaks.push(format!(
            "programs with file capabilities fail to start: {}",
            some(&others)
        ));
    }
    if u.resolution == Resolution::Root {
        breaks.push(
            "root in the container can no longer chown, bypass file permissions or bind low ports"
                .into(),
        );
    }
    h.settings.push(HardeningSetting {
        setting: "cap-drop-all".into(),
        kubernetes: kube,
        docker,
        why: if add_why.is_empty() {
            "the entrypoint needs no capability imgscan can see".into()
        } else {
            add_why.join("; ")
        },
        breaks,
        closes: closes(e, Closer::CapDropAll),
    });

    // 4. seccomp.
    h.settings.push(HardeningSetting {
        setting: "seccomp-runtime-default".into(),
        kubernetes: vec!["seccompProfile:".into(), "  type: RuntimeDefault".into()],
        docker: Vec::new(),
        why: "Kubernetes runs containers unconfined unless asked; Docker and podman apply \
              their default profile already"
            .into(),
        breaks: Vec::new(),
        closes: Vec::new(),
    });

    // 5. Read-only root.
    let mut writable = vec!["/tmp".to_owned()];
    writable.extend(config.volumes.iter().cloned());
    writable.sort();
    writable.dedup();
    h.writable_paths = writable.clone();
    let mut breaks = vec![format!("writes outside {} fail", writable.join(", "))];
    if let Some(home) = u.home.as_deref().filter(|h| *h != "/" && !h.is_empty())
        && fs.resolve(home.trim_start_matches('/')).is_some()
        && !writable.iter().any(|w| home.starts_with(w.as_str()))
    {
        breaks.push(format!("the user's home {home} is read-only"));
    }
    let mut docker = vec!["--read-only".to_owned(), "--tmpfs /tmp".to_owned()];
    docker.extend(config.volumes.iter().map(|v| format!("-v <volume>:{v}")));
    h.settings.push(HardeningSetting {
        setting: "read-only-rootfs".into(),
        kubernetes: vec!["readOnlyRootFilesystem: true".into()],
        docker,
        why: "a write to an account, sudo or loader file cannot happen; /tmp and the image's \
              VOLUMEs get their own mounts"
            .into(),
        breaks,
        closes: closes(e, Closer::ReadOnlyRootfs),
    });

    // The restricted profile.
    let mut reasons = Vec::new();
    match u.resolution {
        Resolution::Root => reasons.push(
            "the image runs as root: restricted requires runAsNonRoot, so it needs a non-root \
             runAsUser the image works with"
                .to_owned(),
        ),
        Resolution::WillNotStart => reasons.push(
            u.reason
                .clone()
                .unwrap_or_else(|| "the container does not start".into()),
        ),
        Resolution::User => {}
    }
    let beyond: Vec<&String> = add.iter().filter(|c| *c != "NET_BIND_SERVICE").collect();
    if !beyond.is_empty() {
        reasons.push(format!(
            "the entrypoint needs {}, and restricted allows adding only NET_BIND_SERVICE",
            beyond
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    h.pod_security_restricted = Restricted {
        allowed: reasons.is_empty(),
        reasons,
    };
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::packages::test_support::*;
    use crate::checks::{escalation, identity};

    fn harden(fs: &FinalFs, config: &ImageConfig) -> Hardening {
        let acc = crate::checks::accounts::Accounts::load(fs, &mut Vec::new()).unwrap();
        let user = identity::runtime_user(config, &acc);
        derive(
            fs,
            config,
            &Inventory::of(fs),
            &escalation::escalation(user, &[]),
        )
    }

    #[test]
    fn numeric_user_from_passwd_and_low_ports() {
        let fs = fs_of(vec![vec![
            text(
                "etc/passwd",
                "root:x:0:0::/root:/bin/sh\nweb:x:101:101::/var/www:/bin/sh\n",
            ),
            file("usr/bin/su", 0o4755),
            file("usr/sbin/nginx", 0o755),
        ]]);
        let config = ImageConfig {
            user: Some("web".into()),
            exposed_ports: vec!["80/tcp".into(), "8443/tcp".into()],
            entrypoint: vec!["nginx".into()],
            volumes: vec!["/var/cache/nginx".into()],
            ..ImageConfig::default()
        };
        let h = harden(&fs, &config);
        assert_eq!((h.run_as_user, h.run_as_group), (Some(101), Some(101)));
        assert_eq!(h.add_capabilities, ["NET_BIND_SERVICE"]);
        assert_eq!(h.writable_paths, ["/tmp", "/var/cache/nginx"]);
        assert!(h.pod_security_restricted.allowed);
        let nnp = h
            .settings
            .iter()
            .find(|s| s.setting == "no-new-privileges")
            .unwrap();
        assert!(nnp.breaks[0].contains("/usr/bin/su"), "{:?}", nnp.breaks);
        let user = &h.settings[0];
        assert!(user.why.contains("non-numeric"), "{}", user.why);
    }

    #[test]
    fn root_image_is_not_restricted() {
        let fs = fs_of(vec![vec![text(
            "etc/passwd",
            "root:x:0:0::/root:/bin/sh\n",
        )]]);
        let h = harden(&fs, &ImageConfig::default());
        assert_eq!(h.run_as_user, None);
        assert!(!h.pod_security_restricted.allowed);
    }
}
