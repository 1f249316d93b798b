//! The Inbox: the approvals the signed-in person may decide and the questions coworkers asked
//! them, most urgent task first, then newest; and the decide form's post.
//!
//! Decisions go through `work::decide` (permissions, audit, wake-up: the API's path). Reads
//! are bounded and batched: one page of approvals ordered by the database, their tasks and
//! coworkers loaded once into maps, the open questions of all waiting tasks from one query.

use std::collections::{HashMap, HashSet};

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use coworker_core::domain::{Role, TaskStatus};
use coworker_core::{CoworkerId, TaskId};
use coworker_engine::state::{RunState, kind};
use coworker_store::{Approval, Coworker, RunEvent, Task, TaskFilter};
use serde::Deserialize;
use serde_json::Value;

use super::signin::safe_next;
use super::tasks::{excerpt, pretty, refused};
use super::{FlashKind, PageContext, WebError, WebUser, iso, redirect_with, render, when};
use crate::api::AppState;
use crate::auth::Principal;
use crate::work;

/// Approvals shown per page of the Inbox (the rest behind "Show more"): keeps the page fast
/// with thousands pending.
pub const INBOX_PAGE_SIZE: i64 = 200;

/// An approval expiring within this many ms is flagged with its remaining time.
pub const NEAR_EXPIRY_MS: i64 = 60 * 60 * 1000;

/// Most waiting tasks whose open questions the Inbox looks at (newest first; the store's
/// page bound).
pub const MAX_QUESTION_TASKS: i64 = coworker_store::MAX_TASK_PAGE;

/// Most question/answer journal events read to find open questions.
pub const MAX_QUESTION_EVENTS: i64 = 5_000;

/// Characters of a task's brief shown with an approval or question.
const BRIEF_CHARS: usize = 200;

/// Most diff lines rendered for one approval (the rest is in the task's details).
pub const MAX_DIFF_LINES: usize = 400;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/inbox", get(inbox_page))
        .route("/inbox/approvals/{id}", post(decide))
}

/// One line of a unified diff and its class (`add`, `del`, `hunk`, `head` or none).
#[derive(Debug, Clone)]
pub(super) struct DiffLine {
    /// CSS class.
    pub class: &'static str,
    /// The line, with its newline.
    pub text: String,
}

fn diff_lines(diff: &str) -> Vec<DiffLine> {
    let mut lines: Vec<DiffLine> = diff
        .lines()
        .take(MAX_DIFF_LINES)
        .map(|line| DiffLine {
            class: if line.starts_with("+++") || line.starts_with("---") {
                "head"
            } else if line.starts_with('+') {
                "add"
            } else if line.starts_with('-') {
                "del"
            } else if line.starts_with("@@") {
                "hunk"
            } else {
                ""
            },
            text: format!("{line}\n"),
        })
        .collect();
    let total = diff.lines().count();
    if total > MAX_DIFF_LINES {
        lines.push(DiffLine {
            class: "head",
            text: format!("… {} more lines\n", total - MAX_DIFF_LINES),
        });
    }
    lines
}

/// A decision button.
#[derive(Debug, Clone)]
pub(super) struct DecisionButton {
    /// The `decision` value (`approve`, `reject`, `retry`, …).
    pub value: &'static str,
    /// Its label.
    pub label: &'static str,
    /// Button class (`danger` for reject).
    pub class: &'static str,
}

fn decision_buttons(kind: &str) -> Vec<DecisionButton> {
    work::decisions_for(kind)
        .iter()
        .map(|value| DecisionButton {
            value,
            label: match *value {
                "approve" => "Approve",
                "reject" => "Reject",
                "retry" => "Run it again",
                "skip" => "Skip it",
                "mark_done" => "It happened: mark done",
                _ => value,
            },
            class: if *value == "reject" { "secondary" } else { "" },
        })
        .collect()
}

