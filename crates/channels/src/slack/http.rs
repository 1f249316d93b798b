//! The Events API over HTTP, on the node's own listen address: `/slack/events`,
//! `/slack/interactivity` and `/slack/commands`. Every request's signature and timestamp are
//! verified first (401 otherwise, nothing recorded); events are recorded durably and answered
//! 200 at once, the work queued for the processor, well within Slack's 3 seconds.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use coworker_core::ApprovalId;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::Slack;
use super::blocks::ACTION_PREFIX;
use super::signature;

/// `callback_id` of the modal that takes a rejection note.
pub const REJECT_MODAL: &str = "coworker_reject";

/// The `/slack/*` routes.
pub fn router(slack: Slack) -> Router {
    Router::new()
        .route("/slack/events", post(events))
        .route("/slack/interactivity", post(interactivity))
        .route("/slack/commands", post(commands))
        .with_state(slack)
}

fn unauthorized(error: &str) -> Response {
    (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": {"code": "bad_signature", "message": error, "hint": "check slack.signing_secret and the server clock"}}))).into_response()
}

fn verify(slack: &Slack, headers: &HeaderMap, body: &[u8]) -> Result<(), Box<Response>> {
    let Some(secret) = &slack.inner.signing_secret else {
        return Err(Box::new(unauthorized(
            "this node has no slack.signing_secret, so it cannot verify Slack requests",
        )));
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    signature::verify(
        secret.expose_secret().as_bytes(),
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        body,
        jiff::Timestamp::now().as_second(),
    )
    .map_err(|e| {
        tracing::warn!(error = %e, "refused a Slack request");
        Box::new(unauthorized(&e.to_string()))
    })
}

async fn events(State(slack): State<Slack>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refused) = verify(&slack, &headers, &body) {
        return *refused;
    }
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "the body is not JSON").into_response();
    };
    if payload["type"] == "url_verification" {
        return axum::Json(json!({"challenge": payload["challenge"]})).into_response();
    }
    match slack.ingest(&payload).await {
        Ok(_) => StatusCode::OK.into_response(),
        // Not recorded: a 5xx makes Slack retry later, which loses nothing.
        Err(error) => {
            tracing::warn!(%error, "cannot record a Slack event");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn interactivity(State(slack): State<Slack>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refused) = verify(&slack, &headers, &body) {
        return *refused;
    }
    let Some(payload) = form_field(&body, "payload").and_then(|p| serde_json::from_str::<Value>(&p).ok()) else {
        return (StatusCode::BAD_REQUEST, "no payload field").into_response();
    };
    match slack.interact(&payload).await {
        Some(reply) => axum::Json(reply).into_response(),
        None => StatusCode::OK.into_response(),
    }
}

async fn commands(State(slack): State<Slack>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refused) = verify(&slack, &headers, &body) {
        return *refused;
    }
    let fields: serde_json::Map<String, Value> = form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    axum::Json(slack.command(&Value::Object(fields)).await).into_response()
}

impl Slack {
    /// Handles an interactivity payload (button clicks, the rejection modal). Returns a body
    /// for Slack when one is needed (modal validation errors).
    pub async fn interact(&self, payload: &Value) -> Option<Value> {
        match payload["type"].as_str() {
            Some("block_actions") => {
                for action in payload["actions"].as_array().into_iter().flatten() {
                    let id = action["action_id"].as_str().unwrap_or_default();
                    let Some(what) = id.strip_prefix(ACTION_PREFIX) else {
                        continue;
                    };
                    let Some(approval) = action["value"].as_str().and_then(|v| v.parse::<ApprovalId>().ok()) else {
                        continue;
                    };
                    if let Err(error) = self.on_button(payload, what, approval).await {
                        tracing::warn!(%error, "Slack button not handled");
                    }
                }
                None
            }
            Some("view_submission") if payload["view"]["callback_id"] == REJECT_MODAL => {
                match self.on_reject_note(payload).await {
                    Ok(None) => None,
                    Ok(Some(problem)) => Some(json!({"response_action": "errors", "errors": {"note": problem}})),
                    Err(error) => {
                        tracing::warn!(%error, "Slack modal not handled");
                        Some(
                            json!({"response_action": "errors", "errors": {"note": "Something went wrong; try again."}}),
                        )
                    }
                }
            }
            _ => None,
        }
    }

