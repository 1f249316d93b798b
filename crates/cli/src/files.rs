//! `coworker files list|show|download`: the shared workspace from the terminal, as a client of
//! the node's `/api/v1/files` routes. A file is named by its version id or by its path.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde_json::Value;

use crate::client::Client;
use crate::policy::urlencode;
use crate::work::print_json;

#[derive(Subcommand)]
pub enum FilesCommand {
    /// List the latest version of every file (optionally under a prefix)
    List {
        /// Only paths starting with this, e.g. reports/
        #[arg(long, value_name = "P")]
        prefix: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show a file (by version id or path) and its versions
    Show {
        /// A file version id, or a workspace path such as reports/q3.docx
        #[arg(value_name = "ID|PATH")]
        file: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Download a file's content (the latest version, or --version N) to stdout or -o FILE
    // `--version` here is the file's version, not the binary's.
    #[command(disable_version_flag = true)]
    Download {
        /// A file version id, or a workspace path such as reports/q3.docx
        #[arg(value_name = "ID|PATH")]
        file: String,
        /// Which version of the path (default: the one the id names, or the latest)
        #[arg(long, value_name = "N")]
        version: Option<i64>,
        /// Write to this file instead of stdout
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// The file's detail (`{file, versions}`), by id or by path.
async fn detail(client: &Client, file: &str) -> anyhow::Result<Value> {
    if file.parse::<coworker_core::FileId>().is_ok() {
        client.get(&format!("/files/{file}")).await
    } else {
        client.get(&format!("/files/by-path?path={}", urlencode(file))).await
    }
}

fn line(file: &Value) -> String {
    format!(
        "{}  v{}  {} bytes  {}  {}",
        file["path"].as_str().unwrap_or_default(),
        file["version"],
        file["size_bytes"],
        file["media_type"].as_str().unwrap_or_default(),
        file["id"].as_str().unwrap_or_default()
    )
}

/// Runs one `files` subcommand.
pub async fn run(client: &Client, command: FilesCommand) -> anyhow::Result<ExitCode> {
    match command {
        FilesCommand::List { prefix, json } => {
            let mut files = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut path = "/files?limit=200".to_owned();
                if let Some(prefix) = &prefix {
                    path.push_str(&format!("&prefix={}", urlencode(prefix)));
                }
                if let Some(cursor) = &cursor {
                    path.push_str(&format!("&cursor={}", urlencode(cursor)));
                }
                let page = client.get(&path).await?;
                files.extend(page["files"].as_array().cloned().unwrap_or_default());
                match page["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
            if json {
                print_json(&serde_json::json!({"files": files}));
            } else if files.is_empty() {
                println!(
                    "No files{}.",
                    prefix.map(|p| format!(" under {p:?}")).unwrap_or_default()
                );
            } else {
                for file in &files {
                    println!("{}", line(file));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        FilesCommand::Show { file, json } => {
            let detail = detail(client, &file).await?;
            if json {
                print_json(&detail);
                return Ok(ExitCode::SUCCESS);
            }
            let shown = &detail["file"];
            println!("{}", line(shown));
            println!("  written by {}", shown["created_by"].as_str().unwrap_or_default());
            if let Some(task) = shown["task_id"].as_str() {
                println!("  task {task}");
            }
            println!("versions:");
            for version in detail["versions"].as_array().into_iter().flatten() {
                println!("  {}", line(version));
            }
            Ok(ExitCode::SUCCESS)
        }
        FilesCommand::Download { file, version, output } => {
            let detail = detail(client, &file).await?;
            let id = detail["file"]["id"]
                .as_str()
                .context("the node returned a file without an id")?;
            let mut path = format!("/files/{id}/download");
            if let Some(version) = version {
                path.push_str(&format!("?version={version}"));
            }
            let bytes = client.get_bytes(&path).await?;
            match output {
                Some(target) => {
                    std::fs::write(&target, &bytes).with_context(|| format!("writing {}", target.display()))?;
                    eprintln!("wrote {} bytes to {}", bytes.len(), target.display());
                }
                None => {
                    let mut stdout = std::io::stdout().lock();
                    stdout.write_all(&bytes).context("writing to stdout")?;
                    stdout.flush().context("writing to stdout")?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
