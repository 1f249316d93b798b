//! Shutdown signalling: SIGINT/SIGTERM, or a programmatic trigger (tests, embedding).

use tokio::sync::watch;

/// A cloneable shutdown trigger and listener pair.
#[derive(Clone)]
pub struct Shutdown {
    sender: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A trigger that has not fired.
    pub fn new() -> Self {
        let (sender, _) = watch::channel(false);
        Self { sender }
    }

    /// Fires the trigger; every [`Shutdown::wait`] returns.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// A receiver that turns `true` when the trigger fires (for components that take a
    /// plain watch channel, like the engine's workers).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.sender.subscribe()
    }

    /// Whether the trigger has fired.
    pub fn is_triggered(&self) -> bool {
        *self.sender.borrow()
    }

    /// Resolves once the trigger fires.
    pub async fn wait(&self) {
        let mut receiver = self.sender.subscribe();
        // An error means every sender is gone; `self` holds one, so it cannot happen.
        let _ = receiver.wait_for(|fired| *fired).await;
    }

    /// Fires the trigger on the first SIGINT or SIGTERM.
    pub fn on_signals(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received; finishing in-flight requests");
            this.trigger();
        });
    }
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
