//! Content-addressed file content (issue 18): on the local disk (`{data_dir}/blobs/sha256`,
//! the default) or on S3-compatible storage (`[storage] blobs = "s3://bucket/prefix"`) when
//! several nodes share the files. Either way a blob is named by the SHA-256 of its bytes,
//! sharded by its first two hex digits (`sha256/ab/abcdef…`), written once, and checked
//! against its name when read. [`copy_all`] moves a store's blobs to another, resumably.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, ObjectStore, PutMode, PutOptions, PutPayload};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// Why a blob could not be stored or read.
#[derive(Debug, thiserror::Error)]
#[error("file content {location}: {message}")]
pub struct BlobError {
    /// Where (a path on disk, or an `s3://` URL).
    pub location: String,
    /// What happened and what to do.
    pub message: String,
}

/// Settings of an S3-compatible store (the credential already resolved).
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// `s3://bucket/prefix`.
    pub url: String,
    /// Endpoint URL for S3-compatible servers (MinIO, R2, Ceph…); empty for AWS.
    pub endpoint: String,
    /// Region (AWS needs the bucket's; others accept any).
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: SecretString,
    /// Allow a plain-`http://` endpoint (local servers only).
    pub allow_http: bool,
}

/// Where blobs live. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Blobs {
    /// `{root}/ab/abcdef…` on the local disk.
    Local {
        /// `{data_dir}/blobs/sha256`.
        root: PathBuf,
    },
    /// `{prefix}/sha256/ab/abcdef…` in a bucket.
    S3 {
        /// The client.
        store: Arc<dyn ObjectStore>,
        /// Key prefix inside the bucket (may be empty).
        prefix: String,
        /// `s3://bucket/prefix`, for messages.
        url: String,
    },
}

fn shard(sha256_hex: &str) -> &str {
    sha256_hex.get(..2).unwrap_or("00")
}

