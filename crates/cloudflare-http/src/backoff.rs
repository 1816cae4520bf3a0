//! Retry timing: [`BackoffConfig`] (decorrelated jitter) and [`RetryConfig`].
//!
//! The jitter follows "decorrelated jitter" from
//! <https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/>:
//! `next = min(max_backoff, random_between(init_backoff, previous * base))`.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Default [`RetryConfig::max_retries`]: three retries, i.e. four attempts at most.
pub const DEFAULT_MAX_RETRIES: u32 = 3;

/// Default first backoff delay ([`BackoffConfig::init_backoff`]): one second.
pub const DEFAULT_INIT_BACKOFF: Duration = Duration::from_secs(1);

/// Default ceiling of one backoff delay.
pub(crate) const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Default growth factor of the delay.
pub(crate) const DEFAULT_BASE: f64 = 2.0;

/// Default ceiling on the time one call may spend across all its attempts and waits.
/// It covers Cloudflare's rate-limit window, so a `retry-after` from a 429 can be honoured:
/// see <https://developers.cloudflare.com/fundamentals/api/reference/limits/>.
pub(crate) const DEFAULT_TOTAL_BUDGET: Duration = crate::RATE_LIMIT_WINDOW;

/// Why a [`BackoffConfig`] was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidBackoff {
    /// `init_backoff` is zero.
    #[error("invalid backoff: init_backoff must be greater than zero")]
    ZeroInit,
    /// `max_backoff` is smaller than `init_backoff`.
    #[error("invalid backoff: max_backoff ({max:?}) must be at least init_backoff ({init:?})")]
    MaxBelowInit {
        /// The rejected `init_backoff`.
        init: Duration,
        /// The rejected `max_backoff`.
        max: Duration,
    },
    /// `base` is below 1, infinite or NaN.
    #[error("invalid backoff: base ({base}) must be a finite number of at least 1.0")]
    Base {
        /// The rejected `base`.
        base: f64,
    },
}

/// How long to wait between retries: decorrelated jitter between `init_backoff` and
/// `max_backoff`, growing by `base`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    init_backoff: Duration,
    max_backoff: Duration,
    base: f64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            init_backoff: DEFAULT_INIT_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            base: DEFAULT_BASE,
        }
    }
}

impl BackoffConfig {
    /// Validates and builds a config.
    ///
    /// # Errors
    ///
    /// [`InvalidBackoff`] if `init_backoff` is zero, `max_backoff < init_backoff`,
    /// or `base` is not a finite number `>= 1.0`.
    pub fn new(
        init_backoff: Duration,
        max_backoff: Duration,
        base: f64,
    ) -> Result<Self, InvalidBackoff> {
        if init_backoff.is_zero() {
            return Err(InvalidBackoff::ZeroInit);
        }
        if max_backoff < init_backoff {
            return Err(InvalidBackoff::MaxBelowInit {
                init: init_backoff,
                max: max_backoff,
            });
        }
        if !base.is_finite() || base < 1.0 {
            return Err(InvalidBackoff::Base { base });
        }
        Ok(Self {
            init_backoff,
            max_backoff,
            base,
        })
    }

    /// The smallest delay (and the first delay's lower bound).
    #[must_use]
    pub fn init_backoff(&self) -> Duration {
        self.init_backoff
    }

    /// The largest delay.
    #[must_use]
    pub fn max_backoff(&self) -> Duration {
        self.max_backoff
    }

    /// The growth factor.
    #[must_use]
    pub fn base(&self) -> f64 {
        self.base
    }

    /// The delay after `previous` (pass `init_backoff` for the first):
    /// `min(max_backoff, random_between(init_backoff, previous * base))`.
    pub fn next_delay<R: Rng + ?Sized>(&self, previous: Duration, rng: &mut R) -> Duration {
        let low = self.init_backoff.as_secs_f64();
        let max = self.max_backoff.as_secs_f64();
        let high = (previous.as_secs_f64() * self.base).min(max);
        let drawn = if high > low {
            rng.random_range(low..high)
        } else {
            low
        };
        Duration::try_from_secs_f64(drawn.clamp(low, max)).unwrap_or(self.max_backoff)
    }

    /// An endless sequence of delays, randomised from the operating system's entropy.
    #[must_use]
    pub fn backoff(&self) -> Backoff<StdRng> {
        self.backoff_with_rng(StdRng::from_os_rng())
    }

    /// An endless sequence of delays drawn from `rng` (a seeded RNG makes it reproducible).
    #[must_use]
    pub fn backoff_with_rng<R: Rng>(&self, rng: R) -> Backoff<R> {
        Backoff {
            config: *self,
            previous: self.init_backoff,
            rng,
        }
    }
}

/// Iterator of backoff delays from [`BackoffConfig::backoff_with_rng`]. Never ends.
#[derive(Debug, Clone)]
pub struct Backoff<R> {
    config: BackoffConfig,
    /// The previous delay (`init_backoff` before the first).
    previous: Duration,
    rng: R,
}

