//! Parsing of the `ratelimit` and `ratelimit-policy` response headers (I/O-free).
//!
//! Cloudflare sends, with every REST API answer, the headers of the IETF draft
//! "RateLimit header fields for HTTP"
//! (<https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/>), e.g.
//! `ratelimit: "default";r=50;t=30` (50 requests left, the window resets in 30 s) and
//! `ratelimit-policy: "default";q=1200;w=300` (1,200 requests per 300 s), see
//! <https://developers.cloudflare.com/fundamentals/api/reference/limits/>. Both are
//! structured-field lists (RFC 8941, <https://www.rfc-editor.org/rfc/rfc8941#name-lists>):
//! items (a policy name) with parameters. [`parse_list`] reads that grammar, for the item,
//! parameter and bare-item kinds these headers use; [`Observation::from_headers`] picks what
//! pacing needs.

use std::time::Duration;

use http::HeaderMap;

/// The `ratelimit` header.
pub(crate) const RATELIMIT: &str = "ratelimit";
/// The `ratelimit-policy` header.
pub(crate) const RATELIMIT_POLICY: &str = "ratelimit-policy";

/// A structured-field bare item (RFC 8941 §3.3), as far as these headers need.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bare {
    /// `42`, `-7`.
    Integer(i64),
    /// `1.5` (only skipped by these headers).
    Decimal(f64),
    /// `"default"`.
    String(String),
    /// `default`, `*foo`.
    Token(String),
    /// `?1`, `?0`.
    Boolean(bool),
}

/// One list member: an item and its parameters, in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Member {
    /// The item, e.g. the policy name.
    pub(crate) item: Bare,
    /// `;key=value` parameters (a key alone is `?1`).
    pub(crate) params: Vec<(String, Bare)>,
}

impl Member {
    /// The name of the policy this member describes (a string or token item).
    fn name(&self) -> Option<&str> {
        match &self.item {
            Bare::String(s) | Bare::Token(s) => Some(s),
            _ => None,
        }
    }

    /// The non-negative integer parameter `key`.
    fn uint(&self, key: &str) -> Option<u64> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| match v {
                Bare::Integer(i) => u64::try_from(*i).ok(),
                _ => None,
            })
    }
}

/// Parses a structured-field list (RFC 8941 §4.2.1); `None` if it is malformed or uses an
/// inner list, a byte sequence, a date or a display string.
pub(crate) fn parse_list(input: &str) -> Option<Vec<Member>> {
    let mut p = Parser {
        s: input.as_bytes(),
        i: 0,
    };
    p.skip(|c| c == b' ');
    let mut members = Vec::new();
    if p.at_end() {
        return Some(members);
    }
    loop {
        let item = p.bare()?;
        let params = p.params()?;
        members.push(Member { item, params });
        p.skip(|c| c == b' ' || c == b'\t');
        if p.at_end() {
            return Some(members);
        }
        p.eat(b',')?;
        p.skip(|c| c == b' ' || c == b'\t');
        // A trailing comma is an error (RFC 8941 §4.2.1 step 2.5).
        if p.at_end() {
            return None;
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    fn skip(&mut self, f: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &str {
        let start = self.i;
        self.skip(f);
        // Only ASCII bytes are ever accepted by the callers' predicates.
        std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default()
    }

    fn bare(&mut self) -> Option<Bare> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => self.number(),
            b'"' => self.string(),
            b'?' => {
                self.i += 1;
                match self.peek()? {
                    b'0' => (self.i += 1, Some(Bare::Boolean(false))).1,
                    b'1' => (self.i += 1, Some(Bare::Boolean(true))).1,
                    _ => None,
                }
            }
            c if c.is_ascii_alphabetic() || c == b'*' => {
                let token = self
                    .take_while(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&c));
                Some(Bare::Token(token.to_owned()))
            }
            _ => None,
        }
    }

    /// RFC 8941 §4.2.4: at most 15 integer digits, or 12 + 3 decimal ones.
    fn number(&mut self) -> Option<Bare> {
        let negative = self.eat(b'-').is_some();
        let int = self.take_while(|c| c.is_ascii_digit()).to_owned();
        if int.is_empty() || int.len() > 15 {
            return None;
        }
        if self.eat(b'.').is_none() {
            let value: i64 = int.parse().ok()?;
            return Some(Bare::Integer(if negative { -value } else { value }));
        }
        let frac = self.take_while(|c| c.is_ascii_digit()).to_owned();
        if int.len() > 12 || frac.is_empty() || frac.len() > 3 {
            return None;
        }
        let value: f64 = format!("{int}.{frac}").parse().ok()?;
        Some(Bare::Decimal(if negative { -value } else { value }))
    }

    fn string(&mut self) -> Option<Bare> {
        self.eat(b'"')?;
        let mut out = String::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some(Bare::String(out));
                }
                b'\\' => {
                    self.i += 1;
                    let c = self.peek().filter(|c| *c == b'"' || *c == b'\\')?;
                    out.push(char::from(c));
                    self.i += 1;
                }
                c @ 0x20..=0x7e => {
                    out.push(char::from(c));
                    self.i += 1;
                }
                _ => return None,
            }
        }
    }

    fn params(&mut self) -> Option<Vec<(String, Bare)>> {
        let mut params = Vec::new();
        while self.eat(b';').is_some() {
            self.skip(|c| c == b' ');
            let first = self.peek()?;
            if !(first.is_ascii_lowercase() || first == b'*') {
                return None;
            }
            let key = self
                .take_while(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-.*".contains(&c)
                })
                .to_owned();
            let value = if self.eat(b'=').is_some() {
                self.bare()?
            } else {
                Bare::Boolean(true)
            };
            params.push((key, value));
        }
        Some(params)
    }
}

