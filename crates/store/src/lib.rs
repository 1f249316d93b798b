//! Coworker's persistence: one [`Store`] over two typed pools, SQLite (the default, one
//! machine) and PostgreSQL (scale-out), with migrations embedded in the binary.
//!
//! Architecture invariants:
//! - Callers never see which backend they talk to; every method behaves identically on both
//!   (one behavioural test suite runs against each).
//! - SQL lives here, next to the code that runs it; the same SQL text serves both backends
//!   wherever the dialects agree (`$1` placeholders work on both).
//! - Nothing here knows about HTTP, models or tools.

mod accounts;
mod audit;
mod changes;
mod connections;
mod error;
mod files;
mod inputs;
// memory (issue 11)
mod memory;
mod migrate;
mod notifications;
mod oauth;
mod projects;
mod records;
mod runs;
mod schedules;
mod secrets;
// Shared sign-in rate limit (issue 18).
mod signin;
mod stats;
mod tasks;
mod templates;
mod triggers;
mod users;
// Slack (issue 13).
mod slack;
// Multi-agent orchestration (issue 15).
mod subtasks;
// Email (issue 16).
mod email;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use coworker_core::config::{DatabaseKind, StorageConfig};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use accounts::{AcceptInvitation, Invitation, InvitationProblem, Session};
pub use audit::{
    AUDIT_ADVISORY_LOCK_KEY, AUDIT_MAX_PAGE_ROWS, AUDIT_VERIFY_PAGE_ROWS, AuditEntry, AuditFilter, AuditRecord,
    AuditVerification, BrokenEntry, BrokenReason, GENESIS_PREV_HASH, actions, audit_entry_hash, canonical_entry_json,
};
pub use changes::{CHANGE_BUFFER, CHANGES_CHANNEL, Change};
pub use connections::{Connection, ConnectionScope, ConnectionVersion, NewConnection};
pub use error::{StoreError, redact_url};
pub use files::{FilePage, FileVersion, MAX_FILE_PAGE, MAX_FILE_VERSION_ATTEMPTS, NewFileVersion};
pub use inputs::{Decided, MAX_APPROVAL_PAGE, RUNNABLE_CHANNEL};
// memory (issue 11)
pub use memory::{
    Inserted, MAX_FULLTEXT_CANDIDATES, MAX_MEMORY_PAGE, MemoryEvent, MemoryFilter, MemoryItem, MemoryVectorRow,
    NewMemoryItem, decode_vector, encode_vector, memory_text_key,
};
pub use migrate::{SchemaStatus, binary_schema_version};
pub use notifications::{MAX_NOTIFICATION_PAGE, NewNotification, Notification};
pub use oauth::{
    NewOauthFlow, NewOauthGrant, ORG_OWNER_KEY, OauthClient, OauthEndpoints, OauthFlow, OauthGrant, OauthGrantStatus,
    grant_token_secret,
};
pub use projects::{MAX_PROJECT_SLUG_BYTES, Project, valid_project_slug};
pub use records::*;
pub use runs::runs_max_event_page;
pub use secrets::{SealedSecret, SecretMeta, SecretWrite};
pub use signin::MAX_SIGNIN_KEYS;
/// The database driver's error type, for callers that must wrap one.
pub use sqlx::Error as SqlxError;
pub use stats::{CoworkerStats, DAY_MS, DashboardStats, DayCount, MAX_STATS_DAYS, StatusCount};
pub use tasks::{MAX_TASK_PAGE, TaskCursor, TaskFilter};
pub use templates::{DocumentTemplate, MAX_TEMPLATE_NAME_CHARS, NewTemplate, template_scopes, valid_template_name};
pub use users::NewUser;
// Schedules and triggers (issue 12).
pub use schedules::{
    FireBatch, MAX_FIRE_BATCH, MAX_FIRES_SHOWN, MAX_SCHEDULE_PAGE, NewSchedule, Schedule, ScheduleFire,
    fire_idempotency_key,
};
pub use triggers::{MAX_TRIGGER_PAGE, NewTrigger, Trigger};
// Slack (issue 13).
pub use slack::{MAX_SLACK_BATCH, SlackEvent, SlackPost, SlackThread, TaskDelivery};
// Multi-agent orchestration (issue 15).
pub use subtasks::{
    HANDOFF_INPUT, MAX_TREE_LEVELS, MAX_TREE_TASKS, NewSubtask, Subtask, TreeTask, TreeUsage, subtask_idempotency_key,
};
// Email (issue 16).
pub use email::{EmailMessage, EmailSend, MAX_EMAIL_BATCH, MAX_REFERENCES_LOOKED_UP};

