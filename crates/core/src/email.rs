//! `[[email]]` sections (issue 16): the mailboxes coworkers read and send from, with the rules
//! (email triggers) that turn mail from people who are not members into work. Pure: URLs and
//! values are checked here; connecting is the channels crate's job.
//!
//! ```toml
//! [[email]]
//! name = "ada"
//! coworker = "ada"
//! address = "ada@example.com"
//! imap_url = "imaps://imap.example.com:993"
//! smtp_url = "smtps://smtp.example.com:465"
//! username = "ada@example.com"
//! password = "secret:ada-mail"       # or env:NAME, or the literal
//! # starttls = true                  # imap:// and smtp:// upgrade with STARTTLS
//! [[email.triggers]]
//! name = "invoices"
//! from = "@supplier.example"         # substring of From, case-insensitive
//! subject = "invoice"
//! owner = "finance@example.com"      # the member the task acts for
//! brief = "File the invoice in {{ email.subject }}"
//! ```

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, CredentialRef};

/// Default largest message taken from a mailbox, in bytes (25 MiB, what most providers accept).
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 25 * 1024 * 1024;

/// Default seconds between two looks at a mailbox when the server has no IDLE (and the
/// longest an IDLE waits before it is renewed).
pub const DEFAULT_POLL_SECS: u64 = 60;

/// One `[[email]]` mailbox.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// Name (`coworker email test NAME`); unique.
    pub name: String,
    /// Handle of the coworker this mailbox belongs to.
    pub coworker: String,
    /// The address mail is sent from (and, usually, to).
    pub address: String,
    /// `imaps://host:993` or `imap://host:143` (plaintext unless `starttls`).
    pub imap_url: String,
    /// `smtps://host:465` or `smtp://host:587` (plaintext unless `starttls`).
    pub smtp_url: String,
    /// Login for both servers.
    pub username: String,
    /// `env:NAME`, `secret:NAME` or the literal password.
    pub password: String,
    /// Upgrade `imap://` and `smtp://` connections with STARTTLS.
    pub starttls: bool,
    /// The folder watched.
    pub folder: String,
    /// Seconds between polls without IDLE, and the longest IDLE before it is renewed.
    pub poll_secs: u64,
    /// Largest message taken, in bytes; a larger one is refused (and left in the mailbox).
    pub max_message_bytes: u64,
    /// Rules for mail that is not from a member.
    pub triggers: Vec<EmailTriggerConfig>,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            name: String::new(),
            coworker: String::new(),
            address: String::new(),
            imap_url: String::new(),
            smtp_url: String::new(),
            username: String::new(),
            password: String::new(),
            starttls: false,
            folder: "INBOX".into(),
            poll_secs: DEFAULT_POLL_SECS,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            triggers: Vec::new(),
        }
    }
}

impl std::fmt::Debug for EmailConfig {
    // The password may be a literal: show only whether it is set.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailConfig")
            .field("name", &self.name)
            .field("coworker", &self.coworker)
            .field("address", &self.address)
            .field("imap_url", &self.imap_url)
            .field("smtp_url", &self.smtp_url)
            .field("username", &self.username)
            .field("password", &if self.password.is_empty() { "(unset)" } else { "(set)" })
            .field("starttls", &self.starttls)
            .field("folder", &self.folder)
            .finish_non_exhaustive()
    }
}

/// An email trigger: mail matching every non-empty rule becomes a task for `owner`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailTriggerConfig {
    /// A label.
    pub name: String,
    /// Substring of the From header (case-insensitive); empty matches all.
    pub from: String,
    /// Substring of To/Cc.
    pub to: String,
    /// Substring of the Subject.
    pub subject: String,
    /// Substring of the body text.
    pub body: String,
    /// Email of the member the task is delegated as (its owner).
    pub owner: String,
    /// Coworker handle (default: the mailbox's).
    pub coworker: String,
    /// The brief: a template over `email` (`from`, `to`, `subject`, `message_id`, `date`);
    /// the mail itself is appended, fenced as untrusted data.
    pub brief: String,
}

