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
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