/// File name of the SQLite database inside the data dir.
pub const SQLITE_FILE_NAME: &str = "coworker.db";

/// Current time as Unix epoch milliseconds (the unit of every `*_at_ms` column).
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Handle to the database. Cheap to clone (pools are shared).
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// Human description of where the data lives, with any password redacted.
    location: String,
    /// In-process wake-up notifier for workers (see `inputs`).
    wakeups: std::sync::Arc<tokio::sync::Notify>,
    /// The PostgreSQL wake-up listener task, if started.
    listener: std::sync::Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
    /// Change notices for live views (see `changes`).
    changes: tokio::sync::broadcast::Sender<Change>,
    /// This node's PostgreSQL notice sender, once started (see `changes`).
    notices: std::sync::Arc<std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedSender<Change>>>>,
}

#[derive(Clone)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever typed pool the store holds. The body is
/// compiled once per backend, so the same SQL text and row mapping serve both.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::Backend::Sqlite($pool) => $body,
            $crate::Backend::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Opens a transaction that will write. On SQLite it is `BEGIN IMMEDIATE`: a deferred
/// transaction that reads and then writes fails at once with `SQLITE_BUSY` when another
/// connection committed in between (the busy timeout does not cover that upgrade), so taking
/// the write lock up front makes concurrent writers wait their turn instead of failing.
pub(crate) trait BeginWrite {
    /// The database.
    type Db: sqlx::Database;
    /// The transaction.
    fn begin_write(&self) -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>> + Send;
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error>> + Send {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error>> + Send {
        self.begin()
    }
}

/// Connection tuning shared by both backends.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Largest number of pooled connections.
    pub max_connections: u32,
    /// How long to wait for a busy SQLite database or a free connection.
    pub busy_timeout: Duration,
    /// SQLite page cache of the whole pool, KiB (each connection gets its share).
    pub sqlite_cache_kib: u64,
}

impl PoolSettings {
    /// Each SQLite connection's page cache, KiB: the pool's budget shared out, at least 64.
    pub fn sqlite_cache_kib_per_connection(&self) -> u64 {
        (self.sqlite_cache_kib / u64::from(self.max_connections.max(1))).max(64)
    }
}

impl Default for PoolSettings {
    fn default() -> Self {
        let defaults = StorageConfig::default();
        Self::from(&defaults)
    }
}

impl From<&StorageConfig> for PoolSettings {
    fn from(config: &StorageConfig) -> Self {
        Self {
            max_connections: config.max_connections.max(1),
            busy_timeout: Duration::from_millis(config.busy_timeout_ms),
            sqlite_cache_kib: u64::from(config.sqlite_cache_mib.max(1)) * 1024,
        }
    }
}

impl Store {
    /// Opens the database a configuration selects: SQLite in `data_dir`, or PostgreSQL.
    /// Does not migrate; call [`Store::migrate`] or [`Store::check_schema`] next.
    pub async fn open(config: &StorageConfig, data_dir: &Path) -> Result<Store, StoreError> {
        let settings = PoolSettings::from(config);
        match config_kind(config) {
            DatabaseKind::Sqlite => Store::open_sqlite(&data_dir.join(SQLITE_FILE_NAME), &settings).await,
            DatabaseKind::Postgres => Store::open_postgres(&config.database_url, &settings).await,
        }
    }

