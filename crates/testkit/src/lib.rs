//! Test-only helpers: fresh databases on both backends, whole nodes booted on ephemeral
//! ports, and scripted model servers. Never a dependency of a shipped crate.
//!
//! PostgreSQL tests run when `COWORKER_TEST_DATABASE_URL` is set (CI sets it); each test
//! gets its own schema in that database, dropped when the test's handle is dropped.

pub mod db;
// Slack (issue 13).
pub mod fake_slack;
// Email and calendar (issue 16): real IMAP and SMTP servers.
pub mod mail;
pub mod node;
pub mod npm;
// Connectors (issue 17): OpenAPI documents and a pet store implementing them.
pub mod openapi;
// OAuth connections (issue 17): an authorization server and the MCP server it protects.
pub mod oauth;
// Traces (issue 18): an OTLP receiver over HTTP and gRPC.
pub mod otlp;
pub mod process;
// Operations (issue 18): a TCP proxy that loses the database on command.
pub mod proxy;
pub mod python;
pub mod s3;
pub mod scripted_model;
pub mod webdriver;

pub use db::{Backend, TestDb};
pub use node::TestNode;

/// Runs each named async test body against SQLite and, when configured, PostgreSQL.
///
/// Each body is an `async fn name(db: &TestDb)` in the calling module; this generates
/// `sqlite::name` and `postgres::name` tests. The PostgreSQL variant prints a notice and
/// passes when `COWORKER_TEST_DATABASE_URL` is unset.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::TestDb::new($crate::Backend::Sqlite).await.expect("sqlite test database");
                    super::$name(&db).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::TestDb::new($crate::Backend::Postgres).await else {
                        eprintln!("skipped: set COWORKER_TEST_DATABASE_URL to run the PostgreSQL variant");
                        return;
                    };
                    super::$name(&db).await;
                }
            )+
        }
    };
}
