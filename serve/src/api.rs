//! The results API, `/healthz`, `/metrics`, and the bearer-token check in
//! front of everything but `/healthz`.
//!
//! - `GET /v1/reports/{digest}[?format=json|sarif]`: the report of a
//!   manifest digest (SARIF also for `Accept: application/sarif+json`);
//!   202 with `Retry-After` while queued or running, 502 when the scan
//!   failed, 404 when the digest was never pushed.
//! - `GET /v1/scans[?limit=N&state=queued|running|done|failed]`: the most
//!   recent scans, newest first, each with its verdict (`pass`/`fail` at
//!   `fail_on`).
//! - `GET /v1/scans/{digest}`: one scan's status.
//!
//! # Security
//!
//! The token is compared as SHA-256 digests in constant time, so neither its
//! length nor a prefix leaks through timing; it is never logged, and neither
//! is a presented `Authorization` header.

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use formats::{EmitOptions, OutputFormat};
use scanner::model::Report;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::distribution::valid_digest;
use super::layers::CacheStats;
use super::metrics::Refusal;
use super::store::{Counts, DONE, FAILED, JobView, QUEUED, RUNNING};
use super::{App, blocking};

/// `{"error":{"message":…}}` with `status`.
pub(crate) fn json_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": {"message": message}}).to_string(),
    )
        .into_response()
}

fn json_ok(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The token a request presents: `Authorization: Bearer T`,
/// `Authorization: Basic base64(any:T)` (Harbor's "Basic" registration), or
/// `X-ScannerAdapter-API-Key: T` (Harbor's "APIKey" registration).
fn presented_token(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, rest) = v.trim().split_once(' ')?;
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some(rest.trim().to_owned());
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()?;
            let text = String::from_utf8(raw).ok()?;
            return text.split_once(':').map(|(_, p)| p.to_owned());
        }
        return None;
    }
    headers
        .get("x-scanneradapter-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_owned())
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware: 401 unless the request carries the API token.
pub(crate) async fn require_token(State(app): State<App>, req: Request, next: Next) -> Response {
    let ok = presented_token(req.headers()).is_some_and(|t| {
        let d: [u8; 32] = Sha256::digest(t.as_bytes()).into();
        constant_time_eq(&d, &app.token_digest)
    });
    if ok {
        return next.run(req).await;
    }
    app.metrics.refused(Refusal::Unauthorized);
    let mut r = json_error(
        StatusCode::UNAUTHORIZED,
        "missing or wrong API token (Authorization: Bearer TOKEN)",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"imgscan\""),
    );
    r
}

/// `GET /healthz`: 200 when the database answers, 503 when it does not
/// (the readiness answer: a replica without its database takes no jobs
/// and answers notifications with 503). No token, no details beyond the
/// replica and the backend.
pub(crate) async fn healthz(State(app): State<App>) -> Response {
    let body = |status: &str| json!({"status": status, "replica": app.cfg.replica, "database": app.store.backend()});
    match blocking(&app, |s| s.ping()).await {
        Ok(()) => json_ok(StatusCode::OK, &body("ok")),
        Err(_) => json_ok(
            StatusCode::SERVICE_UNAVAILABLE,
            &body("database unavailable"),
        ),
    }
}

/// `GET /livez`: 200 while the process serves HTTP, whatever the database
/// says (a liveness probe: restarting a replica does not bring its
/// database back, and it reconnects by itself).
pub(crate) async fn livez() -> Response {
    json_ok(StatusCode::OK, &json!({"status": "alive"}))
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(app): State<App>) -> Response {
    // The process's own counters are served even when the database is
    // unreachable (its gauges then read 0, and imgscan_database_up says so).
    let (counts, up) = match blocking(&app, |s| s.counts()).await {
        Ok(c) => (c, true),
        Err(_) => (Counts::default(), false),
    };
    // Scans in flight are this replica's; the queue is the fleet's.
    let counts = Counts {
        running: app.metrics.in_flight(),
        ..counts
    };
    let layers = match app.layers.clone() {
        Some(l) => tokio::task::spawn_blocking(move || l.stats())
            .await
            .unwrap_or_default(),
        None => CacheStats::default(),
    };
    let mut text = app
        .metrics
        .render(counts, app.cfg.queue_capacity, app.cfg.workers, layers);
    text.push_str(&replica_gauges(app.store.backend(), up, app.store.leads()));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        with_replica_label(&text, &app.cfg.replica),
    )
        .into_response()
}

