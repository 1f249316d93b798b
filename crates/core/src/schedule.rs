//! Schedule math: cron expressions (5 fields, or 6 with seconds first; month and day names;
//! `@daily`-style shortcuts), IANA timezones, fixed intervals, the next fire times, the
//! schedule in words, catch-up planning after downtime, and delivery targets. Pure: the
//! caller passes the current time in.
//!
//! **Daylight saving time** (the behaviour every caller relies on):
//! - A wall-clock time that does not exist on a spring-forward day (02:30 when clocks jump
//!   from 02:00 to 03:00) fires **once, at the instant the clocks jump** (03:00 local).
//! - A wall-clock time that happens twice on a fall-back day (01:30 when clocks go from
//!   02:00 back to 01:00) fires **once, at its first occurrence** (the earlier offset).
//! - Consequence: a cron job with a fixed hour never fires twice or is never lost; a job
//!   that fires every minute pauses through the repeated hour. For work that must keep a
//!   steady pace through DST, use a fixed interval (`every 15m`), which counts real time.

use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

use crate::domain::EnumParseError;
use crate::text::closest;

/// How far ahead the next fire time is searched for, in days. A cron that matches no day in
/// this window (`0 0 30 2 *`, February 30th) is refused as never firing.
pub const MAX_CRON_SEARCH_DAYS: i32 = 366 * 8 + 2;

/// Shortest fixed interval, in seconds.
pub const MIN_INTERVAL_SECS: i64 = 1;

/// Longest fixed interval, in seconds (a year).
pub const MAX_INTERVAL_SECS: i64 = 366 * 24 * 3600;

/// Most fires the `all` catch-up policy makes for one schedule after downtime, unless the
/// schedule sets its own (lower) bound.
pub const MAX_CATCH_UP_FIRES: u32 = 100;

/// Default bound of the `all` catch-up policy.
pub const DEFAULT_CATCH_UP_MAX: u32 = 10;

/// How late a fire may be and still count as on time for the `none` catch-up policy, in ms.
/// A node that was busy for a few seconds fires; a node that was down for an hour does not.
pub const ON_TIME_GRACE_MS: i64 = 60_000;

/// Fewest ms between two occurrences: cron has a resolution of one second.
const SECOND_MS: i64 = 1000;

/// Most candidate wall-clock times skipped while searching for the next fire (they fall in a
/// repeated fall-back hour or before `after`); bounds a per-second cron through a fold.
const MAX_SKIPPED_CANDIDATES: u32 = 4 * 3600;

/// A schedule or cron input that cannot be used, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron has the wrong number of fields.
    #[error(
        "cron {cron:?} has {count} field(s); expected 5 (minute hour day-of-month month day-of-week) or 6 (second first), or a shortcut such as @daily"
    )]
    FieldCount {
        /// The cron as given.
        cron: String,
        /// How many fields it has.
        count: usize,
    },
    /// One field is wrong.
    #[error("cron {cron:?}: {field} field {value:?} is invalid: {problem}")]
    Field {
        /// The cron as given.
        cron: String,
        /// Which field (`minute`, `day-of-week`, …).
        field: &'static str,
        /// The field's text.
        value: String,
        /// What is wrong and what is allowed.
        problem: String,
    },
    /// An `@shortcut` we do not know.
    #[error("cron {cron:?} is not a known shortcut{}; use @yearly, @monthly, @weekly, @daily, @hourly or 5 fields", suggestion.as_ref().map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default())]
    Shortcut {
        /// The cron as given.
        cron: String,
        /// The closest shortcut.
        suggestion: Option<String>,
    },
    /// The cron is valid but matches no time (February 30th).
    #[error(
        "cron {cron:?} never fires (no date in the next 8 years matches it); check the day-of-month and month fields"
    )]
    NeverFires {
        /// The cron as given.
        cron: String,
    },
    /// The timezone is not in the IANA database.
    #[error("{name:?} is not a timezone{}", suggestion.as_ref().map(|s| format!("; did you mean {s:?}?")).unwrap_or_else(|| "; use an IANA name such as \"Europe/Paris\" or \"UTC\"".into()))]
    UnknownTimezone {
        /// The name as given.
        name: String,
        /// The closest known name.
        suggestion: Option<String>,
    },
    /// A fixed interval out of range or unreadable.
    #[error("interval {input:?} is invalid: {problem}")]
    Interval {
        /// The interval as given.
        input: String,
        /// What is wrong.
        problem: String,
    },
    /// A delivery target we cannot read.
    #[error(
        "delivery target {input:?} is invalid: {problem}; use \"inbox\", \"slack:dm:USER\", \"slack:channel:NAME\" or \"email:ADDRESS\""
    )]
    DeliveryTarget {
        /// The target as given.
        input: String,
        /// What is wrong.
        problem: String,
    },
}

/// One cron field: its name, range and the names its values may take.
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const SECOND: FieldSpec = FieldSpec {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
};
const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
};
// 7 is accepted for Sunday (as in most crons) and folded onto 0.
const DAY_OF_WEEK: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

const MONTH_WORDS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAY_WORDS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// A parsed cron expression: one bit set per field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    source: String,
    seconds: u64,
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    /// Day-of-month was `*`/`?`: only day-of-week restricts the day.
    dom_any: bool,
    /// Day-of-week was `*`/`?`: only day-of-month restricts the day.
    dow_any: bool,
}

