//! [`Timestamp`]: a UTC instant that is both epoch seconds and an ISO-8601 `Z` string.
//!
//! Upstream stores every time twice (`created_at` REAL and `created_at_iso` TEXT). Here one
//! value renders both, so the two can never drift apart.
//!
//! ```
//! use memory_core::Timestamp;
//! let t = Timestamp::from_epoch_seconds(1_700_000_000.25)?;
//! assert_eq!(t.to_iso(), "2023-11-14T22:13:20.250000Z");
//! assert_eq!(Timestamp::parse_iso(&t.to_iso())?, t);
//! # Ok::<(), memory_core::ValidationError>(())
//! ```

use std::fmt;

use chrono::{DateTime, FixedOffset, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// Which end of a day a bare date stands for in [`Timestamp::parse_point`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayEdge {
    /// 00:00:00 (a lower bound: `after`).
    Start,
    /// 23:59:59.999999 (an upper bound: `before`).
    End,
}

/// A UTC instant with microsecond precision.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The current time, truncated to microseconds.
    pub fn now() -> Self {
        Self::from_datetime(Utc::now())
    }

    /// Wraps a chrono time, truncated to microseconds.
    pub fn from_datetime(dt: DateTime<Utc>) -> Self {
        let micros = dt.timestamp_micros();
        Self(Utc.timestamp_micros(micros).single().unwrap_or(dt))
    }

    /// From Unix epoch seconds (fractions allowed). Non-finite or out-of-range values are refused.
    pub fn from_epoch_seconds(secs: f64) -> Result<Self, ValidationError> {
        Self::from_epoch_seconds_for("timestamp", secs)
    }

    /// Like [`from_epoch_seconds`](Self::from_epoch_seconds), naming `field` in the error.
    pub fn from_epoch_seconds_for(field: &'static str, secs: f64) -> Result<Self, ValidationError> {
        if !secs.is_finite() {
            return Err(ValidationError::InvalidTimestamp {
                field,
                reason: format!("{secs} is not a finite number of seconds"),
            });
        }
        let micros = (secs * 1_000_000.0).round();
        // chrono's range is about ±262,000 years; stay well inside it.
        if micros.abs() > 8.0e18 {
            return Err(ValidationError::InvalidTimestamp {
                field,
                reason: format!("{secs} seconds is outside the supported range"),
            });
        }
        Utc.timestamp_micros(micros as i64)
            .single()
            .map(Self)
            .ok_or_else(|| ValidationError::InvalidTimestamp {
                field,
                reason: format!("{secs} seconds is outside the supported range"),
            })
    }

    /// Parses an RFC 3339 / ISO-8601 string with an offset (`Z` or `+hh:mm`).
    ///
    /// A year outside 0000–9999 is accepted in ISO 8601's expanded form with a sign
    /// (`+10000-01-01T00:00:00Z`, `-0001-12-31T23:00:00Z`), which is what [`to_iso`](Self::to_iso)
    /// writes for such years, so every timestamp reads back from its own text.
    pub fn parse_iso(s: &str) -> Result<Self, ValidationError> {
        let s_trimmed = s.trim();
        let parsed = DateTime::parse_from_rfc3339(s_trimmed).or_else(|e| {
            if s_trimmed.starts_with(['+', '-']) {
                s_trimmed.parse::<DateTime<FixedOffset>>().map_err(|_| e)
            } else {
                Err(e)
            }
        });
        parsed
            .map(|d| Self::from_datetime(d.with_timezone(&Utc)))
            .map_err(|e| ValidationError::InvalidTimestamp {
                field: "timestamp",
                reason: format!("{s:?} is not an ISO-8601 time with offset: {e}"),
            })
    }

    /// Parses a point in time given by a person or a tool: ISO-8601 with an offset
    /// (`2024-05-01T12:00:00Z`), a date-time without one (UTC), a date (`2024-05-01`, UTC;
    /// its first or last microsecond as `edge` says), or Unix epoch seconds (`1714564800`).
    /// The one parser of the CLI's `--before`/`--after` and the MCP tools' `before`/`after`.
    ///
    /// ```
    /// use memory_core::Timestamp;
    /// use memory_core::timestamp::DayEdge;
    /// let end = Timestamp::parse_point("before", "2100-01-01", DayEdge::End)?;
    /// assert_eq!(end.to_iso(), "2100-01-01T23:59:59.999999Z");
    /// let start = Timestamp::parse_point("after", "2100-01-01", DayEdge::Start)?;
    /// assert_eq!(start.to_iso(), "2100-01-01T00:00:00.000000Z");
    /// assert_eq!(Timestamp::parse_point("after", "0", DayEdge::Start)?.epoch_seconds(), 0.0);
    /// # Ok::<(), memory_core::ValidationError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ValidationError::InvalidTimestamp`] naming `field` and the accepted forms.
    pub fn parse_point(
        field: &'static str,
        text: &str,
        edge: DayEdge,
    ) -> Result<Self, ValidationError> {
        let t = text.trim();
        if let Ok(secs) = t.parse::<f64>() {
            return Self::from_epoch_seconds_for(field, secs);
        }
        if let Ok(ts) = Self::parse_iso(t) {
            return Ok(ts);
        }
        if let Ok(date) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
            let time = match edge {
                DayEdge::Start => chrono::NaiveTime::MIN,
                DayEdge::End => chrono::NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999)
                    .unwrap_or(chrono::NaiveTime::MIN),
            };
            return Ok(Self::from_datetime(
                Utc.from_utc_datetime(&date.and_time(time)),
            ));
        }
        if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f") {
            return Ok(Self::from_datetime(Utc.from_utc_datetime(&dt)));
        }
        Err(ValidationError::InvalidTimestamp {
            field,
            reason: format!(
                "{t:?}: expected an ISO-8601 time (2024-05-01T12:00:00Z), a date (2024-05-01) \
                 or Unix epoch seconds"
            ),
        })
    }

    /// Unix epoch seconds with a microsecond fraction.
    pub fn epoch_seconds(&self) -> f64 {
        self.0.timestamp_micros() as f64 / 1_000_000.0
    }

    /// Microseconds since the Unix epoch (exact).
    pub fn epoch_micros(&self) -> i64 {
        self.0.timestamp_micros()
    }

    /// From microseconds since the Unix epoch.
    pub fn from_epoch_micros(micros: i64) -> Option<Self> {
        Utc.timestamp_micros(micros).single().map(Self)
    }

    /// ISO-8601 with microseconds and a `Z` suffix, e.g. `2024-05-01T12:00:00.000000Z`.
    pub fn to_iso(&self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Micros, true)
    }

    /// The chrono value.
    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(dt: DateTime<Utc>) -> Self {
        Self::from_datetime(dt)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.to_iso())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_iso())
    }
}

