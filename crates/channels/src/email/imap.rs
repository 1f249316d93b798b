//! The IMAP side: connecting (TLS through rustls, STARTTLS or plaintext as configured),
//! and the watcher that records each new message before anything acts on it.
//!
//! A mailbox is read from where it was left (`email_mailboxes`: UID validity and the highest
//! UID taken). On first sight, or when the server's UIDVALIDITY changes, reading starts at
//! the folder's current end: mail already there is not work. Each new UID is fetched (size
//! first: over `max_message_bytes` only its headers are read, and it is recorded as refused),
//! recorded (`email_messages`, unique on UID validity + UID and on Message-ID), then the mark
//! moves past it. IDLE waits for the next change where the server offers it; otherwise the
//! folder is polled every `poll_secs`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use async_imap::{Client, Session};
use coworker_store::{EmailMessage, now_ms};
use futures::StreamExt;
use secrecy::ExposeSecret;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::{Email, Mailbox, mime};

/// Longest wait to connect, log in or finish one command, before the session is dropped.
pub const IMAP_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest pause between reconnection attempts.
pub const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(60);

/// Most new messages fetched in one pass (the rest on the next).
pub const MAX_FETCH_PER_PASS: usize = 100;

/// An IMAP (or SMTP) connection: plaintext or TLS.
pub enum MailStream {
    /// Plaintext TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl std::fmt::Debug for MailStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MailStream::Plain(_) => "MailStream::Plain",
            MailStream::Tls(_) => "MailStream::Tls",
        })
    }
}

impl AsyncRead for MailStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            MailStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MailStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MailStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            MailStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MailStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            MailStream::Plain(s) => Pin::new(s).poll_flush(cx),
            MailStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            MailStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MailStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Why an IMAP step failed.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// Connecting, TLS or the protocol.
    #[error("IMAP {host}:{port}: {message}")]
    Connection {
        /// Server.
        host: String,
        /// Port.
        port: u16,
        /// What happened.
        message: String,
    },
    /// The server refused the login.
    #[error(
        "IMAP {host}: the server refused the login for {username:?}: {message}\n  fix: check email.username and email.password (an app password for Gmail and Microsoft 365)"
    )]
    Login {
        /// Server.
        host: String,
        /// Login.
        username: String,
        /// What it said.
        message: String,
    },
    /// The database.
    #[error(transparent)]
    Store(#[from] coworker_store::StoreError),
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn tls_wrap(host: &str, port: u16, tcp: TcpStream) -> Result<MailStream, ImapError> {
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| ImapError::Connection {
        host: host.to_owned(),
        port,
        message: format!("{host:?} is not a valid TLS server name: {e}"),
    })?;
    let stream = tls_connector()
        .connect(name, tcp)
        .await
        .map_err(|e| ImapError::Connection {
            host: host.to_owned(),
            port,
            message: format!("TLS handshake failed: {e}"),
        })?;
    Ok(MailStream::Tls(Box::new(stream)))
}

async fn within<T, E: std::fmt::Display>(
    host: &str,
    port: u16,
    what: &str,
    future: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(IMAP_COMMAND_TIMEOUT, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(ImapError::Connection {
            host: host.to_owned(),
            port,
            message: format!("{what}: {e}"),
        }),
        Err(_) => Err(ImapError::Connection {
            host: host.to_owned(),
            port,
            message: format!("{what}: no answer within {}s", IMAP_COMMAND_TIMEOUT.as_secs()),
        }),
    }
}

/// Connects and logs in.
pub async fn connect(mailbox: &Mailbox) -> Result<Session<MailStream>, ImapError> {
    let server = &mailbox.imap;
    let (host, port) = (server.host.as_str(), server.port);
    let tcp = within(host, port, "connect", TcpStream::connect((host, port))).await?;
    let _ = tcp.set_nodelay(true);
    let stream = if server.implicit_tls {
        tls_wrap(host, port, tcp).await?
    } else {
        MailStream::Plain(tcp)
    };
    let mut client = Client::new(stream);
    within(host, port, "greeting", client.read_response()).await?;
    if !server.implicit_tls && mailbox.config.starttls {
        within(
            host,
            port,
            "STARTTLS",
            client.run_command_and_check_ok("STARTTLS", None),
        )
        .await?;
        let MailStream::Plain(tcp) = client.into_inner() else {
            return Err(ImapError::Connection {
                host: host.to_owned(),
                port,
                message: "STARTTLS on a TLS connection".into(),
            });
        };
        client = Client::new(tls_wrap(host, port, tcp).await?);
    }
    let password = mailbox
        .password
        .as_ref()
        .map(|p| p.expose_secret().to_owned())
        .unwrap_or_default();
    let username = if mailbox.config.username.is_empty() {
        mailbox.config.address.clone()
    } else {
        mailbox.config.username.clone()
    };
    match tokio::time::timeout(IMAP_COMMAND_TIMEOUT, client.login(&username, &password)).await {
        Ok(Ok(session)) => Ok(session),
        Ok(Err((e, _))) => Err(ImapError::Login {
            host: host.to_owned(),
            username,
            message: e.to_string(),
        }),
        Err(_) => Err(ImapError::Connection {
            host: host.to_owned(),
            port,
            message: "login: no answer".into(),
        }),
    }
}

