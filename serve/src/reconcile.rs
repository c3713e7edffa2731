//! Catalog reconciliation: pushes the registry never announced.
//!
//! A distribution registry keeps undelivered notifications in memory only,
//! so a push made while imgscan was down is lost if the registry restarts
//! before it can deliver it ("if an instance is lost, messages may be
//! dropped", `notifications/endpoint.go`, so a hook must
//! reconcile from `/v2/_catalog` and `tags/list`, which the distribution
//! API spec defines: <https://distribution.github.io/distribution/spec/api/>). For an
//! allowlist entry with `reconcile_interval_secs`, a task sweeps the
//! registry: each repository of `/v2/_catalog`, each tag of its
//! `tags/list`, the tag's manifest digest by `HEAD`. A digest that has no
//! job is fetched (by digest, checked against it), classified as the events
//! are (images and indexes; artifacts and schema 1 ignored; an index's
//! image children too, attestations not) and queued through
//! [`Store::admit_missing`]: deduplicated, within `queue_capacity`.
//!
//! # Bounds
//!
//! One sweep visits at most `reconcile_max_repositories` repositories and
//! resolves at most `reconcile_max_tags` tags, one request at a time. It
//! stops there, or when the queue is full, or when the registry is
//! unavailable, and remembers where ([`Cursor`], kept in the database, so a restart or another replica goes on from there): the next sweep continues
//! from that repository and tag (`last=`, in the lexical order the
//! distribution spec gives both lists), so a large registry is covered over
//! several sweeps rather than never. After a full pass the next sweep starts
//! again from the top. After a full queue the next sweep comes sooner
//! ([`QUEUE_FULL_RETRY`]).
//!
//! # Security
//!
//! Requests go to the allowlist entry only, with its credentials
//! ([`scanner::source::registry::listing`]). Repository names, tags and
//! digests from the registry are validated as event fields are before they
//! are used in a URL or a job.

use std::sync::Arc;
use std::time::Duration;

use scanner::source::media;
use scanner::source::registry::RegistryOptions;
use scanner::source::registry::listing::{Client, ListError};
use serde::Deserialize;
use sha2::{Digest as _, Sha256, Sha512};

use super::config::{ReconcileLimits, RegistryEntry};
use super::distribution::{
    IMAGE_CONFIGS, IMAGE_MANIFESTS, INDEXES, SCHEMA1, valid_digest, valid_repository, valid_tag,
};

use super::metrics::Metrics;
use super::store::{Admission, NewJob, SavedCursor, Store};
use super::worker::Wake;

/// Longest wait before the next sweep after one stopped at a full queue.
pub(crate) const QUEUE_FULL_RETRY: Duration = Duration::from_secs(30);
/// Longest one listing call (a page, a `HEAD`) may take, retries included.
const LIST_CALL_LIMIT: Duration = Duration::from_secs(120);

/// A page to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Page {
    /// The first page of a walk: `n`, and `last` when resuming.
    After(Option<String>),
    /// The `Link` target of the previous page (path and query, checked to
    /// stay on the registry).
    Link(String),
}

/// One page of names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Listed {
    pub(crate) items: Vec<String>,
    /// The next page, when the registry says there is one.
    pub(crate) next: Option<String>,
}

/// What a sweep needs from a registry.
pub(crate) trait Listing {
    /// One page of `/v2/_catalog`.
    async fn catalog(&self, page: &Page) -> Result<Listed, ListError>;
    /// One page of `/v2/REPO/tags/list`.
    async fn tags(&self, repo: &str, page: &Page) -> Result<Listed, ListError>;
    /// The manifest digest `REPO:TAG` points at.
    async fn resolve(&self, repo: &str, tag: &str) -> Result<String, ListError>;
    /// The manifest `REPO@DIGEST`: its `Content-Type` and bytes.
    async fn manifest(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<(Option<String>, Vec<u8>), ListError>;
}

/// Where the next sweep of a registry starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// The last repository finished in this pass (`last=` of the catalog).
    after_repo: Option<String>,
    /// A repository left part-way, and the last of its tags handled.
    partial: Option<(String, Option<String>)>,
}

impl Cursor {
    fn from_saved(c: SavedCursor) -> Self {
        Self {
            after_repo: c.after_repo,
            partial: c.partial_repo.map(|r| (r, c.partial_tag)),
        }
    }

    fn to_saved(&self) -> SavedCursor {
        let (partial_repo, partial_tag) = match &self.partial {
            Some((r, t)) => (Some(r.clone()), t.clone()),
            None => (None, None),
        };
        SavedCursor {
            after_repo: self.after_repo.clone(),
            partial_repo,
            partial_tag,
        }
    }
}

/// How a sweep ended; its label (`complete`, `limited`, `queue_full`,
/// `failed`) names it in logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq, strum::IntoStaticStr, strum::VariantNames)]
#[strum(serialize_all = "snake_case")]
pub(crate) enum SweepEnd {
    /// The whole catalog was walked; the next sweep starts from the top.
    Complete,
    /// A bound was reached; the next sweep continues from here.
    Limited,
    /// The queue is full; the next sweep continues from here, sooner.
    QueueFull,
    /// The registry (or the database) failed; the next sweep retries
    /// from here.
    Failed(String),
}

