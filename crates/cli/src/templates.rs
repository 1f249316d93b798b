//! `coworker templates add|list|show|remove`: document templates, as a client of the node's
//! `/api/v1/templates` routes. Rendering only; the node validates and stores.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use base64::Engine as _;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::Client;
use crate::policy::urlencode;
use crate::work::print_json;

#[derive(Subcommand)]
pub enum TemplatesCommand {
    /// Add a named template: a Markdown body with {{ placeholders }} and/or a DOCX/PPTX style file
    Add {
        /// Name, e.g. monday-brief
        name: String,
        /// Markdown file with minijinja placeholders (its first `# ` heading is the title)
        #[arg(long, value_name = "FILE.md")]
        body: Option<PathBuf>,
        /// A company .docx/.dotx (styles, headers, footers) or .pptx/.potx (master, layouts, theme)
        #[arg(long, value_name = "FILE")]
        style: Option<PathBuf>,
        /// org (default), project:<slug> or coworker:<handle>
        #[arg(long)]
        scope: Option<String>,
        /// What it is for
        #[arg(long)]
        description: Option<String>,
        /// Overwrite a template of the same name in that scope
        #[arg(long)]
        replace: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List templates
    List {
        /// Only this scope's
        #[arg(long)]
        scope: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show a template (its body, its style file), or save its style file with -o
    Show {
        /// Name
        name: String,
        /// Its scope (default org)
        #[arg(long)]
        scope: Option<String>,
        /// Write the style file here
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Remove a template
    Remove {
        /// Name
        name: String,
        /// Its scope (default org)
        #[arg(long)]
        scope: Option<String>,
    },
}

fn print_template(template: &Value) {
    let text = |key: &str| template[key].as_str().unwrap_or_default().to_owned();
    println!("{}  [{}]", text("name"), text("scope"));
    if !text("description").is_empty() {
        println!("  {}", text("description"));
    }
    if let Some(kind) = template["style_kind"].as_str() {
        println!(
            "  style file: {} ({kind}, {} bytes, sha256 {})",
            text("style_file_name"),
            template["style_size_bytes"],
            text("style_sha256")
        );
    }
}

/// Runs a `coworker templates …` command.
pub async fn run(client: &Client, command: TemplatesCommand) -> anyhow::Result<ExitCode> {
    match command {
        TemplatesCommand::Add {
            name,
            body,
            style,
            scope,
            description,
            replace,
            json,
        } => {
            let body = match body {
                Some(path) => {
                    Some(std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?)
                }
                None => None,
            };
            let (style_file_name, style_base64) = match style {
                Some(path) => {
                    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
                    let file_name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    (
                        Some(file_name),
                        Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
                    )
                }
                None => (None, None),
            };
            if body.is_none() && style_file_name.is_none() {
                anyhow::bail!("give --body FILE.md, --style FILE.docx|FILE.pptx, or both");
            }
            let stored = client
                .post(
                    "/templates",
                    &json!({"name": name, "scope": scope, "description": description, "body": body,
                            "style_file_name": style_file_name, "style_base64": style_base64, "replace": replace}),
                )
                .await?;
            if json {
                print_json(&stored);
            } else {
                print_template(&stored);
                println!(
                    "Stored. Coworkers use it with documents.create_from_template (or create_document/create_slides \"template\"); a schedule with --template {}.",
                    stored["name"].as_str().unwrap_or_default()
                );
            }
        }
        TemplatesCommand::List { scope, json } => {
            let path = match &scope {
                Some(scope) => format!("/templates?scope={}", urlencode(scope)),
                None => "/templates".to_owned(),
            };
            let listed = client.get(&path).await?;
            if json {
                print_json(&listed);
            } else {
                let templates = listed["templates"].as_array().cloned().unwrap_or_default();
                if templates.is_empty() {
                    println!("No templates. Add one with `coworker templates add NAME --body FILE.md`.");
                }
                for template in &templates {
                    print_template(template);
                }
            }
        }
        TemplatesCommand::Show {
            name,
            scope,
            output,
            json,
        } => {
            let scope = scope.unwrap_or_else(|| "org".into());
            let base = format!("/templates/{}/{}", urlencode(&scope), urlencode(&name));
            let template = client.get(&base).await?;
            if let Some(output) = output {
                let bytes = client.get_bytes(&format!("{base}/style")).await?;
                std::fs::write(&output, &bytes).with_context(|| format!("cannot write {}", output.display()))?;
                eprintln!("Wrote {} bytes to {}", bytes.len(), output.display());
            }
            if json {
                print_json(&template);
            } else {
                print_template(&template);
                if let Some(body) = template["body"].as_str() {
                    println!("  body:");
                    for line in body.lines() {
                        println!("    {line}");
                    }
                }
            }
        }
        TemplatesCommand::Remove { name, scope } => {
            let scope = scope.unwrap_or_else(|| "org".into());
            client
                .delete(&format!("/templates/{}/{}", urlencode(&scope), urlencode(&name)))
                .await?;
            println!("Removed template {name} from {scope}.");
        }
    }
    Ok(ExitCode::SUCCESS)
}