impl<R: Rng> Iterator for Backoff<R> {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let next = self.config.next_delay(self.previous, &mut self.rng);
        self.previous = next;
        Some(next)
    }
}

/// Retry settings: how many retries, how long between them, and the total time budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryConfig {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Delays between attempts.
    pub backoff: BackoffConfig,
    /// Ceiling on the total time of one call, attempts and waits included.
    pub total_budget: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: DEFAULT_MAX_RETRIES,
            backoff: BackoffConfig::default(),
            total_budget: DEFAULT_TOTAL_BUDGET,
        }
    }
}

impl RetryConfig {
    /// `max_retries` retries after the first attempt, the first delay `base_delay`; the
    /// largest delay is [`DEFAULT_MAX_BACKOFF`], or `base_delay` if larger, and the budget
    /// [`DEFAULT_TOTAL_BUDGET`].
    ///
    /// # Errors
    ///
    /// [`InvalidBackoff::ZeroInit`] if `base_delay` is zero.
    pub fn new(max_retries: u32, base_delay: Duration) -> Result<Self, InvalidBackoff> {
        let backoff = BackoffConfig::new(
            base_delay,
            DEFAULT_MAX_BACKOFF.max(base_delay),
            DEFAULT_BASE,
        )?;
        Ok(Self {
            max_retries,
            backoff,
            total_budget: DEFAULT_TOTAL_BUDGET,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn constructor_validates() {
        assert_eq!(
            BackoffConfig::new(Duration::ZERO, ms(10), 2.0),
            Err(InvalidBackoff::ZeroInit)
        );
        assert_eq!(
            BackoffConfig::new(ms(10), ms(5), 2.0),
            Err(InvalidBackoff::MaxBelowInit {
                init: ms(10),
                max: ms(5)
            })
        );
        assert!(matches!(
            BackoffConfig::new(ms(10), ms(50), 0.5),
            Err(InvalidBackoff::Base { .. })
        ));
        assert!(matches!(
            BackoffConfig::new(ms(10), ms(50), f64::NAN),
            Err(InvalidBackoff::Base { .. })
        ));
        assert!(matches!(
            BackoffConfig::new(ms(10), ms(50), f64::INFINITY),
            Err(InvalidBackoff::Base { .. })
        ));
        let ok = BackoffConfig::new(ms(10), ms(50), 3.0).unwrap();
        assert_eq!(
            (ok.init_backoff(), ok.max_backoff(), ok.base()),
            (ms(10), ms(50), 3.0)
        );
    }

    #[test]
    fn seeded_sequence_is_pinned() {
        let config = BackoffConfig::new(ms(100), Duration::from_secs(5), 3.0).unwrap();
        let got: Vec<u128> = config
            .backoff_with_rng(StdRng::seed_from_u64(42))
            .take(8)
            .map(|d| d.as_millis())
            .collect();
        assert_eq!(got, PINNED);
        // Same seed, same sequence.
        let again: Vec<u128> = config
            .backoff_with_rng(StdRng::seed_from_u64(42))
            .take(8)
            .map(|d| d.as_millis())
            .collect();
        assert_eq!(got, again);
    }

    /// Milliseconds drawn with seed 42 (`StdRng` of rand 0.9; a rand upgrade may change them).
    const PINNED: [u128; 8] = [205, 380, 761, 987, 198, 305, 701, 1802];

    #[test]
    fn delays_stay_within_bounds() {
        let config = BackoffConfig::new(ms(100), ms(800), 2.0).unwrap();
        for seed in 0..50 {
            for d in config
                .backoff_with_rng(StdRng::seed_from_u64(seed))
                .take(30)
            {
                assert!(d >= ms(100) && d <= ms(800), "{d:?}");
            }
        }
    }

    #[test]
    fn base_one_or_equal_bounds_is_constant() {
        let config = BackoffConfig::new(ms(100), ms(100), 2.0).unwrap();
        assert!(config.backoff().take(5).all(|d| d == ms(100)));
        let config = BackoffConfig::new(ms(100), ms(900), 1.0).unwrap();
        assert!(config.backoff().take(5).all(|d| d == ms(100)));
    }

    #[test]
    fn retry_config_new_keeps_the_defaults_it_is_not_given() {
        let config = RetryConfig::new(DEFAULT_MAX_RETRIES, DEFAULT_INIT_BACKOFF).unwrap();
        assert_eq!(config, RetryConfig::default());
        let config = RetryConfig::new(5, ms(250)).unwrap();
        assert_eq!(config.max_retries, 5);
        assert_eq!(config.backoff.init_backoff(), ms(250));
        assert_eq!(config.backoff.max_backoff(), DEFAULT_MAX_BACKOFF);
        // A first delay above the usual ceiling raises the ceiling.
        let config = RetryConfig::new(3, Duration::from_secs(60)).unwrap();
        assert_eq!(config.backoff.max_backoff(), Duration::from_secs(60));
        assert_eq!(
            RetryConfig::new(3, Duration::ZERO),
            Err(InvalidBackoff::ZeroInit)
        );
    }
}
