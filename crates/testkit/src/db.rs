//! Fresh, isolated databases for tests: a temp dir holding an SQLite file, or a new schema
//! in the PostgreSQL database named by `COWORKER_TEST_DATABASE_URL`.

use std::path::{Path, PathBuf};

use coworker_store::{PoolSettings, Store};
use sqlx::Connection;

/// Environment variable naming the PostgreSQL database tests may use.
pub const TEST_DATABASE_URL_ENV: &str = "COWORKER_TEST_DATABASE_URL";

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file in a temp dir.
    Sqlite,
    /// A fresh schema in the test PostgreSQL database.
    Postgres,
}

/// The PostgreSQL URL tests may use, if configured.
pub fn postgres_url() -> Option<String> {
    std::env::var(TEST_DATABASE_URL_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// An isolated, migrated database plus a temp data dir. Cleaned up on drop.
pub struct TestDb {
    /// Which backend.
    pub backend: Backend,
    /// The migrated store.
    pub store: Store,
    /// `storage.database_url` value that reaches this same database (empty for SQLite),
    /// with the schema pinned, so a child process or a second node can share it.
    pub database_url: String,
    dir: tempfile::TempDir,
    schema: Option<(String, String)>,
}

impl TestDb {
    /// A fresh migrated database; `None` for PostgreSQL when no test database is configured.
    ///
    /// # Panics
    /// If the database cannot be created: a test cannot proceed without it.
    pub async fn new(backend: Backend) -> Option<TestDb> {
        let db = Self::unmigrated(backend).await?;
        db.store.migrate().await.expect("migrations apply to a fresh database");
        Some(db)
    }

    /// Like [`TestDb::new`] without applying migrations.
    pub async fn unmigrated(backend: Backend) -> Option<TestDb> {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => {
                let store = Store::open_sqlite(&dir.path().join("coworker.db"), &PoolSettings::default())
                    .await
                    .expect("open sqlite");
                Some(TestDb {
                    backend,
                    store,
                    database_url: String::new(),
                    dir,
                    schema: None,
                })
            }
            Backend::Postgres => {
                let base = postgres_url()?;
                let schema = format!("cw_test_{}", uuid::Uuid::now_v7().simple());
                let mut conn = sqlx::PgConnection::connect(&base)
                    .await
                    .expect("connect to COWORKER_TEST_DATABASE_URL");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test schema");
                let _ = conn.close().await;
                let database_url = with_search_path(&base, &schema);
                let store = Store::open_postgres(
                    &database_url,
                    &PoolSettings {
                        max_connections: 8,
                        ..PoolSettings::default()
                    },
                )
                .await
                .expect("open postgres test schema");
                Some(TestDb {
                    backend,
                    store,
                    database_url,
                    dir,
                    schema: Some((base, schema)),
                })
            }
        }
    }

    /// The data dir a node (in-process or a child process) should use to share this
    /// database: the test's own dir on SQLite (the database file lives there), a fresh
    /// subdirectory on PostgreSQL.
    pub fn node_data_dir(&self) -> PathBuf {
        match self.backend {
            Backend::Sqlite => self.dir().to_owned(),
            Backend::Postgres => self.dir().join("data"),
        }
    }

    /// A temp directory that lives as long as this database (use it as a data dir).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A fresh subdirectory of [`TestDb::dir`].
    pub fn subdir(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(&path).expect("create subdir");
        path
    }
}

/// Adds `options=-c search_path=SCHEMA` to a PostgreSQL URL.
pub fn with_search_path(url: &str, schema: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-c%20search_path%3D{schema}")
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((base, schema)) = self.schema.take() else {
            return;
        };
        // Drop runs outside async context: use a private runtime on a plain thread.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
                        .execute(&mut conn)
                        .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}
