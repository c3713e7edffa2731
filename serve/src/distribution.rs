//! CNCF distribution (docker registry v2) notifications: `POST /v1/events`
//! and `POST /v1/events/{registry}`. See
//! <https://distribution.github.io/distribution/about/notifications/> and
//! distribution's `notifications/event.go`.
//!
//! The registry POSTs an envelope `{"events": [...]}` with content type
//! `application/vnd.docker.distribution.events.v1+json` (2.x, several events
//! per envelope) or `…events.v2+json` (3.x, one event), and treats any 2xx
//! or 3xx as delivered; anything else is retried, forever, and events to one
//! endpoint are sent one envelope at a time. So this endpoint:
//!
//! - answers at once: each push of an image manifest or index becomes a job
//!   in the database (committed before the answer) and the scan runs later;
//! - ignores blob pushes, pulls, mounts, deletes, schema 1 manifests and
//!   non-image artifacts, and dedupes by manifest digest;
//! - answers 503 with `Retry-After` when the queue is full, after keeping
//!   the events that fit (the registry resends the whole envelope; the
//!   ones already kept are then duplicates);
//! - answers 400 to a malformed envelope and 403 to one whose every event
//!   names a registry off the allowlist, but only `reject_limit` times for
//!   the same bytes: after that the envelope is acknowledged (200) and
//!   dropped, with a log line and a metric, so a poison message cannot block
//!   the registry's queue forever.
//!
//! # Security
//!
//! The registry an event came from is the one named in the endpoint path,
//! or else the allowlist entry whose host matches the event's `request.host`
//! (or the host of `target.url`). Either way the pull goes to the configured
//! scheme and host with the configured credentials: `target.url` is never
//! fetched.

use std::collections::BTreeMap;
use std::sync::Mutex;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::config::{RegistryEntry, ServeConfig, split_url};
use super::metrics::{EventOutcome, Refusal};
use super::store::{Admission, NewJob};
use super::{App, blocking};

pub(crate) const EVENTS_V1: &str = "application/vnd.docker.distribution.events.v1+json";
pub(crate) const EVENTS_V2: &str = "application/vnd.docker.distribution.events.v2+json";

/// The media types, from the scanner: one list for scans and the hook.
pub(crate) use scanner::source::media::{IMAGE_CONFIGS, IMAGE_MANIFESTS, INDEXES, SCHEMA1};

#[derive(Debug, Deserialize)]
struct Envelope {
    events: Vec<Value>,
}

