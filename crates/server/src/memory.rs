//! `/api/v1/memory/...`: add, import, search, list, show (with history), forget, the review
//! queue and its decisions, reindex and consolidate. The actions are shared with the web
//! app's Memory page and the engine's approvals (`memory_fact` approvals are decided by
//! [`crate::work::decide`], which calls [`apply_fact_decision`]).
//!
//! Who sees what: every caller sees the org, project and coworker scopes and their own user
//! scope; another person's user scope is refused (admins included — private memory stays
//! private). A fact added by an admin, by the owner of a user scope, or by a coworker's
//! manager to its scope is approved at once; anyone else's is a proposal.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use coworker_core::MemoryId;
use coworker_core::domain::Role;
use coworker_memory::{
    AddOutcome, Hit, KindFilter, MAX_SEARCH_LIMIT, Memory, MemoryError, NewItem, Scope, SearchQuery, visible_from,
};
use coworker_store::{AuditEntry, MemoryEvent, MemoryFilter, MemoryItem};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::ApiError;
use crate::api::{ApiJson, ApiQuery, AppState, bad_request};
use crate::auth::Principal;

/// Kind of the approval raised for a coworker's proposed fact.
pub const APPROVAL_KIND: &str = "memory_fact";

/// How long a proposed-fact approval stays open, in ms (30 days: it blocks nothing).
pub const PROPOSAL_TTL_MS: i64 = 30 * 86_400_000;

/// Default hits per search.
pub const DEFAULT_SEARCH_LIMIT: usize = 10;

impl From<MemoryError> for ApiError {
    fn from(e: MemoryError) -> Self {
        match e {
            MemoryError::Invalid { message } => bad_request(message, "nothing was stored; fix the input and retry"),
            MemoryError::Store(e) => ApiError::from(e),
            other => {
                tracing::error!(error = %other, "memory operation failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "memory_unavailable",
                    other.to_string(),
                    "check the embedder with `coworker doctor`",
                )
            }
        }
    }
}

fn parse_scope(text: Option<&str>) -> Result<Scope, ApiError> {
    match text.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(Scope::Org),
        Some(s) => s
            .parse()
            .map_err(|e: coworker_memory::ScopeParseError| bad_request(e.to_string(), "e.g. --scope project:site")),
    }
}

fn parse_memory_id(id: &str) -> Result<MemoryId, ApiError> {
    id.parse()
        .map_err(|e: coworker_core::IdParseError| bad_request(e.to_string(), "ids are shown by `coworker memory list`"))
}

fn parse_time(text: Option<&str>, field: &str) -> Result<Option<i64>, ApiError> {
    let Some(s) = text.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let from_date = || {
        s.parse::<jiff::civil::Date>()
            .ok()
            .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
            .map(|z| z.timestamp())
    };
    let ts = s.parse::<jiff::Timestamp>().ok().or_else(from_date).ok_or_else(|| {
        bad_request(
            format!("{field} {s:?} is not an RFC 3339 time"),
            "use e.g. 2024-05-08T14:30:00Z (or a date, 2024-05-08)",
        )
    })?;
    Ok(Some(ts.as_millisecond()))
}

/// Fails unless `principal` may see `scope` (another person's user scope is private).
pub fn require_visible(principal: &Principal, scope: &Scope) -> Result<(), ApiError> {
    match scope {
        Scope::User(id) if *id != principal.user.id => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "private_scope",
            format!("scope \"{scope}\" is another person's private memory"),
            "use your own scope (user:<your id>), a project, a coworker or org",
        )),
        _ => Ok(()),
    }
}

fn may_see(principal: &Principal, scope_text: &str) -> bool {
    scope_text
        .parse::<Scope>()
        .is_ok_and(|s| require_visible(principal, &s).is_ok())
}

/// Whether a fact `principal` adds to `scope` is approved at once.
async fn approves_at_once(state: &AppState, principal: &Principal, scope: &Scope) -> Result<bool, ApiError> {
    if principal.has(Role::Admin) {
        return Ok(true);
    }
    Ok(match scope {
        Scope::User(id) => *id == principal.user.id,
        Scope::Coworker(handle) => state
            .store
            .coworker_by_handle(handle)
            .await?
            .is_some_and(|c| c.manager_user_id == Some(principal.user.id)),
        _ => false,
    })
}