/// An approval as the Inbox and a task's page show it (`_approval.html`).
#[derive(Debug, Clone, Default)]
pub(super) struct ApprovalView {
    /// Approval id (`data-approval-id`).
    pub id: String,
    /// Kind for people (`tool call`, `plan`, …).
    pub kind: String,
    /// Its one-line title.
    pub title: String,
    /// The task.
    pub task_id: String,
    /// The task's brief, cut.
    pub brief: String,
    /// The task's priority word.
    pub priority: &'static str,
    /// The coworker's handle.
    pub coworker: String,
    /// The gated tool, when a tool call.
    pub tool: String,
    /// Its risk class.
    pub risk: String,
    /// Why it needs approval (the policy rule).
    pub rule: String,
    /// The arguments or the rest of the preview, pretty.
    pub preview: String,
    /// The file change, line by line.
    pub diff: Vec<DiffLine>,
    /// The changed file.
    pub path: String,
    /// Deadline (ISO, for `<time>`).
    pub expires_iso: String,
    /// Deadline for people.
    pub expires: String,
    /// "expires in 12 min" when near; empty otherwise.
    pub expiring: String,
    /// Whether it was escalated to the manager.
    pub escalated: bool,
    /// Raised (ISO).
    pub created_iso: String,
    /// Raised, for people.
    pub created: String,
    /// The buttons, empty when the viewer may not decide.
    pub decisions: Vec<DecisionButton>,
    /// Why provenance holds the call (issue 19): each tainted value with its source passage.
    pub provenance: Vec<ProvenanceSource>,
    /// For a request to connect an account (issue 17): where to connect it.
    pub connect_url: String,
    /// The server to connect.
    pub server: String,
}

/// One tainted value in an approval: the reason, and the passage it came from with the value
/// marked.
#[derive(Debug, Clone, Default)]
pub(super) struct ProvenanceSource {
    /// "the address `…` comes from the result of `…` at step 7, not from you".
    pub reason: String,
    /// The journal step of the source (links to the task timeline).
    pub step: i64,
    /// Text before the value.
    pub before: String,
    /// The value as it appears in the source (empty when no passage was found).
    pub found: String,
    /// Text after the value.
    pub after: String,
}

fn provenance_sources(preview: &Value) -> Vec<ProvenanceSource> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    preview["provenance"]["sources"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|source| ProvenanceSource {
            reason: text(&source["reason"]),
            step: source["step"].as_i64().unwrap_or_default(),
            before: text(&source["excerpt"]["before"]),
            found: text(&source["excerpt"]["match"]),
            after: text(&source["excerpt"]["after"]),
        })
        .collect()
}

fn remaining(ms: i64) -> String {
    let minutes = (ms.max(0) + 59_999) / 60_000;
    if minutes < 60 {
        format!("expires in {minutes} min")
    } else {
        format!("expires in {} h {} min", minutes / 60, minutes % 60)
    }
}

/// How `approval` reads for `principal`; `task` and `coworker` are the approval's, when known.
pub(super) fn approval_view(
    approval: &Approval,
    task: Option<&Task>,
    coworker: Option<&Coworker>,
    principal: &Principal,
    now_ms: i64,
) -> ApprovalView {
    let preview = &approval.preview;
    let text = |key: &str| preview.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let shown = match preview.get("arguments_text").and_then(Value::as_str) {
        Some(arguments) => arguments.to_owned(),
        None => match preview.get("plan") {
            Some(plan) => pretty(plan),
            None => pretty(preview),
        },
    };
    let left = approval.expires_at_ms - now_ms;
    ApprovalView {
        id: approval.id.to_string(),
        kind: approval.kind.replace('_', " "),
        title: approval.title.clone(),
        task_id: approval.task_id.to_string(),
        brief: task.map(|t| excerpt(&t.brief, BRIEF_CHARS)).unwrap_or_default(),
        priority: task.map_or("normal", |t| t.priority.as_str()),
        coworker: coworker.map(|c| c.handle.clone()).unwrap_or_default(),
        tool: text("tool"),
        risk: text("risk"),
        rule: text("rule"),
        preview: shown,
        diff: preview
            .get("diff")
            .and_then(Value::as_str)
            .map(diff_lines)
            .unwrap_or_default(),
        path: text("path"),
        expires_iso: iso(approval.expires_at_ms),
        expires: when(approval.expires_at_ms),
        expiring: if left < NEAR_EXPIRY_MS {
            remaining(left)
        } else {
            String::new()
        },
        escalated: approval.escalated_at_ms.is_some(),
        created_iso: iso(approval.created_at_ms),
        created: when(approval.created_at_ms),
        provenance: provenance_sources(preview),
        connect_url: if approval.kind == coworker_engine::tools::CONNECTION_APPROVAL {
            text("connect_url")
        } else {
            String::new()
        },
        server: text("server"),
        decisions: if work::may_decide(principal, approval) {
            decision_buttons(&approval.kind)
        } else {
            Vec::new()
        },
    }
}

