//! Harbor's Pluggable Scanner Adapter API v1.1 (goharbor/pluggable-scanner-spec,
//! `api/spec/scanner-adapter-openapi-v1.1.yaml`; client in goharbor/harbor
//! `src/pkg/scan/rest/v1`): <https://github.com/goharbor/pluggable-scanner-spec>.
//!
//! - `GET /api/v1/metadata`: one `vulnerability` capability consuming OCI and
//!   Docker v2 image manifests and producing
//!   `application/vnd.security.vulnerability.report; version=1.1`. Harbor
//!   registers only scanners that produce a vulnerability or SBOM report, so
//!   each privilege finding becomes a vulnerability item and Harbor's
//!   "prevent vulnerable images from running" policy can block on it.
//! - `POST /api/v1/scan`: 202 `{"id"}` once the job is in the database.
//! - `GET /api/v1/scan/{id}/report`: 302 with `Refresh-After` (which Harbor
//!   reads, as an int8) and `Retry-After` (which the spec's README shows)
//!   until done; then the report. Harbor's client gives up after 5 s, so
//!   nothing here waits for a scan.
//!
//! Harbor passes the registry URL and a robot-account authorization with each
//! request. The URL only selects an allowlisted registry (by host); the pull
//! goes to the configured scheme and host. The metadata asks for `Basic`
//! authorization, which becomes the pull credentials.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use scanner::model::{Report, Severity};
use scanner::source::media::{DOCKER_MANIFEST, OCI_MANIFEST};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::config::{Secret, split_url};
use super::distribution::{valid_digest, valid_repository};
use super::metrics::Refusal;
use super::pull::PullAuth;
use super::store::{Admission, DONE, FAILED, NewJob};
use super::{App, blocking, rfc3339};

pub(crate) const METADATA_MIME_1_0: &str =
    "application/vnd.scanner.adapter.metadata+json; version=1.0";
pub(crate) const METADATA_MIME_1_1: &str =
    "application/vnd.scanner.adapter.metadata+json; version=1.1";
pub(crate) const SCAN_RESPONSE_MIME: &str =
    "application/vnd.scanner.adapter.scan.response+json; version=1.0";
pub(crate) const ERROR_MIME: &str = "application/vnd.scanner.adapter.error+json; version=1.0";
/// The report imgscan declares.
pub(crate) const VULN_REPORT_1_1: &str =
    "application/vnd.security.vulnerability.report; version=1.1";
/// Harbor's native report: the same schema; served when asked for (or when
/// no `Accept` is sent, as the spec says).
pub(crate) const HARBOR_NATIVE_1_0: &str =
    "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0";
/// Harbor drops scan ids after 30 minutes of polling; keep them a day.
pub(crate) const SCAN_ID_TTL_MS: i64 = 24 * 3600 * 1000;

/// An error in the adapter's media type: `{"error":{"message":…}}`.
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, ERROR_MIME)],
        json!({"error": {"message": message}}).to_string(),
    )
        .into_response()
}

fn normalise_mime(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase()
}