fn members(mask: u64, min: u32, max: u32) -> Vec<u32> {
    (min..=max).filter(|v| mask & (1 << v) != 0).collect()
}

/// The first value `>= from` set in `mask`, at most `max`.
fn next_bit(mask: u64, from: u32, max: u32) -> Option<u32> {
    (from..=max).find(|v| mask & (1 << v) != 0)
}

impl Cron {
    /// Parses a cron expression: `min hour dom month dow`, or `sec min hour dom month dow`,
    /// or a shortcut (`@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`,
    /// `@hourly`). Fields take `*`, `?` (day fields), values, names (`MON`, `JAN`), ranges
    /// `a-b`, steps `*/n`, `a/n`, `a-b/n`, and lists of those. When both day fields are
    /// restricted a day matching either fires (as in Vixie cron).
    pub fn parse(input: &str) -> Result<Cron, ScheduleError> {
        let source = input.trim().to_owned();
        let expanded = match source.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *".to_owned(),
            "@monthly" => "0 0 1 * *".to_owned(),
            "@weekly" => "0 0 * * 0".to_owned(),
            "@daily" | "@midnight" => "0 0 * * *".to_owned(),
            "@hourly" => "0 * * * *".to_owned(),
            other if other.starts_with('@') => {
                let known = [
                    "@yearly",
                    "@annually",
                    "@monthly",
                    "@weekly",
                    "@daily",
                    "@midnight",
                    "@hourly",
                ];
                return Err(ScheduleError::Shortcut {
                    cron: source.clone(),
                    suggestion: closest(other, known).map(str::to_owned),
                });
            }
            _ => source.clone(),
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let (second_field, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            count => return Err(ScheduleError::FieldCount { cron: source, count }),
        };
        let field = |spec: &FieldSpec, text: &str| parse_field(&source, spec, text);
        let seconds = field(&SECOND, second_field)?;
        let minutes = field(&MINUTE, rest[0])?;
        let hours = field(&HOUR, rest[1])?;
        let days_of_month = field(&DAY_OF_MONTH, rest[2])?;
        let months = field(&MONTH, rest[3])?;
        let mut days_of_week = field(&DAY_OF_WEEK, rest[4])?;
        if days_of_week & (1 << 7) != 0 {
            days_of_week = (days_of_week & !(1 << 7)) | 1;
        }
        let is_any = |text: &str| text == "*" || text == "?";
        let cron = Cron {
            source: source.clone(),
            seconds,
            minutes,
            hours,
            days_of_month,
            months,
            days_of_week,
            dom_any: is_any(rest[2]),
            dow_any: is_any(rest[4]),
        };
        // February 30th and friends: valid syntax, no date. Checked from a leap year's start
        // so the 8-year window always contains a February 29th.
        let probe = Date::constant(2024, 1, 1).at(0, 0, 0, 0);
        if cron.next_civil(probe).is_none() {
            return Err(ScheduleError::NeverFires { cron: source });
        }
        Ok(cron)
    }

    /// The expression as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn day_matches(&self, date: Date) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let dom = self.days_of_month & (1 << date.day()) != 0;
        let dow = self.days_of_week & (1 << date.weekday().to_sunday_zero_offset()) != 0;
        match (self.dom_any, self.dow_any) {
            (true, true) => true,
            (false, true) => dom,
            (true, false) => dow,
            (false, false) => dom || dow,
        }
    }

    /// The first time of day at or after `from` that matches the time fields.
    fn time_at_or_after(&self, from: Time) -> Option<Time> {
        let (h0, m0, s0) = (from.hour() as u32, from.minute() as u32, from.second() as u32);
        let mut hour = next_bit(self.hours, h0, 23);
        while let Some(h) = hour {
            let mut minute = next_bit(self.minutes, if h == h0 { m0 } else { 0 }, 59);
            while let Some(m) = minute {
                let second_from = if h == h0 && m == m0 { s0 } else { 0 };
                if let Some(s) = next_bit(self.seconds, second_from, 59) {
                    return Time::new(h as i8, m as i8, s as i8, 0).ok();
                }
                minute = next_bit(self.minutes, m + 1, 59);
            }
            hour = next_bit(self.hours, h + 1, 23);
        }
        None
    }

    /// The first wall-clock time at or after `from` (whole seconds) that the cron matches.
    fn next_civil(&self, from: DateTime) -> Option<DateTime> {
        let mut date = from.date();
        let mut start = from.time();
        for _ in 0..MAX_CRON_SEARCH_DAYS {
            if self.day_matches(date)
                && let Some(time) = self.time_at_or_after(start)
            {
                return Some(date.to_datetime(time));
            }
            date = date.tomorrow().ok()?;
            start = Time::midnight();
        }
        None
    }
}

