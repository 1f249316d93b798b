//! Real `coworker` processes for crash tests and benchmarks: a config file pointing at a
//! scripted model server, spawning `serve` / `worker`, reading the banner, waiting for a
//! condition with a bound.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Upper bound on how long a condition may take to become true before a test fails.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Writes `coworker.toml` in `dir`: the given database, short leases so a killed node's
/// runs are taken over quickly, the scripted model as the only provider, then `extra` TOML
/// appended verbatim (more sections, `[[mcp]]` servers…).
pub fn config_file(dir: &Path, model_url: &str, database_url: &str, extra: &str) -> PathBuf {
    let path = dir.join("coworker.toml");
    let text = format!(
        r#"[storage]
database_url = "{database_url}"

[engine]
workers = 4
lease_ttl_ms = 1500
heartbeat_ms = 300
poll_interval_ms = 200

[models]
default = "scripted/test-model"
detect_ollama = false
max_attempts = 1
first_byte_timeout_ms = 600000
call_timeout_ms = 600000

[[providers]]
name = "scripted"
kind = "openai"
base_url = "{model_url}"

{extra}
"#
    );
    std::fs::write(&path, text).expect("write coworker.toml");
    path
}

/// Spawns the `coworker` binary at `bin` with `args`, the config and the data dir, in a
/// clean environment (PATH only), stdout piped for [`banner_url`].
pub fn spawn(bin: &Path, args: &[&str], config: &Path, data_dir: &Path) -> Child {
    spawn_with_env(bin, args, config, data_dir, &[])
}

/// Variables for a spawned node read from the environment variable `var`, written
/// `K=V,K=V` (benches pass allocator settings and the like through it); empty when unset.
pub fn env_pairs(var: &str) -> Vec<(String, String)> {
    std::env::var(var)
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// [`spawn`] with these variables added to the child's (otherwise minimal) environment.
pub fn spawn_with_env(bin: &Path, args: &[&str], config: &Path, data_dir: &Path, env: &[(String, String)]) -> Child {
    Command::new(bin)
        .args(args)
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data_dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn coworker")
}

/// Waits for the serve banner; returns the node URL. Keeps draining stdout afterwards so
/// the child never blocks on a full pipe.
pub fn banner_url(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let mut url = None;
    for line in lines.by_ref() {
        let Ok(line) = line else { break };
        if let Some((_, rest)) = line.split_once(" is running at ") {
            url = Some(rest.trim().to_owned());
        }
        if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    url.expect("serve printed its URL")
}

/// Polls `condition` every 20 ms until it holds; panics naming `what` after [`PATIENCE`].
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        assert!(started.elapsed() < PATIENCE, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Resident memory of process `pid` in KiB (Linux `/proc`), if readable.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS")
}

/// The anonymous part of process `pid`'s resident memory in KiB (heap and stacks, without
/// the pages of its binary and libraries), if readable: what grows when a process leaks.
pub fn rss_anon_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "RssAnon")
}

/// CPU time process `pid` has used so far (user + system), in seconds (Linux `/proc`).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces, so split after its ')'):
    // state is field 3; utime and stime are fields 14 and 15, in clock ticks.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ, which /proc reports in, is 100 on every Linux architecture we run on.
    Some((utime + stime) / 100.0)
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
