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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advances() {
        let clock = Clock::new();
        let before = clock.now();
        clock.advance(7201);
        assert!(clock.now() >= before + 7201);
        assert_eq!(clock.offset(), 7201);
    }
}
