//! `imgscan serve` settings: a small TOML file, overridden by command-line
//! flags and the environment, validated into one [`ServeConfig`].
//!
//! Precedence, highest first: flags, environment (`IMGSCAN_SERVE_TOKEN`,
//! `IMGSCAN_SERVE_TOKEN_FILE`, `IMGSCAN_SERVE_DATABASE`,
//! `IMGSCAN_SERVE_DATABASE_PASSWORD_FILE`, `IMGSCAN_SERVE_REPLICA_ID`), the
//! file, built-in defaults. The file format
//! is documented in `docs/serve.md`.
//!
//! # Security
//!
//! Secrets (the API token, registry passwords) are read from files or
//! environment variables, never from flags (they would show in process
//! listings), and never printed: [`Secret`]'s `Debug` is redacted and no
//! message formats one.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum as _};
use scanner::model::Severity;
use scanner::source::Platform;
use scanner::source::registry::{Credentials, check_ca_certs};
use serde::Deserialize;

use super::LogFormat;
use super::layers::CacheLimits;
use super::store::Retention;

/// Shortest API token accepted: 128 bits as hex.
pub(crate) const MIN_TOKEN_LEN: usize = 32;
/// Default `job_lease_secs`.
const DEFAULT_LEASE_SECS: u64 = 30;
/// Bounds of `job_lease_secs`: renewed every third, it must outlast a
/// database hiccup, and a dead replica's job should not wait long.
const MIN_LEASE_SECS: u64 = 3;
const MAX_LEASE_SECS: u64 = 3600;
/// Default `report_retention_days`.
const DEFAULT_RETENTION_DAYS: u64 = 90;
/// Default `max_reports`.
const DEFAULT_MAX_REPORTS: u64 = 50_000;
/// Longest `report_retention_days` (a century; more is "forever": use 0).
const MAX_RETENTION_DAYS: u64 = 36_500;

/// Flags of `imgscan serve` (the TOML file can say everything but the
/// config path itself).
#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Every endpoint but /healthz needs `Authorization: Bearer TOKEN`. The token comes from \
--token-file, IMGSCAN_SERVE_TOKEN, IMGSCAN_SERVE_TOKEN_FILE or the config file; make one with \
`openssl rand -hex 32`.

Endpoints:
  POST /v1/events[/REGISTRY]          CNCF distribution notifications
  GET  /api/v1/metadata, POST /api/v1/scan, GET /api/v1/scan/ID/report   Harbor adapter v1.1
  GET  /v1/reports/DIGEST[?format=sarif]   report by manifest digest
  GET  /v1/scans[?limit=N&state=S]    recent scans with their verdict; /v1/scans/DIGEST
  GET  /metrics (Prometheus), GET /healthz and /livez (no token)

Example:
  openssl rand -hex 32 > /etc/imgscan/token
  imgscan serve --token-file /etc/imgscan/token --registry local=http://127.0.0.1:5000

Recipes (registry config.yml, Harbor registration, the config file): docs/serve.md")]
pub struct ServeArgs {
    /// TOML config file (see docs/serve.md).
    #[arg(short, long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Address to listen on [default: 127.0.0.1:8080]. Port 0 picks a free
    /// port; the address is printed on standard error.
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<SocketAddr>,

    /// Jobs and reports: a SQLite file, or a PostgreSQL URL
    /// (`postgres://USER@HOST[:PORT]/DB`, shared by several replicas; the
    /// password comes from database_password_file or
    /// IMGSCAN_SERVE_DATABASE_PASSWORD_FILE, never from this flag)
    /// [default: IMGSCAN_SERVE_DATABASE, else imgscan-serve.db].
    #[arg(long, value_name = "FILE|URL")]
    pub(crate) database: Option<PathBuf>,

    /// File holding the API bearer token (or IMGSCAN_SERVE_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub(crate) token_file: Option<PathBuf>,

    /// A registry to accept events for and pull from, NAME=URL (repeatable;
    /// adds to the `[[registry]]` tables of the config file). Pulls are anonymous or
    /// use the docker config; use the file for per-registry credentials.
    #[arg(long = "registry", value_name = "NAME=URL")]
    pub(crate) registries: Vec<String>,

    /// Scans run at once [default: 2].
    #[arg(long, value_name = "N")]
    pub(crate) workers: Option<usize>,

    /// Most queued scans; beyond it pushes get 503 and Retry-After so the
    /// registry retries [default: 1000].
    #[arg(long, value_name = "N")]
    pub(crate) queue_capacity: Option<usize>,

    /// A report fails its verdict when it has a finding at or above this
    /// severity [default: high].
    #[arg(long, value_name = "SEVERITY")]
    pub(crate) fail_on: Option<Severity>,

    /// Log lines on standard error: `text` (one line per event) or `json`
    /// (one object per event) [default: text, or IMGSCAN_SERVE_LOG_FORMAT].
    #[arg(long, value_name = "FORMAT")]
    pub(crate) log_format: Option<LogFormat>,
}

