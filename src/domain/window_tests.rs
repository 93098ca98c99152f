use chrono::{Duration, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;

use super::*;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn local(tz: Tz, at: DateTime<Utc>) -> String {
    at.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

#[test]
fn a_no_answer_late_in_new_york_is_retried_the_next_morning() {
    let ny: Tz = "America/New_York".parse().unwrap();
    let w = CallingWindow::default();
    // 20:30 EST + 60 min = 21:30 local: outside; next 09:00 local.
    let due = utc(2026, 1, 14, 1, 30) + Duration::minutes(60);
    assert_eq!(local(ny, w.next_allowed(ny, due)), "2026-01-14 09:00 EST");
    // Inside the window: unchanged.
    let noon = utc(2026, 1, 14, 17, 0);
    assert_eq!(w.next_allowed(ny, noon), noon);
}

#[test]
fn calling_days_skip_to_the_next_allowed_weekday() {
    let tz: Tz = "Europe/Paris".parse().unwrap();
    let weekdays = CallingWindow::parse("10:00", "18:00", &[1, 2, 3, 4, 5]).unwrap();
    // Friday 18:30 Paris → Monday 10:00.
    let friday_evening = utc(2026, 5, 15, 16, 30);
    assert_eq!(local(tz, weekdays.next_allowed(tz, friday_evening)), "2026-05-18 10:00 CEST");
}

#[test]
fn daylight_saving_changes_move_the_utc_instant_not_the_local_time() {
    let ny: Tz = "America/New_York".parse().unwrap();
    let w = CallingWindow::default();
    // Spring forward on 2026-03-08: 09:00 EDT is 13:00 UTC, the day before 14:00 UTC.
    assert_eq!(w.next_allowed(ny, utc(2026, 3, 8, 3, 0)), utc(2026, 3, 8, 13, 0));
    assert_eq!(w.next_allowed(ny, utc(2026, 3, 7, 3, 0)), utc(2026, 3, 7, 14, 0));
    // Fall back on 2026-11-01: 09:00 EST is 14:00 UTC.
    assert_eq!(w.next_allowed(ny, utc(2026, 11, 1, 3, 0)), utc(2026, 11, 1, 14, 0));
}

#[test]
fn a_window_that_starts_inside_the_skipped_hour_opens_when_the_clocks_jump() {
    let ny: Tz = "America/New_York".parse().unwrap();
    let start = NaiveTime::from_hms_opt(2, 30, 0).unwrap();
    let end = NaiveTime::from_hms_opt(5, 0, 0).unwrap();
    // 2026-03-08 02:00 EST jumps to 03:00 EDT (07:00 UTC); 02:30 never happens.
    let opened = next_open(start, end, Weekdays::ALL, ny, utc(2026, 3, 8, 5, 0)).unwrap();
    assert_eq!(opened, utc(2026, 3, 8, 7, 0));
    assert_eq!(local(ny, opened), "2026-03-08 03:00 EDT");
    // In the repeated hour of 2026-11-01 (01:00–02:00 twice) both occurrences count.
    let (start, end) = (NaiveTime::from_hms_opt(1, 30, 0).unwrap(), NaiveTime::from_hms_opt(1, 45, 0).unwrap());
    let first = next_open(start, end, Weekdays::ALL, ny, utc(2026, 11, 1, 4, 0)).unwrap();
    assert_eq!(first, utc(2026, 11, 1, 5, 30));
    let second = next_open(start, end, Weekdays::ALL, ny, first + Duration::minutes(15)).unwrap();
    assert_eq!(second, utc(2026, 11, 1, 6, 30), "the second 01:30, one hour later");
    // After the first occurrence's end (01:45 EDT), the clocks going back reopen the
    // window at once: 01:00 EST is inside 00:30–01:30.
    let (start, end) = (NaiveTime::from_hms_opt(0, 30, 0).unwrap(), NaiveTime::from_hms_opt(1, 30, 0).unwrap());
    let reopened = next_open(start, end, Weekdays::ALL, ny, utc(2026, 11, 1, 5, 45)).unwrap();
    assert_eq!(reopened, utc(2026, 11, 1, 6, 0));
}

#[test]
fn half_and_quarter_hour_offsets() {
    let w = CallingWindow::default();
    let kolkata: Tz = "Asia/Kolkata".parse().unwrap();
    assert_eq!(w.next_allowed(kolkata, utc(2026, 6, 1, 0, 0)), utc(2026, 6, 1, 3, 30));
    let kathmandu: Tz = "Asia/Kathmandu".parse().unwrap();
    assert_eq!(w.next_allowed(kathmandu, utc(2026, 6, 1, 0, 0)), utc(2026, 6, 1, 3, 15));
    // Lord Howe moves its clocks by 30 minutes (+10:30 → +11 on 2026-10-04).
    let lord_howe: Tz = "Australia/Lord_Howe".parse().unwrap();
    assert_eq!(local(lord_howe, w.next_allowed(lord_howe, utc(2026, 10, 3, 23, 0))), "2026-10-04 10:00 +11");
}

#[test]
fn operator_input_is_checked_with_precise_codes() {
    let code = |r: Result<CallingWindow, Refusal>| r.unwrap_err().code;
    assert_eq!(code(CallingWindow::parse("18:00", "09:00", &[1])), "invalid_calling_window");
    assert_eq!(code(CallingWindow::parse("09:00", "09:00", &[1])), "invalid_calling_window");
    assert_eq!(code(CallingWindow::parse("07:30", "12:00", &[1])), "invalid_calling_window");
    assert_eq!(code(CallingWindow::parse("09:00", "21:30", &[1])), "invalid_calling_window");
    assert_eq!(code(CallingWindow::parse("9:00", "12:00", &[1])), "invalid_calling_window");
    assert_eq!(code(CallingWindow::parse("25:00", "12:00", &[1])), "invalid_calling_window");
    assert_eq!(code(CallingWindow::parse("09:00", "12:00", &[])), "invalid_calling_days");
    assert_eq!(code(CallingWindow::parse("09:00", "12:00", &[0])), "invalid_calling_days");
    assert_eq!(code(CallingWindow::parse("09:00", "12:00", &[8])), "invalid_calling_days");
    assert!(CallingWindow::parse("08:00", "21:00", &[7, 1, 7]).is_ok());
    assert_eq!(parse_tz("Mars/Olympus").unwrap_err().code, "invalid_timezone");
    assert_eq!(Weekdays::from_iso(&[7, 1, 3]).unwrap().iso(), vec![1, 3, 7]);
}

/// Zones with daylight saving at odd hours, half- and quarter-hour offsets,
/// transitions at midnight, and half-hour daylight saving.
const ZONES: &[&str] = &[
    "America/New_York",
    "America/Los_Angeles",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "America/St_Johns",
    "Australia/Adelaide",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/Santiago",
    "America/Havana",
    "Asia/Tehran",
    "Pacific/Apia",
    "UTC",
];

/// Instants in 2024–2032, biased towards the weeks around daylight-saving changes
/// (March/April, September–November) by drawing the month from those half the time.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let month = prop_oneof![1u32..=12, prop::sample::select(vec![3u32, 4, 9, 10, 11])];
    (2024i32..=2032, month, 1u32..=28, 0u32..24, 0u32..60, 0u32..60)
        .prop_map(|(y, mo, d, h, mi, s)| Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap())
}

fn minute(m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(m / 60, m % 60, 0).unwrap()
}

fn legal_window() -> impl Strategy<Value = CallingWindow> {
    let legal = (8u32 * 60)..(21u32 * 60);
    (legal.clone(), legal, 1u8..=127).prop_filter_map("start before end", |(a, b, bits): (u32, u32, u8)| {
        let (start, end) = (a.min(b), a.max(b));
        let days: Vec<u8> = (1..=7).filter(|d| bits & (1 << (d - 1)) != 0).collect();
        (start < end)
            .then(|| CallingWindow::new(minute(start), minute(end), Weekdays::from_iso(&days).unwrap()).ok())?
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// The next allowed instant is never earlier than asked, is allowed (inside
    /// the window, on an allowed day, inside 08:00–21:00 local), and is the first:
    /// no minute between the two is allowed.
    #[test]
    fn next_allowed_is_the_first_allowed_instant(w in legal_window(), zone in prop::sample::select(ZONES), at in instant()) {
        let tz: Tz = zone.parse().unwrap();
        let next = w.next_allowed(tz, at);
        prop_assert!(next >= at);
        prop_assert!(w.allows(tz, next), "{} not allowed", local(tz, next));
        let l = next.with_timezone(&tz).time();
        prop_assert!(LEGAL_START <= l && l < LEGAL_END, "{} outside 08:00–21:00", local(tz, next));
        prop_assert!(next - at <= Duration::days(8));
        // Allowedness only changes on whole minutes (windows and transitions are
        // whole minutes), so checking each minute boundary in between is complete.
        let mut probe = at.with_second(0).unwrap().with_nanosecond(0).unwrap() + Duration::minutes(1);
        while probe < next {
            prop_assert!(!w.allows(tz, probe), "{} was allowed before {}", local(tz, probe), local(tz, next));
            probe += Duration::minutes(1);
        }
    }

    /// Any window, even one outside legal hours, starting inside a skipped hour or
    /// reopened by the clocks going back, is found: at or after the instant asked,
    /// inside the window, and no minute between the two is open.
    #[test]
    fn any_window_opens_at_or_after_its_local_start(
        a in 0u32..(24 * 60), b in 0u32..(24 * 60), zone in prop::sample::select(ZONES), at in instant(),
    ) {
        prop_assume!(a != b);
        let (start, end) = (minute(a.min(b)), minute(a.max(b)));
        let tz: Tz = zone.parse().unwrap();
        let next = next_open(start, end, Weekdays::ALL, tz, at);
        prop_assert!(next.is_some(), "no opening within nine days");
        let next = next.unwrap();
        prop_assert!(next >= at);
        let l = next.with_timezone(&tz);
        prop_assert!(start <= l.time() && l.time() < end, "{}", local(tz, next));
        prop_assert!(next - at <= Duration::days(2), "a daily window opens within two days");
        let mut probe = at.with_second(0).unwrap().with_nanosecond(0).unwrap() + Duration::minutes(1);
        while probe < next {
            prop_assert!(!open(start, end, Weekdays::ALL, tz, probe), "{} opened before {}", local(tz, probe), local(tz, next));
            probe += Duration::minutes(1);
        }
    }
}