    async fn on_button(
        &self,
        payload: &Value,
        what: &str,
        approval: ApprovalId,
    ) -> Result<(), super::outbound::DeliveryError> {
        let slack_user = payload["user"]["id"].as_str().unwrap_or_default();
        let channel = payload["channel"]["id"]
            .as_str()
            .or_else(|| payload["container"]["channel_id"].as_str())
            .unwrap_or_default();
        let thread = payload["message"]["thread_ts"].as_str();
        let Some(user) = self.account_of(slack_user).await? else {
            let team = payload["team"]["id"]
                .as_str()
                .or_else(|| payload["user"]["team_id"].as_str())
                .unwrap_or_default();
            return self.tell_unlinked(team, channel, slack_user, thread).await;
        };
        match what {
            "approve" => match self.inner.work.decide(&user, approval, "approve", None).await {
                Ok(decided) => self.refresh_approval(&decided).await,
                Err(refusal) => self.ephemeral(channel, slack_user, thread, &refusal.message).await,
            },
            "reject" => {
                let metadata = json!({"approval": approval.to_string(), "channel": channel, "thread": thread, "slack_user": slack_user});
                let view = json!({
                    "type": "modal",
                    "callback_id": REJECT_MODAL,
                    "private_metadata": metadata.to_string(),
                    "title": {"type": "plain_text", "text": "Reject"},
                    "submit": {"type": "plain_text", "text": "Reject"},
                    "close": {"type": "plain_text", "text": "Cancel"},
                    "blocks": [{
                        "type": "input",
                        "block_id": "note",
                        "optional": true,
                        "label": {"type": "plain_text", "text": "Why? (the coworker reads this)"},
                        "element": {"type": "plain_text_input", "action_id": "note", "multiline": true},
                    }],
                });
                let trigger = payload["trigger_id"].as_str().unwrap_or_default();
                match self
                    .inner
                    .client
                    .call("views.open", &json!({"trigger_id": trigger, "view": view}))
                    .await
                {
                    Ok(_) => Ok(()),
                    // No modal (an expired trigger): reject without a note rather than not at all.
                    Err(coworker_core::channel::ChannelError::Refused { error, .. }) => {
                        tracing::info!(%error, "views.open refused; rejecting without a note");
                        match self.inner.work.decide(&user, approval, "reject", None).await {
                            Ok(decided) => self.refresh_approval(&decided).await,
                            Err(refusal) => self.ephemeral(channel, slack_user, thread, &refusal.message).await,
                        }
                    }
                    Err(e) => Err(e.into()),
                }
            }
            _ => Ok(()),
        }
    }

    /// The rejection modal was submitted. `Ok(Some(problem))` is shown in the modal.
    async fn on_reject_note(&self, payload: &Value) -> Result<Option<String>, super::outbound::DeliveryError> {
        let metadata: Value = payload["view"]["private_metadata"]
            .as_str()
            .and_then(|m| serde_json::from_str(m).ok())
            .unwrap_or(Value::Null);
        let Some(approval) = metadata["approval"].as_str().and_then(|a| a.parse::<ApprovalId>().ok()) else {
            return Ok(Some("This form no longer matches an approval.".into()));
        };
        let slack_user = payload["user"]["id"].as_str().unwrap_or_default();
        let Some(user) = self.account_of(slack_user).await? else {
            return Ok(Some("Your Slack account isn't linked to a Coworker account.".into()));
        };
        let note = payload["view"]["state"]["values"]["note"]["note"]["value"].as_str();
        match self.inner.work.decide(&user, approval, "reject", note).await {
            Ok(decided) => {
                self.refresh_approval(&decided).await?;
                Ok(None)
            }
            Err(refusal) => Ok(Some(refusal.message)),
        }
    }
}
