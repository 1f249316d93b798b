//! `coworker backup DIR` and `coworker restore DIR --data-dir NEW`: a node's state is its
//! database, its blobs (`{data_dir}/blobs`, content-addressed, never rewritten) and, when it
//! lives there, the master key that decrypts its secrets.
//!
//! A backup is safe while nodes run: the SQLite database is copied with `VACUUM INTO` (one
//! read transaction, so a consistent snapshot) *before* the blobs, and a blob is always on
//! disk before the row naming it commits, so every file the snapshot names is copied. Blobs
//! written after the snapshot are extra and harmless. PostgreSQL is dumped with `pg_dump`
//! (the report says how); its blobs and key are copied the same way. The manifest
//! (`backup.json`) is written last: a directory without one is not a complete backup.

use std::path::{Path, PathBuf};

use coworker_core::config::{Config, DatabaseKind};
use coworker_store::{Store, StoreError, sqlite_path};
use serde::{Deserialize, Serialize};

/// The manifest's file name in a backup directory.
pub const MANIFEST_FILE: &str = "backup.json";
/// The blobs folder, in a data dir and in a backup.
pub const BLOBS_DIR: &str = "blobs";
/// The master key's file name in a backup.
pub const MASTER_KEY_FILE: &str = "master.key";
/// The manifest format this binary writes and reads.
pub const BACKUP_FORMAT: u32 = 1;

/// What a backup holds (`backup.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format ([`BACKUP_FORMAT`]).
    pub format: u32,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// The database's schema version when it was copied.
    pub schema_version: i64,
    /// When the backup was taken, epoch ms.
    pub created_at_ms: i64,
    /// The database file in the backup (SQLite only).
    pub database_file: Option<String>,
    /// Blob files copied.
    pub blob_files: u64,
    /// Their total size in bytes.
    pub blob_bytes: u64,
    /// Whether the data dir's master key file was copied (it decrypts the secrets: keep the
    /// backup as private as the key). `false` when the key comes from `COWORKER_MASTER_KEY`
    /// or a `secrets.key_file` outside the data dir: back that up yourself.
    pub master_key: bool,
}

/// What `backup` did.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The manifest written.
    pub manifest: Manifest,
    /// On PostgreSQL: the `pg_dump` command that completes the backup.
    pub pg_dump: Option<String>,
}

/// What `restore` did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The backup's manifest.
    pub manifest: Manifest,
    /// Audit entries verified intact in the restored database (SQLite).
    pub audit_entries: Option<u64>,
    /// On PostgreSQL: the `pg_restore` command that completes the restore.
    pub pg_restore: Option<String>,
}

/// A backup or restore that could not be done.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The target directory already holds files.
    #[error("{path} is not empty\n  fix: choose a new directory (a backup or restore never overwrites)")]
    NotEmpty {
        /// The directory.
        path: String,
    },
    /// No data to back up.
    #[error("no database at {path}\n  fix: point --data-dir (or COWORKER_DATA_DIR) at the node's data dir")]
    NoDatabase {
        /// Where it was looked for.
        path: String,
    },
    /// The directory is not a (complete) backup.
    #[error(
        "{path} is not a complete backup: {problem}\n  fix: restore from a directory `coworker backup` finished writing"
    )]
    NotABackup {
        /// The directory.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// The restored audit log does not verify.
    #[error(
        "the restored audit log is broken at seq {seq}: the backup was altered or damaged\n  fix: restore an older backup"
    )]
    AuditBroken {
        /// First broken entry.
        seq: i64,
    },
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// The database refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let context = context.into();
    move |source| BackupError::Io { context, source }
}

/// Creates `dir` (0700) or accepts it empty; refuses one with files.
fn fresh_dir(dir: &Path) -> Result<(), BackupError> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(io(format!("reading {}", dir.display())))?;
        if entries.next().is_some() {
            return Err(BackupError::NotEmpty {
                path: dir.display().to_string(),
            });
        }
    }
    crate::datadir::prepare(dir).map_err(|e| BackupError::Io {
        context: format!("creating {}", dir.display()),
        source: std::io::Error::other(e.to_string()),
    })
}

/// Copies the files under `from` into `to` (created), skipping temporary files (names
/// starting with `.`, as the workspace writes before its rename). Returns (files, bytes).
fn copy_tree(from: &Path, to: &Path) -> Result<(u64, u64), BackupError> {
    let mut files = 0;
    let mut bytes = 0;
    if !from.is_dir() {
        return Ok((0, 0));
    }
    std::fs::create_dir_all(to).map_err(io(format!("creating {}", to.display())))?;
    let entries = std::fs::read_dir(from).map_err(io(format!("reading {}", from.display())))?;
    for entry in entries {
        let entry = entry.map_err(io(format!("reading {}", from.display())))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let source = entry.path();
        let target = to.join(&name);
        let kind = entry.file_type().map_err(io(format!("reading {}", source.display())))?;
        if kind.is_dir() {
            let (f, b) = copy_tree(&source, &target)?;
            files += f;
            bytes += b;
        } else if kind.is_file() {
            bytes += std::fs::copy(&source, &target).map_err(io(format!("copying {}", source.display())))?;
            files += 1;
        }
    }
    Ok((files, bytes))
}

/// Copies a private file (0600), such as the master key.
fn copy_private(from: &Path, to: &Path) -> Result<(), BackupError> {
    let text = std::fs::read_to_string(from).map_err(io(format!("reading {}", from.display())))?;
    crate::datadir::write_private(to, &text).map_err(io(format!("writing {}", to.display())))
}

