//! Failed sign-in attempts per key (a client address, an account), counted in fixed windows
//! and shared by every node on the database. Keys are kept as SHA-256 hashes.

use sha2::{Digest, Sha256};

use crate::{Store, StoreError, on_pool};

/// Most keys looked at in one check (a sign-in names two: address and account).
pub const MAX_SIGNIN_KEYS: usize = 8;

fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl Store {
    /// `Some(retry_after_ms)` when any of `keys` has `max_failures` or more failures in a
    /// window of `window_ms` still open at `now_ms`.
    pub async fn signin_locked(
        &self,
        keys: &[String],
        now_ms: i64,
        window_ms: i64,
        max_failures: i64,
    ) -> Result<Option<i64>, StoreError> {
        let mut wait = 0_i64;
        for key in keys.iter().take(MAX_SIGNIN_KEYS) {
            let found: Option<(i64, i64)> = on_pool!(self, pool => sqlx::query_as(
                "SELECT window_start_ms, failures FROM signin_failures WHERE key_hash = $1",
            )
            .bind(key_hash(key))
            .fetch_optional(pool)
            .await?);
            if let Some((start, failures)) = found
                && now_ms - start < window_ms
                && failures >= max_failures
            {
                wait = wait.max(start + window_ms - now_ms);
            }
        }
        Ok((wait > 0).then_some(wait))
    }

    /// Counts a failed attempt against every key (a window older than `window_ms` starts
    /// over at one). One statement per key: concurrent failures on any node all count.
    pub async fn signin_failed(&self, keys: &[String], now_ms: i64, window_ms: i64) -> Result<(), StoreError> {
        for key in keys.iter().take(MAX_SIGNIN_KEYS) {
            on_pool!(self, pool => sqlx::query(
                "INSERT INTO signin_failures (key_hash, window_start_ms, failures) VALUES ($1, $2, 1) \
                 ON CONFLICT (key_hash) DO UPDATE SET \
                 failures = CASE WHEN $2 - signin_failures.window_start_ms >= $3 THEN 1 ELSE signin_failures.failures + 1 END, \
                 window_start_ms = CASE WHEN $2 - signin_failures.window_start_ms >= $3 THEN $2 ELSE signin_failures.window_start_ms END",
            )
            .bind(key_hash(key))
            .bind(now_ms)
            .bind(window_ms)
            .execute(pool)
            .await
            .map(|_| ())?);
        }
        Ok(())
    }

    /// Forgets a key's failures (an account after it signed in).
    pub async fn signin_succeeded(&self, key: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("DELETE FROM signin_failures WHERE key_hash = $1")
            .bind(key_hash(key))
            .execute(pool)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Drops windows that ended before `before_ms`; returns how many.
    pub async fn prune_signin_failures(&self, before_ms: i64) -> Result<u64, StoreError> {
        let pruned = on_pool!(self, pool => sqlx::query("DELETE FROM signin_failures WHERE window_start_ms < $1")
            .bind(before_ms)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())?);
        Ok(pruned)
    }
}