impl SweepEnd {
    pub(crate) fn label(&self) -> &'static str {
        self.into()
    }
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SweepStats {
    pub(crate) repositories: usize,
    pub(crate) tags: usize,
    /// Digests queued (tags' manifests and index children).
    pub(crate) queued: usize,
    /// Tags whose digest already had a job.
    pub(crate) known: usize,
    /// Tags that point at something imgscan does not scan.
    pub(crate) ignored: usize,
    /// Repositories or tags skipped after an error, and the first error.
    pub(crate) skipped: usize,
    pub(crate) first_error: Option<String>,
}

impl SweepStats {
    fn skip(&mut self, what: String) {
        self.skipped += 1;
        if self.first_error.is_none() {
            self.first_error = Some(what);
        }
    }
}

/// How one repository visit ended.
enum RepoEnd {
    Complete,
    Skipped(String),
    /// Stopped after tag `last` (none: before the first).
    Stopped {
        last: Option<String>,
        why: SweepEnd,
    },
}

/// How one tag visit ended.
enum TagEnd {
    Done,
    QueueFull,
    Failed(String),
}

/// Remaining work of a sweep.
struct Budget {
    repositories: usize,
    tags: usize,
}

/// One sweep's context.
pub(crate) struct Sweeper<'a, L> {
    pub(crate) listing: &'a L,
    pub(crate) store: &'a Arc<Store>,
    /// Allowlist entry name, for jobs.
    pub(crate) registry: &'a str,
    pub(crate) capacity: usize,
    pub(crate) limits: ReconcileLimits,
}

/// Runs a database call off the async runtime.
async fn db<R, F>(store: &Arc<Store>, f: F) -> Result<R, String>
where
    R: Send + 'static,
    F: FnOnce(&Store) -> anyhow::Result<R> + Send + 'static,
{
    let store = Arc::clone(store);
    match tokio::task::spawn_blocking(move || f(&*store)).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(format!("database: {e:#}")),
        Err(e) => Err(format!("database task: {e}")),
    }
}

/// The page after `listed`, or why the walk must stop: a `Link` back to the
/// same page, or an empty page that still says there is more, would never
/// end (and would use no budget).
fn advance(page: &Page, listed: &Listed) -> Result<Option<Page>, String> {
    match &listed.next {
        None => Ok(None),
        Some(next) if listed.items.is_empty() || *page == Page::Link(next.clone()) => Err(format!(
            "the registry's pagination does not advance (Link to {next})"
        )),
        Some(next) => Ok(Some(Page::Link(next.clone()))),
    }
}

/// Sorts a page and drops what a resumed walk has already seen (`<= after`).
/// Registries that ignore `last` (distribution 2.x on tag lists) send the
/// whole list again; the spec's lexical order makes the filter exact.
fn fresh(mut items: Vec<String>, after: Option<&str>) -> Vec<String> {
    items.sort();
    items.dedup();
    if let Some(a) = after {
        items.retain(|i| i.as_str() > a);
    }
    items
}