    /// Opens (creating if missing) an SQLite database file in WAL mode.
    pub async fn open_sqlite(path: &Path, settings: &PoolSettings) -> Result<Store, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(settings.busy_timeout)
            // Negative: a size in KiB rather than pages.
            .pragma("cache_size", format!("-{}", settings.sqlite_cache_kib_per_connection()));
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.busy_timeout)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::sqlite_open(path, &e))?;
        Ok(Store {
            backend: Backend::Sqlite(pool),
            location: format!("sqlite:{}", path.display()),
            wakeups: Default::default(),
            listener: Default::default(),
            changes: changes::channel(),
            notices: Default::default(),
        })
    }

    /// Connects to PostgreSQL at `url`.
    pub async fn open_postgres(url: &str, settings: &PoolSettings) -> Result<Store, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::Connect {
            target: redact_url(url),
            message: e.to_string(),
            hint: "check storage.database_url (or COWORKER_DATABASE_URL): expected postgres://user[:password]@host[:port]/database".into(),
        })?;
        Store::open_postgres_with(options, url, settings).await
    }

    /// Connects to PostgreSQL with prepared options (tests use this to pin a schema).
    pub async fn open_postgres_with(
        options: PgConnectOptions,
        url_for_messages: &str,
        settings: &PoolSettings,
    ) -> Result<Store, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.busy_timeout)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Connect {
                target: redact_url(url_for_messages),
                message: e.to_string(),
                hint: "is PostgreSQL running and reachable, and do the user, password and database exist? \
                       Check storage.database_url (or COWORKER_DATABASE_URL)"
                    .into(),
            })?;
        Ok(Store {
            backend: Backend::Postgres(pool),
            location: redact_url(url_for_messages),
            wakeups: Default::default(),
            listener: Default::default(),
            changes: changes::channel(),
            notices: Default::default(),
        })
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Writes a consistent copy of an SQLite database to the new file `target` with
    /// `VACUUM INTO` (one read transaction: safe while nodes write, and the copy is compact
    /// and self-contained, WAL included). Returns `false`, writing nothing, on PostgreSQL,
    /// whose backups are `pg_dump`'s job.
    pub async fn snapshot_sqlite(&self, target: &Path) -> Result<bool, StoreError> {
        let Backend::Sqlite(pool) = &self.backend else {
            return Ok(false);
        };
        sqlx::query("VACUUM INTO $1")
            .bind(target.display().to_string())
            .execute(pool)
            .await?;
        Ok(true)
    }

    /// Where the data lives, safe to print (passwords redacted).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Round-trips a trivial query: is the database reachable right now?
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()).map_err(StoreError::from))
    }

    /// Closes every pooled connection, waiting for in-flight queries.
    pub async fn close(&self) {
        if let Ok(mut slot) = self.listener.lock()
            && let Some(task) = slot.take()
        {
            task.abort();
        }
        on_pool!(self, pool => pool.close().await)
    }

    /// The underlying PostgreSQL pool, for crates that need backend-specific features
    /// (LISTEN/NOTIFY). `None` on SQLite.
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.backend {
            Backend::Postgres(pool) => Some(pool),
            Backend::Sqlite(_) => None,
        }
    }
}

fn config_kind(config: &StorageConfig) -> DatabaseKind {
    if config.database_url.trim().is_empty() {
        DatabaseKind::Sqlite
    } else {
        DatabaseKind::Postgres
    }
}

/// Path of the SQLite database for a data dir.
pub fn sqlite_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SQLITE_FILE_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_sqlite_connection_gets_its_share_of_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let settings = PoolSettings {
            max_connections: 4,
            busy_timeout: Duration::from_secs(5),
            sqlite_cache_kib: 4096,
        };
        assert_eq!(settings.sqlite_cache_kib_per_connection(), 1024);
        let store = Store::open_sqlite(&dir.path().join("db.sqlite"), &settings)
            .await
            .unwrap();
        let Backend::Sqlite(pool) = &store.backend else {
            unreachable!("opened SQLite")
        };
        let cache: i64 = sqlx::query_scalar("PRAGMA cache_size").fetch_one(pool).await.unwrap();
        assert_eq!(cache, -1024, "negative: KiB");
        let tiny = PoolSettings {
            max_connections: 64,
            sqlite_cache_kib: 1024,
            ..settings
        };
        assert_eq!(tiny.sqlite_cache_kib_per_connection(), 64, "never below 64 KiB");
        store.close().await;
    }
}
