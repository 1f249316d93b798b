//! `coworker doctor`: checks a node's configuration and surroundings without changing them
//! (it never creates the data dir or the database). Each check says what it found and how
//! to fix it; any failure makes the command exit 1.

use std::path::Path;
use std::sync::Arc;

use coworker_core::config::{Config, DatabaseKind};
use coworker_core::doctor::Check;
use coworker_store::{Store, sqlite_path};
use coworker_tools::mcp::{NoSecrets, SecretSource};
use coworker_tools::secrets::Secrets;

use crate::bootstrap::OWNER_CREDENTIAL_FILE;

/// Runs every check for `config`, which was loaded from `config_source` (for the report).
pub async fn run_checks(config: &Config, config_source: &str) -> Vec<Check> {
    let mut checks = vec![Check::ok("config", format!("loaded {config_source}"))];
    let data_dir = Path::new(&config.storage.data_dir);
    checks.push(check_data_dir(data_dir));
    let (database_checks, store) = check_database(config, data_dir).await;
    checks.extend(database_checks);
    let master_key_env = std::env::var(coworker_tools::secrets::MASTER_KEY_ENV).ok();
    checks.extend(check_shared_master_key(config, master_key_env.as_deref()));
    let env: Vec<(String, String)> = std::env::vars().collect();
    checks.extend(coworker_models::doctor::check_providers(config, &env).await);
    checks.extend(check_mcp(config, store.as_ref()).await);
    // memory (issue 11)
    checks.extend(check_memory(config, store.as_ref()).await);
    checks.extend(check_slack(config, store.as_ref(), &env).await);
    checks.push(check_blobs(config, store.as_ref(), &env, data_dir).await);
    // Traces (issue 18).
    checks.push(crate::traces::check(&config.traces).await);
    // Email and calendar (issue 16).
    #[cfg(feature = "email")]
    {
        let secrets = doctor_secrets(config, store.as_ref());
        checks.extend(crate::mail::email_checks(config, &env, secrets.as_ref(), None).await);
        checks.extend(crate::mail::calendar_checks(config, &env, secrets.as_ref(), None).await);
    }
    if let Some(store) = store {
        store.close().await;
    }
    checks
}

/// Where file content lives; for a bucket, that it is reachable with its credentials.
async fn check_blobs(config: &Config, store: Option<&Store>, env: &[(String, String)], data_dir: &Path) -> Check {
    let secrets = doctor_secrets(config, store);
    let blobs = match crate::blobs::from_config(config, env, secrets.as_ref(), data_dir).await {
        Ok(blobs) => blobs,
        Err(e) => return Check::fail("files", e, "fix [storage] blobs and [storage.s3]"),
    };
    if blobs.is_local() {
        return Check::ok("files", format!("in the data dir ({})", blobs.describe()));
    }
    // A name no blob has: the answer (absent) proves the bucket and the credentials work.
    match blobs.exists(&"0".repeat(64)).await {
        Ok(_) => Check::ok("files", format!("on S3-compatible storage at {}", blobs.describe())),
        Err(e) => Check::fail(
            "files",
            e.to_string(),
            "check the bucket, storage.s3.endpoint, region and the access key",
        ),
    }
}

/// `coworker slack test`: the Slack checks alone (tokens, scopes, connection).
pub async fn slack_checks(config: &Config) -> Vec<Check> {
    let data_dir = Path::new(&config.storage.data_dir);
    let store = if data_dir.exists() {
        check_database(config, data_dir).await.1
    } else {
        None
    };
    let env: Vec<(String, String)> = std::env::vars().collect();
    let checks = check_slack(config, store.as_ref(), &env).await;
    if let Some(store) = store {
        store.close().await;
    }
    checks
}

/// The secret store, only when a master key already exists (doctor creates nothing).
fn doctor_secrets(config: &Config, store: Option<&Store>) -> Option<Arc<Secrets>> {
    let key_exists = std::env::var(coworker_tools::secrets::MASTER_KEY_ENV).is_ok()
        || coworker_tools::secrets::key_file_path(config).exists();
    match (store, key_exists) {
        (Some(store), true) => Secrets::open(store.clone(), config).ok().map(Arc::new),
        _ => None,
    }
}

/// `coworker email test [NAME]` (`email = true`) or `coworker calendar test [NAME]`.
#[cfg(feature = "email")]
pub async fn mail_checks(config: &Config, email: bool, name: Option<&str>) -> Vec<Check> {
    let data_dir = Path::new(&config.storage.data_dir);
    let store = if data_dir.exists() {
        check_database(config, data_dir).await.1
    } else {
        None
    };
    let env: Vec<(String, String)> = std::env::vars().collect();
    let secrets = doctor_secrets(config, store.as_ref());
    let checks = if email {
        crate::mail::email_checks(config, &env, secrets.as_ref(), name).await
    } else {
        crate::mail::calendar_checks(config, &env, secrets.as_ref(), name).await
    };
    if let Some(store) = store {
        store.close().await;
    }
    checks
}

