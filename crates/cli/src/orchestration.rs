//! `coworker task show ID --tree` and `coworker task reassign ID --to HANDLE` (issue 15):
//! renders what `GET /api/v1/tasks/{id}/subtasks` and `POST /api/v1/tasks/{id}/reassign`
//! return.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::client::Client;
use crate::work::{print_json, usd};

/// Longest result excerpt shown per subtask, in characters.
const RESULT_CHARS: usize = 80;

fn result_line(task: &Value) -> String {
    let result = &task["result"];
    let text = match (result.get("value"), result.get("text"), result.get("error")) {
        (Some(value), _, _) => value.to_string(),
        (_, Some(Value::String(text)), _) => text.clone(),
        (_, _, Some(Value::String(error))) => format!("error: {error}"),
        _ => String::new(),
    };
    let one_line = text.replace('\n', " ");
    match one_line.char_indices().nth(RESULT_CHARS) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

/// `coworker task show ID --tree [--json]`.
pub async fn task_tree(client: &Client, id: &str, json_out: bool) -> anyhow::Result<ExitCode> {
    let tree = client.get(&format!("/tasks/{id}/subtasks")).await?;
    if json_out {
        print_json(&tree);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Tree of task {id}: {} in total, {} in / {} out tokens",
        usd(&tree["tree_cost_micros_usd"]),
        tree["tree_input_tokens"],
        tree["tree_output_tokens"]
    );
    for node in tree["subtasks"].as_array().into_iter().flatten() {
        let task = &node["task"];
        let indent = "  ".repeat(node["level"].as_u64().unwrap_or(0) as usize);
        println!(
            "{indent}{} @{} [{}] own {} / tree {}  {}",
            task["id"].as_str().unwrap_or_default(),
            node["coworker"].as_str().unwrap_or("?"),
            task["status"].as_str().unwrap_or_default(),
            usd(&task["cost_micros_usd"]),
            usd(&task["tree_cost_micros_usd"]),
            result_line(task)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `coworker task reassign ID --to HANDLE [--json]`.
pub async fn task_reassign(client: &Client, id: &str, to: &str, json_out: bool) -> anyhow::Result<ExitCode> {
    let done = client
        .post(&format!("/tasks/{id}/reassign"), &json!({"to": to}))
        .await?;
    if json_out {
        print_json(&done);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Task {id} handed from @{} to @{}; it continues from this summary:\n{}",
        done["from"].as_str().unwrap_or_default(),
        done["to"].as_str().unwrap_or_default(),
        done["handoff"].as_str().unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}