/// The gauges that describe this replica.
fn replica_gauges(backend: &str, up: bool, leads: bool) -> String {
    format!(
        "# HELP imgscan_replica_info This replica and its database backend.\n\
         # TYPE imgscan_replica_info gauge\n\
         imgscan_replica_info{{database=\"{backend}\"}} 1\n\
         # HELP imgscan_database_up Whether the database answered this scrape.\n\
         # TYPE imgscan_database_up gauge\n\
         imgscan_database_up {}\n\
         # HELP imgscan_periodic_work Whether this replica runs reconciliation and retention now.\n\
         # TYPE imgscan_periodic_work gauge\n\
         imgscan_periodic_work {}\n",
        u8::from(up),
        u8::from(leads)
    )
}

/// Adds `replica="ID"` to every sample of `text`, so that the series of
/// several replicas behind one Service stay apart. `replica` is validated
/// by the config (letters, digits, `.`, `-`, `_`): it needs no escaping.
pub(crate) fn with_replica_label(text: &str, replica: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            out.push_str(line);
        } else if let Some((name, rest)) = line.split_once('{') {
            out.push_str(&format!("{name}{{replica=\"{replica}\",{rest}"));
        } else if let Some((name, value)) = line.split_once(' ') {
            out.push_str(&format!("{name}{{replica=\"{replica}\"}} {value}"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Fallback for unknown paths.
pub(crate) async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "no such endpoint")
}

fn with_verdict(app: &App, mut v: JobView) -> JobView {
    v.verdict = match (&v.summary, v.state.as_str()) {
        (Some(s), DONE) => Some(if s.at_or_above(app.cfg.fail_on) > 0 {
            "fail"
        } else {
            "pass"
        }),
        _ => None,
    };
    v
}

#[derive(Debug, Deserialize)]
pub(crate) struct ReportQuery {
    format: Option<String>,
}

/// `GET /v1/reports/{digest}`.
pub(crate) async fn report(
    State(app): State<App>,
    Path(digest): Path<String>,
    Query(q): Query<ReportQuery>,
    headers: HeaderMap,
) -> Response {
    if !valid_digest(&digest) {
        return json_error(
            StatusCode::BAD_REQUEST,
            "the digest must be sha256:<64 hex> or sha512:<128 hex>",
        );
    }
    let wants_sarif = match q.format.as_deref() {
        Some(f) if f.eq_ignore_ascii_case("sarif") => true,
        Some(f) if f.eq_ignore_ascii_case("json") => false,
        Some(f) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                &format!("unknown format `{f}` (json or sarif)"),
            );
        }
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/sarif+json")),
    };
    let found = match blocking(&app, move |s| s.job_report(&digest)).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Some((view, report)) = found else {
        return json_error(
            StatusCode::NOT_FOUND,
            "no push of this digest has been seen",
        );
    };
    let view = with_verdict(&app, view);
    match (view.state.as_str(), report) {
        (DONE, Some(text)) => {
            let report: Report = match serde_json::from_str(&text) {
                Ok(r) => r,
                Err(e) => {
                    return json_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &format!("the stored report cannot be read: {e}"),
                    );
                }
            };
            let (format, ct) = if wants_sarif {
                (OutputFormat::Sarif, "application/sarif+json")
            } else {
                (OutputFormat::Json, "application/json")
            };
            match formats::render(format, &EmitOptions::default(), &[report]) {
                Ok(bytes) => {
                    let mut r = ([(header::CONTENT_TYPE, ct)], bytes).into_response();
                    if let Some(v) = view.verdict
                        && let Ok(h) = HeaderValue::from_str(v)
                    {
                        r.headers_mut().insert("x-imgscan-verdict", h);
                    }
                    r
                }
                Err(e) => json_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("rendering the report: {e:#}"),
                ),
            }
        }
        (FAILED, _) => json_ok(
            StatusCode::BAD_GATEWAY,
            &serde_json::to_value(&view).unwrap_or_default(),
        ),
        _ => {
            let mut r = json_ok(
                StatusCode::ACCEPTED,
                &serde_json::to_value(&view).unwrap_or_default(),
            );
            let secs = view
                .retry_in_secs
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(app.cfg.retry_after_secs())
                .max(1);
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            r
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    limit: Option<usize>,
    state: Option<String>,
}