impl<L: Listing> Sweeper<'_, L> {
    /// One sweep from `cursor`, which is moved to where the next one starts.
    pub(crate) async fn sweep(&self, cursor: &mut Cursor, stats: &mut SweepStats) -> SweepEnd {
        let mut budget = Budget {
            repositories: self.limits.max_repositories,
            tags: self.limits.max_tags,
        };
        if let Some((repo, last)) = cursor.partial.take() {
            budget.repositories = budget.repositories.saturating_sub(1);
            stats.repositories += 1;
            match self.repo(&repo, last, &mut budget, stats).await {
                RepoEnd::Complete => cursor.after_repo = Some(repo),
                RepoEnd::Skipped(why) => {
                    stats.skip(why);
                    cursor.after_repo = Some(repo);
                }
                RepoEnd::Stopped { last, why } => {
                    cursor.partial = Some((repo, last));
                    return why;
                }
            }
        }
        let mut page = Page::After(cursor.after_repo.clone());
        loop {
            let listed = match self.listing.catalog(&page).await {
                Ok(l) => l,
                Err(e) => return SweepEnd::Failed(format!("listing the catalog: {e}")),
            };
            let after = match &page {
                Page::After(a) => a.as_deref(),
                Page::Link(_) => None,
            };
            let next = match advance(&page, &listed) {
                Ok(n) => n,
                Err(m) => return SweepEnd::Failed(format!("listing the catalog: {m}")),
            };
            for repo in fresh(listed.items, after) {
                if !valid_repository(&repo) {
                    stats.skip(format!(
                        "the catalog lists an invalid repository name `{repo}`"
                    ));
                    cursor.after_repo = Some(repo);
                    continue;
                }
                if budget.repositories == 0 {
                    return SweepEnd::Limited;
                }
                budget.repositories -= 1;
                stats.repositories += 1;
                match self.repo(&repo, None, &mut budget, stats).await {
                    RepoEnd::Complete => {}
                    RepoEnd::Skipped(why) => stats.skip(why),
                    RepoEnd::Stopped { last, why } => {
                        cursor.partial = Some((repo, last));
                        return why;
                    }
                }
                cursor.after_repo = Some(repo);
            }
            match next {
                Some(next) => page = next,
                None => {
                    *cursor = Cursor::default();
                    return SweepEnd::Complete;
                }
            }
        }
    }

    async fn repo(
        &self,
        repo: &str,
        after: Option<String>,
        budget: &mut Budget,
        stats: &mut SweepStats,
    ) -> RepoEnd {
        let mut last = after.clone();
        let mut page = Page::After(after);
        loop {
            let listed = match self.listing.tags(repo, &page).await {
                Ok(l) => l,
                Err(ListError::Unavailable(m)) => {
                    return RepoEnd::Stopped {
                        last,
                        why: SweepEnd::Failed(format!("listing the tags of {repo}: {m}")),
                    };
                }
                Err(e) => return RepoEnd::Skipped(format!("listing the tags of {repo}: {e}")),
            };
            let after = match &page {
                Page::After(a) => a.clone(),
                Page::Link(_) => None,
            };
            let next = match advance(&page, &listed) {
                Ok(n) => n,
                Err(m) => return RepoEnd::Skipped(format!("listing the tags of {repo}: {m}")),
            };
            for tag in fresh(listed.items, after.as_deref()) {
                if !valid_tag(&tag) {
                    stats.skip(format!("{repo} lists an invalid tag `{tag}`"));
                    last = Some(tag);
                    continue;
                }
                if budget.tags == 0 {
                    return RepoEnd::Stopped {
                        last,
                        why: SweepEnd::Limited,
                    };
                }
                budget.tags -= 1;
                stats.tags += 1;
                match self.tag(repo, &tag, stats).await {
                    TagEnd::Done => last = Some(tag),
                    // The tag is visited again next time.
                    TagEnd::QueueFull => {
                        return RepoEnd::Stopped {
                            last,
                            why: SweepEnd::QueueFull,
                        };
                    }
                    TagEnd::Failed(m) => {
                        return RepoEnd::Stopped {
                            last,
                            why: SweepEnd::Failed(m),
                        };
                    }
                }
            }
            match next {
                Some(next) => page = next,
                None => return RepoEnd::Complete,
            }
        }
    }

    async fn tag(&self, repo: &str, tag: &str, stats: &mut SweepStats) -> TagEnd {
        let digest = match self.listing.resolve(repo, tag).await {
            Ok(d) => d,
            Err(ListError::Unavailable(m)) => return TagEnd::Failed(m),
            Err(e) => {
                // Deleted since the listing, or not readable by this account.
                stats.skip(format!("resolving {repo}:{tag}: {e}"));
                return TagEnd::Done;
            }
        };
        let d = digest.clone();
        match db(self.store, move |s| s.known(&d)).await {
            Ok(true) => {
                stats.known += 1;
                return TagEnd::Done;
            }
            Ok(false) => {}
            Err(m) => return TagEnd::Failed(m),
        }
        let (content_type, body) = match self.listing.manifest(repo, &digest).await {
            Ok(m) => m,
            Err(ListError::Unavailable(m)) => return TagEnd::Failed(m),
            Err(e) => {
                stats.skip(format!("fetching {repo}@{digest}: {e}"));
                return TagEnd::Done;
            }
        };
        let jobs = match classify(
            self.registry,
            repo,
            tag,
            &digest,
            content_type.as_deref(),
            &body,
        ) {
            Ok(Found::Jobs(j)) => j,
            Ok(Found::Ignored(_)) => {
                stats.ignored += 1;
                return TagEnd::Done;
            }
            Err(why) => {
                stats.skip(format!("{repo}:{tag}: {why}"));
                return TagEnd::Done;
            }
        };
        let capacity = self.capacity;
        let admitted = match db(self.store, move |s| s.admit_missing(&jobs, capacity)).await {
            Ok(a) => a,
            Err(m) => return TagEnd::Failed(m),
        };
        stats.queued += admitted.iter().filter(|a| **a == Admission::Queued).count();
        if admitted.contains(&Admission::QueueFull) {
            return TagEnd::QueueFull;
        }
        TagEnd::Done
    }
}

/// What a manifest found by a sweep asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// Scan these: the manifest, and an index's image children.
    Jobs(Vec<NewJob>),
    /// Nothing to scan, and why.
    Ignored(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    platform: Option<Platform>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
}

/// The digest of `bytes` in `digest`'s algorithm, or `None` for an
/// algorithm imgscan does not know.
fn digest_of(digest: &str, bytes: &[u8]) -> Option<String> {
    match digest.split_once(':')?.0 {
        "sha256" => Some(format!("sha256:{:x}", Sha256::digest(bytes))),
        "sha512" => Some(format!("sha512:{:x}", Sha512::digest(bytes))),
        _ => None,
    }
}

