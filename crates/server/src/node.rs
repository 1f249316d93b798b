//! Starting and stopping a node. The order matters for "bad input loses nothing": the
//! configuration is validated and a remote database reached before anything is created on
//! disk, so a failed start leaves no partial state behind.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use coworker_core::config::{Config, DatabaseKind};
use coworker_store::Store;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::NodeError;
use crate::api::{AppState, router};
use crate::bootstrap::{self, Bootstrap};
use crate::datadir::{self, DataDirLock};
use crate::shutdown::Shutdown;

/// Options beyond the configuration file.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// Install SIGINT/SIGTERM handlers that trigger graceful shutdown (the CLI does; tests
    /// trigger shutdown themselves).
    pub handle_signals: bool,
}

/// Entry point for booting a node.
pub struct Node;

/// A started node. Dropping it does not stop it; call [`RunningNode::shutdown`] and
/// [`RunningNode::wait`].
pub struct RunningNode {
    /// Address actually bound (useful with port 0).
    pub local_addr: SocketAddr,
    /// URL people use to reach the node.
    pub public_url: String,
    /// The data dir.
    pub data_dir: PathBuf,
    /// What first-run bootstrap did.
    pub bootstrap: Bootstrap,
    /// The database.
    pub store: Store,
    shutdown: Shutdown,
    server: JoinHandle<std::io::Result<()>>,
    grace: Duration,
    _lock: DataDirLock,
}

impl Node {
    /// Validates `config`, opens and migrates the database, bootstraps the owner, binds the
    /// listener and starts serving.
    pub async fn start(config: Config, options: NodeOptions) -> Result<RunningNode, NodeError> {
        config.validate()?;
        let listen = config.listen_addr()?;
        let data_dir = absolute(Path::new(&config.storage.data_dir));

        // A remote database is reached before the data dir is touched…
        let remote = match config.database_kind()? {
            DatabaseKind::Postgres => Some(Store::open(&config.storage, &data_dir).await?),
            DatabaseKind::Sqlite => None,
        };
        // So is the port: a taken port fails the start before anything is written.
        let listener = TcpListener::bind(listen).await.map_err(|e| bind_error(listen, &e))?;
        datadir::prepare(&data_dir)?;
        let lock = datadir::lock(&data_dir)?;
        let store = match remote {
            Some(store) => store,
            None => Store::open(&config.storage, &data_dir).await?,
        };

        let applied = store.migrate().await?;
        if !applied.is_empty() {
            tracing::info!(versions = ?applied, database = store.location(), "applied database migrations");
        }
        let bootstrap = bootstrap::run(&store, &data_dir).await?;

        let local_addr = listener.local_addr().map_err(|source| NodeError::Io {
            context: "reading the bound address".into(),
            source,
        })?;
        let public_url = if config.server.public_url.is_empty() {
            format!("http://{local_addr}")
        } else {
            config.public_url()
        };

        crate::metrics::handle();
        let max_request_bytes = usize::try_from(config.server.max_request_bytes).unwrap_or(usize::MAX);
        let app = router(
            AppState {
                store: store.clone(),
                public_url: public_url.clone(),
            },
            max_request_bytes,
        );

        let shutdown = Shutdown::new();
        if options.handle_signals {
            shutdown.on_signals();
        }
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.wait().await })
                .await
        });
        tracing::info!(%local_addr, database = store.backend_name(), data_dir = %data_dir.display(), "coworker node serving");

        Ok(RunningNode {
            local_addr,
            public_url,
            data_dir,
            bootstrap,
            store,
            shutdown,
            server,
            grace: Duration::from_secs(config.server.shutdown_grace_secs),
            _lock: lock,
        })
    }
}

impl RunningNode {
    /// Starts graceful shutdown: stop accepting, let in-flight requests finish.
    pub fn shutdown(&self) {
        self.shutdown.trigger();
    }

    /// A handle that can trigger shutdown from elsewhere.
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Waits until the server has stopped (after a signal or [`RunningNode::shutdown`]),
    /// giving in-flight requests up to the configured grace period, then closes the database.
    pub async fn wait(self) -> Result<(), NodeError> {
        let RunningNode {
            server,
            shutdown,
            grace,
            store,
            ..
        } = self;
        let mut server = server;
        let result = tokio::select! {
            joined = &mut server => Some(joined),
            () = async { shutdown.wait().await; tokio::time::sleep(grace).await } => None,
        };
        let outcome = match result {
            Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(source))) => Err(NodeError::Io {
                context: "serving HTTP".into(),
                source,
            }),
            Some(Err(join)) => Err(NodeError::Io {
                context: "serving HTTP".into(),
                source: std::io::Error::other(join.to_string()),
            }),
            None => {
                tracing::warn!(
                    grace_secs = grace.as_secs(),
                    "in-flight requests did not finish within the grace period; stopping anyway"
                );
                server.abort();
                Ok(())
            }
        };
        store.close().await;
        outcome
    }
}

fn bind_error(addr: SocketAddr, error: &std::io::Error) -> NodeError {
    let hint = match error.kind() {
        std::io::ErrorKind::AddrInUse => {
            "another process is using this port: stop it, or choose another address with --listen or COWORKER_LISTEN"
                .to_owned()
        }
        std::io::ErrorKind::AddrNotAvailable => {
            "this machine has no such address: use 127.0.0.1 (local only) or 0.0.0.0 (all interfaces)".to_owned()
        }
        std::io::ErrorKind::PermissionDenied => {
            "ports below 1024 need privileges: choose a port such as 8080".to_owned()
        }
        _ => "check server.listen (or --listen / COWORKER_LISTEN)".to_owned(),
    };
    NodeError::Bind {
        addr: addr.to_string(),
        message: error.to_string(),
        hint,
    }
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_owned())
    }
}
