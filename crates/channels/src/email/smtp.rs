//! Sending mail once (lettre on tokio with rustls).
//!
//! Every mail has a key (`call:<run>:<call>` for a tool call, `delivery:<task>`). Its intent —
//! the Message-ID it will carry, the recipients, the subject — is written to `email_outbox`
//! before the SMTP transaction, and marked `sent` once the server accepted it. A key already
//! sent is never sent again. An intent left without an outcome (the node died, or the server's
//! answer was lost) means nobody knows whether the mail went out: for a tool call the engine
//! then asks a human (design §2) and the mail goes again only if they say so, under the same
//! Message-ID (receivers drop duplicates by it); a delivery asks its delegator instead.

use std::sync::atomic::Ordering;
use std::time::Duration;

use coworker_core::TaskId;
use coworker_store::{Created, EmailSend, NewNotification, StoreError};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox as Address, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use super::{Email, Mailbox};

/// Longest an SMTP command may take.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(60);

/// Most recipients (To + Cc) of one mail.
pub const MAX_RECIPIENTS: usize = 50;

/// A mail to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Draft {
    /// To.
    pub to: Vec<String>,
    /// Cc.
    pub cc: Vec<String>,
    /// Subject.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// The message answered, bracketed.
    pub in_reply_to: Option<String>,
    /// The thread's ids, bracketed, oldest first.
    pub references: Vec<String>,
    /// Attachments: file name, bytes.
    pub attachments: Vec<(String, Vec<u8>)>,
}

impl Draft {
    /// The mail as the approver sees it: headers and body, as it will be sent.
    pub fn render(&self, from: &str) -> String {
        let mut out = format!("From: {from}\nTo: {}\n", self.to.join(", "));
        if !self.cc.is_empty() {
            out.push_str(&format!("Cc: {}\n", self.cc.join(", ")));
        }
        out.push_str(&format!("Subject: {}\n", self.subject));
        if let Some(id) = &self.in_reply_to {
            out.push_str(&format!("In-Reply-To: {id}\n"));
        }
        for (name, bytes) in &self.attachments {
            out.push_str(&format!("Attachment: {name} ({} bytes)\n", bytes.len()));
        }
        out.push('\n');
        out.push_str(&self.body);
        out
    }

    /// Every recipient.
    pub fn recipients(&self) -> Vec<String> {
        self.to.iter().chain(&self.cc).cloned().collect()
    }
}

/// What became of a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// Accepted by the server now.
    Sent {
        /// Its Message-ID.
        message_id: String,
    },
    /// Accepted earlier (this key was sent before): nothing was sent now.
    AlreadySent {
        /// Its Message-ID.
        message_id: String,
    },
    /// Refused by the server (or refused before sending): not sent.
    Refused(String),
}

/// Why a send's outcome is not known.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server's answer did not arrive: the mail may or may not have gone out.
    #[error(
        "the SMTP server did not confirm mail {message_id} ({message}); it may or may not have been sent, so it will not be sent again without a person's decision"
    )]
    Unknown {
        /// The mail's Message-ID.
        message_id: String,
        /// What happened.
        message: String,
    },
    /// An earlier attempt of the same send left no outcome.
    #[error("an earlier attempt to send {message_id} stopped without an outcome; it may have been sent")]
    Unfinished {
        /// Its Message-ID.
        message_id: String,
    },
}

/// The transport for a mailbox.
pub fn transport(mailbox: &Mailbox) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = &mailbox.smtp;
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server.host.clone())
        .port(server.port)
        .timeout(Some(SMTP_TIMEOUT));
    if server.implicit_tls || mailbox.config.starttls {
        let parameters =
            TlsParameters::new(server.host.clone()).map_err(|e| format!("TLS set-up for {}: {e}", server.host))?;
        builder = builder.tls(if server.implicit_tls {
            Tls::Wrapper(parameters)
        } else {
            Tls::Required(parameters)
        });
    }
    if let Some(password) = &mailbox.password {
        let username = if mailbox.config.username.is_empty() {
            mailbox.config.address.clone()
        } else {
            mailbox.config.username.clone()
        };
        builder = builder.credentials(Credentials::new(username, password.expose_secret().to_owned()));
    }
    Ok(builder.build())
}

fn address(text: &str) -> Result<Address, String> {
    text.trim()
        .parse::<Address>()
        .map_err(|e| format!("{text:?} is not an email address ({e})"))
}

/// Builds the MIME message.
pub fn build(mailbox: &Mailbox, draft: &Draft, message_id: &str) -> Result<Message, String> {
    if draft.to.is_empty() {
        return Err("the mail has no recipient".into());
    }
    if draft.recipients().len() > MAX_RECIPIENTS {
        return Err(format!(
            "the mail has more than {MAX_RECIPIENTS} recipients (smtp::MAX_RECIPIENTS)"
        ));
    }
    let mut builder = Message::builder()
        .from(address(&mailbox.config.address)?)
        .subject(draft.subject.replace(['\r', '\n'], " "))
        .message_id(Some(message_id.to_owned()))
        .date_now();
    for to in &draft.to {
        builder = builder.to(address(to)?);
    }
    for cc in &draft.cc {
        builder = builder.cc(address(cc)?);
    }
    if let Some(id) = &draft.in_reply_to {
        builder = builder.in_reply_to(id.clone());
    }
    if !draft.references.is_empty() {
        builder = builder.references(draft.references.join(" "));
    }
    let built = if draft.attachments.is_empty() {
        builder.body(draft.body.clone())
    } else {
        let mut parts = MultiPart::mixed().singlepart(SinglePart::plain(draft.body.clone()));
        for (name, bytes) in &draft.attachments {
            let kind = ContentType::parse("application/octet-stream").map_err(|e| e.to_string())?;
            parts = parts.singlepart(Attachment::new(name.clone()).body(bytes.clone(), kind));
        }
        builder.multipart(parts)
    };
    built.map_err(|e| format!("the mail cannot be built: {e}"))
}

