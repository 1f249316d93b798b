//! The rows the store hands out, with typed ids and enums. Private `*Row` structs mirror
//! the tables (plain UUIDs and strings, decodable on both backends) and convert here.

use coworker_core::domain::{Priority, Role, RunStatus, TaskStatus};
use coworker_core::{CoworkerId, ProjectId, RunId, TaskId, TokenId, UserId};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use uuid::Uuid;

use crate::StoreError;

pub(crate) fn parse_enum<T: std::str::FromStr>(column: &'static str, value: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e: T::Err| StoreError::Database(sqlx::Error::Decode(format!("column {column}: {e}").into())))
}

/// A human member.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Sign-in email; `None` for the first-run owner until they claim the account.
    pub email: Option<String>,
    /// Name shown to people.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// Whether the account is disabled (cannot sign in, tokens refused).
    pub disabled: bool,
    /// Creation time, epoch ms.
    pub created_at_ms: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    pub id: Uuid,
    pub email: Option<String>,
    pub display_name: String,
    pub role: String,
    pub disabled: bool,
    pub created_at_ms: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(row: UserRow) -> Result<Self, Self::Error> {
        Ok(User {
            id: row.id.into(),
            email: row.email,
            display_name: row.display_name,
            role: parse_enum("users.role", &row.role)?,
            disabled: row.disabled,
            created_at_ms: row.created_at_ms,
        })
    }
}

/// What a token is for.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// A bearer token for the HTTP API.
    Api,
    /// The one-time first-run sign-in token.
    Signin,
    /// The owner credential written to the data dir for local CLI work commands.
    OwnerCredential,
}

impl TokenKind {
    /// Stable string form.
    pub fn as_str(&self) -> &'static str {
        match self {
            TokenKind::Api => "api",
            TokenKind::Signin => "signin",
            TokenKind::OwnerCredential => "owner_credential",
        }
    }
}

impl std::str::FromStr for TokenKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "api" => Ok(TokenKind::Api),
            "signin" => Ok(TokenKind::Signin),
            "owner_credential" => Ok(TokenKind::OwnerCredential),
            other => Err(format!("unknown token kind {other:?}")),
        }
    }
}

