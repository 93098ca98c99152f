//! Calling windows (SPEC §11): when a contact may be called, in the contact's own
//! timezone. A window is a local start and end time and a set of ISO weekdays; it
//! is always cut to the legal 08:00–21:00 local (US TCPA, 47 CFR 64.1200(c)(1)).
//!
//! Local time is not monotonic: a daylight-saving change skips an hour (a window
//! that starts inside it opens when the clocks jump) or repeats one (both
//! occurrences count). So an instant is *allowed* when its local weekday and time
//! are inside the window, and [`CallingWindow::next_allowed`] searches the
//! candidate instants of each day for the first allowed one at or after the
//! instant asked about, rather than adding offsets by hand.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;

use super::Refusal;

/// Earliest local time any call may be placed (TCPA).
pub const LEGAL_START: NaiveTime = hm(8, 0);
/// End of the legal calling day, exclusive (TCPA: not after 9 p.m.).
pub const LEGAL_END: NaiveTime = hm(21, 0);

const fn hm(h: u32, m: u32) -> NaiveTime {
    match NaiveTime::from_hms_opt(h, m, 0) {
        Some(t) => t,
        None => panic!("invalid time"),
    }
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal { code, message: message.into() }
}

/// A set of ISO weekdays (1 = Monday … 7 = Sunday).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weekdays(u8);

impl Weekdays {
    pub const ALL: Weekdays = Weekdays(0b111_1111);

    /// From ISO numbers; refuses an empty set and numbers outside 1–7.
    pub fn from_iso(days: &[u8]) -> Result<Self, Refusal> {
        let mut bits = 0u8;
        for &d in days {
            if !(1..=7).contains(&d) {
                return Err(refuse("invalid_calling_days", format!("calling_days are ISO weekdays 1–7, got {d}")));
            }
            bits |= 1 << (d - 1);
        }
        if bits == 0 {
            return Err(refuse("invalid_calling_days", "calling_days must name at least one weekday"));
        }
        Ok(Weekdays(bits))
    }

    pub fn contains(self, day: Weekday) -> bool {
        self.0 & (1 << day.num_days_from_monday()) != 0
    }

    /// The ISO numbers, ascending.
    pub fn iso(self) -> Vec<u8> {
        (1..=7).filter(|d| self.0 & (1 << (d - 1)) != 0).collect()
    }
}

/// A campaign's calling window: local start (inclusive), end (exclusive) and days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallingWindow {
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub days: Weekdays,
}

impl Default for CallingWindow {
    /// SPEC §1 defaults: 09:00–20:00, every day.
    fn default() -> Self {
        CallingWindow { start: hm(9, 0), end: hm(20, 0), days: Weekdays::ALL }
    }
}

impl CallingWindow {
    /// A window an operator may set: whole minutes, start before end, inside
    /// 08:00–21:00 (`invalid_calling_window` otherwise).
    pub fn new(start: NaiveTime, end: NaiveTime, days: Weekdays) -> Result<Self, Refusal> {
        let whole = |t: NaiveTime| t.second() == 0 && t.nanosecond() == 0;
        if !whole(start) || !whole(end) {
            return Err(refuse("invalid_calling_window", "calling window times are whole minutes (HH:MM)"));
        }
        if start >= end {
            return Err(refuse(
                "invalid_calling_window",
                format!("calling_window_start ({}) must be before calling_window_end ({})", fmt(start), fmt(end)),
            ));
        }
        if start < LEGAL_START || end > LEGAL_END {
            return Err(refuse(
                "invalid_calling_window",
                format!("the calling window {}–{} is outside the legal 08:00–21:00 local time", fmt(start), fmt(end)),
            ));
        }
        Ok(CallingWindow { start, end, days })
    }

    /// Parses `HH:MM` times; see [`CallingWindow::new`].
    pub fn parse(start: &str, end: &str, days: &[u8]) -> Result<Self, Refusal> {
        CallingWindow::new(parse_time(start)?, parse_time(end)?, Weekdays::from_iso(days)?)
    }

    /// The part of the window the law allows (the whole window, when it was
    /// validated by [`CallingWindow::new`]).
    fn legal(&self) -> (NaiveTime, NaiveTime) {
        (self.start.max(LEGAL_START), self.end.min(LEGAL_END))
    }

    /// May a contact in `tz` be called at `at`?
    pub fn allows(&self, tz: Tz, at: DateTime<Utc>) -> bool {
        let (start, end) = self.legal();
        open(start, end, self.days, tz, at)
    }

