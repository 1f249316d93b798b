//! `http.fetch` against its egress policy and a local test server. Refusals must happen
//! before any connection: nothing here ever sends traffic beyond 127.0.0.1, and the only
//! server is a local one.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use coworker_core::config::HttpFetchConfig;
use coworker_core::{RunId, TaskId};
use coworker_tools::egress::HostResolver;
use coworker_tools::http::{FetchMethod, HttpFetch, MAX_REDIRECTS};
use coworker_tools::schema::check_arguments;
use coworker_tools::{Tool, ToolCallContext};
use futures::future::BoxFuture;
use serde_json::json;

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Answers from a fixed table, counting lookups; unknown names fail to resolve.
struct StaticResolver {
    answers: HashMap<String, Vec<IpAddr>>,
    lookups: AtomicUsize,
}

impl StaticResolver {
    fn new(answers: &[(&str, &[&str])]) -> Arc<Self> {
        Arc::new(StaticResolver {
            answers: answers
                .iter()
                .map(|(host, ips)| (host.to_string(), ips.iter().map(|ip| ip.parse().unwrap()).collect()))
                .collect(),
            lookups: AtomicUsize::new(0),
        })
    }
}

impl HostResolver for StaticResolver {
    fn lookup(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let answer = self
            .answers
            .get(host)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such host in the test table"));
        Box::pin(async move { answer })
    }
}

/// A listener that must never see a connection.
struct Untouched(std::net::TcpListener);

impl Untouched {
    fn bind() -> Untouched {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Untouched(listener)
    }

    fn port(&self) -> u16 {
        self.0.local_addr().unwrap().port()
    }

    /// The kernel completes a handshake before `accept`, so a connection attempt would be
    /// waiting here; none must be.
    fn assert_untouched(&self) {
        match self.0.accept() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            other => panic!("the refused address was connected to: {other:?}"),
        }
    }
}

fn strict() -> HttpFetchConfig {
    HttpFetchConfig {
        timeout_secs: 5,
        ..HttpFetchConfig::default()
    }
}

fn private_allowed() -> HttpFetchConfig {
    HttpFetchConfig {
        allow_private: true,
        ..strict()
    }
}

async fn fetch(tool: &HttpFetch, url: &str) -> Result<String, String> {
    tool.fetch(url, FetchMethod::Get, None).await.map_err(|e| e.0)
}

#[tokio::test]
async fn loopback_private_and_metadata_literals_are_refused_before_connecting() {
    install_crypto();
    let tool = HttpFetch::new(&strict()).unwrap();
    let local = Untouched::bind();
    let url = format!("http://127.0.0.1:{}/", local.port());
    assert_eq!(
        fetch(&tool, &url).await.unwrap_err(),
        "refused: 127.0.0.1 is a loopback address (tools.http.allow_private = false; \
         add the host to tools.http.allow to permit it)"
    );
    local.assert_untouched();

    assert_eq!(
        fetch(&tool, "http://10.0.0.1/").await.unwrap_err(),
        "refused: 10.0.0.1 is a private address (tools.http.allow_private = false; \
         add the host to tools.http.allow to permit it)"
    );
    assert_eq!(
        fetch(&tool, "http://169.254.169.254/latest/meta-data/")
            .await
            .unwrap_err(),
        "refused: 169.254.169.254 is a cloud metadata address, which is never allowed"
    );
    assert!(
        fetch(&tool, "http://[fd00:ec2::254]/")
            .await
            .unwrap_err()
            .contains("metadata")
    );
    assert!(
        fetch(&tool, "http://100.64.1.1/")
            .await
            .unwrap_err()
            .contains("carrier-grade NAT")
    );
    assert_eq!(
        fetch(&tool, "file:///etc/passwd").await.unwrap_err(),
        "refused: only http and https URLs can be fetched, not file:"
    );
    assert!(
        fetch(&tool, "not a url")
            .await
            .unwrap_err()
            .starts_with("invalid URL \"not a url\"")
    );

    // allow_private never opens the metadata address.
    let open = HttpFetch::new(&private_allowed()).unwrap();
    assert!(
        fetch(&open, "http://169.254.169.254/")
            .await
            .unwrap_err()
            .contains("never allowed")
    );
}