impl ServeArgs {
    /// `--log-format`, else `IMGSCAN_SERVE_LOG_FORMAT`, else text. Read
    /// before the config file, so that loading it is logged in that format.
    pub(crate) fn log_format(&self) -> Result<LogFormat> {
        if let Some(f) = self.log_format {
            return Ok(f);
        }
        match std::env::var("IMGSCAN_SERVE_LOG_FORMAT") {
            Ok(v) => LogFormat::from_str(&v, true).map_err(|_| {
                anyhow::anyhow!("IMGSCAN_SERVE_LOG_FORMAT must be `text` or `json`, not `{v}`")
            }),
            Err(_) => Ok(LogFormat::Text),
        }
    }
}

/// A secret read from a file or the environment. `Debug` and `Display`
/// never show it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn new(s: String) -> Self {
        Self(s)
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where jobs and reports live.
#[derive(Debug, Clone)]
pub(crate) enum Database {
    /// An embedded SQLite file: one process.
    Sqlite(PathBuf),
    /// A PostgreSQL database: any number of replicas.
    Postgres {
        /// Connection settings, the password included (`Debug` redacts it).
        config: Box<tokio_postgres::Config>,
        /// `postgres://USER@HOST:PORT/DB`, without the password, for logs.
        display: String,
        /// PEM CA certificates for the server's TLS (`database_ca_cert`).
        ca_cert: Option<PathBuf>,
    },
}

/// Whether `s` names a PostgreSQL database rather than a SQLite file.
fn is_postgres_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// Parses a PostgreSQL URL. `from` says where it came from, for messages;
/// `password_allowed` is false for a flag (a password there shows in `ps`).
fn postgres_database(
    url: &str,
    from: &str,
    password_allowed: bool,
    password: Option<Secret>,
) -> Result<Database> {
    // The URL may hold a password: never repeat it in a message.
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| anyhow::anyhow!("{from}: not a valid postgres:// URL ({e})"))?;
    if config.get_password().is_some() && !password_allowed {
        bail!(
            "{from}: the database password must not be in a command-line flag (it would show              in process listings); put it in a file named by database_password_file or              IMGSCAN_SERVE_DATABASE_PASSWORD_FILE, or set the URL in IMGSCAN_SERVE_DATABASE"
        );
    }
    if let Some(p) = password {
        config.password(p.expose());
    }
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            };
            match config.get_ports().get(i).or(config.get_ports().first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    if hosts.is_empty() {
        bail!("{from}: the database URL names no host");
    }
    let display = format!(
        "postgres://{}{}/{}",
        config
            .get_user()
            .map(|u| format!("{u}@"))
            .unwrap_or_default(),
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    );
    Ok(Database::Postgres {
        config: Box::new(config),
        display,
        ca_cert: None,
    })
}

/// The replica id: letters, digits, `.`, `-`, `_` (others become `-`), at
/// most 64.
fn replica_id(explicit: Option<String>) -> Result<String> {
    let (raw, given) = match explicit {
        Some(r) => (r, true),
        None => (
            std::env::var("HOSTNAME")
                .ok()
                .filter(|h| !h.trim().is_empty())
                .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
                .unwrap_or_else(|| "imgscan".to_owned()),
            false,
        ),
    };
    let raw = raw.trim();
    if given && !valid_name(raw) {
        bail!("replica_id `{raw}` must be 1-64 letters, digits, `-`, `_` or `.`");
    }
    let id: String = raw
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    Ok(if id.is_empty() {
        "imgscan".to_owned()
    } else {
        id
    })
}

/// One registry on the allowlist.
#[derive(Debug, Clone)]
pub(crate) struct RegistryEntry {
    /// Name used in `/v1/events/NAME` and in reports.
    pub(crate) name: String,
    /// `http` or `https`.
    pub(crate) scheme: String,
    /// `host[:port]`, lowercase: where pulls go.
    pub(crate) authority: String,
    /// Other `host[:port]` names that events from this registry may carry
    /// (`request.host`, the host of `target.url`), lowercase; includes
    /// [`Self::authority`].
    pub(crate) hosts: Vec<String>,
    /// Pull credentials.
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Secret>,
    /// Plain HTTP or TLS without verification.
    pub(crate) insecure: bool,
    /// A PEM file of CA certificates trusted for this registry's TLS, besides
    /// the system's roots (`ca_cert`; checked at startup, read again by each
    /// client that uses it).
    pub(crate) ca_cert: Option<PathBuf>,
    /// How often its catalog is swept for manifests no event announced
    /// (`reconcile_interval_secs`); `None`: never.
    pub(crate) reconcile_every: Option<Duration>,
}