fn connection_error(mailbox: &Mailbox, what: &str, e: impl std::fmt::Display) -> ImapError {
    ImapError::Connection {
        host: mailbox.imap.host.clone(),
        port: mailbox.imap.port,
        message: format!("{what}: {e}"),
    }
}

/// The UID validity and next UID of the folder, after selecting it.
pub async fn select(session: &mut Session<MailStream>, mailbox: &Mailbox) -> Result<(i64, i64), ImapError> {
    let folder = within(
        &mailbox.imap.host,
        mailbox.imap.port,
        "SELECT",
        session.select(&mailbox.config.folder),
    )
    .await?;
    let validity = i64::from(folder.uid_validity.unwrap_or(0));
    let uid_next = match folder.uid_next {
        Some(next) => i64::from(next),
        None => {
            let uids = within(
                &mailbox.imap.host,
                mailbox.imap.port,
                "UID SEARCH",
                session.uid_search("ALL"),
            )
            .await?;
            uids.into_iter().max().map_or(1, |u| i64::from(u) + 1)
        }
    };
    Ok((validity, uid_next))
}

/// Reads and records every message after the mark. Returns how many were recorded.
async fn take_new(
    email: &Email,
    mailbox: &Mailbox,
    session: &mut Session<MailStream>,
    validity: i64,
) -> Result<usize, ImapError> {
    let store = &email.inner.store;
    let name = &mailbox.config.name;
    let last_uid = match store.email_mailbox_state(name).await? {
        Some((v, last)) if v == validity => last,
        _ => return Ok(0),
    };
    // `N:*` always returns the last message, even when its UID is below N.
    let mut sizes: Vec<(i64, i64)> = Vec::new();
    {
        let query = format!("{}:*", last_uid + 1);
        let fetches = within(
            &mailbox.imap.host,
            mailbox.imap.port,
            "UID FETCH",
            session.uid_fetch(&query, "(UID RFC822.SIZE)"),
        )
        .await?;
        let mut fetches = std::pin::pin!(fetches);
        while let Some(item) = fetches.next().await {
            let fetch = item.map_err(|e| connection_error(mailbox, "UID FETCH", e))?;
            if let Some(uid) = fetch.uid
                && i64::from(uid) > last_uid
            {
                sizes.push((i64::from(uid), i64::from(fetch.size.unwrap_or(0))));
            }
        }
    }
    sizes.sort_unstable();
    sizes.truncate(MAX_FETCH_PER_PASS);
    let mut recorded = 0;
    for (uid, size) in sizes {
        let too_large = u64::try_from(size).unwrap_or(0) > mailbox.config.max_message_bytes;
        let item = if too_large { "BODY.PEEK[HEADER]" } else { "BODY.PEEK[]" };
        let mut raw: Option<Vec<u8>> = None;
        {
            let fetches = within(
                &mailbox.imap.host,
                mailbox.imap.port,
                "UID FETCH",
                session.uid_fetch(uid.to_string(), item),
            )
            .await?;
            let mut fetches = std::pin::pin!(fetches);
            while let Some(fetch) = fetches.next().await {
                let fetch = fetch.map_err(|e| connection_error(mailbox, "UID FETCH", e))?;
                if fetch.uid.map(i64::from) == Some(uid) {
                    raw = fetch.body().or_else(|| fetch.header()).map(<[u8]>::to_vec);
                }
            }
        }
        // Expunged meanwhile: nothing to take.
        let Some(bytes) = raw else {
            store.advance_email_mailbox(name, validity, uid).await?;
            continue;
        };
        let headers = mime::parse(&bytes).ok();
        let message_id = headers
            .as_ref()
            .and_then(|h| h.message_id.clone())
            .unwrap_or_else(|| format!("<uid-{validity}-{uid}@{name}.coworker.invalid>"));
        let (state, outcome, raw) = if too_large {
            (
                "refused",
                Some(format!(
                    "refused: {size} bytes is over email.max_message_bytes ({}) of mailbox {name:?}; the mail is still in the mailbox",
                    mailbox.config.max_message_bytes
                )),
                None,
            )
        } else {
            ("pending", None, Some(bytes))
        };
        let message = EmailMessage {
            mailbox: name.clone(),
            uid_validity: validity,
            uid,
            message_id,
            from_addr: headers.as_ref().map(|h| h.from_display.clone()).unwrap_or_default(),
            subject: headers.as_ref().map(|h| h.subject.clone()).unwrap_or_default(),
            size_bytes: size,
            raw,
            state: state.into(),
            outcome: outcome.clone(),
            task_id: None,
            received_at_ms: now_ms(),
        };
        if store.record_email_message(&message).await? {
            recorded += 1;
            email.inner.stats.recorded.fetch_add(1, Ordering::Relaxed);
            if let Some(outcome) = &outcome {
                tracing::warn!(mailbox = %name, uid, %outcome, "email refused");
                super::inbound::tell_refused(email, mailbox, &message, outcome).await;
            }
        }
        store.advance_email_mailbox(name, validity, uid).await?;
    }
    if recorded > 0 {
        email.inner.inbound_wake.notify_one();
    }
    Ok(recorded)
}

