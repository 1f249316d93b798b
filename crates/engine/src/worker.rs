//! The worker pool: claim a runnable run, drive it, repeat; sleep until a wake-up (pushed
//! through the store's notifier) or the fallback poll period when there is nothing to do.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Engine;

impl Engine {
    /// Claims and drives at most one runnable run. Returns whether one was found. (Tests and
    /// benchmarks use this to step the engine deterministically.)
    pub async fn run_once(&self, worker_id: &str) -> Result<bool, crate::EngineError> {
        let Some(claimed) = self.store().claim_run(worker_id, self.settings().lease_ttl_ms).await? else {
            return Ok(false);
        };
        self.drive(claimed, watch::channel(false).1).await?;
        Ok(true)
    }

    /// Starts `settings.workers` workers named `{node}-{n}`. They stop claiming when
    /// `shutdown` turns true, hand their current run back, and exit.
    pub fn spawn_workers(&self, node: &str, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        (0..self.settings().workers.max(1))
            .map(|n| {
                let engine = self.clone();
                let worker_id = format!("{node}-{n}");
                let shutdown = shutdown.clone();
                tokio::spawn(async move { engine.work(worker_id, shutdown).await })
            })
            .collect()
    }

    async fn work(self, worker_id: String, mut shutdown: watch::Receiver<bool>) {
        let wakeups = self.store().wakeups();
        let poll = Duration::from_millis(self.settings().poll_interval_ms);
        tracing::debug!(%worker_id, "worker started");
        // Consecutive failed claims (the database unreachable): each waits longer, up to
        // MAX_CLAIM_BACKOFF, so a node without its database does not hammer it; the first
        // claim that works resets it.
        let mut failures: u32 = 0;
        while !*shutdown.borrow() {
            // Register interest before claiming, so a wake-up sent while we claim is not lost.
            let notified = wakeups.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let claimed = self.store().claim_run(&worker_id, self.settings().lease_ttl_ms).await;
            if claimed.is_ok() && failures > 0 {
                tracing::info!(%worker_id, failures, "claiming runs works again");
                failures = 0;
            }
            match claimed {
                Ok(Some(claimed)) => {
                    let run_id = claimed.run.id;
                    if let Err(error) = self.drive(claimed, shutdown.clone()).await {
                        tracing::error!(%worker_id, %run_id, %error, "run failed to advance; it will be retried");
                    }
                }
                Ok(None) => {
                    tokio::select! {
                        () = &mut notified => {},
                        () = tokio::time::sleep(poll) => {},
                        _ = shutdown.wait_for(|stop| *stop) => {},
                    }
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let wait = claim_backoff(poll, failures);
                    tracing::warn!(%worker_id, %error, failures, wait_ms = wait.as_millis() as u64, "claiming runs failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {},
                        _ = shutdown.wait_for(|stop| *stop) => {},
                    }
                }
            }
        }
        tracing::debug!(%worker_id, "worker stopped");
    }
}

/// Longest wait between claims while they keep failing.
pub const MAX_CLAIM_BACKOFF: Duration = Duration::from_secs(5);

/// The wait after `failures` failed claims in a row: the poll period doubled per failure,
/// at most [`MAX_CLAIM_BACKOFF`].
pub fn claim_backoff(poll: Duration, failures: u32) -> Duration {
    let doubled = poll.saturating_mul(1_u32 << failures.saturating_sub(1).min(16));
    doubled.min(MAX_CLAIM_BACKOFF).max(poll.min(MAX_CLAIM_BACKOFF))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_claims_back_off_up_to_the_cap() {
        let poll = Duration::from_millis(500);
        assert_eq!(claim_backoff(poll, 1), poll);
        assert_eq!(claim_backoff(poll, 2), Duration::from_secs(1));
        assert_eq!(claim_backoff(poll, 3), Duration::from_secs(2));
        assert_eq!(claim_backoff(poll, 5), MAX_CLAIM_BACKOFF);
        assert_eq!(claim_backoff(poll, u32::MAX), MAX_CLAIM_BACKOFF);
    }
}
