//! The Coworkers pages: everyone at a glance (role, manager, work in flight, spend) and one
//! coworker's profile: its tools and their tiers for the viewer (the same list as
//! `GET /api/v1/coworkers/{handle}/tools`), policy rules, budget and limits, recent tasks, and
//! a chat box that starts a conversation with it (a task whose page is the thread) and a form
//! to delegate to it with options.
//!
//! Read-only: delegating posts to `/tasks` (the Tasks module, through `work::delegate`).

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use coworker_core::CoworkerId;
use coworker_core::coworker::{CoworkerDef, ModelPolicy};
use coworker_core::policy;
use coworker_engine::runner::{coworker_def, today_in};
use coworker_store::{Coworker, TaskFilter};

use super::tasks::{NewTaskForm, TaskRow};
use super::{PageContext, WebError, WebUser, dollars, render};
use crate::ApiError;
use crate::api::AppState;

/// Recent tasks listed on a coworker's profile.
pub const RECENT_TASKS: i64 = 20;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/coworkers", get(list_page))
        .route("/coworkers/{handle}", get(profile_page))
}

/// Spend of one coworker: today (against its daily budget) and this month.
#[derive(Debug, Clone, Default)]
pub(super) struct Spend {
    /// Spent today in its timezone.
    pub today: String,
    /// Its daily budget, or empty when unlimited.
    pub daily_budget: String,
    /// Percentage of the daily budget used (0–100, for a meter), when there is one.
    pub daily_percent: Option<u8>,
    /// Spent since the first of this month in its timezone.
    pub month: String,
}

/// Spend per coworker from one read of the spend table: days are counted in each coworker's
/// own timezone, as the engine counts them.
async fn spend(
    state: &AppState,
    coworkers: &[(Coworker, CoworkerDef)],
) -> Result<HashMap<CoworkerId, Spend>, WebError> {
    let days: HashMap<CoworkerId, String> = coworkers
        .iter()
        .map(|(c, def)| (c.id, today_in(&def.timezone)))
        .collect();
    // The earliest first-of-month among the coworkers' timezones.
    let Some(first_day) = days.values().map(|d| format!("{}-01", &d[..d.len().min(7)])).min() else {
        return Ok(HashMap::new());
    };
    let mut spent: HashMap<CoworkerId, (i64, i64)> = HashMap::new();
    for (id, day, micros) in state.store.coworker_spend_since(&first_day).await? {
        let Some(today) = days.get(&id) else {
            continue;
        };
        let entry = spent.entry(id).or_default();
        if day.get(..7) == today.get(..7) {
            entry.1 += micros;
        }
        if &day == today {
            entry.0 += micros;
        }
    }
    Ok(coworkers
        .iter()
        .map(|(c, def)| {
            let (today, month) = spent.get(&c.id).copied().unwrap_or_default();
            let budget = def.budget.daily_micros();
            (
                c.id,
                Spend {
                    today: dollars(today),
                    daily_budget: budget.map(dollars).unwrap_or_default(),
                    daily_percent: budget.map(|b| ((today.max(0) * 100) / b.max(1)).min(100) as u8),
                    month: dollars(month),
                },
            )
        })
        .collect())
}

/// One coworker's card on the list.
#[derive(Debug, Clone)]
struct Card {
    handle: String,
    name: String,
    role: String,
    manager: String,
    in_flight: i64,
    spend: Spend,
}

#[derive(Template)]
#[template(path = "coworkers.html")]
struct ListPage {
    page: PageContext,
    cards: Vec<Card>,
}

async fn managers(state: &AppState) -> Result<HashMap<coworker_core::UserId, String>, WebError> {
    Ok(state
        .store
        .list_users()
        .await?
        .into_iter()
        .map(|u| (u.id, u.display_name))
        .collect())
}