fn parse_field(cron: &str, spec: &FieldSpec, text: &str) -> Result<u64, ScheduleError> {
    let fail = |problem: String| ScheduleError::Field {
        cron: cron.to_owned(),
        field: spec.name,
        value: text.to_owned(),
        problem,
    };
    let value = |token: &str| -> Result<u32, ScheduleError> {
        if let Ok(n) = token.parse::<u32>() {
            if n < spec.min || n > spec.max {
                return Err(fail(format!("{n} is out of range {}-{}", spec.min, spec.max)));
            }
            return Ok(n);
        }
        let upper = token.to_ascii_uppercase();
        if let Some(index) = spec.names.iter().position(|n| *n == upper) {
            return Ok(index as u32 + spec.min);
        }
        let hint = if spec.names.is_empty() {
            format!("expected a number {}-{}", spec.min, spec.max)
        } else {
            match closest(&upper, spec.names.iter().copied()) {
                Some(name) => format!("{token:?} is not a {} name; did you mean {name}?", spec.name),
                None => format!(
                    "expected a number {}-{} or one of {}",
                    spec.min,
                    spec.max,
                    spec.names.join(", ")
                ),
            }
        };
        Err(fail(hint))
    };
    if text.is_empty() {
        return Err(fail("the field is empty".into()));
    }
    let mut mask = 0u64;
    for part in text.split(',') {
        if part.is_empty() {
            return Err(fail("a list has an empty item".into()));
        }
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .parse()
                    .ok()
                    .filter(|s| *s >= 1)
                    .ok_or_else(|| fail(format!("step {step:?} must be a whole number of at least 1")))?;
                (range, step)
            }
            None => (part, 1),
        };
        let (first, last) = if range == "*" || range == "?" {
            if range == "?" && spec.name != DAY_OF_MONTH.name && spec.name != DAY_OF_WEEK.name {
                return Err(fail(
                    "? is only allowed in the day-of-month and day-of-week fields".into(),
                ));
            }
            (spec.min, if spec.name == DAY_OF_WEEK.name { 6 } else { spec.max })
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(fail(format!(
                    "range {range} runs backwards; write the smaller value first"
                )));
            }
            (a, b)
        } else {
            let a = value(range)?;
            // `a/n` means from a to the end of the range in steps of n.
            (a, if step > 1 { spec.max } else { a })
        };
        let mut v = first;
        while v <= last {
            mask |= 1 << v;
            v += step;
        }
    }
    Ok(mask)
}

/// Parses an IANA timezone name; an unknown one is refused with the closest known name.
pub fn parse_timezone(name: &str) -> Result<TimeZone, ScheduleError> {
    let trimmed = name.trim();
    if !trimmed.is_empty()
        && let Ok(tz) = TimeZone::get(trimmed)
    {
        return Ok(tz);
    }
    let names: Vec<String> = jiff::tz::db().available().map(|n| n.as_str().to_owned()).collect();
    Err(ScheduleError::UnknownTimezone {
        name: name.to_owned(),
        suggestion: closest(trimmed, names.iter().map(String::as_str)).map(str::to_owned),
    })
}

/// When a schedule fires: a cron in a timezone, or a fixed interval of real time.
#[derive(Debug, Clone)]
pub enum Recurrence {
    /// A cron evaluated on the wall clock of `timezone` (DST rules in the module docs).
    Cron {
        /// The expression.
        cron: Cron,
        /// The IANA name.
        timezone_name: String,
        /// The zone.
        timezone: TimeZone,
    },
    /// Every `interval_secs` seconds of real time, counted from `anchor_ms`.
    Every {
        /// Seconds between fires.
        interval_secs: i64,
        /// A fire time (epoch ms) the others are whole intervals from.
        anchor_ms: i64,
    },
}

impl Recurrence {
    /// A cron in a timezone.
    pub fn cron(cron: &str, timezone: &str) -> Result<Recurrence, ScheduleError> {
        let cron = Cron::parse(cron)?;
        let tz = parse_timezone(timezone)?;
        Ok(Recurrence::Cron {
            cron,
            timezone_name: tz.iana_name().unwrap_or(timezone.trim()).to_owned(),
            timezone: tz,
        })
    }

    /// A fixed interval (`90s`, `15m`, `2h`, `1d`, or a number of seconds), anchored at
    /// `anchor_ms`.
    pub fn every(interval: &str, anchor_ms: i64) -> Result<Recurrence, ScheduleError> {
        Ok(Recurrence::Every {
            interval_secs: parse_interval(interval)?,
            anchor_ms,
        })
    }

