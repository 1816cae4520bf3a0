use super::*;

#[test]
fn index_names_follow_the_spec_pattern() {
    for good in ["ab", "example-index", "a_1", &"a".repeat(64)] {
        assert!(valid_index_name(good), "{good}");
    }
    for bad_name in ["", "a", "A-b", "1ab", "ab-", "a b", "é", &"a".repeat(65)] {
        assert!(!valid_index_name(bad_name), "{bad_name}");
    }
}

#[test]
fn ndjson_lines_are_checked() {
    let ok_line = br#"{"id":"a","values":[1,2],"metadata":{"k":"v"},"namespace":"n"}"#;
    assert_eq!(parse_vectors(ok_line, 2, false).unwrap().len(), 1);
    let cases: [(&[u8], u32); 7] = [
        (b"{nope", codes::UNPARSABLE_VECTORS),
        (b"", codes::UNPARSABLE_VECTORS),
        (br#"{"id":"a","values":[1]}"#, codes::VECTOR_DIMENSIONS),
        (br#"{"id":"","values":[1,2]}"#, codes::INVALID_ID),
        (
            br#"{"id":"a","values":[1,2],"metadata":{"a.b":1}}"#,
            codes::INVALID_METADATA_KEY,
        ),
        (
            br#"{"id":"a","values":[1,2],"namespace":""}"#,
            codes::INVALID_NAMESPACE,
        ),
        (br#"{"id":"a","values":[1,"x"]}"#, codes::UNPARSABLE_VECTORS),
    ];
    for (body, code) in cases {
        assert_eq!(
            parse_vectors(body, 2, false).unwrap_err().code,
            code,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let mixed = b"{nope\n{\"id\":\"a\",\"values\":[1,2]}\n";
    assert_eq!(parse_vectors(mixed, 2, true).unwrap().len(), 1);
}
