//! Deliverable benchmarks: time and peak RSS to produce a 50-page PDF report with tables,
//! a 100,000-row XLSX and a 30-slide PPTX, each rendered and re-opened by its reader exactly
//! as the tools do. Each scenario runs in its own child process so its peak RSS (VmHWM) is
//! its own. Run: `cargo bench -p coworker-documents --bench documents`.

use std::process::Command;
use std::time::Instant;

use coworker_documents::document::{DocumentArgs, Images};
use coworker_documents::render;
use coworker_documents::slides::{SlideArgs, SlidesArgs};
use coworker_documents::spreadsheet::{ColumnArgs, SheetArgs, SpreadsheetArgs};
use serde_json::{Value, json};

const SCENARIO_VAR: &str = "COWORKER_DOCUMENTS_BENCH_SCENARIO";
const SCENARIOS: [&str; 5] = [
    "pdf-50-pages",
    "xlsx-100k-rows",
    "xlsx-100k-rows-write-only",
    "pptx-30-slides",
    "slides-pdf-30",
];

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn report_markdown(sections: usize, rows: usize) -> String {
    let mut md = String::new();
    for s in 1..=sections {
        md.push_str(&format!(
            "## Region {s}\n\nRevenue for region {s} grew steadily; the table lists each account with its revenue, margin and status for the quarter.\n\n| Account | Revenue | Margin | Status |\n|---|--:|--:|---|\n"
        ));
        for r in 1..=rows {
            md.push_str(&format!(
                "| Account {s}-{r} | {} | {}% | {} |\n",
                1000 + r * 37,
                10 + r % 30,
                if r % 3 == 0 { "at risk" } else { "ok" }
            ));
        }
        md.push('\n');
    }
    md
}

fn spreadsheet(rows: usize) -> SpreadsheetArgs {
    let column = |name: &str, kind: &str| ColumnArgs {
        name: name.into(),
        kind: kind.into(),
        width: None,
        format: None,
        currency: None,
    };
    let data: Vec<Vec<Value>> = (0..rows)
        .map(|i| {
            vec![
                json!(format!("Customer {i}")),
                json!(i as f64 * 1.5),
                json!((i % 1000) as f64 + 0.99),
                json!((i % 100) as f64 / 100.0),
                json!(format!("2026-{:02}-{:02}", 1 + i % 12, 1 + i % 28)),
            ]
        })
        .collect();
    SpreadsheetArgs {
        sheets: vec![SheetArgs {
            name: "Data".into(),
            columns: vec![
                column("Customer", "text"),
                column("Orders", "number"),
                column("Revenue", "currency"),
                column("Share", "percent"),
                column("Since", "date"),
            ],
            rows: data,
            min_rows: None,
            max_rows: None,
            chart: None,
        }],
        path: None,
        formats: Some(vec!["xlsx".into()]),
    }
}

fn deck(slides: usize, formats: &[&str]) -> SlidesArgs {
    SlidesArgs {
        title: "Quarterly review".into(),
        subtitle: Some("Q3 2026".into()),
        slides: (1..=slides)
            .map(|i| SlideArgs {
                title: format!("Topic {i}"),
                bullets: (1..=5)
                    .map(|b| format!("Point {b} about topic {i}, with enough words to wrap"))
                    .collect(),
                notes: Some(format!("Speaker notes for topic {i}.")),
                image: None,
                table: None,
                chart: None,
            })
            .collect(),
        path: None,
        formats: Some(formats.iter().map(|f| (*f).to_owned()).collect()),
        template: None,
    }
}

fn run(scenario: &str) {
    let started = Instant::now();
    let detail = match scenario {
        "pdf-50-pages" => {
            let args = DocumentArgs {
                title: "Quarterly report".into(),
                markdown: report_markdown(60, 30),
                path: None,
                formats: Some(vec!["pdf".into()]),
                template: None,
            };
            let rendered = render::document(&args, &Images::new()).expect("renders");
            let pdf = rendered.outputs.iter().find(|o| o.format == "pdf").expect("a pdf");
            format!("{} pages, {} KiB", pdf.inspection.units, pdf.bytes.len() / 1024)
        }
        "xlsx-100k-rows" => {
            let args = spreadsheet(100_000);
            let rendered = render::spreadsheet_owned(args).expect("renders");
            format!(
                "{} rows, {} KiB (written and re-read)",
                rendered.outputs[0].inspection.units,
                rendered.outputs[0].bytes.len() / 1024
            )
        }
        "xlsx-100k-rows-write-only" => {
            let args = spreadsheet(100_000);
            let model = coworker_documents::spreadsheet::check_owned(args).expect("checks");
            let bytes = coworker_documents::spreadsheet::write_xlsx(&model, None).expect("writes");
            format!("{} KiB (checked and written, not re-read)", bytes.len() / 1024)
        }
        "pptx-30-slides" => {
            let rendered = render::slides(&deck(30, &["pptx"]), &Images::new()).expect("renders");
            format!(
                "{} slides, {} KiB",
                rendered.outputs[0].inspection.units,
                rendered.outputs[0].bytes.len() / 1024
            )
        }
        "slides-pdf-30" => {
            let rendered = render::slides(&deck(30, &["pdf"]), &Images::new()).expect("renders");
            format!(
                "{} pages, {} KiB",
                rendered.outputs[0].inspection.units,
                rendered.outputs[0].bytes.len() / 1024
            )
        }
        other => panic!("unknown scenario {other}"),
    };
    let elapsed = started.elapsed();
    println!(
        "{scenario:<28} {:>8.0} ms   peak RSS {:>6.1} MiB   {detail}",
        elapsed.as_secs_f64() * 1000.0,
        peak_rss_mib()
    );
}

fn main() {
    if let Ok(scenario) = std::env::var(SCENARIO_VAR) {
        run(&scenario);
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let only: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    for scenario in SCENARIOS {
        if !only.is_empty() && !only.iter().any(|o| scenario.contains(o.as_str())) {
            continue;
        }
        let status = Command::new(&exe)
            .env(SCENARIO_VAR, scenario)
            .status()
            .expect("run a scenario");
        assert!(status.success(), "{scenario} failed");
    }
}