    /// The first fire time strictly after `after_ms` (epoch ms), or `None` if there is none
    /// within [`MAX_CRON_SEARCH_DAYS`].
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        match self {
            Recurrence::Every {
                interval_secs,
                anchor_ms,
            } => {
                let step = interval_secs * SECOND_MS;
                let intervals = (after_ms - anchor_ms).div_euclid(step) + 1;
                Some(anchor_ms + intervals * step)
            }
            Recurrence::Cron { cron, timezone, .. } => cron_next_after(cron, timezone, after_ms),
        }
    }

    /// The next `count` fire times after `after_ms`.
    pub fn next_n(&self, after_ms: i64, count: usize) -> Vec<i64> {
        let mut out = Vec::with_capacity(count);
        let mut cursor = after_ms;
        while out.len() < count {
            match self.next_after(cursor) {
                Some(next) => {
                    out.push(next);
                    cursor = next;
                }
                None => break,
            }
        }
        out
    }

    /// The timezone fire times are shown in (UTC for intervals).
    pub fn timezone(&self) -> TimeZone {
        match self {
            Recurrence::Cron { timezone, .. } => timezone.clone(),
            Recurrence::Every { .. } => TimeZone::UTC,
        }
    }

    /// A fire time as people read it in the schedule's timezone: `Mon 2026-12-07 08:00:00 CET`.
    pub fn format_fire(&self, at_ms: i64) -> String {
        match Timestamp::from_millisecond(at_ms) {
            Ok(ts) => ts
                .to_zoned(self.timezone())
                .strftime("%a %Y-%m-%d %H:%M:%S %Z")
                .to_string(),
            Err(_) => at_ms.to_string(),
        }
    }

    /// The fire time as RFC 3339 with the zone's offset: `2026-12-07T08:00:00+01:00`.
    pub fn format_fire_rfc3339(&self, at_ms: i64) -> String {
        match Timestamp::from_millisecond(at_ms) {
            Ok(ts) => ts
                .to_zoned(self.timezone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string(),
            Err(_) => at_ms.to_string(),
        }
    }

    /// The schedule in words: `every Monday at 08:00, Europe/Paris`.
    pub fn describe(&self) -> String {
        match self {
            Recurrence::Every { interval_secs, .. } => format!("every {}", interval_words(*interval_secs)),
            Recurrence::Cron {
                cron, timezone_name, ..
            } => format!("{}, {timezone_name}", describe_cron(cron)),
        }
    }
}

fn cron_next_after(cron: &Cron, tz: &TimeZone, after_ms: i64) -> Option<i64> {
    let after = Timestamp::from_millisecond(after_ms).ok()?;
    // Whole seconds strictly after `after`.
    let first = Timestamp::from_second(after.as_second() + 1).ok()?;
    let mut candidate = first.to_zoned(tz.clone()).datetime();
    for _ in 0..MAX_SKIPPED_CANDIDATES {
        let civil = cron.next_civil(candidate)?;
        let at = resolve_wall_clock(tz, civil)?;
        if at > after {
            return Some(at.as_millisecond());
        }
        // In a repeated (fall-back) hour the first pass already fired this wall-clock time.
        candidate = civil.checked_add(1.second()).ok()?;
    }
    None
}

/// The instant a wall-clock time fires at: the instant itself; in a spring-forward gap, the
/// instant the clocks jump; in a fall-back fold, the first occurrence.
fn resolve_wall_clock(tz: &TimeZone, civil: DateTime) -> Option<Timestamp> {
    let ambiguous = tz.to_ambiguous_timestamp(civil);
    match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(civil).ok(),
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(civil).ok(),
        AmbiguousOffset::Gap { after, .. } => {
            // With the post-jump offset the wall-clock time lands just before the jump; the
            // next transition is the jump itself.
            let before_jump = after.to_timestamp(civil).ok()?;
            tz.following(before_jump).next().map(|t| t.timestamp())
        }
    }
}

/// Reads a fixed interval: `90s`, `15m`, `2h`, `1d` or a plain number of seconds.
pub fn parse_interval(input: &str) -> Result<i64, ScheduleError> {
    let text = input.trim().to_ascii_lowercase();
    let fail = |problem: &str| ScheduleError::Interval {
        input: input.to_owned(),
        problem: problem.to_owned(),
    };
    let (digits, unit_secs) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (text.as_str(), 1),
        Some((i, _)) => {
            let unit = match &text[i..] {
                "s" | "sec" | "secs" | "second" | "seconds" => 1,
                "m" | "min" | "mins" | "minute" | "minutes" => 60,
                "h" | "hour" | "hours" => 3600,
                "d" | "day" | "days" => 86_400,
                _ => return Err(fail("expected a number followed by s, m, h or d (e.g. 15m)")),
            };
            (&text[..i], unit)
        }
    };
    let n: i64 = digits
        .parse()
        .map_err(|_| fail("expected a number followed by s, m, h or d (e.g. 15m)"))?;
    let secs = n.saturating_mul(unit_secs);
    if !(MIN_INTERVAL_SECS..=MAX_INTERVAL_SECS).contains(&secs) {
        return Err(fail(&format!(
            "must be between {MIN_INTERVAL_SECS} second and {} days",
            MAX_INTERVAL_SECS / 86_400
        )));
    }
    Ok(secs)
}

fn interval_words(secs: i64) -> String {
    let unit = |n: i64, one: &str| {
        if n == 1 { one.to_owned() } else { format!("{n} {one}s") }
    };
    if secs % 86_400 == 0 {
        unit(secs / 86_400, "day")
    } else if secs % 3600 == 0 {
        unit(secs / 3600, "hour")
    } else if secs % 60 == 0 {
        unit(secs / 60, "minute")
    } else {
        unit(secs, "second")
    }
}

