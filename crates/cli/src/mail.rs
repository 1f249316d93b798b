//! `coworker email test NAME` and `coworker calendar test NAME` (issue 16): log in to a
//! mailbox's IMAP and SMTP servers, or fetch and read a calendar, and say what was found.

use std::process::ExitCode;

use clap::Subcommand;
use coworker_core::config::Config;
use coworker_core::doctor::CheckStatus;

/// `coworker email` / `coworker calendar` subcommands.
#[derive(Subcommand)]
pub enum MailCommand {
    /// Check one section (or all): log in (email) or fetch and read (calendar); exit 1 on a failure
    Test {
        /// The section's name (default: every one)
        name: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

/// Runs `coworker email …` (`email = true`) or `coworker calendar …`.
pub async fn run(config: Config, email: bool, command: MailCommand) -> anyhow::Result<ExitCode> {
    let MailCommand::Test { name, json } = command;
    let checks = coworker_server::doctor::mail_checks(&config, email, name.as_deref()).await;
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
            println!("{status}  {:<24}  {}", check.name, check.detail);
            if !check.fix.is_empty() {
                println!("      {:<24}  fix: {}", "", check.fix);
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
