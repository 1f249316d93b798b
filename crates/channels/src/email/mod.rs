//! Email (issue 16): a coworker's mailbox, by the standard protocols only, so it works with
//! any provider.
//!
//! - [`imap`]: the watcher — IDLE where the server has it, polling otherwise — that records
//!   each new message (by UID validity + UID and by Message-ID) before anything acts on it.
//! - [`inbound`]: the processor: a member's mail → a task (its brief shows From, Subject and
//!   Message-ID; attachments become workspace files), a reply → a `human_message` in its run,
//!   mail from anyone else → an email trigger's task, or nothing.
//! - [`smtp`]: sending, once: the intent (with the Message-ID the mail will carry) is recorded
//!   before the SMTP transaction, so a retry never sends a second copy silently.
//! - [`tools`]: `email.send` and `email.reply` (`external`: their approval shows recipients,
//!   subject and the rendered body) and the `email:<address>` delivery loop.
//! - [`mime`]: parsing and fencing mail as untrusted data.
//!
//! The engine knows nothing of this: the channel reads the store and acts through [`Work`].

pub mod imap;
pub mod inbound;
pub mod mime;
pub mod smtp;
pub mod tools;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use coworker_core::TaskId;
use coworker_core::config::Config;
use coworker_core::email::{EmailConfig, MailServer};
use coworker_store::Store;
use coworker_tools::workspace::Workspace;
use secrecy::SecretString;
use tokio::sync::{Notify, watch};

use crate::work::Work;

/// How long a node holds a message it is processing before another may take it over, in ms.
pub const CLAIM_LEASE_MS: i64 = 60_000;

/// How often the processor and the delivery loop look when nothing woke them.
pub const EMAIL_POLL: Duration = Duration::from_millis(500);

/// Why email could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EmailSetupError {
    /// A section's password cannot be resolved, or a URL is wrong.
    #[error("email {name:?}: {message}")]
    Mailbox {
        /// The `[[email]]` name.
        name: String,
        /// What is wrong and what to do.
        message: String,
    },
}

/// One configured mailbox with its resolved credential.
pub struct Mailbox {
    /// Its section.
    pub config: EmailConfig,
    /// The password (`None`: log in without one, for local test servers).
    pub password: Option<SecretString>,
    /// The IMAP server.
    pub imap: MailServer,
    /// The SMTP server.
    pub smtp: MailServer,
}

impl Mailbox {
    /// A mailbox from its section (index `i` names it in errors).
    pub fn new(i: usize, config: EmailConfig, password: Option<SecretString>) -> Result<Mailbox, EmailSetupError> {
        let at = format!("email[{i}]");
        let fail = |e: coworker_core::config::ConfigError| EmailSetupError::Mailbox {
            name: config.name.clone(),
            message: e.to_string(),
        };
        let imap = config.imap(&at).map_err(fail)?;
        let smtp = config.smtp(&at).map_err(fail)?;
        Ok(Mailbox {
            config,
            password,
            imap,
            smtp,
        })
    }

    /// The domain of its address (for Message-IDs).
    pub fn domain(&self) -> &str {
        self.config
            .address
            .rsplit_once('@')
            .map_or("localhost", |(_, d)| d.trim())
    }
}

/// Counters for `coworker email test`, metrics and benchmarks.
#[derive(Debug, Default)]
pub struct EmailStats {
    /// IMAP sessions currently open.
    pub sessions_open: AtomicUsize,
    /// Messages recorded.
    pub recorded: AtomicUsize,
    /// Messages handed to SMTP and accepted.
    pub sent: AtomicUsize,
}

/// The email channel of one node. Cheap to clone.
#[derive(Clone)]
pub struct Email {
    pub(crate) inner: Arc<EmailInner>,
}

pub(crate) struct EmailInner {
    pub(crate) mailboxes: Vec<Mailbox>,
    pub(crate) store: Store,
    pub(crate) work: Arc<dyn Work>,
    pub(crate) workspace: Arc<Workspace>,
    pub(crate) inbound_wake: Notify,
    pub(crate) outbound_wake: Notify,
    pub(crate) stats: EmailStats,
    /// The node's tracer, when it traces (issue 18).
    pub(crate) tracer: std::sync::OnceLock<Arc<dyn coworker_core::trace::Tracer>>,
}

