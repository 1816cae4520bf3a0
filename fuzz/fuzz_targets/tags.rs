//! Tag normalisation: `Tags::parse` from strings (comma-separated or JSON arrays) and lists,
//! `Tags::from_list`, and `Tags` deserialised from JSON.
//!
//! Invariants: nothing panics; every tag is non-empty, trimmed, lower-case, comma-free,
//! within the limits and unique; normalising again is the identity — through the stored
//! form (`joined()` split on commas, as the backends read it back), through `from_list`,
//! and through `parse(joined())` whenever the joined text is not itself a JSON array
//! (a text starting with `[` is read as JSON by design).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use memory_core::limits::{MAX_TAG_CHARS, MAX_TAGS};
use memory_core::{TagInput, Tags};

#[derive(Debug, Arbitrary)]
enum Input {
    Text(String),
    List(Vec<String>),
    Json(Vec<u8>),
}

fn check(tags: &Tags) {
    assert!(tags.len() <= MAX_TAGS);
    let mut seen = std::collections::HashSet::new();
    for tag in tags {
        assert!(!tag.is_empty(), "empty tag in {tags:?}");
        assert_eq!(tag.trim(), tag, "untrimmed tag in {tags:?}");
        assert_eq!(&tag.to_lowercase(), tag, "tag not lower-case in {tags:?}");
        assert!(!tag.contains(','), "comma in a tag of {tags:?}");
        assert!(tag.chars().count() <= MAX_TAG_CHARS);
        assert!(seen.insert(tag.as_str()), "duplicate tag in {tags:?}");
    }
    let joined = tags.joined();
    let stored: Vec<String> = if joined.is_empty() {
        Vec::new()
    } else {
        joined.split(',').map(str::to_owned).collect()
    };
    assert_eq!(
        Tags::parse(stored).as_ref(),
        Ok(tags),
        "stored form of {tags:?}"
    );
    assert_eq!(Tags::from_list(tags.iter()).as_ref(), Ok(tags));
    if !joined.trim_start().starts_with('[') {
        assert_eq!(
            Tags::parse(joined.as_str()).as_ref(),
            Ok(tags),
            "joined {joined:?}"
        );
    }
    let json = serde_json::to_string(tags).expect("tags serialise");
    assert_eq!(
        serde_json::from_str::<Tags>(&json).as_ref().ok(),
        Some(tags)
    );
}

fuzz_target!(|input: Input| {
    let parsed = match input {
        Input::Text(s) => Tags::parse(s.as_str()),
        Input::List(list) => {
            let a = Tags::parse(TagInput::List(list.clone()));
            let b = Tags::from_list(&list);
            assert_eq!(a, b, "parse(List) and from_list disagree on {list:?}");
            a
        }
        Input::Json(bytes) => match serde_json::from_slice::<Tags>(&bytes) {
            Ok(tags) => Ok(tags),
            Err(_) => return,
        },
    };
    if let Ok(tags) = parsed {
        check(&tags);
    }
});