/// Whether `principal` may decide a proposal in `scope` (same rule as adding one approved).
async fn may_review(state: &AppState, principal: &Principal, scope_text: &str) -> Result<bool, ApiError> {
    let scope = parse_scope(Some(scope_text))?;
    Ok(principal.has(Role::Member) && approves_at_once(state, principal, &scope).await?)
}

fn memory(state: &AppState) -> &Arc<Memory> {
    &state.memory
}

/// Body of `POST /memory/items`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddFact {
    /// What to remember.
    pub text: String,
    /// `org` (default), `project:<slug>`, `coworker:<handle>` or `user:<id>`.
    #[serde(default)]
    pub scope: Option<String>,
    /// When it happened (RFC 3339).
    #[serde(default)]
    pub occurred_at: Option<String>,
}

/// Response of `POST /memory/items`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AddedFact {
    /// The stored item (the existing one for a duplicate).
    pub item: MemoryItem,
    /// Whether the same text was already stored in that scope (nothing was added).
    pub duplicate: bool,
}

/// Adds a fact: approved at once for admins and scope owners, else a proposal.
#[utoipa::path(
    post, path = "/memory/items", tag = "memory", request_body = AddFact,
    responses((status = 201, body = AddedFact), (status = 200, description = "Already stored", body = AddedFact)),
)]
pub async fn add_fact(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<AddFact>,
) -> Result<(StatusCode, Json<AddedFact>), ApiError> {
    let added = add(&state, &principal, body).await?;
    let status = if added.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(added)))
}

/// An admin adding memory to a project that does not exist yet creates it (named by its
/// slug), so `memory import --scope project:new FILE` needs no separate step; anyone else
/// gets the "unknown scope" error from the memory crate.
async fn ensure_project(state: &AppState, principal: &Principal, scope: Option<&str>) -> Result<(), ApiError> {
    let Scope::Project(slug) = parse_scope(scope)? else {
        return Ok(());
    };
    if !principal.has(Role::Admin)
        || !coworker_store::valid_project_slug(&slug)
        || state.store.project_by_slug(&slug).await?.is_some()
    {
        return Ok(());
    }
    match state.store.create_project(&slug, &slug, "").await {
        Ok(_) => {
            state
                .store
                .audit_append(
                    AuditEntry::new(principal.actor(), "project.created", format!("project:{slug}"))
                        .with_details(json!({"via": "memory"})),
                )
                .await?;
            Ok(())
        }
        // Created concurrently by another request: fine.
        Err(_) if state.store.project_by_slug(&slug).await?.is_some() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The add action (shared with the web page).
pub async fn add(state: &AppState, principal: &Principal, body: AddFact) -> Result<AddedFact, ApiError> {
    principal.require(Role::Member)?;
    ensure_project(state, principal, body.scope.as_deref()).await?;
    let item = new_fact(
        state,
        principal,
        body.scope.as_deref(),
        body.text,
        body.occurred_at.as_deref(),
        "human",
    )
    .await?;
    let (id, new) = memory(state).add(item).await?;
    let item = memory(state)
        .get(id)
        .await?
        .ok_or_else(|| ApiError::internal("reading the stored fact"))?;
    if new {
        audit_fact(state, principal, "memory.added", &item).await?;
    }
    Ok(AddedFact { item, duplicate: !new })
}

async fn new_fact(
    state: &AppState,
    principal: &Principal,
    scope: Option<&str>,
    text: String,
    occurred_at: Option<&str>,
    source: &'static str,
) -> Result<NewItem, ApiError> {
    let scope = parse_scope(scope)?;
    require_visible(principal, &scope)?;
    let occurred_at_ms = parse_time(occurred_at, "occurred_at")?;
    let status = if approves_at_once(state, principal, &scope).await? {
        "approved"
    } else {
        "proposed"
    };
    Ok(NewItem {
        kind: "fact",
        scope,
        text,
        occurred_at_ms,
        status,
        source,
        source_task_id: None,
        created_by_user_id: Some(principal.user.id),
        details: json!({}),
        actor: principal.actor(),
    })
}

async fn audit_fact(state: &AppState, principal: &Principal, action: &str, item: &MemoryItem) -> Result<(), ApiError> {
    state
        .store
        .audit_append(
            AuditEntry::new(principal.actor(), action, format!("memory:{}", item.id)).with_details(json!({
                "scope": item.scope,
                "status": item.status,
                "kind": item.kind,
            })),
        )
        .await?;
    Ok(())
}

/// Longest import `source`, in bytes.
const MAX_IMPORT_SOURCE_BYTES: usize = 512;

/// One line of an import.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportItem {
    /// The text.
    pub text: String,
    /// When it happened (RFC 3339).
    #[serde(default)]
    pub occurred_at: Option<String>,
    /// Its place in `source` (0-based): search reads an item together with the ones just
    /// before and after it there.
    #[serde(default)]
    pub position: Option<u64>,
}

/// Body of `POST /memory/import`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportBatch {
    /// Scope of every item.
    #[serde(default)]
    pub scope: Option<String>,
    /// What the items come from (the CLI sends the file's name and a digest of its content),
    /// recorded with each item that has a `position`.
    #[serde(default)]
    pub source: Option<String>,
    /// The items (at most 1000).
    pub items: Vec<ImportItem>,
    /// Only validate: store no item (an admin's missing project is still created).
    #[serde(default)]
    pub dry_run: bool,
}