/// `a, b and c`.
fn join_words(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// If `values` is `0, n, 2n, …` covering the whole range, `n`.
fn uniform_step(values: &[u32], max: u32) -> Option<u32> {
    let step = *values.get(1)?;
    (values[0] == 0 && step > 1 && values.iter().enumerate().all(|(i, v)| *v == i as u32 * step))
        .then_some(step)
        .filter(|step| values.len() as u32 == max / step + 1)
}

fn describe_cron(cron: &Cron) -> String {
    let seconds = members(cron.seconds, 0, 59);
    let minutes = members(cron.minutes, 0, 59);
    let hours = members(cron.hours, 0, 23);
    let all_seconds = seconds.len() == 60;
    let all_minutes = minutes.len() == 60;
    let all_hours = hours.len() == 24;

    let time = if all_seconds && all_minutes && all_hours {
        "every second".to_owned()
    } else if seconds == [0] && all_minutes && all_hours {
        "every minute".to_owned()
    } else if let (Some(step), true, true) = (uniform_step(&seconds, 59), all_minutes, all_hours) {
        format!("every {step} seconds")
    } else if let (Some(step), true, true) = (uniform_step(&minutes, 59), seconds == [0], all_hours) {
        format!("every {step} minutes")
    } else if seconds == [0] && minutes.len() == 1 && all_hours {
        format!("every hour at minute {}", minutes[0])
    } else if seconds == [0] && minutes.len() == 1 && uniform_step(&hours, 23).is_some() {
        let step = uniform_step(&hours, 23).unwrap_or(1);
        format!("every {step} hours at minute {}", minutes[0])
    } else if seconds.len() == 1 && minutes.len() == 1 && hours.len() <= 6 {
        let times: Vec<String> = hours
            .iter()
            .map(|h| {
                if seconds[0] == 0 {
                    format!("{h:02}:{:02}", minutes[0])
                } else {
                    format!("{h:02}:{:02}:{:02}", minutes[0], seconds[0])
                }
            })
            .collect();
        format!("at {}", join_words(&times))
    } else {
        return format!("on cron schedule \"{}\"", cron.source);
    };

    let days_of_week = members(cron.days_of_week, 0, 6);
    let days_of_month = members(cron.days_of_month, 1, 31);
    let months = members(cron.months, 1, 12);
    let day_words = |days: &[u32]| -> String {
        match days {
            [1, 2, 3, 4, 5] => "every weekday".to_owned(),
            [0, 6] => "every Saturday and Sunday".to_owned(),
            _ => format!(
                "every {}",
                join_words(
                    &days
                        .iter()
                        .map(|d| DAY_WORDS[*d as usize].to_owned())
                        .collect::<Vec<_>>()
                )
            ),
        }
    };
    let dom_words = |days: &[u32]| -> String {
        let list: Vec<String> = days.iter().map(u32::to_string).collect();
        if days.len() == 1 {
            format!("on day {} of the month", list[0])
        } else {
            format!("on days {} of the month", join_words(&list))
        }
    };
    let mut day = match (cron.dom_any, cron.dow_any) {
        (true, true) => String::new(),
        (true, false) => day_words(&days_of_week),
        (false, true) => dom_words(&days_of_month),
        (false, false) => format!("{} or {}", dom_words(&days_of_month), day_words(&days_of_week)),
    };
    if months.len() < 12 {
        let names: Vec<String> = months.iter().map(|m| MONTH_WORDS[*m as usize - 1].to_owned()).collect();
        let part = format!("in {}", join_words(&names));
        day = if day.is_empty() { part } else { format!("{day} {part}") };
    }
    let frequency = time.starts_with("every");
    match (day.is_empty(), frequency) {
        (true, true) => time,
        (true, false) => format!("every day {time}"),
        (false, true) => format!("{time}, {day}"),
        (false, false) => format!("{day} {time}"),
    }
}

crate::domain::string_enum!(
    /// What a schedule does about fires it missed while no node was running.
    CatchUp, "catch-up policy", {
        /// Fire once, for the most recent missed time (the default).
        Latest => "latest",
        /// Fire every missed time, oldest first, up to the schedule's bound.
        All => "all",
        /// Skip missed times; fire only when on time (within [`ON_TIME_GRACE_MS`]).
        None => "none",
    }
);

/// The fires a due schedule makes now, and when it is due next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirePlan {
    /// Fire times (epoch ms) to create tasks for, oldest first.
    pub fires: Vec<i64>,
    /// Missed fire times skipped by the policy (counted up to the bound searched).
    pub skipped: u64,
    /// The next fire time strictly after `now`, `None` if the recurrence has none.
    pub next_fire_at_ms: Option<i64>,
}

