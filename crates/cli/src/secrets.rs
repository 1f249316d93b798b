//! `coworker secrets`: store, list and delete encrypted secrets, on the database directly.
//! Values come from stdin, a hidden terminal prompt or a named environment variable — never
//! from the command line, where other users and shell history would see them — and are
//! never printed. Every change is audited with actor `cli`.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use coworker_store::SecretWrite;
use coworker_tools::secrets::{self as secret_store, KeySource, MAX_SECRET_VALUE_BYTES, SecretString, Secrets};
use zeroize::Zeroizing;

/// Actor recorded in the audit log for changes made here.
const CLI_ACTOR: &str = "cli";

#[derive(Args)]
pub struct SecretsArgs {
    /// Data directory holding the SQLite database and key file (overrides storage.data_dir)
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: SecretsCommand,
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Store a secret (replacing any value it had). The value is read from stdin (all of it,
    /// minus one trailing newline), from a hidden prompt when stdin is a terminal, or from
    /// --from-env; never from the command line
    Set {
        /// Name: 1 to 128 letters, digits, '_', '.' or '-' (referenced as secret:NAME in config)
        name: String,
        /// Read the value from this environment variable instead of stdin
        #[arg(long, value_name = "VAR")]
        from_env: Option<String>,
    },
    /// Secret names and when each was created, changed and last used (never values)
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Delete a secret
    Delete {
        /// Name of the secret
        name: String,
    },
}

pub async fn run(global: &crate::GlobalArgs, args: SecretsArgs) -> anyhow::Result<ExitCode> {
    let loaded = crate::load::config(global.config.as_deref(), args.data_dir.as_deref(), None)?;
    let config = loaded.config;
    let open = || crate::audit::open_store(&config);
    match args.command {
        SecretsCommand::Set { name, from_env } => {
            // Validate and read the value before touching the database: bad input changes nothing.
            secret_store::validate_name(&name)?;
            let value = read_value(&name, from_env.as_deref())?;
            let store = open().await?;
            let result = set(&store, &config, &name, value).await;
            store.close().await;
            result
        }
        SecretsCommand::List { json } => {
            let store = open().await?;
            let result = list(&store, json).await;
            store.close().await;
            result
        }
        SecretsCommand::Delete { name } => {
            let store = open().await?;
            let result = delete(&store, &name).await;
            store.close().await;
            result
        }
    }
}

fn read_value(name: &str, from_env: Option<&str>) -> anyhow::Result<SecretString> {
    if let Some(var) = from_env {
        return match std::env::var(var) {
            Ok(value) if !value.is_empty() => {
                let value = Zeroizing::new(value);
                Ok(SecretString::from(value.as_str()))
            }
            Ok(_) => bail!("environment variable {var} is empty; nothing was stored"),
            Err(std::env::VarError::NotPresent) => bail!("environment variable {var} is not set; nothing was stored"),
            Err(std::env::VarError::NotUnicode(_)) => {
                bail!("environment variable {var} is not valid UTF-8; nothing was stored")
            }
        };
    }
    if std::io::stdin().is_terminal() {
        let value = Zeroizing::new(
            rpassword::prompt_password(format!("Value for secret {name} (input is hidden): "))
                .context("cannot read the value from the terminal")?,
        );
        return Ok(SecretString::from(value.as_str()));
    }
    // Room for the largest value plus a trailing "\r\n", and one byte more to notice excess.
    let cap = MAX_SECRET_VALUE_BYTES + 3;
    let mut value = Zeroizing::new(String::with_capacity(cap));
    std::io::stdin()
        .lock()
        .take(cap as u64)
        .read_to_string(&mut value)
        .context("cannot read the value from stdin (it must be UTF-8 text)")?;
    if value.len() == cap {
        bail!("the value on stdin is over the limit of {MAX_SECRET_VALUE_BYTES} bytes; nothing was stored");
    }
    let trimmed = value
        .strip_suffix("\r\n")
        .or_else(|| value.strip_suffix('\n'))
        .unwrap_or(&value);
    if trimmed.is_empty() {
        bail!(
            "no value on stdin; pipe it in (`printf %s \"$TOKEN\" | coworker secrets set {name}`) or use --from-env VAR"
        );
    }
    Ok(SecretString::from(trimmed))
}

async fn set(
    store: &coworker_store::Store,
    config: &coworker_core::config::Config,
    name: &str,
    value: SecretString,
) -> anyhow::Result<ExitCode> {
    let key_file = secret_store::key_file_path(config);
    let key_file_existed = key_file.exists();
    let secrets = Secrets::open(store.clone(), config)?;
    if let KeySource::File(path) = secrets.key_source()
        && !key_file_existed
    {
        eprintln!(
            "Created a new master key at {} (mode 0600). Back it up with the database: stored secrets cannot be \
             decrypted without it.",
            path.display()
        );
    }
    let outcome = secrets.set(name, value, CLI_ACTOR).await?;
    match outcome {
        SecretWrite::Created => println!("Stored secret {name}. Reference it in configuration as secret:{name}."),
        SecretWrite::Updated => println!("Replaced the value of secret {name}."),
    }
    Ok(ExitCode::SUCCESS)
}

fn time(at_ms: i64) -> String {
    jiff::Timestamp::from_millisecond(at_ms)
        .and_then(|t| t.round(jiff::Unit::Second))
        .map_or_else(|_| format!("{at_ms}ms"), |t| t.to_string())
}

async fn list(store: &coworker_store::Store, json: bool) -> anyhow::Result<ExitCode> {
    let secrets = secret_store::list(store).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&secrets)?);
        return Ok(ExitCode::SUCCESS);
    }
    if secrets.is_empty() {
        println!("No secrets stored. Add one with `coworker secrets set NAME` (the value is read from stdin).");
        return Ok(ExitCode::SUCCESS);
    }
    let width = secrets.iter().map(|s| s.name.len()).max().unwrap_or(0).max(4);
    println!(
        "{:<width$}  {:<12}  {:<20}  {:<20}  LAST USED",
        "NAME", "CREATED BY", "CREATED", "UPDATED"
    );
    for secret in &secrets {
        println!(
            "{:<width$}  {:<12}  {:<20}  {:<20}  {}",
            secret.name,
            secret.created_by,
            time(secret.created_at_ms),
            time(secret.updated_at_ms),
            secret.last_used_at_ms.map_or_else(|| "never".to_owned(), time)
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn delete(store: &coworker_store::Store, name: &str) -> anyhow::Result<ExitCode> {
    if secret_store::delete(store, name, CLI_ACTOR).await? {
        println!("Deleted secret {name}.");
        Ok(ExitCode::SUCCESS)
    } else {
        bail!("no secret named {name}; `coworker secrets list` shows the names")
    }
}
