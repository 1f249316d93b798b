//! The node's side of email and calendars (issue 16): resolving `[[email]]` and
//! `[[calendar]]` credentials, registering `email.*` and `calendar.*` tools, starting the
//! watchers and loops, and the checks behind `coworker email test`, `coworker calendar test`
//! and `doctor`.

use std::sync::Arc;

use coworker_channels::calendar::{CalendarSource, Calendars};
use coworker_channels::email::{Email, Mailbox};
use coworker_core::config::Config;
use coworker_core::doctor::Check;
use coworker_engine::scheduler::Clock;
use coworker_tools::secrets::Secrets;
use coworker_tools::workspace::Workspace;
use secrecy::SecretString;

use crate::api::AppState;
use crate::channels::NodeWork;

/// Email and calendars of a node (either may be off).
#[derive(Clone, Default)]
pub struct Mail {
    /// The mailboxes, when `[[email]]` is configured.
    pub email: Option<Email>,
    /// The calendars, when `[[calendar]]` is configured.
    pub calendars: Option<Calendars>,
}

impl Mail {
    /// Starts the loops until `stop`.
    pub fn spawn(&self, stop: tokio::sync::watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut handles = Vec::new();
        if let Some(email) = &self.email {
            handles.extend(email.spawn(stop.clone()));
        }
        if let Some(calendars) = &self.calendars {
            handles.push(calendars.spawn(stop));
        }
        handles
    }
}

async fn secret_reader(
    secrets: Option<Arc<Secrets>>,
    name: String,
    purpose: &'static str,
) -> Result<Option<SecretString>, String> {
    match secrets {
        Some(secrets) => secrets.get_for(&name, purpose).await.map_err(|e| e.to_string()),
        None => Err("no master key on this machine".to_owned()),
    }
}

/// The configured mailboxes with their passwords.
pub async fn mailboxes(
    config: &Config,
    env: &[(String, String)],
    secrets: Option<&Arc<Secrets>>,
) -> Result<Vec<Mailbox>, String> {
    let secrets = secrets.cloned();
    coworker_channels::email::mailboxes_from_config(config, env, |name| {
        secret_reader(secrets.clone(), name, "channel:email")
    })
    .await
    .map_err(|e| e.to_string())
}

/// The configured calendars with their passwords.
pub async fn calendar_sources(
    config: &Config,
    env: &[(String, String)],
    secrets: Option<&Arc<Secrets>>,
) -> Result<Vec<CalendarSource>, String> {
    let mut out = Vec::new();
    for (i, section) in config.calendar.iter().enumerate() {
        let secrets = secrets.cloned();
        let password = coworker_channels::slack::resolve_credential("password", &section.password, env, |name| {
            secret_reader(secrets, name, "channel:calendar")
        })
        .await
        .map_err(|e| {
            format!(
                "calendar {:?}: {}",
                section.name,
                e.to_string().replacen("slack.", &format!("calendar[{i}]."), 1)
            )
        })?;
        out.push(CalendarSource {
            config: section.clone(),
            password,
        });
    }
    Ok(out)
}

/// Starts email and calendars as configured, registering their tools on the engine.
pub async fn start(
    config: &Config,
    env: &[(String, String)],
    secrets: &Arc<Secrets>,
    state: &AppState,
    clock: Arc<dyn Clock>,
) -> Result<Mail, crate::NodeError> {
    let mut mail = Mail::default();
    let tools = state.engine.tools();
    if !config.email.is_empty() {
        let boxes = mailboxes(config, env, Some(secrets))
            .await
            .map_err(crate::NodeError::Channels)?;
        let workspace = Arc::new(
            Workspace::new(state.store.clone(), &state.data_dir, config.tools.workspace.clone())
                .with_blobs(state.blobs.clone()),
        );
        let email = Email::new(
            boxes,
            state.store.clone(),
            Arc::new(NodeWork::for_channel(state.clone(), "email")),
            workspace,
        );
        if let Some(tracer) = state.engine.tracer() {
            email.set_tracer(tracer.clone());
        }
        for tool in coworker_channels::email::tools::email_tools(&email) {
            tools.register(tool);
        }
        mail.email = Some(email);
    }
    if !config.calendar.is_empty() {
        let sources = calendar_sources(config, env, Some(secrets))
            .await
            .map_err(crate::NodeError::Channels)?;
        let calendars = Calendars::new(
            sources,
            state.store.clone(),
            Arc::new(NodeWork::for_channel(state.clone(), "calendar")),
            clock,
        );
        for tool in coworker_channels::calendar::calendar_tools(&calendars) {
            tools.register(tool);
        }
        mail.calendars = Some(calendars);
    }
    Ok(mail)
}

