//! Calendars (issue 16): `[[calendar]]` sections, an iCalendar (RFC 5545) reader and the
//! expansion of recurring events into occurrences — with their exceptions (`EXDATE`,
//! `RECURRENCE-ID` overrides, cancelled instances) and timezones (a `TZID` is an IANA name
//! resolved with jiff's bundled database; wall-clock times stay on the wall clock across DST).
//! Pure: fetching feeds and firing triggers is the channels crate's job.
//!
//! The RRULE subset: `FREQ` = `DAILY` | `WEEKLY` | `MONTHLY` | `YEARLY`, `INTERVAL`, `COUNT`,
//! `UNTIL`, `BYDAY` (with ordinals in monthly and yearly rules, e.g. `-1FR`), `BYMONTHDAY`,
//! `BYMONTH`, `WKST`. Anything else (`BYSETPOS`, `BYHOUR`, `SECONDLY`…) is refused for that
//! event with a message; the rest of the feed is still read.

use jiff::civil::{Date, DateTime, Weekday};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, CredentialRef};
use crate::text::closest;

/// Default seconds between two fetches of a feed.
pub const DEFAULT_CALENDAR_POLL_SECS: u64 = 300;

/// Default minutes before an event a trigger fires.
pub const DEFAULT_MINUTES_BEFORE: u32 = 60;

/// Largest feed read, in bytes.
pub const MAX_FEED_BYTES: usize = 10 * 1024 * 1024;

/// Most recurrence periods (days, weeks, months, years) walked for one event, so a rule
/// with no end cannot run away.
pub const MAX_RRULE_PERIODS: u32 = 50_000;

/// Most occurrences of one event returned from one expansion.
pub const MAX_OCCURRENCES_PER_EVENT: usize = 5_000;

/// One `[[calendar]]`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CalendarConfig {
    /// Name (`coworker calendar test NAME`); unique.
    pub name: String,
    /// Email of the member whose calendar this is (or empty for a coworker's own).
    pub owner: String,
    /// Handle of the coworker whose calendar this is, or who prepares its meetings.
    pub coworker: String,
    /// An ICS feed (`https://…/basic.ics`) or a CalDAV collection URL.
    pub url: String,
    /// `ics` (read-only feed) or `caldav` (also `calendar.create_event`).
    pub kind: String,
    /// Login (HTTP basic), if the feed needs one.
    pub username: String,
    /// `env:NAME`, `secret:NAME` or the literal.
    pub password: String,
    /// Zone of floating times and all-day events (IANA name).
    pub timezone: String,
    /// Domains that count as internal (default: the owner's); an attendee elsewhere makes a
    /// meeting external.
    pub internal_domains: Vec<String>,
    /// Seconds between fetches.
    pub poll_secs: u64,
    /// Event triggers.
    pub triggers: Vec<CalendarTriggerConfig>,
}

impl Default for CalendarConfig {
    fn default() -> Self {
        CalendarConfig {
            name: String::new(),
            owner: String::new(),
            coworker: String::new(),
            url: String::new(),
            kind: "ics".into(),
            username: String::new(),
            password: String::new(),
            timezone: "UTC".into(),
            internal_domains: Vec::new(),
            poll_secs: DEFAULT_CALENDAR_POLL_SECS,
            triggers: Vec::new(),
        }
    }
}

impl std::fmt::Debug for CalendarConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CalendarConfig")
            .field("name", &self.name)
            .field("owner", &self.owner)
            .field("coworker", &self.coworker)
            .field("url", &self.url)
            .field("kind", &self.kind)
            .field("password", &if self.password.is_empty() { "(unset)" } else { "(set)" })
            .finish_non_exhaustive()
    }
}

/// "Every external meeting: prepare a brief 60 minutes before."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CalendarTriggerConfig {
    /// A label (part of each fire's key: renaming a trigger fires again).
    pub name: String,
    /// Minutes before the start it fires.
    pub minutes_before: u32,
    /// Substring of the summary (case-insensitive); empty matches all.
    pub summary: String,
    /// Only meetings with an attendee outside the internal domains.
    pub external_only: bool,
    /// Coworker handle (default: the calendar's).
    pub coworker: String,
    /// Email of the member the task acts for (default: the calendar's owner).
    pub owner: String,
    /// The brief, a template over `event` (`summary`, `start`, `end`, `location`,
    /// `attendees`, `organizer`); the event's text is appended, fenced as untrusted data.
    pub brief: String,
}

impl Default for CalendarTriggerConfig {
    fn default() -> Self {
        CalendarTriggerConfig {
            name: String::new(),
            minutes_before: DEFAULT_MINUTES_BEFORE,
            summary: String::new(),
            external_only: false,
            coworker: String::new(),
            owner: String::new(),
            brief: String::new(),
        }
    }
}

