//! When to try a call again.

use std::time::Duration;

/// Retries of `-1 system error` and transport failures. They are made only for calls
/// that can be repeated without harm (update, del, the lists); `add` and
/// `inviteworker` are never retried blindly, because a `-1` may have been applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Further attempts after the first (0 disables retries).
    pub max_retries: u32,
    /// Wait before the first retry; doubled each time.
    pub initial_backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// No retries.
    #[must_use]
    pub const fn none() -> RetryPolicy {
        RetryPolicy {
            max_retries: 0,
            initial_backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
        }
    }

    /// The wait before retry number `attempt` (1-based), with ±25% jitter.
    #[must_use]
    pub fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let capped = base.min(self.max_backoff);
        let jitter = rand::random_range(0.75..=1.25);
        capped.mul_f64(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            max_retries: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
        };
        let first = policy.backoff(1).as_millis();
        assert!((75..=125).contains(&first), "{first}");
        let second = policy.backoff(2).as_millis();
        assert!((150..=250).contains(&second), "{second}");
        let capped = policy.backoff(6).as_millis();
        assert!((225..=375).contains(&capped), "{capped}");
    }
}