/// Serialised as epoch seconds (a JSON number), as upstream's `created_at`.
impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.epoch_seconds())
    }
}

/// Accepts epoch seconds (number) or an ISO-8601 string.
impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Secs(f64),
            Iso(String),
        }
        match Repr::deserialize(d)? {
            Repr::Secs(s) => Timestamp::from_epoch_seconds(s),
            Repr::Iso(s) => Timestamp::parse_iso(&s),
        }
        .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nan_and_infinity_are_refused() {
        assert!(Timestamp::from_epoch_seconds(f64::NAN).is_err());
        assert!(Timestamp::from_epoch_seconds(f64::INFINITY).is_err());
        assert!(Timestamp::from_epoch_seconds(1e300).is_err());
    }

    /// Regression (fuzz target `time_expr`): a time past year 9999 was accepted from epoch
    /// seconds, but its ISO text (`+10000-…`) could not be read back.
    #[test]
    fn years_outside_four_digits_read_back_from_their_iso_text() {
        for secs in [
            253_402_300_800.0, // +10000-01-01T00:00:00Z
            8.0e12,            // the far bound the MCP `before` filter uses
            -62_167_219_201.0, // -0001-12-31T23:59:59Z
            -8.0e12,
        ] {
            let t = Timestamp::from_epoch_seconds(secs).unwrap();
            let iso = t.to_iso();
            assert!(iso.starts_with(['+', '-']), "{iso}");
            assert_eq!(Timestamp::parse_iso(&iso).unwrap(), t, "{iso}");
        }
        assert_eq!(
            Timestamp::parse_iso("+10000-01-01T01:00:00+01:00").unwrap(),
            Timestamp::from_epoch_seconds(253_402_300_800.0).unwrap()
        );
        // Unsigned text is still strict RFC 3339.
        assert!(Timestamp::parse_iso("10000-01-01T00:00:00Z").is_err());
        assert!(Timestamp::parse_iso("+10000-01-01T00:00:00").is_err());
        assert!(Timestamp::parse_iso("+2024-05-01").is_err());
    }

    #[test]
    fn iso_ends_with_z() {
        assert!(Timestamp::now().to_iso().ends_with('Z'));
    }

    proptest! {
        #[test]
        fn epoch_and_iso_agree(micros in -2_000_000_000_000_000i64..4_000_000_000_000_000i64) {
            let t = Timestamp::from_epoch_micros(micros).unwrap();
            prop_assert_eq!(Timestamp::parse_iso(&t.to_iso()).unwrap(), t);
            let back = Timestamp::from_epoch_seconds(t.epoch_seconds()).unwrap();
            // Years 1906–2096: f64 seconds keep microseconds to within rounding.
            prop_assert!((back.epoch_micros() - micros).abs() <= 1);
        }
    }
}
