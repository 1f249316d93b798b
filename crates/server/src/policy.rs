//! The policy gate seen from the API: which tools a coworker may use for the caller and at
//! what tier (`policy explain`), and changes to a coworker's rules — loosening only by an
//! admin or the coworker's manager.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Json;
use coworker_core::coworker::CoworkerDef;
use coworker_core::domain::{RiskClass, Role, Tier};
use coworker_core::policy;
use coworker_engine::tools::{Delegator, ToolSpec, engine_tool_specs};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use coworker_store::{AuditEntry, actions};

use crate::api::{ApiJson, ApiQuery, AppState};
use crate::auth::Principal;
use crate::error::ApiError;

async fn load(state: &AppState, handle: &str) -> Result<(coworker_store::Coworker, CoworkerDef), ApiError> {
    let coworker = state
        .store
        .coworker_by_handle(handle)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no coworker @{handle}")))?;
    let def = coworker_engine::runner::coworker_def(&coworker);
    Ok((coworker, def))
}

/// The delegator `principal` is when they delegate a task.
pub fn delegator(principal: &Principal) -> Delegator {
    Delegator {
        user_id: principal.user.id,
        role: principal.user.role,
    }
}

/// A tool a coworker would use, with the tier its calls get.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolRow {
    /// Namespaced name (`workspace.write_file`).
    pub name: String,
    /// What it does.
    pub description: String,
    /// What a call can do to the world.
    pub risk: RiskClass,
    /// Whether repeating a call is harmless.
    pub idempotent: bool,
    /// What the gate does with a call.
    pub tier: Tier,
    /// Which rule chose the tier, in words.
    pub rule: String,
}

fn tool_row(state: &AppState, def: &CoworkerDef, spec: &ToolSpec) -> ToolRow {
    let decision = policy::decide(&spec.name, spec.risk, &state.engine.settings().tiers, &def.policy);
    ToolRow {
        name: spec.name.clone(),
        description: spec.description.clone(),
        risk: spec.risk,
        idempotent: spec.idempotent,
        tier: decision.tier,
        rule: decision.rule,
    }
}

/// Response of `GET /api/v1/coworkers/{handle}/tools`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CoworkerTools {
    /// The coworker's handle.
    pub coworker: String,
    /// Its tools for tasks the caller delegates.
    pub tools: Vec<ToolRow>,
}

/// The tools `def` would be offered on a task `principal` delegates: the engine's own, then
/// every registered tool the principal may reach and the coworker is granted. (The web
/// app's coworker profile shows the same list.)
pub fn tools_offered(state: &AppState, def: &CoworkerDef, principal: &Principal) -> Vec<ToolSpec> {
    let delegator = delegator(principal);
    let mut specs = engine_tool_specs();
    specs.extend(
        state
            .engine
            .tools()
            .specs_for(Some(&delegator))
            .into_iter()
            .filter(|s| def.grants(&s.name)),
    );
    specs
}

/// The tools this coworker would use on a task the caller delegates, each with its risk
/// class and tier.
#[utoipa::path(
    get, path = "/coworkers/{handle}/tools", tag = "coworkers",
    params(("handle" = String, Path, description = "The coworker's handle")),
    responses((status = 200, body = CoworkerTools)),
)]
pub async fn coworker_tools(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(handle): Path<String>,
) -> Result<Json<CoworkerTools>, ApiError> {
    let (_, def) = load(&state, &handle).await?;
    let specs = tools_offered(&state, &def, &principal);
    let tools = specs.iter().map(|s| tool_row(&state, &def, s)).collect();
    Ok(Json(CoworkerTools {
        coworker: def.handle,
        tools,
    }))
}

/// Query of `GET /api/v1/coworkers/{handle}/policy/explain`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExplainQuery {
    /// The namespaced tool name.
    pub tool: String,
    /// Risk class to assume for a tool this node does not know.
    #[serde(default)]
    pub risk: Option<String>,
}

/// Why a call gets its tier.
#[derive(Debug, Serialize, ToSchema)]
pub struct Explanation {
    /// The coworker's handle.
    pub coworker: String,
    /// The tool.
    pub tool: String,
    /// Its risk class (known, or assumed from `risk`).
    pub risk: RiskClass,
    /// Whether this node has the tool.
    pub known: bool,
    /// The tier a call would get.
    pub tier: Tier,
    /// Which rule chose it.
    pub rule: String,
    /// Whether the coworker's definition grants the tool.
    pub granted: bool,
    /// Whether tasks the caller delegates could use it.
    pub usable_by_you: bool,
    /// The reasoning, one line each.
    pub explanation: Vec<String>,
    /// The provenance rule for this tool (issue 19), in words: whether a value that only
    /// untrusted content introduced raises its calls to `approve`.
    pub provenance: String,
}

