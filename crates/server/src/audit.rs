//! `/api/v1/audit`: the hash-chained audit log for admins, as filtered pages and as a JSON
//! Lines export (one entry per line, exactly as stored, so anyone can re-hash the chain; see
//! `coworker_store::audit` for the hash input). The export streams pages of
//! [`coworker_store::AUDIT_MAX_PAGE_ROWS`], never holding the whole log in memory.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use coworker_core::domain::Role;
use coworker_store::{AUDIT_MAX_PAGE_ROWS, AuditFilter, AuditRecord};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::ApiError;
use crate::api::{ApiQuery, AppState};
use crate::auth::Principal;
use crate::pagination;

/// Media type of the export.
pub const NDJSON: &str = "application/x-ndjson";

/// Filters shared by the list and the export.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this actor (`user:<id>`, `coworker:<handle>`, `system`, …).
    pub actor: Option<String>,
    /// Only actions starting with this (`approval.` for every approval event).
    pub action: Option<String>,
    /// Only subjects starting with this (`task:<id>`, `token:`, …).
    pub target: Option<String>,
    /// Only entries at or after this time, epoch ms.
    pub since: Option<i64>,
    /// Only entries before this time, epoch ms.
    pub until: Option<i64>,
    /// Newest first (default: oldest first, the chain's order). Ignored by the export.
    pub newest_first: Option<bool>,
    /// Page size, 1 to 200 (default 50). Ignored by the export.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page. Ignored by the export.
    pub cursor: Option<String>,
}

impl AuditQuery {
    fn filter(&self) -> AuditFilter {
        let text = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        AuditFilter {
            actor: text(&self.actor),
            action_prefix: text(&self.action),
            subject_prefix: text(&self.target),
            since_ms: self.since,
            until_ms: self.until,
            ..AuditFilter::default()
        }
    }
}

/// A page of audit entries.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Entries in chain order (or newest first when asked).
    pub entries: Vec<AuditRecord>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// Audit entries, filtered and paginated (admins).
#[utoipa::path(get, path = "/audit", tag = "audit", params(AuditQuery), responses((status = 200, body = AuditPage)))]
pub async fn list_audit(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    principal.require(Role::Admin)?;
    let limit = pagination::page_limit(query.limit)?;
    let newest_first = query.newest_first.unwrap_or(false);
    let mut filter = query.filter();
    filter.newest_first = newest_first;
    filter.limit = u32::try_from(limit + 1).unwrap_or(AUDIT_MAX_PAGE_ROWS);
    if let Some(cursor) = query.cursor.as_deref().filter(|c| !c.is_empty()) {
        let seq = pagination::decode_seq(cursor)?;
        if newest_first {
            filter.before_seq = Some(seq);
        } else {
            filter.after_seq = Some(seq);
        }
    }
    let rows = state.store.audit_list(&filter).await?;
    let (entries, next_cursor) = pagination::split(rows, limit, |e| pagination::encode_seq(e.seq));
    Ok(Json(AuditPage { entries, next_cursor }))
}

/// Every matching entry as JSON Lines, oldest first, streamed (admins).
#[utoipa::path(
    get, path = "/audit/export", tag = "audit", params(AuditQuery),
    responses((status = 200, description = "One AuditRecord JSON object per line", content_type = "application/x-ndjson", body = String)),
)]
pub async fn export_audit(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Response, ApiError> {
    principal.require(Role::Admin)?;
    let mut filter = query.filter();
    filter.limit = AUDIT_MAX_PAGE_ROWS;
    // Fail before the first byte if the database is unreachable: the status is still ours.
    let first = state.store.audit_list(&filter).await?;
    let pages = futures::stream::unfold(
        (state.store.clone(), filter, Some(first)),
        |(store, mut filter, page)| async move {
            let rows = match page {
                Some(rows) => rows,
                None => match store.audit_list(&filter).await {
                    Ok(rows) => rows,
                    Err(error) => {
                        // Ending the body with an error makes the client see a broken download,
                        // not a complete-looking short one.
                        tracing::error!(%error, "audit export interrupted");
                        let failed = std::io::Error::other("audit export interrupted");
                        return Some((Err(failed), (store, filter, Some(Vec::new()))));
                    }
                },
            };
            let last = rows.last()?.seq;
            filter.after_seq = Some(last);
            Some((Ok(json_lines(&rows)), (store, filter, None)))
        },
    );
    Ok((
        StatusCode::OK,
        [
            (CONTENT_TYPE, HeaderValue::from_static(NDJSON)),
            (
                CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"coworker-audit.jsonl\""),
            ),
        ],
        Body::from_stream(pages),
    )
        .into_response())
}

fn json_lines(rows: &[AuditRecord]) -> Bytes {
    let mut out = Vec::with_capacity(rows.len() * 256);
    for row in rows {
        // A record of plain values and JSON always serialises.
        if serde_json::to_writer(&mut out, row).is_ok() {
            out.push(b'\n');
        }
    }
    Bytes::from(out)
}