impl RegistryEntry {
    /// `scheme://authority`, for messages and docs.
    pub(crate) fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }

    /// The configured credentials, as the scanner takes them (pulls and
    /// reconciliation).
    pub(crate) fn credentials(&self) -> Option<Credentials> {
        match (&self.username, &self.password) {
            (Some(u), Some(p)) => Some(Credentials {
                username: u.clone(),
                password: p.expose().to_owned(),
                origin: format!("registry `{}` in the serve config", self.name),
            }),
            _ => None,
        }
    }
}

/// Validated settings.
#[derive(Debug, Clone)]
pub(crate) struct ServeConfig {
    pub(crate) listen: SocketAddr,
    pub(crate) database: Database,
    /// This replica's name: a metrics label, and (with a random part) the
    /// owner of the jobs it claims on PostgreSQL.
    pub(crate) replica: String,
    /// How long a claimed job stays this replica's without a renewal
    /// (PostgreSQL; renewed every third of it while the scan runs).
    pub(crate) job_lease: Duration,
    pub(crate) token: Secret,
    pub(crate) registries: Vec<RegistryEntry>,
    pub(crate) workers: usize,
    pub(crate) queue_capacity: usize,
    pub(crate) fail_on: Severity,
    /// Scan attempts per job for failures that may clear (registry down).
    pub(crate) max_attempts: u32,
    /// First delay before retrying a failed scan; doubles per attempt.
    pub(crate) retry_backoff: Duration,
    /// `Retry-After` sent with 503 (queue full) and Harbor's 302.
    pub(crate) retry_after: Duration,
    /// How long SIGTERM waits for running scans before leaving them to the
    /// next start.
    pub(crate) drain_timeout: Duration,
    /// Largest request body.
    pub(crate) max_body_bytes: usize,
    /// The whole pull and scan of one image.
    pub(crate) scan_timeout: Duration,
    /// Identical refused deliveries (400/403) answered before the envelope is
    /// acknowledged and dropped, so a poison message cannot block the
    /// registry's serial queue.
    pub(crate) reject_limit: u32,
    /// Platform picked from an image index.
    pub(crate) platform: Option<Platform>,
    /// Bounds of the persisted layer cache; `None`: no cache
    /// (`layer_cache_layers = 0`).
    pub(crate) layer_cache: Option<CacheLimits>,
    /// How long finished jobs and reports are kept.
    pub(crate) retention: Retention,
    /// Bounds on one catalog sweep.
    pub(crate) reconcile: ReconcileLimits,
}

/// Bounds on the work of one catalog sweep (`reconcile_*` settings). A sweep
/// that reaches one stops, and the next continues where it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReconcileLimits {
    /// Repositories visited per sweep.
    pub(crate) max_repositories: usize,
    /// Tags resolved to a manifest digest per sweep.
    pub(crate) max_tags: usize,
    /// `n` asked for in each `/v2/_catalog` and `tags/list` page.
    pub(crate) page_size: usize,
}