/// Decides what the manifest `repo@digest` (`bytes`, served as
/// `content_type`) asks for, as [`super::distribution::classify`] does for a
/// push event. Errors are for bytes that do not match the digest or do not
/// parse.
pub(crate) fn classify(
    registry: &str,
    repo: &str,
    tag: &str,
    digest: &str,
    content_type: Option<&str>,
    bytes: &[u8],
) -> Result<Found, String> {
    if !valid_digest(digest) {
        return Err(format!("`{digest}` is not a digest"));
    }
    let actual = digest_of(digest, bytes).unwrap_or_default();
    if actual != digest {
        return Err(format!(
            "the manifest does not match its digest {digest} (got {actual})"
        ));
    }
    let m: Manifest =
        serde_json::from_slice(bytes).map_err(|e| format!("the manifest is not JSON: {e}"))?;
    let header = content_type
        .map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|c| !c.is_empty());
    let Some(media_type) = m.media_type.clone().or(header) else {
        return Ok(Found::Ignored("no media type".into()));
    };
    if m.schema_version == Some(1) || SCHEMA1.contains(&media_type.as_str()) {
        return Ok(Found::Ignored("schema 1 manifests are not scanned".into()));
    }
    if let Some(a) = m.artifact_type.as_deref().filter(|a| !a.is_empty()) {
        return Ok(Found::Ignored(format!("an artifact ({a}), not an image")));
    }
    let job = |digest: &str, tag: Option<&str>, media_type: &str| NewJob {
        digest: digest.to_owned(),
        registry: registry.to_owned(),
        repository: repo.to_owned(),
        tag: tag.map(str::to_owned),
        media_type: media_type.to_owned(),
        source: "reconcile",
        auth: None,
    };
    if IMAGE_MANIFESTS.contains(&media_type.as_str()) {
        let config = m.config.as_ref().and_then(|c| c.media_type.as_deref());
        if !config.is_some_and(|c| IMAGE_CONFIGS.contains(&c)) {
            return Ok(Found::Ignored(format!(
                "an artifact: its config is {}",
                config.unwrap_or("missing")
            )));
        }
        return Ok(Found::Jobs(vec![job(digest, Some(tag), &media_type)]));
    }
    if INDEXES.contains(&media_type.as_str()) {
        let mut jobs = vec![job(digest, Some(tag), &media_type)];
        for child in &m.manifests {
            let Some(ct) = child
                .media_type
                .as_deref()
                .filter(|t| IMAGE_MANIFESTS.contains(t))
            else {
                continue;
            };
            let Some(cd) = child.digest.as_deref().filter(|d| valid_digest(d)) else {
                continue;
            };
            // Build attestations (buildx) are manifests, not images: the
            // scanner's classifier, so a scan and a sweep agree.
            let p = child.platform.as_ref();
            let attestation = media::is_attestation(
                p.map(|p| p.os.as_str()),
                p.map(|p| p.architecture.as_str()),
                child
                    .annotations
                    .get(media::REFERENCE_TYPE)
                    .map(String::as_str),
            );
            if attestation || jobs.iter().any(|j| j.digest == cd) {
                continue;
            }
            jobs.push(job(cd, None, ct));
        }
        return Ok(Found::Jobs(jobs));
    }
    Ok(Found::Ignored(format!(
        "not an image manifest ({media_type})"
    )))
}

/// [`Listing`] over a registry's HTTP API.
pub(crate) struct RegistryListing {
    pub(crate) client: Client,
    pub(crate) page_size: usize,
}

/// `last=` values: names and tags are validated, so only `/` needs escaping.
fn query_value(s: &str) -> String {
    s.replace('/', "%2F")
}

