//! A headless Chromium driven over the W3C WebDriver protocol (Debian's `chromium` and
//! `chromium-driver`, installed by `.ci/run`), for browser tests of the web app. A small
//! client of our own: the handful of commands the tests need, on the reqwest the workspace
//! already builds.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::process::PATIENCE;

/// The key W3C WebDriver uses for element references.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How often a waiting test re-checks its condition.
const RECHECK: Duration = Duration::from_millis(100);

fn executable(env: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.exists(),
        "{} not found; install Debian's chromium and chromium-driver (`.ci/run` does), or set {env}",
        path.display()
    );
    path
}

/// A running chromedriver with one headless browser session. Both end when dropped.
pub struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
    artifacts: PathBuf,
}

/// Chromium's flags: headless, and quiet on the network. Without the background-networking
/// flags Chromium reaches for Google's services (component updates, sync, safe browsing,
/// DNS prefetch) at every start; the host-resolver rule makes any name but the loopback ones
/// fail to resolve and the proxy catches the rest, so nothing a page or Chromium itself asks
/// for leaves the machine.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-quic",
    "--dns-prefetch-disable",
    "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication,SafeBrowsing,InterestFeedContentSuggestions",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    // Anything else by address goes to a closed local port (loopback is never proxied).
    "--proxy-server=http://127.0.0.1:9",
];

/// A found element.
#[derive(Debug, Clone)]
pub struct Element {
    id: String,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium; screenshots go to `artifacts`.
    ///
    /// # Panics
    /// If chromedriver or Chromium are missing or do not start: a browser test cannot go on.
    pub async fn start(artifacts: &Path) -> Browser {
        let driver_path = executable("COWORKER_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = executable("COWORKER_TEST_CHROMIUM", "/usr/bin/chromium");
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().expect("bound").port()
        };
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            // Its own process group, so Chromium goes with it when the test ends.
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let mut browser = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            http: crate::node::http_client(),
            artifacts: artifacts.to_owned(),
        };
        std::fs::create_dir_all(artifacts).expect("artifacts dir");
        let started = Instant::now();
        loop {
            let ready = browser
                .http
                .get(format!("{}/status", browser.base))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success());
            if ready.is_some() {
                break;
            }
            assert!(started.elapsed() < PATIENCE, "chromedriver did not become ready");
            tokio::time::sleep(RECHECK).await;
        }
        let session = browser
            .command(
                reqwest::Method::POST,
                "/session",
                json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": chromium,
                        "args": CHROMIUM_ARGS,
                    },
                }}}),
            )
            .await;
        let id = session["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {session}"))
            .to_owned();
        browser.base = format!("{}/session/{id}", browser.base);
        browser
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base));
        if method != reqwest::Method::GET {
            request = request.json(&body);
        }
        let response = request.send().await.expect("webdriver request");
        let status = response.status();
        let body: Value = response.json().await.expect("webdriver JSON");
        assert!(
            status.is_success(),
            "webdriver {method} {path} failed ({status}): {body}"
        );
        body
    }

    async fn try_command(&self, method: reqwest::Method, path: &str, body: Value) -> Result<Value, Value> {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base));
        if method != reqwest::Method::GET {
            request = request.json(&body);
        }
        let response = request.send().await.expect("webdriver request");
        let ok = response.status().is_success();
        let body: Value = response.json().await.expect("webdriver JSON");
        if ok { Ok(body["value"].clone()) } else { Err(body) }
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", json!({"url": url})).await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.command(reqwest::Method::GET, "/url", Value::Null).await["value"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// All elements matching a CSS selector now (maybe none).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let found = self
            .command(
                reqwest::Method::POST,
                "/elements",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found["value"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|e| e[ELEMENT_KEY].as_str())
                    .map(|id| Element { id: id.to_owned() })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first element matching `css`, waiting (boundedly) for it to appear.
    ///
    /// # Panics
    /// If it never appears: the page is not what the test expects.
    pub async fn find(&self, css: &str) -> Element {
        let started = Instant::now();
        loop {
            if let Some(element) = self.find_all(css).await.into_iter().next() {
                return element;
            }
            if started.elapsed() > PATIENCE {
                let source = self.source().await;
                let source: String = source.chars().take(4000).collect();
                panic!("no element matches {css:?} on {}:\n{source}", self.url().await);
            }
            tokio::time::sleep(RECHECK).await;
        }
    }

    /// Waits until `condition` (re-evaluated on the live page) holds.
    ///
    /// # Panics
    /// If it does not within the test patience.
    pub async fn wait_for<F, Fut>(&self, what: &str, mut condition: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let started = Instant::now();
        while !condition().await {
            if started.elapsed() > PATIENCE {
                let source = self.source().await;
                let source: String = source.chars().take(4000).collect();
                panic!("timed out waiting for {what} on {}:\n{source}", self.url().await);
            }
            tokio::time::sleep(RECHECK).await;
        }
    }

    /// The visible text of an element.
    pub async fn text(&self, element: &Element) -> String {
        self.try_command(
            reqwest::Method::GET,
            &format!("/element/{}/text", element.id),
            Value::Null,
        )
        .await
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
    }

    /// The text content of the first element matching `css` (also when it is not rendered,
    /// as in a background tab), or `None` if there is none.
    pub async fn text_content(&self, css: &str) -> Option<String> {
        self.script(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            json!([css]),
        )
        .await
        .as_str()
        .map(str::to_owned)
    }

    /// An attribute of an element.
    pub async fn attribute(&self, element: &Element, name: &str) -> Option<String> {
        self.try_command(
            reqwest::Method::GET,
            &format!("/element/{}/attribute/{name}", element.id),
            Value::Null,
        )
        .await
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
    }

    /// Types into an input.
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{}/clear", element.id),
            json!({}),
        )
        .await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{}/value", element.id),
            json!({"text": text}),
        )
        .await;
    }

    /// Clicks the first element matching `css`.
    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{}/click", element.id),
            json!({}),
        )
        .await;
    }

    /// Runs a script in the page (its `return` value comes back; a returned promise is
    /// awaited).
    pub async fn script(&self, script: &str, args: Value) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
        .await["value"]
            .clone()
    }

    /// The current window's handle.
    pub async fn window(&self) -> String {
        self.command(reqwest::Method::GET, "/window", Value::Null).await["value"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Opens a new tab; returns its handle (the current window stays current).
    pub async fn new_tab(&self) -> String {
        self.command(reqwest::Method::POST, "/window/new", json!({"type": "tab"}))
            .await["value"]["handle"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Makes the window with this handle current.
    pub async fn switch_to(&self, handle: &str) {
        self.command(reqwest::Method::POST, "/window", json!({"handle": handle}))
            .await;
    }

    /// The page's HTML.
    pub async fn source(&self) -> String {
        self.try_command(reqwest::Method::GET, "/source", Value::Null)
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Saves a PNG screenshot of the page as `<artifacts>/<name>.png`; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine as _;
        let shot = self.command(reqwest::Method::GET, "/screenshot", Value::Null).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["value"].as_str().unwrap_or_default())
            .expect("screenshot is base64");
        let path = self.artifacts.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }
}

impl Browser {
    /// Ends the session (closing Chromium) and chromedriver.
    pub async fn quit(self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Whatever is left of chromedriver's process group (Chromium and its helpers).
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(format!("-{}", self.driver.id()))
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