fn valid_sha(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Blobs {
    /// The local store of a data dir.
    pub fn local(data_dir: impl AsRef<Path>) -> Blobs {
        Blobs::Local {
            root: data_dir.as_ref().join("blobs").join("sha256"),
        }
    }

    /// An S3-compatible store.
    pub fn s3(settings: &S3Settings) -> Result<Blobs, BlobError> {
        let fail = |message: String| BlobError {
            location: settings.url.clone(),
            message,
        };
        let rest = settings
            .url
            .strip_prefix("s3://")
            .ok_or_else(|| fail("storage.blobs must be empty (the data dir) or s3://bucket/prefix".into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(fail("storage.blobs names no bucket: write s3://bucket/prefix".into()));
        }
        if settings.access_key_id.is_empty() {
            return Err(fail(
                "storage.s3.access_key_id is empty: set it and storage.s3.secret_access_key (e.g. \"secret:s3-key\")"
                    .into(),
            ));
        }
        // TLS through reqwest uses the process's rustls provider (the node installs ring at
        // start; a CLI command may be first).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(if settings.region.is_empty() {
                "us-east-1"
            } else {
                settings.region.as_str()
            })
            .with_access_key_id(&settings.access_key_id)
            .with_secret_access_key(settings.secret_access_key.expose_secret())
            .with_allow_http(settings.allow_http);
        if !settings.endpoint.is_empty() {
            if settings.endpoint.starts_with("http://") && !settings.allow_http {
                return Err(fail(format!(
                    "storage.s3.endpoint {} is plain http: set storage.s3.allow_http = true (local servers only)",
                    settings.endpoint
                )));
            }
            builder = builder.with_endpoint(&settings.endpoint);
        }
        let store = builder
            .build()
            .map_err(|e| fail(format!("cannot set up the S3 client: {e}")))?;
        Ok(Blobs::S3 {
            store: Arc::new(store),
            prefix: prefix.trim_matches('/').to_owned(),
            url: settings.url.clone(),
        })
    }

    /// Where they are, for people (`/var/lib/coworker/blobs/sha256`, `s3://bucket/prefix`).
    pub fn describe(&self) -> String {
        match self {
            Blobs::Local { root } => root.display().to_string(),
            Blobs::S3 { url, .. } => url.clone(),
        }
    }

    /// Whether blobs are in the data dir.
    pub fn is_local(&self) -> bool {
        matches!(self, Blobs::Local { .. })
    }

    /// The file of a blob on the local disk (`None` for a remote store).
    pub fn local_path(&self, sha256_hex: &str) -> Option<PathBuf> {
        match self {
            Blobs::Local { root } => Some(root.join(shard(sha256_hex)).join(sha256_hex)),
            Blobs::S3 { .. } => None,
        }
    }

    fn key(prefix: &str, sha256_hex: &str) -> ObjectPath {
        let key = format!("sha256/{}/{sha256_hex}", shard(sha256_hex));
        ObjectPath::from(if prefix.is_empty() {
            key
        } else {
            format!("{prefix}/{key}")
        })
    }

    fn error(&self, sha256_hex: &str, message: String) -> BlobError {
        let location = match self {
            Blobs::Local { root } => root.join(shard(sha256_hex)).join(sha256_hex).display().to_string(),
            Blobs::S3 { url, .. } => format!(
                "{}/sha256/{}/{sha256_hex}",
                url.trim_end_matches('/'),
                shard(sha256_hex)
            ),
        };
        BlobError { location, message }
    }

    /// Stores `content` (once: identical content is already there) and returns its SHA-256,
    /// lower-case hex.
    pub async fn put(&self, content: Vec<u8>) -> Result<String, BlobError> {
        let sha = hex::encode(Sha256::digest(&content));
        match self {
            Blobs::Local { root } => {
                let root = root.clone();
                let path = root.join(shard(&sha)).join(&sha);
                let name = sha.clone();
                tokio::task::spawn_blocking(move || write_local(&root, &path, &content))
                    .await
                    .map_err(|e| self.error(&name, format!("the blob writer stopped: {e}")))?
                    .map_err(|message| self.error(&name, message))?;
            }
            Blobs::S3 { store, prefix, .. } => {
                let key = Self::key(prefix, &sha);
                if self.exists(&sha).await? {
                    return Ok(sha);
                }
                // Create-only: a concurrent writer of the same content is not an error.
                let options = PutOptions {
                    mode: PutMode::Create,
                    ..PutOptions::default()
                };
                let payload = PutPayload::from(content);
                let mut outcome = store.put_opts(&key, payload.clone(), options).await;
                // Servers without conditional writes refuse the mode; the content is the same
                // under the same name, so a plain overwrite is harmless.
                if matches!(outcome, Err(object_store::Error::NotImplemented { .. })) {
                    outcome = store.put_opts(&key, payload, PutOptions::default()).await;
                }
                match outcome {
                    Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => {}
                    Err(e) => {
                        return Err(self.error(
                            &sha,
                            format!("cannot store it ({e}); check the bucket, credentials and endpoint"),
                        ));
                    }
                }
            }
        }
        Ok(sha)
    }

    /// Whether a blob is there.
    pub async fn exists(&self, sha256_hex: &str) -> Result<bool, BlobError> {
        match self {
            Blobs::Local { root } => Ok(root.join(shard(sha256_hex)).join(sha256_hex).exists()),
            Blobs::S3 { store, prefix, .. } => {
                let options = GetOptions {
                    head: true,
                    ..GetOptions::default()
                };
                match store.get_opts(&Self::key(prefix, sha256_hex), options).await {
                    Ok(_) => Ok(true),
                    Err(object_store::Error::NotFound { .. }) => Ok(false),
                    Err(e) => Err(self.error(sha256_hex, format!("cannot look it up: {e}"))),
                }
            }
        }
    }

    /// Reads a blob, checking its content against its name.
    pub async fn get(&self, sha256_hex: &str) -> Result<Vec<u8>, BlobError> {
        let bytes = match self {
            Blobs::Local { root } => {
                let path = root.join(shard(sha256_hex)).join(sha256_hex);
                tokio::task::spawn_blocking(move || std::fs::read(path))
                    .await
                    .map_err(|e| self.error(sha256_hex, format!("the blob reader stopped: {e}")))?
                    .map_err(|e| {
                        self.error(
                            sha256_hex,
                            format!("cannot read the file content ({e}); restore the data dir's blobs from a backup"),
                        )
                    })?
            }
            Blobs::S3 { store, prefix, .. } => {
                let got = store
                    .get_opts(&Self::key(prefix, sha256_hex), GetOptions::default())
                    .await
                    .map_err(|e| self.error(sha256_hex, format!("cannot read it: {e}")))?;
                got.bytes()
                    .await
                    .map_err(|e| self.error(sha256_hex, format!("reading it stopped: {e}")))?
                    .to_vec()
            }
        };
        if hex::encode(Sha256::digest(&bytes)) != sha256_hex {
            return Err(self.error(
                sha256_hex,
                "the content does not match its checksum (corrupted); restore it from a backup".into(),
            ));
        }
        Ok(bytes)
    }

    /// Every blob's name, in no particular order.
    pub async fn list(&self) -> Result<Vec<String>, BlobError> {
        match self {
            Blobs::Local { root } => {
                let root = root.clone();
                let location = root.display().to_string();
                tokio::task::spawn_blocking(move || list_local(&root))
                    .await
                    .map_err(|e| BlobError {
                        location: location.clone(),
                        message: format!("the listing stopped: {e}"),
                    })?
                    .map_err(|message| BlobError { location, message })
            }
            Blobs::S3 { store, prefix, url } => {
                let under = ObjectPath::from(if prefix.is_empty() {
                    "sha256".to_owned()
                } else {
                    format!("{prefix}/sha256")
                });
                let mut names = Vec::new();
                let mut listing = store.list(Some(&under));
                while let Some(item) = listing.next().await {
                    let meta = item.map_err(|e| BlobError {
                        location: url.clone(),
                        message: format!("cannot list the bucket: {e}"),
                    })?;
                    if let Some(name) = meta.location.filename()
                        && valid_sha(name)
                    {
                        names.push(name.to_owned());
                    }
                }
                Ok(names)
            }
        }
    }
}