/// Slack (issue 13): `secret:` references are read only when a master key already exists.
async fn check_slack(config: &Config, store: Option<&Store>, env: &[(String, String)]) -> Vec<Check> {
    let key_exists = std::env::var(coworker_tools::secrets::MASTER_KEY_ENV).is_ok()
        || coworker_tools::secrets::key_file_path(config).exists();
    let secrets = match (store, key_exists) {
        (Some(store), true) => Secrets::open(store.clone(), config).ok().map(Arc::new),
        _ => None,
    };
    crate::channels::slack_checks(config, env, secrets.as_ref()).await
}

/// Connects to every MCP server (from the file and, when the database is usable, those added
/// with `coworker mcp add`) and lists its tools. Secrets are read only when a master key
/// already exists: doctor creates nothing.
async fn check_mcp(config: &Config, store: Option<&Store>) -> Vec<Check> {
    let mut servers = config.mcp.clone();
    let mut checks = Vec::new();
    if let Some(store) = store {
        match coworker_tools::mcp::all_servers(config, store).await {
            Ok((entries, problems)) => {
                servers = entries.into_iter().map(|e| e.config).collect();
                checks.extend(problems.into_iter().map(|p| {
                    Check::warn(
                        "mcp",
                        p.to_string(),
                        "fix or remove the entry (`coworker mcp list` shows them all)",
                    )
                }));
            }
            Err(e) => checks.push(Check::fail("mcp", e.to_string(), "check the database")),
        }
    }
    // OAuth servers (issue 17) answer only with a person's token; the node never connects to
    // them on its own, so neither does doctor.
    servers.retain(|s| s.oauth.is_none());
    let key_exists = std::env::var(coworker_tools::secrets::MASTER_KEY_ENV).is_ok()
        || coworker_tools::secrets::key_file_path(config).exists();
    let secrets: Arc<dyn SecretSource> = match (store, key_exists) {
        (Some(store), true) => match Secrets::open(store.clone(), config) {
            Ok(secrets) => Arc::new(secrets),
            Err(e) => {
                checks.push(Check::fail("secrets", e.to_string(), "see the fix above"));
                Arc::new(NoSecrets)
            }
        },
        _ => Arc::new(NoSecrets),
    };
    checks.extend(coworker_tools::mcp::check_servers(&servers, secrets, coworker_tools::mcp::DOCTOR_TIME_LIMIT).await);
    checks
}

/// Nodes on one PostgreSQL database read each other's secrets, so they need one master key.
/// The default key file lives in each node's own data dir, where a second node would create
/// a different key and fail to decrypt what the first stored. `master_key_env` is the value
/// of `COWORKER_MASTER_KEY`, if set. Nothing to say on SQLite (one node).
pub fn check_shared_master_key(config: &Config, master_key_env: Option<&str>) -> Option<Check> {
    if config.database_kind().ok()? != DatabaseKind::Postgres {
        return None;
    }
    let env = coworker_tools::secrets::MASTER_KEY_ENV;
    if master_key_env.is_some_and(|v| !v.trim().is_empty()) {
        return Some(Check::ok(
            "master key",
            format!("from {env}: every node on this PostgreSQL database must be given the same value"),
        ));
    }
    if !config.secrets.key_file.trim().is_empty() {
        return Some(Check::ok(
            "master key",
            format!(
                "from secrets.key_file {}: every node on this PostgreSQL database must read the same key",
                config.secrets.key_file.trim()
            ),
        ));
    }
    let path = coworker_tools::secrets::key_file_path(config);
    Some(Check::warn(
        "master key",
        format!(
            "no shared master key: nodes on one PostgreSQL database share its secrets, but this node's key is {} in its own \
             data dir, so a secret another node stored cannot be decrypted here (and one stored here not elsewhere)",
            path.display()
        ),
        format!(
            "set {env} to the same 64 hex digits on every node (the first node's key is the hex text in {}; a new one: `openssl rand -hex 32`), \
             or point secrets.key_file at one key file every node reads",
            path.display()
        ),
    ))
}