/// Response of `POST /memory/import`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportOutcome {
    /// New items stored.
    pub added: usize,
    /// Items already stored (same scope and text): nothing added.
    pub duplicates: usize,
    /// Ids in input order.
    #[schema(value_type = Vec<String>)]
    pub ids: Vec<MemoryId>,
}

/// Imports a batch: all of it or nothing; returns when every item is embedded and searchable.
/// An error names the item (1-based) that was refused.
#[utoipa::path(
    post, path = "/memory/import", tag = "memory", request_body = ImportBatch,
    responses((status = 200, body = ImportOutcome)),
)]
pub async fn import(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<ImportBatch>,
) -> Result<Json<ImportOutcome>, ApiError> {
    principal.require(Role::Member)?;
    // Also on a dry run, so the check that follows sees the project an admin's import creates.
    ensure_project(&state, &principal, body.scope.as_deref()).await?;
    if let Some(source) = &body.source
        && (source.trim().is_empty() || source.len() > MAX_IMPORT_SOURCE_BYTES)
    {
        return Err(bad_request(
            format!("source must be 1 to {MAX_IMPORT_SOURCE_BYTES} bytes"),
            "name the file the items come from",
        ));
    }
    let mut items = Vec::with_capacity(body.items.len());
    for (i, line) in body.items.into_iter().enumerate() {
        let place = body
            .source
            .as_deref()
            .zip(line.position)
            .map(|(source, position)| json!({"import": {"source": source, "position": position}}));
        let mut item = new_fact(
            &state,
            &principal,
            body.scope.as_deref(),
            line.text,
            line.occurred_at.as_deref(),
            "import",
        )
        .await
        .map_err(|mut e| {
            e.body.message = format!("item {}: {}", i + 1, e.body.message);
            e
        })?;
        if let Some(place) = place {
            item.details = place;
        }
        items.push(item);
    }
    let AddOutcome { ids, added, duplicates } = memory(&state).add_many(items, body.dry_run).await?;
    if added > 0 {
        state
            .store
            .audit_append(AuditEntry::new(principal.actor(), "memory.imported", "memory:import".to_owned()).with_details(
                json!({"scope": body.scope.unwrap_or_else(|| "org".into()), "added": added, "duplicates": duplicates}),
            ))
            .await?;
    }
    Ok(Json(ImportOutcome { added, duplicates, ids }))
}