#[derive(Deserialize)]
struct CatalogPage {
    #[serde(default)]
    repositories: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct TagsPage {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

impl RegistryListing {
    async fn page(&self, base: &str, page: &Page) -> Result<(Vec<u8>, Option<String>), ListError> {
        let path = match page {
            Page::After(None) => format!("{base}?n={}", self.page_size),
            Page::After(Some(last)) => {
                format!("{base}?n={}&last={}", self.page_size, query_value(last))
            }
            Page::Link(p) => p.clone(),
        };
        let got = self.client.list_page(&path).await?;
        Ok((got.body, got.next))
    }
}

impl Listing for RegistryListing {
    async fn catalog(&self, page: &Page) -> Result<Listed, ListError> {
        let (body, next) = self.page("/v2/_catalog", page).await?;
        let p: CatalogPage = serde_json::from_slice(&body)
            .map_err(|e| ListError::Invalid(format!("the catalog page is not valid: {e}")))?;
        Ok(Listed {
            items: p.repositories.unwrap_or_default(),
            next,
        })
    }

    async fn tags(&self, repo: &str, page: &Page) -> Result<Listed, ListError> {
        let (body, next) = self.page(&format!("/v2/{repo}/tags/list"), page).await?;
        let p: TagsPage = serde_json::from_slice(&body)
            .map_err(|e| ListError::Invalid(format!("the tag list is not valid: {e}")))?;
        Ok(Listed {
            items: p.tags.unwrap_or_default(),
            next,
        })
    }

    async fn resolve(&self, repo: &str, tag: &str) -> Result<String, ListError> {
        let digest = self.client.manifest_digest(repo, tag).await?;
        if !valid_digest(&digest) {
            return Err(ListError::Invalid(format!(
                "{repo}:{tag} resolves to `{digest}`, not a digest"
            )));
        }
        Ok(digest)
    }

    async fn manifest(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<(Option<String>, Vec<u8>), ListError> {
        let got = self.client.manifest(repo, digest).await?;
        Ok((got.media_type, got.bytes))
    }
}

/// The listing client's options for `entry`: its credentials (only those:
/// the docker configs are not consulted), `ca_cert` and `insecure`, the
/// scanner's default timeouts and retries, and at most [`LIST_CALL_LIMIT`]
/// for one call, retries included.
fn listing_options(entry: &RegistryEntry) -> RegistryOptions {
    RegistryOptions {
        credentials: entry.credentials(),
        ca_certs: entry.ca_cert.iter().cloned().collect(),
        insecure: if entry.insecure {
            vec![entry.authority.clone()]
        } else {
            Vec::new()
        },
        timeout: LIST_CALL_LIMIT,
        ..RegistryOptions::default()
    }
}

/// What the reconciliation tasks share.
pub(crate) struct Shared {
    pub(crate) store: Arc<Store>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) wake: Arc<Wake>,
    pub(crate) capacity: usize,
    pub(crate) limits: ReconcileLimits,
}

/// Sweeps `entry` every `every`, forever (the task ends with the runtime).
/// The first sweep starts at once: pushes made while imgscan was down are
/// found at start.
pub(crate) async fn run(entry: RegistryEntry, every: Duration, shared: Arc<Shared>) {
    let client = match Client::new(&entry.url(), &listing_options(&entry)) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("reconciliation of registry `{}` is off: {e}", entry.name);
            return;
        }
    };
    tracing::info!(
        "reconciling registry `{}` ({}) every {}s, at most {} repositories and {} tags a sweep",
        entry.name,
        entry.url(),
        every.as_secs(),
        shared.limits.max_repositories,
        shared.limits.max_tags
    );
    let listing = RegistryListing {
        client,
        page_size: shared.limits.page_size,
    };
    let sweeper = Sweeper {
        listing: &listing,
        store: &shared.store,
        registry: &entry.name,
        capacity: shared.capacity,
        limits: shared.limits,
    };
    loop {
        // One replica sweeps (the one that runs the periodic work); the
        // cursor lives in the database, so whichever replica sweeps next,
        // or this one after a restart, goes on where the last sweep stopped.
        if !shared.store.leads() {
            tokio::time::sleep(super::retention::LEADER_CHECK).await;
            continue;
        }
        let name = entry.name.clone();
        let mut cursor = match db(&shared.store, move |s| s.cursor(&name)).await {
            Ok(c) => Cursor::from_saved(c),
            Err(m) => {
                tracing::error!("reconcile `{}`: reading the cursor: {m}", entry.name);
                tokio::time::sleep(QUEUE_FULL_RETRY.min(every)).await;
                continue;
            }
        };
        let mut stats = SweepStats::default();
        let end = sweeper.sweep(&mut cursor, &mut stats).await;
        let (name, saved) = (entry.name.clone(), cursor.to_saved());
        if let Err(m) = db(&shared.store, move |s| s.save_cursor(&name, &saved)).await {
            tracing::error!("reconcile `{}`: saving the cursor: {m}", entry.name);
        }
        shared
            .metrics
            .reconcile_sweep(end.label(), stats.queued as u64);
        if stats.queued > 0 {
            shared.wake.notify();
        }
        // Quiet when there was nothing to find: a large registry is swept
        // in limited steps all the time.
        let routine = matches!(end, SweepEnd::Complete | SweepEnd::Limited);
        if stats.queued > 0 || stats.skipped > 0 || !routine {
            tracing::info!("{}", &describe(&entry.name, &end, &stats));
        }
        let wait = match end {
            SweepEnd::QueueFull => every.min(QUEUE_FULL_RETRY),
            _ => every,
        };
        tokio::time::sleep(wait).await;
    }
}