/// A stored token (its secret is never stored, only a hash).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Id.
    pub id: TokenId,
    /// Owner (a sign-in token may have none until used).
    pub user_id: Option<UserId>,
    /// Label shown in listings.
    pub name: String,
    /// Purpose.
    pub kind: TokenKind,
    /// The most this token may do (`None`: whatever its user's role allows).
    pub role: Option<Role>,
    /// Creation time, epoch ms.
    pub created_at_ms: i64,
    /// Last use, epoch ms.
    pub last_used_at_ms: Option<i64>,
    /// Expiry, epoch ms.
    pub expires_at_ms: Option<i64>,
    /// Revocation time, epoch ms.
    pub revoked_at_ms: Option<i64>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct TokenRow {
    pub id: Uuid,
    pub user_id: Option<Uuid>,
    pub name: String,
    pub kind: String,
    pub role: Option<String>,
    pub created_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

impl TryFrom<TokenRow> for ApiToken {
    type Error = StoreError;
    fn try_from(row: TokenRow) -> Result<Self, Self::Error> {
        Ok(ApiToken {
            id: row.id.into(),
            user_id: row.user_id.map(Into::into),
            name: row.name,
            kind: parse_enum("api_tokens.kind", &row.kind)?,
            role: row
                .role
                .as_deref()
                .map(|r| parse_enum("api_tokens.role", r))
                .transpose()?,
            created_at_ms: row.created_at_ms,
            last_used_at_ms: row.last_used_at_ms,
            expires_at_ms: row.expires_at_ms,
            revoked_at_ms: row.revoked_at_ms,
        })
    }
}

/// A named AI teammate as stored.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coworker {
    /// Id.
    pub id: CoworkerId,
    /// Unique handle (`ada`).
    pub handle: String,
    /// Display name (`Ada`).
    pub name: String,
    /// The job description.
    pub job_description: String,
    /// The human manager.
    pub manager_user_id: Option<UserId>,
    /// IANA timezone.
    pub timezone: String,
    /// Everything else from the coworker's definition (model policy, tools, budgets…).
    pub settings: serde_json::Value,
    /// Policy rules (tool glob → tier) set through the API; they replace the definition's.
    pub policy_overrides: Option<serde_json::Value>,
    /// Creation time, epoch ms.
    pub created_at_ms: i64,
    /// Last change, epoch ms.
    pub updated_at_ms: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct CoworkerRow {
    pub id: Uuid,
    pub handle: String,
    pub name: String,
    pub job_description: String,
    pub manager_user_id: Option<Uuid>,
    pub timezone: String,
    pub settings: Json<serde_json::Value>,
    pub policy_overrides: Option<Json<serde_json::Value>>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl From<CoworkerRow> for Coworker {
    fn from(row: CoworkerRow) -> Self {
        Coworker {
            id: row.id.into(),
            handle: row.handle,
            name: row.name,
            job_description: row.job_description,
            manager_user_id: row.manager_user_id.map(Into::into),
            timezone: row.timezone,
            settings: row.settings.0,
            policy_overrides: row.policy_overrides.map(|p| p.0),
            created_at_ms: row.created_at_ms,
            updated_at_ms: row.updated_at_ms,
        }
    }
}

/// A coworker definition to create or update (keyed by handle).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoworkerSpec {
    /// Unique handle.
    pub handle: String,
    /// Display name.
    pub name: String,
    /// The job description.
    pub job_description: String,
    /// The human manager.
    pub manager_user_id: Option<UserId>,
    /// IANA timezone.
    pub timezone: String,
    /// Everything else.
    pub settings: serde_json::Value,
}

/// A piece of delegated work.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Id.
    pub id: TaskId,
    /// The coworker doing it.
    pub coworker_id: CoworkerId,
    /// Who delegated it (`None` for system-originated work).
    pub delegator_user_id: Option<UserId>,
    /// Project scope.
    pub project_id: Option<ProjectId>,
    /// Parent task, for subtasks.
    pub parent_task_id: Option<TaskId>,
    /// What was asked.
    pub brief: String,
    /// Urgency.
    pub priority: Priority,
    /// Due time, epoch ms.
    pub due_at_ms: Option<i64>,
    /// Where it came from: `cli`, `api`, `web`, `slack`, `schedule`, `trigger`, `task`.
    pub origin_kind: String,
    /// Origin detail (thread id, schedule id…).
    pub origin_ref: Option<String>,
    /// Deduplication key (e.g. schedule id + fire time).
    pub idempotency_key: Option<String>,
    /// Status.
    pub status: TaskStatus,
    /// Final result.
    pub result: Option<serde_json::Value>,
    /// Total cost so far, integer micro-dollars.
    pub cost_micros_usd: i64,
    /// Input tokens so far.
    pub input_tokens: i64,
    /// Output tokens so far.
    pub output_tokens: i64,
    /// Creation time, epoch ms.
    pub created_at_ms: i64,
    /// Last change, epoch ms.
    pub updated_at_ms: i64,
    /// When it reached a terminal status, epoch ms.
    pub finished_at_ms: Option<i64>,
    /// Cost of this task and all its subtasks, integer micro-dollars (issue 15).
    pub tree_cost_micros_usd: i64,
    /// Input tokens of this task and all its subtasks.
    pub tree_input_tokens: i64,
    /// Output tokens of this task and all its subtasks.
    pub tree_output_tokens: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct TaskRow {
    pub id: Uuid,
    pub coworker_id: Uuid,
    pub delegator_user_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub parent_task_id: Option<Uuid>,
    pub brief: String,
    pub priority: String,
    pub due_at_ms: Option<i64>,
    pub origin_kind: String,
    pub origin_ref: Option<String>,
    pub idempotency_key: Option<String>,
    pub status: String,
    pub result: Option<Json<serde_json::Value>>,
    pub cost_micros_usd: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub tree_cost_micros_usd: i64,
    pub tree_input_tokens: i64,
    pub tree_output_tokens: i64,
}

impl TryFrom<TaskRow> for Task {
    type Error = StoreError;
    fn try_from(row: TaskRow) -> Result<Self, Self::Error> {
        Ok(Task {
            id: row.id.into(),
            coworker_id: row.coworker_id.into(),
            delegator_user_id: row.delegator_user_id.map(Into::into),
            project_id: row.project_id.map(Into::into),
            parent_task_id: row.parent_task_id.map(Into::into),
            brief: row.brief,
            priority: parse_enum("tasks.priority", &row.priority)?,
            due_at_ms: row.due_at_ms,
            origin_kind: row.origin_kind,
            origin_ref: row.origin_ref,
            idempotency_key: row.idempotency_key,
            status: parse_enum("tasks.status", &row.status)?,
            result: row.result.map(|j| j.0),
            cost_micros_usd: row.cost_micros_usd,
            input_tokens: row.input_tokens,
            output_tokens: row.output_tokens,
            created_at_ms: row.created_at_ms,
            updated_at_ms: row.updated_at_ms,
            finished_at_ms: row.finished_at_ms,
            tree_cost_micros_usd: row.tree_cost_micros_usd,
            tree_input_tokens: row.tree_input_tokens,
            tree_output_tokens: row.tree_output_tokens,
        })
    }
}

/// A task to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTask {
    /// The coworker to do it.
    pub coworker_id: CoworkerId,
    /// Who delegated it.
    pub delegator_user_id: Option<UserId>,
    /// Project scope.
    pub project_id: Option<ProjectId>,
    /// Parent task.
    pub parent_task_id: Option<TaskId>,
    /// What is asked.
    pub brief: String,
    /// Urgency.
    pub priority: Priority,
    /// Due time, epoch ms.
    pub due_at_ms: Option<i64>,
    /// Origin kind.
    pub origin_kind: String,
    /// Origin detail.
    pub origin_ref: Option<String>,
    /// Deduplication key: a second task with the same key is not created.
    pub idempotency_key: Option<String>,
}