/// A fresh Message-ID in the mailbox's domain.
pub fn new_message_id(mailbox: &Mailbox) -> String {
    format!("<{}@{}>", uuid::Uuid::now_v7().simple(), mailbox.domain())
}

impl Email {
    /// Sends `draft` from `mailbox` once under `key`. `allow_unfinished`: an intent left
    /// without an outcome is sent again (under its Message-ID) — only when a person decided
    /// so; otherwise it is [`SendError::Unfinished`].
    pub async fn send_once(
        &self,
        key: &str,
        mailbox: &Mailbox,
        task_id: Option<TaskId>,
        draft: &Draft,
        allow_unfinished: bool,
    ) -> Result<Sent, SendError> {
        let store = &self.inner.store;
        let intent = EmailSend {
            send_key: key.to_owned(),
            mailbox: mailbox.config.name.clone(),
            task_id,
            message_id: new_message_id(mailbox),
            recipients: draft.recipients().join(", "),
            subject: draft.subject.clone(),
            state: "intent".into(),
            error: None,
            created_at_ms: 0,
        };
        let record = match store.email_send_intent(&intent).await? {
            Created::New(record) => record,
            Created::Existing(record) => match record.state.as_str() {
                "sent" => {
                    return Ok(Sent::AlreadySent {
                        message_id: record.message_id,
                    });
                }
                "failed" => return Ok(Sent::Refused(record.error.unwrap_or_default())),
                _ if !allow_unfinished => {
                    return Err(SendError::Unfinished {
                        message_id: record.message_id,
                    });
                }
                _ => record,
            },
        };
        let message_id = record.message_id.clone();
        let message = match build(mailbox, draft, &message_id) {
            Ok(message) => message,
            Err(problem) => {
                store.finish_email_send(key, "failed", Some(&problem)).await?;
                return Ok(Sent::Refused(problem));
            }
        };
        let transport = match transport(mailbox) {
            Ok(transport) => transport,
            Err(problem) => {
                store.finish_email_send(key, "failed", Some(&problem)).await?;
                return Ok(Sent::Refused(problem));
            }
        };
        // lettre's timeout bounds each read; this bounds the whole transaction (a server that
        // stops answering mid-way is an unknown outcome, not a hang).
        let outcome = match tokio::time::timeout(SMTP_TIMEOUT * 2, transport.send(message)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                return Err(SendError::Unknown {
                    message_id,
                    message: format!("no answer within {}s", (SMTP_TIMEOUT * 2).as_secs()),
                });
            }
        };
        match outcome {
            Ok(_) => {
                store.finish_email_send(key, "sent", None).await?;
                if let Some(task) = task_id {
                    store.bind_email_thread(&message_id, task, &mailbox.config.name).await?;
                }
                self.inner.stats.sent.fetch_add(1, Ordering::Relaxed);
                tracing::info!(mailbox = %mailbox.config.name, key, %message_id, "mail sent");
                Ok(Sent::Sent { message_id })
            }
            // The server answered with an error code: it did not take the mail.
            Err(e) if e.is_permanent() || e.is_transient() => {
                let problem = format!("the SMTP server refused the mail: {e}");
                store.finish_email_send(key, "failed", Some(&problem)).await?;
                Ok(Sent::Refused(problem))
            }
            Err(e) => Err(SendError::Unknown {
                message_id,
                message: e.to_string(),
            }),
        }
    }

    /// Tells `user` that a mail's outcome is unknown (deliveries have no run to ask in).
    pub(crate) async fn ask_about_unfinished(
        &self,
        user: coworker_core::UserId,
        task_id: TaskId,
        message_id: &str,
        to: &str,
    ) -> Result<(), StoreError> {
        self.inner
            .store
            .create_notification(&NewNotification {
                user_id: user,
                task_id: Some(task_id),
                kind: "email_outcome_unknown".into(),
                title: format!("Did the result reach {to}? Sending it stopped without an answer from the mail server"),
                body: serde_json::json!({"message_id": message_id, "to": to,
                    "what_to_do": "check the recipient's mailbox for this Message-ID; it is not sent again automatically"}),
                dedupe_key: Some(format!("email-unknown:{message_id}")),
            })
            .await
            .map(|_| ())
    }
}

/// `coworker email test`: connects to the SMTP server and logs in, sending nothing.
pub async fn check(mailbox: &Mailbox) -> Result<String, String> {
    let transport = transport(mailbox)?;
    let answered = tokio::time::timeout(SMTP_TIMEOUT, transport.test_connection())
        .await
        .map_err(|_| {
            format!(
                "SMTP {}:{}: no answer within {}s (the server stopped answering, often after a refused login)",
                mailbox.smtp.host,
                mailbox.smtp.port,
                SMTP_TIMEOUT.as_secs()
            )
        })?;
    match answered {
        Ok(true) => Ok(format!(
            "SMTP {}:{} accepted the connection{}",
            mailbox.smtp.host,
            mailbox.smtp.port,
            if mailbox.password.is_some() {
                " and the login"
            } else {
                " (no login configured)"
            }
        )),
        Ok(false) => Err(format!(
            "SMTP {}:{} did not answer as a mail server",
            mailbox.smtp.host, mailbox.smtp.port
        )),
        Err(e) => Err(format!("SMTP {}:{}: {e}", mailbox.smtp.host, mailbox.smtp.port)),
    }
}