impl CalendarConfig {
    /// Whether this is a CalDAV collection (events can be created).
    pub fn is_caldav(&self) -> bool {
        self.kind.eq_ignore_ascii_case("caldav")
    }

    /// Its zone for floating times.
    pub fn zone(&self) -> TimeZone {
        TimeZone::get(self.timezone.trim()).unwrap_or(TimeZone::UTC)
    }

    /// The internal domains: configured, else the owner's.
    pub fn domains(&self) -> Vec<String> {
        if !self.internal_domains.is_empty() {
            return self.internal_domains.iter().map(|d| d.trim().to_lowercase()).collect();
        }
        self.owner
            .rsplit_once('@')
            .map(|(_, d)| vec![d.trim().to_lowercase()])
            .unwrap_or_default()
    }

    /// Checks one section; `at` names it (e.g. `calendar[0]`).
    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{at}.{k}");
        if self.name.trim().is_empty() {
            return Err(ConfigError::invalid(
                &key("name"),
                "is empty",
                "name the calendar, e.g. \"ada-work\"",
            ));
        }
        if self.owner.trim().is_empty() && self.coworker.trim().is_empty() {
            return Err(ConfigError::invalid(
                &key("owner"),
                "neither owner nor coworker is set",
                "set owner = \"you@example.com\" for a member's calendar or coworker = \"ada\" for a coworker's",
            ));
        }
        let url = self.url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError::invalid(
                &key("url"),
                format!("{url:?} is not an http(s) URL"),
                "paste the calendar's ICS feed address (webcal:// becomes https://) or its CalDAV collection URL",
            ));
        }
        if !matches!(self.kind.to_ascii_lowercase().as_str(), "ics" | "caldav") {
            return Err(ConfigError::invalid(
                &key("kind"),
                format!("{:?} is not a calendar kind", self.kind),
                "use \"ics\" (a read-only feed) or \"caldav\"",
            ));
        }
        if let CredentialRef::Env(n) | CredentialRef::Secret(n) = CredentialRef::parse(&self.password)
            && n.is_empty()
        {
            return Err(ConfigError::invalid(
                &key("password"),
                "names no variable or secret",
                "write env:NAME, secret:NAME or the value itself",
            ));
        }
        if let Err(problem) = zone_named(&self.timezone) {
            return Err(ConfigError::invalid(
                &key("timezone"),
                problem,
                "use an IANA name such as \"Europe/Paris\"",
            ));
        }
        if self.poll_secs == 0 {
            return Err(ConfigError::invalid(
                &key("poll_secs"),
                "must be at least 1",
                "the default is 300",
            ));
        }
        for (i, trigger) in self.triggers.iter().enumerate() {
            let at = format!("{at}.triggers[{i}]");
            if trigger.brief.trim().is_empty() {
                return Err(ConfigError::invalid(
                    &format!("{at}.brief"),
                    "is empty",
                    "write what to prepare, e.g. \"Prepare a brief for {{ event.summary }}\"",
                ));
            }
            if trigger.name.trim().is_empty() {
                return Err(ConfigError::invalid(
                    &format!("{at}.name"),
                    "is empty",
                    "name the trigger (it is part of each fire's key)",
                ));
            }
            if trigger.coworker.trim().is_empty() && self.coworker.trim().is_empty() {
                return Err(ConfigError::invalid(
                    &format!("{at}.coworker"),
                    "no coworker: neither the trigger nor the calendar names one",
                    "set coworker = \"ada\" on the trigger",
                ));
            }
        }
        Ok(())
    }
}

/// Checks every `[[calendar]]` and that names are unique.
pub fn validate_all(sections: &[CalendarConfig]) -> Result<(), ConfigError> {
    crate::config::validate_named(
        "calendar",
        "[[calendar]] sections",
        "give each calendar its own name",
        sections,
        |s| &s.name,
        |s, at| s.validate(at),
    )
}

fn zone_named(name: &str) -> Result<TimeZone, String> {
    let trimmed = name.trim().trim_matches('"');
    if let Ok(tz) = TimeZone::get(trimmed) {
        return Ok(tz);
    }
    let names: Vec<String> = jiff::tz::db().available().map(|n| n.as_str().to_owned()).collect();
    let hint = closest(trimmed, names.iter().map(String::as_str))
        .map(|s| format!("; did you mean {s:?}?"))
        .unwrap_or_else(|| "; use an IANA name such as \"Europe/Paris\"".into());
    Err(format!("timezone {trimmed:?} is unknown{hint}"))
}

/// A start or end time as written.
#[derive(Debug, Clone)]
pub struct IcsTime {
    /// Wall-clock time in `zone`.
    pub civil: DateTime,
    /// Its zone (UTC for `…Z` values).
    pub zone: TimeZone,
    /// A `VALUE=DATE` (all-day) value.
    pub all_day: bool,
}