/// A question a coworker is waiting on.
#[derive(Debug, Clone)]
pub(super) struct QuestionView {
    /// The task.
    pub task_id: String,
    /// Its brief, cut.
    pub brief: String,
    /// Its priority word.
    pub priority: &'static str,
    /// The coworker's handle.
    pub coworker: String,
    /// The question.
    pub question: String,
    /// Asked (ISO).
    pub asked_iso: String,
    /// Asked, for people.
    pub asked: String,
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxPage {
    page: PageContext,
    approvals: Vec<ApprovalView>,
    questions: Vec<QuestionView>,
    /// Pending approvals for this person in all.
    total: i64,
    /// Index of the first shown (1-based) and last shown.
    first: i64,
    last: i64,
    /// Link to the next page of approvals.
    more: Option<String>,
    /// Link to the previous page.
    previous: Option<String>,
    /// Where the decide forms return to.
    back: String,
}

/// Query of `GET /inbox`.
#[derive(Debug, Default, Deserialize)]
pub struct InboxQuery {
    /// Page of approvals, from 1.
    #[serde(default)]
    page: Option<i64>,
}

/// Rank of a priority for sorting questions (most urgent first), as the store ranks approvals.
fn urgency(task: &Task) -> u8 {
    match task.priority {
        coworker_core::domain::Priority::Urgent => 0,
        coworker_core::domain::Priority::High => 1,
        coworker_core::domain::Priority::Normal => 2,
        coworker_core::domain::Priority::Low => 3,
    }
}

/// Open questions on waiting tasks that `principal` delegated or whose coworker they manage.
async fn questions_for(
    state: &AppState,
    principal: &Principal,
    coworkers: &HashMap<CoworkerId, Coworker>,
) -> Result<Vec<QuestionView>, WebError> {
    let me = principal.user.id;
    let mine: HashMap<TaskId, Task> = state
        .store
        .list_tasks_page(&TaskFilter {
            status: Some(TaskStatus::Waiting),
            limit: MAX_QUESTION_TASKS,
            ..TaskFilter::default()
        })
        .await?
        .into_iter()
        .filter(|t| {
            t.delegator_user_id == Some(me)
                || coworkers
                    .get(&t.coworker_id)
                    .is_some_and(|c| c.manager_user_id == Some(me))
        })
        .map(|t| (t.id, t))
        .collect();
    if mine.is_empty() {
        return Ok(Vec::new());
    }
    let events = state
        .store
        .events_of_waiting_tasks(&[kind::QUESTION_ASKED, kind::ANSWER_RECEIVED], MAX_QUESTION_EVENTS)
        .await?;
    let mut journals: HashMap<TaskId, Vec<RunEvent>> = HashMap::new();
    for (task, event) in events {
        if mine.contains_key(&task) {
            journals.entry(task).or_default().push(event);
        }
    }
    let mut questions: Vec<(u8, i64, QuestionView)> = Vec::new();
    for (task_id, journal) in journals {
        let folded = RunState::fold(&journal);
        let Some((call_id, question)) = folded.open_question() else {
            continue;
        };
        let Some(task) = mine.get(&task_id) else {
            continue;
        };
        let asked_at = journal
            .iter()
            .rev()
            .find(|e| {
                e.kind == kind::QUESTION_ASKED && e.payload.get("call_id").and_then(Value::as_str) == Some(call_id)
            })
            .map_or(task.updated_at_ms, |e| e.at_ms);
        questions.push((
            urgency(task),
            asked_at,
            QuestionView {
                task_id: task.id.to_string(),
                brief: excerpt(&task.brief, BRIEF_CHARS),
                priority: task.priority.as_str(),
                coworker: coworkers
                    .get(&task.coworker_id)
                    .map(|c| c.handle.clone())
                    .unwrap_or_default(),
                question: question.to_owned(),
                asked_iso: iso(asked_at),
                asked: when(asked_at),
            },
        ));
    }
    questions.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    Ok(questions.into_iter().map(|(_, _, q)| q).collect())
}

async fn inbox_page(
    State(state): State<AppState>,
    user: WebUser,
    Query(query): Query<InboxQuery>,
) -> Result<Response, WebError> {
    let principal = &user.principal;
    let page_number = query.page.unwrap_or(1).max(1);
    let offset = (page_number - 1) * INBOX_PAGE_SIZE;
    let (approvals, questions, total) = if principal.has(Role::Member) {
        // Admins may decide every approval; others those they were asked for. `may_decide`
        // stays the judge of each row: the store's filter only narrows the read.
        let for_user = if principal.has(Role::Admin) {
            None
        } else {
            Some(principal.user.id)
        };
        let total = state.store.count_pending_approvals(for_user).await?;
        let pending = state
            .store
            .pending_approvals_by_urgency(for_user, offset, INBOX_PAGE_SIZE)
            .await?;
        let coworkers: HashMap<CoworkerId, Coworker> = state
            .store
            .list_coworkers()
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
        let task_ids: Vec<TaskId> = pending
            .iter()
            .map(|a| a.task_id)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let tasks: HashMap<TaskId, Task> = state
            .store
            .tasks_by_ids(&task_ids)
            .await?
            .into_iter()
            .map(|t| (t.id, t))
            .collect();
        let now = coworker_store::now_ms();
        let approvals: Vec<ApprovalView> = pending
            .iter()
            .filter(|a| work::may_decide(principal, a))
            .map(|a| {
                let task = tasks.get(&a.task_id);
                let coworker = task.and_then(|t| coworkers.get(&t.coworker_id));
                approval_view(a, task, coworker, principal, now)
            })
            .collect();
        let questions = if page_number == 1 {
            questions_for(&state, principal, &coworkers).await?
        } else {
            Vec::new()
        };
        (approvals, questions, total)
    } else {
        (Vec::new(), Vec::new(), 0)
    };
    let shown = approvals.len() as i64;
    let view = InboxPage {
        page: user.page(&state, "Inbox", "inbox").await?,
        first: if shown > 0 { offset + 1 } else { 0 },
        last: offset + shown,
        more: (offset + shown < total).then(|| format!("/inbox?page={}", page_number + 1)),
        previous: (page_number > 1).then(|| format!("/inbox?page={}", page_number - 1)),
        back: if page_number > 1 {
            format!("/inbox?page={page_number}")
        } else {
            "/inbox".to_owned()
        },
        approvals,
        questions,
        total,
    };
    render(&view)
}

/// Form of `POST /inbox/approvals/{id}`.
#[derive(Debug, Default, Deserialize)]
pub struct DecideForm {
    /// `approve`, `reject` (or `retry`, `skip`, `mark_done` for an uncertain outcome).
    #[serde(default)]
    decision: String,
    /// Passed to the coworker.
    #[serde(default)]
    note: String,
    /// Where to return (a local path; default: the Inbox).
    #[serde(default)]
    next: Option<String>,
}

async fn decide(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
    Form(form): Form<DecideForm>,
) -> Result<Response, WebError> {
    let back = safe_next(form.next.as_deref()).to_owned();
    let id = work::parse_approval_id(&id)?;
    match work::decide(&state, &user.principal, id, &form.decision, Some(&form.note)).await {
        Ok(approval) => {
            let word = match approval.decision.as_deref() {
                Some("approve") => "Approved",
                Some("reject") => "Rejected",
                Some("retry") => "Retrying",
                Some("skip") => "Skipped",
                Some("mark_done") => "Marked done",
                _ => "Decided",
            };
            Ok(redirect_with(
                &back,
                FlashKind::Ok,
                &format!("{word}: {}. The coworker continues now.", approval.title),
            ))
        }
        Err(error) => refused(error, &back),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_are_classed_line_by_line() {
        let lines = diff_lines("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n+new\n same");
        let classes: Vec<&str> = lines.iter().map(|l| l.class).collect();
        assert_eq!(classes, ["head", "head", "hunk", "del", "add", ""]);
        assert_eq!(lines[3].text, "-old\n");
    }

    #[test]
    fn long_diffs_are_cut_with_a_count() {
        let diff = "+x\n".repeat(MAX_DIFF_LINES + 5);
        let lines = diff_lines(&diff);
        assert_eq!(lines.len(), MAX_DIFF_LINES + 1);
        assert_eq!(lines.last().unwrap().text, "… 5 more lines\n");
    }

    #[test]
    fn remaining_time_rounds_up_to_minutes() {
        assert_eq!(remaining(1), "expires in 1 min");
        assert_eq!(remaining(59 * 60_000), "expires in 59 min");
        assert_eq!(remaining(61 * 60_000), "expires in 1 h 1 min");
        assert_eq!(remaining(-5), "expires in 0 min");
    }
}