/// Plans the fires of a schedule due at `due_ms` (its stored `next_fire_at`), at `now_ms`.
/// Every fire time in `[due_ms, now_ms]` was missed or is due; `policy` picks which fire:
/// `latest` the most recent, `all` the oldest `max_fires` (bounded by
/// [`MAX_CATCH_UP_FIRES`]), `none` only those within [`ON_TIME_GRACE_MS`] of `now`
/// (the most recent). The plan is a pure function of its inputs, so every node computes
/// the same fire times and their idempotency keys agree.
pub fn plan_fires(recurrence: &Recurrence, due_ms: i64, now_ms: i64, policy: CatchUp, max_fires: u32) -> FirePlan {
    let next_fire_at_ms = recurrence.next_after(now_ms);
    if due_ms > now_ms {
        return FirePlan {
            fires: Vec::new(),
            skipped: 0,
            next_fire_at_ms: Some(due_ms),
        };
    }
    let bound = max_fires.clamp(1, MAX_CATCH_UP_FIRES) as usize;
    match policy {
        CatchUp::All => {
            let mut fires = vec![due_ms];
            let mut cursor = due_ms;
            let mut skipped = 0u64;
            while let Some(next) = recurrence.next_after(cursor) {
                if next > now_ms {
                    break;
                }
                if fires.len() < bound {
                    fires.push(next);
                } else {
                    skipped += 1;
                    // Counting every skipped second of a long outage would take as long as
                    // the outage; stop counting at the bound.
                    if skipped >= MAX_CATCH_UP_FIRES as u64 {
                        break;
                    }
                }
                cursor = next;
            }
            FirePlan {
                fires,
                skipped,
                next_fire_at_ms,
            }
        }
        CatchUp::Latest | CatchUp::None => {
            let latest = latest_at_or_before(recurrence, due_ms, now_ms);
            let skipped = u64::from(latest != due_ms);
            let fires = if policy == CatchUp::None && now_ms - latest > ON_TIME_GRACE_MS {
                Vec::new()
            } else {
                vec![latest]
            };
            FirePlan {
                skipped: skipped + u64::from(fires.is_empty()),
                fires,
                next_fire_at_ms,
            }
        }
    }
}

/// The most recent fire time `<= now_ms`, given that `due_ms <= now_ms` is one. Searches
/// back from `now` in growing windows, so a per-second cron after a week's outage costs
/// about a minute of candidates, not a week.
fn latest_at_or_before(recurrence: &Recurrence, due_ms: i64, now_ms: i64) -> i64 {
    let mut window_ms = 60_000i64;
    loop {
        let from = (now_ms - window_ms).max(due_ms);
        // Walk from a point inside the window: `from - 1` so `from` itself can be found.
        let mut last = None;
        let mut cursor = if from == due_ms { due_ms } else { from - 1 };
        if from == due_ms {
            last = Some(due_ms);
        }
        while let Some(next) = recurrence.next_after(cursor) {
            if next > now_ms {
                break;
            }
            last = Some(next);
            cursor = next;
        }
        if let Some(last) = last {
            return last;
        }
        window_ms = window_ms.saturating_mul(8);
    }
}

/// The brief of a scheduled task whose schedule names a document template: the schedule's
/// brief, then the instruction to make the deliverable with that template (so it comes out
/// in the same shape at every fire). Without a template, the brief unchanged.
pub fn brief_with_template(brief: &str, template: Option<&str>) -> String {
    match template.map(str::trim).filter(|t| !t.is_empty()) {
        Some(name) => format!(
            "{brief}\n\nMake the deliverable with the document template \"{name}\" \
             (documents.create_from_template with \"template\": \"{name}\"), so it keeps the same shape as every other run of this schedule."
        ),
        None => brief.to_owned(),
    }
}

/// Where a schedule's or trigger's result goes. The web inbox works now; the others are
/// stored for the channels that read them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DeliveryTarget {
    /// The owner's web inbox.
    #[default]
    Inbox,
    /// A Slack direct message to a user (id or handle).
    SlackDm(String),
    /// A Slack channel (id or name).
    SlackChannel(String),
    /// An email address.
    Email(String),
}

impl DeliveryTarget {
    /// Parses `inbox`, `slack:dm:U123`, `slack:channel:#ops` or `email:a@b.example`.
    pub fn parse(input: &str) -> Result<DeliveryTarget, ScheduleError> {
        let text = input.trim();
        let fail = |problem: &str| ScheduleError::DeliveryTarget {
            input: input.to_owned(),
            problem: problem.to_owned(),
        };
        let nonempty = |rest: &str, what: &str| -> Result<String, ScheduleError> {
            let rest = rest.trim();
            if rest.is_empty() || rest.chars().any(char::is_whitespace) {
                Err(fail(&format!("the {what} is empty or has spaces")))
            } else {
                Ok(rest.to_owned())
            }
        };
        if text.is_empty() || text.eq_ignore_ascii_case("inbox") || text.eq_ignore_ascii_case("web") {
            return Ok(DeliveryTarget::Inbox);
        }
        if let Some(rest) = text.strip_prefix("slack:dm:") {
            return Ok(DeliveryTarget::SlackDm(nonempty(rest, "Slack user")?));
        }
        if let Some(rest) = text.strip_prefix("slack:channel:") {
            return Ok(DeliveryTarget::SlackChannel(nonempty(rest, "Slack channel")?));
        }
        if let Some(rest) = text.strip_prefix("email:") {
            let address = nonempty(rest, "address")?;
            let valid = address
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.starts_with('.'));
            if !valid {
                return Err(fail("the address does not look like name@example.com"));
            }
            return Ok(DeliveryTarget::Email(address));
        }
        Err(fail("unknown kind"))
    }
}

impl fmt::Display for DeliveryTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeliveryTarget::Inbox => f.write_str("inbox"),
            DeliveryTarget::SlackDm(user) => write!(f, "slack:dm:{user}"),
            DeliveryTarget::SlackChannel(channel) => write!(f, "slack:channel:{channel}"),
            DeliveryTarget::Email(address) => write!(f, "email:{address}"),
        }
    }
}

