//! Where this node keeps file content (issue 18): `[storage] blobs` — the data dir by
//! default, or an S3-compatible bucket (`s3://bucket/prefix` with `[storage.s3]`) that several
//! nodes share — and `coworker migrate-blobs`, which copies one to the other, resumably.

use std::path::Path;
use std::sync::Arc;

use coworker_core::config::Config;
use coworker_tools::blobs::{Blobs, CopyReport, S3Settings};
use coworker_tools::secrets::Secrets;

/// The blob store `config` names. `secrets` resolves `secret:NAME` credentials.
pub async fn from_config(
    config: &Config,
    env: &[(String, String)],
    secrets: Option<&Arc<Secrets>>,
    data_dir: &Path,
) -> Result<Blobs, String> {
    let url = config.storage.blobs.trim();
    if url.is_empty() || url == "local" {
        return Ok(Blobs::local(data_dir));
    }
    Blobs::s3(&s3_settings(config, env, secrets).await?).map_err(|e| e.to_string())
}

/// The `[storage.s3]` settings with the secret key resolved.
pub async fn s3_settings(
    config: &Config,
    env: &[(String, String)],
    secrets: Option<&Arc<Secrets>>,
) -> Result<S3Settings, String> {
    let s3 = &config.storage.s3;
    let secrets = secrets.cloned();
    let secret = coworker_channels::slack::resolve_credential(
        "storage.s3.secret_access_key",
        &s3.secret_access_key,
        env,
        |name| async move {
            match secrets {
                Some(secrets) => secrets
                    .get_for(&name, "storage:s3")
                    .await
                    .map_err(|e| e.to_string()),
                None => Err("no master key on this machine".to_owned()),
            }
        },
    )
    .await
    .map_err(|e| e.to_string().replacen("slack.", "", 1))?
    .ok_or_else(|| {
        "storage.s3.secret_access_key is empty: set it (e.g. \"secret:s3-key\", stored with `coworker secrets set s3-key`)"
            .to_owned()
    })?;
    Ok(S3Settings {
        url: config.storage.blobs.trim().to_owned(),
        endpoint: s3.endpoint.trim().to_owned(),
        region: s3.region.trim().to_owned(),
        access_key_id: s3.access_key_id.trim().to_owned(),
        secret_access_key: secret,
        allow_http: s3.allow_http,
    })
}

/// `coworker migrate-blobs --to s3|local`: copies every blob of the data dir to the
/// configured bucket (`to_s3`), or back. Resumable (content-addressed: what is there is
/// skipped); `progress` gets (done, total).
pub async fn migrate(
    config: &Config,
    env: &[(String, String)],
    secrets: Option<&Arc<Secrets>>,
    data_dir: &Path,
    to_s3: bool,
    progress: impl FnMut(usize, usize),
) -> Result<CopyReport, String> {
    let local = Blobs::local(data_dir);
    if config.storage.blobs.trim().is_empty() {
        return Err(
            "storage.blobs is the data dir: set it to s3://bucket/prefix (and [storage.s3]) to migrate".to_owned(),
        );
    }
    let bucket = Blobs::s3(&s3_settings(config, env, secrets).await?).map_err(|e| e.to_string())?;
    let (from, to) = if to_s3 { (&local, &bucket) } else { (&bucket, &local) };
    coworker_tools::blobs::copy_all(from, to, progress)
        .await
        .map_err(|e| e.to_string())
}