fn write_local(root: &Path, path: &Path, content: &[u8]) -> Result<(), String> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == content.len() as u64) {
        return Ok(());
    }
    let dir = path.parent().unwrap_or(root);
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create the folder: {e}"))?;
    // Same folder as the target, so the rename is atomic (one file system).
    let temp = dir.join(format!(".tmp-{}", uuid::Uuid::now_v7().simple()));
    let written = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(content)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        // The rename is durable once the folder entry is.
        std::fs::File::open(dir)?.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(format!(
            "cannot write the file ({e}); check free space and permissions of the data dir"
        ));
    }
    Ok(())
}

fn list_local(root: &Path) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let shards = match std::fs::read_dir(root) {
        Ok(shards) => shards,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(format!("cannot list the folder: {e}")),
    };
    for shard in shards {
        let shard = shard.map_err(|e| format!("cannot list the folder: {e}"))?;
        if !shard.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        for entry in
            std::fs::read_dir(shard.path()).map_err(|e| format!("cannot list {}: {e}", shard.path().display()))?
        {
            let entry = entry.map_err(|e| format!("cannot list the folder: {e}"))?;
            if let Some(name) = entry.file_name().to_str()
                && valid_sha(name)
            {
                names.push(name.to_owned());
            }
        }
    }
    Ok(names)
}

/// What [`copy_all`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Blobs copied now.
    pub copied: usize,
    /// Blobs already at the destination (an earlier, interrupted copy).
    pub skipped: usize,
}

/// Copies every blob of `from` that `to` lacks, checking each against its name on the way.
/// Resumable: a second run copies only what the first did not finish. `progress` is called
/// after each blob with (done, total).
pub async fn copy_all(
    from: &Blobs,
    to: &Blobs,
    mut progress: impl FnMut(usize, usize),
) -> Result<CopyReport, BlobError> {
    let names = from.list().await?;
    let total = names.len();
    let mut report = CopyReport::default();
    for (i, name) in names.iter().enumerate() {
        if to.exists(name).await? {
            report.skipped += 1;
        } else {
            let bytes = from.get(name).await?;
            to.put(bytes).await?;
            report.copied += 1;
        }
        progress(i + 1, total);
    }
    Ok(report)
}