impl Serialize for DeliveryTarget {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeliveryTarget {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        DeliveryTarget::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339_with_zone: &str) -> i64 {
        rfc3339_with_zone
            .parse::<jiff::Zoned>()
            .unwrap()
            .timestamp()
            .as_millisecond()
    }

    fn utc(at_ms: i64) -> String {
        Timestamp::from_millisecond(at_ms).unwrap().to_string()
    }

    fn fires(cron: &str, tz: &str, after: &str, n: usize) -> Vec<String> {
        let r = Recurrence::cron(cron, tz).unwrap();
        r.next_n(ms(after), n)
            .into_iter()
            .map(|t| r.format_fire_rfc3339(t))
            .collect()
    }

    #[test]
    fn weekly_cron_in_words_and_next_fires() {
        let r = Recurrence::cron("0 8 * * MON", "Europe/Paris").unwrap();
        assert_eq!(r.describe(), "every Monday at 08:00, Europe/Paris");
        let next = fires(
            "0 8 * * MON",
            "Europe/Paris",
            "2026-12-01T09:00:00+01:00[Europe/Paris]",
            3,
        );
        assert_eq!(
            next,
            [
                "2026-12-07T08:00:00+01:00",
                "2026-12-14T08:00:00+01:00",
                "2026-12-21T08:00:00+01:00"
            ]
        );
    }

    #[test]
    fn words_for_common_shapes() {
        let words = |cron: &str| Recurrence::cron(cron, "UTC").unwrap().describe();
        assert_eq!(words("@daily"), "every day at 00:00, UTC");
        assert_eq!(words("*/15 * * * *"), "every 15 minutes, UTC");
        assert_eq!(words("* * * * *"), "every minute, UTC");
        assert_eq!(words("* * * * * *"), "every second, UTC");
        assert_eq!(words("30 9 * * 1-5"), "every weekday at 09:30, UTC");
        assert_eq!(words("0 9,17 1 * *"), "on day 1 of the month at 09:00 and 17:00, UTC");
        assert_eq!(words("0 0 1 JAN *"), "on day 1 of the month in January at 00:00, UTC");
        assert_eq!(words("5 * * * *"), "every hour at minute 5, UTC");
        assert_eq!(Recurrence::every("15m", 0).unwrap().describe(), "every 15 minutes");
    }

    #[test]
    fn six_fields_fire_per_second() {
        let next = fires("*/10 * * * * *", "UTC", "2026-01-01T00:00:03+00:00[UTC]", 3);
        assert_eq!(
            next,
            [
                "2026-01-01T00:00:10+00:00",
                "2026-01-01T00:00:20+00:00",
                "2026-01-01T00:00:30+00:00"
            ]
        );
    }

    #[test]
    fn a_wrong_cron_names_the_bad_field() {
        let err = Cron::parse("0 25 * * *").unwrap_err().to_string();
        assert!(err.contains("hour field \"25\""), "{err}");
        assert!(err.contains("out of range 0-23"), "{err}");
        let err = Cron::parse("0 8 * * MNO").unwrap_err().to_string();
        assert!(err.contains("day-of-week field"), "{err}");
        assert!(err.contains("did you mean MON"), "{err}");
        let err = Cron::parse("0 8 * *").unwrap_err().to_string();
        assert!(err.contains("has 4 field(s)"), "{err}");
        let err = Cron::parse("*/0 * * * *").unwrap_err().to_string();
        assert!(err.contains("minute field"), "{err}");
        let err = Cron::parse("@daly").unwrap_err().to_string();
        assert!(err.contains("did you mean \"@daily\""), "{err}");
        let err = Cron::parse("0 0 30 2 *").unwrap_err().to_string();
        assert!(err.contains("never fires"), "{err}");
        let err = Cron::parse("0 0 5-1 * *").unwrap_err().to_string();
        assert!(err.contains("runs backwards"), "{err}");
    }

    #[test]
    fn an_unknown_timezone_suggests_the_closest() {
        let err = parse_timezone("Europe/Pariss").unwrap_err().to_string();
        assert_eq!(
            err,
            "\"Europe/Pariss\" is not a timezone; did you mean \"Europe/Paris\"?"
        );
        let err = parse_timezone("Nowhere/Atall").unwrap_err().to_string();
        assert!(err.contains("IANA name"), "{err}");
    }

    // Europe/Paris: clocks jump 02:00 → 03:00 on 2026-03-29 and fall 03:00 → 02:00 on
    // 2026-10-25. America/New_York: 02:00 → 03:00 on 2026-03-08, 02:00 → 01:00 on 2026-11-01.

    #[test]
    fn spring_forward_fires_once_at_the_jump_paris() {
        let next = fires(
            "30 2 * * *",
            "Europe/Paris",
            "2026-03-28T12:00:00+01:00[Europe/Paris]",
            3,
        );
        assert_eq!(
            next,
            [
                "2026-03-29T03:00:00+02:00",
                "2026-03-30T02:30:00+02:00",
                "2026-03-31T02:30:00+02:00"
            ]
        );
    }