/// The master key file of `config` when it lives in the data dir (else the operator backs
/// up `COWORKER_MASTER_KEY` or their own key file).
fn data_dir_key_file(config: &Config, data_dir: &Path) -> Option<PathBuf> {
    let path = coworker_tools::secrets::key_file_path(config);
    (path.starts_with(data_dir) && path.is_file()).then_some(path)
}

/// Backs the node described by `config` up into the new or empty directory `dir`.
pub async fn backup(config: &Config, dir: &Path) -> Result<BackupReport, BackupError> {
    let data_dir = PathBuf::from(&config.storage.data_dir);
    let kind = config.database_kind().map_err(|e| BackupError::NotABackup {
        path: data_dir.display().to_string(),
        problem: e.to_string(),
    })?;
    if kind == DatabaseKind::Sqlite && !sqlite_path(&data_dir).is_file() {
        return Err(BackupError::NoDatabase {
            path: sqlite_path(&data_dir).display().to_string(),
        });
    }
    fresh_dir(dir)?;
    let store = Store::open(&config.storage, &data_dir).await?;
    store.check_schema().await?;
    let schema_version = store.schema_status().await?.database_version;
    // Database first, then blobs (see the module doc).
    let database_file = coworker_store::SQLITE_FILE_NAME;
    let copied = store.snapshot_sqlite(&dir.join(database_file)).await;
    store.close().await;
    let copied = copied?;
    let (blob_files, blob_bytes) = copy_tree(&data_dir.join(BLOBS_DIR), &dir.join(BLOBS_DIR))?;
    let key = data_dir_key_file(config, &data_dir);
    if let Some(key) = &key {
        copy_private(key, &dir.join(MASTER_KEY_FILE))?;
    }
    let manifest = Manifest {
        format: BACKUP_FORMAT,
        backend: if copied { "sqlite" } else { "postgres" }.to_owned(),
        schema_version,
        created_at_ms: coworker_store::now_ms(),
        database_file: copied.then(|| database_file.to_owned()),
        blob_files,
        blob_bytes,
        master_key: key.is_some(),
    };
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| BackupError::Io {
        context: "writing the manifest".into(),
        source: std::io::Error::other(e),
    })?;
    crate::datadir::write_private(&dir.join(MANIFEST_FILE), &text).map_err(io("writing the manifest"))?;
    let pg_dump = (!copied).then(|| {
        format!(
            "pg_dump --format=custom --no-owner --file {} \"$COWORKER_DATABASE_URL\"",
            dir.join("postgres.dump").display()
        )
    });
    Ok(BackupReport { manifest, pg_dump })
}

/// Reads and checks the manifest of the backup in `dir`.
pub fn read_manifest(dir: &Path) -> Result<Manifest, BackupError> {
    let not_a_backup = |problem: String| BackupError::NotABackup {
        path: dir.display().to_string(),
        problem,
    };
    let text = std::fs::read_to_string(dir.join(MANIFEST_FILE))
        .map_err(|e| not_a_backup(format!("cannot read {MANIFEST_FILE} ({e})")))?;
    let manifest: Manifest =
        serde_json::from_str(&text).map_err(|e| not_a_backup(format!("{MANIFEST_FILE} is not a manifest ({e})")))?;
    if manifest.format != BACKUP_FORMAT {
        return Err(not_a_backup(format!(
            "its format is {}, this binary reads format {BACKUP_FORMAT}",
            manifest.format
        )));
    }
    if let Some(file) = &manifest.database_file
        && !dir.join(file).is_file()
    {
        return Err(not_a_backup(format!("its database file {file} is missing")));
    }
    Ok(manifest)
}

/// Restores the backup in `dir` into the new or empty data dir `data_dir`. On SQLite the
/// restored database is migrated to this binary's schema and its audit chain verified.
pub async fn restore(dir: &Path, data_dir: &Path) -> Result<RestoreReport, BackupError> {
    let manifest = read_manifest(dir)?;
    fresh_dir(data_dir)?;
    copy_tree(&dir.join(BLOBS_DIR), &data_dir.join(BLOBS_DIR))?;
    if manifest.master_key {
        copy_private(
            &dir.join(MASTER_KEY_FILE),
            &data_dir.join(coworker_tools::secrets::MASTER_KEY_FILE_NAME),
        )?;
    }
    let Some(file) = &manifest.database_file else {
        let pg_restore = format!(
            "pg_restore --no-owner --dbname \"$COWORKER_DATABASE_URL\" {}",
            dir.join("postgres.dump").display()
        );
        return Ok(RestoreReport {
            manifest,
            audit_entries: None,
            pg_restore: Some(pg_restore),
        });
    };
    let target = sqlite_path(data_dir);
    std::fs::copy(dir.join(file), &target).map_err(io(format!("copying the database to {}", target.display())))?;
    let store = Store::open_sqlite(&target, &coworker_store::PoolSettings::default()).await?;
    let checked = async {
        store.migrate().await?;
        store.audit_verify().await
    }
    .await;
    store.close().await;
    let verification = checked?;
    if let Some(broken) = &verification.first_broken {
        return Err(BackupError::AuditBroken { seq: broken.seq });
    }
    Ok(RestoreReport {
        manifest,
        audit_entries: Some(verification.checked),
        pg_restore: None,
    })
}
