//! Dashboard: how the last fortnight went — tasks per day, success rate, median time to
//! completion, how often a person had to step in, cost per task and per coworker, tasks by
//! status. The figures come from [`coworker_store::Store::dashboard_stats`], the same method
//! behind the API's metrics summary, so both always agree.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use coworker_store::{DAY_MS, DashboardStats, now_ms};

use super::{PageContext, WebError, WebUser, dollars, iso, render, when};
use crate::api::AppState;

/// Days the dashboard covers, today included.
pub const DASHBOARD_DAYS: i64 = 14;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/dashboard", get(dashboard_page))
}

/// One day's bar.
struct DayBar {
    day: String,
    /// Bar height, percent of the busiest day.
    height_percent: i64,
    created: i64,
    done: i64,
    failed: i64,
}

struct CoworkerRow {
    handle: String,
    tasks: i64,
    succeeded: i64,
    cost: String,
    cost_per_task: String,
}

struct StatusRow {
    status: String,
    count: i64,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    page: PageContext,
    days: i64,
    /// Whether any task exists at all (else the page is the fresh-install welcome).
    any_task_ever: bool,
    tasks_total: i64,
    bars: Vec<DayBar>,
    first_day: String,
    last_day: String,
    busiest: i64,
    success_rate: String,
    success_detail: String,
    median_completion: String,
    intervention_rate: String,
    intervention_detail: String,
    cost_total: String,
    cost_per_task: String,
    per_coworker: Vec<CoworkerRow>,
    by_status: Vec<StatusRow>,
    computed_at: String,
    computed_at_iso: String,
}

/// A rate from 0 to 1 as a whole percentage, or a dash when there is nothing to divide.
fn percent(rate: Option<f64>) -> String {
    match rate {
        Some(rate) => format!("{:.0}%", rate * 100.0),
        None => "—".to_owned(),
    }
}

/// A duration for people: `850 ms`, `42 s`, `4 min 12 s`, `3 h 5 min`, `2 d 4 h`.
pub fn human_duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        return format!("{ms} ms");
    }
    let seconds = ms / 1000;
    let (days, hours, minutes, secs) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60, seconds % 60);
    if days > 0 {
        format!("{days} d {hours} h")
    } else if hours > 0 {
        format!("{hours} h {minutes} min")
    } else if minutes > 0 {
        format!("{minutes} min {secs} s")
    } else {
        format!("{secs} s")
    }
}

fn bars(stats: &DashboardStats) -> (Vec<DayBar>, i64) {
    let busiest = stats.tasks_per_day.iter().map(|d| d.created).max().unwrap_or(0);
    let bars = stats
        .tasks_per_day
        .iter()
        .map(|d| DayBar {
            day: d.day.clone(),
            height_percent: if busiest > 0 { d.created * 100 / busiest } else { 0 },
            created: d.created,
            done: d.done,
            failed: d.failed,
        })
        .collect();
    (bars, busiest)
}

async fn dashboard_page(State(state): State<AppState>, user: WebUser) -> Result<Response, WebError> {
    let today = now_ms().div_euclid(DAY_MS);
    let since_ms = (today - (DASHBOARD_DAYS - 1)) * DAY_MS;
    let stats = state.store.dashboard_stats(since_ms).await?;
    let any_task_ever = stats.tasks_total > 0
        || state
            .store
            .count_tasks_by_status()
            .await?
            .iter()
            .any(|(_, count)| *count > 0);
    let (bars, busiest) = bars(&stats);
    let page = DashboardPage {
        page: user.page(&state, "Dashboard", "dashboard").await?,
        days: DASHBOARD_DAYS,
        any_task_ever,
        tasks_total: stats.tasks_total,
        first_day: bars.first().map(|b| b.day.clone()).unwrap_or_default(),
        last_day: bars.last().map(|b| b.day.clone()).unwrap_or_default(),
        bars,
        busiest,
        success_rate: percent(stats.success_rate),
        success_detail: format!("{} of {} finished tasks done", stats.succeeded, stats.finished),
        median_completion: stats
            .median_completion_ms
            .map_or_else(|| "—".to_owned(), human_duration),
        intervention_rate: percent(stats.human_intervention_rate),
        intervention_detail: format!(
            "{} of {} finished tasks needed an approval or an answer",
            stats.finished_with_human_intervention, stats.finished
        ),
        cost_total: dollars(stats.cost_micros_usd),
        cost_per_task: stats.cost_per_task_micros_usd.map_or_else(|| "—".to_owned(), dollars),
        per_coworker: stats
            .per_coworker
            .iter()
            .map(|c| CoworkerRow {
                handle: c.handle.clone(),
                tasks: c.tasks,
                succeeded: c.succeeded,
                cost: dollars(c.cost_micros_usd),
                cost_per_task: dollars(c.cost_per_task_micros_usd),
            })
            .collect(),
        by_status: stats
            .tasks_by_status
            .iter()
            .map(|s| StatusRow {
                status: s.status.to_string(),
                count: s.count,
            })
            .collect(),
        computed_at: when(stats.computed_at_ms),
        computed_at_iso: iso(stats.computed_at_ms),
    };
    render(&page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(850), "850 ms");
        assert_eq!(human_duration(42_000), "42 s");
        assert_eq!(human_duration(252_000), "4 min 12 s");
        assert_eq!(human_duration(3 * 3_600_000 + 5 * 60_000), "3 h 5 min");
        assert_eq!(human_duration(2 * 86_400_000 + 4 * 3_600_000), "2 d 4 h");
    }

    #[test]
    fn rates_are_whole_percentages() {
        assert_eq!(percent(Some(0.834)), "83%");
        assert_eq!(percent(None), "—");
    }
}