impl EmailTriggerConfig {
    /// Whether a message matches every non-empty rule.
    pub fn matches(&self, from: &str, to: &str, subject: &str, body: &str) -> bool {
        let has = |hay: &str, needle: &str| {
            needle.trim().is_empty() || hay.to_lowercase().contains(&needle.trim().to_lowercase())
        };
        has(from, &self.from) && has(to, &self.to) && has(subject, &self.subject) && has(body, &self.body)
    }
}

/// A mail server address from an `imap://`, `imaps://`, `smtp://` or `smtps://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailServer {
    /// `imap`, `imaps`, `smtp` or `smtps`.
    pub scheme: String,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS from the first byte (`imaps`, `smtps`).
    pub implicit_tls: bool,
}

/// Parses a mail server URL whose scheme is `plain` or `tls` (e.g. `imap` / `imaps`).
/// `key` names the config key in errors.
pub fn parse_mail_url(key: &str, url: &str, plain: &str, tls: &str) -> Result<MailServer, ConfigError> {
    let fail = |message: String| {
        ConfigError::invalid(
            key,
            message,
            format!(
                "write {tls}://host:port (TLS) or {plain}://host:port (plaintext, or STARTTLS with starttls = true)"
            ),
        )
    };
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(fail(format!("{url:?} is not a URL")));
    };
    let scheme = scheme.to_ascii_lowercase();
    let implicit_tls = if scheme == tls {
        true
    } else if scheme == plain {
        false
    } else {
        return Err(fail(format!("{url:?} has scheme {scheme:?}")));
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(fail(format!(
            "{url:?} carries credentials; use the username and password keys"
        )));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            let port: u16 = port
                .parse()
                .map_err(|_| fail(format!("{url:?} has port {port:?}, not a number from 1 to 65535")))?;
            (host, port)
        }
        _ => (
            authority,
            match scheme.as_str() {
                "imap" => 143,
                "imaps" => 993,
                "smtp" => 587,
                _ => 465,
            },
        ),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port == 0 {
        return Err(fail(format!("{url:?} names no host and port")));
    }
    Ok(MailServer {
        scheme,
        host: host.to_owned(),
        port,
        implicit_tls,
    })
}

/// Whether `address` looks like `name@domain`.
pub fn looks_like_address(address: &str) -> bool {
    let address = address.trim();
    address.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && !domain.is_empty() && !address.contains(char::is_whitespace)
    })
}

fn check_credential(key: &str, value: &str) -> Result<(), ConfigError> {
    match CredentialRef::parse(value) {
        CredentialRef::Env(name) | CredentialRef::Secret(name) if name.is_empty() => Err(ConfigError::invalid(
            key,
            format!("{value:?} names no variable or secret"),
            "write env:NAME, secret:NAME or the value itself",
        )),
        _ => Ok(()),
    }
}

impl EmailConfig {
    /// The IMAP server.
    pub fn imap(&self, at: &str) -> Result<MailServer, ConfigError> {
        parse_mail_url(&format!("{at}.imap_url"), &self.imap_url, "imap", "imaps")
    }

    /// The SMTP server.
    pub fn smtp(&self, at: &str) -> Result<MailServer, ConfigError> {
        parse_mail_url(&format!("{at}.smtp_url"), &self.smtp_url, "smtp", "smtps")
    }