/// `GET /v1/scans`.
pub(crate) async fn scans(State(app): State<App>, Query(q): Query<ListQuery>) -> Response {
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    if let Some(s) = q.state.as_deref()
        && ![QUEUED, RUNNING, DONE, FAILED].contains(&s)
    {
        return json_error(
            StatusCode::BAD_REQUEST,
            "state must be queued, running, done or failed",
        );
    }
    let state = q.state.clone();
    let list = match blocking(&app, move |s| s.recent(limit, state.as_deref())).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let list: Vec<JobView> = list.into_iter().map(|v| with_verdict(&app, v)).collect();
    json_ok(
        StatusCode::OK,
        &json!({
            "fail_on": app.cfg.fail_on.as_str(),
            "scans": list,
        }),
    )
}

/// `GET /v1/scans/{digest}`.
pub(crate) async fn scan(State(app): State<App>, Path(digest): Path<String>) -> Response {
    if !valid_digest(&digest) {
        return json_error(
            StatusCode::BAD_REQUEST,
            "the digest must be sha256:<64 hex> or sha512:<128 hex>",
        );
    }
    match blocking(&app, move |s| s.job(&digest)).await {
        Ok(Some(v)) => json_ok(
            StatusCode::OK,
            &serde_json::to_value(with_verdict(&app, v)).unwrap_or_default(),
        ),
        Ok(None) => json_error(
            StatusCode::NOT_FOUND,
            "no push of this digest has been seen",
        ),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_names_its_replica() {
        let text = "# HELP a A.\n# TYPE a gauge\na 3\nb_total{result=\"hit\"} 1\n";
        assert_eq!(
            with_replica_label(text, "imgscan-0"),
            "# HELP a A.\n# TYPE a gauge\na{replica=\"imgscan-0\"} 3\n\
             b_total{replica=\"imgscan-0\",result=\"hit\"} 1\n"
        );
        let g = replica_gauges("postgres", false, true);
        assert!(g.contains("imgscan_replica_info{database=\"postgres\"} 1\n"));
        assert!(g.contains("imgscan_database_up 0\n"));
        assert!(g.contains("imgscan_periodic_work 1\n"));
    }

    #[test]
    fn tokens_are_read_from_the_three_header_forms() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(presented_token(&h).as_deref(), Some("abc"));
        let basic = base64::engine::general_purpose::STANDARD.encode("harbor:abc");
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {basic}").parse().unwrap(),
        );
        assert_eq!(presented_token(&h).as_deref(), Some("abc"));
        let mut h = HeaderMap::new();
        h.insert("x-scanneradapter-api-key", "abc".parse().unwrap());
        assert_eq!(presented_token(&h).as_deref(), Some("abc"));
        assert_eq!(presented_token(&HeaderMap::new()), None);
    }

    #[test]
    fn digests_compare_whole() {
        let a = [1u8; 32];
        let mut b = a;
        assert!(constant_time_eq(&a, &b));
        b[31] = 0;
        assert!(!constant_time_eq(&a, &b));
    }
}
