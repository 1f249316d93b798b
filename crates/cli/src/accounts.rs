//! `coworker tokens …` and `coworker users …`: API tokens and accounts from the terminal, as a
//! client of the node's API (permissions, audit and last-owner protection live there).

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::Client;
use crate::work::print_json;

/// Pages a listing is followed for at most (200 rows each), so a broken cursor cannot loop.
const MAX_LIST_PAGES: usize = 500;

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Create an API token for yourself; its secret is printed once
    Create {
        /// A label to recognise it by, e.g. ci
        #[arg(long)]
        name: String,
        /// The most it may do: owner | admin | member | viewer (at most your role; default yours)
        #[arg(long)]
        role: Option<String>,
        /// Days until it stops working (default: never)
        #[arg(long, value_name = "N")]
        expires_in_days: Option<u32>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List your API tokens (never their secrets)
    List {
        /// Everyone's tokens (admins)
        #[arg(long)]
        all: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API token: it stops working at once
    Revoke {
        /// Token id (from `coworker tokens list`)
        id: String,
    },
}

#[derive(Subcommand)]
pub enum UsersCommand {
    /// List accounts (admins)
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Create an invitation link (admins); the link is printed once
    Invite {
        /// Who it is for (informational: whoever holds the link may use it)
        #[arg(long)]
        email: Option<String>,
        /// admin | member | viewer
        #[arg(long, default_value = "member")]
        role: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Change someone's role (admins; owners for anything touching an owner)
    SetRole {
        /// User id (from `coworker users list`)
        id: String,
        /// owner | admin | member | viewer
        role: String,
    },
    /// Disable an account: sign-in, sessions and tokens stop working at once
    Disable {
        /// User id
        id: String,
    },
    /// Enable a disabled account again
    Enable {
        /// User id
        id: String,
    },
    /// Link an account to a Slack user, so their Slack messages act as the account (admins)
    Link {
        /// User id or email
        #[arg(value_name = "USER_ID_OR_EMAIL")]
        id: String,
        /// Slack user id (profile → ⋮ → Copy member ID), e.g. U0123ABCD
        #[arg(long, value_name = "SLACK_USER_ID")]
        slack: String,
    },
}

/// Every item of a paginated listing at `path`, following `next_cursor`.
async fn all_pages(client: &Client, path: &str, key: &str) -> anyhow::Result<Vec<Value>> {
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_LIST_PAGES {
        let page_path = match &cursor {
            Some(c) => format!("{path}{separator}limit=200&cursor={c}"),
            None => format!("{path}{separator}limit=200"),
        };
        let page = client.get(&page_path).await?;
        items.extend(page[key].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(items),
        }
    }
    anyhow::bail!("the listing at {path} did not end after {MAX_LIST_PAGES} pages")
}

fn when(ms: &Value) -> String {
    ms.as_i64()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(|| "-".to_owned(), |t| t.strftime("%Y-%m-%d %H:%M").to_string())
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("-")
}

/// Runs a `coworker tokens` command.
pub async fn tokens(client: &Client, command: TokensCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokensCommand::Create {
            name,
            role,
            expires_in_days,
            json,
        } => {
            let created = client
                .post(
                    "/tokens",
                    &json!({"name": name, "role": role, "expires_in_days": expires_in_days}),
                )
                .await?;
            if json {
                print_json(&created);
            } else {
                let token = &created["token"];
                println!(
                    "Created token {} ({}, role {}, expires {}).",
                    text(&token["name"]),
                    text(&token["id"]),
                    token["role"].as_str().unwrap_or("yours"),
                    if token["expires_at_ms"].is_null() {
                        "never".to_owned()
                    } else {
                        when(&token["expires_at_ms"])
                    }
                );
                println!("Secret (shown only now; send it as `Authorization: Bearer …` or COWORKER_TOKEN):");
                println!("{}", text(&created["secret"]));
            }
        }
        TokensCommand::List { all, json } => {
            let path = if all { "/tokens?all=true" } else { "/tokens" };
            let tokens = all_pages(client, path, "tokens").await?;
            if json {
                print_json(&json!({"tokens": tokens}));
                return Ok(ExitCode::SUCCESS);
            }
            if tokens.is_empty() {
                println!("No API tokens yet. Create one: coworker tokens create --name ci --role member");
            }
            for token in &tokens {
                let state = if !token["revoked_at_ms"].is_null() {
                    "revoked".to_owned()
                } else if !token["expires_at_ms"].is_null() {
                    format!("expires {}", when(&token["expires_at_ms"]))
                } else {
                    "active".to_owned()
                };
                println!(
                    "{}  {:<20}  {:<7}  last used {:<16}  {state}",
                    text(&token["id"]),
                    text(&token["name"]),
                    token["role"].as_str().unwrap_or("(user)"),
                    when(&token["last_used_at_ms"]),
                );
            }
        }
        TokensCommand::Revoke { id } => {
            client.delete(&format!("/tokens/{id}")).await?;
            println!("Token {id} revoked; it no longer works.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a `coworker users` command.
pub async fn users(client: &Client, command: UsersCommand) -> anyhow::Result<ExitCode> {
    match command {
        UsersCommand::List { json } => {
            let users = all_pages(client, "/users", "users").await?;
            if json {
                print_json(&json!({"users": users}));
                return Ok(ExitCode::SUCCESS);
            }
            for user in &users {
                println!(
                    "{}  {:<7}  {:<30}  {}{}",
                    text(&user["id"]),
                    text(&user["role"]),
                    user["email"].as_str().unwrap_or("(no email)"),
                    text(&user["display_name"]),
                    if user["disabled"].as_bool() == Some(true) {
                        "  [disabled]"
                    } else {
                        ""
                    }
                );
            }
        }
        UsersCommand::Invite { email, role, json } => {
            let created = client
                .post("/invitations", &json!({"email": email, "role": role}))
                .await?;
            if json {
                print_json(&created);
            } else {
                let invitation = &created["invitation"];
                println!(
                    "Invitation for {} as {} (valid until {}). Send this link; it works once and is not shown again:",
                    invitation["email"].as_str().unwrap_or("anyone with the link"),
                    text(&invitation["role"]),
                    when(&invitation["expires_at_ms"])
                );
                println!("{}", text(&created["link"]));
            }
        }
        UsersCommand::SetRole { id, role } => {
            let updated = client.patch(&format!("/users/{id}"), &json!({"role": role})).await?;
            println!(
                "{} is now {}.",
                text(&updated["user"]["display_name"]),
                text(&updated["user"]["role"])
            );
        }
        UsersCommand::Disable { id } => {
            let updated = client
                .patch(&format!("/users/{id}"), &json!({"disabled": true}))
                .await?;
            println!(
                "{} is disabled: sign-in, sessions and tokens stop working.",
                text(&updated["user"]["display_name"])
            );
        }
        UsersCommand::Enable { id } => {
            let updated = client
                .patch(&format!("/users/{id}"), &json!({"disabled": false}))
                .await?;
            println!("{} is enabled again.", text(&updated["user"]["display_name"]));
        }
        UsersCommand::Link { id, slack } => {
            let path = format!("/users/{}/slack", id.trim());
            let updated = client.put(&path, &json!({"slack_user_id": slack})).await?;
            println!(
                "{} is linked to Slack user {slack}: their messages to a coworker now act as this account.",
                text(&updated["user"]["display_name"])
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
