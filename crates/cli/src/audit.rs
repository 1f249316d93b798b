//! `coworker audit`: verify the hash chain, export entries as JSON lines, tail the log.
//! Works on the database directly (like `migrate`), so it needs no running node. Also the
//! shared opener for operator commands that work on the store.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use coworker_core::config::{Config, DatabaseKind};
use coworker_store::{AUDIT_MAX_PAGE_ROWS, AuditFilter, AuditRecord, Store};

/// How often `audit tail --follow` looks for new entries.
const FOLLOW_POLL_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Args)]
pub struct AuditArgs {
    /// Data directory holding the SQLite database (overrides storage.data_dir)
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain from the first entry to the newest; exit 1 naming the first broken entry
    Verify {
        /// Print the result as JSON
        #[arg(long)]
        json: bool,
    },
    /// Write entries to stdout, oldest first
    Export {
        /// One JSON object per line (the only format so far)
        #[arg(long, required = true)]
        jsonl: bool,
        /// Only entries since this time: RFC 3339 (2025-01-31T09:00:00Z) or an age (30m, 24h, 7d)
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
    },
    /// Show the newest entries, one line each
    Tail {
        /// How many entries to show
        #[arg(short = 'n', long = "lines", default_value_t = 20, value_name = "N")]
        lines: u32,
        /// Keep printing new entries as they are appended (Ctrl-C to stop)
        #[arg(long, short = 'f')]
        follow: bool,
    },
}

pub async fn run(global: &crate::GlobalArgs, args: AuditArgs) -> anyhow::Result<ExitCode> {
    let loaded = crate::load::config(global.config.as_deref(), args.data_dir.as_deref(), None)?;
    let store = open_store(&loaded.config).await?;
    let result = match args.command {
        AuditCommand::Verify { json } => verify(&store, json).await,
        AuditCommand::Export { jsonl: _, since } => export(&store, since.as_deref()).await,
        AuditCommand::Tail { lines, follow } => tail(&store, lines, follow).await,
    };
    store.close().await;
    result
}

/// Opens the database for an operator command that works on the store directly. The schema
/// must be current; a missing SQLite database is reported, not created empty.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let data_dir = PathBuf::from(&config.storage.data_dir);
    if config.database_kind()? == DatabaseKind::Sqlite {
        let path = coworker_store::sqlite_path(&data_dir);
        if !path.is_file() {
            bail!(
                "no database at {}\n  fix: run `coworker migrate` (or `coworker serve`) first, or point --data-dir / \
                 COWORKER_DATA_DIR at an existing data dir",
                path.display()
            );
        }
    }
    let store = Store::open(&config.storage, &data_dir).await?;
    store.check_schema().await?;
    Ok(store)
}

fn entries(n: u64) -> String {
    if n == 1 {
        "1 entry".into()
    } else {
        format!("{n} entries")
    }
}

