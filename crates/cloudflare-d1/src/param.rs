//! [`Param`]: one bound parameter, and how it travels as the string the API requires.

use std::fmt;

use serde::{Serialize, Serializer};

/// One bound parameter (`?`, `?NNN`) of a [`crate::Statement`].
///
/// Cloudflare's API spec types every parameter as a JSON string (`params: [string]`; a
/// JSON number or `null` is rejected by the spec), so every variant is sent as text:
///
/// | variant | sent as | write in SQL |
/// |---|---|---|
/// | [`Param::Text`] | the text itself | `?` |
/// | [`Param::Integer`] | decimal text, e.g. `"-42"` | `?` into an `INTEGER`/`NUMERIC`/`REAL` column (SQLite's [type affinity](https://www.sqlite.org/datatype3.html#type_affinity) converts it), else `CAST(? AS INTEGER)` (`LIMIT`, comparisons with expressions, `typeof`) |
/// | [`Param::Real`] | the shortest text that reads back as the same `f64`, e.g. `"0.1"`, `"1.0"`, `"1e-7"` | `?` into a `REAL`/`NUMERIC` column, else `CAST(? AS REAL)` |
/// | [`Param::Blob`] | lowercase hex, e.g. `"00ff"` | `unhex(?)` (SQLite ≥ 3.41) |
///
/// There is no NULL variant: write `NULL` in the SQL, or bind an empty string and write
/// `NULLIF(?, '')`.
///
/// Non-finite reals (NaN, ±∞) are refused before sending ([`crate::D1Error::NonFiniteReal`]):
/// SQLite cannot store NaN, and `"inf"` would be stored as text.
///
/// ```
/// use cloudflare_d1::Param;
///
/// assert_eq!(Param::from(42).to_wire(), "42");
/// assert_eq!(Param::from(0.5).to_wire(), "0.5");
/// assert_eq!(Param::from(1.0).to_wire(), "1.0");
/// assert_eq!(Param::from(true).to_wire(), "1");
/// assert_eq!(Param::from(vec![0u8, 255]).to_wire(), "00ff");
/// assert_eq!(Param::from("text").to_wire(), "text");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// Text, sent as is.
    Text(String),
    /// A 64-bit integer, sent as decimal text.
    Integer(i64),
    /// A finite 64-bit float, sent as its shortest round-trip text.
    Real(f64),
    /// Bytes, sent as lowercase hex; decode with `unhex(?)` in the SQL.
    Blob(Vec<u8>),
}

impl Param {
    /// The string this parameter is sent as.
    #[must_use]
    pub fn to_wire(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            Self::Integer(n) => n.to_string(),
            // `Debug` of f64 is the shortest text that parses back to the same value,
            // always with a `.` or an exponent, switching to `1e-7` / `1e16` notation for
            // very small or large magnitudes (never hundreds of digits).
            Self::Real(x) => format!("{x:?}"),
            Self::Blob(bytes) => hex_encode(bytes),
        }
    }

    /// The size of the value D1 stores, in bytes: the text's UTF-8 bytes, the blob's
    /// bytes, 8 for numbers. Compared with [`crate::MAX_VALUE_BYTES`].
    #[must_use]
    pub fn value_bytes(&self) -> usize {
        match self {
            Self::Text(text) => text.len(),
            Self::Integer(_) | Self::Real(_) => 8,
            Self::Blob(bytes) => bytes.len(),
        }
    }

    /// A blob parameter.
    #[must_use]
    pub fn blob(bytes: impl Into<Vec<u8>>) -> Self {
        Self::Blob(bytes.into())
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => f.write_str(text),
            other => f.write_str(&other.to_wire()),
        }
    }
}

impl Serialize for Param {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Text(text) => serializer.serialize_str(text),
            other => serializer.serialize_str(&other.to_wire()),
        }
    }
}

/// Lowercase hex of `bytes`, as [`Param::Blob`] sends them.
#[must_use]
pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

impl From<String> for Param {
    fn from(value: String) -> Self {
        Self::Text(value)
    }
}

impl From<&str> for Param {
    fn from(value: &str) -> Self {
        Self::Text(value.to_owned())
    }
}

impl From<&String> for Param {
    fn from(value: &String) -> Self {
        Self::Text(value.clone())
    }
}

impl From<char> for Param {
    fn from(value: char) -> Self {
        Self::Text(value.to_string())
    }
}