impl Default for ReconcileLimits {
    fn default() -> Self {
        Self {
            max_repositories: 1000,
            max_tags: 10_000,
            page_size: 100,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    database: Option<PathBuf>,
    database_password_file: Option<PathBuf>,
    database_password_env: Option<String>,
    database_ca_cert: Option<PathBuf>,
    replica_id: Option<String>,
    job_lease_secs: Option<u64>,
    token_file: Option<PathBuf>,
    token_env: Option<String>,
    workers: Option<usize>,
    queue_capacity: Option<usize>,
    fail_on: Option<String>,
    max_attempts: Option<u32>,
    retry_backoff_secs: Option<u64>,
    retry_after_secs: Option<u64>,
    drain_timeout_secs: Option<u64>,
    max_body_bytes: Option<usize>,
    scan_timeout_secs: Option<u64>,
    reject_limit: Option<u32>,
    platform: Option<String>,
    layer_cache_layers: Option<u64>,
    layer_cache_mib: Option<u64>,
    report_retention_days: Option<u64>,
    max_reports: Option<u64>,
    reconcile_interval_secs: Option<u64>,
    reconcile_max_repositories: Option<usize>,
    reconcile_max_tags: Option<usize>,
    reconcile_page_size: Option<usize>,
    #[serde(default)]
    registry: Vec<FileRegistry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRegistry {
    name: String,
    url: String,
    #[serde(default)]
    hosts: Vec<String>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    #[serde(default)]
    insecure: bool,
    ca_cert: Option<PathBuf>,
    reconcile_interval_secs: Option<u64>,
}

fn read_secret_file(path: &Path, what: &str) -> Result<Secret> {
    let s = std::fs::read_to_string(path)
        .with_context(|| format!("reading the {what} from {}", path.display()))?;
    let s = s.trim();
    if s.is_empty() {
        bail!("the {what} file {} is empty", path.display());
    }
    Ok(Secret(s.to_owned()))
}

fn read_secret_env(var: &str, what: &str) -> Result<Secret> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Ok(Secret(v.trim().to_owned())),
        _ => bail!("the {what} variable {var} is not set or empty"),
    }
}

/// Splits `http(s)://host[:port][/]` into scheme and lowercase authority.
pub(crate) fn split_url(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.trim_end_matches('/');
    if authority.is_empty()
        || authority.contains(['/', '?', '#', '@', ' '])
        || authority.starts_with(':')
    {
        return None;
    }
    Some((scheme, authority.to_ascii_lowercase()))
}

/// Checks `ca_cert` of registry `name` (an https:// entry).
fn check_ca_cert(name: &str, scheme: &str, path: &Path) -> Result<()> {
    if scheme != "https" {
        bail!(
            "registry `{name}`: ca_cert {} is for https:// registries; this one is {scheme}://",
            path.display()
        );
    }
    check_ca_certs(path).map_err(|m| anyhow::anyhow!("registry `{name}`: ca_cert: {m}"))?;
    Ok(())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn registry_entry(
    name: String,
    url: &str,
    hosts: Vec<String>,
    username: Option<String>,
    password: Option<Secret>,
    insecure: bool,
) -> Result<RegistryEntry> {
    if !valid_name(&name) {
        bail!("registry name `{name}` must be 1-64 letters, digits, `-`, `_` or `.`");
    }
    let Some((scheme, authority)) = split_url(url) else {
        bail!("registry `{name}`: url `{url}` must be http(s)://HOST[:PORT] with no path");
    };
    let mut all = vec![authority.clone()];
    for h in hosts {
        let h = h.trim().to_ascii_lowercase();
        if h.is_empty() || h.contains(['/', ' ', '@']) {
            bail!("registry `{name}`: host alias `{h}` must be HOST[:PORT]");
        }
        if !all.contains(&h) {
            all.push(h);
        }
    }
    if password.is_some() && username.is_none() {
        bail!("registry `{name}`: a password needs a username");
    }
    if username.is_some() && password.is_none() {
        bail!("registry `{name}`: username given without password_file or password_env");
    }
    Ok(RegistryEntry {
        name,
        insecure: insecure || scheme == "http",
        scheme,
        authority,
        hosts: all,
        username,
        password,
        ca_cert: None,
        reconcile_every: None,
    })
}

/// Largest `reconcile_page_size` (registries cap `n` lower anyway; the
/// body of a page is bounded too).
const MAX_PAGE_SIZE: usize = 10_000;

/// `reconcile_interval_secs` of registry `name`: 0 or unset is off.
fn reconcile_every(secs: Option<u64>, name: &str) -> Result<Option<Duration>> {
    match secs {
        None | Some(0) => Ok(None),
        Some(s) if s > 7 * 24 * 3600 => bail!(
            "registry `{name}`: reconcile_interval_secs must be at most a week (604800), or 0 \
             for off"
        ),
        Some(s) => Ok(Some(Duration::from_secs(s))),
    }
}

/// Default `layer_cache_layers`.
const DEFAULT_CACHE_LAYERS: u64 = 10_000;
/// Default `layer_cache_mib`.
const DEFAULT_CACHE_MIB: u64 = 1024;

/// `layer_cache_layers` and `layer_cache_mib`. Before the cache was
/// persisted, `layer_cache_layers` bounded an in-memory cache; it now bounds
/// the cache file, with the same meaning (most layer scans kept, 0 for
/// none), so old configs keep working.
fn layer_cache(layers: Option<u64>, mib: Option<u64>) -> Result<Option<CacheLimits>> {
    let layers = layers.unwrap_or(DEFAULT_CACHE_LAYERS);
    if layers == 0 {
        return Ok(None);
    }
    let mib = mib.unwrap_or(DEFAULT_CACHE_MIB);
    if mib == 0 || mib > 1 << 30 {
        bail!(
            "layer_cache_mib must be between 1 and {} (turn the cache off with \
             layer_cache_layers = 0)",
            1u64 << 30
        );
    }
    Ok(Some(CacheLimits {
        layers,
        bytes: mib << 20,
    }))
}

/// `report_retention_days` and `max_reports`: 0 turns a limit off.
fn retention(days: Option<u64>, max_reports: Option<u64>) -> Result<Retention> {
    let days = days.unwrap_or(DEFAULT_RETENTION_DAYS);
    if days > MAX_RETENTION_DAYS {
        bail!(
            "report_retention_days must be at most {MAX_RETENTION_DAYS} (0 keeps reports \
             whatever their age)"
        );
    }
    let max_age_ms = (days > 0).then(|| i64::try_from(days).unwrap_or(0) * 24 * 3600 * 1000);
    let max_finished = Some(max_reports.unwrap_or(DEFAULT_MAX_REPORTS)).filter(|n| *n > 0);
    Ok(Retention {
        max_age_ms,
        max_finished,
    })
}

impl ServeConfig {
    /// Reads the file (if any) and applies flags and environment.
    pub(crate) fn load(args: &ServeArgs) -> Result<Self> {
        let file: FileConfig = match &args.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading the config file {}", p.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("parsing the config file {}", p.display()))?
            }
            None => FileConfig::default(),
        };
        // Relative paths in the file are relative to the file.
        let base = args
            .config
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let rel = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };

