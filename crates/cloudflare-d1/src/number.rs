//! Deserializers for counters the spec types as JSON `number` (so `3`, `3.0` and `null`
//! are all valid on the wire) but that are integers by meaning (`changes`, `rows_read`…).

use serde::{Deserialize, Deserializer, de::Error as _};

/// A JSON number that must be a whole number within `[min, max]`: an integer, or a
/// float with no fractional part.
fn whole(value: &serde_json::Number, min: f64, max: f64) -> Option<f64> {
    let x = value.as_f64()?;
    (x.is_finite() && x.fract() == 0.0 && x >= min && x <= max).then_some(x)
}

/// `Option<u64>` from an absent/`null` field or a whole, non-negative JSON number.
pub(crate) fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(n) = number.as_u64() {
        return Ok(Some(n));
    }
    // 2^64 is the first f64 above u64::MAX; `as` is exact below it for whole values.
    match whole(&number, 0.0, 18_446_744_073_709_549_568.0) {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(x) => Ok(Some(x as u64)),
        None => Err(D::Error::custom(format!(
            "expected a whole non-negative number, got {number}"
        ))),
    }
}

/// `Option<i64>` from an absent/`null` field or a whole JSON number.
pub(crate) fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(n) = number.as_i64() {
        return Ok(Some(n));
    }
    match whole(
        &number,
        -9_223_372_036_854_775_808.0,
        9_223_372_036_854_774_784.0,
    ) {
        #[allow(clippy::cast_possible_truncation)]
        Some(x) => Ok(Some(x as i64)),
        None => Err(D::Error::custom(format!(
            "expected a whole number within i64, got {number}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    struct Counters {
        #[serde(default, deserialize_with = "opt_u64")]
        u: Option<u64>,
        #[serde(default, deserialize_with = "opt_i64")]
        i: Option<i64>,
    }

    fn parse(value: serde_json::Value) -> Result<Counters, serde_json::Error> {
        serde_json::from_value(value)
    }

    #[test]
    fn accepts_integers_whole_floats_null_and_absence() {
        let c = parse(json!({"u": 3, "i": -4})).unwrap();
        assert_eq!((c.u, c.i), (Some(3), Some(-4)));
        let c = parse(json!({"u": 3.0, "i": -4.0})).unwrap();
        assert_eq!((c.u, c.i), (Some(3), Some(-4)));
        let c = parse(json!({"u": null})).unwrap();
        assert_eq!((c.u, c.i), (None, None));
        let c = parse(json!({"u": u64::MAX, "i": i64::MIN})).unwrap();
        assert_eq!((c.u, c.i), (Some(u64::MAX), Some(i64::MIN)));
    }

    #[test]
    fn refuses_fractions_negatives_and_out_of_range() {
        for bad in [
            json!({"u": 1.5}),
            json!({"u": -1}),
            json!({"u": 1e30}),
            json!({"u": "1"}),
            json!({"i": 0.25}),
            json!({"i": 1e30}),
            json!({"i": true}),
        ] {
            let err = parse(bad.clone()).unwrap_err();
            assert!(!err.to_string().is_empty(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn whole_numbers_round_trip(u in any::<u64>(), i in any::<i64>(), small in -1_000_000i64..1_000_000) {
            let c = parse(json!({"u": u, "i": i})).unwrap();
            prop_assert_eq!((c.u, c.i), (Some(u), Some(i)));
            #[allow(clippy::cast_precision_loss)]
            let as_float = small as f64;
            let c = parse(json!({"i": as_float})).unwrap();
            prop_assert_eq!(c.i, Some(small));
        }

        #[test]
        fn never_panics(x in any::<f64>()) {
            let value = serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number);
            let _ = parse(json!({"u": value.clone(), "i": value}));
        }
    }
}