    /// The first instant at or after `at` when a contact in `tz` may be called.
    pub fn next_allowed(&self, tz: Tz, at: DateTime<Utc>) -> DateTime<Utc> {
        let (start, end) = self.legal();
        // A window with a day and a legal minute always has an allowed instant
        // within nine days; `at` itself is the fallback only for an impossible one.
        next_open(start, end, self.days, tz, at).unwrap_or(at)
    }
}

/// `HH:MM` as a local time (`invalid_calling_window` otherwise).
pub fn parse_time(s: &str) -> Result<NaiveTime, Refusal> {
    NaiveTime::parse_from_str(s, "%H:%M")
        .ok()
        .filter(|_| s.len() == 5)
        .ok_or_else(|| refuse("invalid_calling_window", format!("`{s}` is not a local time HH:MM (e.g. 09:00)")))
}

/// A time as `HH:MM`.
pub fn fmt(t: NaiveTime) -> String {
    t.format("%H:%M").to_string()
}

/// An IANA timezone name (`invalid_timezone` otherwise).
pub fn parse_tz(name: &str) -> Result<Tz, Refusal> {
    name.parse::<Tz>().map_err(|_| {
        refuse("invalid_timezone", format!("`{name}` is not an IANA timezone name (e.g. America/New_York)"))
    })
}

/// Is `at` inside `[start, end)` local time on one of `days`, in `tz`?
fn open(start: NaiveTime, end: NaiveTime, days: Weekdays, tz: Tz, at: DateTime<Utc>) -> bool {
    let local = at.with_timezone(&tz);
    let time = local.time();
    days.contains(local.weekday()) && start <= time && time < end
}

/// The first instant at or after `at` that is [`open`]; `None` when there is none
/// within nine days (an empty window). Any window, not only a legal one: the
/// property tests exercise windows that start inside a skipped hour.
pub(crate) fn next_open(
    start: NaiveTime,
    end: NaiveTime,
    days: Weekdays,
    tz: Tz,
    at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if open(start, end, days, tz, at) {
        return Some(at);
    }
    // Local dates can step back across a transition at midnight: start a day early.
    let today = at.with_timezone(&tz).date_naive();
    let starts = (-1..=9)
        .filter_map(|offset| today.checked_add_signed(Duration::days(offset)))
        .flat_map(|date| window_opens(tz, date, start));
    // When the clocks go back, local time can re-enter the window from after its end:
    // the window reopens at the transition itself.
    starts
        .chain(transitions(tz, at, 10))
        .map(|candidate| candidate.max(at))
        .filter(|&candidate| open(start, end, days, tz, candidate))
        .min()
}

/// The instants in the `days` days after `from` at which `tz` changes its UTC
/// offset, to the second (found by halving each day whose offset changes).
fn transitions(tz: Tz, from: DateTime<Utc>, days: i64) -> Vec<DateTime<Utc>> {
    use chrono::Offset;
    // In whole seconds: transitions fall on whole seconds (whole minutes, in fact).
    let at = |secs: i64| DateTime::from_timestamp(secs, 0).unwrap_or(from);
    let offset = |secs: i64| tz.offset_from_utc_datetime(&at(secs).naive_utc()).fix();
    let start = from.timestamp();
    let mut found = Vec::new();
    for day in 0..days {
        let (mut lo, mut hi) = (start + day * 86_400, start + (day + 1) * 86_400);
        if offset(lo) == offset(hi) {
            continue; // at most one transition a day, in every zone since 1970
        }
        // Invariant: `lo` has the old offset, `hi` the new one.
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if offset(mid) == offset(lo) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        found.push(at(hi));
    }
    found
}

/// The instants at which local `date` reaches `time`: one; two when the clocks go
/// back over it (both occurrences); or, when the clocks skip it, the instant they
/// jump (the first existing local time after it).
fn window_opens(tz: Tz, date: NaiveDate, time: NaiveTime) -> Vec<DateTime<Utc>> {
    let local = date.and_time(time);
    match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => vec![t.to_utc()],
        chrono::LocalResult::Ambiguous(a, b) => vec![a.to_utc(), b.to_utc()],
        chrono::LocalResult::None => {
            // Transitions fall on whole minutes: the first minute that exists again
            // is the instant of the jump. A skipped day (Samoa, 2011) ends the search.
            (1..=24 * 60)
                .map(|m| local + Duration::minutes(m))
                .find_map(|l| tz.from_local_datetime(&l).earliest())
                .map(|t| vec![t.to_utc()])
                .unwrap_or_default()
        }
    }
}

#[cfg(test)]
#[path = "window_tests.rs"]
mod tests;
