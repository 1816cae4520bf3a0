//! Hybrid logical clocks: a total order of changes that every device agrees on.
//!
//! Wall clocks alone differ between machines and go backwards; counters alone ignore real
//! time. A hybrid logical clock stamp (Kulkarni et al., "Logical Physical Clocks", 2014) is
//! `(millis, counter, device)`: `millis` follows the wall clock but never goes backwards and
//! jumps forward to any stamp the device has seen, `counter` orders stamps within one
//! millisecond, and the device id breaks the remaining ties, so two devices never issue the
//! same stamp and every pair of stamps compares the same way everywhere.

use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// How far ahead of this machine's clock a received stamp may be. A stamp further ahead
/// would drag every later local stamp with it (a device whose clock says 2090 would win every
/// conflict for decades), so it is refused with [`ClockError::TooFarAhead`].
pub const MAX_DRIFT_MS: u64 = 24 * 60 * 60 * 1000;

/// A device's identity: 128 random bits, drawn once per database file and kept in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeviceId(u128);

impl DeviceId {
    /// A fresh random id.
    #[must_use]
    pub fn random() -> Self {
        Self(rand::random())
    }

    /// The id with these bits (for ids read back from storage, and tests).
    #[must_use]
    pub const fn from_u128(bits: u128) -> Self {
        Self(bits)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl FromStr for DeviceId {
    type Err = ClockError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 {
            return Err(ClockError::Malformed {
                text: s.to_owned(),
                expected: "a device id of 32 hexadecimal digits",
            });
        }
        u128::from_str_radix(s, 16)
            .map(Self)
            .map_err(|_| ClockError::Malformed {
                text: s.to_owned(),
                expected: "a device id of 32 hexadecimal digits",
            })
    }
}

/// One stamp of a hybrid logical clock. Ordered by `millis`, then `counter`, then `device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Hlc {
    /// Milliseconds since the Unix epoch, as the issuing device's clock (or a stamp it had
    /// seen) said.
    pub millis: u64,
    /// Orders stamps of the same millisecond.
    pub counter: u32,
    /// The device that issued the stamp.
    pub device: DeviceId,
}

impl fmt::Display for Hlc {
    /// Fixed-width lowercase hex, `millis-counter-device`: comparing two texts compares the
    /// stamps (so a database can order and page by the text column).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:016x}-{:08x}-{}",
            self.millis, self.counter, self.device
        )
    }
}

impl FromStr for Hlc {
    type Err = ClockError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || ClockError::Malformed {
            text: s.to_owned(),
            expected: "a stamp `<16 hex>-<8 hex>-<32 hex>`",
        };
        let mut parts = s.split('-');
        let (Some(m), Some(c), Some(d), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        if m.len() != 16 || c.len() != 8 {
            return Err(malformed());
        }
        Ok(Self {
            millis: u64::from_str_radix(m, 16).map_err(|_| malformed())?,
            counter: u32::from_str_radix(c, 16).map_err(|_| malformed())?,
            device: d.parse().map_err(|_| malformed())?,
        })
    }
}

/// What a clock refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// A stored or received text is not a stamp or device id.
    #[error("`{text}` is not {expected}")]
    Malformed {
        /// The text.
        text: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A received stamp is more than [`MAX_DRIFT_MS`] ahead of this machine's clock.
    #[error(
        "a change stamped {stamp} by device {device} is {ahead_ms} ms ahead of this machine's \
         clock (at most {MAX_DRIFT_MS} ms allowed): fix the clock of that device or of this one"
    )]
    TooFarAhead {
        /// The stamp.
        stamp: Hlc,
        /// Its device.
        device: DeviceId,
        /// How far ahead it is.
        ahead_ms: u64,
    },
    /// The counter of one millisecond is exhausted (2³² stamps in one millisecond).
    #[error("more than 2^32 changes stamped within one millisecond")]
    CounterOverflow,
}

/// A device's hybrid logical clock. Cheap to share (`&self` methods, one lock).
#[derive(Debug)]
pub struct HybridClock {
    device: DeviceId,
    last: Mutex<(u64, u32)>,
}

impl HybridClock {
    /// A clock for `device` that has issued nothing yet; `last` is the greatest stamp it
    /// issued or saw before (read back from storage), so a restart never goes backwards.
    #[must_use]
    pub fn new(device: DeviceId, last: Option<Hlc>) -> Self {
        let last = last.map_or((0, 0), |h| (h.millis, h.counter));
        Self {
            device,
            last: Mutex::new(last),
        }
    }

    /// This clock's device.
    #[must_use]
    pub fn device(&self) -> DeviceId {
        self.device
    }