impl Email {
    /// The channel over `mailboxes`, acting through `work`.
    pub fn new(mailboxes: Vec<Mailbox>, store: Store, work: Arc<dyn Work>, workspace: Arc<Workspace>) -> Email {
        Email {
            inner: Arc::new(EmailInner {
                mailboxes,
                store,
                work,
                workspace,
                inbound_wake: Notify::new(),
                outbound_wake: Notify::new(),
                stats: EmailStats::default(),
                tracer: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Gives the channel the node's tracer (once, at start-up): each result it mails is a
    /// `deliver email` span of the task's trace.
    pub fn set_tracer(&self, tracer: Arc<dyn coworker_core::trace::Tracer>) {
        let _ = self.inner.tracer.set(tracer);
    }

    /// The mailboxes.
    pub fn mailboxes(&self) -> &[Mailbox] {
        &self.inner.mailboxes
    }

    /// The mailbox named `name`.
    pub fn mailbox(&self, name: &str) -> Option<&Mailbox> {
        self.inner.mailboxes.iter().find(|m| m.config.name == name)
    }

    /// Counters.
    pub fn stats(&self) -> &EmailStats {
        &self.inner.stats
    }

    /// IMAP sessions open now.
    pub fn sessions_open(&self) -> usize {
        self.inner.stats.sessions_open.load(Ordering::Relaxed)
    }

    /// The mailbox a task's mail goes out of: the one its conversation came in by, else its
    /// coworker's, else none.
    pub async fn mailbox_for_task(&self, task_id: TaskId) -> Result<Option<&Mailbox>, coworker_store::StoreError> {
        let store = &self.inner.store;
        let Some(task) = store.get_task(task_id).await? else {
            return Ok(None);
        };
        if let Some((name, _)) = origin_message(&task)
            && let Some(mailbox) = self.mailbox(&name)
        {
            return Ok(Some(mailbox));
        }
        if let Some(first) = store.email_messages_of_task(task_id).await?.into_iter().next()
            && let Some(mailbox) = self.mailbox(&first.mailbox)
        {
            return Ok(Some(mailbox));
        }
        let Some(coworker) = store.get_coworker(task.coworker_id).await? else {
            return Ok(None);
        };
        Ok(self
            .inner
            .mailboxes
            .iter()
            .find(|m| m.config.coworker.eq_ignore_ascii_case(&coworker.handle)))
    }

    /// Runs a watcher per mailbox, the processor and the delivery loop until `stop`.
    pub fn spawn(&self, stop: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut handles = Vec::new();
        for i in 0..self.inner.mailboxes.len() {
            handles.push(tokio::spawn(imap::watch(self.clone(), i, stop.clone())));
        }
        handles.push(tokio::spawn(inbound::run(self.clone(), stop.clone())));
        handles.push(tokio::spawn(tools::run_deliveries(self.clone(), stop)));
        handles
    }
}

/// The mailbox and Message-ID of the mail a task was made from, read from its idempotency
/// key (`email:{mailbox}:{Message-ID}`): known the moment the task exists, before anything
/// else is written about it.
pub fn origin_message(task: &coworker_store::Task) -> Option<(String, String)> {
    let rest = task.idempotency_key.as_deref()?.strip_prefix("email:")?;
    let (mailbox, message_id) = rest.split_once(':')?;
    Some((mailbox.to_owned(), message_id.to_owned()))
}

/// Resolves each `[[email]]` password and builds the mailboxes. `secret` reads a stored
/// secret by name.
pub async fn mailboxes_from_config<F, Fut>(
    config: &Config,
    env: &[(String, String)],
    secret: F,
) -> Result<Vec<Mailbox>, EmailSetupError>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<SecretString>, String>>,
{
    let mut out = Vec::new();
    for (i, section) in config.email.iter().enumerate() {
        let password = crate::slack::resolve_credential("password", &section.password, env, &secret)
            .await
            .map_err(|e| EmailSetupError::Mailbox {
                name: section.name.clone(),
                message: e.to_string().replacen("slack.", &format!("email[{i}]."), 1),
            })?;
        out.push(Mailbox::new(i, section.clone(), password)?);
    }
    Ok(out)
}

/// Waits for `notify` or `period`; `false` when `stop` turned true.
pub(crate) async fn pause(notify: &Notify, period: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    crate::slack::pause(notify, period, stop).await
}
