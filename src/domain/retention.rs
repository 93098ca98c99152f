//! The retention cutoff (SPEC §13): events and finished jobs of calls that ended
//! more than `days` ago may be removed. Pure: the clock is passed in.

use chrono::{DateTime, Duration, Utc};

/// The longest retention accepted, in days (ten years): beyond it the age is a
/// typo, not a policy.
pub const MAX_RETENTION_DAYS: i64 = 3650;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the retention age must be between 1 and {MAX_RETENTION_DAYS} days, got {0}")]
pub struct InvalidRetention(pub i64);

/// The instant before which a finished call's data may go. At least a day: the
/// providers' retries and the outage spool's drain fall well inside it, so a
/// late redelivery still finds its dedupe key.
pub fn retention_cutoff(now: DateTime<Utc>, days: i64) -> Result<DateTime<Utc>, InvalidRetention> {
    if !(1..=MAX_RETENTION_DAYS).contains(&days) {
        return Err(InvalidRetention(days));
    }
    Ok(now - Duration::days(days))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ages_outside_the_bounds_are_refused() {
        let now = Utc::now();
        for days in [i64::MIN, -1, 0, MAX_RETENTION_DAYS + 1, i64::MAX] {
            assert_eq!(retention_cutoff(now, days), Err(InvalidRetention(days)));
        }
        assert_eq!(retention_cutoff(now, 1), Ok(now - Duration::days(1)));
    }

    proptest! {
        #[test]
        fn the_cutoff_is_always_at_least_a_day_back(days in 1i64..=MAX_RETENTION_DAYS, secs in 0i64..4_000_000_000) {
            let now = DateTime::from_timestamp(secs, 0).unwrap();
            let cutoff = retention_cutoff(now, days).unwrap();
            prop_assert!(cutoff <= now - Duration::days(1));
            prop_assert_eq!(now - cutoff, Duration::days(days));
        }
    }
}