impl IcsTime {
    /// The instant, in epoch milliseconds (a skipped wall time moves forward, a repeated
    /// one takes its first occurrence).
    pub fn at_ms(&self) -> i64 {
        civil_ms(&self.zone, self.civil)
    }
}

fn civil_ms(zone: &TimeZone, civil: DateTime) -> i64 {
    zone.to_ambiguous_zoned(civil)
        .compatible()
        .map(|z| z.timestamp().as_millisecond())
        .unwrap_or(i64::MAX)
}

/// One `VEVENT` as read.
#[derive(Debug, Clone)]
pub struct Event {
    /// `UID`.
    pub uid: String,
    /// `SUMMARY`.
    pub summary: String,
    /// `DESCRIPTION`.
    pub description: String,
    /// `LOCATION`.
    pub location: String,
    /// `ORGANIZER` address.
    pub organizer: String,
    /// `ATTENDEE` addresses.
    pub attendees: Vec<String>,
    /// `DTSTART`.
    pub start: IcsTime,
    /// Length in ms (from `DTEND` or `DURATION`; 0 if neither).
    pub duration_ms: i64,
    /// `RRULE`, as written.
    pub rrule: Option<String>,
    /// `EXDATE`s, epoch ms.
    pub exdates: Vec<i64>,
    /// `RECURRENCE-ID`, epoch ms: this event overrides that instance of its series.
    pub recurrence_id_ms: Option<i64>,
    /// `STATUS:CANCELLED`.
    pub cancelled: bool,
}

/// One occurrence of an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Occurrence {
    /// The series' `UID`.
    pub uid: String,
    /// The instance's original start (its key, stable when an exception moves it), epoch ms.
    pub instance_ms: i64,
    /// Start, epoch ms.
    pub start_ms: i64,
    /// End, epoch ms.
    pub end_ms: i64,
    /// Summary.
    pub summary: String,
    /// Description.
    pub description: String,
    /// Location.
    pub location: String,
    /// Organizer.
    pub organizer: String,
    /// Attendees.
    pub attendees: Vec<String>,
    /// All-day.
    pub all_day: bool,
}

impl Occurrence {
    /// Whether any attendee or the organizer is outside `domains`.
    pub fn is_external(&self, domains: &[String]) -> bool {
        self.attendees.iter().chain(std::iter::once(&self.organizer)).any(|a| {
            a.rsplit_once('@')
                .is_some_and(|(_, d)| !domains.iter().any(|x| x.eq_ignore_ascii_case(d.trim())))
        })
    }
}

/// A parsed feed: the events read, and a message for each one that could not be.
#[derive(Debug, Clone, Default)]
pub struct Calendar {
    /// Events read.
    pub events: Vec<Event>,
    /// One line per event skipped, naming it and why.
    pub problems: Vec<String>,
}

struct Property {
    name: String,
    params: Vec<(String, String)>,
    value: String,
}

impl Property {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn parse_line(line: &str) -> Option<Property> {
    // The value starts at the first ':' outside a quoted parameter value.
    let mut quoted = false;
    let mut split = None;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ':' if !quoted => {
                split = Some(i);
                break;
            }
            _ => {}
        }
    }
    let split = split?;
    let (head, value) = (&line[..split], &line[split + 1..]);
    let mut parts = head.split(';');
    let name = parts.next()?.trim().to_ascii_uppercase();
    let params = parts
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_uppercase(), v.trim().trim_matches('"').to_owned()))
        .collect();
    Some(Property {
        name,
        params,
        value: value.to_owned(),
    })
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n' | 'N') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn parse_civil(value: &str) -> Result<(DateTime, bool), String> {
    let v = value.trim().trim_end_matches('Z');
    if !v.is_ascii() {
        return Err(format!("{value:?} is not an iCalendar date-time"));
    }
    let num = |s: &str| {
        s.parse::<i16>()
            .map_err(|_| format!("{value:?} is not an iCalendar date-time"))
    };
    if v.len() == 8 {
        let d = Date::new(num(&v[0..4])?, num(&v[4..6])? as i8, num(&v[6..8])? as i8)
            .map_err(|e| format!("{value:?}: {e}"))?;
        return Ok((d.to_datetime(jiff::civil::Time::midnight()), true));
    }
    if v.len() != 15 || v.as_bytes()[8] != b'T' {
        return Err(format!("{value:?} is not an iCalendar date-time (YYYYMMDDTHHMMSS)"));
    }
    let dt = DateTime::new(
        num(&v[0..4])?,
        num(&v[4..6])? as i8,
        num(&v[6..8])? as i8,
        num(&v[9..11])? as i8,
        num(&v[11..13])? as i8,
        num(&v[13..15])?.min(59) as i8,
        0,
    )
    .map_err(|e| format!("{value:?}: {e}"))?;
    Ok((dt, false))
}

