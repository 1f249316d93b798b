//! Rendering of the work commands: tasks, approvals, coworkers.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};

use crate::client::Client;

/// How often `task new --wait` / `task show --wait` polls for new events.
const WAIT_POLL: Duration = Duration::from_millis(300);

pub(crate) fn usd(micros: &Value) -> String {
    format!("${:.4}", micros.as_i64().unwrap_or(0) as f64 / 1e6)
}

pub fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

/// One line describing a journal event, for people.
pub fn describe_event(event: &Value) -> Option<String> {
    let p = &event["payload"];
    let s = |key: &str| p[key].as_str().unwrap_or_default().to_owned();
    let line = match event["kind"].as_str()? {
        "started" => format!("started: {}", s("brief")),
        "model_requested" => format!("thinking (turn {}, {})", p["turn"], s("model")),
        "model_responded" => {
            let response = &p["response"];
            let calls: Vec<String> = response["tool_calls"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .filter_map(|c| c["name"].as_str())
                        .map(|n| n.replace("__", "."))
                        .collect()
                })
                .unwrap_or_default();
            let what = if calls.is_empty() {
                "answered".to_owned()
            } else {
                format!("wants {}", calls.join(", "))
            };
            format!(
                "model {what} ({} in / {} out tokens, {})",
                response["usage"]["input_tokens"],
                response["usage"]["output_tokens"],
                usd(&response["cost_micros_usd"])
            )
        }
        "model_failed" => format!("model call failed: {}", s("error")),
        "plan_proposed" => {
            let steps = p["plan"]["steps"].as_array().map(|steps| {
                steps
                    .iter()
                    .enumerate()
                    .map(|(i, step)| format!("\n    {}. {}", i + 1, step["description"].as_str().unwrap_or_default()))
                    .collect::<String>()
            });
            format!(
                "plan proposed{}{}",
                if p["review"].as_bool() == Some(true) {
                    " (needs review)"
                } else {
                    ""
                },
                steps.unwrap_or_default()
            )
        }
        "tool_requested" => format!("tool {} [{}]: {}", s("tool"), s("tier"), s("rule")),
        "approval_requested" => format!(
            "waiting for approval {} ({}) — `coworker approvals show {}`",
            s("approval_id"),
            s("kind"),
            s("approval_id")
        ),
        "approval_decided" | "plan_decided" => format!(
            "decided: {}{}",
            s("decision"),
            p["note"].as_str().map(|n| format!(" ({n})")).unwrap_or_default()
        ),
        "approval_expired" => {
            if p["escalated"].as_bool() == Some(true) {
                "approval expired: escalated to the manager".into()
            } else {
                "approval expired again".into()
            }
        }
        "tool_started" => format!("running {}", s("tool")),
        "tool_finished" => {
            let status = if p["is_error"].as_bool() == Some(true) {
                "failed"
            } else {
                "done"
            };
            let first_line: String = s("content")
                .lines()
                .find(|l| !l.starts_with("[tool output"))
                .unwrap_or_default()
                .chars()
                .take(100)
                .collect();
            format!("{} {status}: {first_line}", s("tool"))
        }
        "question_asked" => format!(
            "question: {} — answer with `coworker task answer <task id> \"…\"`",
            s("question")
        ),
        "answer_received" => format!("answered: {}", s("answer")),
        "human_message" => format!("message: {}", s("text")),
        "budget_warning" => "budget nearly used: told to wrap up".into(),
        "budget_exceeded" => format!("limit reached: {}", s("limit")),
        "blocked" => format!("blocked: {}", s("reason")),
        "completed" => format!("completed:\n{}", s("result")),
        "failed" => format!("failed: {}", s("error")),
        "cancelled" => "cancelled".into(),
        // Multi-agent orchestration (issue 15).
        "subtask_spawned" => format!("delegated to @{}: subtask {}", s("to"), s("subtask_id")),
        "subtask_finished" => format!("subtask {} (@{}) {}", s("subtask_id"), s("to"), s("status")),
        "delegation_refused" => format!("delegation refused ({}): {}", s("limit"), s("reason")),
        _ => return None,
    };
    Some(line)
}