async fn list_page(State(state): State<AppState>, user: WebUser) -> Result<Response, WebError> {
    let coworkers: Vec<(Coworker, CoworkerDef)> = state
        .store
        .list_coworkers()
        .await?
        .into_iter()
        .map(|c| {
            let def = coworker_def(&c);
            (c, def)
        })
        .collect();
    let in_flight: HashMap<CoworkerId, i64> = state.store.unfinished_tasks_by_coworker().await?.into_iter().collect();
    let spend = spend(&state, &coworkers).await?;
    let people = managers(&state).await?;
    let cards = coworkers
        .iter()
        .map(|(c, _)| Card {
            handle: c.handle.clone(),
            name: c.name.clone(),
            role: c.job_description.clone(),
            manager: c
                .manager_user_id
                .and_then(|m| people.get(&m).cloned())
                .unwrap_or_default(),
            in_flight: in_flight.get(&c.id).copied().unwrap_or(0),
            spend: spend.get(&c.id).cloned().unwrap_or_default(),
        })
        .collect();
    let view = ListPage {
        page: user.page(&state, "Coworkers", "coworkers").await?,
        cards,
    };
    render(&view)
}

/// A tool as the profile lists it.
#[derive(Debug, Clone)]
struct ToolRow {
    name: String,
    description: String,
    risk: &'static str,
    tier: &'static str,
    rule: String,
    /// Which connection it comes from and whose (issue 17).
    connection: String,
    /// Where to connect, when the viewer lacks the connection it needs.
    connect_url: String,
}

/// Which connection `tool` comes from for `principal`, and whose: `(words, connect link)`.
async fn tool_connection(
    state: &AppState,
    principal: &crate::auth::Principal,
    names: &std::collections::HashMap<coworker_core::UserId, String>,
    tool: &str,
) -> Result<(String, String), WebError> {
    let delegator = crate::policy::delegator(principal);
    let Some((source, scope)) = state.engine.tools().source_of(tool, Some(&delegator)) else {
        return Ok(("the engine's own".to_owned(), String::new()));
    };
    let oauth = state.oauth.connections();
    // An OAuth MCP server's source is its name; an OpenAPI connection's is `openapi:NAME`.
    let signed_in = match source.strip_prefix("openapi:") {
        Some(name) if oauth.api(name).is_some() => Some(name.to_owned()),
        _ if oauth.server(&source).is_some() => Some(source.clone()),
        _ => None,
    };
    if let Some(source) = signed_in {
        return Ok(match oauth.grant_for(&source, &delegator).await? {
            Some(grant) => match grant.owner {
                Some(_) => (format!("{source} (OAuth): your own connection"), String::new()),
                None => (
                    format!(
                        "{source} (OAuth): the org's connection, made by {}",
                        grant
                            .connected_by
                            .and_then(|u| names.get(&u).cloned())
                            .unwrap_or_else(|| "an admin".to_owned())
                    ),
                    String::new(),
                ),
            },
            None => (
                format!("{source} (OAuth): you have not connected it"),
                oauth.connect_url(&source),
            ),
        });
    }
    Ok(match (source.as_str(), scope) {
        ("builtin", _) => ("built in".to_owned(), String::new()),
        (_, coworker_tools::Scope::User(_)) => (format!("{source}: your own connection"), String::new()),
        (_, coworker_tools::Scope::Org { .. }) => (format!("{source}: the org's"), String::new()),
    })
}