/// One session: select, catch up, then wait for changes until an error or `stop`.
async fn session_loop(email: &Email, mailbox: &Mailbox, stop: &mut watch::Receiver<bool>) -> Result<(), ImapError> {
    let store = &email.inner.store;
    let name = &mailbox.config.name;
    let mut session = connect(mailbox).await?;
    email.inner.stats.sessions_open.fetch_add(1, Ordering::Relaxed);
    let result = async {
        let capabilities = within(&mailbox.imap.host, mailbox.imap.port, "CAPABILITY", session.capabilities()).await?;
        let idle = capabilities.has_str("IDLE");
        drop(capabilities);
        let (validity, uid_next) = select(&mut session, mailbox).await?;
        match store.email_mailbox_state(name).await? {
            Some((v, _)) if v == validity => {}
            previous => {
                if previous.is_some() {
                    tracing::warn!(mailbox = %name, validity, "the folder's UIDVALIDITY changed; reading from its current end (Message-IDs still catch repeats)");
                }
                store.reset_email_mailbox(name, validity, uid_next - 1).await?;
            }
        }
        tracing::info!(mailbox = %name, idle, "watching mailbox");
        let wait = Duration::from_secs(mailbox.config.poll_secs);
        loop {
            take_new(email, mailbox, &mut session, validity).await?;
            while session.unsolicited_responses.try_recv().is_ok() {}
            if *stop.borrow() {
                return Ok(());
            }
            if idle {
                let mut handle = session.idle();
                within(&mailbox.imap.host, mailbox.imap.port, "IDLE", handle.init()).await?;
                let stopped = {
                    let (waiting, _interrupt) = handle.wait_with_timeout(wait);
                    tokio::select! {
                        outcome = waiting => {
                            outcome.map_err(|e| connection_error(mailbox, "IDLE", e))?;
                            false
                        }
                        _ = stop.wait_for(|s| *s) => true,
                    }
                };
                if stopped {
                    return Ok(());
                }
                session = within(&mailbox.imap.host, mailbox.imap.port, "DONE", handle.done()).await?;
            } else {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|s| *s) => return Ok(()),
                }
                within(&mailbox.imap.host, mailbox.imap.port, "NOOP", session.noop()).await?;
            }
        }
    }
    .await;
    email.inner.stats.sessions_open.fetch_sub(1, Ordering::Relaxed);
    result
}

/// Watches mailbox `index` until `stop`, reconnecting with a growing pause after failures.
pub(crate) async fn watch(email: Email, index: usize, mut stop: watch::Receiver<bool>) {
    let Some(mailbox) = email.inner.mailboxes.get(index) else {
        return;
    };
    let mut backoff = Duration::from_secs(1);
    loop {
        match session_loop(&email, mailbox, &mut stop).await {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(mailbox = %mailbox.config.name, %error, retry_in_secs = backoff.as_secs(), "IMAP session ended; reconnecting");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        backoff = (backoff * 2).min(MAX_RECONNECT_BACKOFF);
    }
}

/// `coworker email test`: logs in, selects the folder, and reports what it saw.
pub async fn check(mailbox: &Mailbox) -> Result<String, ImapError> {
    let mut session = connect(mailbox).await?;
    let capabilities = within(
        &mailbox.imap.host,
        mailbox.imap.port,
        "CAPABILITY",
        session.capabilities(),
    )
    .await?;
    let idle = capabilities.has_str("IDLE");
    drop(capabilities);
    let (validity, uid_next) = select(&mut session, mailbox).await?;
    let _ = session.logout().await;
    Ok(format!(
        "IMAP {}:{} logged in, folder {:?} (UIDVALIDITY {validity}, next UID {uid_next}), {}",
        mailbox.imap.host,
        mailbox.imap.port,
        mailbox.config.folder,
        if idle { "IDLE supported" } else { "no IDLE: polling" }
    ))
}