impl NewTask {
    /// A normal-priority task for `coworker_id` with no delegator, project, parent, due
    /// date or idempotency key; set those fields as needed.
    pub fn new(coworker_id: CoworkerId, brief: impl Into<String>, origin_kind: impl Into<String>) -> Self {
        NewTask {
            coworker_id,
            delegator_user_id: None,
            project_id: None,
            parent_task_id: None,
            brief: brief.into(),
            priority: Priority::Normal,
            due_at_ms: None,
            origin_kind: origin_kind.into(),
            origin_ref: None,
            idempotency_key: None,
        }
    }
}

/// Outcome of [`crate::Store::create_task`].
#[derive(Debug, Clone, PartialEq)]
pub enum Created<T> {
    /// A new row was written.
    New(T),
    /// A row with the same idempotency key already existed; nothing was written.
    Existing(T),
}

impl<T> Created<T> {
    /// The row, new or existing.
    pub fn into_inner(self) -> T {
        match self {
            Created::New(t) | Created::Existing(t) => t,
        }
    }

    /// The row, new or existing, borrowed.
    pub fn row(&self) -> &T {
        match self {
            Created::New(t) | Created::Existing(t) => t,
        }
    }

    /// Whether a new row was written.
    pub fn is_new(&self) -> bool {
        matches!(self, Created::New(_))
    }
}