fn check_data_dir(data_dir: &Path) -> Check {
    let name = "data dir";
    if !data_dir.exists() {
        return Check::warn(
            name,
            format!("{} does not exist yet", data_dir.display()),
            "it is created on the first `coworker serve` (or `coworker migrate`)",
        );
    }
    if !data_dir.is_dir() {
        return Check::fail(
            name,
            format!("{} is not a directory", data_dir.display()),
            "point --data-dir / COWORKER_DATA_DIR / storage.data_dir at a directory",
        );
    }
    let probe = data_dir.join(".doctor-probe");
    if let Err(e) = std::fs::write(&probe, b"ok") {
        return Check::fail(
            name,
            format!("{} is not writable: {e}", data_dir.display()),
            "fix its permissions or choose another data dir",
        );
    }
    let _ = std::fs::remove_file(&probe);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let credential = data_dir.join(OWNER_CREDENTIAL_FILE);
        if let Ok(meta) = std::fs::metadata(&credential)
            && meta.permissions().mode() & 0o077 != 0
        {
            return Check::fail(
                name,
                format!(
                    "{} is readable by other users (mode {:o})",
                    credential.display(),
                    meta.permissions().mode() & 0o777
                ),
                format!("chmod 600 {}", credential.display()),
            );
        }
        if let Ok(meta) = std::fs::metadata(data_dir)
            && meta.permissions().mode() & 0o077 != 0
        {
            return Check::warn(
                name,
                format!(
                    "{} is accessible to other users (mode {:o})",
                    data_dir.display(),
                    meta.permissions().mode() & 0o777
                ),
                format!("chmod 700 {}", data_dir.display()),
            );
        }
    }
    Check::ok(name, format!("{} is writable", data_dir.display()))
}

/// Checks the database; returns the store when its schema is current, for later checks.
async fn check_database(config: &Config, data_dir: &Path) -> (Vec<Check>, Option<Store>) {
    let kind = match config.database_kind() {
        Ok(kind) => kind,
        Err(e) => {
            return (
                vec![Check::fail("database", e.to_string(), "fix storage.database_url")],
                None,
            );
        }
    };
    if kind == DatabaseKind::Sqlite && !sqlite_path(data_dir).exists() {
        return (
            vec![Check::warn(
                "database",
                format!("{} does not exist yet", sqlite_path(data_dir).display()),
                "it is created on the first `coworker serve` (or `coworker migrate`)",
            )],
            None,
        );
    }
    let store = match Store::open(&config.storage, data_dir).await {
        Ok(store) => store,
        Err(e) => {
            return (vec![Check::fail("database", e.to_string(), "see the fix above")], None);
        }
    };
    let mut checks = Vec::new();
    match store.ping().await {
        Ok(()) => checks.push(Check::ok("database", format!("{} is reachable", store.location()))),
        Err(e) => {
            checks.push(Check::fail(
                "database",
                format!("{}: {e}", store.location()),
                "check that the database is up",
            ));
            store.close().await;
            return (checks, None);
        }
    }
    let mut current = false;
    checks.push(match store.schema_status().await {
        Ok(status) if status.is_current() => {
            current = true;
            Check::ok("schema", format!("version {} (current)", status.database_version))
        }
        Ok(status) if !status.unknown.is_empty() => Check::fail(
            "schema",
            format!(
                "version {} is newer than this binary (version {})",
                status.database_version, status.binary_version
            ),
            "upgrade coworker to the release that migrated this database",
        ),
        Ok(status) => Check::warn(
            "schema",
            format!(
                "version {}, this binary needs {}",
                status.database_version, status.binary_version
            ),
            "run `coworker migrate` (or `coworker serve`, which migrates on start)",
        ),
        Err(e) => Check::fail("schema", e.to_string(), "check database permissions"),
    });
    if current {
        (checks, Some(store))
    } else {
        store.close().await;
        (checks, None)
    }
}

/// Memory (issue 11): the embedder loads (the local model is loaded and probed, as at
/// start-up), and how vectors are searched on this backend.
async fn check_memory(config: &Config, store: Option<&Store>) -> Vec<Check> {
    let memory_config = config.memory.clone();
    let loaded = tokio::task::spawn_blocking(move || coworker_memory::Embedder::from_config(&memory_config)).await;
    let mut checks = Vec::new();
    checks.push(match loaded {
        Ok(Ok((embedder, None))) => Check::ok("memory", format!("embedder: {}", embedder.describe())),
        Ok(Ok((_, Some(note)))) => Check::warn(
            "memory",
            note,
            "run `coworker memory install-model` (or set [memory] embedder = \"openai\"), restart, then `coworker memory reindex`",
        ),
        Ok(Err(e)) => Check::fail("memory", e.to_string(), "see the fix above"),
        Err(e) => Check::fail("memory", format!("loading the embedder failed: {e}"), "this is a bug"),
    });
    if let Some(store) = store {
        let vectors = match store.backend_name() {
            "postgres" => {
                "PostgreSQL full text (tsvector + GIN); vectors in the node's quantised in-memory index \
                           (pgvector is not needed, so a server without it is fully supported)"
            }
            _ => "SQLite FTS5; vectors in the node's quantised in-memory index (no extension needed)",
        };
        checks.push(Check::ok("memory search", vectors.to_owned()));
    }
    checks
}