/// `coworker email test [NAME]` and the doctor: log in to IMAP and SMTP for each mailbox.
pub async fn email_checks(
    config: &Config,
    env: &[(String, String)],
    secrets: Option<&Arc<Secrets>>,
    only: Option<&str>,
) -> Vec<Check> {
    if config.email.is_empty() {
        return vec![Check::ok("email", "off (no [[email]] section)")];
    }
    if let Some(name) = only
        && !config.email.iter().any(|e| e.name == name)
    {
        let names: Vec<&str> = config.email.iter().map(|e| e.name.as_str()).collect();
        return vec![Check::fail(
            "email",
            format!("no [[email]] section is named {name:?}"),
            format!("configured: {}", names.join(", ")),
        )];
    }
    let boxes = match mailboxes(config, env, secrets).await {
        Ok(boxes) => boxes,
        Err(e) => return vec![Check::fail("email", e, "see the fix above")],
    };
    let mut checks = Vec::new();
    for mailbox in boxes.iter().filter(|m| only.is_none_or(|n| m.config.name == n)) {
        let name = format!("email {}", mailbox.config.name);
        match coworker_channels::email::imap::check(mailbox).await {
            Ok(detail) => checks.push(Check::ok(format!("{name} imap"), detail)),
            Err(e) => checks.push(Check::fail(
                format!("{name} imap"),
                e.to_string(),
                "check imap_url (imaps://host:993, or imap:// with starttls = true), username and password",
            )),
        }
        match coworker_channels::email::smtp::check(mailbox).await {
            Ok(detail) => checks.push(Check::ok(format!("{name} smtp"), detail)),
            Err(e) => checks.push(Check::fail(
                format!("{name} smtp"),
                e,
                "check smtp_url (smtps://host:465, or smtp:// with starttls = true), username and password",
            )),
        }
    }
    checks
}

/// `coworker calendar test [NAME]` and the doctor: fetch and read each feed.
pub async fn calendar_checks(
    config: &Config,
    env: &[(String, String)],
    secrets: Option<&Arc<Secrets>>,
    only: Option<&str>,
) -> Vec<Check> {
    if config.calendar.is_empty() {
        return vec![Check::ok("calendar", "off (no [[calendar]] section)")];
    }
    if let Some(name) = only
        && !config.calendar.iter().any(|e| e.name == name)
    {
        let names: Vec<&str> = config.calendar.iter().map(|e| e.name.as_str()).collect();
        return vec![Check::fail(
            "calendar",
            format!("no [[calendar]] section is named {name:?}"),
            format!("configured: {}", names.join(", ")),
        )];
    }
    let sources = match calendar_sources(config, env, secrets).await {
        Ok(sources) => sources,
        Err(e) => return vec![Check::fail("calendar", e, "see the fix above")],
    };
    let mut checks = Vec::new();
    for source in sources.iter().filter(|s| only.is_none_or(|n| s.config.name == n)) {
        let name = format!("calendar {}", source.config.name);
        match coworker_channels::calendar::check(source, coworker_store::now_ms()).await {
            Ok(detail) if detail.contains("skipped:") => checks.push(Check::warn(
                name,
                detail,
                "fix or remove the skipped events (an unknown TZID needs an IANA name such as Europe/Paris)",
            )),
            Ok(detail) => checks.push(Check::ok(name, detail)),
            Err(e) => checks.push(Check::fail(name, e.to_string(), "check the url and credentials")),
        }
    }
    checks
}
