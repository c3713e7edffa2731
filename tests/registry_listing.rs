//! The registry listing client (`scanner::source::registry::listing`, what
//! `imgscan serve`'s reconciliation walks catalogs with) against the
//! in-process fake registry ([`crate::support::fake_registry`]): `Link`
//! pagination, the `registry:catalog:*` token, Basic credentials, the pulls'
//! retries with `Retry-After`, and the classification a sweep acts on
//! (unavailable, refused, invalid). Real catalogs, with a private CA, are in
//! `serve.rs` (e2e tier).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use scanner::source::registry::listing::{Client, ListError};
use scanner::source::registry::{Credentials, RegistryOptions};
use serde_json::json;
use sha2::Digest as _;

use crate::support::fake_registry::{FakeRegistry, Request, Response};

const TOKEN: &str = "catalog-token";

/// Quick retries: two tries, a short backoff.
fn options() -> RegistryOptions {
    RegistryOptions {
        attempts: 2,
        backoff: Duration::from_millis(10),
        timeout: Duration::from_secs(30),
        ..RegistryOptions::default()
    }
}

fn client(reg: &FakeRegistry, opts: &RegistryOptions) -> Client {
    Client::new(&format!("http://{}", reg.host()), opts).unwrap()
}

fn block_on<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn decoded_scope(req: &Request) -> Option<String> {
    req.query.split('&').find_map(|kv| {
        kv.strip_prefix("scope=").map(|s| {
            s.replace("%3A", ":")
                .replace("%2A", "*")
                .replace("%2F", "/")
        })
    })
}

/// Catalog pages behind a Bearer challenge: the token is asked for the
/// `registry:catalog:*` scope, once, and the `Link` of each page leads to
/// the next until there is none.
#[test]
fn catalog_pages_follow_links_with_one_catalog_token() {
    let reg = FakeRegistry::start(|req| {
        let host = req.header("host").unwrap_or("127.0.0.1").to_owned();
        if req.path == "/token" {
            return if decoded_scope(req).as_deref() == Some("registry:catalog:*") {
                Response::json(200, &json!({"token": TOKEN, "expires_in": 300}))
            } else {
                Response::error(403, "DENIED", "unknown scope")
            };
        }
        if req.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
            return Response::error(401, "UNAUTHORIZED", "authentication required").header(
                "WWW-Authenticate",
                &format!(
                    "Bearer realm=\"http://{host}/token\",service=\"fake\",scope=\"registry:catalog:*\""
                ),
            );
        }
        match (req.path.as_str(), req.query.as_str()) {
            ("/v2/_catalog", "n=1") => Response::json(200, &json!({"repositories": ["lab/a"]}))
                .header("Link", "</v2/_catalog?last=lab%2Fa&n=1>; rel=\"next\""),
            ("/v2/_catalog", "last=lab%2Fa&n=1") => {
                Response::json(200, &json!({"repositories": ["lab/b"]}))
            }
            _ => Response::error(404, "NOT_FOUND", "no such page"),
        }
    });
    let c = client(&reg, &options());
    let (first, second) = block_on(async {
        let first = c.list_page("/v2/_catalog?n=1").await.unwrap();
        let next = first.next.clone().expect("a Link to the next page");
        (first, c.list_page(&next).await.unwrap())
    });
    assert_eq!(first.next.as_deref(), Some("/v2/_catalog?last=lab%2Fa&n=1"));
    let repos: serde_json::Value = serde_json::from_slice(&second.body).unwrap();
    assert_eq!(repos["repositories"], json!(["lab/b"]));
    assert_eq!(second.next, None);
    let tokens = reg.requests().iter().filter(|r| r.path == "/token").count();
    assert_eq!(tokens, 1, "the token was not cached: {:?}", reg.requests());
}

/// Configured credentials go as Basic; without them a 401 is a refusal
/// that says credentials are needed, and the password is in no message.
#[test]
fn basic_credentials_are_sent_and_their_absence_explained() {
    use base64::Engine as _;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("u:s3cret")
    );
    let reg = FakeRegistry::start(move |req| {
        if req.header("authorization") == Some(expected.as_str()) {
            Response::json(200, &json!({"name": "lab/a", "tags": ["v1"]}))
        } else {
            Response::error(401, "UNAUTHORIZED", "authentication required")
                .header("WWW-Authenticate", "Basic realm=\"fake\"")
        }
    });
    let opts = RegistryOptions {
        credentials: Some(Credentials {
            username: "u".into(),
            password: "s3cret".into(),
            origin: "the test".into(),
        }),
        ..options()
    };
    let page = block_on(client(&reg, &opts).list_page("/v2/lab/a/tags/list?n=10")).unwrap();
    assert!(String::from_utf8_lossy(&page.body).contains("v1"));

    let e = block_on(client(&reg, &options()).list_page("/v2/lab/a/tags/list?n=10")).unwrap_err();
    match &e {
        ListError::Refused {
            status: 401,
            message,
        } => {
            assert!(message.contains("needs credentials"), "{message}");
        }
        other => panic!("not a refusal: {other:?}"),
    }
    assert!(!e.to_string().contains("s3cret"));
}