fn parse_time(prop: &Property, default_zone: &TimeZone) -> Result<IcsTime, String> {
    parse_time_value(&prop.value, prop, default_zone)
}

fn parse_time_value(value: &str, prop: &Property, default_zone: &TimeZone) -> Result<IcsTime, String> {
    let (civil, date_only) = parse_civil(value)?;
    let all_day = date_only || prop.param("VALUE").is_some_and(|v| v.eq_ignore_ascii_case("DATE"));
    let zone = if value.trim().ends_with('Z') {
        TimeZone::UTC
    } else if let Some(tzid) = prop.param("TZID") {
        zone_named(tzid)?
    } else {
        default_zone.clone()
    };
    Ok(IcsTime { civil, zone, all_day })
}

/// Parses an RFC 5545 duration (`PT1H30M`, `P1D`, `-PT15M`) into milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let (sign, t) = match t.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, t.trim_start_matches('+')),
    };
    let t = t
        .strip_prefix('P')
        .ok_or_else(|| format!("{text:?} is not a duration"))?;
    let mut total = 0i64;
    let mut number = String::new();
    let mut in_time = false;
    for c in t.chars() {
        match c {
            'T' => in_time = true,
            '0'..='9' => number.push(c),
            unit => {
                let n: i64 = number.parse().map_err(|_| format!("{text:?} is not a duration"))?;
                number.clear();
                let ms = match (unit, in_time) {
                    ('W', false) => 7 * 86_400_000,
                    ('D', false) => 86_400_000,
                    ('H', true) => 3_600_000,
                    ('M', true) => 60_000,
                    ('S', true) => 1_000,
                    _ => return Err(format!("{text:?} is not a duration")),
                };
                total = total.saturating_add(n.saturating_mul(ms));
            }
        }
    }
    Ok(sign * total)
}

/// Reads an iCalendar text. Events that cannot be read (an unknown timezone, a bad date)
/// are skipped with a message naming them; nothing else stops the read.
pub fn parse_ics(text: &str, default_zone: &TimeZone) -> Calendar {
    // Unfold: a line starting with a space or tab continues the previous one.
    let mut lines: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = raw.strip_prefix([' ', '\t']) {
            if let Some(last) = lines.last_mut() {
                last.push_str(rest);
            }
        } else {
            lines.push(raw.to_owned());
        }
    }
    let mut calendar = Calendar::default();
    let mut current: Option<Vec<Property>> = None;
    let mut depth = 0usize;
    for line in &lines {
        let Some(prop) = parse_line(line) else { continue };
        match (prop.name.as_str(), prop.value.trim().to_ascii_uppercase().as_str()) {
            ("BEGIN", "VEVENT") if current.is_none() => {
                current = Some(Vec::new());
                depth = 0;
            }
            ("BEGIN", _) if current.is_some() => depth += 1,
            ("END", "VEVENT") if current.is_some() && depth == 0 => {
                let props = current.take().unwrap_or_default();
                match event_from(&props, default_zone) {
                    Ok(event) => calendar.events.push(event),
                    Err(problem) => calendar.problems.push(problem),
                }
            }
            ("END", _) if current.is_some() => depth = depth.saturating_sub(1),
            _ => {
                // Properties of nested components (VALARM) are not the event's.
                if let Some(props) = current.as_mut()
                    && depth == 0
                {
                    props.push(prop);
                }
            }
        }
    }
    calendar
}

fn address(value: &str) -> String {
    let v = value.trim();
    v.strip_prefix("mailto:")
        .or_else(|| v.strip_prefix("MAILTO:"))
        .unwrap_or(v)
        .to_owned()
}