/// `GET /api/v1/metadata`.
pub(crate) async fn metadata(headers: HeaderMap) -> Response {
    // Harbor's client asks for version=1.0; the body is the same.
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = if normalise_mime(accept).contains("version=1.0") {
        METADATA_MIME_1_0
    } else {
        METADATA_MIME_1_1
    };
    let body = json!({
        "scanner": {
            "name": "imgscan",
            "vendor": "imgscan",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "capabilities": [{
            "type": "vulnerability",
            "consumes_mime_types": [OCI_MANIFEST, DOCKER_MANIFEST],
            "produces_mime_types": [VULN_REPORT_1_1],
        }],
        "properties": {
            "harbor.scanner-adapter/scanner-type": "privilege-misconfiguration",
            "harbor.scanner-adapter/registry-authorization-type": "Basic",
            "org.imgscan/findings": "root and privilege problems as vulnerability items: id = rule id, package = path",
        },
    });
    ([(header::CONTENT_TYPE, mime)], body.to_string()).into_response()
}

#[derive(Debug, Deserialize)]
struct ScanRequest {
    registry: RegistryRef,
    artifact: Artifact,
}

#[derive(Debug, Deserialize)]
struct RegistryRef {
    url: String,
    #[serde(default)]
    authorization: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Artifact {
    repository: String,
    digest: String,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    mime_type: Option<String>,
}

/// Turns Harbor's `registry.authorization` into pull credentials.
pub(crate) fn pull_auth(authorization: &str) -> anyhow::Result<PullAuth> {
    let (scheme, value) = authorization
        .trim()
        .split_once(' ')
        .ok_or_else(|| anyhow::anyhow!("the registry authorization is not `SCHEME VALUE`"))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        anyhow::bail!(
            "the registry authorization uses `{scheme}`; imgscan asks Harbor for `Basic` \
             (harbor.scanner-adapter/registry-authorization-type)"
        );
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| anyhow::anyhow!("the Basic registry authorization is not base64"))?;
    let text = String::from_utf8(decoded)
        .map_err(|_| anyhow::anyhow!("the Basic registry authorization is not UTF-8"))?;
    let (user, pass) = text
        .split_once(':')
        .ok_or_else(|| anyhow::anyhow!("the Basic registry authorization has no `:`"))?;
    Ok(PullAuth::Basic {
        username: user.to_owned(),
        password: Secret::new(pass.to_owned()),
        origin: "the Harbor scan request",
    })
}

fn new_scan_id(digest: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = Sha256::new();
    h.update(digest.as_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
            .to_le_bytes(),
    );
    h.update(std::process::id().to_le_bytes());
    let hex = scanner::digest::to_hex(&h.finalize());
    // UUID-shaped, as the spec's example.
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `POST /api/v1/scan`.
pub(crate) async fn scan(State(app): State<App>, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(r) => {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                app.metrics.refused(Refusal::TooLarge);
            }
            return error(r.status(), &r.body_text());
        }
    };
    let req: ScanRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) if e.is_data() => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("invalid scan request: {e}"),
            );
        }
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("the scan request is not JSON: {e}"),
            );
        }
    };
    let a = &req.artifact;
    if !valid_digest(&a.digest) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "artifact.digest must be sha256:<64 hex> or sha512:<128 hex>",
        );
    }
    if !valid_repository(&a.repository) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "artifact.repository is not a valid repository name",
        );
    }
    let Some((_, authority)) = split_url(&req.registry.url) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "registry.url must be http(s)://HOST[:PORT]",
        );
    };
    let Some(entry) = app.cfg.registry_for_host(&authority) else {
        tracing::info!(
            "refused a Harbor scan of {}: registry {authority} is not on the allowlist",
            a.digest
        );
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!(
                "registry {authority} is not on imgscan's allowlist; add it as a [[registry]] \
                 (url or hosts) in the serve config"
            ),
        );
    };
    let auth = req.registry.authorization.filter(|s| !s.trim().is_empty());
    if let Some(value) = &auth
        && let Err(e) = pull_auth(value)
    {
        return error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string());
    }
    let tag = a.tag.clone().filter(|t| super::distribution::valid_tag(t));
    let job = NewJob {
        digest: a.digest.clone(),
        registry: entry.name.clone(),
        repository: a.repository.clone(),
        tag,
        media_type: a
            .mime_type
            .clone()
            .unwrap_or_else(|| OCI_MANIFEST.to_owned()),
        source: "harbor",
        auth,
    };
    let id = new_scan_id(&job.digest);
    let capacity = app.cfg.queue_capacity;
    let mime = a.mime_type.clone();
    let (id2, job2) = (id.clone(), job.clone());
    let admitted = blocking(&app, move |s| {
        s.admit_harbor(&id2, &job2, mime.as_deref(), capacity)
    })
    .await;
    match admitted {
        Err(resp) => resp,
        Ok(Admission::QueueFull) => {
            app.metrics.refused(Refusal::QueueFull);
            let mut r = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the scan queue is full; retry later",
            );
            retry_headers(&mut r, app.cfg.retry_after_secs(), false);
            r
        }
        Ok(admission) => {
            app.metrics.harbor_request();
            if matches!(admission, Admission::Queued | Admission::Requeued) {
                app.wake.notify();
            }
            tracing::info!(
                "Harbor scan request {id} for {} ({} {}): {}",
                job.digest,
                entry.name,
                job.repository,
                match admission {
                    Admission::Queued => "queued",
                    Admission::Requeued => "queued again after a failure",
                    _ => "already known",
                }
            );
            (
                StatusCode::ACCEPTED,
                [(header::CONTENT_TYPE, SCAN_RESPONSE_MIME)],
                json!({ "id": id }).to_string(),
            )
                .into_response()
        }
    }
}

fn retry_headers(r: &mut Response, secs: u64, refresh: bool) {
    // Harbor parses Refresh-After as an int8.
    let secs = secs.clamp(1, 127);
    let v = HeaderValue::from(secs);
    if refresh {
        r.headers_mut().insert("refresh-after", v.clone());
    }
    r.headers_mut().insert(header::RETRY_AFTER, v);
}

