//! `coworker doctor`: checks a node's configuration and surroundings without changing them
//! (it never creates the data dir or the database). Each check says what it found and how
//! to fix it; any failure makes the command exit 1.

use std::path::Path;

use coworker_core::config::{Config, DatabaseKind};
use coworker_core::doctor::Check;
use coworker_store::{Store, sqlite_path};

use crate::bootstrap::OWNER_CREDENTIAL_FILE;

/// Runs every check for `config`, which was loaded from `config_source` (for the report).
pub async fn run_checks(config: &Config, config_source: &str) -> Vec<Check> {
    let mut checks = vec![Check::ok("config", format!("loaded {config_source}"))];
    let data_dir = Path::new(&config.storage.data_dir);
    checks.push(check_data_dir(data_dir));
    checks.extend(check_database(config, data_dir).await);
    let env: Vec<(String, String)> = std::env::vars().collect();
    checks.extend(coworker_models::doctor::check_providers(config, &env).await);
    checks
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

async fn check_database(config: &Config, data_dir: &Path) -> Vec<Check> {
    let kind = match config.database_kind() {
        Ok(kind) => kind,
        Err(e) => return vec![Check::fail("database", e.to_string(), "fix storage.database_url")],
    };
    if kind == DatabaseKind::Sqlite && !sqlite_path(data_dir).exists() {
        return vec![Check::warn(
            "database",
            format!("{} does not exist yet", sqlite_path(data_dir).display()),
            "it is created on the first `coworker serve` (or `coworker migrate`)",
        )];
    }
    let store = match Store::open(&config.storage, data_dir).await {
        Ok(store) => store,
        Err(e) => {
            return vec![Check::fail("database", e.to_string(), "see the fix above")];
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
            return checks;
        }
    }
    checks.push(match store.schema_status().await {
        Ok(status) if status.is_current() => {
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
    store.close().await;
    checks
}