#[tokio::test]
async fn names_are_checked_on_the_addresses_they_resolve_to() {
    install_crypto();
    let local = Untouched::bind();
    let system = HttpFetch::new(&strict()).unwrap();
    let error = fetch(&system, &format!("http://localhost:{}/", local.port()))
        .await
        .unwrap_err();
    assert!(
        error.starts_with("refused: localhost resolves to ") && error.contains("a loopback address"),
        "{error}"
    );
    local.assert_untouched();

    let resolver = StaticResolver::new(&[
        ("intranet.test", &["10.0.0.1"]),
        ("metadata.test", &["169.254.169.254"]),
        ("app.test", &["127.0.0.1"]),
    ]);
    let tool = HttpFetch::with_resolver(&strict(), resolver.clone()).unwrap();
    assert_eq!(
        fetch(&tool, "http://intranet.test/").await.unwrap_err(),
        "refused: intranet.test resolves to 10.0.0.1, a private address (tools.http.allow_private = false; \
         add the host to tools.http.allow to permit it)"
    );
    assert!(
        fetch(&tool, "http://metadata.test/")
            .await
            .unwrap_err()
            .contains("cloud metadata address")
    );
    let error = fetch(&tool, &format!("http://app.test:{}/", local.port()))
        .await
        .unwrap_err();
    assert!(
        error.contains("app.test resolves to 127.0.0.1, a loopback address"),
        "{error}"
    );
    local.assert_untouched();
    assert_eq!(
        resolver.lookups.load(Ordering::SeqCst),
        3,
        "each name was judged on its resolution, at connect time"
    );

    let open = HttpFetch::with_resolver(&private_allowed(), resolver).unwrap();
    assert!(
        fetch(&open, "http://metadata.test/")
            .await
            .unwrap_err()
            .contains("never allowed")
    );

    let denied = HttpFetch::with_resolver(
        &HttpFetchConfig {
            deny: vec!["*.test".into()],
            ..private_allowed()
        },
        StaticResolver::new(&[]),
    )
    .unwrap();
    assert_eq!(
        fetch(&denied, "http://app.test/").await.unwrap_err(),
        "refused: host app.test matches \"*.test\" in tools.http.deny"
    );
}

const PAGE: &str = r#"<html><head><title>Team page</title><script>track()</script></head>
<body><h1>Welcome</h1><p>Read the <a href="/guide">guide</a> first.</p></body></html>"#;

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn test_app() -> Router {
    Router::new()
        .route(
            "/page",
            get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE) }),
        )
        .route(
            "/data",
            get(|| async { axum::Json(json!({"ok": true, "items": [1, 2]})) }),
        )
        .route("/big", get(|| async { "0123456789".repeat(1000) }))
        .route(
            "/image",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "image/png")],
                    vec![0x89u8, b'P', b'N', b'G', 0, 0],
                )
            }),
        )
        .route("/missing", get(|| async { (StatusCode::NOT_FOUND, "no such page") }))
        .route("/to-page", get(|| async { Redirect::temporary("/page") }))
        .route(
            "/to-metadata",
            get(|| async { Redirect::temporary("http://169.254.169.254/latest/meta-data/") }),
        )
        .route("/to-private", get(|| async { Redirect::temporary("http://10.0.0.1/") }))
        .route("/loop", get(|| async { Redirect::temporary("/loop") }))
        .route(
            "/unlabelled",
            get(|| async { ([(header::CONTENT_TYPE, "application/x-thing")], "plain words") }),
        )
        .fallback(|| async { StatusCode::NOT_FOUND.into_response() })
}

#[tokio::test]
async fn local_pages_are_fetched_reduced_and_bounded_when_private_is_allowed() {
    install_crypto();
    let addr = serve(test_app()).await;
    let tool = HttpFetch::new(&private_allowed()).unwrap();
    let base = format!("http://{addr}");

    let page = fetch(&tool, &format!("{base}/page")).await.unwrap();
    assert_eq!(
        page,
        format!(
            "HTTP/1.1 200 OK\ncontent-type: text/html; charset=utf-8\n\n\
             Title: Team page\n\n# Welcome\n\nRead the guide [{base}/guide] first."
        )
    );

    let data = fetch(&tool, &format!("{base}/data")).await.unwrap();
    assert_eq!(
        data,
        "HTTP/1.1 200 OK\ncontent-type: application/json\n\n{\"items\":[1,2],\"ok\":true}"
    );

    let cut = tool
        .fetch(&format!("{base}/big"), FetchMethod::Get, Some(25))
        .await
        .unwrap();
    assert_eq!(
        cut,
        "HTTP/1.1 200 OK\ncontent-type: text/plain; charset=utf-8\n\
         truncated: only the first 25 bytes were read (max_bytes); the rest was not fetched\n\n\
         0123456789012345678901234"
    );
    let whole = fetch(&tool, &format!("{base}/big")).await.unwrap();
    assert!(!whole.contains("truncated"));
    assert!(whole.ends_with(&"0123456789".repeat(1000)));

    let image = fetch(&tool, &format!("{base}/image")).await.unwrap();
    assert!(
        image.contains("binary content (image/png, 6 bytes); not shown"),
        "{image}"
    );
    let unlabelled = fetch(&tool, &format!("{base}/unlabelled")).await.unwrap();
    assert!(unlabelled.ends_with("\n\nplain words"), "{unlabelled}");

    let missing = fetch(&tool, &format!("{base}/missing")).await.unwrap();
    assert!(missing.starts_with("HTTP/1.1 404 Not Found\n"), "{missing}");

    let head = tool
        .fetch(&format!("{base}/big"), FetchMethod::Head, None)
        .await
        .unwrap();
    assert_eq!(
        head,
        "HTTP/1.1 200 OK\ncontent-type: text/plain; charset=utf-8\ncontent-length: 10000\n"
    );

    let redirected = fetch(&tool, &format!("{base}/to-page")).await.unwrap();
    assert!(
        redirected.contains(&format!("final url: {base}/page\n")),
        "{redirected}"
    );
    assert!(redirected.contains("# Welcome"));

    assert_eq!(
        fetch(&tool, &format!("{base}/to-metadata")).await.unwrap_err(),
        "refused: redirect to http://169.254.169.254/latest/meta-data/: \
         169.254.169.254 is a cloud metadata address, which is never allowed"
    );
    let looping = fetch(&tool, &format!("{base}/loop")).await.unwrap_err();
    assert!(
        looping.contains(&format!("stopped after {MAX_REDIRECTS} redirects")),
        "{looping}"
    );
}