/// `GET /api/v1/scan/{id}/report`.
pub(crate) async fn report(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(normalise_mime)
        .unwrap_or_default();
    let mime = if accept.contains(&normalise_mime(VULN_REPORT_1_1)) {
        VULN_REPORT_1_1
    } else if accept.is_empty()
        || accept.contains(&normalise_mime(HARBOR_NATIVE_1_0))
        || accept.contains("*/*")
        || accept.contains("application/json")
    {
        HARBOR_NATIVE_1_0
    } else {
        return error(
            StatusCode::NOT_IMPLEMENTED,
            &format!("imgscan produces only `{VULN_REPORT_1_1}` reports"),
        );
    };
    let found = blocking(&app, move |s| {
        let Some(scan) = s.harbor_scan(&id)? else {
            return Ok(None);
        };
        let job = s.job_report(&scan.digest)?;
        Ok(Some((scan, job)))
    })
    .await;
    let (scan, job) = match found {
        Err(resp) => return resp,
        Ok(None) | Ok(Some((_, None))) => {
            return error(StatusCode::NOT_FOUND, "no such scan request");
        }
        Ok(Some((scan, Some(job)))) => (scan, job),
    };
    let (view, report) = job;
    match (view.state.as_str(), report) {
        (DONE, Some(report)) => {
            let report: Report = match serde_json::from_str(&report) {
                Ok(r) => r,
                Err(e) => {
                    return error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &format!("the stored report cannot be read: {e}"),
                    );
                }
            };
            let body = vulnerability_report(
                &report,
                &scan.repository,
                &scan.digest,
                scan.tag.as_deref(),
                scan.mime_type.as_deref(),
                view.finished_at.as_deref(),
            );
            ([(header::CONTENT_TYPE, mime)], body.to_string()).into_response()
        }
        (FAILED, _) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!(
                "the scan failed: {}",
                view.error.as_deref().unwrap_or("unknown error")
            ),
        ),
        _ => {
            let mut r = StatusCode::FOUND.into_response();
            retry_headers(&mut r, app.cfg.retry_after_secs(), true);
            r
        }
    }
}

/// Harbor's severity scale (`Unknown`, `Negligible`, `Low`, `Medium`,
/// `High`, `Critical`).
pub(crate) fn harbor_severity(s: Severity) -> &'static str {
    match s {
        Severity::Info => "Negligible",
        Severity::Low => "Low",
        Severity::Medium => "Medium",
        Severity::High => "High",
        Severity::Critical => "Critical",
    }
}

/// The `HarborVulnerabilityReport` for a scan: one vulnerability item per
/// finding, with the rule id as the id, the path as the package (the image
/// config for config findings), the layer as the version, and imgscan's
/// severity on Harbor's scale.
pub(crate) fn vulnerability_report(
    report: &Report,
    repository: &str,
    digest: &str,
    tag: Option<&str>,
    mime_type: Option<&str>,
    generated_at: Option<&str>,
) -> Value {
    let vulnerabilities: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let meta = f.rule_id.meta();
            let version = match (&f.layer_index, &f.layer_digest) {
                (Some(i), Some(d)) => format!("layer {i} {d}"),
                (Some(i), None) => format!("layer {i}"),
                _ => "image config".to_owned(),
            };
            json!({
                "id": f.rule_id.as_str(),
                "package": f.path.clone().unwrap_or_else(|| "(image config)".to_owned()),
                "version": version,
                "fix_version": "",
                "severity": harbor_severity(f.severity),
                "description": f.message,
                "links": [meta.help_uri()],
                "preferred_cvss": {
                    "score_v3": f.severity.security_severity().parse::<f64>().ok(),
                },
                "cwe_ids": [],
                "vendor_attributes": {
                    "rule_code": meta.code,
                    "imgscan_severity": f.severity.as_str(),
                    "fingerprint": f.fingerprint,
                    "layer_index": f.layer_index,
                    "layer_digest": f.layer_digest,
                    "layer_created_by": f.layer_created_by,
                    "details": f.details,
                },
            })
        })
        .collect();
    let top = report
        .findings
        .iter()
        .map(|f| f.severity)
        .max()
        .map_or("Unknown", harbor_severity);
    json!({
        "generated_at": generated_at.map_or_else(|| rfc3339(super::store::now_ms()), str::to_owned),
        "artifact": {
            "repository": repository,
            "digest": digest,
            "tag": tag,
            "mime_type": mime_type.unwrap_or(OCI_MANIFEST),
        },
        "scanner": {
            "name": "imgscan",
            "vendor": "imgscan",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "severity": top,
        "vulnerabilities": vulnerabilities,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_authorization_decodes() {
        let v = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("robot$lib+scan:s3cret")
        );
        match pull_auth(&v).unwrap() {
            PullAuth::Basic {
                username, password, ..
            } => {
                assert_eq!(username, "robot$lib+scan");
                assert_eq!(password.expose(), "s3cret");
            }
            PullAuth::Configured => panic!("expected Basic"),
        }
        assert!(pull_auth("Bearer abc").is_err());
        assert!(pull_auth("Basic !!!").is_err());
    }

    #[test]
    fn scan_ids_are_unique() {
        let a = new_scan_id("sha256:1");
        let b = new_scan_id("sha256:1");
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
    }

    #[test]
    fn severities_map_onto_harbors_scale() {
        assert_eq!(harbor_severity(Severity::Critical), "Critical");
        assert_eq!(harbor_severity(Severity::Info), "Negligible");
    }
}
