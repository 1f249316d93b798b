//! Audit (admins): the hash-chained audit log, newest first and filterable by actor, action,
//! target and time; each entry's details on demand; the chain's head; verifying the chain;
//! and exporting the filtered entries as JSON Lines with the session.
//!
//! Reads go through the store's `audit_list`/`audit_verify`, and the export is the API's
//! (`crate::audit::export_audit`); nothing here writes the log.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Extension, Query, State};
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use coworker_core::domain::Role;
use coworker_store::{AuditFilter, AuditRecord, Store, StoreError};
use serde::Deserialize;

use super::{FlashKind, PageContext, WebError, WebUser, iso, redirect_with, render, when};
use crate::ApiError;
use crate::api::{ApiQuery, AppState};

/// Entries per page of `/audit`.
pub const AUDIT_PAGE_SIZE: u32 = 50;

/// Longest filter value accepted, in characters (the form's `maxlength` too).
pub const MAX_FILTER_CHARS: usize = 200;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/audit", get(audit_page))
        .route("/audit/verify", post(verify))
        .route("/audit/export", get(export))
}

/// The filter fields of `/audit` and `/audit/export`, as typed into the form.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditQuery {
    /// Exact actor (`user:<id>`, `cli`, `coworker:<handle>`, `system`).
    #[serde(default)]
    actor: String,
    /// Action prefix (`approval.` for every approval event).
    #[serde(default)]
    action: String,
    /// Target (subject) prefix (`mcp:`, a task id).
    #[serde(default)]
    target: String,
    /// A date (`2026-01-31`, UTC) or an RFC 3339 time.
    #[serde(default)]
    since: String,
    /// Cursor: show entries older than this seq.
    #[serde(default)]
    before: Option<i64>,
}

impl AuditQuery {
    /// The store filter, or a message for people saying which field is wrong.
    fn filter(&self) -> Result<AuditFilter, String> {
        let field = |value: &str, name: &str| -> Result<Option<String>, String> {
            let value = value.trim();
            if value.chars().count() > MAX_FILTER_CHARS {
                return Err(format!(
                    "The {name} filter is longer than {MAX_FILTER_CHARS} characters."
                ));
            }
            Ok((!value.is_empty()).then(|| value.to_owned()))
        };
        Ok(AuditFilter {
            actor: field(&self.actor, "actor")?,
            action_prefix: field(&self.action, "action")?,
            subject_prefix: field(&self.target, "target")?,
            since_ms: parse_since(&self.since)?,
            ..AuditFilter::default()
        })
    }

    /// The filter as a query string (without the cursor), for links.
    fn query_string(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("actor", &self.actor),
            ("action", &self.action),
            ("target", &self.target),
            ("since", &self.since),
        ] {
            if !value.trim().is_empty() {
                query.append_pair(name, value.trim());
            }
        }
        query.finish()
    }

    fn is_filtered(&self) -> bool {
        [&self.actor, &self.action, &self.target, &self.since]
            .iter()
            .any(|v| !v.trim().is_empty())
    }
}

/// `2026-01-31` (the start of that UTC day) or an RFC 3339 time, as epoch ms.
fn parse_since(text: &str) -> Result<Option<i64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(at) = text.parse::<jiff::Timestamp>() {
        return Ok(Some(at.as_millisecond()));
    }
    text.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|date| date.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|zoned| Some(zoned.timestamp().as_millisecond()))
        .ok_or_else(|| {
            format!("“Since” must be a date like 2026-01-31 or a time like 2026-01-31T09:00:00Z, not “{text}”.")
        })
}

/// One row of the table.
struct EntryRow {
    seq: i64,
    at: String,
    at_iso: String,
    actor: String,
    /// The actor's display name, when it is a known person.
    actor_name: String,
    action: String,
    subject: String,
    details: String,
    has_details: bool,
    hash: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    page: PageContext,
    query: AuditQuery,
    filtered: bool,
    entries: Vec<EntryRow>,
    head: Option<(i64, String)>,
    export_href: String,
    /// Query string of the next (older) page, if any.
    older: Option<String>,
    /// Query string of the first page, when this is a later one.
    newest: Option<String>,
    error: String,
}

/// Display names of every person, by their audit actor (`user:<id>`).
async fn actor_names(store: &Store) -> Result<HashMap<String, String>, StoreError> {
    Ok(store
        .list_users()
        .await?
        .into_iter()
        .map(|u| (format!("user:{}", u.id), u.display_name))
        .collect())
}

fn entry_row(record: &AuditRecord, names: &HashMap<String, String>) -> EntryRow {
    let has_details = !(record.details.is_null() || record.details.as_object().is_some_and(|m| m.is_empty()));
    EntryRow {
        seq: record.seq,
        at: when(record.at_ms),
        at_iso: iso(record.at_ms),
        actor: record.actor.clone(),
        actor_name: names.get(&record.actor).cloned().unwrap_or_default(),
        action: record.action.clone(),
        subject: record.subject.clone(),
        details: serde_json::to_string_pretty(&record.details).unwrap_or_default(),
        has_details,
        hash: record.hash.clone(),
    }
}

