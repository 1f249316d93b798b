//! Retries with exponential backoff and full jitter, bounded by a number of attempts and a
//! total deadline, honouring the provider's `Retry-After`.
//!
//! A small loop rather than a crate: the rules (which errors, `Retry-After` overriding the
//! backoff, never sleeping past the deadline) are the whole point and are easier to test here.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::ModelError;

/// Limits on retrying one model call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Most attempts, the first included (1 = never retry).
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles each time.
    pub base_delay: Duration,
    /// Longest backoff between two attempts (a `Retry-After` may ask for longer, up to the
    /// deadline).
    pub max_delay: Duration,
    /// Total time budget across all attempts and waits.
    pub deadline: Duration,
}

/// Default number of attempts.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            deadline: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    /// The jittered wait before attempt `attempt + 1` (`attempt` starts at 1): uniformly
    /// random in `[backoff / 2, backoff]` with `backoff = base * 2^(attempt-1)` capped at
    /// `max_delay`. Half-jitter keeps a floor so a burst of 429s still backs off.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let backoff = self.base_delay.saturating_mul(1u32 << exponent).min(self.max_delay);
        let half = backoff / 2;
        let spread = u64::try_from(half.as_micros()).unwrap_or(u64::MAX);
        let jitter = if spread == 0 { 0 } else { random_u64() % (spread + 1) };
        half + Duration::from_micros(jitter)
    }
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // Jitter only spreads retries; if the OS cannot give randomness, no jitter is fine.
    if getrandom::fill(&mut bytes).is_err() {
        return 0;
    }
    u64::from_le_bytes(bytes)
}

/// Runs `attempt` until it succeeds, fails for good, or the policy is spent. Returns the
/// value and the number of attempts made. `attempt` receives the deadline of the whole call.
pub async fn with_retries<T, F, Fut>(
    provider: &str,
    policy: &RetryPolicy,
    mut attempt: F,
) -> Result<(T, u32), ModelError>
where
    F: FnMut(Instant) -> Fut,
    Fut: Future<Output = Result<T, ModelError>>,
{
    let started = Instant::now();
    let deadline = started + policy.deadline;
    let max_attempts = policy.max_attempts.max(1);
    let mut number = 1;
    loop {
        let error = match attempt(deadline).await {
            Ok(value) => return Ok((value, number)),
            Err(error) => error,
        };
        if !error.is_retryable() || number >= max_attempts {
            return Err(error);
        }
        let wait = error
            .retry_after()
            .map_or_else(|| policy.backoff(number), |asked| asked.max(policy.backoff(number) / 4));
        if Instant::now() + wait >= deadline {
            tracing::warn!(
                provider,
                attempt = number,
                wait_ms = wait.as_millis() as u64,
                "model call failed; not retrying because the wait would pass the deadline: {error}"
            );
            return Err(error);
        }
        tracing::warn!(
            provider,
            attempt = number,
            wait_ms = wait.as_millis() as u64,
            "model call failed; retrying: {error}"
        );
        tokio::time::sleep(wait).await;
        number += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered_within_bounds() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            deadline: Duration::from_secs(60),
        };
        for _ in 0..50 {
            let first = policy.backoff(1);
            assert!(
                first >= Duration::from_millis(50) && first <= Duration::from_millis(100),
                "{first:?}"
            );
            let third = policy.backoff(3);
            assert!(
                third >= Duration::from_millis(200) && third <= Duration::from_millis(400),
                "{third:?}"
            );
            let late = policy.backoff(30);
            assert!(
                late >= Duration::from_millis(500) && late <= Duration::from_secs(1),
                "{late:?}"
            );
        }
    }

    fn server_error() -> ModelError {
        ModelError::Server {
            provider: "p".into(),
            status: 500,
            message: "boom".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stops_after_max_attempts_and_not_on_permanent_errors() {
        let policy = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(10),
            deadline: Duration::from_secs(60),
        };
        let mut calls = 0;
        let result: Result<((), u32), _> = with_retries("p", &policy, |_| {
            calls += 1;
            async { Err(server_error()) }
        })
        .await;
        assert_eq!(result.unwrap_err(), server_error());
        assert_eq!(calls, 3);

        let mut calls = 0;
        let result: Result<((), u32), _> = with_retries("p", &policy, |_| {
            calls += 1;
            async {
                Err(ModelError::InvalidRequest {
                    provider: "p".into(),
                    status: 400,
                    message: "bad".into(),
                })
            }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_past_the_deadline_gives_up_at_once() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(10),
            deadline: Duration::from_secs(5),
        };
        let mut calls = 0;
        let result: Result<((), u32), _> = with_retries("p", &policy, |_| {
            calls += 1;
            async {
                Err(ModelError::RateLimited {
                    provider: "p".into(),
                    message: "slow down".into(),
                    retry_after: Some(Duration::from_secs(30)),
                })
            }
        })
        .await;
        assert!(matches!(result, Err(ModelError::RateLimited { .. })));
        assert_eq!(calls, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_waited_even_when_longer_than_max_delay() {
        let policy = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
            deadline: Duration::from_secs(60),
        };
        let start = Instant::now();
        let mut calls = 0;
        let result = with_retries("p", &policy, |_| {
            calls += 1;
            let n = calls;
            async move {
                if n == 1 {
                    Err(ModelError::RateLimited {
                        provider: "p".into(),
                        message: "wait".into(),
                        retry_after: Some(Duration::from_secs(7)),
                    })
                } else {
                    Ok("done")
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(result, ("done", 2));
        // Paused clock: virtual time advanced by exactly the requested wait, no real sleeping.
        assert!(start.elapsed() >= Duration::from_secs(7));
    }
}