/// The durable execution of a task.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Id.
    pub id: RunId,
    /// The task.
    pub task_id: TaskId,
    /// Scheduling state.
    pub status: RunStatus,
    /// Worker holding the lease.
    pub lease_owner: Option<String>,
    /// Lease expiry, epoch ms.
    pub lease_expires_at_ms: Option<i64>,
    /// Bumped by every claim; appends must carry the current epoch (fencing).
    pub lease_epoch: i64,
    /// When a waiting run becomes runnable on its own, epoch ms.
    pub wake_at_ms: Option<i64>,
    /// Creation time, epoch ms.
    pub created_at_ms: i64,
    /// The run's OpenTelemetry trace id (32 hex digits), once a tracing node drove it.
    pub trace_id: Option<String>,
    /// The id of the run's root span (16 hex digits), with `trace_id`.
    pub trace_span_id: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct RunRow {
    pub id: Uuid,
    pub task_id: Uuid,
    pub status: String,
    pub lease_owner: Option<String>,
    pub lease_expires_at_ms: Option<i64>,
    pub lease_epoch: i64,
    pub wake_at_ms: Option<i64>,
    pub created_at_ms: i64,
    pub trace_id: Option<String>,
    pub trace_span_id: Option<String>,
}

impl TryFrom<RunRow> for Run {
    type Error = StoreError;
    fn try_from(row: RunRow) -> Result<Self, Self::Error> {
        Ok(Run {
            id: row.id.into(),
            task_id: row.task_id.into(),
            status: parse_enum("runs.status", &row.status)?,
            lease_owner: row.lease_owner,
            lease_expires_at_ms: row.lease_expires_at_ms,
            lease_epoch: row.lease_epoch,
            wake_at_ms: row.wake_at_ms,
            created_at_ms: row.created_at_ms,
            trace_id: row.trace_id,
            trace_span_id: row.trace_span_id,
        })
    }
}

/// One entry of a run's journal.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEvent {
    /// The run.
    pub run_id: RunId,
    /// Position in the journal, from 1, strictly increasing without gaps.
    pub seq: i64,
    /// Event kind (`started`, `model_requested`, …).
    pub kind: String,
    /// Event data.
    pub payload: serde_json::Value,
    /// When it was appended, epoch ms.
    pub at_ms: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct RunEventRow {
    pub run_id: Uuid,
    pub seq: i64,
    pub kind: String,
    pub payload: Json<serde_json::Value>,
    pub at_ms: i64,
}

impl From<RunEventRow> for RunEvent {
    fn from(row: RunEventRow) -> Self {
        RunEvent {
            run_id: row.run_id.into(),
            seq: row.seq,
            kind: row.kind,
            payload: row.payload.0,
            at_ms: row.at_ms,
        }
    }
}

/// A run a worker has claimed: it may append with `lease_epoch` until the lease expires.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedRun {
    /// The run.
    pub run: Run,
    /// Sequence number of the next journal append.
    pub next_seq: i64,
    /// The worker whose lease had expired when this claim took the run over (it died or
    /// stalled); `None` for a run claimed from `ready` or `waiting`. Empty if unknown.
    pub taken_over_from: Option<String>,
}

