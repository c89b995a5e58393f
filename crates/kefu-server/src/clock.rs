//! The server's one clock. Every time-based rule reads it, so a test can move it
//! forward instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The furthest the clock can be moved ahead: 100 years.
pub const MAX_OFFSET_SECS: i64 = 100 * 366 * 86_400;

/// Wall-clock time plus an offset that only grows.
#[derive(Debug, Default)]
pub struct Clock {
    offset: AtomicI64,
}

impl Clock {
    /// A clock that reads real time.
    #[must_use]
    pub fn new() -> Clock {
        Clock::default()
    }

    /// Now, in Unix seconds.
    #[must_use]
    pub fn now(&self) -> i64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        i64::try_from(real)
            .unwrap_or(i64::MAX)
            .saturating_add(self.offset())
    }

    /// How far ahead of real time the clock is, in seconds.
    #[must_use]
    pub fn offset(&self) -> i64 {
        self.offset.load(Ordering::Relaxed)
    }

    /// Moves the clock forward to `offset` ahead of real time, if it is behind (another
    /// instance moved the shared clock).
    pub fn raise_to(&self, offset: i64) {
        self.offset
            .fetch_max(offset.min(MAX_OFFSET_SECS), Ordering::Relaxed);
    }

    /// Sets the offset, backwards too: only a reset to the fixtures does, with no
    /// request running.
    pub fn set_offset(&self, offset: i64) {
        self.offset
            .store(offset.clamp(0, MAX_OFFSET_SECS), Ordering::Relaxed);
    }

    /// Moves the clock forward, by at most [`MAX_OFFSET_SECS`] in all (so that time
    /// arithmetic never overflows).
    pub fn advance(&self, secs: u64) {
        let secs = i64::try_from(secs).unwrap_or(i64::MAX);
        let _ = self
            .offset
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |o| {
                Some(o.saturating_add(secs).min(MAX_OFFSET_SECS))
            });
    }
}

/// `secs` (Unix seconds) as `2026-12-02 10:02:11 UTC`: how a reason in the request log
/// names a moment of the server clock.
#[must_use]
pub fn utc(secs: i64) -> String {
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_are_named_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_796_200_931), "2026-12-02 08:42:11 UTC");
    }

    #[test]
    fn advances() {
        let clock = Clock::new();
        let before = clock.now();
        clock.advance(7201);
        assert!(clock.now() >= before + 7201);
        assert_eq!(clock.offset(), 7201);
    }
}
