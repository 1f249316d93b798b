//! Sign-in rate limiting: failed attempts are counted per client address and per account in
//! fixed windows; past the limit, attempts are refused until the window ends. Kept in memory
//! per node (a multi-node deployment multiplies the allowance by the node count; a load
//! balancer's stickiness or a shared table would tighten that).

use std::collections::HashMap;
use std::sync::Mutex;

/// Failed attempts allowed per key per window.
pub const MAX_FAILURES_PER_WINDOW: u32 = 10;

/// Length of a window, in milliseconds (15 minutes).
pub const WINDOW_MS: i64 = 15 * 60 * 1000;

/// Most keys remembered; the oldest windows are dropped first when full.
pub const MAX_TRACKED_KEYS: usize = 100_000;

/// Counts failures per key.
#[derive(Debug, Default)]
pub struct SigninLimiter {
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

impl SigninLimiter {
    /// `Err(retry_after_ms)` when any of `keys` is over the limit at `now_ms`.
    pub fn check(&self, keys: &[String], now_ms: i64) -> Result<(), i64> {
        let windows = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut wait = 0;
        for key in keys {
            if let Some((start, failures)) = windows.get(key)
                && now_ms - start < WINDOW_MS
                && *failures >= MAX_FAILURES_PER_WINDOW
            {
                wait = wait.max(start + WINDOW_MS - now_ms);
            }
        }
        if wait > 0 { Err(wait) } else { Ok(()) }
    }

    /// Records a failed attempt against every key.
    pub fn failed(&self, keys: &[String], now_ms: i64) {
        let mut windows = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.len() + keys.len() > MAX_TRACKED_KEYS {
            windows.retain(|_, (start, _)| now_ms - *start < WINDOW_MS);
        }
        for key in keys {
            let entry = windows.entry(key.clone()).or_insert((now_ms, 0));
            if now_ms - entry.0 >= WINDOW_MS {
                *entry = (now_ms, 0);
            }
            entry.1 += 1;
        }
    }

    /// Forgets an account's failures after a successful sign-in.
    pub fn succeeded(&self, key: &str) {
        self.windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_the_limit_and_reopens_after_the_window() {
        let limiter = SigninLimiter::default();
        let keys = vec!["ip:1.2.3.4".to_owned(), "email:a@b.c".to_owned()];
        for _ in 0..MAX_FAILURES_PER_WINDOW {
            assert!(limiter.check(&keys, 1_000).is_ok());
            limiter.failed(&keys, 1_000);
        }
        assert_eq!(limiter.check(&keys, 2_000), Err(WINDOW_MS - 1_000));
        assert!(
            limiter.check(&["ip:5.6.7.8".to_owned()], 2_000).is_ok(),
            "other clients are unaffected"
        );
        assert!(limiter.check(&keys, 1_000 + WINDOW_MS).is_ok());
        limiter.failed(&keys, 1_000 + WINDOW_MS);
        assert!(
            limiter.check(&keys, 1_000 + WINDOW_MS).is_ok(),
            "a new window starts from zero"
        );
    }
}