#[derive(Template)]
#[template(path = "coworker.html")]
struct ProfilePage {
    page: PageContext,
    handle: String,
    name: String,
    role: String,
    manager: String,
    timezone: String,
    working_hours: String,
    model: String,
    plan_review: bool,
    tools: Vec<ToolRow>,
    grants: Vec<String>,
    rules: Vec<(String, &'static str)>,
    rules_overridden: bool,
    task_budget: String,
    spend: Spend,
    limits: Vec<(&'static str, String)>,
    in_flight: i64,
    recent: Vec<TaskRow>,
    form: NewTaskForm,
    /// The chat box's own idempotency key (a conversation started twice is one task).
    chat_key: String,
}

fn model_text(model: &Option<ModelPolicy>) -> String {
    match model {
        None => "the node's default models".to_owned(),
        Some(ModelPolicy::Single(model)) => model.clone(),
        Some(ModelPolicy::PerPurpose(table)) => table
            .iter()
            .map(|(purpose, model)| format!("{purpose}: {model}"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

async fn profile_page(
    State(state): State<AppState>,
    user: WebUser,
    Path(handle): Path<String>,
) -> Result<Response, WebError> {
    let handle = handle.trim_start_matches('@');
    let coworker = state
        .store
        .coworker_by_handle(handle)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no coworker @{handle}")))?;
    let def = coworker_def(&coworker);
    let tiers = &state.engine.settings().tiers;
    let names: std::collections::HashMap<coworker_core::UserId, String> = state
        .store
        .list_users()
        .await?
        .into_iter()
        .map(|u| (u.id, u.display_name))
        .collect();
    let mut tools = Vec::new();
    for spec in crate::policy::tools_offered(&state, &def, &user.principal) {
        let decision = policy::decide(&spec.name, spec.risk, tiers, &def.policy);
        let (connection, connect_url) = tool_connection(&state, &user.principal, &names, &spec.name).await?;
        tools.push(ToolRow {
            description: spec.description,
            risk: spec.risk.as_str(),
            tier: decision.tier.as_str(),
            rule: decision.rule,
            name: spec.name,
            connection,
            connect_url,
        });
    }
    let people = managers(&state).await?;
    let pair = [(coworker.clone(), def.clone())];
    let spend = spend(&state, &pair).await?.remove(&coworker.id).unwrap_or_default();
    let in_flight = state
        .store
        .unfinished_tasks_by_coworker()
        .await?
        .into_iter()
        .find(|(id, _)| *id == coworker.id)
        .map_or(0, |(_, n)| n);
    let handles = HashMap::from([(coworker.id, coworker.handle.clone())]);
    let recent = state
        .store
        .list_tasks_page(&TaskFilter {
            coworker_id: Some(coworker.id),
            limit: RECENT_TASKS,
            ..TaskFilter::default()
        })
        .await?
        .iter()
        .map(|t| TaskRow::new(t, &handles))
        .collect();
    let limits = vec![
        ("Model calls per task", def.limits.max_model_calls.to_string()),
        (
            "Tokens per task",
            if def.limits.max_task_tokens == 0 {
                "no limit".to_owned()
            } else {
                super::tasks::count(def.limits.max_task_tokens as i64)
            },
        ),
        (
            "Same failing call before asking a person",
            format!("{} times", def.limits.max_same_tool_failures),
        ),
        ("Tool call time limit", format!("{} s", def.limits.tool_timeout_secs)),
        (
            "Approval waits before escalating",
            format!("{} min", def.limits.approval_ttl_secs / 60),
        ),
    ];
    let view = ProfilePage {
        page: user.page(&state, &format!("@{}", coworker.handle), "coworkers").await?,
        handle: coworker.handle.clone(),
        name: coworker.name.clone(),
        role: coworker.job_description.clone(),
        manager: coworker
            .manager_user_id
            .and_then(|m| people.get(&m).cloned())
            .unwrap_or_default(),
        timezone: def.timezone.clone(),
        working_hours: def.working_hours.clone(),
        model: model_text(&def.model),
        plan_review: def.plan_review,
        tools,
        grants: def.tools.clone(),
        rules: def
            .policy
            .iter()
            .map(|(glob, tier)| (glob.clone(), tier.as_str()))
            .collect(),
        rules_overridden: coworker.policy_overrides.is_some(),
        task_budget: def.budget.task_micros().map(dollars).unwrap_or_default(),
        spend,
        limits,
        in_flight,
        recent,
        form: NewTaskForm {
            form_id: "delegate",
            ..NewTaskForm::load(&state, &coworker.handle).await?
        },
        chat_key: crate::auth::generate_token().map_err(|_| ApiError::internal("generating a form key"))?,
    };
    render(&view)
}
