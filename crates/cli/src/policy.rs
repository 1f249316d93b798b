//! `coworker policy explain|tools|set|reset`: the policy gate seen from the terminal, as a
//! client of the node's API (the node knows every tool's risk class, MCP ones included).

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::Client;
use crate::work::print_json;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Print the tier a call to TOOL by coworker HANDLE gets, and the rule that decides it
    Explain {
        /// Coworker handle
        handle: String,
        /// Namespaced tool name, e.g. workspace.write_file
        tool: String,
        /// Risk class to assume for a tool this node does not have (read|write|external|destructive)
        #[arg(long)]
        risk: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List the tools a coworker would use on a task you delegate, with risk and tier
    Tools {
        /// Coworker handle
        handle: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Replace a coworker's rules (loosening needs an admin or the coworker's manager)
    Set {
        /// Coworker handle
        handle: String,
        /// Rules as GLOB=TIER, e.g. 'github.*=notify' 'mail.send=approve'
        #[arg(required = true, value_name = "GLOB=TIER")]
        rules: Vec<String>,
    },
    /// Return a coworker to the rules of its definition file
    Reset {
        /// Coworker handle
        handle: String,
    },
}

/// Runs one `policy` subcommand.
pub async fn run(client: &Client, command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Explain {
            handle,
            tool,
            risk,
            json,
        } => {
            let mut path = format!(
                "/coworkers/{}/policy/explain?tool={}",
                handle.trim_start_matches('@'),
                urlencode(&tool)
            );
            if let Some(risk) = risk {
                path.push_str(&format!("&risk={}", urlencode(&risk)));
            }
            let answer = client.get(&path).await?;
            if json {
                print_json(&answer);
            } else {
                println!(
                    "@{} → {}: {}",
                    answer["coworker"].as_str().unwrap_or_default(),
                    answer["tool"].as_str().unwrap_or_default(),
                    answer["tier"].as_str().unwrap_or_default()
                );
                for line in answer["explanation"].as_array().into_iter().flatten() {
                    println!("  - {}", line.as_str().unwrap_or_default());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Tools { handle, json } => {
            let answer = client
                .get(&format!("/coworkers/{}/tools", handle.trim_start_matches('@')))
                .await?;
            if json {
                print_json(&answer);
                return Ok(ExitCode::SUCCESS);
            }
            let tools = answer["tools"].as_array().cloned().unwrap_or_default();
            let width = tools
                .iter()
                .map(|t| t["name"].as_str().unwrap_or_default().len())
                .max()
                .unwrap_or(4);
            println!("{:<width$}  {:<11}  {:<7}  RULE", "TOOL", "RISK", "TIER");
            for tool in &tools {
                println!(
                    "{:<width$}  {:<11}  {:<7}  {}",
                    tool["name"].as_str().unwrap_or_default(),
                    tool["risk"].as_str().unwrap_or_default(),
                    tool["tier"].as_str().unwrap_or_default(),
                    tool["rule"].as_str().unwrap_or_default(),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Set { handle, rules } => {
            let mut parsed = BTreeMap::new();
            for rule in &rules {
                let (glob, tier) = rule
                    .split_once('=')
                    .with_context(|| format!("{rule:?} is not GLOB=TIER (e.g. 'github.*=notify')"))?;
                if glob.trim().is_empty() {
                    bail!("{rule:?} has no tool glob before '='");
                }
                parsed.insert(glob.trim().to_owned(), Value::String(tier.trim().to_owned()));
            }
            let answer = client
                .put(
                    &format!("/coworkers/{}/policy", handle.trim_start_matches('@')),
                    &json!({"rules": parsed}),
                )
                .await?;
            println!("@{} rules: {}", handle.trim_start_matches('@'), answer["rules"]);
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Reset { handle } => {
            let answer = client
                .put(
                    &format!("/coworkers/{}/policy", handle.trim_start_matches('@')),
                    &json!({"rules": null}),
                )
                .await?;
            println!(
                "@{} is back to its definition's rules: {}",
                handle.trim_start_matches('@'),
                answer["rules"]
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Percent-encodes a query value (tool names are mostly safe; globs and spaces are not).
pub(crate) fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