fn exit_for(status: &str) -> ExitCode {
    match status {
        "done" => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

/// `coworker task new`.
/// What `coworker task new` asks for.
pub struct NewTaskArgs<'a> {
    /// Coworker handle.
    pub to: &'a str,
    /// The brief.
    pub brief: &'a str,
    /// Urgency.
    pub priority: Option<&'a str>,
    /// Project slug.
    pub project: Option<&'a str>,
    /// Delivery target (`slack:dm:…`, `slack:channel:…`).
    pub deliver_to: Option<&'a str>,
}

/// `coworker task new`.
pub async fn task_new(client: &Client, args: NewTaskArgs<'_>, wait: bool, json_out: bool) -> anyhow::Result<ExitCode> {
    let NewTaskArgs {
        to,
        brief,
        priority,
        project,
        deliver_to,
    } = args;
    let body = json!({"to": to, "brief": brief, "priority": priority, "project": project, "deliver_to": deliver_to});
    let created = client.post("/tasks", &body).await?;
    let id = created["task"]["id"].as_str().unwrap_or_default().to_owned();
    if !wait {
        if json_out {
            print_json(&created);
        } else {
            println!(
                "Task {id} delegated to @{}.",
                created["coworker"].as_str().unwrap_or(to)
            );
            println!("Follow it with `coworker task show {id} --wait`.");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !json_out {
        println!(
            "Task {id} delegated to @{}; waiting…",
            created["coworker"].as_str().unwrap_or(to)
        );
    }
    follow(client, &id, json_out).await
}

/// Streams a task's events until it ends (or blocks): exit 0 on done, 1 otherwise. With
/// `--json`, one event per line, then the task as returned by `GET /tasks/{id}`.
pub async fn follow(client: &Client, id: &str, json_out: bool) -> anyhow::Result<ExitCode> {
    let mut after = 0;
    loop {
        let page = client.get(&format!("/tasks/{id}/events?after={after}")).await?;
        for event in page["events"].as_array().cloned().unwrap_or_default() {
            after = event["seq"].as_i64().unwrap_or(after);
            if json_out {
                println!("{}", serde_json::to_string(&event).unwrap_or_default());
            } else if let Some(line) = describe_event(&event) {
                println!("  {line}");
            }
        }
        let status = page["status"].as_str().unwrap_or_default().to_owned();
        if matches!(status.as_str(), "done" | "failed" | "cancelled" | "blocked") {
            // One more page so nothing journaled just before the end is missed.
            let last = client.get(&format!("/tasks/{id}/events?after={after}")).await?;
            for event in last["events"].as_array().cloned().unwrap_or_default() {
                if json_out {
                    println!("{}", serde_json::to_string(&event).unwrap_or_default());
                } else if let Some(line) = describe_event(&event) {
                    println!("  {line}");
                }
            }
            if json_out {
                // The last line is the task itself (status, result, cost), so a script reads
                // the outcome with `tail -n 1` instead of folding the events.
                let detail = client.get(&format!("/tasks/{id}")).await?;
                println!("{}", serde_json::to_string(&detail).unwrap_or_default());
            } else {
                println!("Task {id}: {status}");
            }
            return Ok(exit_for(&status));
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

/// `coworker task show`.
pub async fn task_show(client: &Client, id: &str, wait: bool, json_out: bool) -> anyhow::Result<ExitCode> {
    if wait {
        return follow(client, id, json_out).await;
    }
    let detail = client.get(&format!("/tasks/{id}")).await?;
    if json_out {
        print_json(&detail);
        return Ok(ExitCode::SUCCESS);
    }
    let task = &detail["task"];
    println!(
        "Task {}  [{}]  @{}",
        task["id"].as_str().unwrap_or_default(),
        task["status"].as_str().unwrap_or_default(),
        detail["coworker"].as_str().unwrap_or_default()
    );
    println!("Brief: {}", task["brief"].as_str().unwrap_or_default());
    println!(
        "Cost: {}  tokens: {} in / {} out",
        usd(&task["cost_micros_usd"]),
        task["input_tokens"],
        task["output_tokens"]
    );
    if task["tree_cost_micros_usd"] != task["cost_micros_usd"] {
        println!("With its subtasks: {}", usd(&task["tree_cost_micros_usd"]));
    }
    if let Some(question) = detail["question"].as_str() {
        println!("Open question: {question}\n  answer: coworker task answer {id} \"…\"");
    }
    if let Some(reason) = detail["blocked_reason"].as_str() {
        println!("Blocked: {reason}");
    }
    for approval in detail["approvals"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["status"] == "pending")
    {
        println!(
            "Pending approval {}: {}",
            approval["id"].as_str().unwrap_or_default(),
            approval["title"].as_str().unwrap_or_default()
        );
    }
    println!("Timeline:");
    for event in detail["events"].as_array().into_iter().flatten() {
        if let Some(line) = describe_event(event) {
            println!("  {:>3}  {line}", event["seq"]);
        }
    }
    if let Some(text) = task["result"]["text"].as_str() {
        println!("Result:\n{text}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `coworker task list`.
pub async fn task_list(client: &Client, status: Option<&str>, json_out: bool) -> anyhow::Result<ExitCode> {
    let path = match status {
        Some(status) => format!("/tasks?status={status}"),
        None => "/tasks".to_owned(),
    };
    let list = client.get(&path).await?;
    if json_out {
        print_json(&list);
        return Ok(ExitCode::SUCCESS);
    }
    let tasks = list["tasks"].as_array().cloned().unwrap_or_default();
    if tasks.is_empty() {
        println!("No tasks yet. Delegate one: coworker task new --to assistant \"…\"");
    }
    for task in tasks {
        let brief: String = task["brief"].as_str().unwrap_or_default().chars().take(60).collect();
        println!(
            "{}  {:<9}  {:>9}  {brief}",
            task["id"].as_str().unwrap_or_default(),
            task["status"].as_str().unwrap_or_default(),
            usd(&task["cost_micros_usd"])
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `coworker approvals list`.
pub async fn approvals_list(client: &Client, all: bool, json_out: bool) -> anyhow::Result<ExitCode> {
    let list = client
        .get(if all { "/approvals?status=all" } else { "/approvals" })
        .await?;
    if json_out {
        print_json(&list);
        return Ok(ExitCode::SUCCESS);
    }
    let approvals = list["approvals"].as_array().cloned().unwrap_or_default();
    if approvals.is_empty() {
        println!("Nothing waiting for a decision.");
    }
    for approval in approvals {
        println!(
            "{}  {:<8}  {:<16}  {}",
            approval["id"].as_str().unwrap_or_default(),
            approval["status"].as_str().unwrap_or_default(),
            approval["kind"].as_str().unwrap_or_default(),
            approval["title"].as_str().unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `coworker approvals show`.
pub async fn approvals_show(client: &Client, id: &str, json_out: bool) -> anyhow::Result<ExitCode> {
    let detail = client.get(&format!("/approvals/{id}")).await?;
    if json_out {
        print_json(&detail);
        return Ok(ExitCode::SUCCESS);
    }
    let approval = &detail["approval"];
    println!(
        "Approval {id}  [{}]  {}",
        approval["status"].as_str().unwrap_or_default(),
        approval["kind"].as_str().unwrap_or_default()
    );
    println!("{}", approval["title"].as_str().unwrap_or_default());
    println!("Task: {}", approval["task_id"].as_str().unwrap_or_default());
    if let Some(expires) = approval["expires_at_ms"]
        .as_i64()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
    {
        println!("Expires: {expires}");
    }
    let preview = &approval["preview"];
    if let Some(rule) = preview["rule"].as_str() {
        println!("Why: {rule}");
    }
    // Provenance (issue 19): where each tainted value came from, marked in its source.
    for source in preview["provenance"]["sources"].as_array().into_iter().flatten() {
        println!("Source: {}", source["reason"].as_str().unwrap_or_default());
        if let Some(found) = source["excerpt"]["match"].as_str() {
            println!(
                "  …{}»{found}«{}…",
                source["excerpt"]["before"]
                    .as_str()
                    .unwrap_or_default()
                    .replace('\n', " "),
                source["excerpt"]["after"]
                    .as_str()
                    .unwrap_or_default()
                    .replace('\n', " ")
            );
        }
    }
    match (preview["arguments_text"].as_str(), preview["diff"].as_str()) {
        (Some(arguments), diff) => {
            println!("Arguments:\n{arguments}");
            if let Some(diff) = diff {
                println!("Change to {}:\n{diff}", preview["path"].as_str().unwrap_or("the file"));
            }
        }
        (None, _) => println!("{}", serde_json::to_string_pretty(preview).unwrap_or_default()),
    }
    if approval["status"] == "pending" {
        let options = if approval["kind"] == "outcome_unknown" {
            "retry | skip | mark-done"
        } else {
            "approve | reject"
        };
        println!("Decide: coworker approvals {options} {id} [--note \"…\"]");
    }
    Ok(ExitCode::SUCCESS)
}

/// `coworker approvals approve|reject|retry|skip|mark-done`.
pub async fn approvals_decide(
    client: &Client,
    id: &str,
    decision: &str,
    note: Option<&str>,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let decided = client
        .post(
            &format!("/approvals/{id}/decision"),
            &json!({"decision": decision, "note": note}),
        )
        .await?;
    if json_out {
        print_json(&decided);
    } else {
        println!(
            "Approval {id}: {}.",
            decided["approval"]["status"].as_str().unwrap_or(decision)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `coworker coworkers list|show`.
pub async fn coworkers(client: &Client, handle: Option<&str>, json_out: bool) -> anyhow::Result<ExitCode> {
    let value = match handle {
        Some(handle) => {
            client
                .get(&format!("/coworkers/{}", handle.trim_start_matches('@')))
                .await?
        }
        None => client.get("/coworkers").await?,
    };
    if json_out {
        print_json(&value);
        return Ok(ExitCode::SUCCESS);
    }
    let list = match handle {
        Some(_) => vec![value],
        None => value["coworkers"].as_array().cloned().unwrap_or_default(),
    };
    for coworker in list {
        println!(
            "@{}  {}  ({})",
            coworker["handle"].as_str().unwrap_or_default(),
            coworker["name"].as_str().unwrap_or_default(),
            coworker["timezone"].as_str().unwrap_or_default()
        );
        if handle.is_some() {
            println!("{}", coworker["role"].as_str().unwrap_or_default());
            println!("tools: {}", coworker["tools"]);
            println!("policy: {}", coworker["policy"]);
            println!("budget: {}  limits: {}", coworker["budget"], coworker["limits"]);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `coworker projects [create SLUG]`.
pub async fn projects(
    client: &Client,
    create: Option<(&str, Option<&str>, Option<&str>)>,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    if let Some((slug, name, description)) = create {
        let created = client
            .post(
                "/projects",
                &json!({"slug": slug, "name": name, "description": description}),
            )
            .await?;
        if json_out {
            print_json(&created);
        } else {
            println!("Project {slug} created. Delegate into it with `coworker task new --project {slug} …`.");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let list = client.get("/projects").await?;
    if json_out {
        print_json(&list);
        return Ok(ExitCode::SUCCESS);
    }
    let projects = list["projects"].as_array().cloned().unwrap_or_default();
    if projects.is_empty() {
        println!("No projects yet. Create one with `coworker projects create SLUG --name \"Name\"`.");
    }
    for project in projects {
        println!(
            "{}  {}",
            project["slug"].as_str().unwrap_or_default(),
            project["name"].as_str().unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}
