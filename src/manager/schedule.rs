//! `timeset=00,06,12,18`: the hours at which a scheduled run syncs a repository.

/// What to write instead of a bad timeset.
pub const TIMESET_FIX: &str =
    "write whole hours 00-23 separated by commas, e.g. timeset=00,06,12,18";

/// Parse a timeset value: comma-separated whole hours 00–23 (spaces tolerated,
/// duplicates merged). `Err` explains what is wrong and how to write it.
pub fn parse_timeset(value: &str) -> Result<Vec<u8>, String> {
    timeset_problem(value).map_err(|problem| format!("{problem}; {TIMESET_FIX}"))
}

/// Like [`parse_timeset`], with only what is wrong in `Err` (the fix is [`TIMESET_FIX`]).
pub(crate) fn timeset_problem(value: &str) -> Result<Vec<u8>, String> {
    if value.trim().is_empty() {
        return Err("timeset is empty".to_string());
    }
    let mut hours = Vec::new();
    for item in value.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(format!("`{value}` has an empty item between commas"));
        }
        let digits = item.len() <= 2 && item.bytes().all(|b| b.is_ascii_digit());
        match item.parse::<u8>() {
            Ok(h) if digits && h <= 23 => hours.push(h),
            Ok(_) if digits => return Err(format!("`{item}` is not an hour of the day (00-23)")),
            _ if item.contains(':') => {
                return Err(format!(
                    "`{item}` is a time, not a whole hour (minutes cannot be given)"
                ));
            }
            _ => return Err(format!("`{item}` is not a whole hour (00-23)")),
        }
    }
    hours.sort_unstable();
    hours.dedup();
    Ok(hours)
}

/// A repository without timeset is due every run; with one, only in those hours.
pub fn is_due(timeset: Option<&[u8]>, hour: u8) -> bool {
    timeset.is_none_or(|hours| hours.contains(&hour))
}

/// The next hour (0–23) at or after `hour`+1 at which the repository is due, for status pages.
pub fn next_hour(timeset: Option<&[u8]>, hour: u8) -> u8 {
    let after = (hour % 24 + 1) % 24;
    match timeset {
        Some(hours) if !hours.is_empty() => (0..24)
            .map(|i| (after + i) % 24)
            .find(|h| hours.contains(h))
            .unwrap_or(after),
        _ => after,
    }
}

/// When the next hourly run after `now` will sync the repository (Unix seconds):
/// the start of the next due hour, assuming cron runs dsync every hour.
pub fn next_run<Tz: chrono::TimeZone>(timeset: Option<&[u8]>, now: chrono::DateTime<Tz>) -> i64 {
    use chrono::{Duration, Timelike};
    let hour_start = now
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(now);
    (1..=24)
        .map(|n| hour_start.clone() + Duration::hours(n))
        .find(|t| is_due(timeset, t.hour() as u8))
        .unwrap_or(hour_start + Duration::hours(1))
        .timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_run_is_the_start_of_the_next_due_hour() {
        use chrono::TimeZone;
        let now = chrono::Utc
            .with_ymd_and_hms(2026, 11, 23, 10, 17, 5)
            .unwrap();
        let at = |h: u32, day: u32| {
            chrono::Utc
                .with_ymd_and_hms(2026, 11, day, h, 0, 0)
                .unwrap()
                .timestamp()
        };
        assert_eq!(next_run(None, now), at(11, 23));
        assert_eq!(next_run(Some(&[0, 12]), now), at(12, 23));
        assert_eq!(next_run(Some(&[10]), now), at(10, 24));
        assert_eq!(next_run(Some(&[6]), now), at(6, 24));
    }

    #[test]
    fn parses_hours_sorted_and_merged() {
        assert_eq!(parse_timeset("00,06,12,18"), Ok(vec![0, 6, 12, 18]));
        assert_eq!(parse_timeset(" 18, 6 ,6,0 "), Ok(vec![0, 6, 18]));
        assert_eq!(parse_timeset("23"), Ok(vec![23]));
        assert_eq!(parse_timeset("7"), Ok(vec![7]));
    }

    #[test]
    fn refuses_what_is_not_whole_hours() {
        for bad in [
            "00:12", "오후01", "24", "", "1,,2", "6,", "-1", "+6", "006", "6pm", "*",
        ] {
            let err = parse_timeset(bad).expect_err(bad);
            assert!(err.ends_with(TIMESET_FIX), "{bad}: {err}");
        }
        assert!(parse_timeset("00:12").unwrap_err().contains("minutes"));
        assert!(parse_timeset("오후01").unwrap_err().contains("`오후01`"));
        assert!(parse_timeset("24").unwrap_err().contains("00-23"));
    }

    #[test]
    fn due_hours() {
        assert!(is_due(None, 5));
        assert!(is_due(Some(&[5]), 5));
        assert!(!is_due(Some(&[5]), 6));
    }

    #[test]
    fn next_hours() {
        assert_eq!(next_hour(None, 5), 6);
        assert_eq!(next_hour(None, 23), 0);
        let t = [0, 6, 12, 18];
        assert_eq!(next_hour(Some(&t), 0), 6);
        assert_eq!(next_hour(Some(&t), 5), 6);
        assert_eq!(next_hour(Some(&t), 6), 12);
        assert_eq!(next_hour(Some(&t), 18), 0);
        assert_eq!(next_hour(Some(&t), 23), 0);
        assert_eq!(next_hour(Some(&[7]), 7), 7);
        assert_eq!(next_hour(Some(&[]), 3), 4);
    }
}