        let token = if let Some(p) = &args.token_file {
            read_secret_file(p, "API token")?
        } else if std::env::var_os("IMGSCAN_SERVE_TOKEN").is_some() {
            read_secret_env("IMGSCAN_SERVE_TOKEN", "API token")?
        } else if let Some(p) = std::env::var_os("IMGSCAN_SERVE_TOKEN_FILE") {
            read_secret_file(Path::new(&p), "API token")?
        } else if let Some(p) = &file.token_file {
            read_secret_file(&rel(p), "API token")?
        } else if let Some(v) = &file.token_env {
            read_secret_env(v, "API token")?
        } else {
            bail!(
                "no API token: every endpoint but /healthz needs one. Make one with \
                 `openssl rand -hex 32 > token` and pass --token-file token \
                 (or set IMGSCAN_SERVE_TOKEN, or token_file in the config file)"
            );
        };
        if token.expose().len() < MIN_TOKEN_LEN {
            bail!(
                "the API token is too short ({} characters); use at least {MIN_TOKEN_LEN}, \
                 e.g. `openssl rand -hex 32`",
                token.expose().len()
            );
        }
        if token.expose().bytes().any(|b| !b.is_ascii_graphic()) {
            bail!("the API token must be printable ASCII without spaces");
        }

        let mut registries = Vec::new();
        for r in file.registry {
            let password = match (&r.password_file, &r.password_env) {
                (Some(_), Some(_)) => bail!(
                    "registry `{}`: give password_file or password_env, not both",
                    r.name
                ),
                (Some(p), None) => Some(read_secret_file(
                    &rel(p),
                    &format!("password of registry `{}`", r.name),
                )?),
                (None, Some(v)) => Some(read_secret_env(
                    v,
                    &format!("password of registry `{}`", r.name),
                )?),
                (None, None) => None,
            };
            let mut entry =
                registry_entry(r.name, &r.url, r.hosts, r.username, password, r.insecure)?;
            if let Some(p) = &r.ca_cert {
                let p = rel(p);
                check_ca_cert(&entry.name, &entry.scheme, &p)?;
                entry.ca_cert = Some(p);
            }
            entry.reconcile_every = reconcile_every(
                r.reconcile_interval_secs.or(file.reconcile_interval_secs),
                &entry.name,
            )?;
            registries.push(entry);
        }
        for spec in &args.registries {
            let Some((name, url)) = spec.split_once('=') else {
                bail!("--registry `{spec}` must be NAME=URL, e.g. local=http://127.0.0.1:5000");
            };
            let mut entry = registry_entry(name.to_owned(), url, Vec::new(), None, None, false)?;
            entry.reconcile_every = reconcile_every(file.reconcile_interval_secs, &entry.name)?;
            registries.push(entry);
        }
        for (i, r) in registries.iter().enumerate() {
            if registries[..i].iter().any(|o| o.name == r.name) {
                bail!("registry name `{}` is configured twice", r.name);
            }
            for h in &r.hosts {
                if let Some(o) = registries[..i].iter().find(|o| o.hosts.contains(h)) {
                    bail!(
                        "host `{h}` belongs to both registry `{}` and `{}`",
                        o.name,
                        r.name
                    );
                }
            }
        }

