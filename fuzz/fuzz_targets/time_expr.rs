//! Time expressions: `extract_time_expression`, `find_time_expression`,
//! `parse_time_expression` and ISO/epoch timestamp parsing.
//!
//! Invariants: nothing panics; every range has `start <= end`; a found span lies on char
//! boundaries inside the query; `extract` and `find` agree; without an expression the query
//! comes back unchanged; a parsed timestamp survives `to_iso` → `parse_iso`.
#![no_main]

use arbitrary::Arbitrary;
use chrono::{DateTime, TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use memory_core::{
    Timestamp, extract_time_expression, find_time_expression, parse_time_expression,
};

/// `now` is kept to a plausible clock (1900 to ~2470): the service always passes the real
/// current time. The query is anything. The query comes last, so a seed is 20 bytes of
/// little-endian numbers followed by the query's text.
#[derive(Debug, Arbitrary)]
struct Input {
    now_secs: u64,
    now_nanos: u32,
    epoch: f64,
    query: String,
}

const MIN_NOW: i64 = -2_208_988_800; // 1900-01-01
const NOW_SPAN: u64 = 18_000_000_000; // ~570 years

fn now_of(input: &Input) -> DateTime<Utc> {
    let secs = MIN_NOW + (input.now_secs % NOW_SPAN) as i64;
    Utc.timestamp_opt(secs, input.now_nanos % 1_000_000_000)
        .single()
        .expect("in range by construction")
}

fuzz_target!(|input: Input| {
    let now = now_of(&input);
    let query = input.query.as_str();

    let (rest, range) = extract_time_expression(query, now);
    let found = find_time_expression(query, now);
    match (&range, &found) {
        (None, None) => assert_eq!(
            rest, query,
            "no expression: the query must come back unchanged"
        ),
        (Some(r), Some(m)) => {
            assert_eq!(*r, m.range, "extract and find disagree on {query:?}");
            assert!(r.start <= r.end, "start after end for {query:?}: {r:?}");
            assert!(m.span.start < m.span.end && m.span.end <= query.len());
            assert!(query.is_char_boundary(m.span.start) && query.is_char_boundary(m.span.end));
            // The expression itself parses as a whole to the same range.
            let text = &query[m.span.clone()];
            assert_eq!(
                parse_time_expression(text, now),
                Some(m.range),
                "the found expression {text:?} of {query:?} does not parse alone to its range"
            );
        }
        _ => panic!("extract and find disagree on whether {query:?} holds an expression"),
    }
    if let Some(r) = parse_time_expression(query, now) {
        assert!(r.start <= r.end, "start after end for {query:?}: {r:?}");
        assert!(r.contains(r.start) && r.contains(r.end));
    }

    if let Ok(t) = Timestamp::parse_iso(query) {
        let iso = t.to_iso();
        assert_eq!(
            Timestamp::parse_iso(&iso).ok(),
            Some(t),
            "{query:?} → {iso:?}"
        );
        assert_eq!(Timestamp::from_epoch_micros(t.epoch_micros()), Some(t));
    }
    if let Ok(t) = Timestamp::from_epoch_seconds(input.epoch) {
        let iso = t.to_iso();
        assert_eq!(
            Timestamp::parse_iso(&iso).ok(),
            Some(t),
            "{} → {iso:?}",
            input.epoch
        );
    }
});