/// A pending or decided human decision.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// Id.
    pub id: coworker_core::ApprovalId,
    /// The run waiting on it.
    pub run_id: RunId,
    /// The run's task.
    pub task_id: TaskId,
    /// `plan`, `tool_call`, `budget`, `outcome_unknown`, `escalation`…
    pub kind: String,
    /// One line for people.
    pub title: String,
    /// What is being decided, rendered for people (arguments, plan steps, diff…).
    pub preview: serde_json::Value,
    /// State.
    pub status: coworker_core::domain::ApprovalStatus,
    /// Who decided.
    pub decided_by_user_id: Option<UserId>,
    /// The decision word (`approve`, `reject`, `retry`, `skip`, `mark_done`, `expired`).
    pub decision: Option<String>,
    /// The decider's note.
    pub decision_note: Option<String>,
    /// Deadline, epoch ms.
    pub expires_at_ms: i64,
    /// When it was escalated to the manager, epoch ms.
    pub escalated_at_ms: Option<i64>,
    /// Creation time, epoch ms.
    pub created_at_ms: i64,
    /// Decision time, epoch ms.
    pub decided_at_ms: Option<i64>,
    /// The tool call (or plan) this gates.
    pub call_id: Option<String>,
    /// Who delegated the task (may decide).
    pub requested_by_user_id: Option<UserId>,
    /// Escalation target (the coworker's manager).
    pub escalate_to_user_id: Option<UserId>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct ApprovalRow {
    pub id: Uuid,
    pub run_id: Uuid,
    pub task_id: Uuid,
    pub kind: String,
    pub title: String,
    pub preview: Json<serde_json::Value>,
    pub status: String,
    pub decided_by_user_id: Option<Uuid>,
    pub decision: Option<String>,
    pub decision_note: Option<String>,
    pub expires_at_ms: i64,
    pub escalated_at_ms: Option<i64>,
    pub created_at_ms: i64,
    pub decided_at_ms: Option<i64>,
    pub call_id: Option<String>,
    pub requested_by_user_id: Option<Uuid>,
    pub escalate_to_user_id: Option<Uuid>,
}

impl TryFrom<ApprovalRow> for Approval {
    type Error = StoreError;
    fn try_from(row: ApprovalRow) -> Result<Self, Self::Error> {
        Ok(Approval {
            id: row.id.into(),
            run_id: row.run_id.into(),
            task_id: row.task_id.into(),
            kind: row.kind,
            title: row.title,
            preview: row.preview.0,
            status: parse_enum("approvals.status", &row.status)?,
            decided_by_user_id: row.decided_by_user_id.map(Into::into),
            decision: row.decision,
            decision_note: row.decision_note,
            expires_at_ms: row.expires_at_ms,
            escalated_at_ms: row.escalated_at_ms,
            created_at_ms: row.created_at_ms,
            decided_at_ms: row.decided_at_ms,
            call_id: row.call_id,
            requested_by_user_id: row.requested_by_user_id.map(Into::into),
            escalate_to_user_id: row.escalate_to_user_id.map(Into::into),
        })
    }
}

/// An approval to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewApproval {
    /// The waiting run.
    pub run_id: RunId,
    /// Its task.
    pub task_id: TaskId,
    /// Kind (see [`Approval::kind`]).
    pub kind: String,
    /// One line for people.
    pub title: String,
    /// Rendered detail.
    pub preview: serde_json::Value,
    /// Deadline, epoch ms.
    pub expires_at_ms: i64,
    /// The gated call or plan id.
    pub call_id: Option<String>,
    /// The delegator.
    pub requested_by_user_id: Option<UserId>,
    /// The escalation target.
    pub escalate_to_user_id: Option<UserId>,
}

/// An input waiting to be journaled by a run's worker.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInput {
    /// Input id.
    pub id: Uuid,
    /// The run.
    pub run_id: RunId,
    /// `answer`, `human_message`.
    pub kind: String,
    /// Data.
    pub payload: serde_json::Value,
    /// Who sent it.
    pub from_user_id: Option<UserId>,
    /// When, epoch ms.
    pub created_at_ms: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct RunInputRow {
    pub id: Uuid,
    pub run_id: Uuid,
    pub kind: String,
    pub payload: Json<serde_json::Value>,
    pub from_user_id: Option<Uuid>,
    pub created_at_ms: i64,
}

impl From<RunInputRow> for RunInput {
    fn from(row: RunInputRow) -> Self {
        RunInput {
            id: row.id,
            run_id: row.run_id.into(),
            kind: row.kind,
            payload: row.payload.0,
            from_user_id: row.from_user_id.map(Into::into),
            created_at_ms: row.created_at_ms,
        }
    }
}