/// The tier a call would get and why, and whether the coworker may use the tool at all for
/// the caller.
#[utoipa::path(
    get, path = "/coworkers/{handle}/policy/explain", tag = "coworkers",
    params(("handle" = String, Path, description = "The coworker's handle"), ExplainQuery),
    responses((status = 200, body = Explanation)),
)]
pub async fn explain(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(handle): Path<String>,
    ApiQuery(query): ApiQuery<ExplainQuery>,
) -> Result<Json<Explanation>, ApiError> {
    let (_, def) = load(&state, &handle).await?;
    let tool_name = query.tool.trim();
    let registry = state.engine.tools();
    let engine_spec = engine_tool_specs().into_iter().find(|s| s.name == tool_name);
    let known = engine_spec
        .clone()
        .or_else(|| registry.get(tool_name).map(|t| t.spec().clone()));
    let risk = match (&known, query.risk.as_deref()) {
        (_, Some(risk)) => risk.parse::<RiskClass>().map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                e.to_string(),
                "use read, write, external or destructive",
            )
        })?,
        (Some(spec), None) => spec.risk,
        (None, None) => {
            let names: Vec<String> = registry.specs().into_iter().map(|s| s.name).collect();
            let hint = match coworker_core::text::closest(tool_name, names.iter().map(String::as_str)) {
                Some(close) => format!("did you mean {close}? Or pass --risk to explain a tool this node lacks"),
                None => "list the tools with `coworker coworkers tools HANDLE`, or pass --risk".to_owned(),
            };
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_tool",
                format!("this node has no tool named {tool_name}"),
                hint,
            ));
        }
    };
    let decision = policy::decide(tool_name, risk, &state.engine.settings().tiers, &def.policy);
    let granted = def.grants(tool_name);
    let delegator = delegator(&principal);
    let reachable = engine_spec.is_some() || registry.resolve(tool_name, Some(&delegator)).is_some();
    let mut reasons = vec![
        format!("{tool_name} is a {risk} tool"),
        format!("tier {}: {}", decision.tier, decision.rule),
    ];
    // Provenance (issue 19): open-world reads and every write are checked.
    let open_world = match registry.get(tool_name) {
        Some(tool) if engine_spec.is_none() => coworker_engine::provenance::is_open_world(tool.as_ref()),
        _ => engine_spec.is_none() && risk != RiskClass::Read,
    };
    let mode = state.engine.settings().provenance;
    let provenance = coworker_core::provenance::explain(mode, open_world, &def.provenance);
    if open_world && mode != coworker_core::domain::ProvenanceMode::Off {
        reasons.push(provenance.clone());
    }
    if !granted {
        reasons.push(format!(
            "@{} is not granted it (tools = {:?} in its definition)",
            def.handle, def.tools
        ));
    }
    if known.is_some() && !reachable {
        reasons.push(format!(
            "you ({}) have no access to the connection it comes from, so tasks you delegate cannot use it",
            principal.user.role
        ));
    }
    Ok(Json(Explanation {
        coworker: def.handle,
        tool: tool_name.to_owned(),
        risk,
        known: known.is_some(),
        tier: decision.tier,
        rule: decision.rule,
        granted,
        usable_by_you: granted && (known.is_none() || reachable),
        explanation: reasons,
        provenance,
    }))
}

/// Body of `PUT /api/v1/coworkers/{handle}/policy`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyChange {
    /// The coworker's rules: tool glob → tier. Replaces the current rules; `null` returns to
    /// those of its definition file.
    pub rules: Option<BTreeMap<String, Tier>>,
}

/// A coworker's rules after a change.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyResponse {
    /// The coworker's handle.
    pub coworker: String,
    /// Its rules now: tool glob → tier.
    pub rules: BTreeMap<String, Tier>,
    /// The rules the change loosened, in words.
    pub loosened: Vec<String>,
}

/// Replaces a coworker's rules. A change that loosens any rule needs an admin or the
/// coworker's manager (`loosening_not_allowed`).
#[utoipa::path(
    put, path = "/coworkers/{handle}/policy", tag = "coworkers", request_body = PolicyChange,
    params(("handle" = String, Path, description = "The coworker's handle")),
    responses((status = 200, body = PolicyResponse)),
)]
pub async fn set_policy(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(handle): Path<String>,
    ApiJson(change): ApiJson<PolicyChange>,
) -> Result<Json<PolicyResponse>, ApiError> {
    principal.require(Role::Member)?;
    let (coworker, current) = load(&state, &handle).await?;
    let new_rules = match &change.rules {
        Some(rules) => rules.clone(),
        None => {
            coworker_engine::runner::coworker_def(&coworker_store::Coworker {
                policy_overrides: None,
                ..coworker.clone()
            })
            .policy
        }
    };
    for glob in new_rules.keys() {
        if glob.trim().is_empty() || glob.chars().any(char::is_whitespace) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("{glob:?} is not a tool glob"),
                "use a namespaced tool name or glob such as \"github.*\" or \"mail.send\"",
            ));
        }
    }
    let loosened = policy::loosened_rules(&current.policy, &new_rules, &state.engine.settings().tiers);
    let is_manager = coworker.manager_user_id == Some(principal.user.id);
    if !loosened.is_empty() && !principal.user.role.at_least(Role::Admin) && !is_manager {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "loosening_not_allowed",
            format!("this change loosens @{handle}'s policy: {}", loosened.join("; ")),
            "only an admin or the coworker's manager may loosen a rule; tightening is open to members",
        ));
    }
    let stored = change
        .rules
        .as_ref()
        .map(|rules| serde_json::to_value(rules).unwrap_or_default());
    state.store.set_coworker_policy(coworker.id, stored.as_ref()).await?;
    state
        .store
        .audit_append(
            AuditEntry::new(principal.actor(), actions::POLICY_CHANGED, format!("coworker:{handle}")).with_details(
                json!({"before": current.policy, "after": new_rules, "loosened": loosened, "reset": change.rules.is_none()}),
            ),
        )
        .await?;
    tracing::info!(coworker = %handle, user = %principal.user.id, loosened = loosened.len(), "coworker policy changed");
    Ok(Json(PolicyResponse {
        coworker: handle,
        rules: new_rules,
        loosened,
    }))
}