#[derive(Debug, Deserialize)]
struct Event {
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    target: Option<Target>,
    #[serde(default)]
    request: Option<RequestInfo>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Target {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    repository: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    references: Vec<Descriptor>,
    #[serde(default)]
    artifact_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RequestInfo {
    #[serde(default)]
    host: Option<String>,
}

/// Whether `d` is a digest imgscan accepts: `sha256:<64 hex>` or
/// `sha512:<128 hex>`, lowercase; the scanner's own parser decides.
pub(crate) fn valid_digest(d: &str) -> bool {
    scanner::digest::Digest::parse(d).is_ok()
}

/// Whether `r` is a repository name as distribution defines it
/// (`reference/regexp.go`): `/`-separated components of lowercase letters
/// and digits joined by `.`, `_`, `__` or runs of `-`; 255 characters at most.
pub(crate) fn valid_repository(r: &str) -> bool {
    fn component(c: &str) -> bool {
        let b = c.as_bytes();
        let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
        if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
            return false;
        }
        let mut i = 0;
        while i < b.len() {
            if alnum(b[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < b.len() && !alnum(b[i]) {
                i += 1;
            }
            let sep = &c[start..i];
            let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
            if !ok {
                return false;
            }
        }
        true
    }
    !r.is_empty() && r.len() <= 255 && r.split('/').all(component)
}

/// Whether `t` is a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub(crate) fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

/// What one event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Classified {
    /// Scan this.
    Job(NewJob),
    /// Nothing to do, and why.
    Ignored(String),
    /// Names a registry that is not allowlisted.
    OffAllowlist(String),
    /// Not a valid event, and why.
    Malformed(String),
}

/// The `host[:port]` an event names: `request.host`, else the host of
/// `target.url`.
fn event_host(e: &Event) -> Option<String> {
    if let Some(h) = e
        .request
        .as_ref()
        .and_then(|r| r.host.as_deref())
        .filter(|h| !h.is_empty())
    {
        return Some(h.to_ascii_lowercase());
    }
    let url = e.target.as_ref()?.url.as_deref()?;
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    split_url(&format!("{scheme}://{authority}")).map(|(_, a)| a)
}

/// Decides what to do with one event. `named` is the registry of the
/// endpoint path, if the request used one.
pub(crate) fn classify(v: Value, cfg: &ServeConfig, named: Option<&RegistryEntry>) -> Classified {
    let e: Event = match serde_json::from_value(v) {
        Ok(e) => e,
        Err(err) => return Classified::Malformed(format!("not an event: {err}")),
    };
    let Some(action) = e.action.as_deref() else {
        return Classified::Malformed("the event has no action".into());
    };
    if action != "push" {
        return Classified::Ignored(format!("action {action}"));
    }
    let Some(t) = &e.target else {
        return Classified::Malformed("the push event has no target".into());
    };
    let Some(media_type) = t.media_type.as_deref() else {
        return Classified::Malformed("the push event's target has no mediaType".into());
    };
    let is_image = IMAGE_MANIFESTS.contains(&media_type);
    let is_index = INDEXES.contains(&media_type);
    if SCHEMA1.contains(&media_type) {
        return Classified::Ignored("schema 1 manifests are not scanned".into());
    }
    if !is_image && !is_index {
        return Classified::Ignored(format!("not a manifest ({media_type})"));
    }
    if let Some(a) = t.artifact_type.as_deref().filter(|a| !a.is_empty()) {
        return Classified::Ignored(format!("an artifact ({a}), not an image"));
    }
    if is_image && !t.references.is_empty() {
        let has_config = t.references.iter().any(|r| {
            r.media_type
                .as_deref()
                .is_some_and(|m| IMAGE_CONFIGS.contains(&m))
        });
        if !has_config {
            return Classified::Ignored(
                "an artifact: its manifest references no image config".into(),
            );
        }
    }
    let Some(digest) = t.digest.as_deref().filter(|d| valid_digest(d)) else {
        return Classified::Malformed(
            "the push event's target.digest is missing or invalid".into(),
        );
    };
    let Some(repository) = t.repository.as_deref().filter(|r| valid_repository(r)) else {
        return Classified::Malformed(
            "the push event's target.repository is missing or invalid".into(),
        );
    };
    let entry = match named {
        Some(n) => n,
        None => {
            let Some(host) = event_host(&e) else {
                return Classified::Malformed(
                    "the event names no registry host (request.host or target.url); \
                     use /v1/events/REGISTRY"
                        .into(),
                );
            };
            match cfg.registry_for_host(&host) {
                Some(r) => r,
                None => return Classified::OffAllowlist(host),
            }
        }
    };
    Classified::Job(NewJob {
        digest: digest.to_owned(),
        registry: entry.name.clone(),
        repository: repository.to_owned(),
        tag: t.tag.clone().filter(|t| valid_tag(t)),
        media_type: media_type.to_owned(),
        source: "distribution",
        auth: None,
    })
}

/// Identical refused deliveries, by sha256 of (path, body).
#[derive(Debug, Default)]
pub(crate) struct RejectMemo {
    seen: Mutex<BTreeMap<[u8; 32], u32>>,
}

impl RejectMemo {
    /// Counts a refusal; true when it has now been refused more than `limit`
    /// times and should be dropped instead.
    fn should_drop(&self, key: [u8; 32], limit: u32) -> bool {
        let Ok(mut m) = self.seen.lock() else {
            return false;
        };
        if m.len() >= 4096 {
            m.clear();
        }
        let n = m.entry(key).or_insert(0);
        *n += 1;
        if *n > limit {
            m.remove(&key);
            return true;
        }
        false
    }
}

fn outcome_json(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `POST /v1/events`.
pub(crate) async fn events(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(app, None, headers, body).await
}

/// `POST /v1/events/{registry}`.
pub(crate) async fn events_for(
    State(app): State<App>,
    Path(registry): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(app, Some(registry), headers, body).await
}

async fn handle(
    app: App,
    named: Option<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(r) => {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                app.metrics.refused(Refusal::TooLarge);
                tracing::info!("refused a notification larger than max_body_bytes (413)");
            }
            return r.into_response();
        }
    };
    let mut key = Sha256::new();
    key.update(named.as_deref().unwrap_or("").as_bytes());
    key.update([0]);
    key.update(&body);
    let key: [u8; 32] = key.finalize().into();
    let refuse = |status: StatusCode, message: String| -> Response {
        if app.memo.should_drop(key, app.cfg.reject_limit) {
            app.metrics.refused(Refusal::PoisonDropped);
            tracing::info!(
                "dropped a notification refused {} times already ({message}); answering 200 so \
                 the registry moves on",
                app.cfg.reject_limit
            );
            return outcome_json(
                StatusCode::OK,
                json!({"dropped": true, "error": {"message": message}}),
            );
        }
        tracing::info!("refused a notification ({}): {message}", status.as_u16());
        outcome_json(status, json!({"error": {"message": message}}))
    };

    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != EVENTS_V1 && essence != EVENTS_V2 && essence != "application/json" {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type must be {EVENTS_V1} or {EVENTS_V2}, not `{ct}`"),
        );
    }
    let entry = match named.as_deref() {
        Some(n) => match app.cfg.registry(n) {
            Some(e) => Some(e.clone()),
            None => {
                return refuse(
                    StatusCode::NOT_FOUND,
                    format!("no registry named `{n}` is on the allowlist"),
                );
            }
        },
        None => None,
    };
    let envelope: Envelope = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(e) => {
            app.metrics.event(EventOutcome::Malformed);
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("not a notification envelope: {e}"),
            );
        }
    };

    let mut results: Vec<Value> = Vec::with_capacity(envelope.events.len());
    let mut jobs: Vec<NewJob> = Vec::new();
    let mut job_slots: Vec<usize> = Vec::new();
    let mut malformed = 0usize;
    let mut off = 0usize;
    let mut off_hosts: Vec<String> = Vec::new();
    for v in envelope.events {
        let id = v.get("id").and_then(Value::as_str).map(str::to_owned);
        match classify(v, &app.cfg, entry.as_ref()) {
            Classified::Job(j) => {
                job_slots.push(results.len());
                results.push(json!({"id": id, "digest": j.digest}));
                jobs.push(j);
            }
            Classified::Ignored(why) => {
                app.metrics.event(EventOutcome::Ignored);
                results.push(json!({"id": id, "outcome": "ignored", "reason": why}));
            }
            Classified::OffAllowlist(host) => {
                app.metrics.event(EventOutcome::OffAllowlist);
                off += 1;
                results.push(json!({"id": id, "outcome": "off_allowlist",
                    "reason": format!("registry {host} is not on the allowlist")}));
                if !off_hosts.contains(&host) {
                    off_hosts.push(host);
                }
            }
            Classified::Malformed(why) => {
                app.metrics.event(EventOutcome::Malformed);
                malformed += 1;
                results.push(json!({"id": id, "outcome": "malformed", "reason": why}));
            }
        }
    }

    let admissions = if jobs.is_empty() {
        Vec::new()
    } else {
        let capacity = app.cfg.queue_capacity;
        let jobs2 = jobs.clone();
        match blocking(&app, move |s| s.admit(&jobs2, capacity)).await {
            Ok(a) => a,
            Err(resp) => return resp,
        }
    };
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut woke = false;
    for ((slot, j), a) in job_slots.iter().zip(&jobs).zip(&admissions) {
        let outcome = match a {
            Admission::Queued => EventOutcome::Queued,
            Admission::Requeued => EventOutcome::Requeued,
            Admission::Duplicate => EventOutcome::Duplicate,
            Admission::QueueFull => EventOutcome::QueueFull,
        };
        app.metrics.event(outcome);
        *counts.entry(outcome.as_str()).or_default() += 1;
        if let Some(o) = results[*slot].as_object_mut() {
            o.insert("outcome".into(), outcome.as_str().into());
        }
        if matches!(a, Admission::Queued | Admission::Requeued) {
            woke = true;
            tracing::info!(
                "queued {} ({} {}{})",
                j.digest,
                j.registry,
                j.repository,
                j.tag
                    .as_deref()
                    .map(|t| format!(":{t}"))
                    .unwrap_or_default()
            );
        }
    }
    if woke {
        app.wake.notify();
    }
    let kept = admissions
        .iter()
        .filter(|a| **a != Admission::QueueFull)
        .count();
    let full = admissions.len() - kept;
    let summary = json!({
        "queued": counts.get("queued").copied().unwrap_or(0)
            + counts.get("requeued").copied().unwrap_or(0),
        "duplicates": counts.get("duplicate").copied().unwrap_or(0),
        "queue_full": full,
        "ignored": results.iter().filter(|r| r["outcome"] == "ignored").count(),
        "off_allowlist": off,
        "malformed": malformed,
        "events": results,
    });
    if full > 0 {
        app.metrics.refused(Refusal::QueueFull);
        tracing::info!(
            "queue full: {full} event(s) not accepted, answering 503 so the registry retries"
        );
        let mut r = outcome_json(StatusCode::SERVICE_UNAVAILABLE, summary);
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(app.cfg.retry_after_secs()),
        );
        return r;
    }
    if kept == 0 && malformed > 0 {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("{malformed} malformed event(s) and nothing to scan"),
        );
    }
    if kept == 0 && off > 0 {
        return refuse(
            StatusCode::FORBIDDEN,
            format!("registry {} is not on the allowlist", off_hosts.join(", ")),
        );
    }
    let status = if counts.contains_key("queued") || counts.contains_key("requeued") {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    outcome_json(status, summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RegistryEntry, Secret, ServeConfig};

    fn cfg() -> ServeConfig {
        ServeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            database: crate::config::Database::Sqlite("x".into()),
            replica: "test".into(),
            job_lease: std::time::Duration::from_secs(30),
            token: Secret::new("x".repeat(40)),
            registries: vec![RegistryEntry {
                name: "local".into(),
                scheme: "http".into(),
                authority: "127.0.0.1:5000".into(),
                hosts: vec!["127.0.0.1:5000".into(), "registry.lan".into()],
                username: None,
                password: None,
                insecure: true,
                ca_cert: None,
                reconcile_every: None,
            }],
            workers: 1,
            queue_capacity: 10,
            fail_on: scanner::model::Severity::High,
            max_attempts: 3,
            retry_backoff: std::time::Duration::from_secs(1),
            retry_after: std::time::Duration::from_secs(1),
            drain_timeout: std::time::Duration::from_secs(1),
            max_body_bytes: 1 << 20,
            scan_timeout: std::time::Duration::from_secs(60),
            reject_limit: 3,
            platform: None,
            layer_cache: None,
            retention: crate::store::Retention {
                max_age_ms: None,
                max_finished: None,
            },
            reconcile: crate::config::ReconcileLimits::default(),
        }
    }

    const D: &str = "sha256:2d0f8323b9e10cf7cb2976fb31fd318082b8ec1af1ccfa909d06762b6dccbdfc";

    fn push(media_type: &str, host: &str) -> Value {
        json!({
            "id": "d5beb8cb", "action": "push",
            "target": {"mediaType": media_type, "digest": D, "repository": "lab/test",
                       "url": format!("http://{host}/v2/lab/test/manifests/{D}"), "tag": "v1",
                       "references": [{"mediaType": "application/vnd.oci.image.config.v1+json"}]},
            "request": {"host": host}
        })
    }

    #[test]
    fn manifest_pushes_become_jobs() {
        let c = cfg();
        match classify(push(IMAGE_MANIFESTS[0], "127.0.0.1:5000"), &c, None) {
            Classified::Job(j) => {
                assert_eq!(j.digest, D);
                assert_eq!(j.registry, "local");
                assert_eq!(j.tag.as_deref(), Some("v1"));
            }
            other => panic!("{other:?}"),
        }
        // An alias host maps to the same registry.
        assert!(matches!(
            classify(push(INDEXES[0], "REGISTRY.lan"), &c, None),
            Classified::Job(_)
        ));
    }

    #[test]
    fn blobs_pulls_and_artifacts_are_ignored() {
        let c = cfg();
        assert!(matches!(
            classify(push("application/octet-stream", "127.0.0.1:5000"), &c, None),
            Classified::Ignored(_)
        ));
        let mut pull = push(IMAGE_MANIFESTS[0], "127.0.0.1:5000");
        pull["action"] = "pull".into();
        assert!(matches!(classify(pull, &c, None), Classified::Ignored(_)));
        let mut art = push(IMAGE_MANIFESTS[0], "127.0.0.1:5000");
        art["target"]["references"] =
            json!([{"mediaType": "application/vnd.dev.cosign.artifact.sig.v1+json"}]);
        assert!(matches!(classify(art, &c, None), Classified::Ignored(_)));
    }

    #[test]
    fn off_allowlist_and_malformed_events() {
        let c = cfg();
        assert_eq!(
            classify(push(IMAGE_MANIFESTS[0], "evil.example:5000"), &c, None),
            Classified::OffAllowlist("evil.example:5000".into())
        );
        // A named endpoint decides the registry; the event's host is not used.
        assert!(matches!(
            classify(
                push(IMAGE_MANIFESTS[0], "evil.example:5000"),
                &c,
                c.registry("local")
            ),
            Classified::Job(_)
        ));
        let mut bad = push(IMAGE_MANIFESTS[0], "127.0.0.1:5000");
        bad["target"]["digest"] = "sha256:../../etc".into();
        assert!(matches!(classify(bad, &c, None), Classified::Malformed(_)));
        let mut bad = push(IMAGE_MANIFESTS[0], "127.0.0.1:5000");
        bad["target"]["repository"] = "Lab/../x".into();
        assert!(matches!(classify(bad, &c, None), Classified::Malformed(_)));
        assert!(matches!(
            classify(json!([1]), &c, None),
            Classified::Malformed(_)
        ));
    }

    #[test]
    fn repository_grammar() {
        for ok in ["a", "lab/test", "a.b_c__d---e/f0", "library/mongo"] {
            assert!(valid_repository(ok), "{ok}");
        }
        for bad in [
            "", "A", "a//b", "a/", "-a", "a..b", "a___b", "a b", "a/../b",
        ] {
            assert!(!valid_repository(bad), "{bad}");
        }
        assert!(valid_tag("v1.0-rc_1"));
        assert!(!valid_tag(".v1"));
        assert!(valid_digest(D));
        assert!(!valid_digest(&D.to_uppercase()));
    }

    #[test]
    fn poison_envelopes_are_dropped_after_the_limit() {
        let m = RejectMemo::default();
        let k = [7u8; 32];
        assert!(!m.should_drop(k, 2));
        assert!(!m.should_drop(k, 2));
        assert!(m.should_drop(k, 2));
    }
}