fn event_from(props: &[Property], default_zone: &TimeZone) -> Result<Event, String> {
    let get = |name: &str| props.iter().find(|p| p.name == name);
    let uid = get("UID").map(|p| p.value.trim().to_owned()).unwrap_or_default();
    let summary = get("SUMMARY").map(|p| unescape(&p.value)).unwrap_or_default();
    let name = if summary.is_empty() {
        format!("event {uid:?}")
    } else {
        format!("event {uid:?} ({summary})")
    };
    let fail = |problem: String| format!("{name}: {problem}; skipped");
    if uid.is_empty() {
        return Err(fail("it has no UID".into()));
    }
    let start_prop = get("DTSTART").ok_or_else(|| fail("it has no DTSTART".into()))?;
    let start = parse_time(start_prop, default_zone).map_err(fail)?;
    let duration_ms = match (get("DTEND"), get("DURATION")) {
        (Some(end), _) => parse_time(end, default_zone).map_err(fail)?.at_ms() - start.at_ms(),
        (None, Some(d)) => parse_duration_ms(&d.value).map_err(fail)?,
        (None, None) if start.all_day => 86_400_000,
        _ => 0,
    };
    let mut exdates = Vec::new();
    for p in props.iter().filter(|p| p.name == "EXDATE") {
        for value in p.value.split(',') {
            exdates.push(parse_time_value(value, p, default_zone).map_err(fail)?.at_ms());
        }
    }
    let recurrence_id_ms = match get("RECURRENCE-ID") {
        Some(p) => Some(parse_time(p, default_zone).map_err(fail)?.at_ms()),
        None => None,
    };
    let rrule = get("RRULE").map(|p| p.value.trim().to_owned());
    if let Some(rule) = &rrule {
        Rule::parse(rule, &start).map_err(fail)?;
    }
    Ok(Event {
        uid,
        summary,
        description: get("DESCRIPTION").map(|p| unescape(&p.value)).unwrap_or_default(),
        location: get("LOCATION").map(|p| unescape(&p.value)).unwrap_or_default(),
        organizer: get("ORGANIZER").map(|p| address(&p.value)).unwrap_or_default(),
        attendees: props
            .iter()
            .filter(|p| p.name == "ATTENDEE")
            .map(|p| address(&p.value))
            .collect(),
        start,
        duration_ms,
        rrule,
        exdates,
        recurrence_id_ms,
        cancelled: get("STATUS").is_some_and(|p| p.value.trim().eq_ignore_ascii_case("CANCELLED")),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Freq {
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

#[derive(Debug, Clone)]
struct Rule {
    freq: Freq,
    interval: i64,
    count: Option<usize>,
    until_ms: Option<i64>,
    by_day: Vec<(i8, Weekday)>,
    by_month_day: Vec<i8>,
    by_month: Vec<i8>,
    week_start: Weekday,
}

fn weekday(code: &str) -> Option<Weekday> {
    Some(match code {
        "MO" => Weekday::Monday,
        "TU" => Weekday::Tuesday,
        "WE" => Weekday::Wednesday,
        "TH" => Weekday::Thursday,
        "FR" => Weekday::Friday,
        "SA" => Weekday::Saturday,
        "SU" => Weekday::Sunday,
        _ => return None,
    })
}

impl Rule {
    fn parse(text: &str, start: &IcsTime) -> Result<Rule, String> {
        let mut rule = Rule {
            freq: Freq::Daily,
            interval: 1,
            count: None,
            until_ms: None,
            by_day: Vec::new(),
            by_month_day: Vec::new(),
            by_month: Vec::new(),
            week_start: Weekday::Monday,
        };
        let mut freq = None;
        for part in text.split(';').filter(|p| !p.trim().is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("RRULE part {part:?} has no '='"))?;
            let value = value.trim().to_ascii_uppercase();
            let bad = || format!("RRULE {key}={value} is not valid");
            match key.trim().to_ascii_uppercase().as_str() {
                "FREQ" => {
                    freq = Some(match value.as_str() {
                        "DAILY" => Freq::Daily,
                        "WEEKLY" => Freq::Weekly,
                        "MONTHLY" => Freq::Monthly,
                        "YEARLY" => Freq::Yearly,
                        other => {
                            return Err(format!(
                                "RRULE FREQ={other} is not supported (daily, weekly, monthly, yearly)"
                            ));
                        }
                    })
                }
                "INTERVAL" => rule.interval = value.parse::<i64>().ok().filter(|n| *n >= 1).ok_or_else(bad)?,
                "COUNT" => rule.count = Some(value.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(bad)?),
                "UNTIL" => {
                    let (civil, _) = parse_civil(&value)?;
                    let zone = if value.ends_with('Z') {
                        TimeZone::UTC
                    } else {
                        start.zone.clone()
                    };
                    // A date-only UNTIL includes that whole day.
                    let end = if value.len() == 8 {
                        civil_ms(&zone, civil) + 86_400_000 - 1
                    } else {
                        civil_ms(&zone, civil)
                    };
                    rule.until_ms = Some(end);
                }
                "BYDAY" => {
                    for item in value.split(',') {
                        let item = item.trim();
                        if item.len() < 2 {
                            return Err(bad());
                        }
                        let (nth, code) = item.split_at(item.len() - 2);
                        let day = weekday(code).ok_or_else(bad)?;
                        let nth: i8 = if nth.is_empty() {
                            0
                        } else {
                            nth.trim_start_matches('+').parse().map_err(|_| bad())?
                        };
                        rule.by_day.push((nth, day));
                    }
                }
                "BYMONTHDAY" => {
                    for item in value.split(',') {
                        let d: i8 = item.trim().parse().map_err(|_| bad())?;
                        if d == 0 || !(-31..=31).contains(&d) {
                            return Err(bad());
                        }
                        rule.by_month_day.push(d);
                    }
                }
                "BYMONTH" => {
                    for item in value.split(',') {
                        let m: i8 = item.trim().parse().map_err(|_| bad())?;
                        if !(1..=12).contains(&m) {
                            return Err(bad());
                        }
                        rule.by_month.push(m);
                    }
                }
                "WKST" => rule.week_start = weekday(&value).ok_or_else(bad)?,
                other => return Err(format!("RRULE {other} is not supported")),
            }
        }
        rule.freq = freq.ok_or("RRULE has no FREQ")?;
        Ok(rule)
    }

    /// The candidate dates of period `k` (0 = the period holding the start), ascending.
    fn dates_of_period(&self, start: Date, k: i64) -> Vec<Date> {
        let step = k * self.interval;
        let mut dates: Vec<Date> = match self.freq {
            Freq::Daily => start
                .checked_add(Span::new().days(step))
                .ok()
                .filter(|d| self.by_month.is_empty() || self.by_month.contains(&d.month()))
                .into_iter()
                .collect(),
            Freq::Weekly => {
                let offset = (i64::from(start.weekday().to_monday_zero_offset())
                    - i64::from(self.week_start.to_monday_zero_offset()))
                .rem_euclid(7);
                let Ok(week) = start.checked_add(Span::new().days(step * 7 - offset)) else {
                    return Vec::new();
                };
                let days: Vec<Weekday> = if self.by_day.is_empty() {
                    vec![start.weekday()]
                } else {
                    self.by_day.iter().map(|(_, d)| *d).collect()
                };
                (0..7)
                    .filter_map(|i| week.checked_add(Span::new().days(i)).ok())
                    .filter(|d| days.contains(&d.weekday()))
                    .collect()
            }
            Freq::Monthly => {
                let months = i64::from(start.year()) * 12 + i64::from(start.month() - 1) + step;
                let Ok(first) = Date::new((months / 12) as i16, (months % 12 + 1) as i8, 1) else {
                    return Vec::new();
                };
                if !self.by_month.is_empty() && !self.by_month.contains(&first.month()) {
                    return Vec::new();
                }
                self.days_in_month(first, start)
            }
            Freq::Yearly => {
                let year = i64::from(start.year()) + step;
                let months: Vec<i8> = if self.by_month.is_empty() {
                    vec![start.month()]
                } else {
                    self.by_month.clone()
                };
                months
                    .iter()
                    .filter_map(|m| Date::new(year as i16, *m, 1).ok())
                    .flat_map(|first| self.days_in_month(first, start))
                    .collect()
            }
        };
        dates.sort();
        dates.dedup();
        dates
    }

    fn days_in_month(&self, first: Date, start: Date) -> Vec<Date> {
        let len = first.days_in_month();
        let mut out = Vec::new();
        for d in &self.by_month_day {
            let day = if *d > 0 { *d } else { len + 1 + *d };
            if (1..=len).contains(&day)
                && let Ok(date) = first.with().day(day).build()
            {
                out.push(date);
            }
        }
        for (nth, wd) in &self.by_day {
            if *nth == 0 {
                out.extend(
                    (0..len)
                        .filter_map(|i| first.checked_add(Span::new().days(i64::from(i))).ok())
                        .filter(|d| d.weekday() == *wd),
                );
            } else if let Ok(date) = first.nth_weekday_of_month(*nth, *wd) {
                out.push(date);
            }
        }
        if self.by_month_day.is_empty() && self.by_day.is_empty() {
            // The start's day of the month; months without it have no instance.
            if let Ok(date) = first.with().day(start.day()).build()
                && date.month() == first.month()
            {
                out.push(date);
            }
        }
        out
    }
}

/// Every occurrence of the feed's events that overlaps `[from_ms, to_ms)`, overrides and
/// exclusions applied, sorted by start. Problems with single events (an unsupported rule)
/// are appended to `problems`.
pub fn occurrences(calendar: &Calendar, from_ms: i64, to_ms: i64, problems: &mut Vec<String>) -> Vec<Occurrence> {
    let mut out = Vec::new();
    let overrides: Vec<&Event> = calendar
        .events
        .iter()
        .filter(|e| e.recurrence_id_ms.is_some())
        .collect();
    for event in calendar.events.iter().filter(|e| e.recurrence_id_ms.is_none()) {
        let instances = match expand(event, to_ms) {
            Ok(instances) => instances,
            Err(problem) => {
                problems.push(format!("event {:?}: {problem}; skipped", event.uid));
                continue;
            }
        };
        for instance_ms in instances {
            if event.exdates.contains(&instance_ms) {
                continue;
            }
            let source = overrides
                .iter()
                .find(|o| o.uid == event.uid && o.recurrence_id_ms == Some(instance_ms))
                .copied()
                .unwrap_or(event);
            if source.cancelled {
                continue;
            }
            let start_ms = if std::ptr::eq(source, event) {
                instance_ms
            } else {
                source.start.at_ms()
            };
            let end_ms = start_ms + source.duration_ms.max(0);
            if end_ms.max(start_ms + 1) <= from_ms || start_ms >= to_ms {
                continue;
            }
            out.push(occurrence_of(source, &event.uid, instance_ms, start_ms, end_ms));
        }
    }
    // Overrides whose series is not in the feed stand alone.
    for o in &overrides {
        let Some(instance_ms) = o.recurrence_id_ms else {
            continue;
        };
        let has_series = calendar
            .events
            .iter()
            .any(|e| e.uid == o.uid && e.recurrence_id_ms.is_none());
        let start_ms = o.start.at_ms();
        let end_ms = start_ms + o.duration_ms.max(0);
        if !has_series && !o.cancelled && end_ms.max(start_ms + 1) > from_ms && start_ms < to_ms {
            out.push(occurrence_of(o, &o.uid, instance_ms, start_ms, end_ms));
        }
    }
    out.sort_by_key(|o| (o.start_ms, o.uid.clone()));
    out
}

fn occurrence_of(source: &Event, uid: &str, instance_ms: i64, start_ms: i64, end_ms: i64) -> Occurrence {
    Occurrence {
        uid: uid.to_owned(),
        instance_ms,
        start_ms,
        end_ms,
        summary: source.summary.clone(),
        description: source.description.clone(),
        location: source.location.clone(),
        organizer: source.organizer.clone(),
        attendees: source.attendees.clone(),
        all_day: source.start.all_day,
    }
}

/// The original start instants of an event's instances that begin before `to_ms`.
fn expand(event: &Event, to_ms: i64) -> Result<Vec<i64>, String> {
    let first = event.start.at_ms();
    let Some(text) = &event.rrule else {
        return Ok(if first < to_ms { vec![first] } else { Vec::new() });
    };
    let rule = Rule::parse(text, &event.start)?;
    let start_date = event.start.civil.date();
    let time = event.start.civil.time();
    let mut out = Vec::new();
    let mut generated = 0usize;
    for k in 0..i64::from(MAX_RRULE_PERIODS) {
        let mut past_end = false;
        for date in rule.dates_of_period(start_date, k) {
            let at = civil_ms(&event.start.zone, date.to_datetime(time));
            if at < first {
                continue;
            }
            if rule.until_ms.is_some_and(|u| at > u) || rule.count.is_some_and(|c| generated >= c) || at >= to_ms {
                past_end = true;
                break;
            }
            generated += 1;
            out.push(at);
            if out.len() >= MAX_OCCURRENCES_PER_EVENT {
                return Ok(out);
            }
        }
        if past_end {
            break;
        }
    }
    Ok(out)
}

/// Formats an instant in `zone` for people (`2026-03-29 09:00 CEST`).
pub fn format_in(ms: i64, zone: &TimeZone) -> String {
    Timestamp::from_millisecond(ms)
        .map(|t| t.to_zoned(zone.clone()).strftime("%Y-%m-%d %H:%M %Z").to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// Writes one event as an iCalendar object (for CalDAV `PUT`); times in UTC.
#[allow(clippy::too_many_arguments)]
pub fn event_ics(
    uid: &str,
    summary: &str,
    start_ms: i64,
    end_ms: i64,
    description: &str,
    location: &str,
    attendees: &[String],
    now_ms: i64,
) -> String {
    let stamp = |ms: i64| {
        Timestamp::from_millisecond(ms)
            .map(|t| t.strftime("%Y%m%dT%H%M%SZ").to_string())
            .unwrap_or_default()
    };
    let escape = |s: &str| {
        s.replace('\\', "\\\\")
            .replace(';', "\\;")
            .replace(',', "\\,")
            .replace('\n', "\\n")
            .replace('\r', "")
    };
    let mut out = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Coworker//EN\r\nBEGIN:VEVENT\r\nUID:{}\r\nDTSTAMP:{}\r\nDTSTART:{}\r\nDTEND:{}\r\nSUMMARY:{}\r\n",
        escape(uid),
        stamp(now_ms),
        stamp(start_ms),
        stamp(end_ms),
        escape(summary)
    );
    if !description.is_empty() {
        out.push_str(&format!("DESCRIPTION:{}\r\n", escape(description)));
    }
    if !location.is_empty() {
        out.push_str(&format!("LOCATION:{}\r\n", escape(location)));
    }
    for a in attendees {
        out.push_str(&format!("ATTENDEE:mailto:{}\r\n", a.trim().replace(['\r', '\n'], "")));
    }
    out.push_str("END:VEVENT\r\nEND:VCALENDAR\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    const WEEKLY: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:standup\r\nSUMMARY:Client\r\n  sync\r\n\
DTSTART;TZID=Europe/Paris:20260316T090000\r\nDTEND;TZID=Europe/Paris:20260316T093000\r\nRRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=5\r\n\
EXDATE;TZID=Europe/Paris:20260406T090000\r\nATTENDEE;CN=\"Bob: ext\":mailto:bob@client.example\r\n\
BEGIN:VALARM\r\nSUMMARY:not the event\r\nEND:VALARM\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:standup\r\nRECURRENCE-ID;TZID=Europe/Paris:20260323T090000\r\nSUMMARY:Client sync (moved)\r\n\
DTSTART;TZID=Europe/Paris:20260323T140000\r\nDURATION:PT30M\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn weekly_series_with_dst_exdate_and_a_moved_instance() {
        let cal = parse_ics(WEEKLY, &TimeZone::UTC);
        assert!(cal.problems.is_empty(), "{:?}", cal.problems);
        let mut problems = Vec::new();
        let occ = occurrences(&cal, 0, ms("2027-01-01T00:00:00Z"), &mut problems);
        let starts: Vec<i64> = occ.iter().map(|o| o.start_ms).collect();
        assert_eq!(
            starts,
            vec![
                ms("2026-03-16T08:00:00Z"), // CET
                ms("2026-03-23T13:00:00Z"), // moved to 14:00 CET
                ms("2026-03-30T07:00:00Z"), // CEST after 29 March: still 09:00 on the wall
                ms("2026-04-13T07:00:00Z"), // 6 April excluded; COUNT counts it
            ]
        );
        assert_eq!(occ[0].summary, "Client sync");
        assert_eq!(occ[1].summary, "Client sync (moved)");
        assert_eq!(occ[1].instance_ms, ms("2026-03-23T08:00:00Z"));
        assert!(occ[0].is_external(&["us.example".into()]));
        assert!(!occ[0].is_external(&["client.example".into()]));
    }

    #[test]
    fn monthly_yearly_and_until() {
        let cal = parse_ics(
            "BEGIN:VEVENT\nUID:m\nDTSTART:20260131T100000Z\nRRULE:FREQ=MONTHLY;UNTIL=20260601\nEND:VEVENT\n\
             BEGIN:VEVENT\nUID:l\nDTSTART:20260130T100000Z\nRRULE:FREQ=MONTHLY;BYDAY=-1FR;COUNT=3\nEND:VEVENT\n",
            &TimeZone::UTC,
        );
        let mut p = Vec::new();
        let occ = occurrences(&cal, 0, ms("2030-01-01T00:00:00Z"), &mut p);
        let of = |uid: &str| -> Vec<String> {
            occ.iter()
                .filter(|o| o.uid == uid)
                .map(|o| {
                    Timestamp::from_millisecond(o.start_ms)
                        .unwrap()
                        .strftime("%m-%d")
                        .to_string()
                })
                .collect()
        };
        assert_eq!(
            of("m"),
            ["01-31", "03-31", "05-31"],
            "months without a 31st are skipped"
        );
        assert_eq!(of("l"), ["01-30", "02-27", "03-27"]);
    }

    #[test]
    fn bad_events_are_named_and_skipped() {
        let cal = parse_ics(
            "BEGIN:VEVENT\nUID:a\nSUMMARY:Planning\nDTSTART;TZID=Europe/Pariss:20260301T090000\nEND:VEVENT\n\
             BEGIN:VEVENT\nUID:b\nDTSTART:2026-03-01\nEND:VEVENT\n\
             BEGIN:VEVENT\nUID:c\nDTSTART:20260301T090000Z\nRRULE:FREQ=WEEKLY;BYSETPOS=1\nEND:VEVENT\n\
             BEGIN:VEVENT\nUID:ok\nDTSTART;VALUE=DATE:20260301\nEND:VEVENT\n",
            &TimeZone::UTC,
        );
        assert_eq!(cal.events.len(), 1);
        assert_eq!(cal.events[0].uid, "ok");
        assert_eq!(cal.problems.len(), 3, "{:?}", cal.problems);
        assert!(
            cal.problems[0].contains("Europe/Pariss") && cal.problems[0].contains("Europe/Paris"),
            "{}",
            cal.problems[0]
        );
        assert!(cal.problems[2].contains("BYSETPOS"));
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration_ms("PT1H30M").unwrap(), 5_400_000);
        assert_eq!(parse_duration_ms("P1D").unwrap(), 86_400_000);
        assert_eq!(parse_duration_ms("-PT15M").unwrap(), -900_000);
        assert!(parse_duration_ms("1H").is_err());
    }
}