macro_rules! integer_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Param {
            fn from(value: $t) -> Self {
                Self::Integer(i64::from(value))
            }
        }
    )*};
}
integer_from!(i8, i16, i32, i64, u8, u16, u32);

impl From<bool> for Param {
    /// `true` is `1`, `false` is `0` (SQLite's booleans).
    fn from(value: bool) -> Self {
        Self::Integer(i64::from(value))
    }
}

impl From<f64> for Param {
    fn from(value: f64) -> Self {
        Self::Real(value)
    }
}

impl From<f32> for Param {
    fn from(value: f32) -> Self {
        Self::Real(f64::from(value))
    }
}

impl From<Vec<u8>> for Param {
    fn from(value: Vec<u8>) -> Self {
        Self::Blob(value)
    }
}

impl From<&[u8]> for Param {
    fn from(value: &[u8]) -> Self {
        Self::Blob(value.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_encode_is_lowercase() {
        assert_eq!(hex_encode(&[0x00, 0x1f, 0xff]), "001fff");
    }
    use proptest::prelude::*;

    #[test]
    fn each_variant_travels_as_documented() {
        assert_eq!(Param::from(-42i64).to_wire(), "-42");
        assert_eq!(Param::from(i64::MIN).to_wire(), "-9223372036854775808");
        assert_eq!(Param::from(7u32).to_wire(), "7");
        assert_eq!(Param::from(false).to_wire(), "0");
        assert_eq!(Param::from(0.1).to_wire(), "0.1");
        assert_eq!(Param::from(-0.0).to_wire(), "-0.0");
        assert_eq!(Param::from(1e-7).to_wire(), "1e-7");
        assert_eq!(Param::from(1e300).to_wire(), "1e300");
        assert_eq!(Param::from(1.5f32).to_wire(), "1.5");
        assert_eq!(Param::blob(vec![]).to_wire(), "");
        assert_eq!(Param::from(&[0xde, 0xad][..]).to_wire(), "dead");
        assert_eq!(Param::from('x').to_wire(), "x");
        assert_eq!(Param::from(&"s".to_owned()).to_string(), "s");
        assert_eq!(Param::from(3).to_string(), "3");
    }

    #[test]
    fn serializes_as_json_strings_only() {
        let params = vec![
            Param::from("a"),
            Param::from(1),
            Param::from(2.5),
            Param::blob([1u8, 2]),
        ];
        let json = serde_json::to_value(&params).unwrap();
        assert_eq!(json, serde_json::json!(["a", "1", "2.5", "0102"]));
    }

    #[test]
    fn value_bytes_counts_the_stored_value() {
        assert_eq!(Param::from("héllo").value_bytes(), 6);
        assert_eq!(Param::blob(vec![0; 10]).value_bytes(), 10);
        assert_eq!(Param::from(1).value_bytes(), 8);
        assert_eq!(Param::from(1.0).value_bytes(), 8);
    }

    fn hex_decode(text: &str) -> Option<Vec<u8>> {
        if !text.len().is_multiple_of(2) {
            return None;
        }
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
            .collect()
    }

    fn param() -> impl Strategy<Value = Param> {
        prop_oneof![
            "\\PC{0,20}".prop_map(Param::Text),
            any::<i64>().prop_map(Param::Integer),
            any::<f64>()
                .prop_filter("finite", |x| x.is_finite())
                .prop_map(Param::Real),
            proptest::collection::vec(any::<u8>(), 0..32).prop_map(Param::Blob),
        ]
    }

    proptest! {
        #[test]
        fn wire_text_round_trips(p in param()) {
            let wire = p.to_wire();
            let json = serde_json::to_value(&p).unwrap();
            prop_assert_eq!(json, serde_json::Value::String(wire.clone()));
            match &p {
                Param::Text(t) => prop_assert_eq!(&wire, t),
                Param::Integer(n) => prop_assert_eq!(wire.parse::<i64>().unwrap(), *n),
                Param::Real(x) => {
                    let back = wire.parse::<f64>().unwrap();
                    prop_assert_eq!(back.to_bits(), x.to_bits());
                    prop_assert!(wire.contains('.') || wire.contains('e'), "{}", wire);
                    prop_assert!(wire.len() <= 24, "{}", wire);
                }
                Param::Blob(bytes) => {
                    prop_assert!(wire.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
                    prop_assert_eq!(hex_decode(&wire).unwrap(), bytes.clone());
                }
            }
        }
    }
}