    /// A new stamp, greater than every stamp this clock issued or saw, at wall time
    /// `now_ms`.
    ///
    /// # Errors
    ///
    /// [`ClockError::CounterOverflow`] in the (theoretical) case of 2³² stamps in one
    /// millisecond.
    pub fn tick(&self, now_ms: u64) -> Result<Hlc, ClockError> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let next = if now_ms > last.0 {
            (now_ms, 0)
        } else {
            (
                last.0,
                last.1.checked_add(1).ok_or(ClockError::CounterOverflow)?,
            )
        };
        *last = next;
        Ok(Hlc {
            millis: next.0,
            counter: next.1,
            device: self.device,
        })
    }

    /// Takes in a stamp received from another device, so that every later local stamp is
    /// greater than it (a change made after seeing another must order after it).
    ///
    /// # Errors
    ///
    /// [`ClockError::TooFarAhead`] when `remote` is more than [`MAX_DRIFT_MS`] ahead of
    /// `now_ms`; the clock is then unchanged.
    pub fn observe(&self, remote: Hlc, now_ms: u64) -> Result<(), ClockError> {
        if remote.millis > now_ms.saturating_add(MAX_DRIFT_MS) {
            return Err(ClockError::TooFarAhead {
                stamp: remote,
                device: remote.device,
                ahead_ms: remote.millis - now_ms,
            });
        }
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if (remote.millis, remote.counter) > *last {
            *last = (remote.millis, remote.counter);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const A: DeviceId = DeviceId::from_u128(1);
    const B: DeviceId = DeviceId::from_u128(2);

    #[test]
    fn stamps_grow_even_when_the_wall_clock_goes_back() {
        let c = HybridClock::new(A, None);
        let s1 = c.tick(1000).unwrap();
        let s2 = c.tick(1000).unwrap();
        let s3 = c.tick(900).unwrap();
        let s4 = c.tick(1001).unwrap();
        assert!(s1 < s2 && s2 < s3 && s3 < s4);
        assert_eq!((s3.millis, s3.counter), (1000, 2));
        assert_eq!((s4.millis, s4.counter), (1001, 0));
    }

    #[test]
    fn a_change_made_after_seeing_another_orders_after_it() {
        let (a, b) = (HybridClock::new(A, None), HybridClock::new(B, None));
        // B's clock is 5 s behind A's.
        let from_a = a.tick(10_000).unwrap();
        b.observe(from_a, 5_000).unwrap();
        let from_b = b.tick(5_001).unwrap();
        assert!(from_b > from_a, "{from_b} after {from_a}");
    }

    #[test]
    fn a_restart_continues_after_the_last_stamp() {
        let before = HybridClock::new(A, None).tick(5_000).unwrap();
        let after = HybridClock::new(A, Some(before)).tick(4_000).unwrap();
        assert!(after > before);
    }

    #[test]
    fn a_stamp_a_day_ahead_is_refused_and_changes_nothing() {
        let c = HybridClock::new(A, None);
        let far = Hlc {
            millis: 1_000 + MAX_DRIFT_MS + 1,
            counter: 0,
            device: B,
        };
        let err = c.observe(far, 1_000).unwrap_err();
        assert!(err.to_string().contains("fix the clock"), "{err}");
        assert_eq!(c.tick(1_000).unwrap().millis, 1_000);
    }

    #[test]
    fn malformed_texts_say_what_was_expected() {
        for bad in ["", "1-2-3", "zz", "0000000000000001-00000000-1"] {
            let err = bad.parse::<Hlc>().unwrap_err().to_string();
            assert!(err.contains("a stamp"), "{bad}: {err}");
        }
        assert!("00".parse::<DeviceId>().is_err());
    }

    fn stamp() -> impl Strategy<Value = Hlc> {
        (any::<u64>(), any::<u32>(), any::<u128>()).prop_map(|(millis, counter, d)| Hlc {
            millis,
            counter,
            device: DeviceId::from_u128(d),
        })
    }

    proptest! {
        #[test]
        fn text_round_trips_and_orders_as_the_stamp(a in stamp(), b in stamp()) {
            prop_assert_eq!(a.to_string().parse::<Hlc>().unwrap(), a);
            prop_assert_eq!(a.to_string().cmp(&b.to_string()), a.cmp(&b));
        }

        #[test]
        fn ticks_are_strictly_increasing(times in proptest::collection::vec(0u64..10_000, 1..50)) {
            let c = HybridClock::new(A, None);
            let mut prev = None;
            for t in times {
                let s = c.tick(t).unwrap();
                prop_assert!(prev.is_none_or(|p| s > p));
                prev = Some(s);
            }
        }
    }
}
