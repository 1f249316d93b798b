//! The HTTP client behind the work commands (`task`, `approvals`, `coworkers`): they call a
//! running node's API like `gh` or `kubectl`, so wake-ups, audit and permissions have one
//! path. The node URL comes from `--server`, `COWORKER_SERVER`, the URL a running node
//! recorded in its data dir (`node.url`, so a node started with `--listen` is found), or the
//! config; the token from `COWORKER_TOKEN` or, next to the node, the owner credential in its
//! data dir.

use std::path::Path;

use anyhow::{Context, bail};
use coworker_core::config::Config;
use serde_json::Value;

/// A configured API client.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// Resolves the server and token, or explains how to provide them.
    pub fn new(server: Option<&str>, config: &Config) -> anyhow::Result<Client> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let recorded = coworker_server::datadir::read_node_url(Path::new(&config.storage.data_dir));
        let base = match server.map(str::to_owned).or(recorded) {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let listen = config.server.listen.replace("0.0.0.0", "127.0.0.1");
                if config.server.public_url.is_empty() {
                    format!("http://{listen}")
                } else {
                    config.public_url()
                }
            }
        };
        let token = match std::env::var("COWORKER_TOKEN").ok().filter(|t| !t.trim().is_empty()) {
            Some(token) => token.trim().to_owned(),
            None => coworker_server::bootstrap::read_owner_credential(Path::new(&config.storage.data_dir)).with_context(|| {
                format!(
                    "no API token: set COWORKER_TOKEN, or run this next to `coworker serve` (it writes {}/owner.token)",
                    config.storage.data_dir
                )
            })?,
        };
        let http = reqwest::Client::builder().build().context("building the HTTP client")?;
        Ok(Client { http, base, token })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request.bearer_auth(&self.token).send().await.with_context(|| {
            format!(
                "cannot reach the Coworker node at {} (is `coworker serve` running? use --server or COWORKER_SERVER)",
                self.base
            )
        })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let error = &body["error"];
            let message = error["message"].as_str().unwrap_or("request failed");
            let hint = error["hint"]
                .as_str()
                .filter(|h| !h.is_empty())
                .map(|h| format!("\n  hint: {h}"))
                .unwrap_or_default();
            bail!("{message} (HTTP {}){hint}", status.as_u16());
        }
        Ok(body)
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(format!("{}/api/v1{path}", self.base))).await
    }

    /// `GET path`, returning the raw body (downloads).
    pub async fn get_bytes(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let response = self
            .http
            .get(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| {
                format!(
                    "cannot reach the Coworker node at {} (is `coworker serve` running? use --server or COWORKER_SERVER)",
                    self.base
                )
            })?;
        let status = response.status();
        if !status.is_success() {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let message = body["error"]["message"].as_str().unwrap_or("request failed");
            bail!("{message} (HTTP {})", status.as_u16());
        }
        Ok(response.bytes().await.context("reading the download")?.to_vec())
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.put(format!("{}/api/v1{path}", self.base)).json(body))
            .await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.post(format!("{}/api/v1{path}", self.base)).json(body))
            .await
    }

    /// `PATCH path` with a JSON body.
    pub async fn patch(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.patch(format!("{}/api/v1{path}", self.base)).json(body))
            .await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.delete(format!("{}/api/v1{path}", self.base))).await
    }
}