        let fail_on = match (args.fail_on, &file.fail_on) {
            (Some(s), _) => s,
            (None, Some(s)) => s
                .parse::<Severity>()
                .map_err(|e| anyhow::anyhow!("fail_on in the config file: {e}"))?,
            (None, None) => Severity::High,
        };
        let database = {
            let db_password =
                if let Some(p) = std::env::var_os("IMGSCAN_SERVE_DATABASE_PASSWORD_FILE") {
                    Some(read_secret_file(Path::new(&p), "database password")?)
                } else if let Some(p) = &file.database_password_file {
                    Some(read_secret_file(&rel(p), "database password")?)
                } else if let Some(v) = &file.database_password_env {
                    Some(read_secret_env(v, "database password")?)
                } else {
                    None
                };
            let env = std::env::var_os("IMGSCAN_SERVE_DATABASE").filter(|v| !v.is_empty());
            let (value, from, flag) = match (&args.database, &env, &file.database) {
                (Some(d), _, _) => (d.clone(), "--database", true),
                (None, Some(e), _) => (PathBuf::from(e), "IMGSCAN_SERVE_DATABASE", false),
                (None, None, Some(d)) => (d.clone(), "database in the config file", false),
                (None, None, None) => (PathBuf::from("imgscan-serve.db"), "the default", false),
            };
            match value.to_str().filter(|v| is_postgres_url(v)) {
                Some(url) => {
                    let mut db = postgres_database(url, from, !flag, db_password)?;
                    if let (Database::Postgres { ca_cert, .. }, Some(p)) =
                        (&mut db, &file.database_ca_cert)
                    {
                        *ca_cert = Some(rel(p));
                    }
                    db
                }
                None => {
                    if db_password.is_some() {
                        bail!(
                            "a database password is configured, but the database is the \
                             SQLite file {} (give a postgres:// URL)",
                            value.display()
                        );
                    }
                    // Relative paths in the file are relative to the file.
                    if from == "database in the config file" {
                        Database::Sqlite(rel(&value))
                    } else {
                        Database::Sqlite(value)
                    }
                }
            }
        };
        let platform = file
            .platform
            .as_deref()
            .map(Platform::parse)
            .transpose()
            .context("platform in the config file")?;
        let cfg = Self {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            database,
            replica: replica_id(
                std::env::var("IMGSCAN_SERVE_REPLICA_ID")
                    .ok()
                    .filter(|v| !v.is_empty())
                    .or(file.replica_id.clone()),
            )?,
            job_lease: Duration::from_secs(file.job_lease_secs.unwrap_or(DEFAULT_LEASE_SECS)),
            token,
            registries,
            workers: args.workers.or(file.workers).unwrap_or(2),
            queue_capacity: args.queue_capacity.or(file.queue_capacity).unwrap_or(1000),
            fail_on,
            max_attempts: file.max_attempts.unwrap_or(3),
            retry_backoff: Duration::from_secs(file.retry_backoff_secs.unwrap_or(10)),
            retry_after: Duration::from_secs(file.retry_after_secs.unwrap_or(5)),
            drain_timeout: Duration::from_secs(file.drain_timeout_secs.unwrap_or(30)),
            max_body_bytes: file.max_body_bytes.unwrap_or(1 << 20),
            scan_timeout: Duration::from_secs(file.scan_timeout_secs.unwrap_or(15 * 60)),
            reject_limit: file.reject_limit.unwrap_or(3),
            platform,
            layer_cache: layer_cache(file.layer_cache_layers, file.layer_cache_mib)?,
            retention: retention(file.report_retention_days, file.max_reports)?,
            reconcile: ReconcileLimits {
                max_repositories: file
                    .reconcile_max_repositories
                    .unwrap_or(ReconcileLimits::default().max_repositories),
                max_tags: file
                    .reconcile_max_tags
                    .unwrap_or(ReconcileLimits::default().max_tags),
                page_size: file
                    .reconcile_page_size
                    .unwrap_or(ReconcileLimits::default().page_size),
            },
        };
        if !(MIN_LEASE_SECS..=MAX_LEASE_SECS).contains(&cfg.job_lease.as_secs()) {
            bail!("job_lease_secs must be between {MIN_LEASE_SECS} and {MAX_LEASE_SECS}");
        }
        if cfg.workers == 0 || cfg.workers > 64 {
            bail!("workers must be between 1 and 64");
        }
        if cfg.queue_capacity == 0 {
            bail!("queue_capacity must be at least 1");
        }
        if cfg.max_attempts == 0 {
            bail!("max_attempts must be at least 1");
        }
        if cfg.max_body_bytes < 1024 {
            bail!("max_body_bytes must be at least 1024");
        }
        if cfg.reconcile.max_repositories == 0 || cfg.reconcile.max_tags == 0 {
            bail!(
                "reconcile_max_repositories and reconcile_max_tags must be at least 1 (turn \
                 reconciliation off with reconcile_interval_secs = 0)"
            );
        }
        if !(1..=MAX_PAGE_SIZE).contains(&cfg.reconcile.page_size) {
            bail!("reconcile_page_size must be between 1 and {MAX_PAGE_SIZE}");
        }
        if cfg.registries.is_empty() {
            tracing::warn!(
                "no registry is configured, so every event and Harbor scan request \
                 will be refused; add --registry NAME=URL or [[registry]] to the config",
            );
        }
        Ok(cfg)
    }

    /// The allowlisted registry named `name`.
    pub(crate) fn registry(&self, name: &str) -> Option<&RegistryEntry> {
        self.registries.iter().find(|r| r.name == name)
    }

    /// The allowlisted registry that serves `host[:port]` (as events name it).
    pub(crate) fn registry_for_host(&self, host: &str) -> Option<&RegistryEntry> {
        let host = host.to_ascii_lowercase();
        self.registries.iter().find(|r| r.hosts.contains(&host))
    }

    /// `Retry-After`, whole seconds, at least 1.
    pub(crate) fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_and_authority() {
        assert_eq!(
            split_url("http://127.0.0.1:5000/"),
            Some(("http".into(), "127.0.0.1:5000".into()))
        );
        assert_eq!(
            split_url("HTTPS://Registry.Example.com"),
            Some(("https".into(), "registry.example.com".into()))
        );
        assert_eq!(split_url("ftp://x"), None);
        assert_eq!(split_url("http://x/v2/"), None);
        assert_eq!(split_url("http://user@x"), None);
        assert_eq!(split_url("x:5000"), None);
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let s = Secret("hunter2hunter2".into());
        assert_eq!(format!("{s:?}"), "<redacted>");
        let e = registry_entry(
            "r".into(),
            "https://r.example",
            vec!["R.example:443".into()],
            Some("u".into()),
            Some(s),
            false,
        )
        .unwrap();
        assert!(!format!("{e:?}").contains("hunter2"));
        assert_eq!(e.hosts, ["r.example", "r.example:443"]);
        assert!(!e.insecure);
    }

    #[test]
    fn file_format_parses() {
        let f: FileConfig = toml::from_str(
            r#"
            listen = "127.0.0.1:0"
            workers = 3
            fail_on = "critical"
            [[registry]]
            name = "local"
            url = "http://127.0.0.1:5000"
            hosts = ["registry.local"]
            "#,
        )
        .unwrap();
        assert_eq!(f.workers, Some(3));
        assert_eq!(f.registry.len(), 1);
        assert!(toml::from_str::<FileConfig>("bogus = 1").is_err());
    }

    #[test]
    fn reconciliation_is_off_unless_asked_for() {
        assert_eq!(reconcile_every(None, "r").unwrap(), None);
        assert_eq!(reconcile_every(Some(0), "r").unwrap(), None);
        assert_eq!(
            reconcile_every(Some(300), "r").unwrap(),
            Some(Duration::from_secs(300))
        );
        assert!(reconcile_every(Some(u64::MAX), "r").is_err());
        let f: FileConfig = toml::from_str(
            r#"
            reconcile_interval_secs = 600
            [[registry]]
            name = "a"
            url = "http://127.0.0.1:5000"
            reconcile_interval_secs = 0
            "#,
        )
        .unwrap();
        assert_eq!(f.registry[0].reconcile_interval_secs, Some(0));
    }

    #[test]
    fn layer_cache_settings_keep_their_old_meaning() {
        assert_eq!(
            layer_cache(None, None).unwrap(),
            Some(CacheLimits {
                layers: 10_000,
                bytes: 1 << 30
            })
        );
        // An old config's `layer_cache_layers = 256` still bounds the count.
        assert_eq!(layer_cache(Some(256), None).unwrap().unwrap().layers, 256);
        assert_eq!(layer_cache(Some(0), Some(5)).unwrap(), None);
        assert_eq!(layer_cache(None, Some(2)).unwrap().unwrap().bytes, 2 << 20);
        assert!(layer_cache(None, Some(0)).is_err());
        let f: FileConfig = toml::from_str("layer_cache_layers = 256").unwrap();
        assert_eq!(f.layer_cache_layers, Some(256));
    }

    #[test]
    fn retention_defaults_and_zero_means_off() {
        let r = retention(None, None).unwrap();
        assert_eq!(r.max_age_ms, Some(90 * 24 * 3600 * 1000));
        assert_eq!(r.max_finished, Some(DEFAULT_MAX_REPORTS));
        let r = retention(Some(0), Some(0)).unwrap();
        assert_eq!((r.max_age_ms, r.max_finished), (None, None));
        assert_eq!(retention(Some(1), Some(7)).unwrap().max_finished, Some(7));
        assert!(retention(Some(u64::MAX), None).is_err());
    }

    #[test]
    fn postgres_urls_select_postgres_and_hide_the_password() {
        assert!(is_postgres_url("postgres://u@db/x"));
        assert!(is_postgres_url("postgresql://u@db/x"));
        assert!(!is_postgres_url("/var/lib/imgscan/serve.db"));
        let d = postgres_database("postgres://imgscan@db.internal:5433/jobs", "t", false, None)
            .unwrap();
        let Database::Postgres {
            config, display, ..
        } = d
        else {
            panic!("not postgres")
        };
        assert_eq!(display, "postgres://imgscan@db.internal:5433/jobs");
        assert_eq!(config.get_password(), None);
        // A password in a flag's URL is refused, and not repeated.
        let e = postgres_database("postgres://u:s3cret-pw@db/x", "--database", false, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--database") && e.contains("process listings"),
            "{e}"
        );
        assert!(!e.contains("s3cret-pw"), "{e}");
        // From the environment or the file it is fine, and still not shown.
        let d = postgres_database("postgres://u:s3cret-pw@db/x", "env", true, None).unwrap();
        assert!(!format!("{d:?}").contains("s3cret-pw"));
        let Database::Postgres {
            config, display, ..
        } = d
        else {
            panic!("not postgres")
        };
        assert_eq!(display, "postgres://u@db:5432/x");
        assert_eq!(config.get_password(), Some(&b"s3cret-pw"[..]));
        // A password file wins over the URL's.
        let d = postgres_database(
            "postgres://u:old@db/x",
            "env",
            true,
            Some(Secret::new("from-file".into())),
        )
        .unwrap();
        let Database::Postgres { config, .. } = d else {
            panic!("not postgres")
        };
        assert_eq!(config.get_password(), Some(&b"from-file"[..]));
        assert!(postgres_database("postgres://u@db:notaport/x", "t", true, None).is_err());
    }

    #[test]
    fn replica_ids_are_label_safe() {
        assert_eq!(replica_id(Some("imgscan-0".into())).unwrap(), "imgscan-0");
        assert!(replica_id(Some("bad id\"".into())).is_err());
        let auto = replica_id(None).unwrap();
        assert!(valid_name(&auto), "{auto}");
    }

    /// A self-signed CA certificate (public part only) for the `ca_cert` tests.
    const TEST_CA: &str = "\
-----BEGIN CERTIFICATE-----
MIIBljCCATugAwIBAgIUaUcyhsgFngJK2RwhmAjDyNRqNZ4wCgYIKoZIzj0EAwIw
HzEdMBsGA1UEAwwUaW1nc2NhbiB1bml0LXRlc3QgQ0EwIBcNMjYxMjAzMTUzNjQz
WhgPMjEyNjExMDkxNTM2NDNaMB8xHTAbBgNVBAMMFGltZ3NjYW4gdW5pdC10ZXN0
IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAECkezdRM/tkjx0eCo5OWzd+4X
MKuqC4MWu2fvn37Vlk9dsKPVRl8lMiftiMnzrat2kDjO+KL/CVve1SPKhVNweKNT
MFEwHQYDVR0OBBYEFPi7irw0b+wFRjINGcLkh9Y4ejsUMB8GA1UdIwQYMBaAFPi7
irw0b+wFRjINGcLkh9Y4ejsUMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwID
SQAwRgIhANOx9zLSGyXUaXBlD8PVijFLDEdcA8/MsaeMWWxJoO2sAiEAxkynOtkE
sxAzav1IzSk0nyrKjfwBXG8/+xv7ED1Z1Ks=
-----END CERTIFICATE-----";

    /// Loads a config file holding a token file and one `[[registry]]`
    /// entry with `registry` as its body.
    fn load_with_registry(dir: &Path, registry: &str) -> Result<ServeConfig> {
        std::fs::write(dir.join("token"), "ab".repeat(MIN_TOKEN_LEN)).unwrap();
        let path = dir.join("serve.toml");
        std::fs::write(
            &path,
            format!("token_file = \"token\"\n[[registry]]\nname = \"corp\"\n{registry}\n"),
        )
        .unwrap();
        ServeConfig::load(&ServeArgs {
            config: Some(path),
            listen: None,
            database: None,
            token_file: Some(dir.join("token")),
            registries: Vec::new(),
            workers: None,
            queue_capacity: None,
            fail_on: None,
            log_format: None,
        })
    }

    #[test]
    fn ca_cert_is_checked_at_startup() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let https = "url = \"https://registry.corp:5000\"";

        // Missing: the registry and the path are named.
        let e = load_with_registry(d, &format!("{https}\nca_cert = \"nope.pem\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("registry `corp`"), "{e}");
        assert!(e.contains("ca_cert"), "{e}");
        assert!(e.contains(&d.join("nope.pem").display().to_string()), "{e}");

        // Not PEM (a private key is not a certificate either).
        std::fs::write(d.join("junk.pem"), "not a certificate\n").unwrap();
        let e = load_with_registry(d, &format!("{https}\nca_cert = \"junk.pem\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("registry `corp`"), "{e}");
        assert!(e.contains(&d.join("junk.pem").display().to_string()), "{e}");
        assert!(e.contains("no PEM certificate"), "{e}");
        std::fs::write(
            d.join("key.pem"),
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = load_with_registry(d, &format!("{https}\nca_cert = \"key.pem\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no PEM certificate"), "{e}");

        // A CA certificate, relative to the config file; not insecure.
        std::fs::write(d.join("ca.pem"), TEST_CA).unwrap();
        let cfg = load_with_registry(d, &format!("{https}\nca_cert = \"ca.pem\"")).unwrap();
        let r = cfg.registry("corp").unwrap();
        assert_eq!(r.ca_cert.as_deref(), Some(d.join("ca.pem").as_path()));
        assert!(!r.insecure);
        assert_eq!(check_ca_certs(&d.join("ca.pem")).unwrap(), 1);

        // Plain HTTP has no use for one.
        let e = load_with_registry(d, "url = \"http://127.0.0.1:5000\"\nca_cert = \"ca.pem\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("registry `corp`") && e.contains("https://"),
            "{e}"
        );

        // Without the setting, none.
        let cfg = load_with_registry(d, https).unwrap();
        assert_eq!(cfg.registry("corp").unwrap().ca_cert, None);
    }
}
