//! `coworker schedules …` and `coworker triggers …`: work commands, clients of the running
//! node's `/api/v1/schedules` and `/api/v1/triggers`. Rendering only; the node validates.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::Client;
use crate::work::print_json;

// Parsed once per process: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum SchedulesCommand {
    /// Create a schedule: a coworker gets a task with this brief at every fire
    Add {
        /// Coworker handle (e.g. assistant)
        handle: String,
        /// What each run should do
        brief: String,
        /// Cron: 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first, or @daily…
        #[arg(long)]
        cron: Option<String>,
        /// A fixed interval instead of a cron: 90s, 15m, 2h, 1d
        #[arg(long)]
        every: Option<String>,
        /// IANA timezone (default: the coworker's)
        #[arg(long)]
        tz: Option<String>,
        /// Project slug
        #[arg(long)]
        project: Option<String>,
        /// Where results go: inbox (default), slack:dm:USER, slack:channel:NAME, email:ADDRESS
        #[arg(long, value_name = "TARGET")]
        deliver_to: Option<String>,
        /// After downtime: latest (default, fire once), all (every missed fire, bounded), none
        #[arg(long)]
        catch_up: Option<String>,
        /// Most fires `--catch-up all` makes after downtime (default 10)
        #[arg(long)]
        catch_up_max: Option<u32>,
        /// low | normal | high | urgent
        #[arg(long)]
        priority: Option<String>,
        /// A label
        #[arg(long)]
        name: Option<String>,
        /// Let outbound messages of its runs go out at any hour
        #[arg(long)]
        ignore_working_hours: bool,
        /// Make it a watch: call this read-tier tool at each fire; a task only when its result changes
        #[arg(long, value_name = "TOOL")]
        watch: Option<String>,
        /// Arguments of the watched tool, as JSON
        #[arg(long, value_name = "JSON", requires = "watch")]
        watch_args: Option<String>,
        /// A document template each run's deliverable is made with (coworker templates list)
        #[arg(long, value_name = "NAME")]
        template: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List schedules with their next fire and last outcome
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show a schedule with its recent fires and their tasks
    Show {
        /// Schedule id
        id: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Stop a schedule firing until resumed
    Pause {
        /// Schedule id
        id: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Start a paused schedule again (from its next time; the pause is not caught up)
    Resume {
        /// Schedule id
        id: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Delete a schedule (its tasks stay)
    Delete {
        /// Schedule id
        id: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Fire a schedule once now; prints the created task's id
    RunNow {
        /// Schedule id
        id: String,
        /// Print the created task as `task new --json` does
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum TriggersCommand {
    /// Create a signed webhook that turns each event into a task; prints its URL and secret once
    AddWebhook {
        /// Coworker handle
        handle: String,
        /// The brief: a template over `body` (the event's JSON) and `headers`, e.g. "Review {{ body.title }}"
        brief_template: String,
        /// Only events for which this expression is true, e.g. "body.action == 'opened'"
        #[arg(long, value_name = "EXPR")]
        filter: Option<String>,
        /// Signature scheme: coworker (default), github, stripe
        #[arg(long)]
        scheme: Option<String>,
        /// Project slug
        #[arg(long)]
        project: Option<String>,
        /// Where results go
        #[arg(long, value_name = "TARGET")]
        deliver_to: Option<String>,
        /// A label
        #[arg(long)]
        name: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List triggers (never their secrets)
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show a trigger
    Show {
        /// Trigger id
        id: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Delete a trigger: its URL stops working at once
    Delete {
        /// Trigger id
        id: String,
    },
    /// Replace a trigger's secret (printed once); the old one stops working at once
    RotateSecret {
        /// Trigger id
        id: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_default().to_owned()
}

fn print_schedule(schedule: &Value) {
    let state = if schedule["enabled"].as_bool() == Some(true) {
        "enabled"
    } else {
        "paused"
    };
    println!(
        "Schedule {}  [{state}]  @{}",
        text(schedule, "id"),
        text(schedule, "coworker")
    );
    println!("  {}", text(schedule, "words"));
    match (schedule["cron"].as_str(), schedule["interval_secs"].as_i64()) {
        (Some(cron), _) => println!("  cron: {cron}  timezone: {}", text(schedule, "timezone")),
        (None, Some(secs)) => println!("  every {secs} s"),
        _ => {}
    }
    println!("  brief: {}", text(schedule, "brief"));
    if let Some(target) = schedule["deliver_to"].as_str().filter(|t| *t != "inbox") {
        println!("  delivers to: {target}");
    }
    if let Some(template) = schedule["template_name"].as_str() {
        println!("  template: {template}");
    }
    if let Some(tool) = schedule["watch_tool"].as_str() {
        println!("  watches: {tool} {}", schedule["watch_arguments"]);
    }
    let next: Vec<&str> = schedule["next_fire_times"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !next.is_empty() {
        println!("  next fires:");
        for at in next {
            println!("    {at}");
        }
    }
    if let Some(task) = schedule["last_task_id"].as_str() {
        println!(
            "  last task: {task} ({})",
            schedule["last_task_status"].as_str().unwrap_or("unknown")
        );
    }
    if let Some(error) = schedule["last_error"].as_str() {
        println!("  disabled by the scheduler: {error}");
    }
}

/// Runs a `coworker schedules …` command.
pub async fn schedules(client: &Client, command: SchedulesCommand) -> anyhow::Result<ExitCode> {
    match command {
        SchedulesCommand::Add {
            handle,
            brief,
            cron,
            every,
            tz,
            project,
            deliver_to,
            catch_up,
            catch_up_max,
            priority,
            name,
            ignore_working_hours,
            watch,
            watch_args,
            template,
            json,
        } => {
            let watch = match watch {
                Some(tool) => {
                    let arguments: Value = match watch_args.as_deref() {
                        Some(text) => serde_json::from_str(text)
                            .map_err(|e| anyhow::anyhow!("--watch-args is not valid JSON: {e}"))?,
                        None => json!({}),
                    };
                    Some(json!({"tool": tool, "arguments": arguments}))
                }
                None => None,
            };
            let body = json!({
                "to": handle, "brief": brief, "cron": cron, "every": every, "timezone": tz,
                "project": project, "deliver_to": deliver_to, "catch_up": catch_up,
                "catch_up_max": catch_up_max, "priority": priority, "name": name,
                "respect_working_hours": !ignore_working_hours, "watch": watch, "template": template,
            });
            let created = client.post("/schedules", &body).await?;
            if json {
                print_json(&created);
            } else {
                print_schedule(&created);
                println!("Pause it with `coworker schedules pause {}`.", text(&created, "id"));
            }
        }
        SchedulesCommand::List { json } => {
            let mut all = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let path = match &cursor {
                    Some(c) => format!("/schedules?limit=200&cursor={c}"),
                    None => "/schedules?limit=200".to_owned(),
                };
                let page = client.get(&path).await?;
                all.extend(page["schedules"].as_array().cloned().unwrap_or_default());
                match page["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
            if json {
                print_json(&json!({"schedules": all}));
                return Ok(ExitCode::SUCCESS);
            }
            if all.is_empty() {
                println!(
                    "No schedules. Add one: coworker schedules add assistant --cron \"0 8 * * MON\" --tz Europe/Paris \"Draft my Monday brief\""
                );
            }
            for s in all {
                let state = if s["enabled"].as_bool() == Some(true) {
                    "enabled"
                } else {
                    "paused"
                };
                let next = s["next_fire_times"][0].as_str().unwrap_or("-");
                let last = s["last_task_status"].as_str().unwrap_or("-");
                println!(
                    "{}  {state:<7}  @{:<12} next {next}  last {last}  {}",
                    text(&s, "id"),
                    text(&s, "coworker"),
                    text(&s, "words")
                );
            }
        }
        SchedulesCommand::Show { id, json } => {
            let detail = client.get(&format!("/schedules/{id}")).await?;
            if json {
                print_json(&detail);
                return Ok(ExitCode::SUCCESS);
            }
            print_schedule(&detail);
            let fires = detail["fires"].as_array().cloned().unwrap_or_default();
            if !fires.is_empty() {
                println!("  recent fires:");
            }
            for fire in fires {
                let at = fire["fire_at_ms"]
                    .as_i64()
                    .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
                    .map(|t| t.to_string())
                    .unwrap_or_default();
                println!(
                    "    {at}  {:<9}  task {}",
                    text(&fire, "kind"),
                    fire["task_id"].as_str().unwrap_or("-")
                );
            }
        }
        SchedulesCommand::Pause { id, json } => {
            let updated = client.post(&format!("/schedules/{id}/pause"), &json!({})).await?;
            if json {
                print_json(&updated);
            } else {
                println!("Schedule {id} paused. Resume it with `coworker schedules resume {id}`.");
            }
        }
        SchedulesCommand::Resume { id, json } => {
            let updated = client.post(&format!("/schedules/{id}/resume"), &json!({})).await?;
            if json {
                print_json(&updated);
            } else {
                println!(
                    "Schedule {id} resumed; next fire {}.",
                    updated["next_fire_times"][0].as_str().unwrap_or("-")
                );
            }
        }
        SchedulesCommand::Delete { id, json } => {
            client.delete(&format!("/schedules/{id}")).await?;
            if json {
                print_json(&json!({"deleted": id}));
            } else {
                println!("Schedule {id} deleted (its tasks stay).");
            }
        }
        SchedulesCommand::RunNow { id, json } => {
            let created = client.post(&format!("/schedules/{id}/run"), &json!({})).await?;
            if json {
                print_json(&created);
            } else {
                println!("{}", created["task"]["id"].as_str().unwrap_or_default());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_trigger(trigger: &Value) {
    println!(
        "Trigger {}  [{}]  @{}  scheme {}",
        text(trigger, "id"),
        text(trigger, "kind"),
        text(trigger, "coworker"),
        text(trigger, "scheme")
    );
    println!("  URL: {}", text(trigger, "url"));
    println!("  brief: {}", text(trigger, "brief_template"));
    if let Some(filter) = trigger["filter"].as_str() {
        println!("  filter: {filter}");
    }
    if let Some(task) = trigger["last_task_id"].as_str() {
        println!("  last task: {task}");
    }
}

fn print_secret(trigger: &Value) {
    println!("  secret: {}", text(trigger, "secret"));
    println!("Store the secret in the sender now: it is not shown again.");
    if trigger["scheme"] == "coworker" {
        println!(
            "Sign each request: X-Coworker-Timestamp: <unix seconds>, X-Coworker-Signature: sha256=<hex HMAC-SHA256(secret, \"<timestamp>.<body>\")>, optional X-Coworker-Delivery: <unique id>."
        );
    }
}

/// Runs a `coworker triggers …` command.
pub async fn triggers(client: &Client, command: TriggersCommand) -> anyhow::Result<ExitCode> {
    match command {
        TriggersCommand::AddWebhook {
            handle,
            brief_template,
            filter,
            scheme,
            project,
            deliver_to,
            name,
            json,
        } => {
            let body = json!({
                "to": handle, "brief_template": brief_template, "filter": filter, "scheme": scheme,
                "project": project, "deliver_to": deliver_to, "name": name,
            });
            let created = client.post("/triggers", &body).await?;
            if json {
                print_json(&created);
            } else {
                print_trigger(&created);
                print_secret(&created);
            }
        }
        TriggersCommand::List { json } => {
            let list = client.get("/triggers?limit=200").await?;
            if json {
                print_json(&list);
                return Ok(ExitCode::SUCCESS);
            }
            let triggers = list["triggers"].as_array().cloned().unwrap_or_default();
            if triggers.is_empty() {
                println!(
                    "No triggers. Add one: coworker triggers add-webhook assistant \"Look at {{{{ body.title }}}}\""
                );
            }
            for t in triggers {
                println!(
                    "{}  {}  @{:<12} {}  {}",
                    text(&t, "id"),
                    text(&t, "scheme"),
                    text(&t, "coworker"),
                    text(&t, "url"),
                    text(&t, "brief_template")
                );
            }
        }
        TriggersCommand::Show { id, json } => {
            let trigger = client.get(&format!("/triggers/{id}")).await?;
            if json {
                print_json(&trigger);
            } else {
                print_trigger(&trigger);
            }
        }
        TriggersCommand::Delete { id } => {
            client.delete(&format!("/triggers/{id}")).await?;
            println!("Trigger {id} deleted; its URL no longer accepts events.");
        }
        TriggersCommand::RotateSecret { id, json } => {
            let rotated = client
                .post(&format!("/triggers/{id}/rotate-secret"), &json!({}))
                .await?;
            if json {
                print_json(&rotated);
            } else {
                print_trigger(&rotated);
                print_secret(&rotated);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
