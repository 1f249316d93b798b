//! The `coworker` binary: parses arguments, loads configuration and hands off to the library
//! crates. It holds no logic of its own beyond rendering results for the terminal.

mod accounts;
mod audit;
mod client;
mod connect;
mod files;
mod load;
mod logging;
mod mcp;
mod memory;
mod policy;
mod schedules;
mod secrets;
// Slack (issue 13).
mod slack;
// Email and calendar (issue 16).
#[cfg(feature = "email")]
mod mail;
mod templates;
mod work;
// Multi-agent orchestration (issue 15).
mod orchestration;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use coworker_core::config::{CONFIG_TEMPLATE, LogFormat};
use coworker_core::doctor::CheckStatus;
use coworker_server::{Node, NodeOptions};
use coworker_store::{Store, binary_schema_version};

/// Coworker: a self-hosted AI teammate for your team.
///
/// Start with `coworker serve` (no configuration needed), or `coworker init` to write a
/// commented coworker.toml to edit first.
#[derive(Parser)]
#[command(name = "coworker", version, about, long_about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct GlobalArgs {
    /// Configuration file [default: ./coworker.toml if present]
    #[arg(long, short = 'c', global = true, env = "COWORKER_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log line format (overrides log.format)
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormatArg>,
    /// URL of the node work commands talk to [default: from the config's listen address]
    #[arg(long, global = true, env = "COWORKER_SERVER", value_name = "URL")]
    server: Option<String>,
}

#[derive(Copy, Clone, ValueEnum)]
enum LogFormatArg {
    /// Readable lines for a terminal
    Human,
    /// One JSON object per line
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run a Coworker node: HTTP API, web app and engine, on SQLite by default
    ///
    /// With no configuration at all this creates ./.coworker (or $COWORKER_HOME) holding an
    /// SQLite database, applies migrations, and prints the URL and a one-time sign-in token.
    Serve(ServeArgs),
    /// Write a commented coworker.toml and an example coworker definition
    Init(InitArgs),
    /// Check configuration, data dir and database; exit 1 if anything is broken
    Doctor(DoctorArgs),
    /// Apply database migrations and exit
    Migrate(DataDirArg),
    /// Run only the engine (no HTTP): claim and drive runs from the shared database
    Worker(DataDirArg),
    /// Delegate and follow tasks (talks to a running node)
    #[command(subcommand)]
    Task(TaskCommand),
    /// Decide what coworkers are waiting on (talks to a running node)
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// List coworkers, or show one (talks to a running node)
    Coworkers(CoworkersArgs),
    /// List projects, or create one (talks to a running node)
    Projects(ProjectsArgs),
    /// Model catalog
    #[command(subcommand)]
    Models(ModelsCommand),
    /// The policy gate: why a tool call gets its tier; a coworker's rules (talks to a running node)
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Encrypted secrets (tokens, API keys) referenced as secret:NAME: set, list, delete
    Secrets(secrets::SecretsArgs),
    /// MCP servers whose tools coworkers use: add, list, remove, test
    Mcp(mcp::McpArgs),
    /// Connect coworkers to APIs: import an OpenAPI document (each operation a tool), list, remove
    Connect(connect::ConnectArgs),
    /// The hash-chained audit log: verify the chain, export, tail
    Audit(audit::AuditArgs),
    /// API tokens: create (secret shown once), list, revoke (talks to a running node)
    #[command(subcommand)]
    Tokens(accounts::TokensCommand),
    /// Accounts: list, invite, set-role, disable (admins; talks to a running node)
    #[command(subcommand)]
    Users(accounts::UsersCommand),
    /// Print the version and the database schema version this binary expects
    Version(JsonArg),
    /// Copy the database (SQLite: a consistent online snapshot), the blobs and the master key
    /// into a new directory; safe while the node runs
    Backup(BackupArgs),
    /// Restore a backup into a new data dir (then `coworker serve --data-dir NEW`)
    Restore(RestoreArgs),
    /// Standing jobs: add (cron + timezone), list, show, pause, resume, delete, run-now (talks to a running node)
    #[command(subcommand)]
    Schedules(schedules::SchedulesCommand),
    /// Signed webhooks that turn events into tasks: add-webhook, list, show, delete, rotate-secret (talks to a running node)
    #[command(subcommand)]
    Triggers(schedules::TriggersCommand),
    /// Memory: facts and past tasks coworkers remember (add, search, review, import, …)
    #[command(subcommand)]
    Memory(memory::MemoryCommand),
    /// The shared workspace's files: list, show (with versions), download (talks to a running node)
    #[command(subcommand)]
    Files(files::FilesCommand),
    /// Slack: print the app manifest, test the tokens and the connection
    #[command(subcommand)]
    Slack(slack::SlackCommand),
    /// Email ([[email]] mailboxes): test logs in to IMAP and SMTP
    #[cfg(feature = "email")]
    #[command(subcommand)]
    Email(mail::MailCommand),
    /// Calendars ([[calendar]] feeds): test fetches and reads them
    #[cfg(feature = "email")]
    #[command(subcommand)]
    Calendar(mail::MailCommand),
    /// Document templates: add (Markdown body and/or DOCX/PPTX style file), list, show, remove (talks to a running node)
    #[command(subcommand)]
    Templates(templates::TemplatesCommand),
    /// Copy file content between the data dir and the S3 bucket of `[storage] blobs` (resumable)
    MigrateBlobs(MigrateBlobsArgs),
}

