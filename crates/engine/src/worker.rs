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
        while !*shutdown.borrow() {
            // Register interest before claiming, so a wake-up sent while we claim is not lost.
            let notified = wakeups.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.store().claim_run(&worker_id, self.settings().lease_ttl_ms).await {
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
                    tracing::warn!(%worker_id, %error, "claiming runs failed; retrying after the poll period");
                    tokio::select! {
                        () = tokio::time::sleep(poll) => {},
                        _ = shutdown.wait_for(|stop| *stop) => {},
                    }
                }
            }
        }
        tracing::debug!(%worker_id, "worker stopped");
    }
}