/// Body of `POST /memory/search`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    /// What to look for.
    pub query: String,
    /// Search what a task in this scope may see (it and org); default org.
    #[serde(default)]
    pub scope: Option<String>,
    /// Hits wanted, 1–50 (default 10).
    #[serde(default)]
    pub limit: Option<usize>,
    /// `fact`, `episode` or empty for both.
    #[serde(default)]
    pub kind: Option<String>,
}

/// Response of `POST /memory/search`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    /// Best first.
    pub hits: Vec<Hit>,
    /// Time spent embedding the query, µs.
    pub embed_micros: u64,
    /// Time spent retrieving, µs.
    pub retrieve_micros: u64,
}

/// Hybrid search over approved items in a scope and the org scope.
#[utoipa::path(
    post, path = "/memory/search", tag = "memory", request_body = SearchBody,
    responses((status = 200, body = SearchResponse)),
)]
pub async fn search(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<SearchBody>,
) -> Result<Json<SearchResponse>, ApiError> {
    let results = run_search(&state, &principal, &body).await?;
    Ok(Json(results))
}

/// The search action (shared with the web page).
pub async fn run_search(
    state: &AppState,
    principal: &Principal,
    body: &SearchBody,
) -> Result<SearchResponse, ApiError> {
    let scope = parse_scope(body.scope.as_deref())?;
    require_visible(principal, &scope)?;
    let limit = body.limit.unwrap_or(DEFAULT_SEARCH_LIMIT);
    if limit == 0 || limit > MAX_SEARCH_LIMIT {
        return Err(bad_request(
            format!("limit {limit} is out of range"),
            format!("use 1 to {MAX_SEARCH_LIMIT}"),
        ));
    }
    let kind = match body.kind.as_deref().map(str::trim).unwrap_or("") {
        "" => KindFilter::Any,
        "fact" | "facts" => KindFilter::Facts,
        "episode" | "episodes" => KindFilter::Episodes,
        other => {
            return Err(bad_request(
                format!("unknown kind {other:?}"),
                "use fact or episode, or leave it out",
            ));
        }
    };
    let results = memory(state)
        .search(&SearchQuery {
            text: body.query.clone(),
            scopes: visible_from(&scope),
            kind,
            limit,
        })
        .await?;
    Ok(SearchResponse {
        hits: results.hits,
        embed_micros: results.embed_micros,
        retrieve_micros: results.retrieve_micros,
    })
}

/// Query of `GET /memory/items`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this scope.
    pub scope: Option<String>,
    /// `fact` or `episode`.
    pub kind: Option<String>,
    /// `proposed`, `approved`, `archived`, `rejected` (default: proposed and approved).
    pub status: Option<String>,
    /// Include archived items.
    pub archived: Option<bool>,
    /// Page size, 1–500 (default 100).
    pub limit: Option<i64>,
    /// Only items created before this time (epoch ms): the next page.
    pub before_ms: Option<i64>,
}

/// A page of memory items.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemList {
    /// Newest first.
    pub items: Vec<MemoryItem>,
}