async fn audit_page(
    State(state): State<AppState>,
    user: WebUser,
    Query(query): Query<AuditQuery>,
) -> Result<Response, WebError> {
    user.principal.require(Role::Admin)?;
    let page = user.page(&state, "Audit", "audit").await?;
    let head = state.store.audit_head().await?;
    let base = query.query_string();
    let (entries, older, error) = match query.filter() {
        Ok(mut filter) => {
            filter.newest_first = true;
            filter.before_seq = query.before;
            filter.limit = AUDIT_PAGE_SIZE + 1;
            let mut records = state.store.audit_list(&filter).await?;
            let more = records.len() > AUDIT_PAGE_SIZE as usize;
            records.truncate(AUDIT_PAGE_SIZE as usize);
            let names = actor_names(&state.store).await?;
            let older = match records.last() {
                Some(last) if more => Some(join_query(&base, &format!("before={}", last.seq))),
                _ => None,
            };
            (
                records.iter().map(|r| entry_row(r, &names)).collect(),
                older,
                String::new(),
            )
        }
        Err(message) => (Vec::new(), None, message),
    };
    let export_href = if base.is_empty() {
        "/audit/export".to_owned()
    } else {
        format!("/audit/export?{base}")
    };
    let page = AuditPage {
        page,
        filtered: query.is_filtered(),
        newest: query.before.map(|_| base.clone()),
        query,
        entries,
        head,
        export_href,
        older,
        error: error.clone(),
    };
    let mut response = render(&page)?;
    if !error.is_empty() {
        *response.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(response)
}

fn join_query(base: &str, extra: &str) -> String {
    if base.is_empty() {
        extra.to_owned()
    } else {
        format!("{base}&{extra}")
    }
}

async fn verify(State(state): State<AppState>, user: WebUser) -> Result<Response, WebError> {
    user.principal.require(Role::Admin)?;
    let verification = state.store.audit_verify().await?;
    let entries = |n: u64| {
        if n == 1 {
            "1 entry".to_owned()
        } else {
            format!("{n} entries")
        }
    };
    Ok(match (&verification.first_broken, &verification.head) {
        (Some(broken), _) => redirect_with(
            "/audit",
            FlashKind::Error,
            &format!(
                "The audit chain is BROKEN at {broken}. {} before it check out; entries from seq {} on cannot be trusted.",
                entries(verification.checked),
                broken.seq
            ),
        ),
        (None, Some((seq, hash))) => redirect_with(
            "/audit",
            FlashKind::Ok,
            &format!(
                "The audit chain is intact: {} checked. Head: seq {seq}, hash {hash}. Keep a copy of the head elsewhere to detect later rewrites of the newest entries.",
                entries(verification.checked)
            ),
        ),
        (None, None) => redirect_with(
            "/audit",
            FlashKind::Ok,
            "The audit log is empty, so the chain is intact.",
        ),
    })
}

async fn export(
    State(state): State<AppState>,
    user: WebUser,
    Query(query): Query<AuditQuery>,
) -> Result<Response, WebError> {
    user.principal.require(Role::Admin)?;
    let filter = query.filter().map_err(|message| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_filter",
            message,
            "fix the filter on the Audit page and export again",
        )
    })?;
    // The API's export (`GET /api/v1/audit/export`): one format, streamed the same way.
    let api_query = crate::audit::AuditQuery {
        actor: filter.actor,
        action: filter.action_prefix,
        target: filter.subject_prefix,
        since: filter.since_ms,
        ..crate::audit::AuditQuery::default()
    };
    let mut response =
        crate::audit::export_audit(State(state), Extension(user.principal.clone()), ApiQuery(api_query)).await?;
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    headers.insert(
        axum::http::HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_date_or_a_time() {
        assert_eq!(parse_since(""), Ok(None));
        assert_eq!(parse_since("1970-01-02"), Ok(Some(86_400_000)));
        assert_eq!(parse_since("1970-01-01T00:00:01Z"), Ok(Some(1000)));
        assert!(parse_since("last tuesday").unwrap_err().contains("last tuesday"));
    }

    #[test]
    fn links_keep_the_filter() {
        let query = AuditQuery {
            actor: "cli".into(),
            action: "approval.".into(),
            target: String::new(),
            since: "2026-01-31".into(),
            before: Some(9),
        };
        assert_eq!(query.query_string(), "actor=cli&action=approval.&since=2026-01-31");
        assert_eq!(join_query("", "before=3"), "before=3");
        let filter = query.filter().unwrap();
        assert_eq!(filter.actor.as_deref(), Some("cli"));
        assert_eq!(filter.action_prefix.as_deref(), Some("approval."));
        assert_eq!(filter.subject_prefix, None);
    }
}