    /// Checks one section; `at` names it in errors (e.g. `email[0]`).
    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{at}.{k}");
        if self.name.trim().is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(ConfigError::invalid(
                &key("name"),
                format!("{:?} is not a mailbox name", self.name),
                "use letters, digits, '-', '_' or '.', e.g. \"ada\"",
            ));
        }
        if self.coworker.trim().is_empty() {
            return Err(ConfigError::invalid(
                &key("coworker"),
                "is empty",
                "name the handle of the coworker this mailbox belongs to, e.g. \"ada\"",
            ));
        }
        if !looks_like_address(&self.address) {
            return Err(ConfigError::invalid(
                &key("address"),
                format!("{:?} is not an email address", self.address),
                "write the mailbox's address, e.g. \"ada@example.com\"",
            ));
        }
        self.imap(at)?;
        self.smtp(at)?;
        check_credential(&key("password"), &self.password)?;
        if self.poll_secs == 0 || self.max_message_bytes == 0 {
            return Err(ConfigError::invalid(
                &key("poll_secs"),
                "poll_secs and max_message_bytes must be at least 1",
                format!("the defaults are {DEFAULT_POLL_SECS} and {DEFAULT_MAX_MESSAGE_BYTES}"),
            ));
        }
        for (i, trigger) in self.triggers.iter().enumerate() {
            let at = format!("{at}.triggers[{i}]");
            if trigger.brief.trim().is_empty() {
                return Err(ConfigError::invalid(
                    &format!("{at}.brief"),
                    "is empty",
                    "write what the coworker should do with a matching mail, e.g. \"Summarise {{ email.subject }}\"",
                ));
            }
            if !looks_like_address(&trigger.owner) {
                return Err(ConfigError::invalid(
                    &format!("{at}.owner"),
                    format!("{:?} is not a member's email", trigger.owner),
                    "name the member the task is delegated as: mail from outside is data, never a request of its own",
                ));
            }
        }
        Ok(())
    }
}

/// Checks every `[[email]]` section and that names are unique.
pub fn validate_all(sections: &[EmailConfig]) -> Result<(), ConfigError> {
    crate::config::validate_named(
        "email",
        "[[email]] sections",
        "give each mailbox its own name",
        sections,
        |s| &s.name,
        |s, at| s.validate(at),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_urls_name_scheme_host_and_port() {
        let s = parse_mail_url("k", "imaps://imap.example.com:993", "imap", "imaps").unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.implicit_tls),
            ("imap.example.com", 993, true)
        );
        let s = parse_mail_url("k", "smtp://127.0.0.1:2525", "smtp", "smtps").unwrap();
        assert_eq!((s.host.as_str(), s.port, s.implicit_tls), ("127.0.0.1", 2525, false));
        assert_eq!(parse_mail_url("k", "imap://h", "imap", "imaps").unwrap().port, 143);
        for bad in ["http://h:1", "imap://:1", "imap://h:x", "imap://u:p@h:1", "h:1"] {
            let e = parse_mail_url("email[0].imap_url", bad, "imap", "imaps").unwrap_err();
            assert!(e.to_string().contains("email[0].imap_url"), "{bad}: {e}");
        }
    }

    #[test]
    fn triggers_match_every_rule_given() {
        let t = EmailTriggerConfig {
            from: "@Supplier.example".into(),
            subject: "invoice".into(),
            ..EmailTriggerConfig::default()
        };
        assert!(t.matches("Bob <bob@supplier.example>", "", "Your INVOICE 12", ""));
        assert!(!t.matches("Bob <bob@other.example>", "", "Your invoice 12", ""));
        assert!(!t.matches("bob@supplier.example", "", "hello", ""));
    }

    #[test]
    fn sections_are_checked() {
        let ok = EmailConfig {
            name: "ada".into(),
            coworker: "ada".into(),
            address: "ada@example.com".into(),
            imap_url: "imap://127.0.0.1:1143".into(),
            smtp_url: "smtp://127.0.0.1:2525".into(),
            ..EmailConfig::default()
        };
        validate_all(std::slice::from_ref(&ok)).unwrap();
        let e = validate_all(&[ok.clone(), ok.clone()]).unwrap_err();
        assert!(e.to_string().contains("two [[email]]"), "{e}");
        let bad = EmailConfig {
            password: "env:".into(),
            ..ok.clone()
        };
        assert!(
            validate_all(&[bad])
                .unwrap_err()
                .to_string()
                .contains("names no variable")
        );
        let bad = EmailConfig {
            triggers: vec![EmailTriggerConfig {
                brief: "x".into(),
                owner: "nobody".into(),
                ..EmailTriggerConfig::default()
            }],
            ..ok
        };
        assert!(validate_all(&[bad]).unwrap_err().to_string().contains("owner"));
        assert!(
            !format!(
                "{:?}",
                EmailConfig {
                    password: "hunter2".into(),
                    ..EmailConfig::default()
                }
            )
            .contains("hunter2")
        );
    }
}
