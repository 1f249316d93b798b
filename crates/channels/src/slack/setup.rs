//! Setting Slack up: the app manifest (`coworker slack manifest`) and the checks behind
//! `coworker slack test` and `coworker doctor` (the bot token works and carries the scopes,
//! Socket Mode can open a connection, the Events API has its signing secret).

use coworker_core::config::SlackMode;
use coworker_core::doctor::Check;
use serde_json::{Value, json};

use super::client::SlackClient;

/// Bot scopes the app needs.
pub const BOT_SCOPES: &[&str] = &[
    "app_mentions:read",
    "chat:write",
    "channels:history",
    "groups:history",
    "im:history",
    "im:read",
    "im:write",
    "users:read",
    "users:read.email",
    "files:write",
];

/// Scopes the manifest asks for beyond [`BOT_SCOPES`]: `commands`, for the `/coworker` slash
/// command (everything else works without it, so `slack test` does not require it).
pub const COMMAND_SCOPES: &[&str] = &["commands"];

/// The slash command the manifest declares.
pub const SLASH_COMMAND: &str = "/coworker";

/// Bot events the app subscribes to.
pub const BOT_EVENTS: &[&str] = &["app_mention", "message.im", "message.channels"];

/// A ready-to-paste Slack app manifest (JSON). Socket Mode on unless `mode` is `events`, in
/// which case the request URLs point at `public_url`.
pub fn manifest(app_name: &str, mode: SlackMode, public_url: &str) -> Value {
    let public_url = public_url.trim_end_matches('/');
    let mut manifest = json!({
        "display_information": {
            "name": app_name,
            "description": "Your team's AI coworkers: mention them in a channel or DM them.",
        },
        "features": {
            "app_home": {"home_tab_enabled": false, "messages_tab_enabled": true, "messages_tab_read_only_enabled": false},
            "bot_user": {"display_name": app_name, "always_online": true},
            "slash_commands": [{
                "command": SLASH_COMMAND,
                "description": "Give a coworker a task, or see yours",
                "usage_hint": "[coworker,] what to do | status | help",
                "should_escape": false,
            }],
        },
        "oauth_config": {"scopes": {"bot": BOT_SCOPES.iter().chain(COMMAND_SCOPES).collect::<Vec<_>>()}},
        "settings": {
            "event_subscriptions": {"bot_events": BOT_EVENTS},
            "interactivity": {"is_enabled": true},
            "org_deploy_enabled": false,
            "socket_mode_enabled": mode == SlackMode::Socket,
            "token_rotation_enabled": false,
        },
    });
    if mode == SlackMode::Events {
        manifest["settings"]["event_subscriptions"]["request_url"] = json!(format!("{public_url}/slack/events"));
        manifest["settings"]["interactivity"]["request_url"] = json!(format!("{public_url}/slack/interactivity"));
        manifest["features"]["slash_commands"][0]["url"] = json!(format!("{public_url}/slack/commands"));
    }
    manifest
}

/// Checks the tokens, the scopes and the connection.
pub async fn checks(client: &SlackClient, mode: SlackMode, has_signing_secret: bool) -> Vec<Check> {
    let mut checks = Vec::new();
    match client.auth_test().await {
        Ok((who, scopes)) => {
            checks.push(Check::ok(
                "slack",
                format!(
                    "bot token works: {} in workspace {} ({})",
                    who["user"].as_str().unwrap_or("?"),
                    who["team"].as_str().unwrap_or("?"),
                    who["team_id"].as_str().unwrap_or("?")
                ),
            ));
            let missing: Vec<&str> = BOT_SCOPES
                .iter()
                .copied()
                .filter(|s| !scopes.iter().any(|have| have == s))
                .collect();
            if missing.is_empty() {
                checks.push(Check::ok("slack scopes", "the bot token has every scope Coworker uses"));
            } else {
                checks.push(Check::fail(
                    "slack scopes",
                    format!("the bot token lacks {}", missing.join(", ")),
                    "add them under OAuth & Permissions (or recreate the app from `coworker slack manifest`) and reinstall the app",
                ));
            }
        }
        Err(e) => checks.push(Check::fail(
            "slack",
            format!("auth.test failed: {e}"),
            "check slack.bot_token (xoxb-…) and slack.api_url",
        )),
    }
    match mode {
        SlackMode::Socket => match client.open_connection().await {
            Ok(_) => checks.push(Check::ok(
                "slack socket mode",
                "apps.connections.open returned a WebSocket URL",
            )),
            Err(e) => checks.push(Check::fail(
                "slack socket mode",
                e.to_string(),
                "check slack.app_token (xapp-…, with connections:write) and that Socket Mode is on for the app",
            )),
        },
        SlackMode::Events if !has_signing_secret => checks.push(Check::fail(
            "slack events api",
            "no signing secret",
            "set slack.signing_secret from the app's Basic Information page",
        )),
        SlackMode::Events => checks.push(Check::ok(
            "slack events api",
            "signing secret set; Slack must reach this node at /slack/events and /slack/interactivity",
        )),
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_turns_on_socket_mode_and_interactivity() {
        let m = manifest("Coworker", SlackMode::Socket, "http://localhost:8080");
        assert_eq!(m["settings"]["socket_mode_enabled"], true);
        assert_eq!(m["settings"]["interactivity"]["is_enabled"], true);
        let scopes = m["oauth_config"]["scopes"]["bot"].as_array().unwrap();
        // The ten scopes plus `commands` for the `/coworker` slash command.
        assert_eq!(scopes.len(), 11);
        assert!(scopes.contains(&json!("commands")));
        assert_eq!(
            m["settings"]["event_subscriptions"]["bot_events"],
            json!(["app_mention", "message.im", "message.channels"])
        );
        let m = manifest("Coworker", SlackMode::Events, "https://cw.example.com/");
        assert_eq!(
            m["settings"]["event_subscriptions"]["request_url"],
            "https://cw.example.com/slack/events"
        );
        assert_eq!(m["settings"]["socket_mode_enabled"], false);
    }
}