/// A 503 with `Retry-After` is retried after the delay it asks for, as
/// pulls retry; one that stays is unavailable (the sweep comes back later)
/// once the tries are spent.
#[test]
fn unavailable_answers_are_retried_then_given_up() {
    let refused = AtomicUsize::new(0);
    let reg = FakeRegistry::start(move |req| {
        if req.path == "/v2/lab/a/tags/list" && refused.fetch_add(1, Ordering::SeqCst) == 0 {
            return Response::status(503).header("Retry-After", "1");
        }
        if req.path == "/v2/lab/down/tags/list" {
            return Response::status(503);
        }
        Response::json(200, &json!({"name": "lab/a", "tags": ["v1"]}))
    });
    let c = client(&reg, &options());
    let start = Instant::now();
    let page = block_on(c.list_page("/v2/lab/a/tags/list?n=10")).unwrap();
    assert!(String::from_utf8_lossy(&page.body).contains("v1"));
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "Retry-After was not honoured: {:?}",
        start.elapsed()
    );
    let e = block_on(c.list_page("/v2/lab/down/tags/list?n=10")).unwrap_err();
    match &e {
        ListError::Unavailable(m) => {
            assert!(m.contains("after 2 attempts") && m.contains("503"), "{m}");
        }
        other => panic!("not unavailable: {other:?}"),
    }
    let down = reg
        .requests()
        .iter()
        .filter(|r| r.path == "/v2/lab/down/tags/list")
        .count();
    assert_eq!(down, 2);
}

/// A registry that cannot be reached is unavailable, not refused.
#[test]
fn an_unreachable_registry_is_unavailable() {
    let port = crate::support::ports::free_port();
    let c = Client::new(&format!("http://127.0.0.1:{port}"), &options()).unwrap();
    let e = block_on(c.list_page("/v2/_catalog?n=1")).unwrap_err();
    assert!(matches!(e, ListError::Unavailable(_)), "{e:?}");
}

/// A 404 is a refusal of that resource (the sweep skips it); a `Link` to
/// another origin and a body over the bound are invalid answers.
#[test]
fn refusals_and_invalid_answers() {
    let big = vec![b' '; scanner::source::registry::listing::MAX_LIST_BYTES + 1];
    let reg = FakeRegistry::start(move |req| match req.path.as_str() {
        "/v2/lab/gone/tags/list" => Response::error(404, "NAME_UNKNOWN", "repository unknown"),
        "/v2/lab/elsewhere/tags/list" => Response::json(200, &json!({"tags": []})).header(
            "Link",
            "<http://evil.example/v2/lab/elsewhere/tags/list?last=x>; rel=\"next\"",
        ),
        "/v2/lab/huge/tags/list" => Response::status(200).body("application/json", big.clone()),
        _ => Response::error(404, "NOT_FOUND", "no"),
    });
    let c = client(&reg, &options());
    let e = block_on(c.list_page("/v2/lab/gone/tags/list")).unwrap_err();
    assert!(matches!(e, ListError::Refused { status: 404, .. }), "{e:?}");
    let e = block_on(c.list_page("/v2/lab/elsewhere/tags/list")).unwrap_err();
    assert!(
        matches!(&e, ListError::Invalid(m) if m.contains("evil.example")),
        "{e:?}"
    );
    let e = block_on(c.list_page("/v2/lab/huge/tags/list")).unwrap_err();
    assert!(
        matches!(&e, ListError::Invalid(m) if m.contains("larger than")),
        "{e:?}"
    );
}

/// A tag resolves to the `Docker-Content-Digest` of a `HEAD`; a registry
/// that sends none on `HEAD` has its manifest fetched and hashed. The
/// manifest comes with its `Content-Type`.
#[test]
fn manifests_resolve_by_head_or_by_hash() {
    let manifest = br#"{"schemaVersion":2}"#.to_vec();
    let digest = format!("sha256:{:x}", sha2::Sha256::digest(&manifest));
    let (m, d) = (manifest.clone(), digest.clone());
    let reg = FakeRegistry::start(move |req| {
        let r = Response::status(200).body("application/vnd.oci.image.manifest.v1+json", m.clone());
        if req.path == "/v2/lab/a/manifests/v1" {
            r.header("Docker-Content-Digest", &d)
        } else {
            r
        }
    });
    let c = client(&reg, &options());
    assert_eq!(block_on(c.manifest_digest("lab/a", "v1")).unwrap(), digest);
    assert_eq!(block_on(c.manifest_digest("lab/b", "v1")).unwrap(), digest);
    let methods: Vec<String> = reg.requests().iter().map(|r| r.method.clone()).collect();
    assert_eq!(methods, ["HEAD", "HEAD", "GET"]);
    let got = block_on(c.manifest("lab/a", &digest)).unwrap();
    assert_eq!(got.bytes, manifest);
    assert_eq!(
        got.media_type.as_deref(),
        Some("application/vnd.oci.image.manifest.v1+json")
    );
}
