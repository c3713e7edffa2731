//! `imgscan serve` as a child process on 127.0.0.1 (the built binary, no
//! other tool), its config file, and the registry notifications it takes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::{Resp, request};

/// The API token every test server uses (64 hex characters).
pub(crate) const TOKEN: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
pub(crate) const EVENTS_V1: &str = "application/vnd.docker.distribution.events.v1+json";
pub(crate) const EVENTS_V2: &str = "application/vnd.docker.distribution.events.v2+json";

/// Polls `f` every 200 ms until it returns `Some`, or panics after `limit`
/// with `what` and the result of `context`.
pub(crate) fn wait_for<T>(
    limit: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// An `imgscan serve` child.
pub(crate) struct Serve {
    child: Option<Child>,
    pub(crate) addr: String,
    pub(crate) log: Arc<Mutex<Vec<String>>>,
    pub(crate) config: PathBuf,
}

/// Writes a serve config into `dir` and returns its path. `extra` is more
/// TOML for the top level; `registries` are `(name, url)` pairs.
pub(crate) fn write_config(dir: &Path, extra: &str, registries: &[(&str, &str)]) -> PathBuf {
    let db = format!("database = \"{}\"", dir.join("serve.db").display());
    write_config_with(dir, &db, extra, registries)
}

/// [`write_config`] with `database` (TOML lines naming the database)
/// instead of `serve.db` in `dir`.
pub(crate) fn write_config_with(
    dir: &Path,
    database: &str,
    extra: &str,
    registries: &[(&str, &str)],
) -> PathBuf {
    let token = dir.join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let mut cfg = format!(
        "listen = \"127.0.0.1:0\"\n{database}\ntoken_file = \"{}\"\n\
         retry_after_secs = 1\nretry_backoff_secs = 1\n{extra}\n",
        token.display()
    );
    for (name, url) in registries {
        cfg.push_str(&format!(
            "[[registry]]\nname = \"{name}\"\nurl = \"{url}\"\n"
        ));
    }
    let path = dir.join("serve.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

impl Serve {
    /// Starts `imgscan serve --config CONFIG` and waits for its address.
    pub(crate) fn start(config: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_imgscan"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env_remove("IMGSCAN_SERVE_TOKEN")
            .env_remove("IMGSCAN_SERVE_TOKEN_FILE")
            .env_remove("IMGSCAN_USERNAME")
            .env_remove("IMGSCAN_PASSWORD")
            // No ambient docker credentials.
            .env(
                "DOCKER_CONFIG",
                config.parent().unwrap().join("no-docker-config"),
            )
            .env(
                "REGISTRY_AUTH_FILE",
                config.parent().unwrap().join("no-auth.json"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start imgscan serve");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let log2 = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(rest.trim().to_owned());
                }
                log2.lock().unwrap().push(line);
            }
        });
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!(
                "imgscan serve did not start:\n{}",
                log.lock().unwrap().join("\n")
            );
        };
        Self {
            child: Some(child),
            addr,
            log,
            config: config.to_path_buf(),
        }
    }

    /// The server's log so far.
    pub(crate) fn logs(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// A request with the API token.
    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let auth = format!("Bearer {TOKEN}");
        let mut h = vec![("Authorization", auth.as_str())];
        h.extend_from_slice(headers);
        request(&self.addr, method, path, &h, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.logs()))
    }

    pub(crate) fn get(&self, path: &str) -> Resp {
        self.call("GET", path, &[], b"")
    }

    /// POSTs a notification envelope holding `events`.
    pub(crate) fn notify(&self, path: &str, events: &[Value]) -> Resp {
        let body = serde_json::to_vec(&serde_json::json!({ "events": events })).unwrap();
        self.call("POST", path, &[("Content-Type", EVENTS_V1)], &body)
    }

    /// The scan record of `digest`, if any.
    pub(crate) fn scan(&self, digest: &str) -> Option<Value> {
        let r = self.get(&format!("/v1/scans/{digest}"));
        (r.status == 200).then(|| r.json())
    }

    /// Waits until every digest's scan is `done` and returns the records.
    pub(crate) fn wait_done(&self, digests: &[String], limit: Duration) -> Vec<Value> {
        wait_for(
            limit,
            "every scan to finish",
            || {
                let all: Vec<Value> = digests.iter().filter_map(|d| self.scan(d)).collect();
                if all.iter().any(|s| s["state"] == "failed") {
                    panic!("a scan failed: {all:#?}\n{}", self.logs());
                }
                (all.len() == digests.len() && all.iter().all(|s| s["state"] == "done"))
                    .then_some(all)
            },
            || {
                let states: Vec<String> = digests
                    .iter()
                    .map(|d| {
                        self.scan(d)
                            .map_or_else(|| "unknown".into(), |s| s["state"].to_string())
                    })
                    .collect();
                format!("states: {states:?}\nlog:\n{}", self.logs())
            },
        )
    }

    /// A gauge or counter value from /metrics (first line starting with
    /// `name`, labels included, once the `replica` label every sample
    /// carries is taken out).
    pub(crate) fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics").text();
        text.lines()
            .map(without_replica_label)
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .and_then(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
            .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
    }

    /// The `replica` label of /metrics (the same on every sample).
    pub(crate) fn replica_label(&self) -> String {
        let text = self.get("/metrics").text();
        text.lines()
            .find_map(|l| l.split("replica=\"").nth(1))
            .and_then(|r| r.split('"').next())
            .unwrap_or_else(|| panic!("no replica label in:\n{text}"))
            .to_owned()
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// CPU seconds (user + system) the process has used so far, from
    /// /proc/PID/stat (Linux).
    pub(crate) fn cpu_secs(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the command name (which may hold spaces) in parentheses.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<f64> = rest
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0.0))
            .collect();
        // utime and stime are fields 14 and 15 of stat (11 and 12 after the
        // name), in clock ticks of 1/100 s on Linux.
        (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
    }

    /// `kill -9`.
    pub(crate) fn kill9(mut self) -> Arc<Mutex<Vec<String>>> {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
        Arc::clone(&self.log)
    }

    /// SIGTERM, then the exit status (waits up to `limit`).
    pub(crate) fn terminate(mut self, limit: Duration) -> Option<i32> {
        let mut c = self.child.take().unwrap();
        let ok = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let start = Instant::now();
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s.code();
            }
            if start.elapsed() > limit {
                let _ = c.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A sample line without its `replica="…"` label:
/// `a{replica="r",b="c"} 1` is `a{b="c"} 1`, `a{replica="r"} 1` is `a 1`.
pub(crate) fn without_replica_label(line: &str) -> String {
    let Some(start) = line.find("replica=\"") else {
        return line.to_owned();
    };
    let Some(len) = line[start + 9..].find('"') else {
        return line.to_owned();
    };
    let mut end = start + 9 + len + 1;
    if line[end..].starts_with(',') {
        end += 1;
    }
    let out = format!("{}{}", &line[..start], &line[end..]);
    out.replace("{}", "")
}

/// A push event as distribution 2.8 sends it, envelope and fields as documented in
/// <https://distribution.github.io/distribution/about/notifications/>.
pub(crate) fn push_event(host: &str, repo: &str, tag: &str, digest: &str) -> Value {
    serde_json::json!({
        "id": format!("evt-{}-{tag}", &digest[7..19]),
        "timestamp": "2026-11-22T04:28:50.719048203Z",
        "action": "push",
        "target": {
            "mediaType": super::OCI_MANIFEST,
            "size": 800,
            "digest": digest,
            "length": 800,
            "repository": repo,
            "url": format!("http://{host}/v2/{repo}/manifests/{digest}"),
            "tag": tag,
            "references": [
                {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 1703,
                 "digest": "sha256:755ff705d063e27e88704d16cd7e6f6b8eeed428f869b24260eb3d0edc78b59d"}
            ]
        },
        "request": {"id": "r1", "addr": "127.0.0.1:59458", "host": host, "method": "PUT",
                    "useragent": "skopeo/1.9.3"},
        "actor": {},
        "source": {"addr": "vm:5055", "instanceID": "ac9a9930"}
    })
}

/// A layer (blob) push event, which imgscan must ignore.
pub(crate) fn blob_event(host: &str, repo: &str) -> Value {
    serde_json::json!({
        "id": "blob-1", "action": "push",
        "target": {"mediaType": "application/octet-stream", "size": 164,
                   "digest": "sha256:76221633fd5527ce90fca671eec1ad56a8e98cf165bd64be623f0405b9af5826",
                   "repository": repo,
                   "url": format!("http://{host}/v2/{repo}/blobs/sha256:76221633fd5527ce90fca671eec1ad56a8e98cf165bd64be623f0405b9af5826")},
        "request": {"host": host, "method": "PUT"}
    })
}