/// One log line for a sweep.
fn describe(registry: &str, end: &SweepEnd, s: &SweepStats) -> String {
    let how = match end {
        SweepEnd::Complete => "full pass done".to_owned(),
        SweepEnd::Limited => "stopped at the per-sweep limit; the next sweep goes on".to_owned(),
        SweepEnd::QueueFull => "stopped: the queue is full; the next sweep goes on".to_owned(),
        SweepEnd::Failed(m) => format!("stopped: {m}; the next sweep retries"),
    };
    let mut line = format!(
        "reconcile `{registry}`: {} repositories, {} tags: {} queued, {} already known, \
         {} ignored, {} skipped; {how}",
        s.repositories, s.tags, s.queued, s.known, s.ignored, s.skipped
    );
    if let Some(e) = &s.first_error {
        line.push_str(&format!(" (first skip: {e})"));
    }
    line
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;

    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

    fn sha(bytes: &[u8]) -> String {
        format!("sha256:{:x}", Sha256::digest(bytes))
    }

    /// An image manifest unique to `n`, and its digest.
    fn image(n: usize) -> (String, Vec<u8>) {
        let b = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha(b"c"), "size": 1},
            "layers": [], "annotations": {"n": n.to_string()}
        }))
        .unwrap();
        (sha(&b), b)
    }

    /// A registry in memory. Pages hold `page` names and say `next` as
    /// `last=NAME`; `tags_ignore_last` answers every tag list whole, as
    /// distribution 2.x does.
    #[derive(Default)]
    struct Fake {
        repos: BTreeMap<String, BTreeMap<String, String>>,
        manifests: BTreeMap<String, Vec<u8>>,
        page: usize,
        tags_ignore_last: bool,
        down: Mutex<bool>,
    }

    impl Fake {
        fn add(&mut self, repo: &str, tag: &str, (digest, bytes): (String, Vec<u8>)) {
            self.repos
                .entry(repo.into())
                .or_default()
                .insert(tag.into(), digest.clone());
            self.manifests.insert(digest, bytes);
        }

        fn paged(&self, all: Vec<String>, page: &Page, honour_last: bool) -> Listed {
            let last = match page {
                Page::After(l) => l.clone(),
                Page::Link(l) => Some(l.trim_start_matches("last=").to_owned()),
            };
            let rest: Vec<String> = all
                .into_iter()
                .filter(|i| !honour_last || last.as_ref().is_none_or(|l| i > l))
                .collect();
            if !honour_last {
                return Listed {
                    items: rest,
                    next: None,
                };
            }
            let items: Vec<String> = rest.iter().take(self.page).cloned().collect();
            let next = (rest.len() > self.page).then(|| format!("last={}", items[items.len() - 1]));
            Listed { items, next }
        }

        fn check_up(&self) -> Result<(), ListError> {
            if *self.down.lock().unwrap() {
                return Err(ListError::Unavailable("connection refused".into()));
            }
            Ok(())
        }
    }

    impl Listing for Fake {
        async fn catalog(&self, page: &Page) -> Result<Listed, ListError> {
            self.check_up()?;
            Ok(self.paged(self.repos.keys().cloned().collect(), page, true))
        }
        async fn tags(&self, repo: &str, page: &Page) -> Result<Listed, ListError> {
            self.check_up()?;
            let Some(tags) = self.repos.get(repo) else {
                return Err(ListError::Refused {
                    status: 404,
                    message: "NAME_UNKNOWN".into(),
                });
            };
            Ok(self.paged(tags.keys().cloned().collect(), page, !self.tags_ignore_last))
        }
        async fn resolve(&self, repo: &str, tag: &str) -> Result<String, ListError> {
            self.check_up()?;
            self.repos
                .get(repo)
                .and_then(|t| t.get(tag))
                .cloned()
                .ok_or(ListError::Refused {
                    status: 404,
                    message: "MANIFEST_UNKNOWN".into(),
                })
        }
        async fn manifest(
            &self,
            _repo: &str,
            digest: &str,
        ) -> Result<(Option<String>, Vec<u8>), ListError> {
            self.check_up()?;
            Ok((None, self.manifests[digest].clone()))
        }
    }

    fn limits(repos: usize, tags: usize) -> ReconcileLimits {
        ReconcileLimits {
            max_repositories: repos,
            max_tags: tags,
            page_size: 2,
        }
    }

    /// A sweeper of the allowlist entry `local` over `listing`.
    fn sweeper<'a, L>(
        listing: &'a L,
        store: &'a Arc<Store>,
        capacity: usize,
        limits: ReconcileLimits,
    ) -> Sweeper<'a, L> {
        Sweeper {
            listing,
            store,
            registry: "local",
            capacity,
            limits,
        }
    }

    /// 3 repositories × 3 tags, 9 images.
    fn registry(tags_ignore_last: bool) -> Fake {
        let mut f = Fake {
            page: 2,
            tags_ignore_last,
            ..Fake::default()
        };
        for (r, repo) in ["lab/a", "lab/b", "lab/c"].iter().enumerate() {
            for t in 0..3 {
                f.add(repo, &format!("v{t}"), image(r * 3 + t));
            }
        }
        f
    }

    fn queued_tags(s: &Store) -> Vec<String> {
        let mut v: Vec<String> = s
            .recent(1000, None)
            .unwrap()
            .into_iter()
            .map(|j| format!("{}:{}", j.repository, j.tag.unwrap_or_default()))
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn bounded_sweeps_resume_until_the_whole_catalog_is_covered() {
        for ignore_last in [false, true] {
            let fake = registry(ignore_last);
            let store = Store::memory().unwrap();
            let sweeper = sweeper(&fake, &store, 100, limits(10, 4));
            let mut cursor = Cursor::default();
            let mut ends = Vec::new();
            let mut queued = Vec::new();
            for _ in 0..3 {
                let mut st = SweepStats::default();
                ends.push(sweeper.sweep(&mut cursor, &mut st).await);
                queued.push(st.queued);
                assert!(st.tags <= 4, "{st:?}");
            }
            assert_eq!(
                ends,
                [SweepEnd::Limited, SweepEnd::Limited, SweepEnd::Complete],
                "ignore_last {ignore_last}"
            );
            assert_eq!(queued, [4, 4, 1]);
            assert_eq!(cursor, Cursor::default());
            let all = queued_tags(&*store);
            assert_eq!(all.len(), 9, "{all:?}");
            assert_eq!(all[0], "lab/a:v0");
            assert_eq!(all[8], "lab/c:v2");
            let v = store.recent(1, None).unwrap().remove(0);
            assert_eq!(
                (v.source.as_str(), v.registry.as_str()),
                ("reconcile", "local")
            );
            // The next pass finds everything known and queues nothing.
            let mut st = SweepStats::default();
            let sweeper = Sweeper {
                limits: limits(10, 100),
                ..sweeper
            };
            assert_eq!(
                sweeper.sweep(&mut cursor, &mut st).await,
                SweepEnd::Complete
            );
            assert_eq!((st.queued, st.known, st.tags), (0, 9, 9));
        }
    }

    #[tokio::test]
    async fn the_repository_limit_holds() {
        let fake = registry(false);
        let store = Store::memory().unwrap();
        let sweeper = sweeper(&fake, &store, 100, limits(1, 100));
        let mut cursor = Cursor::default();
        for want in ["lab/a", "lab/b", "lab/c"] {
            let mut st = SweepStats::default();
            let end = sweeper.sweep(&mut cursor, &mut st).await;
            assert_eq!(st.repositories, 1);
            assert_eq!(st.queued, 3);
            assert!(queued_tags(&*store).iter().any(|t| t.starts_with(want)));
            let expect = if want == "lab/c" {
                SweepEnd::Complete
            } else {
                SweepEnd::Limited
            };
            assert_eq!(end, expect);
        }
    }

    #[tokio::test]
    async fn a_full_queue_stops_the_sweep_and_loses_nothing() {
        let fake = registry(true);
        let store = Store::memory().unwrap();
        let sweeper = sweeper(&fake, &store, 2, limits(100, 100));
        let mut cursor = Cursor::default();
        let mut rounds = 0;
        loop {
            let mut st = SweepStats::default();
            let end = sweeper.sweep(&mut cursor, &mut st).await;
            rounds += 1;
            assert!(store.counts().unwrap().queued <= 2);
            if end == SweepEnd::Complete {
                break;
            }
            assert_eq!(end, SweepEnd::QueueFull);
            assert_eq!(st.queued, 2);
            // The workers take the queued jobs.
            while let Some(c) = store.claim().unwrap() {
                store.finish_ok(&c, "{}", "{}", 1).unwrap();
            }
            assert!(rounds < 10);
        }
        assert_eq!(rounds, 5);
        assert_eq!(queued_tags(&*store).len(), 9);
    }

    #[tokio::test]
    async fn an_unavailable_registry_keeps_the_cursor() {
        let fake = registry(false);
        let store = Store::memory().unwrap();
        let sweeper = sweeper(&fake, &store, 100, limits(100, 4));
        let mut cursor = Cursor::default();
        let mut st = SweepStats::default();
        assert_eq!(sweeper.sweep(&mut cursor, &mut st).await, SweepEnd::Limited);
        let before = cursor.clone();
        *fake.down.lock().unwrap() = true;
        let mut st = SweepStats::default();
        assert!(matches!(
            sweeper.sweep(&mut cursor, &mut st).await,
            SweepEnd::Failed(_)
        ));
        assert_eq!(cursor, before);
        *fake.down.lock().unwrap() = false;
        let sweeper = Sweeper {
            limits: limits(100, 100),
            ..sweeper
        };
        let mut st = SweepStats::default();
        assert_eq!(
            sweeper.sweep(&mut cursor, &mut st).await,
            SweepEnd::Complete
        );
        assert_eq!(st.queued, 5);
        assert_eq!(queued_tags(&*store).len(), 9);
    }

    #[test]
    fn manifests_are_classified_like_push_events() {
        let (d, b) = image(1);
        let Ok(Found::Jobs(j)) = classify("local", "lab/a", "v1", &d, None, &b) else {
            panic!("an image is a job");
        };
        assert_eq!(j.len(), 1);
        assert_eq!(
            (j[0].tag.as_deref(), j[0].media_type.as_str()),
            (Some("v1"), OCI_MANIFEST)
        );
        // Bytes that are not the digest's.
        let (other, _) = image(2);
        assert!(classify("local", "lab/a", "v1", &other, None, &b).is_err());
        assert!(classify("local", "lab/a", "v1", "sha256:../x", None, &b).is_err());
        // A helm chart (an artifact by its config).
        let helm = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json"}, "layers": []}))
        .unwrap();
        assert!(matches!(
            classify("local", "c", "1", &sha(&helm), None, &helm),
            Ok(Found::Ignored(_))
        ));
        // An artifactType.
        let art = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.dev.sbom", "config": {"mediaType": OCI_CONFIG}}))
        .unwrap();
        assert!(matches!(
            classify("local", "c", "1", &sha(&art), None, &art),
            Ok(Found::Ignored(_))
        ));
        // Schema 1, by version; a docker v2 manifest by Content-Type alone.
        let s1 = br#"{"schemaVersion": 1, "name": "x"}"#;
        assert!(matches!(
            classify("local", "c", "1", &sha(s1), None, s1),
            Ok(Found::Ignored(_))
        ));
        let v2 = serde_json::to_vec(&json!({"schemaVersion": 2,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json"}}))
        .unwrap();
        assert!(matches!(
            classify(
                "local",
                "c",
                "1",
                &sha(&v2),
                Some("application/vnd.docker.distribution.manifest.v2+json; charset=utf-8"),
                &v2
            ),
            Ok(Found::Jobs(_))
        ));
        assert!(classify("local", "c", "1", &sha(b"nope"), None, b"nope").is_err());
    }

    #[test]
    fn an_index_queues_its_image_children_but_not_attestations() {
        let (a, _) = image(1);
        let (b, _) = image(2);
        let (att, _) = image(3);
        // os `unknown` alone is an image, as the scanner reads it.
        let (odd, _) = image(4);
        let idx = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": a, "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": OCI_MANIFEST, "digest": b, "platform": {"os": "linux", "architecture": "arm64"}},
                {"mediaType": OCI_MANIFEST, "digest": b},
                {"mediaType": OCI_MANIFEST, "digest": att, "platform": {"os": "unknown", "architecture": "unknown"},
                 "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
                {"mediaType": OCI_MANIFEST, "digest": odd, "platform": {"os": "unknown", "architecture": "amd64"}},
                {"mediaType": OCI_INDEX, "digest": sha(b"nested")},
                {"mediaType": OCI_MANIFEST, "digest": "sha256:bad"}
            ]}))
        .unwrap();
        let d = sha(&idx);
        let Ok(Found::Jobs(j)) = classify("local", "lab/m", "v1", &d, None, &idx) else {
            panic!("an index is a job");
        };
        let got: Vec<(&str, Option<&str>)> = j
            .iter()
            .map(|j| (j.digest.as_str(), j.tag.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (d.as_str(), Some("v1")),
                (a.as_str(), None),
                (b.as_str(), None),
                (odd.as_str(), None)
            ]
        );
    }

    /// The metrics pre-register one series per way a sweep ends.
    #[test]
    fn every_sweep_end_has_a_metrics_label() {
        use strum::VariantNames as _;
        assert_eq!(SweepEnd::VARIANTS, crate::metrics::RECONCILE_ENDS);
        assert_eq!(SweepEnd::Failed("x".into()).label(), "failed");
    }

    #[test]
    fn pagination_that_does_not_advance_ends_the_walk() {
        let l = |items: &[&str], next: Option<&str>| Listed {
            items: items.iter().map(|x| (*x).to_owned()).collect(),
            next: next.map(str::to_owned),
        };
        let first = Page::After(None);
        assert_eq!(advance(&first, &l(&["a"], None)), Ok(None));
        assert_eq!(
            advance(&first, &l(&["a"], Some("/v2/_catalog?last=a"))),
            Ok(Some(Page::Link("/v2/_catalog?last=a".into())))
        );
        assert!(advance(&first, &l(&[], Some("/v2/_catalog?last=a"))).is_err());
        let same = Page::Link("/v2/_catalog?last=a".into());
        assert!(advance(&same, &l(&["b"], Some("/v2/_catalog?last=a"))).is_err());
    }

    #[tokio::test]
    async fn a_looping_catalog_fails_the_sweep_instead_of_spinning() {
        struct Looping;
        impl Listing for Looping {
            async fn catalog(&self, _: &Page) -> Result<Listed, ListError> {
                Ok(Listed {
                    items: Vec::new(),
                    next: Some("/v2/_catalog?last=x".into()),
                })
            }
            async fn tags(&self, _: &str, _: &Page) -> Result<Listed, ListError> {
                unreachable!("no repository is listed")
            }
            async fn resolve(&self, _: &str, _: &str) -> Result<String, ListError> {
                unreachable!("no tag is listed")
            }
            async fn manifest(
                &self,
                _: &str,
                _: &str,
            ) -> Result<(Option<String>, Vec<u8>), ListError> {
                unreachable!("no tag is listed")
            }
        }
        let store = Store::memory().unwrap();
        let sweeper = sweeper(&Looping, &store, 10, limits(10, 10));
        let mut st = SweepStats::default();
        let end = sweeper.sweep(&mut Cursor::default(), &mut st).await;
        assert!(
            matches!(&end, SweepEnd::Failed(m) if m.contains("does not advance")),
            "{end:?}"
        );
    }

    #[test]
    fn resumed_pages_skip_what_was_seen() {
        let v = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(fresh(v(&["b", "a", "c", "a"]), None), v(&["a", "b", "c"]));
        assert_eq!(fresh(v(&["b", "a", "c"]), Some("a")), v(&["b", "c"]));
        assert_eq!(query_value("lab/app"), "lab%2Fapp");
    }

    #[test]
    fn sweep_log_lines_say_what_happened() {
        let st = SweepStats {
            repositories: 2,
            tags: 5,
            queued: 1,
            known: 3,
            ignored: 1,
            skipped: 1,
            first_error: Some("x:y: gone".into()),
        };
        let line = describe("local", &SweepEnd::QueueFull, &st);
        assert!(
            line.starts_with("reconcile `local`: 2 repositories, 5 tags: 1 queued"),
            "{line}"
        );
        assert!(line.contains("queue is full") && line.ends_with("(first skip: x:y: gone)"));
    }
}
