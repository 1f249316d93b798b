//! `coworker slack …`: the app manifest to create the Slack app from, and a check of the
//! configured tokens, scopes and connection.

use std::process::ExitCode;

use clap::Subcommand;
use coworker_core::config::Config;
use coworker_core::doctor::CheckStatus;

/// `coworker slack` subcommands.
#[derive(Subcommand)]
pub enum SlackCommand {
    /// Print a Slack app manifest (JSON): paste it at api.slack.com/apps → Create New App → From a manifest
    Manifest {
        /// The app's name in Slack
        #[arg(long, default_value = "Coworker")]
        name: String,
    },
    /// Check slack.bot_token, its scopes and the Socket Mode / Events API set-up; exit 1 on a failure
    Test {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `coworker slack` command.
pub async fn run(config: Config, command: SlackCommand) -> anyhow::Result<ExitCode> {
    match command {
        SlackCommand::Manifest { name } => {
            let manifest = coworker_channels::slack::setup::manifest(&name, config.slack.mode, &config.public_url());
            println!("{}", serde_json::to_string_pretty(&manifest)?);
            Ok(ExitCode::SUCCESS)
        }
        SlackCommand::Test { json } => {
            let checks = coworker_server::doctor::slack_checks(&config).await;
            let failed = checks.iter().any(|c| c.status == CheckStatus::Fail);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({"ok": !failed, "checks": checks}))?
                );
            } else {
                for check in &checks {
                    let status = match check.status {
                        CheckStatus::Ok => "ok  ",
                        CheckStatus::Warn => "warn",
                        CheckStatus::Fail => "FAIL",
                    };
                    println!("{status}  {:<18}  {}", check.name, check.detail);
                    if !check.fix.is_empty() {
                        println!("      {:<18}  fix: {}", "", check.fix);
                    }
                }
            }
            Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
    }
}