#[derive(Args)]
struct MigrateBlobsArgs {
    #[command(flatten)]
    data_dir: DataDirArg,
    /// Where to copy to: `s3` (the data dir's blobs into the bucket) or `local` (back)
    #[arg(long, value_parser = ["s3", "local"])]
    to: String,
}

#[derive(Subcommand)]
enum TaskCommand {
    /// Delegate a task to a coworker
    New {
        /// Coworker handle (e.g. assistant)
        #[arg(long, value_name = "HANDLE")]
        to: String,
        /// What you want done, in plain language
        brief: String,
        /// low | normal | high | urgent
        #[arg(long)]
        priority: Option<String>,
        /// Project slug (see `coworker projects`)
        #[arg(long)]
        project: Option<String>,
        /// Also deliver the result to slack:dm:<user id or email> or slack:channel:<name or id>
        #[arg(long, value_name = "TARGET")]
        deliver_to: Option<String>,
        /// Follow progress until the task ends; exit 0 on done, 1 on failed/cancelled/blocked
        #[arg(long)]
        wait: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show a task: status, plan, timeline, cost and result
    Show {
        /// Task id
        id: String,
        /// Follow progress until the task ends
        #[arg(long)]
        wait: bool,
        /// Show the tree of subtasks instead: status, cost and result of each
        #[arg(long, conflicts_with = "wait")]
        tree: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List recent tasks
    List {
        /// Only this status (queued, running, waiting, blocked, done, failed, cancelled)
        #[arg(long)]
        status: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Cancel a task
    Cancel {
        /// Task id
        id: String,
    },
    /// Hand an unfinished task to another coworker, with its journal summary and files
    Reassign {
        /// Task id
        id: String,
        /// Handle of the coworker who takes it over
        #[arg(long, value_name = "HANDLE")]
        to: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Answer the question a coworker asked on a task
    Answer {
        /// Task id
        id: String,
        /// Your answer
        text: String,
    },
}

#[derive(Subcommand)]
enum ApprovalsCommand {
    /// Pending approvals (or all with --all)
    List {
        /// Include decided and expired ones
        #[arg(long)]
        all: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show one approval with its preview
    Show {
        /// Approval id
        id: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Approve
    Approve(DecideArgs),
    /// Reject (the coworker is told, with your note)
    Reject(DecideArgs),
    /// "Outcome unknown": run the tool again
    Retry(DecideArgs),
    /// "Outcome unknown": do not run it again
    Skip(DecideArgs),
    /// "Outcome unknown": it did run; carry on
    MarkDone(DecideArgs),
}

#[derive(Args)]
struct DecideArgs {
    /// Approval id
    id: String,
    /// A note for the coworker
    #[arg(long)]
    note: Option<String>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct CoworkersArgs {
    /// Show this coworker in detail
    handle: Option<String>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ProjectsArgs {
    #[command(subcommand)]
    command: Option<ProjectsCommand>,
    /// Print JSON
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum ProjectsCommand {
    /// Create a project
    Create {
        /// Short unique name: lowercase letters, digits and '-'
        slug: String,
        /// Display name
        #[arg(long)]
        name: Option<String>,
        /// What it is about
        #[arg(long)]
        description: Option<String>,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Models with context windows and prices per million tokens
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    data_dir: DataDirArg,
    /// Address to listen on, e.g. 127.0.0.1:8080 or 0.0.0.0:8080 (overrides server.listen)
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
}

#[derive(Args)]
struct BackupArgs {
    /// The new (or empty) directory to write the backup into
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Data directory of the node to back up (overrides storage.data_dir)
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
struct RestoreArgs {
    /// A directory `coworker backup` wrote
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// The new (or empty) data dir to restore into
    #[arg(long, value_name = "NEW", required = true)]
    data_dir: PathBuf,
}

#[derive(Args)]
struct DataDirArg {
    /// Data directory for the SQLite database, files and credentials (overrides storage.data_dir)
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
struct InitArgs {
    /// Directory to write coworker.toml and coworkers/ into
    #[arg(long, default_value = ".", value_name = "DIR")]
    dir: PathBuf,
}

#[derive(Args)]
struct DoctorArgs {
    #[command(flatten)]
    data_dir: DataDirArg,
    /// Print the checks as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct JsonArg {
    /// Print as JSON
    #[arg(long)]
    json: bool,
}

/// Arenas glibc's allocator may keep, unless `MALLOC_ARENA_MAX` says otherwise.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MALLOC_ARENAS: libc::c_int = 2;

/// Bounds glibc's allocator to [`MALLOC_ARENAS`] arenas. By default it grows one arena per
/// contending thread (up to 8 per core) and each keeps the memory freed into it, so a node's
/// heap crept upwards under steady churn: in the one-hour Slack soak (1,000 open threads, a
/// conversation opened and one finished every second) anonymous memory climbed from 37.6 to
/// 48.0 MiB with the default and stayed at 29.0–32.4 MiB with two arenas. The price, on
/// a node whose cores are saturated (the engine bench, SQLite): about 4 % fewer tasks/s and
/// 5 % more CPU per task from threads sharing arenas; none measurable on PostgreSQL. Must run
/// before any thread starts; `MALLOC_ARENA_MAX` in the environment still wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn bound_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a tunable of the allocator; no thread has started yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        }
    }
}

fn main() -> ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    bound_malloc_arenas();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Version(args) => {
            let version = env!("CARGO_PKG_VERSION");
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"version": version, "schema_version": binary_schema_version()})
                );
            } else {
                println!("coworker {version} (database schema {})", binary_schema_version());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Init(args) => init(&args),
        Command::Serve(args) => serve(&cli.global, args).await,
        Command::Doctor(args) => doctor(&cli.global, args).await,
        Command::MigrateBlobs(args) => migrate_blobs(&cli.global, args).await,
        Command::Slack(command) => {
            slack::run(load::config(cli.global.config.as_deref(), None, None)?.config, command).await
        }
        #[cfg(feature = "email")]
        Command::Email(command) => {
            mail::run(
                load::config(cli.global.config.as_deref(), None, None)?.config,
                true,
                command,
            )
            .await
        }
        #[cfg(feature = "email")]
        Command::Calendar(command) => {
            mail::run(
                load::config(cli.global.config.as_deref(), None, None)?.config,
                false,
                command,
            )
            .await
        }
        Command::Migrate(args) => migrate(&cli.global, args).await,
        Command::Worker(args) => worker(&cli.global, args).await,
        Command::Backup(args) => backup(&cli.global, args).await,
        Command::Restore(args) => restore(args).await,
        Command::Models(ModelsCommand::List { json }) => models_list(&cli.global, json).await,
        Command::Task(command) => {
            let client = work_client(&cli.global)?;
            match command {
                TaskCommand::New {
                    to,
                    brief,
                    priority,
                    project,
                    deliver_to,
                    wait,
                    json,
                } => {
                    let args = work::NewTaskArgs {
                        to: &to,
                        brief: &brief,
                        priority: priority.as_deref(),
                        project: project.as_deref(),
                        deliver_to: deliver_to.as_deref(),
                    };
                    work::task_new(&client, args, wait, json).await
                }
                TaskCommand::Show {
                    id, tree: true, json, ..
                } => orchestration::task_tree(&client, &id, json).await,
                TaskCommand::Show { id, wait, json, .. } => work::task_show(&client, &id, wait, json).await,
                TaskCommand::Reassign { id, to, json } => orchestration::task_reassign(&client, &id, &to, json).await,
                TaskCommand::List { status, json } => work::task_list(&client, status.as_deref(), json).await,
                TaskCommand::Cancel { id } => {
                    client
                        .post(&format!("/tasks/{id}/cancel"), &serde_json::json!({}))
                        .await?;
                    println!("Cancellation requested for task {id}.");
                    Ok(ExitCode::SUCCESS)
                }
                TaskCommand::Answer { id, text } => {
                    client
                        .post(&format!("/tasks/{id}/answer"), &serde_json::json!({"text": text}))
                        .await?;
                    println!("Answer sent; task {id} resumes.");
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        Command::Approvals(command) => {
            let client = work_client(&cli.global)?;
            match command {
                ApprovalsCommand::List { all, json } => work::approvals_list(&client, all, json).await,
                ApprovalsCommand::Show { id, json } => work::approvals_show(&client, &id, json).await,
                ApprovalsCommand::Approve(a) => decide(&client, a, "approve").await,
                ApprovalsCommand::Reject(a) => decide(&client, a, "reject").await,
                ApprovalsCommand::Retry(a) => decide(&client, a, "retry").await,
                ApprovalsCommand::Skip(a) => decide(&client, a, "skip").await,
                ApprovalsCommand::MarkDone(a) => decide(&client, a, "mark_done").await,
            }
        }
        Command::Coworkers(args) => {
            let client = work_client(&cli.global)?;
            work::coworkers(&client, args.handle.as_deref(), args.json).await
        }
        Command::Projects(args) => {
            let client = work_client(&cli.global)?;
            let create = args.command.as_ref().map(
                |ProjectsCommand::Create {
                     slug,
                     name,
                     description,
                 }| { (slug.as_str(), name.as_deref(), description.as_deref()) },
            );
            work::projects(&client, create, args.json).await
        }
        Command::Policy(command) => policy::run(&work_client(&cli.global)?, command).await,
        Command::Secrets(args) => secrets::run(&cli.global, args).await,
        Command::Mcp(args) => mcp::run(&cli.global, args).await,
        Command::Connect(args) => connect::run(&cli.global, args).await,
        Command::Audit(args) => audit::run(&cli.global, args).await,
        Command::Tokens(command) => accounts::tokens(&work_client(&cli.global)?, command).await,
        Command::Users(command) => accounts::users(&work_client(&cli.global)?, command).await,
        Command::Schedules(command) => schedules::schedules(&work_client(&cli.global)?, command).await,
        Command::Triggers(command) => schedules::triggers(&work_client(&cli.global)?, command).await,
        Command::Memory(command) => memory::run(&cli.global, command).await,
        Command::Files(command) => files::run(&work_client(&cli.global)?, command).await,
        Command::Templates(command) => templates::run(&work_client(&cli.global)?, command).await,
    }
}

async fn decide(client: &client::Client, args: DecideArgs, decision: &str) -> anyhow::Result<ExitCode> {
    work::approvals_decide(client, &args.id, decision, args.note.as_deref(), args.json).await
}

fn work_client(global: &GlobalArgs) -> anyhow::Result<client::Client> {
    let loaded = load::config(global.config.as_deref(), None, None)?;
    client::Client::new(global.server.as_deref(), &loaded.config)
}

async fn models_list(global: &GlobalArgs, json: bool) -> anyhow::Result<ExitCode> {
    let loaded = load::config(global.config.as_deref(), None, None)?;
    let env: Vec<(String, String)> = std::env::vars().collect();
    let resolved = coworker_models::resolve_providers(&loaded.config, &env);
    let rows = coworker_models::models_list(&resolved);
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!("{}", coworker_models::render_catalog_table(&rows));
        println!("{}", resolved.summary());
    }
    Ok(ExitCode::SUCCESS)
}

async fn worker(global: &GlobalArgs, args: DataDirArg) -> anyhow::Result<ExitCode> {
    // The engine binds no port (several workers coexist on one machine).
    let loaded = load::config(global.config.as_deref(), args.data_dir.as_deref(), None)?;
    logging::init(log_format(global, loaded.config.log.format), &loaded.config.log.filter);
    let node = Node::start(
        loaded.config,
        NodeOptions {
            handle_signals: true,
            engine_only: true,
            ..NodeOptions::default()
        },
    )
    .await?;
    println!(
        "Coworker worker running ({} engine workers).",
        node.engine.settings().workers
    );
    println!("  database: {}", node.store.location());
    println!("  {}", node.models_summary);
    println!("Press Ctrl-C to stop.");
    node.wait().await?;
    println!("Coworker worker stopped.");
    Ok(ExitCode::SUCCESS)
}

async fn backup(global: &GlobalArgs, args: BackupArgs) -> anyhow::Result<ExitCode> {
    let loaded = load::config(global.config.as_deref(), args.data_dir.as_deref(), None)?;
    let report = coworker_server::backup::backup(&loaded.config, &args.dir).await?;
    let manifest = &report.manifest;
    println!(
        "Backed up to {} (schema {}, {} blob files, {} bytes).",
        args.dir.display(),
        manifest.schema_version,
        manifest.blob_files,
        manifest.blob_bytes
    );
    if manifest.master_key {
        println!("  It holds the master key that decrypts the secrets: keep it as private as the key.");
    } else {
        println!(
            "  The master key is not in the data dir: keep COWORKER_MASTER_KEY or secrets.key_file safe yourself."
        );
    }
    let bucket = loaded.config.storage.blobs.trim();
    if !bucket.is_empty() {
        println!(
            "  File content is in {bucket}, not in this backup: keep the bucket versioned or replicated (content is never rewritten, so a copy of it stays valid)."
        );
    }
    if let Some(pg_dump) = &report.pg_dump {
        println!("  PostgreSQL is not copied by this command; dump it now with:");
        println!("    {pg_dump}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn restore(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let report = coworker_server::backup::restore(&args.dir, &args.data_dir).await?;
    println!("Restored {} into {}.", args.dir.display(), args.data_dir.display());
    if let Some(entries) = report.audit_entries {
        println!("  audit log: {entries} entries, chain intact");
    }
    if let Some(pg_restore) = &report.pg_restore {
        println!("  Blobs and key restored; load the database with:");
        println!("    {pg_restore}");
    }
    println!(
        "  Start it with `coworker serve --data-dir {}`.",
        args.data_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn log_format(global: &GlobalArgs, configured: LogFormat) -> LogFormat {
    match global.log_format {
        Some(LogFormatArg::Human) => LogFormat::Human,
        Some(LogFormatArg::Json) => LogFormat::Json,
        None => configured,
    }
}

async fn serve(global: &GlobalArgs, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let loaded = load::config(
        global.config.as_deref(),
        args.data_dir.data_dir.as_deref(),
        args.listen.as_deref(),
    )?;
    logging::init(log_format(global, loaded.config.log.format), &loaded.config.log.filter);
    let node = Node::start(
        loaded.config,
        NodeOptions {
            handle_signals: true,
            ..NodeOptions::default()
        },
    )
    .await?;
    print_banner(&node);
    node.wait().await?;
    println!("Coworker stopped.");
    Ok(ExitCode::SUCCESS)
}

fn print_banner(node: &coworker_server::RunningNode) {
    let bootstrap = &node.bootstrap;
    println!(
        "Coworker {} is running at {}",
        env!("CARGO_PKG_VERSION"),
        node.public_url
    );
    println!("  database:         {}", node.store.location());
    println!("  {}", node.models_summary);
    println!("  data dir:         {}", node.data_dir.display());
    println!(
        "  owner credential: {} (lets `coworker` commands on this machine call the API)",
        bootstrap.owner_credential_path.display()
    );
    if let Some(token) = &bootstrap.signin_token {
        println!(
            "  sign in:          open {} and enter this one-time token (valid 24 h):",
            node.public_url
        );
        println!("                    {token}");
    }
    println!("Press Ctrl-C to stop.");
}

async fn migrate(global: &GlobalArgs, args: DataDirArg) -> anyhow::Result<ExitCode> {
    let loaded = load::config(global.config.as_deref(), args.data_dir.as_deref(), None)?;
    logging::init(log_format(global, loaded.config.log.format), &loaded.config.log.filter);
    let data_dir = PathBuf::from(&loaded.config.storage.data_dir);
    if loaded.config.database_kind()? == coworker_core::config::DatabaseKind::Sqlite {
        coworker_server::datadir::prepare(&data_dir)?;
    }
    let store = Store::open(&loaded.config.storage, &data_dir).await?;
    let applied = store.migrate().await?;
    let status = store.schema_status().await?;
    store.close().await;
    if applied.is_empty() {
        println!(
            "{}: schema already at version {}; nothing to do",
            store.location(),
            status.database_version
        );
    } else {
        println!(
            "{}: applied migration(s) {:?}; schema now at version {}",
            store.location(),
            applied,
            status.database_version
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn migrate_blobs(global: &GlobalArgs, args: MigrateBlobsArgs) -> anyhow::Result<ExitCode> {
    let loaded = load::config(global.config.as_deref(), args.data_dir.data_dir.as_deref(), None)?;
    let config = loaded.config;
    let data_dir = PathBuf::from(&config.storage.data_dir);
    let store = audit::open_store(&config).await?;
    // Secrets only resolve `secret:NAME` credentials; without a master key (none is created
    // here) literal and env: credentials still work.
    let key_exists = std::env::var(coworker_tools::secrets::MASTER_KEY_ENV).is_ok()
        || coworker_tools::secrets::key_file_path(&config).exists();
    let secrets = key_exists
        .then(|| coworker_tools::secrets::Secrets::open(store.clone(), &config).ok())
        .flatten()
        .map(std::sync::Arc::new);
    let env: Vec<(String, String)> = std::env::vars().collect();
    let to_s3 = args.to == "s3";
    let mut last_shown = 0;
    let outcome = coworker_server::blobs::migrate(&config, &env, secrets.as_ref(), &data_dir, to_s3, |done, total| {
        if done == total || done - last_shown >= 100 {
            eprintln!("{done}/{total} blobs");
            last_shown = done;
        }
    })
    .await;
    store.close().await;
    match outcome {
        Ok(report) => {
            println!(
                "Copied {} blobs to {}; {} were already there.",
                report.copied,
                if to_s3 {
                    config.storage.blobs.trim().to_owned()
                } else {
                    data_dir.join("blobs").display().to_string()
                },
                report.skipped
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!(
                "error: {e}
  (nothing copied is lost: run the same command again to resume)"
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn doctor(global: &GlobalArgs, args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let (checks, failed) = match load::config(global.config.as_deref(), args.data_dir.data_dir.as_deref(), None) {
        Ok(loaded) => {
            let checks = coworker_server::doctor::run_checks(&loaded.config, &loaded.source).await;
            let failed = checks.iter().any(|c| c.status == CheckStatus::Fail);
            (checks, failed)
        }
        Err(e) => (
            vec![coworker_core::doctor::Check::fail(
                "config",
                format!("{e:#}"),
                "fix the configuration and run doctor again",
            )],
            true,
        ),
    };
    if args.json {
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
            println!("{status}  {:<10}  {}", check.name, check.detail);
            if !check.fix.is_empty() {
                println!("      {:<10}  fix: {}", "", check.fix);
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Example coworker definition written by `coworker init`.
const EXAMPLE_COWORKER: &str = r#"# coworkers/assistant.toml — one file per coworker. The handle is how you address it
# (`coworker task new --to assistant "…"`, or @assistant in Slack).
name = "Assistant"
handle = "assistant"
role = """
General assistant for the team: researches questions, drafts documents and summaries,
and keeps track of follow-ups. Asks before sending anything outside the team.
"""
# The human responsible for this coworker (approvals escalate to them).
# manager = "you@example.com"
# model = "openai/gpt-4.1-mini"
# Tools it may use (globs over namespaced tool names).
# tools = ["workspace.*", "http.fetch"]
timezone = "UTC"
# working_hours = "Mon-Fri 09:00-18:00"
# [budget]
# task_usd = 2.00
# daily_usd = 20.00
"#;

fn init(args: &InitArgs) -> anyhow::Result<ExitCode> {
    let config_path = args.dir.join("coworker.toml");
    let coworker_path = args.dir.join("coworkers").join("assistant.toml");
    for path in [&config_path, &coworker_path] {
        if path.exists() {
            anyhow::bail!(
                "{} already exists; not overwriting it (move it away first if you want a fresh one)",
                path.display()
            );
        }
    }
    std::fs::create_dir_all(args.dir.join("coworkers"))
        .with_context(|| format!("creating {}", args.dir.join("coworkers").display()))?;
    std::fs::write(&config_path, CONFIG_TEMPLATE).with_context(|| format!("writing {}", config_path.display()))?;
    std::fs::write(&coworker_path, EXAMPLE_COWORKER).with_context(|| format!("writing {}", coworker_path.display()))?;
    println!("Wrote {} and {}.", config_path.display(), coworker_path.display());
    println!("Every key is commented with its default; uncomment what you change, then run `coworker serve`.");
    Ok(ExitCode::SUCCESS)
}