    #[test]
    fn spring_forward_fires_once_at_the_jump_new_york() {
        let next = fires(
            "30 2 * * *",
            "America/New_York",
            "2026-03-07T12:00:00-05:00[America/New_York]",
            3,
        );
        assert_eq!(
            next,
            [
                "2026-03-08T03:00:00-04:00",
                "2026-03-09T02:30:00-04:00",
                "2026-03-10T02:30:00-04:00"
            ]
        );
        // Several missing wall-clock times collapse into one fire at the jump, then the
        // schedule goes on in the new offset.
        let next = fires(
            "0,30 2,3 * * *",
            "America/New_York",
            "2026-03-08T01:00:00-05:00[America/New_York]",
            3,
        );
        assert_eq!(
            next,
            [
                "2026-03-08T03:00:00-04:00",
                "2026-03-08T03:30:00-04:00",
                "2026-03-09T02:00:00-04:00"
            ]
        );
    }

    #[test]
    fn fall_back_fires_once_at_the_first_occurrence_paris() {
        let next = fires(
            "30 2 * * *",
            "Europe/Paris",
            "2026-10-24T12:00:00+02:00[Europe/Paris]",
            3,
        );
        assert_eq!(
            next,
            [
                "2026-10-25T02:30:00+02:00",
                "2026-10-26T02:30:00+01:00",
                "2026-10-27T02:30:00+01:00"
            ]
        );
        // Asked again from inside the repeated hour (after the first 02:30 already fired),
        // the next fire is tomorrow's, not the second 02:30.
        let second_pass = ms("2026-10-25T02:10:00+01:00[Europe/Paris]");
        let r = Recurrence::cron("30 2 * * *", "Europe/Paris").unwrap();
        assert_eq!(
            r.format_fire_rfc3339(r.next_after(second_pass).unwrap()),
            "2026-10-26T02:30:00+01:00"
        );
    }

    #[test]
    fn fall_back_fires_once_at_the_first_occurrence_new_york() {
        let next = fires(
            "30 1 * * *",
            "America/New_York",
            "2026-10-31T12:00:00-04:00[America/New_York]",
            3,
        );
        assert_eq!(
            next,
            [
                "2026-11-01T01:30:00-04:00",
                "2026-11-02T01:30:00-05:00",
                "2026-11-03T01:30:00-05:00"
            ]
        );
        // An hourly job goes through the fold without a second 01:00.
        let next = fires(
            "0 * * * *",
            "America/New_York",
            "2026-11-01T00:30:00-04:00[America/New_York]",
            3,
        );
        assert_eq!(
            next,
            [
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T02:00:00-05:00",
                "2026-11-01T03:00:00-05:00"
            ]
        );
    }

    #[test]
    fn intervals_count_real_time_through_dst() {
        let r = Recurrence::every("1h", ms("2026-03-29T00:00:00+01:00[Europe/Paris]")).unwrap();
        let after = ms("2026-03-29T01:30:00+01:00[Europe/Paris]");
        let next: Vec<String> = r.next_n(after, 2).into_iter().map(utc).collect();
        assert_eq!(next, ["2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"]);
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("5 fortnights").is_err());
        assert_eq!(parse_interval("90s").unwrap(), 90);
    }

    #[test]
    fn catch_up_policies() {
        let r = Recurrence::cron("0 * * * *", "UTC").unwrap();
        let due = ms("2026-01-01T00:00:00+00:00[UTC]");
        let now = ms("2026-01-01T05:30:00+00:00[UTC]");
        let latest = plan_fires(&r, due, now, CatchUp::Latest, DEFAULT_CATCH_UP_MAX);
        assert_eq!(
            latest.fires.iter().map(|t| utc(*t)).collect::<Vec<_>>(),
            ["2026-01-01T05:00:00Z"]
        );
        assert_eq!(latest.next_fire_at_ms.map(utc).unwrap(), "2026-01-01T06:00:00Z");
        let all = plan_fires(&r, due, now, CatchUp::All, 3);
        assert_eq!(
            all.fires.iter().map(|t| utc(*t)).collect::<Vec<_>>(),
            ["2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"]
        );
        assert_eq!(all.skipped, 3);
        let none = plan_fires(&r, due, now, CatchUp::None, DEFAULT_CATCH_UP_MAX);
        assert!(none.fires.is_empty());
        assert_eq!(none.next_fire_at_ms, latest.next_fire_at_ms);
        // On time, every policy fires the one due time.
        for policy in CatchUp::ALL {
            let plan = plan_fires(&r, due, due + 500, *policy, DEFAULT_CATCH_UP_MAX);
            assert_eq!(plan.fires, [due], "{policy}");
        }
        // A per-second schedule after a day down: latest finds the last second quickly.
        let every_second = Recurrence::cron("* * * * * *", "UTC").unwrap();
        let plan = plan_fires(&every_second, due, due + 86_400_000, CatchUp::Latest, 1);
        assert_eq!(plan.fires, [due + 86_400_000]);
    }

    #[test]
    fn delivery_targets_round_trip() {
        for text in ["inbox", "slack:dm:U123", "slack:channel:#ops", "email:ada@example.com"] {
            assert_eq!(DeliveryTarget::parse(text).unwrap().to_string(), text);
        }
        let err = DeliveryTarget::parse("email:nobody").unwrap_err().to_string();
        assert!(err.contains("name@example.com"), "{err}");
        assert!(DeliveryTarget::parse("pager:42").is_err());
    }
}
