//! Sign-in rate limiting: failed attempts are counted per client address and per account in
//! fixed windows; past the limit, attempts are refused until the window ends. The counts
//! live in the database, so every node of a cluster enforces the same allowance (a client
//! spreading attempts over nodes gains nothing).

use coworker_store::{Store, StoreError};

/// Failed attempts allowed per key per window.
pub const MAX_FAILURES_PER_WINDOW: i64 = 10;

/// Length of a window, in milliseconds (15 minutes).
pub const WINDOW_MS: i64 = 15 * 60 * 1000;

/// `Err(retry_after_ms)` when any of `keys` is over the limit at `now_ms`.
pub async fn check(store: &Store, keys: &[String], now_ms: i64) -> Result<Result<(), i64>, StoreError> {
    Ok(
        match store
            .signin_locked(keys, now_ms, WINDOW_MS, MAX_FAILURES_PER_WINDOW)
            .await?
        {
            Some(wait) => Err(wait),
            None => Ok(()),
        },
    )
}

/// Records a failed attempt against every key.
pub async fn failed(store: &Store, keys: &[String], now_ms: i64) -> Result<(), StoreError> {
    store.signin_failed(keys, now_ms, WINDOW_MS).await
}

/// Forgets an account's failures after a successful sign-in.
pub async fn succeeded(store: &Store, key: &str) -> Result<(), StoreError> {
    store.signin_succeeded(key).await
}

/// Drops windows that ended (the node's upkeep calls this now and then).
pub async fn prune(store: &Store, now_ms: i64) -> Result<u64, StoreError> {
    store.prune_signin_failures(now_ms - WINDOW_MS).await
}

/// Prunes ended windows every hour until the node stops.
pub async fn prune_periodically(store: Store, shutdown: crate::shutdown::Shutdown) {
    const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);
    loop {
        tokio::select! {
            () = tokio::time::sleep(HOUR) => {}
            () = shutdown.wait() => return,
        }
        if let Err(error) = prune(&store, coworker_store::now_ms()).await {
            tracing::warn!(%error, "pruning sign-in failure counts failed; retrying next hour");
        }
    }
}
