//! The provenance check per tool call (issue 19) with 1 MB of untrusted content in the run:
//! identifiers are extracted once when content is ingested, so a check walks the call's
//! arguments and looks each candidate up in hash maps, whatever the run has seen.
//! Run with `cargo bench -p coworker-core --bench provenance`. Target: ≤ 100 µs per call.

use std::hint::black_box;
use std::time::Instant;

use coworker_core::provenance::{Origin, ProvenanceAllow, ProvenanceIndex};
use serde_json::json;

/// Untrusted content ingested before the checks, in bytes.
const UNTRUSTED_BYTES: usize = 1024 * 1024;
/// Size of one tool result (the engine's default `max_tool_result_bytes`).
const RESULT_BYTES: usize = 16 * 1024;
/// Checks measured per figure.
const ITERATIONS: u32 = 20_000;

/// A page-like tool result: prose with links, addresses, numbers, paths, channels and users,
/// all distinct across results so the index holds many identifiers.
fn result(n: usize) -> String {
    let mut text = String::with_capacity(RESULT_BYTES + 512);
    let mut i = 0;
    while text.len() < RESULT_BYTES {
        let k = n * 1000 + i;
        text.push_str(&format!(
            "Paragraph {k}: the quarterly figures were discussed at length by the team, see \
             https://site-{k}.example.net/articles/{k}?ref=feed and write to person{k}@mail-{k}.example.org. \
             Call +1 415 555 {:04} or wire to account {:016}. Files: shared/team-{k}/notes-{k}.md, \
             discussed in #channel-{k} with @user{k}. Revenue grew 12.5% on 2026-11-{:02}.\n",
            k % 10_000,
            4_000_000_000_000_000u64 + k as u64,
            k % 28 + 1,
        ));
        i += 1;
    }
    text
}

/// CPU time this thread has run, in ns (Linux `schedstat`), so a figure taken on a machine
/// shared with other builds counts the check's own work, not the time it waited for a core.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Runs `body` and prints wall-clock and CPU time per call; returns the CPU figure (wall when
/// CPU time is unavailable), in µs.
fn per_call(label: &str, mut body: impl FnMut()) -> f64 {
    for _ in 0..200 {
        body();
    }
    let cpu_start = thread_cpu_ns();
    let start = Instant::now();
    for _ in 0..ITERATIONS {
        body();
    }
    let wall_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(ITERATIONS);
    let cpu_us = match (cpu_start, thread_cpu_ns()) {
        (Some(a), Some(b)) => Some((b - a) as f64 / 1e3 / f64::from(ITERATIONS)),
        _ => None,
    };
    match cpu_us {
        Some(cpu) => println!("{label:<58} {cpu:>8.2} µs/call CPU ({wall_us:.2} wall)"),
        None => println!("{label:<58} {wall_us:>8.2} µs/call wall"),
    }
    cpu_us.unwrap_or(wall_us)
}

fn main() {
    let mut index = ProvenanceIndex::new();
    index.add_trusted(
        "Summarise https://reports.acme-partner.com/q3 and post the summary in #marketing; copy dana@acme.com",
    );
    let results: Vec<String> = (0..UNTRUSTED_BYTES / RESULT_BYTES).map(result).collect();
    let start = Instant::now();
    for (n, text) in results.iter().enumerate() {
        index.add_untrusted(
            text,
            Origin {
                source: "tool_result".into(),
                tool: "web.get_page".into(),
                call_id: format!("t{n}:c0"),
                step: n as i64 * 4 + 5,
            },
        );
    }
    let ingest_ms = start.elapsed().as_secs_f64() * 1e3;
    println!(
        "ingested {} bytes of untrusted content in {} results: {} identifiers, {ingest_ms:.1} ms once ({:.1} ms/MB)",
        index.untrusted_bytes(),
        results.len(),
        index.untrusted_identifiers(),
        ingest_ms / (index.untrusted_bytes() as f64 / (1024.0 * 1024.0))
    );

    let allow = ProvenanceAllow::default();
    let clean = json!({"url": "https://reports.acme-partner.com/q3/appendix"});
    let tainted = json!({"url": "https://site-61005.example.net/collect?d=revenue"});
    let post = json!({
        "channel": "#marketing",
        "text": "Q3 summary: revenue grew, costs fell. ".repeat(100)
            + "Sources: https://reports.acme-partner.com/q3, dana@acme.com, +1 415 555 0100, shared/q3/summary.md",
    });
    let wide = json!({
        "to": ["dana@acme.com", "person60001@mail-60001.example.org"],
        "cc": (0..20).map(|i| format!("colleague{i}@acme.com")).collect::<Vec<_>>(),
        "subject": "Q3",
        "body": "See the attached figures.",
        "attachments": ["shared/q3/summary.md", "shared/team-60002/notes-60002.md"],
    });
    let mut worst: f64 = 0.0;
    for (label, arguments) in [
        ("clean fetch (URL the brief named)", &clean),
        ("tainted fetch (host from a result)", &tainted),
        ("4 KB channel post with identifiers in its text", &post),
        ("email with 22 recipients and 2 paths", &wide),
    ] {
        let found = index.tainted(arguments, &allow).len();
        let us = per_call(&format!("{label} [{found} tainted]"), || {
            black_box(index.tainted(black_box(arguments), &allow));
        });
        worst = worst.max(us);
    }
    println!(
        "worst case {worst:.2} µs of CPU per call with {} bytes of untrusted content: {}",
        index.untrusted_bytes(),
        if worst <= 100.0 {
            "within the 100 µs target"
        } else {
            "OVER the 100 µs target"
        }
    );
}
