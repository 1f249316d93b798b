//! Store errors, written for the operator who has to act on them.

use std::path::Path;

/// Everything that can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or reached.
    #[error("cannot connect to {target}: {message}\n  fix: {hint}")]
    Connect {
        /// Where we tried to connect (password redacted).
        target: String,
        /// What the driver said.
        message: String,
        /// What to do.
        hint: String,
    },
    /// The database was migrated by a newer Coworker than this binary.
    #[error(
        "the database schema is at version {database_version}, newer than this binary understands (version {binary_version}); \
         run a Coworker release at least as new as the one that migrated it, or restore a backup"
    )]
    SchemaTooNew {
        /// Highest migration applied in the database.
        database_version: i64,
        /// Highest migration embedded in this binary.
        binary_version: i64,
    },
    /// The database has not had this binary's migrations applied.
    #[error(
        "the database schema is at version {database_version}, this binary needs {binary_version}; run `coworker migrate`"
    )]
    SchemaBehind {
        /// Highest migration applied in the database (0 = none).
        database_version: i64,
        /// Highest migration embedded in this binary.
        binary_version: i64,
    },
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A row that should exist does not.
    #[error("{what} {key} not found")]
    NotFound {
        /// What kind of row.
        what: &'static str,
        /// The key looked up.
        key: String,
    },
    /// A unique key is already taken.
    #[error("{what} {key} already exists")]
    Conflict {
        /// What kind of row.
        what: &'static str,
        /// The duplicated key.
        key: String,
    },
    /// A run journal append was refused because the writer no longer holds the run's lease
    /// (another worker claimed it) or its expected sequence number is stale.
    #[error("run {run_id}: append refused (lease epoch {epoch}, seq {seq}); another worker owns this run now")]
    Fenced {
        /// The run.
        run_id: String,
        /// The epoch the writer held.
        epoch: i64,
        /// The seq the writer expected to write.
        seq: i64,
    },
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// Whether the database could not be reached or stopped serving mid-request (a lost
    /// connection, a pool that timed out, a server shutting down or starting up, too many
    /// connections, SQLite busy or locked past its timeout): nothing about the request
    /// itself was wrong, and the same request succeeds once the database is back. Callers
    /// retry such failures rather than report them as the request's own.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Connect { .. } => true,
            StoreError::Database(error) => sqlx_unavailable(error),
            _ => false,
        }
    }

    pub(crate) fn sqlite_open(path: &Path, error: &sqlx::Error) -> Self {
        StoreError::Connect {
            target: format!("sqlite:{}", path.display()),
            message: error.to_string(),
            hint: format!(
                "make sure {} exists and is writable by this user, or choose another data dir with --data-dir / COWORKER_DATA_DIR",
                path.parent().unwrap_or(path).display()
            ),
        }
    }

    /// Maps a unique-constraint violation to [`StoreError::Conflict`], anything else through.
    pub(crate) fn unique_or(error: sqlx::Error, what: &'static str, key: impl Into<String>) -> Self {
        if let sqlx::Error::Database(db) = &error
            && db.is_unique_violation()
        {
            return StoreError::Conflict { what, key: key.into() };
        }
        StoreError::Database(error)
    }
}

/// See [`StoreError::is_unavailable`].
fn sqlx_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| unavailable_code(&code)),
        _ => false,
    }
}

/// PostgreSQL SQLSTATEs of a server that is unreachable or not serving — class 08
/// (connection exception), 57P01–57P05 (shut down, crash, cannot connect now, idle
/// timeouts), 53300 (too many connections) — and SQLite's busy and locked result codes
/// (primary and extended).
fn unavailable_code(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("57P")
        || code == "53300"
        || matches!(code, "5" | "6" | "261" | "262" | "517")
}

/// Replaces the password in a database URL with `***` so it can be printed and logged.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unreachable_database_is_unavailable() {
        assert!(StoreError::Database(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(StoreError::Database(sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into())).is_unavailable());
        assert!(!StoreError::Database(sqlx::Error::RowNotFound).is_unavailable());
        assert!(
            !StoreError::NotFound {
                what: "task",
                key: "x".into()
            }
            .is_unavailable()
        );
        for code in ["08006", "57P01", "57P03", "53300", "5", "517"] {
            assert!(unavailable_code(code), "{code}");
        }
        for code in ["23505", "42P01", "40001", "19", "2067"] {
            assert!(!unavailable_code(code), "{code}");
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
