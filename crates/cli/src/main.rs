//! The `coworker` binary: parses arguments, loads configuration and hands off to the library
//! crates. It holds no logic of its own beyond rendering results for the terminal.

mod load;
mod logging;

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
    /// Print the version and the database schema version this binary expects
    Version(JsonArg),
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

fn main() -> ExitCode {
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
        Command::Migrate(args) => migrate(&cli.global, args).await,
    }
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
    let node = Node::start(loaded.config, NodeOptions { handle_signals: true }).await?;
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