async fn verify(store: &Store, json: bool) -> anyhow::Result<ExitCode> {
    let verification = store.audit_verify().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&verification)?);
    } else if let Some(broken) = &verification.first_broken {
        println!("audit log BROKEN at {broken}");
        println!(
            "  {} before it verified intact; entries from seq {} on cannot be trusted",
            entries(verification.checked),
            broken.seq
        );
    } else {
        match &verification.head {
            Some((seq, hash)) => println!(
                "{}, chain intact (head: seq {seq}, hash {hash}; record it elsewhere to detect later rewrites of the newest entries)",
                entries(verification.checked)
            ),
            None => println!("0 entries, chain intact (the log is empty)"),
        }
    }
    Ok(if verification.is_intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Parses `--since`: an RFC 3339 time, or an age (`90s`, `30m`, `24h`, `7d`, `2w`) before `now_ms`.
fn parse_since(text: &str, now_ms: i64) -> anyhow::Result<i64> {
    let text = text.trim();
    if let Ok(at) = text.parse::<jiff::Timestamp>() {
        return Ok(at.as_millisecond());
    }
    let explain =
        || format!("--since {text:?} is neither an RFC 3339 time (2025-01-31T09:00:00Z) nor an age (30m, 24h, 7d)");
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let amount: i64 = digits.parse().map_err(|_| anyhow::anyhow!(explain()))?;
    let unit_ms: i64 = match unit.trim() {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => bail!(explain()),
    };
    let age_ms = amount.checked_mul(unit_ms).with_context(explain)?;
    Ok(now_ms.saturating_sub(age_ms))
}

/// Feeds every entry matching `filter` (from its `after_seq` on) to `each`, a page at a time.
/// Returns the last seq seen, if any.
async fn for_each_entry(
    store: &Store,
    mut filter: AuditFilter,
    mut each: impl FnMut(&AuditRecord) -> std::io::Result<()>,
) -> anyhow::Result<Option<i64>> {
    filter.limit = AUDIT_MAX_PAGE_ROWS;
    let mut last = None;
    loop {
        let page = store.audit_list(&filter).await?;
        for record in &page {
            each(record)?;
        }
        match page.last() {
            Some(record) => {
                last = Some(record.seq);
                filter.after_seq = Some(record.seq);
            }
            None => return Ok(last),
        }
        if page.len() < AUDIT_MAX_PAGE_ROWS as usize {
            return Ok(last);
        }
    }
}

fn rfc3339(at_ms: i64) -> String {
    jiff::Timestamp::from_millisecond(at_ms).map_or_else(|_| format!("{at_ms}ms"), |t| t.to_string())
}

/// Whether an error is the reader of our stdout going away (`| head`): not a failure.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

async fn export(store: &Store, since: Option<&str>) -> anyhow::Result<ExitCode> {
    let since_ms = since
        .map(|text| parse_since(text, coworker_store::now_ms()))
        .transpose()?;
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let filter = AuditFilter {
        since_ms,
        ..AuditFilter::default()
    };
    let written = for_each_entry(store, filter, |record| {
        let mut line = serde_json::to_value(record).map_err(std::io::Error::other)?;
        line["at"] = rfc3339(record.at_ms).into();
        serde_json::to_writer(&mut out, &line).map_err(std::io::Error::other)?;
        out.write_all(b"\n")
    })
    .await
    .and_then(|_| out.flush().map_err(Into::into));
    match written {
        Err(e) if is_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        other => other.map(|()| ExitCode::SUCCESS),
    }
}

fn human_line(record: &AuditRecord) -> String {
    let at = jiff::Timestamp::from_millisecond(record.at_ms)
        .and_then(|t| t.round(jiff::Unit::Second))
        .map_or_else(|_| format!("{}ms", record.at_ms), |t| t.to_string());
    let mut line = format!(
        "{at}  #{:<6} {:<16} {:<20} {}",
        record.seq, record.actor, record.action, record.subject
    );
    let empty = record.details.as_object().is_some_and(|m| m.is_empty()) || record.details.is_null();
    if !empty {
        line.push_str("  ");
        line.push_str(&record.details.to_string());
    }
    line
}

async fn tail(store: &Store, lines: u32, follow: bool) -> anyhow::Result<ExitCode> {
    let head = store.audit_head().await?.map_or(0, |(seq, _)| seq);
    let mut cursor = head.saturating_sub(i64::from(lines));
    let mut out = std::io::stdout();
    let mut print = |record: &AuditRecord| {
        writeln!(out, "{}", human_line(record))?;
        out.flush()
    };
    let filter = |after| AuditFilter {
        after_seq: Some(after),
        ..AuditFilter::default()
    };
    let printed = for_each_entry(store, filter(cursor), &mut print).await;
    match printed {
        Ok(last) => cursor = last.unwrap_or(cursor),
        Err(e) if is_broken_pipe(&e) => return Ok(ExitCode::SUCCESS),
        Err(e) => return Err(e),
    }
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => return Ok(ExitCode::SUCCESS),
            () = tokio::time::sleep(FOLLOW_POLL_INTERVAL) => {}
        }
        match for_each_entry(store, filter(cursor), &mut print).await {
            Ok(last) => cursor = last.unwrap_or(cursor),
            Err(e) if is_broken_pipe(&e) => return Ok(ExitCode::SUCCESS),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_rfc3339_and_ages() {
        let now = 1_700_000_000_000;
        assert_eq!(parse_since("2023-11-14T22:13:20Z", now).unwrap(), now);
        assert_eq!(parse_since("24h", now).unwrap(), now - 86_400_000);
        assert_eq!(parse_since("30m", now).unwrap(), now - 1_800_000);
        assert_eq!(parse_since("7d", now).unwrap(), now - 7 * 86_400_000);
        for bad in ["", "yesterday", "24", "h", "5y", "-3h"] {
            let err = parse_since(bad, now).unwrap_err().to_string();
            assert!(err.contains("RFC 3339"), "{bad}: {err}");
        }
    }
}