/// Lists memory items (archived ones only with `archived=true` or `status=archived`).
#[utoipa::path(get, path = "/memory/items", tag = "memory", params(ListQuery), responses((status = 200, body = ItemList)))]
pub async fn list_items(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ItemList>, ApiError> {
    Ok(Json(ItemList {
        items: list(&state, &principal, &query).await?,
    }))
}

/// The listing action (shared with the web page).
pub async fn list(state: &AppState, principal: &Principal, query: &ListQuery) -> Result<Vec<MemoryItem>, ApiError> {
    let mut filter = MemoryFilter {
        before_ms: query.before_ms,
        ..Default::default()
    };
    if let Some(scope) = query.scope.as_deref().filter(|s| !s.trim().is_empty()) {
        let scope = parse_scope(Some(scope))?;
        require_visible(principal, &scope)?;
        filter.scopes = vec![scope.to_string()];
    }
    if let Some(kind) = query.kind.as_deref().filter(|s| !s.is_empty()) {
        if kind != "fact" && kind != "episode" {
            return Err(bad_request(format!("unknown kind {kind:?}"), "use fact or episode"));
        }
        filter.kind = Some(kind.to_owned());
    }
    filter.statuses = match query.status.as_deref().filter(|s| !s.is_empty()) {
        Some(s @ ("proposed" | "approved" | "archived" | "rejected")) => vec![s.to_owned()],
        Some(other) => {
            return Err(bad_request(
                format!("unknown status {other:?}"),
                "use proposed, approved, archived or rejected",
            ));
        }
        None if query.archived == Some(true) => vec![],
        None => vec!["proposed".into(), "approved".into()],
    };
    let limit = query.limit.unwrap_or(100);
    if !(1..=coworker_store::MAX_MEMORY_PAGE).contains(&limit) {
        return Err(bad_request(format!("limit {limit} is out of range"), "use 1 to 500"));
    }
    let items = state.store.list_memory_items(&filter, limit).await?;
    Ok(items.into_iter().filter(|i| may_see(principal, &i.scope)).collect())
}

/// One item with its history (created, decided, used by which tasks, archived).
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemDetail {
    /// The item.
    pub item: MemoryItem,
    /// Its history, oldest first.
    pub history: Vec<MemoryEvent>,
}

/// Shows an item and its history.
#[utoipa::path(
    get, path = "/memory/items/{id}", tag = "memory",
    params(("id" = String, Path, description = "Memory item id")),
    responses((status = 200, body = ItemDetail)),
)]
pub async fn get_item(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<ItemDetail>, ApiError> {
    Ok(Json(detail(&state, &principal, &id).await?))
}

/// The show action (shared with the web page).
pub async fn detail(state: &AppState, principal: &Principal, id: &str) -> Result<ItemDetail, ApiError> {
    let item = load_visible(state, principal, id).await?;
    let history = state.store.memory_events(item.id).await?;
    Ok(ItemDetail { item, history })
}

async fn load_visible(state: &AppState, principal: &Principal, id: &str) -> Result<MemoryItem, ApiError> {
    let id = parse_memory_id(id)?;
    let item = memory(state)
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no memory item {id}")))?;
    if !may_see(principal, &item.scope) {
        // Another person's private item: as if it did not exist.
        return Err(ApiError::not_found(format!("no memory item {id}")));
    }
    Ok(item)
}

/// Body of `POST /memory/items/{id}/forget` and `/decision`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// `approve` or `reject` (ignored by forget).
    #[serde(default)]
    pub decision: Option<String>,
    /// Why.
    #[serde(default)]
    pub note: Option<String>,
}

/// Forgets an item: archives it (it leaves retrieval, stays listable with `archived=true`),
/// with an audit entry. Nothing is deleted.
#[utoipa::path(
    post, path = "/memory/items/{id}/forget", tag = "memory", request_body = DecisionBody,
    params(("id" = String, Path, description = "Memory item id")),
    responses((status = 200, body = ItemDetail)),
)]
pub async fn forget(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<Json<ItemDetail>, ApiError> {
    Ok(Json(forget_item(&state, &principal, &id, body.note.as_deref()).await?))
}

/// The forget action (shared with the web page).
pub async fn forget_item(
    state: &AppState,
    principal: &Principal,
    id: &str,
    note: Option<&str>,
) -> Result<ItemDetail, ApiError> {
    principal.require(Role::Member)?;
    let item = load_visible(state, principal, id).await?;
    if !may_review(state, principal, &item.scope).await? && item.created_by_user_id != Some(principal.user.id) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_a_reviewer",
            format!("you may not forget memory item {}", item.id),
            "items are forgotten by an admin, the scope's owner, or the person who added them",
        ));
    }
    let changed = memory(state)
        .set_status(
            item.id,
            &["approved", "proposed"],
            "archived",
            &principal.actor(),
            json!({"note": note, "from": item.status}),
        )
        .await?;
    if !changed {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_archived",
            format!("memory item {} is {}, not active", item.id, item.status),
            "nothing changed",
        ));
    }
    let item = memory(state)
        .get(item.id)
        .await?
        .ok_or_else(|| ApiError::internal("reading the item"))?;
    audit_fact(state, principal, "memory.forgotten", &item).await?;
    detail(state, principal, &item.id.to_string()).await
}