/// What one response says about the account's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Observation {
    /// Requests left in the window (`r`).
    pub(crate) remaining: u64,
    /// Time until the window resets (`t`).
    pub(crate) reset: Duration,
    /// Requests per window (`q` of the matching policy), if sent.
    pub(crate) quota: Option<u64>,
}

impl Observation {
    /// The budget `headers` report, or `None` without a well-formed `ratelimit` header.
    ///
    /// With several policies the one with the fewest requests left wins (it is the one that
    /// will refuse first); its quota is the policy of the same name, else the first policy.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let limits = parse_field(headers, RATELIMIT)?;
        let (limit, remaining, reset) = limits
            .iter()
            .filter_map(|m| Some((m, m.uint("r")?, m.uint("t")?)))
            .min_by_key(|(_, r, _)| *r)?;
        let policies = parse_field(headers, RATELIMIT_POLICY).unwrap_or_default();
        let quota = policies
            .iter()
            .find(|p| p.name().is_some() && p.name() == limit.name())
            .or_else(|| policies.first())
            .and_then(|p| p.uint("q"));
        Some(Self {
            remaining,
            reset: Duration::from_secs(reset),
            quota,
        })
    }
}

/// Every line of header `name` joined by commas (RFC 9110 §5.3), parsed as a list.
fn parse_field(headers: &HeaderMap, name: &str) -> Option<Vec<Member>> {
    let mut joined = String::new();
    for value in headers.get_all(name) {
        if !joined.is_empty() {
            joined.push_str(", ");
        }
        joined.push_str(value.to_str().ok()?);
    }
    if joined.is_empty() {
        return None;
    }
    parse_list(&joined)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn cloudflare_documented_example() {
        let h = headers(&[
            (RATELIMIT, "\"default\";r=50;t=30"),
            (RATELIMIT_POLICY, "\"default\";q=100;w=60"),
        ]);
        assert_eq!(
            Observation::from_headers(&h),
            Some(Observation {
                remaining: 50,
                reset: Duration::from_secs(30),
                quota: Some(100),
            })
        );
    }

    #[test]
    fn the_tightest_policy_wins_and_its_quota_is_found_by_name() {
        let h = headers(&[
            (RATELIMIT, "\"burst\";r=9;t=1, \"default\";r=3;t=200"),
            (
                RATELIMIT_POLICY,
                "\"burst\";q=10;w=1, \"default\";q=1200;w=300",
            ),
        ]);
        let o = Observation::from_headers(&h).unwrap();
        assert_eq!(
            (o.remaining, o.reset.as_secs(), o.quota),
            (3, 200, Some(1200))
        );
        // Two header lines are one list.
        let h = headers(&[
            (RATELIMIT, "\"burst\";r=9;t=1"),
            (RATELIMIT, "default;r=3;t=200"),
        ]);
        let o = Observation::from_headers(&h).unwrap();
        assert_eq!((o.remaining, o.quota), (3, None));
    }

    #[test]
    fn malformed_or_missing_headers_observe_nothing() {
        for bad in [
            "",
            "\"default\";r=5",
            "\"default\";r=-1;t=3",
            "\"default\";r=five;t=3",
            "\"default\";R=5;t=3",
            "\"unterminated;r=5;t=3",
            "\"default\";r=5;t=3,",
            "(\"inner\");r=5;t=3",
            "limit=100, remaining=50, reset=30",
        ] {
            let h = headers(&[(RATELIMIT, bad)]);
            assert_eq!(Observation::from_headers(&h), None, "{bad:?}");
        }
        assert_eq!(Observation::from_headers(&HeaderMap::new()), None);
    }

    #[test]
    fn bare_items_and_parameters() {
        assert_eq!(
            parse_list("a;x;y=?0;z=1.25, \"q\\\"s\";n=-4, ?1").unwrap(),
            vec![
                Member {
                    item: Bare::Token("a".into()),
                    params: vec![
                        ("x".into(), Bare::Boolean(true)),
                        ("y".into(), Bare::Boolean(false)),
                        ("z".into(), Bare::Decimal(1.25)),
                    ],
                },
                Member {
                    item: Bare::String("q\"s".into()),
                    params: vec![("n".into(), Bare::Integer(-4))],
                },
                Member {
                    item: Bare::Boolean(true),
                    params: vec![],
                },
            ]
        );
        assert_eq!(parse_list("1234567890123456"), None, "16 digits");
        assert_eq!(parse_list("a, , b"), None);
    }

    /// A policy name: a token or a quoted string (with escapes).
    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z*][a-z0-9_.:/-]{0,12}",
            "[ -~]{0,16}"
                .prop_map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))),
        ]
    }

    /// Optional whitespace around list commas.
    fn ows() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just(""), Just(" "), Just("\t "), Just("  ")]
    }

    proptest! {
        #[test]
        fn any_input_is_parsed_or_refused_without_panicking(s in "\\PC{0,64}") {
            let _ = parse_list(&s);
            if let Ok(v) = http::HeaderValue::from_str(&s) {
                let mut h = HeaderMap::new();
                h.insert(RATELIMIT, v.clone());
                h.insert(RATELIMIT_POLICY, v);
                let _ = Observation::from_headers(&h);
            }
        }

        #[test]
        fn formatted_headers_read_back(
            items in prop::collection::vec(
                (name(), 0u64..1_000_000_000_000_000, 0u64..1_000_000_000_000_000,
                 prop::option::of(0u64..100_000)),
                1..4,
            ),
            quota in 0u64..1_000_000_000_000_000,
            sep in ows(),
        ) {
            let ratelimit = items
                .iter()
                .map(|(n, r, t, extra)| match extra {
                    Some(x) => format!("{n};x={x};r={r};flag;t={t}"),
                    None => format!("{n};r={r};t={t}"),
                })
                .collect::<Vec<_>>()
                .join(&format!("{sep},{sep}"));
            let policy = format!("{};q={quota};w=300", items[0].0);
            let h = headers(&[(RATELIMIT, &ratelimit), (RATELIMIT_POLICY, &policy)]);
            let o = Observation::from_headers(&h).unwrap();
            let min = items.iter().map(|i| i.1).min().unwrap();
            prop_assert_eq!(o.remaining, min);
            let tightest = items.iter().find(|i| i.1 == min).unwrap();
            prop_assert_eq!(o.reset, Duration::from_secs(tightest.2));
            prop_assert_eq!(o.quota, Some(quota));
        }
    }
}