#[tokio::test]
async fn an_allow_entry_opens_one_host_and_redirects_stay_checked() {
    install_crypto();
    let addr = serve(test_app()).await;
    let tool = HttpFetch::new(&HttpFetchConfig {
        allow: vec!["127.0.0.1".into()],
        ..strict()
    })
    .unwrap();
    let base = format!("http://{addr}");
    assert!(
        fetch(&tool, &format!("{base}/page"))
            .await
            .unwrap()
            .contains("# Welcome")
    );
    assert_eq!(
        fetch(&tool, &format!("{base}/to-private")).await.unwrap_err(),
        "refused: redirect to http://10.0.0.1/: 10.0.0.1 is a private address \
         (tools.http.allow_private = false; add the host to tools.http.allow to permit it)"
    );

    // A name on the allow list may resolve to a private address; the connection goes to
    // the address the guarded resolver passed, on the URL's port.
    let resolver = StaticResolver::new(&[("wiki.corp.test", &["127.0.0.1"]), ("other.corp.test", &["127.0.0.1"])]);
    let named = HttpFetch::with_resolver(
        &HttpFetchConfig {
            allow: vec!["wiki.*.test".into()],
            ..strict()
        },
        resolver,
    )
    .unwrap();
    let page = fetch(&named, &format!("http://wiki.corp.test:{}/page", addr.port()))
        .await
        .unwrap();
    assert!(
        page.contains("[http://wiki.corp.test:"),
        "links resolve against the page: {page}"
    );
    let error = fetch(&named, &format!("http://other.corp.test:{}/page", addr.port()))
        .await
        .unwrap_err();
    assert!(
        error.contains("other.corp.test resolves to 127.0.0.1, a loopback address"),
        "{error}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_clearly() {
    install_crypto();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts and holds every connection without a byte in reply.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let tool = HttpFetch::new(&HttpFetchConfig {
        timeout_secs: 1,
        ..private_allowed()
    })
    .unwrap();
    let error = fetch(&tool, &format!("http://{addr}/slow")).await.unwrap_err();
    assert_eq!(
        error,
        format!(
            "fetching http://{addr}/slow timed out after 1 s (tools.http.timeout_secs); \
             the server did not answer in time — try again later or another source"
        )
    );
}

#[tokio::test]
async fn the_tool_interface_validates_and_calls() {
    install_crypto();
    let addr = serve(test_app()).await;
    let tool = HttpFetch::new(&HttpFetchConfig {
        max_bytes: 1000,
        ..private_allowed()
    })
    .unwrap();
    let spec = tool.spec();
    assert_eq!(spec.name, "http.fetch");
    assert_eq!(spec.risk, coworker_core::domain::RiskClass::Read);
    assert!(spec.idempotent);

    let schema = &spec.input_schema;
    assert_eq!(check_arguments(schema, &json!({"url": "https://example.com"})), Ok(()));
    assert_eq!(
        check_arguments(schema, &json!({"url": "https://example.com", "method": "POST"})).unwrap_err(),
        "at /method: \"POST\" is not one of \"GET\" or \"HEAD\""
    );
    assert_eq!(
        check_arguments(schema, &json!({"url": "https://example.com", "max_bytes": 5000})).unwrap_err(),
        "at /max_bytes: 5000 is greater than the maximum of 1000"
    );
    assert_eq!(
        check_arguments(schema, &json!({})).unwrap_err(),
        "at the top level: \"url\" is a required property"
    );

    let context = ToolCallContext {
        task_id: TaskId::new(),
        run_id: RunId::new(),
        call_id: "t1:call_0".into(),
        delegator: None,
    };
    let head = tool
        .call(context, json!({"url": format!("http://{addr}/big"), "method": "HEAD"}))
        .await
        .unwrap();
    assert!(head.ends_with("content-length: 10000\n"), "{head}");
}