/// Proposed facts waiting for review, newest first.
#[utoipa::path(get, path = "/memory/review", tag = "memory", responses((status = 200, body = ItemList)))]
pub async fn review_queue(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<ItemList>, ApiError> {
    let query = ListQuery {
        scope: None,
        kind: Some("fact".into()),
        status: Some("proposed".into()),
        archived: None,
        limit: Some(coworker_store::MAX_MEMORY_PAGE),
        before_ms: None,
    };
    Ok(Json(ItemList {
        items: list(&state, &principal, &query).await?,
    }))
}

/// Approves or rejects a proposed fact. A fact a coworker proposed carries an approval; the
/// decision goes through it, so the inbox, the CLI and the API agree (first decision wins).
#[utoipa::path(
    post, path = "/memory/items/{id}/decision", tag = "memory", request_body = DecisionBody,
    params(("id" = String, Path, description = "Memory item id")),
    responses((status = 200, body = ItemDetail)),
)]
pub async fn decide_fact(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<Json<ItemDetail>, ApiError> {
    Ok(Json(
        review(
            &state,
            &principal,
            &id,
            body.decision.as_deref().unwrap_or(""),
            body.note.as_deref(),
        )
        .await?,
    ))
}

/// The review action (shared with the web page).
pub async fn review(
    state: &AppState,
    principal: &Principal,
    id: &str,
    decision: &str,
    note: Option<&str>,
) -> Result<ItemDetail, ApiError> {
    principal.require(Role::Member)?;
    let item = load_visible(state, principal, id).await?;
    let decision = decision.trim().to_ascii_lowercase();
    if decision != "approve" && decision != "reject" {
        return Err(bad_request(
            format!("{decision:?} is not a decision for a proposed fact"),
            "use approve or reject",
        ));
    }
    if let Some(approval_id) = item
        .details
        .get("approval_id")
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse().ok())
    {
        crate::work::decide(state, principal, approval_id, &decision, note).await?;
        return detail(state, principal, id).await;
    }
    if !may_review(state, principal, &item.scope).await? {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_a_reviewer",
            format!("you may not decide proposals in scope \"{}\"", item.scope),
            "proposals are decided by an admin or the scope's owner",
        ));
    }
    apply_fact_decision(state, principal, item.id, &decision, note).await?;
    detail(state, principal, id).await
}

/// Applies a review decision to a proposed fact (called for `memory_fact` approvals by
/// [`crate::work::decide`] and for proposals without one). `409` when already decided.
pub async fn apply_fact_decision(
    state: &AppState,
    principal: &Principal,
    id: MemoryId,
    decision: &str,
    note: Option<&str>,
) -> Result<(), ApiError> {
    let to = if decision == "reject" { "rejected" } else { "approved" };
    let changed = memory(state)
        .set_status(id, &["proposed"], to, &principal.actor(), json!({"note": note}))
        .await?;
    if !changed {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_decided",
            format!("memory item {id} is not waiting for review"),
            "nothing changed; reload to see its current state",
        ));
    }
    if let Some(item) = memory(state).get(id).await? {
        audit_fact(
            state,
            principal,
            if to == "approved" {
                "memory.approved"
            } else {
                "memory.rejected"
            },
            &item,
        )
        .await?;
    }
    Ok(())
}

/// The memory item a `memory_fact` approval is about.
pub fn approval_fact(approval: &coworker_store::Approval) -> Option<MemoryId> {
    approval
        .preview
        .get("memory_id")
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse().ok())
}

/// Response of `POST /memory/reindex`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReindexOutcome {
    /// Items embedded.
    pub embedded: u64,
    /// The embedder used.
    pub embedder: String,
}

/// Embeds every item whose vector is missing or came from another embedder (admin).
#[utoipa::path(post, path = "/memory/reindex", tag = "memory", responses((status = 200, body = ReindexOutcome)))]
pub async fn reindex(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<ReindexOutcome>, ApiError> {
    principal.require(Role::Admin)?;
    let embedded = memory(&state).reindex(&|_, _| {}).await?;
    Ok(Json(ReindexOutcome {
        embedded,
        embedder: memory(&state).embedder().describe(),
    }))
}

/// Status of the memory subsystem, for `reindex` progress and `doctor`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemoryStatus {
    /// The embedder in one line.
    pub embedder: String,
    /// Live vectors in this node's index.
    pub indexed: usize,
    /// Items whose vector is missing or stale.
    pub to_embed: i64,
}

