//! `timeset=00,06,12,18`: the hours at which a scheduled run syncs a repository.
//! (CONTRACT STUB: implementation to be written.)

/// Parse a timeset value: comma-separated whole hours 00–23 (spaces tolerated,
/// duplicates merged). `Err` explains what is wrong and how to write it.
pub fn parse_timeset(value: &str) -> Result<Vec<u8>, String> {
    let _ = value;
    todo!()
}

/// A repository without timeset is due every run; with one, only in those hours.
pub fn is_due(timeset: Option<&[u8]>, hour: u8) -> bool {
    timeset.is_none_or(|hours| hours.contains(&hour))
}

/// The next hour (0–23) at or after `hour`+1 at which the repository is due, for status pages.
pub fn next_hour(timeset: Option<&[u8]>, hour: u8) -> u8 {
    let _ = (timeset, hour);
    todo!()
}
