//! Embedded migrations (one folder per backend) and the schema-version checks that keep an
//! old binary from touching a database a newer one has migrated.

use sqlx::migrate::Migrator;

use crate::{Backend, Store, StoreError, on_pool};

static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

/// Where a database's schema stands relative to this binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaStatus {
    /// Highest successfully applied migration (0 = none).
    pub database_version: i64,
    /// Highest migration this binary embeds.
    pub binary_version: i64,
    /// Migrations this binary would apply.
    pub pending: Vec<i64>,
    /// Migrations applied in the database that this binary does not know (a newer binary ran).
    pub unknown: Vec<i64>,
}

impl SchemaStatus {
    /// Whether the schema is exactly what this binary expects.
    pub fn is_current(&self) -> bool {
        self.pending.is_empty() && self.unknown.is_empty()
    }
}

/// Highest migration version embedded in this binary (same for both backends).
pub fn binary_schema_version() -> i64 {
    SQLITE.iter().map(|m| m.version).max().unwrap_or(0)
}

impl Store {
    fn migrator(&self) -> &'static Migrator {
        match self.backend {
            Backend::Sqlite(_) => &SQLITE,
            Backend::Postgres(_) => &POSTGRES,
        }
    }

    /// Reads the applied migrations and compares them with the embedded ones.
    pub async fn schema_status(&self) -> Result<SchemaStatus, StoreError> {
        let migrator = self.migrator();
        let table_exists: bool = match &self.backend {
            Backend::Sqlite(pool) => sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            )
            .fetch_one(pool)
            .await
            .map(|n| n > 0)?,
            Backend::Postgres(pool) => {
                sqlx::query_scalar::<_, bool>("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                    .fetch_one(pool)
                    .await?
            }
        };
        let applied: Vec<i64> = if table_exists {
            on_pool!(self, pool => sqlx::query_scalar::<_, i64>(
                "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version"
            )
            .fetch_all(pool)
            .await?)
        } else {
            Vec::new()
        };
        let embedded: Vec<i64> = migrator.iter().map(|m| m.version).collect();
        Ok(SchemaStatus {
            database_version: applied.iter().copied().max().unwrap_or(0),
            binary_version: embedded.iter().copied().max().unwrap_or(0),
            pending: embedded.iter().copied().filter(|v| !applied.contains(v)).collect(),
            unknown: applied.iter().copied().filter(|v| !embedded.contains(v)).collect(),
        })
    }

    /// Fails unless the schema is exactly current (used by `/readyz` and `serve`).
    pub async fn check_schema(&self) -> Result<SchemaStatus, StoreError> {
        let status = self.schema_status().await?;
        if !status.unknown.is_empty() {
            return Err(StoreError::SchemaTooNew {
                database_version: status.database_version,
                binary_version: status.binary_version,
            });
        }
        if !status.pending.is_empty() {
            return Err(StoreError::SchemaBehind {
                database_version: status.database_version,
                binary_version: status.binary_version,
            });
        }
        Ok(status)
    }

    /// Applies pending migrations; refuses a database migrated by a newer binary. Safe to
    /// run from several nodes at once (PostgreSQL migrations take an advisory lock).
    /// Returns the versions applied.
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        let before = self.schema_status().await?;
        if !before.unknown.is_empty() {
            return Err(StoreError::SchemaTooNew {
                database_version: before.database_version,
                binary_version: before.binary_version,
            });
        }
        let migrator = self.migrator();
        on_pool!(self, pool => migrator.run(pool).await.map_err(|e| StoreError::Migration(e.to_string()))?);
        Ok(before.pending)
    }
}