/// Embedder, index size and items waiting for (re-)embedding.
#[utoipa::path(get, path = "/memory/status", tag = "memory", responses((status = 200, body = MemoryStatus)))]
pub async fn status(State(state): State<AppState>) -> Result<Json<MemoryStatus>, ApiError> {
    let m = memory(&state);
    let to_embed = match m.embedder().id() {
        Some(id) => state.store.count_memory_items_to_embed(&id).await?,
        None => 0,
    };
    Ok(Json(MemoryStatus {
        embedder: m.embedder().describe(),
        indexed: m.indexed().await,
        to_embed,
    }))
}

/// Response of `POST /memory/consolidate`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsolidateOutcome {
    /// Episodes read.
    pub episodes: usize,
    /// New proposals in the review queue.
    #[schema(value_type = Vec<String>)]
    pub proposed: Vec<MemoryId>,
    /// Candidates dropped as near-duplicates of existing facts.
    pub duplicates: usize,
}

/// Query of `POST /memory/consolidate`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsolidateQuery {
    /// Read episodes from the last this many days (default 7).
    pub days: Option<u32>,
}

/// Runs consolidation now over recent episodes (admin): proposals go to the review queue.
#[utoipa::path(
    post, path = "/memory/consolidate", tag = "memory", params(ConsolidateQuery),
    responses((status = 200, body = ConsolidateOutcome)),
)]
pub async fn consolidate(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<ConsolidateQuery>,
) -> Result<Json<ConsolidateOutcome>, ApiError> {
    principal.require(Role::Admin)?;
    let days = i64::from(query.days.unwrap_or(7).clamp(1, 3650));
    let since = coworker_store::now_ms() - days * 86_400_000;
    let report = coworker_memory::consolidate::consolidate(memory(&state), state.engine.router(), since).await?;
    Ok(Json(ConsolidateOutcome {
        episodes: report.episodes,
        proposed: report.proposed,
        duplicates: report.duplicates.len(),
    }))
}

/// The node's memory jobs: consolidation every `consolidate_every_hours` (over the episodes
/// of that period) and decay every `decay_every_hours`; 0 turns a job off. Failures are
/// logged and retried at the next period. With several nodes each runs them; a repeated
/// proposal is dropped as a duplicate and a repeated archive changes nothing.
pub async fn periodic_jobs(memory: Arc<Memory>, router: coworker_models::Router, shutdown: crate::shutdown::Shutdown) {
    const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);
    let consolidate_every = memory.config().consolidate_every_hours;
    let decay_every = memory.config().decay_every_hours;
    if consolidate_every == 0 && decay_every == 0 {
        return;
    }
    let mut hours: u64 = 0;
    loop {
        tokio::select! {
            () = tokio::time::sleep(HOUR) => {}
            () = shutdown.wait() => return,
        }
        hours += 1;
        if consolidate_every > 0 && hours.is_multiple_of(u64::from(consolidate_every)) {
            let since = coworker_store::now_ms() - i64::from(consolidate_every) * 3_600_000;
            match coworker_memory::consolidate::consolidate(&memory, &router, since).await {
                Ok(report) => tracing::info!(
                    episodes = report.episodes,
                    proposed = report.proposed.len(),
                    duplicates = report.duplicates.len(),
                    "memory consolidation ran"
                ),
                Err(error) => tracing::warn!(%error, "memory consolidation failed; retrying next period"),
            }
        }
        if decay_every > 0 && hours.is_multiple_of(u64::from(decay_every)) {
            match memory.decay(coworker_store::now_ms()).await {
                Ok(archived) => tracing::info!(archived = archived.len(), "memory decay ran"),
                Err(error) => tracing::warn!(%error, "memory decay failed; retrying next period"),
            }
        }
    }
}
