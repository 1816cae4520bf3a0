//! Natural-language time expressions for recall ("last week", "2024-05-01", ...).
//!
//! [`parse_time_expression`] turns a whole expression into an inclusive [`TimeRange`];
//! [`extract_time_expression`] finds the first expression inside a free-text recall query
//! and returns the query without it.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use memory_core::{Timestamp, extract_time_expression, parse_time_expression};
//!
//! // Wednesday 2024-05-15, 14:30 UTC.
//! let now = Utc.with_ymd_and_hms(2024, 5, 15, 14, 30, 0).unwrap();
//!
//! let week = parse_time_expression("last week", now).unwrap();
//! assert_eq!(week.start, Timestamp::parse_iso("2024-05-06T00:00:00Z")?);
//! assert_eq!(week.end, Timestamp::parse_iso("2024-05-12T23:59:59.999999Z")?);
//!
//! let (rest, range) = extract_time_expression("meetings from yesterday morning about budgets", now);
//! assert_eq!(rest, "meetings about budgets");
//! let range = range.unwrap();
//! assert_eq!(range.start, Timestamp::parse_iso("2024-05-14T05:00:00Z")?);
//! assert_eq!(range.end, Timestamp::parse_iso("2024-05-14T11:59:59.999999Z")?);
//!
//! assert_eq!(parse_time_expression("banana", now), None);
//! # Ok::<(), memory_core::ValidationError>(())
//! ```
//!
//! # Semantics
//!
//! * All calendar arithmetic is done in **UTC**: "today" is the UTC date of `now`, a day runs
//!   from `00:00:00.000000` to `23:59:59.999999` UTC. Ranges are inclusive at both ends and
//!   have microsecond precision (`now` is truncated to microseconds).
//! * Weeks are ISO weeks: Monday to Sunday.
//! * Matching is case-insensitive and works on words: punctuation and extra whitespace are
//!   ignored, `today` does not match inside `todays`, and a possessive `'s` is allowed
//!   (`last week's` is `last week`).
//! * Unknown text gives `None`. Nothing panics; a count too large for the calendar
//!   (`last 99999999999 days`) gives `None` here and an [`OutOfRange`] error from
//!   [`try_parse_time_expression`] and [`try_extract_time_expression`].
//!
//! # Grammar
//!
//! `N` is a number in digits or a word `one` … `twelve`; in the `… ago` forms also `a`/`an`.
//! A unit is `hour`, `day`, `week`, `month` or `year` (singular or plural).
//!
//! | Expression | Range |
//! |---|---|
//! | `today`, `yesterday`, `the day before yesterday` | that whole day |
//! | `N days ago` | the whole day N days before today |
//! | `N weeks ago` | the Monday–Sunday week containing today − 7·N days |
//! | `N months ago`, `N years ago` | that whole calendar month / year |
//! | `N hours ago` | that whole clock hour |
//! | `last`/`past`/`previous N days\|weeks\|months\|years` | start of the day N days (weeks, months, years) before today, through `now` |
//! | `last`/`past`/`previous N hours` | exactly N hours before `now`, through `now` |
//! | `past day\|week\|month\|year\|hour`, `last hour`, `previous hour` | as above with N = 1 (rolling) |
//! | `last`/`previous week\|month\|year\|weekend` | the previous full calendar week (Mon–Sun) / month / year / Sat–Sun weekend |
//! | `this week\|month\|year\|weekend` | the current calendar period, **to its end** (may reach past `now`), as upstream |
//! | `recent`, `recently`, `lately` | the last 7 days: start of today − 7 days, through `now` |
//! | `YYYY-MM-DD` (or `YYYY/MM/DD`) | that day (invalid dates such as `2023-02-29` give `None`) |
//! | `YYYY-MM` | that month |
//! | `YYYY` | that year, only for 1970–2100 |
//! | `january` … `december`, or `jan` `feb` `mar` `apr` `may` `jun` `jul` `aug` `sep`/`sept` `oct` `nov` `dec` | the most recent such month not in the future (the current month if it is this month) |
//! | `<month> [of] YYYY` | that month |
//! | `last <month>` | the most recent such month strictly before the current month |
//! | `this <month>` | that month of the current year |
//! | `<month> D [YYYY]`, `D [of] <month> [YYYY]` (`D` may be `5th`) | that day; without a year, the most recent such date not in the future |
//! | `monday` … `sunday`, `last <weekday>` | the most recent such day strictly before today |
//! | `this <weekday>` | that day of the current week |
//! | `<day> morning\|afternoon\|evening\|night` (any day form above) | that part of that day |
//! | `this morning\|afternoon\|evening\|night`, `tonight` | that part of today |
//! | `last night`, `last evening` | that part of yesterday |
//! | `morning` … `night` alone | that part of today (whole-text parsing only) |
//! | `between X and Y`, `from X to\|until\|till\|through Y` | from the earlier start to the later end of X and Y (so order does not matter) |
//! | `since X` | from the start of X through `now` (or the end of X, if later) |
//!
//! `X` and `Y` are any expression except `between`/`from`/`since` ones.
//! Exception: two bare month names (`between may and june`) are one stretch of months ending
//! at the most recent such Y not in the future, so in May 2024 that is May–June 2023.
//!
//! Parts of a day (UTC hours, end exclusive):
//!
//! | Part | Window |
//! |---|---|
//! | morning | 05:00–12:00 |
//! | afternoon | 12:00–17:00 |
//! | evening | 17:00–21:00 |
//! | night | 21:00–05:00 of the next day |
//!
//! `tomorrow`, `next …` and other future-only expressions are deliberately **not** recognised:
//! recall filters on when a memory was created, so in a query like "what is due tomorrow"
//! the word belongs to the searched text, not to the time filter.
//!
//! Leading connector words (`in`, `during`, `from`, `on`, `of`, `the`, …) are skipped by
//! [`parse_time_expression`], so `in march` and `during the past week` parse.
//!
//! # Extraction
//!
//! [`extract_time_expression`] takes the first expression in the query (leftmost, and the
//! longest one starting there), removes it together with connector words right before it
//! (`from`, `in`, `during`, `on`, `since`, `of`, `the`, `for`, `within`, `over`, `at`,
//! `throughout`), and collapses whitespace. If nothing but punctuation remains the text is
//! empty. Inside a query some words are too ambiguous to be taken alone:
//!
//! * a bare month name (`march`, `may`) or a bare year (`2024`) is a time expression only
//!   after `in`, `during`, `since`, `from`, `of` or `throughout`, or when a day or year
//!   makes it a date (`march 5`, `may 2024`); `last <month>` is always accepted;
//! * `this may`, `this march`, `this mar` and `3 may` (day-first without a year) are not
//!   taken ("this may help");
//! * a bare part of the day (`morning`) is not taken ("good morning").

use std::ops::Range;

use chrono::{
    DateTime, Datelike, Days, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Timelike,
    Utc, Weekday,
};
use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// An inclusive UTC time range `[start, end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    /// First instant included.
    pub start: Timestamp,
    /// Last instant included.
    pub end: Timestamp,
}

impl TimeRange {
    /// Whether `t` lies inside the range (both ends included).
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t <= self.end
    }
}

/// A time expression found inside a query by [`find_time_expression`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeMatch {
    /// The range the expression denotes.
    pub range: TimeRange,
    /// Byte offsets of the expression in the query, without the connector words before it.
    pub span: Range<usize>,
}

/// A counted time expression (`last N days`, `N weeks ago`, ...) whose words were
/// understood but whose count reaches past the dates the calendar holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{expression:?} reaches past the dates the calendar holds (about 262,000 years either \
     way); use a smaller number, or leave the time out to search all memories"
)]
pub struct OutOfRange {
    /// The expression as written in the text.
    pub expression: String,
}

/// Parses a whole expression relative to `now`; unknown text gives `None`.
///
/// The whole text must be one expression (leading connector words such as `in` or `during`
/// and any punctuation are ignored). The grammar is in the `time_expr` module's source documentation.
/// [`try_parse_time_expression`] tells an out-of-range count from unknown text.
pub fn parse_time_expression(text: &str, now: DateTime<Utc>) -> Option<TimeRange> {
    try_parse_time_expression(text, now).ok().flatten()
}

/// [`parse_time_expression`], but a counted expression out of the calendar's range
/// (`last 99999999999 days`) is an [`OutOfRange`] error instead of `None`.
///
/// ```
/// use chrono::Utc;
/// use memory_core::try_parse_time_expression;
/// assert!(try_parse_time_expression("last 99999999999 days", Utc::now()).is_err());
/// assert_eq!(try_parse_time_expression("banana", Utc::now()), Ok(None));
/// ```
///
/// # Errors
///
/// [`OutOfRange`], quoting the expression.
pub fn try_parse_time_expression(
    text: &str,
    now: DateTime<Utc>,
) -> Result<Option<TimeRange>, OutOfRange> {
    let tokens = tokenize(text);
    let parser = Parser::new(&tokens, now);
    for (i, token) in tokens.iter().enumerate() {
        if let Some((span, end)) = parser.expression(i, Mode::Whole)
            && end == tokens.len()
        {
            return Ok(Some(span.into()));
        }
        if !CONNECTORS.contains(&token.word.as_str()) {
            break;
        }
    }
    parser.out_of_range_error(text).map_or(Ok(None), Err)
}

/// Finds a time expression inside a recall query and returns the query without it.
///
/// The first expression (leftmost; the longest one starting there) is removed together with
/// the connector words right before it, and whitespace is collapsed. A query that is only a
/// time expression gives an empty string. Without an expression the query comes back
/// unchanged with `None`.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use memory_core::extract_time_expression;
///
/// let now = Utc.with_ymd_and_hms(2024, 5, 15, 14, 30, 0).unwrap();
/// let (rest, range) = extract_time_expression("what did I note about the release last week?", now);
/// assert_eq!(rest, "what did I note about the release?");
/// assert!(range.is_some());
/// assert_eq!(extract_time_expression("march forward", now), ("march forward".to_owned(), None));
/// ```
pub fn extract_time_expression(query: &str, now: DateTime<Utc>) -> (String, Option<TimeRange>) {
    try_extract_time_expression(query, now).unwrap_or_else(|_| (query.to_owned(), None))
}

/// [`extract_time_expression`], but a query whose only time expression is a counted one out
/// of the calendar's range (`notes from the last 99999999999 days`) is an [`OutOfRange`]
/// error, not a query without a time.
///
/// # Errors
///
/// [`OutOfRange`], quoting the expression.
pub fn try_extract_time_expression(
    query: &str,
    now: DateTime<Utc>,
) -> Result<(String, Option<TimeRange>), OutOfRange> {
    let tokens = tokenize(query);
    let parser = Parser::new(&tokens, now);
    let Some((first, end, span)) = parser.find() else {
        return parser
            .out_of_range_error(query)
            .map_or_else(|| Ok((query.to_owned(), None)), Err);
    };
    let mut from = first;
    while from > 0 && CONNECTORS.contains(&tokens[from - 1].word.as_str()) {
        from -= 1;
    }
    let rest = remove(query, tokens[from].start, tokens[end - 1].end);
    Ok((rest, Some(span.into())))
}

/// Finds the first time expression in `query`, as [`extract_time_expression`] does, and
/// returns its range and where it is.
pub fn find_time_expression(query: &str, now: DateTime<Utc>) -> Option<TimeMatch> {
    let tokens = tokenize(query);
    let parser = Parser::new(&tokens, now);
    let (first, end, span) = parser.find()?;
    Some(TimeMatch {
        range: span.into(),
        span: tokens[first].start..tokens[end - 1].end,
    })
}

/// A part of the day: its first hour and its length in hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DayPart {
    start_hour: u32,
    hours: i64,
}

/// 05:00–12:00.
const MORNING: DayPart = DayPart {
    start_hour: 5,
    hours: 7,
};
/// 12:00–17:00.
const AFTERNOON: DayPart = DayPart {
    start_hour: 12,
    hours: 5,
};
/// 17:00–21:00.
const EVENING: DayPart = DayPart {
    start_hour: 17,
    hours: 4,
};
/// 21:00–05:00 of the next day.
const NIGHT: DayPart = DayPart {
    start_hour: 21,
    hours: 8,
};

/// Days covered by `recent`, `recently` and `lately`.
const RECENT_DAYS: u64 = 7;

/// Bare years (`2024`) are accepted only in this range.
const BARE_YEARS: std::ops::RangeInclusive<i32> = 1970..=2100;

/// Words skipped before an expression (whole-text parsing) and removed right before an
/// extracted one.
const CONNECTORS: &[&str] = &[
    "from",
    "in",
    "during",
    "on",
    "since",
    "of",
    "the",
    "for",
    "within",
    "over",
    "at",
    "throughout",
];

/// Words after which a bare month name or year counts as a time expression in a query.
const CONTEXT_WORDS: &[&str] = &["in", "during", "since", "from", "of", "throughout"];

/// Month words that are also common English words; in a query they need stronger evidence.
const AMBIGUOUS_MONTHS: &[&str] = &["may", "march", "mar"];

/// Number words accepted as counts.
const NUMBER_WORDS: &[&str] = &[
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve",
];

/// One word of the input: its lower-cased text and its byte offsets in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    /// Lower case, without a possessive `'s`.
    word: String,
    start: usize,
    end: usize,
}

/// Splits text into words: runs of alphanumeric characters. A `-` or `/` between two ASCII
/// digits stays inside the word (`2024-05-01`); a trailing possessive `'s` is kept in the
/// token's span but dropped from its word.
fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let offset = |k: usize| chars.get(k).map_or(text.len(), |&(at, _)| at);
    let mut tokens = Vec::new();
    let mut k = 0;
    while k < chars.len() {
        if !chars[k].1.is_alphanumeric() {
            k += 1;
            continue;
        }
        let start = chars[k].0;
        let mut word = String::new();
        loop {
            while let Some(&(_, c)) = chars.get(k)
                && c.is_alphanumeric()
            {
                word.extend(c.to_lowercase());
                k += 1;
            }
            let joins = matches!(chars.get(k), Some((_, '-' | '/')))
                && chars[k - 1].1.is_ascii_digit()
                && chars.get(k + 1).is_some_and(|(_, c)| c.is_ascii_digit());
            if !joins {
                break;
            }
            word.push(chars[k].1);
            k += 1;
        }
        let possessive = matches!(chars.get(k), Some((_, '\'' | '\u{2019}')))
            && matches!(chars.get(k + 1), Some((_, 's' | 'S')))
            && chars.get(k + 2).is_none_or(|(_, c)| !c.is_alphanumeric());
        if possessive {
            k += 2;
        }
        tokens.push(Token {
            word,
            start,
            end: offset(k),
        });
    }
    tokens
}

/// Removes `text[start..end]` and tidies the whitespace and punctuation around the cut.
fn remove(text: &str, start: usize, end: usize) -> String {
    const CLOSING: &[char] = &[',', '.', ';', ':', '!', '?', ')'];
    const DANGLING: &[char] = &[',', ';', ':'];
    let mut before = text[..start].trim_end();
    let mut after = text[end..].trim_start();
    if after.is_empty() || after.starts_with(CLOSING) {
        before = before.trim_end_matches(DANGLING).trim_end();
    }
    if before.is_empty() {
        after = after
            .trim_start_matches(|c: char| DANGLING.contains(&c) || c == '.' || c.is_whitespace());
    }
    let separator = if after.starts_with(CLOSING) { "" } else { " " };
    let joined = format!("{before}{separator}{after}");
    if !joined.chars().any(char::is_alphanumeric) {
        return String::new();
    }
    joined.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A range with both ends included, in naive UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: NaiveDateTime,
    end: NaiveDateTime,
}

impl From<Span> for TimeRange {
    fn from(span: Span) -> Self {
        TimeRange {
            start: Timestamp::from_datetime(span.start.and_utc()),
            end: Timestamp::from_datetime(span.end.and_utc()),
        }
    }
}

/// From the start of `first` to the end of `last`.
fn days_span(first: NaiveDate, last: NaiveDate) -> Option<Span> {
    Some(Span {
        start: first.and_time(NaiveTime::MIN),
        end: last.and_hms_micro_opt(23, 59, 59, 999_999)?,
    })
}

/// The whole day `date`.
fn day_span(date: NaiveDate) -> Option<Span> {
    days_span(date, date)
}

/// The part `part` of the day `date`.
fn part_span(date: NaiveDate, part: DayPart) -> Option<Span> {
    let start = date.and_hms_opt(part.start_hour, 0, 0)?;
    let end = start
        .checked_add_signed(TimeDelta::try_hours(part.hours)?)?
        .checked_sub_signed(TimeDelta::microseconds(1))?;
    Some(Span { start, end })
}

/// The calendar month `month` of `year`.
fn month_span(year: i32, month: u32) -> Option<Span> {
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let last = first.checked_add_months(Months::new(1))?.pred_opt()?;
    days_span(first, last)
}

/// The calendar year `year`.
fn year_span(year: i32) -> Option<Span> {
    days_span(
        NaiveDate::from_ymd_opt(year, 1, 1)?,
        NaiveDate::from_ymd_opt(year, 12, 31)?,
    )
}

/// The Monday–Sunday week containing `date`.
fn week_span(date: NaiveDate) -> Option<Span> {
    let monday = week_start(date)?;
    days_span(monday, monday.checked_add_days(Days::new(6))?)
}

/// The Monday of the ISO week containing `date`.
fn week_start(date: NaiveDate) -> Option<NaiveDate> {
    date.checked_sub_days(Days::new(u64::from(date.weekday().num_days_from_monday())))
}

/// `date` minus `n` calendar months (the day is clamped to the month's length).
fn sub_months(date: NaiveDate, n: u64) -> Option<NaiveDate> {
    date.checked_sub_months(Months::new(u32::try_from(n).ok()?))
}

/// The first of the month `n` months before `date`'s month, as (year, month).
fn months_before(date: NaiveDate, n: u64) -> Option<(i32, u32)> {
    let first = NaiveDate::from_ymd_opt(date.year(), date.month(), 1)?;
    let back = sub_months(first, n)?;
    Some((back.year(), back.month()))
}

/// A calendar unit named in an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

/// Whether a query (strict about ambiguous words) or a whole expression is being parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The text is meant to be a time expression: accept bare months, years, day parts.
    Whole,
    /// Searching free text: ambiguous words need context.
    Search,
}

/// A match: its range and the index of the first token after it.
type Hit = (Span, usize);

/// The longest of several matches (the first one on ties).
fn longest(hits: impl IntoIterator<Item = Option<Hit>>) -> Option<Hit> {
    hits.into_iter()
        .flatten()
        .fold(None, |best: Option<Hit>, hit| match best {
            Some(b) if b.1 >= hit.1 => Some(b),
            _ => Some(hit),
        })
}

/// The longest of several day matches (the first one on ties).
fn longest_day(
    hits: impl IntoIterator<Item = Option<(NaiveDate, usize)>>,
) -> Option<(NaiveDate, usize)> {
    hits.into_iter()
        .flatten()
        .fold(None, |best: Option<(NaiveDate, usize)>, hit| match best {
            Some(b) if b.1 >= hit.1 => Some(b),
            _ => Some(hit),
        })
}

/// A recursive-descent matcher over tokens, relative to a fixed `now`.
struct Parser<'a> {
    tokens: &'a [Token],
    /// The first counted expression (`last N days`, `N weeks ago`) whose words matched but
    /// whose count reaches past the calendar: its first and end token.
    out_of_range: std::cell::Cell<Option<(usize, usize)>>,
    /// `now`, truncated to microseconds.
    now: NaiveDateTime,
    /// The UTC date of `now`.
    today: NaiveDate,
}

impl<'a> Parser<'a> {
    fn new(tokens: &'a [Token], now: DateTime<Utc>) -> Self {
        let now = Timestamp::from_datetime(now).as_datetime().naive_utc();
        Self {
            tokens,
            out_of_range: std::cell::Cell::new(None),
            now,
            today: now.date(),
        }
    }

    /// The out-of-range expression noted while parsing `text`, if any.
    fn out_of_range_error(&self, text: &str) -> Option<OutOfRange> {
        let (first, end) = self.out_of_range.get()?;
        Some(OutOfRange {
            expression: text[self.tokens[first].start..self.tokens[end - 1].end].to_owned(),
        })
    }

    // ----- token helpers -----

    fn word(&self, i: usize) -> Option<&str> {
        self.tokens.get(i).map(|t| t.word.as_str())
    }

    fn is(&self, i: usize, word: &str) -> bool {
        self.word(i) == Some(word)
    }

    fn is_any(&self, i: usize, words: &[&str]) -> bool {
        self.word(i).is_some_and(|w| words.contains(&w))
    }

    /// Whether the token before `i` makes a bare month or year at `i` a time expression.
    fn after_context_word(&self, i: usize) -> bool {
        i.checked_sub(1)
            .is_some_and(|prev| self.is_any(prev, CONTEXT_WORDS))
    }

    /// A count: digits, `one` … `twelve`, and (if `article`) `a`/`an` meaning one. Digits
    /// beyond `u64` saturate: such a count is out of the calendar's range either way.
    fn count(&self, i: usize, article: bool) -> Option<u64> {
        let word = self.word(i)?;
        if !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit()) {
            return Some(word.parse().unwrap_or(u64::MAX));
        }
        if article && (word == "a" || word == "an") {
            return Some(1);
        }
        let index = NUMBER_WORDS.iter().position(|&w| w == word)?;
        u64::try_from(index + 1).ok()
    }

    fn unit(&self, i: usize) -> Option<Unit> {
        Some(match self.word(i)? {
            "hour" | "hours" => Unit::Hour,
            "day" | "days" => Unit::Day,
            "week" | "weeks" => Unit::Week,
            "month" | "months" => Unit::Month,
            "year" | "years" => Unit::Year,
            _ => return None,
        })
    }

    fn month(&self, i: usize) -> Option<u32> {
        Some(match self.word(i)? {
            "january" | "jan" => 1,
            "february" | "feb" => 2,
            "march" | "mar" => 3,
            "april" | "apr" => 4,
            "may" => 5,
            "june" | "jun" => 6,
            "july" | "jul" => 7,
            "august" | "aug" => 8,
            "september" | "sept" | "sep" => 9,
            "october" | "oct" => 10,
            "november" | "nov" => 11,
            "december" | "dec" => 12,
            _ => return None,
        })
    }

    fn weekday(&self, i: usize) -> Option<Weekday> {
        Some(match self.word(i)? {
            "monday" => Weekday::Mon,
            "tuesday" => Weekday::Tue,
            "wednesday" => Weekday::Wed,
            "thursday" => Weekday::Thu,
            "friday" => Weekday::Fri,
            "saturday" => Weekday::Sat,
            "sunday" => Weekday::Sun,
            _ => return None,
        })
    }

    fn day_part(&self, i: usize) -> Option<DayPart> {
        Some(match self.word(i)? {
            "morning" => MORNING,
            "afternoon" => AFTERNOON,
            "evening" => EVENING,
            "night" => NIGHT,
            _ => return None,
        })
    }

    /// Exactly four ASCII digits.
    fn year(&self, i: usize) -> Option<i32> {
        let word = self.word(i)?;
        (word.len() == 4 && word.bytes().all(|b| b.is_ascii_digit()))
            .then(|| word.parse().ok())
            .flatten()
    }

    /// A day of the month: one or two digits, optionally `st`, `nd`, `rd` or `th`.
    fn day_of_month(&self, i: usize) -> Option<u32> {
        let word = self.word(i)?;
        let digits = ["st", "nd", "rd", "th"]
            .iter()
            .find_map(|suffix| word.strip_suffix(suffix))
            .unwrap_or(word);
        if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let day: u32 = digits.parse().ok()?;
        (1..=31).contains(&day).then_some(day)
    }

    /// A numeric date word split into its parts: `2024-05-01` → `[2024, 5, 1]`.
    fn numeric_parts(&self, i: usize) -> Option<Vec<u32>> {
        let word = self.word(i)?;
        let parts: Vec<&str> = word.split(['-', '/']).collect();
        let year_ok = parts.first().is_some_and(|y| y.len() == 4);
        let rest_ok = parts[1..].iter().all(|p| (1..=2).contains(&p.len()));
        if parts.len() < 2 || !year_ok || !rest_ok {
            return None;
        }
        parts.iter().map(|p| p.parse().ok()).collect()
    }

    // ----- date arithmetic relative to now -----

    fn days_ago(&self, n: u64) -> Option<NaiveDate> {
        self.today.checked_sub_days(Days::new(n))
    }

    /// From the start of `date` through now.
    fn since_day(&self, date: NaiveDate) -> Span {
        Span {
            start: date.and_time(NaiveTime::MIN),
            end: self.now,
        }
    }

    fn year_back(&self, n: u64) -> Option<i32> {
        self.today.year().checked_sub(i32::try_from(n).ok()?)
    }

    /// The most recent date `month`/`day` that is not after today.
    fn latest_date(&self, month: u32, day: u32) -> Option<NaiveDate> {
        (0..=8).find_map(|back| {
            let date = NaiveDate::from_ymd_opt(self.year_back(back)?, month, day)?;
            (date <= self.today).then_some(date)
        })
    }

    /// The most recent `weekday` strictly before today.
    fn previous_weekday(&self, weekday: Weekday) -> Option<NaiveDate> {
        let today = self.today.weekday().num_days_from_monday();
        let back = (today + 7 - weekday.num_days_from_monday()) % 7;
        self.days_ago(u64::from(if back == 0 { 7 } else { back }))
    }

    // ----- search -----

    /// The first expression in the tokens (in search mode): first token, end, range.
    fn find(&self) -> Option<(usize, usize, Span)> {
        (0..self.tokens.len()).find_map(|i| {
            self.expression(i, Mode::Search)
                .map(|(span, end)| (i, end, span))
        })
    }

    // ----- grammar -----

    /// Any expression starting at token `i`, the longest one.
    fn expression(&self, i: usize, mode: Mode) -> Option<Hit> {
        longest([
            self.between(i),
            self.range_from(i),
            self.since(i),
            self.atom(i, mode),
        ])
    }

    /// `between X and Y`.
    fn between(&self, i: usize) -> Option<Hit> {
        self.pair(i, "between", &["and"])
    }

    /// `from X to|until|till|through Y`.
    fn range_from(&self, i: usize) -> Option<Hit> {
        self.pair(i, "from", &["to", "until", "till", "through"])
    }

    /// `<keyword> X <separator> Y`: the span covering both X and Y.
    ///
    /// Two bare month names are read as one stretch of months: Y is the most recent such month
    /// not in the future and X the most recent one not after Y, so in May 2024
    /// `between may and june` is May–June 2023 (not June 2023 – May 2024).
    fn pair(&self, i: usize, keyword: &str, separators: &[&str]) -> Option<Hit> {
        if !self.is(i, keyword) {
            return None;
        }
        let (a, j) = self.atom(i + 1, Mode::Whole)?;
        if !self.is_any(j, separators) {
            return None;
        }
        let (b, k) = self.atom(j + 1, Mode::Whole)?;
        if j == i + 2
            && k == j + 2
            && let Some(first) = self.month(i + 1)
            && let Some(last) = self.month(j + 1)
        {
            let year = b.start.year();
            let first_year = if first <= last {
                year
            } else {
                year.checked_sub(1)?
            };
            return Some((cover(month_span(first_year, first)?, b), k));
        }
        Some((cover(a, b), k))
    }

    /// `since X`: from the start of X through now (or X's end, if later).
    fn since(&self, i: usize) -> Option<Hit> {
        if !self.is(i, "since") {
            return None;
        }
        let (x, j) = self.atom(i + 1, Mode::Whole)?;
        let span = Span {
            start: x.start,
            end: x.end.max(self.now),
        };
        Some((span, j))
    }

    /// Any simple expression (no `between`/`from`/`since`) starting at token `i`.
    fn atom(&self, i: usize, mode: Mode) -> Option<Hit> {
        longest([
            self.day_with_part(i, mode),
            self.day_part_alone(i, mode),
            self.units_ago(i),
            self.rolling(i),
            self.calendar_period(i),
            self.month_expression(i, mode),
            self.numeric_month_or_year(i, mode),
            self.recent(i),
        ])
    }

    /// A day, optionally followed by a part of the day: `yesterday morning`.
    fn day_with_part(&self, i: usize, mode: Mode) -> Option<Hit> {
        let (date, j) = self.day(i, mode)?;
        if let Some(part) = self.day_part(j)
            && let Some(span) = part_span(date, part)
        {
            return Some((span, j + 1));
        }
        Some((day_span(date)?, j))
    }

    /// `this morning`, `tonight`, `last night`, and (whole text only) `morning`.
    fn day_part_alone(&self, i: usize, mode: Mode) -> Option<Hit> {
        let yesterday = || self.days_ago(1);
        let (date, part, end) = match self.word(i)? {
            "tonight" => (self.today, NIGHT, i + 1),
            "this" => (self.today, self.day_part(i + 1)?, i + 2),
            "last" => match self.word(i + 1)? {
                "night" => (yesterday()?, NIGHT, i + 2),
                "evening" => (yesterday()?, EVENING, i + 2),
                _ => return None,
            },
            _ if mode == Mode::Whole => (self.today, self.day_part(i)?, i + 1),
            _ => return None,
        };
        Some((part_span(date, part)?, end))
    }

    /// A single day: `today`, `yesterday`, `3 days ago`, `2024-05-01`, `monday`, `march 5`, ….
    fn day(&self, i: usize, mode: Mode) -> Option<(NaiveDate, usize)> {
        longest_day([
            self.named_day(i),
            self.days_ago_day(i),
            self.iso_day(i),
            self.weekday_day(i),
            self.month_then_day(i),
            self.day_then_month(i, mode),
        ])
    }

    /// `today`, `yesterday`, `day before yesterday`.
    fn named_day(&self, i: usize) -> Option<(NaiveDate, usize)> {
        match self.word(i)? {
            "today" => Some((self.today, i + 1)),
            "yesterday" => Some((self.days_ago(1)?, i + 1)),
            "day" if self.is(i + 1, "before") && self.is(i + 2, "yesterday") => {
                Some((self.days_ago(2)?, i + 3))
            }
            _ => None,
        }
    }

    /// `N days ago`.
    fn days_ago_day(&self, i: usize) -> Option<(NaiveDate, usize)> {
        let n = self.count(i, true)?;
        (self.unit(i + 1)? == Unit::Day && self.is(i + 2, "ago"))
            .then(|| Some((self.in_range(self.days_ago(n), i, i + 3)?, i + 3)))
            .flatten()
    }

    /// `value`, or `None` after noting that the counted expression `first..end` matched but
    /// fell outside the calendar (so callers can say so instead of ignoring the words).
    fn in_range<T>(&self, value: Option<T>, first: usize, end: usize) -> Option<T> {
        if value.is_none() && self.out_of_range.get().is_none() {
            self.out_of_range.set(Some((first, end)));
        }
        value
    }

    /// `YYYY-MM-DD`.
    fn iso_day(&self, i: usize) -> Option<(NaiveDate, usize)> {
        match self.numeric_parts(i)?.as_slice() {
            &[y, m, d] => Some((
                NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, d)?,
                i + 1,
            )),
            _ => None,
        }
    }

    /// `monday`, `last monday` (most recent before today), `this monday` (this week's).
    fn weekday_day(&self, i: usize) -> Option<(NaiveDate, usize)> {
        if let Some(weekday) = self.weekday(i) {
            return Some((self.previous_weekday(weekday)?, i + 1));
        }
        let weekday = self.weekday(i + 1)?;
        match self.word(i)? {
            "last" | "previous" => Some((self.previous_weekday(weekday)?, i + 2)),
            "this" => {
                let monday = week_start(self.today)?;
                let offset = u64::from(weekday.num_days_from_monday());
                Some((monday.checked_add_days(Days::new(offset))?, i + 2))
            }
            _ => None,
        }
    }

    /// `march 5`, `march 5th 2024`.
    fn month_then_day(&self, i: usize) -> Option<(NaiveDate, usize)> {
        let month = self.month(i)?;
        let day = self.day_of_month(i + 1)?;
        self.day_with_optional_year(month, day, i + 2)
    }

    /// `5 march`, `5th of march 2024`. In a query, `3 may` without a year is refused.
    fn day_then_month(&self, i: usize, mode: Mode) -> Option<(NaiveDate, usize)> {
        let day = self.day_of_month(i)?;
        let at = if self.is(i + 1, "of") { i + 2 } else { i + 1 };
        let month = self.month(at)?;
        let ambiguous = mode == Mode::Search && self.is_any(at, AMBIGUOUS_MONTHS);
        if ambiguous && self.year(at + 1).is_none() {
            return None;
        }
        self.day_with_optional_year(month, day, at + 1)
    }

    /// `month`/`day` in the year at token `i` if there is one, else the latest past one.
    fn day_with_optional_year(&self, month: u32, day: u32, i: usize) -> Option<(NaiveDate, usize)> {
        match self.year(i) {
            Some(year) => Some((NaiveDate::from_ymd_opt(year, month, day)?, i + 1)),
            None => Some((self.latest_date(month, day)?, i)),
        }
    }

    /// `N hours|weeks|months|years ago` (days are a [`day`](Self::day)).
    fn units_ago(&self, i: usize) -> Option<Hit> {
        let n = self.count(i, true)?;
        let unit = self.unit(i + 1)?;
        if !self.is(i + 2, "ago") {
            return None;
        }
        if unit == Unit::Day {
            return None;
        }
        let span = (|| match unit {
            Unit::Day => None,
            Unit::Hour => {
                let at = self
                    .now
                    .checked_sub_signed(TimeDelta::try_hours(i64::try_from(n).ok()?)?)?;
                let start = at.date().and_hms_opt(at.hour(), 0, 0)?;
                let end = start
                    .checked_add_signed(TimeDelta::try_hours(1)?)?
                    .checked_sub_signed(TimeDelta::microseconds(1))?;
                Some(Span { start, end })
            }
            Unit::Week => week_span(self.days_ago(n.checked_mul(7)?)?),
            Unit::Month => {
                let (year, month) = months_before(self.today, n)?;
                month_span(year, month)
            }
            Unit::Year => year_span(self.year_back(n)?),
        })();
        Some((self.in_range(span, i, i + 3)?, i + 3))
    }

    /// `last|past|previous N units`, `past unit`, `last hour`: a rolling window ending now.
    fn rolling(&self, i: usize) -> Option<Hit> {
        let lead = self.word(i)?;
        if !matches!(lead, "last" | "past" | "previous") {
            return None;
        }
        let (n, unit, end) = match (self.count(i + 1, false), self.unit(i + 1)) {
            (Some(n), _) => (n, self.unit(i + 2)?, i + 3),
            (None, Some(unit)) if lead == "past" || unit == Unit::Hour => (1, unit, i + 2),
            _ => return None,
        };
        let span = (|| {
            Some(match unit {
                Unit::Hour => Span {
                    start: self
                        .now
                        .checked_sub_signed(TimeDelta::try_hours(i64::try_from(n).ok()?)?)?,
                    end: self.now,
                },
                Unit::Day => self.since_day(self.days_ago(n)?),
                Unit::Week => self.since_day(self.days_ago(n.checked_mul(7)?)?),
                Unit::Month => self.since_day(sub_months(self.today, n)?),
                Unit::Year => self.since_day(sub_months(self.today, n.checked_mul(12)?)?),
            })
        })();
        Some((self.in_range(span, i, end)?, end))
    }

    /// `last|previous|this week|month|year|weekend`.
    fn calendar_period(&self, i: usize) -> Option<Hit> {
        let last = match self.word(i)? {
            "last" | "previous" => true,
            "this" => false,
            _ => return None,
        };
        let today = self.today;
        let span = match self.word(i + 1)? {
            "week" if last => week_span(today.checked_sub_days(Days::new(7))?)?,
            "week" => week_span(today)?,
            "weekend" => {
                let monday = week_start(today)?;
                let saturday = if last {
                    monday.checked_sub_days(Days::new(2))?
                } else {
                    monday.checked_add_days(Days::new(5))?
                };
                days_span(saturday, saturday.checked_add_days(Days::new(1))?)?
            }
            "month" => {
                let (year, month) = months_before(today, u64::from(last))?;
                month_span(year, month)?
            }
            "year" => year_span(self.year_back(u64::from(last))?)?,
            _ => return None,
        };
        Some((span, i + 2))
    }

    /// `march`, `march 2024`, `march of 2024`, `last march`, `this march`.
    fn month_expression(&self, i: usize, mode: Mode) -> Option<Hit> {
        let this_year = self.today.year();
        let current = self.today.month();
        let qualified = match self.word(i)? {
            "last" | "previous" => self.month(i + 1).and_then(|month| {
                let year = if month < current {
                    this_year
                } else {
                    this_year.checked_sub(1)?
                };
                Some((month_span(year, month)?, i + 2))
            }),
            "this" if mode == Mode::Whole || !self.is_any(i + 1, AMBIGUOUS_MONTHS) => self
                .month(i + 1)
                .and_then(|month| Some((month_span(this_year, month)?, i + 2))),
            _ => None,
        };
        let Some(month) = self.month(i) else {
            return qualified;
        };
        let at = if self.is(i + 1, "of") { i + 2 } else { i + 1 };
        let with_year = self
            .year(at)
            .and_then(|year| Some((month_span(year, month)?, at + 1)));
        let bare = (mode == Mode::Whole || self.after_context_word(i))
            .then(|| {
                let year = if month <= current {
                    this_year
                } else {
                    this_year.checked_sub(1)?
                };
                Some((month_span(year, month)?, i + 1))
            })
            .flatten();
        longest([qualified, with_year, bare])
    }

    /// `YYYY-MM`, and a bare year `YYYY` (1970–2100; in a query only after a context word).
    fn numeric_month_or_year(&self, i: usize, mode: Mode) -> Option<Hit> {
        if let Some(parts) = self.numeric_parts(i) {
            return match parts.as_slice() {
                &[y, m] => Some((month_span(i32::try_from(y).ok()?, m)?, i + 1)),
                _ => None,
            };
        }
        let year = self.year(i)?;
        let allowed = mode == Mode::Whole || self.after_context_word(i);
        (allowed && BARE_YEARS.contains(&year))
            .then(|| Some((year_span(year)?, i + 1)))
            .flatten()
    }

    /// `recent`, `recently`, `lately`.
    fn recent(&self, i: usize) -> Option<Hit> {
        self.is_any(i, &["recent", "recently", "lately"])
            .then(|| Some((self.since_day(self.days_ago(RECENT_DAYS)?), i + 1)))
            .flatten()
    }
}

/// The smallest span covering both `a` and `b`.
fn cover(a: Span, b: Span) -> Span {
    Span {
        start: a.start.min(b.start),
        end: a.end.max(b.end),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_past_the_calendar_are_out_of_range_not_unknown() {
        let now = chrono::Utc::now();
        for (query, expression) in [
            ("last 99999999999 days", "last 99999999999 days"),
            (
                "notes from the past 99999999999999999999999 years",
                "past 99999999999999999999999 years",
            ),
            ("99999999999 weeks ago", "99999999999 weeks ago"),
            ("budget 9999999999999 days ago", "9999999999999 days ago"),
        ] {
            let err = try_extract_time_expression(query, now).unwrap_err();
            assert_eq!(err.expression, expression, "{query}");
            assert_eq!(
                extract_time_expression(query, now),
                (query.to_owned(), None)
            );
        }
        assert!(try_parse_time_expression("last 99999999999 days", now).is_err());
        assert_eq!(try_parse_time_expression("banana", now), Ok(None));
        // In range, or a real expression beside it: no error.
        assert!(
            try_parse_time_expression("last 9999 days", now)
                .unwrap()
                .is_some()
        );
        assert!(
            try_extract_time_expression("99999999999 apples from yesterday", now)
                .unwrap()
                .1
                .is_some()
        );
    }

    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    /// Wednesday 2024-05-15, 14:30 UTC.
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 15, 14, 30, 0).unwrap()
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn ts(iso: &str) -> Timestamp {
        Timestamp::parse_iso(iso).unwrap()
    }

    fn range(start: &str, end: &str) -> TimeRange {
        TimeRange {
            start: ts(start),
            end: ts(end),
        }
    }

    /// The whole UTC day `date` (`YYYY-MM-DD`).
    fn day(date: &str) -> TimeRange {
        range(
            &format!("{date}T00:00:00Z"),
            &format!("{date}T23:59:59.999999Z"),
        )
    }

    /// From the start of `first` to the end of `last` (both `YYYY-MM-DD`).
    fn days(first: &str, last: &str) -> TimeRange {
        range(
            &format!("{first}T00:00:00Z"),
            &format!("{last}T23:59:59.999999Z"),
        )
    }

    /// From the start of `first` (`YYYY-MM-DD`) through the fixed `now`.
    fn since(first: &str) -> TimeRange {
        range(&format!("{first}T00:00:00Z"), "2024-05-15T14:30:00Z")
    }

    fn parse(text: &str) -> Option<TimeRange> {
        parse_time_expression(text, now())
    }

    fn extract(query: &str) -> (String, Option<TimeRange>) {
        extract_time_expression(query, now())
    }

    // ----- days -----

    #[test]
    fn today_is_the_whole_current_day() {
        assert_eq!(parse("today"), Some(day("2024-05-15")));
    }

    #[test]
    fn yesterday_is_the_whole_previous_day() {
        assert_eq!(parse("yesterday"), Some(day("2024-05-14")));
    }

    #[test]
    fn yesterday_on_the_first_of_the_year_is_new_years_eve() {
        let now = at(2024, 1, 1, 0, 0, 0);
        assert_eq!(
            parse_time_expression("yesterday", now),
            Some(day("2023-12-31"))
        );
    }

    #[test]
    fn the_day_before_yesterday_is_two_days_back() {
        assert_eq!(parse("the day before yesterday"), Some(day("2024-05-13")));
    }

    #[test]
    fn tomorrow_and_next_periods_are_not_recognised() {
        assert_eq!(parse("tomorrow"), None);
        assert_eq!(parse("next week"), None);
        assert_eq!(parse("in 3 days"), None);
    }

    #[test]
    fn n_days_ago_is_that_whole_calendar_day() {
        assert_eq!(parse("3 days ago"), Some(day("2024-05-12")));
        assert_eq!(parse("0 days ago"), Some(day("2024-05-15")));
        assert_eq!(parse("1 day ago"), Some(day("2024-05-14")));
        assert_eq!(parse("20 days ago"), Some(day("2024-04-25")));
    }

    #[test]
    fn counts_may_be_words_or_articles() {
        assert_eq!(parse("three days ago"), Some(day("2024-05-12")));
        assert_eq!(parse("a day ago"), Some(day("2024-05-14")));
        assert_eq!(parse("twelve days ago"), Some(day("2024-05-03")));
        assert_eq!(parse("a week ago"), parse("1 week ago"));
        assert_eq!(parse("an hour ago"), parse("1 hour ago"));
        assert_eq!(parse("thirteen days ago"), None);
    }

    // ----- units ago -----

    #[test]
    fn n_weeks_ago_is_the_monday_to_sunday_week_containing_that_day() {
        // now − 14 days = Wednesday 2024-05-01.
        assert_eq!(parse("2 weeks ago"), Some(days("2024-04-29", "2024-05-05")));
        assert_eq!(parse("a week ago"), Some(days("2024-05-06", "2024-05-12")));
    }

    #[test]
    fn n_months_ago_is_that_calendar_month() {
        assert_eq!(parse("1 month ago"), Some(days("2024-04-01", "2024-04-30")));
        assert_eq!(
            parse("3 months ago"),
            Some(days("2024-02-01", "2024-02-29"))
        );
        assert_eq!(
            parse("5 months ago"),
            Some(days("2023-12-01", "2023-12-31"))
        );
    }

    #[test]
    fn a_month_ago_on_the_31st_is_the_previous_month_not_a_clamped_day() {
        let now = at(2024, 3, 31, 12, 0, 0);
        assert_eq!(
            parse_time_expression("a month ago", now),
            Some(days("2024-02-01", "2024-02-29"))
        );
    }

    #[test]
    fn n_years_ago_is_that_calendar_year() {
        assert_eq!(parse("2 years ago"), Some(days("2022-01-01", "2022-12-31")));
        assert_eq!(parse("a year ago"), Some(days("2023-01-01", "2023-12-31")));
    }

    #[test]
    fn n_hours_ago_is_that_whole_clock_hour() {
        assert_eq!(
            parse("3 hours ago"),
            Some(range("2024-05-15T11:00:00Z", "2024-05-15T11:59:59.999999Z"))
        );
        assert_eq!(
            parse("15 hours ago"),
            Some(range("2024-05-14T23:00:00Z", "2024-05-14T23:59:59.999999Z"))
        );
    }

    // ----- rolling windows -----

    #[test]
    fn last_n_days_runs_from_the_start_of_that_day_through_now() {
        assert_eq!(parse("last 3 days"), Some(since("2024-05-12")));
        assert_eq!(parse("last seven days"), Some(since("2024-05-08")));
    }

    #[test]
    fn past_and_previous_mean_the_same_as_last_with_a_count() {
        assert_eq!(parse("past 3 days"), parse("last 3 days"));
        assert_eq!(parse("previous 3 days"), parse("last 3 days"));
        assert_eq!(parse("the past two weeks"), parse("last 2 weeks"));
    }

    #[test]
    fn last_n_weeks_months_and_years_start_at_that_day() {
        assert_eq!(parse("last 2 weeks"), Some(since("2024-05-01")));
        assert_eq!(parse("last 3 months"), Some(since("2024-02-15")));
        assert_eq!(parse("last 2 years"), Some(since("2022-05-15")));
    }

    #[test]
    fn last_n_months_clamps_to_the_end_of_a_shorter_month() {
        let now = at(2024, 5, 31, 10, 0, 0);
        let range = parse_time_expression("last 3 months", now).unwrap();
        assert_eq!(range.start, ts("2024-02-29T00:00:00Z"));
        assert_eq!(range.end, Timestamp::from_datetime(now));
    }

    #[test]
    fn last_n_hours_is_exactly_that_many_hours_before_now() {
        assert_eq!(
            parse("last 24 hours"),
            Some(range("2024-05-14T14:30:00Z", "2024-05-15T14:30:00Z"))
        );
        assert_eq!(
            parse("past hour"),
            Some(range("2024-05-15T13:30:00Z", "2024-05-15T14:30:00Z"))
        );
        assert_eq!(parse("last hour"), parse("past hour"));
    }

    #[test]
    fn past_period_without_a_count_is_a_rolling_window() {
        assert_eq!(parse("past week"), Some(since("2024-05-08")));
        assert_eq!(parse("past month"), Some(since("2024-04-15")));
        assert_eq!(parse("past year"), Some(since("2023-05-15")));
        assert_eq!(parse("past day"), Some(since("2024-05-14")));
    }

    #[test]
    fn recent_recently_and_lately_are_the_last_seven_days() {
        for word in ["recent", "recently", "lately", "Recently!"] {
            assert_eq!(parse(word), Some(since("2024-05-08")), "{word}");
        }
    }

    // ----- calendar periods -----

    #[test]
    fn last_week_is_previous_monday_to_sunday() {
        assert_eq!(parse("last week"), Some(days("2024-05-06", "2024-05-12")));
        assert_eq!(parse("previous week"), parse("last week"));
    }

    #[test]
    fn last_week_on_a_monday_is_the_week_before() {
        let now = at(2024, 5, 13, 0, 0, 0);
        assert_eq!(
            parse_time_expression("last week", now),
            Some(days("2024-05-06", "2024-05-12"))
        );
    }

    #[test]
    fn last_week_crosses_the_year_boundary() {
        let now = at(2024, 1, 3, 9, 0, 0);
        assert_eq!(
            parse_time_expression("last week", now),
            Some(days("2023-12-25", "2023-12-31"))
        );
    }

    #[test]
    fn this_week_runs_from_monday_to_the_end_of_sunday() {
        assert_eq!(parse("this week"), Some(days("2024-05-13", "2024-05-19")));
    }

    #[test]
    fn last_month_in_january_is_december_of_the_previous_year() {
        let now = at(2024, 1, 3, 9, 0, 0);
        assert_eq!(
            parse_time_expression("last month", now),
            Some(days("2023-12-01", "2023-12-31"))
        );
    }

    #[test]
    fn this_and_last_month_and_year_are_calendar_periods() {
        assert_eq!(parse("last month"), Some(days("2024-04-01", "2024-04-30")));
        assert_eq!(parse("this month"), Some(days("2024-05-01", "2024-05-31")));
        assert_eq!(parse("last year"), Some(days("2023-01-01", "2023-12-31")));
        assert_eq!(parse("this year"), Some(days("2024-01-01", "2024-12-31")));
    }

    #[test]
    fn weekends_are_saturday_and_sunday() {
        assert_eq!(
            parse("last weekend"),
            Some(days("2024-05-11", "2024-05-12"))
        );
        assert_eq!(
            parse("this weekend"),
            Some(days("2024-05-18", "2024-05-19"))
        );
    }

    // ----- numeric dates -----

    #[test]
    fn iso_date_is_that_day() {
        assert_eq!(parse("2024-05-01"), Some(day("2024-05-01")));
        assert_eq!(parse("2024/05/01"), Some(day("2024-05-01")));
        assert_eq!(parse("2024-5-1"), Some(day("2024-05-01")));
        assert_eq!(parse("1999-12-31"), Some(day("1999-12-31")));
    }

    #[test]
    fn leap_days_exist_only_in_leap_years() {
        assert_eq!(parse("2024-02-29"), Some(day("2024-02-29")));
        assert_eq!(parse("2023-02-29"), None);
        assert_eq!(parse("2000-02-29"), Some(day("2000-02-29")));
        assert_eq!(parse("1900-02-29"), None);
    }

    #[test]
    fn impossible_numeric_dates_are_refused() {
        for text in [
            "2024-13-01",
            "2024-00-10",
            "2024-04-31",
            "2024-05-001",
            "24-05-01",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
    }

    #[test]
    fn year_month_is_that_month() {
        assert_eq!(parse("2024-02"), Some(days("2024-02-01", "2024-02-29")));
        assert_eq!(parse("2023-12"), Some(days("2023-12-01", "2023-12-31")));
        assert_eq!(parse("2023-13"), None);
    }

    #[test]
    fn bare_year_is_that_year_only_between_1970_and_2100() {
        assert_eq!(parse("2023"), Some(days("2023-01-01", "2023-12-31")));
        assert_eq!(parse("in 1970"), Some(days("1970-01-01", "1970-12-31")));
        assert_eq!(parse("2100"), Some(days("2100-01-01", "2100-12-31")));
        assert_eq!(parse("1969"), None);
        assert_eq!(parse("2101"), None);
        assert_eq!(parse("42"), None);
    }

    // ----- month names -----

    #[test]
    fn month_name_is_the_most_recent_such_month_not_in_the_future() {
        assert_eq!(parse("march"), Some(days("2024-03-01", "2024-03-31")));
        assert_eq!(parse("may"), Some(days("2024-05-01", "2024-05-31")));
        assert_eq!(parse("june"), Some(days("2023-06-01", "2023-06-30")));
        assert_eq!(parse("in December"), Some(days("2023-12-01", "2023-12-31")));
    }

    #[test]
    fn month_abbreviations_are_accepted() {
        assert_eq!(parse("jan"), Some(days("2024-01-01", "2024-01-31")));
        assert_eq!(parse("sept"), Some(days("2023-09-01", "2023-09-30")));
        assert_eq!(parse("sep"), parse("september"));
        assert_eq!(parse("Dec."), Some(days("2023-12-01", "2023-12-31")));
    }

    #[test]
    fn month_with_a_year_is_that_month() {
        assert_eq!(parse("march 2024"), Some(days("2024-03-01", "2024-03-31")));
        assert_eq!(
            parse("June of 2022"),
            Some(days("2022-06-01", "2022-06-30"))
        );
        assert_eq!(parse("feb 2023"), Some(days("2023-02-01", "2023-02-28")));
    }

    #[test]
    fn last_month_name_is_strictly_before_the_current_month() {
        assert_eq!(parse("last may"), Some(days("2023-05-01", "2023-05-31")));
        assert_eq!(parse("last march"), Some(days("2024-03-01", "2024-03-31")));
        assert_eq!(parse("last june"), Some(days("2023-06-01", "2023-06-30")));
    }

    #[test]
    fn this_month_name_is_that_month_of_the_current_year() {
        assert_eq!(parse("this june"), Some(days("2024-06-01", "2024-06-30")));
        assert_eq!(parse("this march"), Some(days("2024-03-01", "2024-03-31")));
    }

    #[test]
    fn month_and_day_is_the_most_recent_such_date() {
        assert_eq!(parse("march 5"), Some(day("2024-03-05")));
        assert_eq!(parse("may 20"), Some(day("2023-05-20")));
        assert_eq!(parse("5th of march"), Some(day("2024-03-05")));
        assert_eq!(parse("21st June"), Some(day("2023-06-21")));
        assert_eq!(parse("march 5th, 2022"), Some(day("2022-03-05")));
        assert_eq!(parse("5 march 2022"), Some(day("2022-03-05")));
        assert_eq!(parse("april 31"), None);
    }

    #[test]
    fn february_29_without_a_year_is_the_latest_leap_day() {
        let now = at(2025, 6, 1, 0, 0, 0);
        assert_eq!(
            parse_time_expression("feb 29", now),
            Some(day("2024-02-29"))
        );
    }

    // ----- weekdays -----

    #[test]
    fn weekday_is_the_most_recent_such_day_before_today() {
        assert_eq!(parse("monday"), Some(day("2024-05-13")));
        assert_eq!(parse("wednesday"), Some(day("2024-05-08")));
        assert_eq!(parse("thursday"), Some(day("2024-05-09")));
        assert_eq!(parse("last sunday"), Some(day("2024-05-12")));
        assert_eq!(parse("on Friday"), Some(day("2024-05-10")));
    }

    #[test]
    fn this_weekday_is_that_day_of_the_current_week() {
        assert_eq!(parse("this monday"), Some(day("2024-05-13")));
        assert_eq!(parse("this friday"), Some(day("2024-05-17")));
    }

    // ----- parts of the day -----

    #[test]
    fn this_morning_is_today_from_five_to_noon() {
        assert_eq!(
            parse("this morning"),
            Some(range("2024-05-15T05:00:00Z", "2024-05-15T11:59:59.999999Z"))
        );
    }

    #[test]
    fn this_afternoon_is_today_from_noon_to_five() {
        assert_eq!(
            parse("this afternoon"),
            Some(range("2024-05-15T12:00:00Z", "2024-05-15T16:59:59.999999Z"))
        );
    }

    #[test]
    fn yesterday_evening_is_yesterday_from_five_to_nine_pm() {
        assert_eq!(
            parse("yesterday evening"),
            Some(range("2024-05-14T17:00:00Z", "2024-05-14T20:59:59.999999Z"))
        );
        assert_eq!(parse("last evening"), parse("yesterday evening"));
    }

    #[test]
    fn last_night_runs_from_nine_pm_yesterday_to_five_am_today() {
        let night = range("2024-05-14T21:00:00Z", "2024-05-15T04:59:59.999999Z");
        assert_eq!(parse("last night"), Some(night));
        assert_eq!(parse("yesterday night"), Some(night));
    }

    #[test]
    fn tonight_is_todays_night() {
        assert_eq!(
            parse("tonight"),
            Some(range("2024-05-15T21:00:00Z", "2024-05-16T04:59:59.999999Z"))
        );
    }

    #[test]
    fn any_day_can_take_a_part_of_the_day() {
        assert_eq!(
            parse("2024-05-01 morning"),
            Some(range("2024-05-01T05:00:00Z", "2024-05-01T11:59:59.999999Z"))
        );
        assert_eq!(
            parse("monday afternoon"),
            Some(range("2024-05-13T12:00:00Z", "2024-05-13T16:59:59.999999Z"))
        );
        assert_eq!(
            parse("3 days ago in the evening"),
            None,
            "only `<day> <part>` is supported"
        );
    }

    #[test]
    fn bare_part_of_the_day_means_today_when_parsing_whole_text() {
        assert_eq!(parse("morning"), parse("this morning"));
        assert_eq!(parse("in the evening"), parse("this evening"));
    }

    // ----- between / from / since -----

    #[test]
    fn between_covers_from_the_start_of_x_to_the_end_of_y() {
        assert_eq!(
            parse("between 2024-01-01 and 2024-01-31"),
            Some(days("2024-01-01", "2024-01-31"))
        );
        assert_eq!(
            parse("between march and april"),
            Some(days("2024-03-01", "2024-04-30"))
        );
        assert_eq!(
            parse("between last month and yesterday"),
            Some(days("2024-04-01", "2024-05-14"))
        );
    }

    #[test]
    fn between_two_bare_months_is_one_stretch_ending_at_the_latest_past_month() {
        assert_eq!(
            parse("between may and june"),
            Some(days("2023-05-01", "2023-06-30"))
        );
        assert_eq!(
            parse("from november to february"),
            Some(days("2023-11-01", "2024-02-29"))
        );
        assert_eq!(
            parse("between march and may"),
            Some(days("2024-03-01", "2024-05-31"))
        );
        assert_eq!(
            parse("between june and may"),
            Some(days("2023-06-01", "2024-05-31"))
        );
    }

    #[test]
    fn between_swaps_ends_given_in_the_wrong_order() {
        assert_eq!(
            parse("between 2024-01-31 and 2024-01-01"),
            parse("between 2024-01-01 and 2024-01-31")
        );
    }

    #[test]
    fn from_to_is_the_same_as_between() {
        assert_eq!(
            parse("from 2020 to 2022"),
            Some(days("2020-01-01", "2022-12-31"))
        );
        assert_eq!(
            parse("from monday until yesterday"),
            Some(days("2024-05-13", "2024-05-14"))
        );
    }

    #[test]
    fn between_needs_two_expressions() {
        assert_eq!(parse("between 2024-01-01 and banana"), None);
        assert_eq!(parse("between and"), None);
        assert_eq!(parse("between yesterday"), None);
    }

    #[test]
    fn since_runs_from_the_start_of_x_through_now() {
        assert_eq!(parse("since monday"), Some(since("2024-05-13")));
        assert_eq!(parse("since march"), Some(since("2024-03-01")));
        assert_eq!(parse("since last week"), Some(since("2024-05-06")));
    }

    // ----- robustness -----

    #[test]
    fn matching_ignores_case_whitespace_and_punctuation() {
        assert_eq!(parse("  LAST WEEK!!! "), parse("last week"));
        assert_eq!(parse("Yesterday?"), parse("yesterday"));
        assert_eq!(parse("(3 Days Ago)."), parse("3 days ago"));
        assert_eq!(parse("last-week"), parse("last week"));
    }

    #[test]
    fn unknown_text_is_none() {
        for text in [
            "",
            "   ",
            "banana",
            "last banana",
            "todays",
            "3 days",
            "days ago",
            "last",
            "week",
            "the",
            "in",
            "ago",
            "between",
            "yesterday banana",
            "a days",
            "last a week",
            "sept 2024 2025",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn huge_numbers_give_none_instead_of_overflowing() {
        for text in [
            "999999999999 days ago",
            "99999999999999999999999999 days ago",
            "4294967296 weeks ago",
            "999999999999 months ago",
            "3000000000 years ago",
            "last 4000000000 months",
            "last 999999999999 years",
            "last 9223372036854775807 hours",
            "999999999999999999 hours ago",
            "2024-05-99999999999",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
    }

    #[test]
    fn expressions_near_the_ends_of_time_do_not_panic() {
        let texts = [
            "today",
            "tomorrow",
            "this week",
            "this year",
            "last year",
            "this month",
            "tonight",
            "last night",
            "5 years ago",
            "last 5 years",
            "3 hours ago",
            "this weekend",
            "last weekend",
            "recent",
            "monday",
            "march",
            "feb 29",
        ];
        for now in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
            for text in texts {
                if let Some(range) = parse_time_expression(text, now) {
                    assert!(range.start <= range.end, "{text} at {now}");
                }
            }
        }
    }

    #[test]
    fn non_ascii_input_is_handled() {
        assert_eq!(parse("yesterday 🎉"), Some(day("2024-05-14")));
        assert_eq!(parse("🎉 yesterday 🎉"), Some(day("2024-05-14")));
        assert_eq!(parse("٣ days ago"), None);
        assert_eq!(parse("İstanbul"), None);
        let (rest, range) = extract("Café notes from yesterday — naïve ideas");
        assert_eq!(rest, "Café notes — naïve ideas");
        assert_eq!(range, Some(day("2024-05-14")));
    }

    // ----- extraction -----

    #[test]
    fn extraction_removes_an_expression_in_the_middle_with_its_connector() {
        let (rest, found) = extract("recall meetings from yesterday morning about budgets");
        assert_eq!(rest, "recall meetings about budgets");
        assert_eq!(
            found,
            Some(range("2024-05-14T05:00:00Z", "2024-05-14T11:59:59.999999Z"))
        );
    }

    #[test]
    fn extraction_removes_an_expression_at_the_end() {
        let (rest, range) = extract("what did I note about the release last week");
        assert_eq!(rest, "what did I note about the release");
        assert_eq!(range, Some(days("2024-05-06", "2024-05-12")));
    }

    #[test]
    fn extraction_keeps_closing_punctuation_tidy() {
        assert_eq!(
            extract("what happened during the past week?").0,
            "what happened?"
        );
        assert_eq!(extract("notes about Bob, yesterday.").0, "notes about Bob.");
    }

    #[test]
    fn extraction_removes_an_expression_at_the_start() {
        let (rest, range) = extract("Yesterday, I met Bob");
        assert_eq!(rest, "I met Bob");
        assert_eq!(range, Some(day("2024-05-14")));
    }

    #[test]
    fn a_query_that_is_only_a_time_expression_leaves_nothing() {
        for query in [
            "last week",
            "  Last Week? ",
            "in the last 3 days",
            "from yesterday",
        ] {
            let (rest, range) = extract(query);
            assert_eq!(rest, "", "{query}");
            assert!(range.is_some(), "{query}");
        }
    }

    #[test]
    fn a_query_without_a_time_expression_is_returned_unchanged() {
        for query in [
            "notes about  rust   lifetimes",
            "todays agenda",
            "march forward together",
            "this may be wrong",
            "these 3 may help",
            "good morning team",
            "the top 2000 songs",
            "what is due tomorrow",
            "",
        ] {
            assert_eq!(extract(query), (query.to_owned(), None), "{query}");
        }
    }

    #[test]
    fn extraction_takes_the_first_and_longest_expression() {
        let (rest, range) = extract("notes from last week and yesterday");
        assert_eq!(rest, "notes and yesterday");
        assert_eq!(range, parse("last week"));
        let (rest, range) = extract("standup notes between monday and yesterday");
        assert_eq!(rest, "standup notes");
        assert_eq!(range, Some(days("2024-05-13", "2024-05-14")));
    }

    #[test]
    fn extraction_accepts_bare_months_and_years_only_with_context() {
        assert_eq!(
            extract("budget notes in march"),
            ("budget notes".to_owned(), parse("march"))
        );
        assert_eq!(
            extract("march 2024 budget"),
            ("budget".to_owned(), parse("march 2024"))
        );
        assert_eq!(
            extract("trip plans may 3"),
            ("trip plans".to_owned(), parse("may 3"))
        );
        assert_eq!(
            extract("releases during 2023"),
            ("releases".to_owned(), parse("2023"))
        );
        assert_eq!(
            extract("ideas from last may"),
            ("ideas".to_owned(), parse("last may"))
        );
        assert_eq!(extract("march forward"), ("march forward".to_owned(), None));
    }

    #[test]
    fn extraction_respects_word_boundaries_and_possessives() {
        assert_eq!(extract("todays notes"), ("todays notes".to_owned(), None));
        let (rest, range) = extract("last week's meeting notes");
        assert_eq!(rest, "meeting notes");
        assert_eq!(range, parse("last week"));
        let (rest, range) = extract("today’s standup");
        assert_eq!(rest, "standup");
        assert_eq!(range, parse("today"));
    }

    #[test]
    fn extraction_does_not_take_a_bare_part_of_the_day() {
        let (rest, range) = extract("notes from this morning");
        assert_eq!(rest, "notes");
        assert_eq!(range, parse("this morning"));
        assert_eq!(
            extract("morning routine"),
            ("morning routine".to_owned(), None)
        );
    }

    #[test]
    fn find_reports_where_the_expression_is() {
        let query = "notes from last week about rust";
        let found = find_time_expression(query, now()).unwrap();
        assert_eq!(&query[found.span.clone()], "last week");
        assert_eq!(Some(found.range), parse("last week"));
        assert_eq!(find_time_expression("nothing here", now()), None);
    }

    // ----- properties -----

    /// Words that are never part of a time expression nor connectors.
    const FILLER: &[&str] = &[
        "notes", "about", "rust", "budget", "meeting", "release", "what", "did", "I", "say",
        "recall", "ideas", "Bob", "and", "with", "team",
    ];

    /// Expressions that parse and also extract as a whole from a query.
    const EXPRESSIONS: &[&str] = &[
        "today",
        "yesterday",
        "3 days ago",
        "a week ago",
        "two months ago",
        "5 years ago",
        "last week",
        "this week",
        "last month",
        "this year",
        "last 10 days",
        "past week",
        "previous 2 months",
        "2024-02-29",
        "2023-07",
        "march 2023",
        "last may",
        "march 5",
        "yesterday morning",
        "last night",
        "this afternoon",
        "recently",
        "monday evening",
        "last weekend",
        "between 2024-01-01 and 2024-02-01",
        "since last week",
        "day before yesterday",
        "6 hours ago",
        "last 48 hours",
    ];

    /// [`EXPRESSIONS`] without `between` and `since`, usable as X and Y of `between X and Y`.
    fn simple_expressions() -> Vec<&'static str> {
        EXPRESSIONS
            .iter()
            .copied()
            .filter(|e| !e.starts_with("between") && !e.starts_with("since"))
            .collect()
    }

    fn vocabulary() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "today",
            "yesterday",
            "tomorrow",
            "last",
            "this",
            "past",
            "previous",
            "next",
            "a",
            "an",
            "3",
            "0",
            "12",
            "99999999999",
            "two",
            "day",
            "days",
            "week",
            "weeks",
            "month",
            "months",
            "year",
            "years",
            "hour",
            "hours",
            "ago",
            "between",
            "and",
            "from",
            "to",
            "since",
            "in",
            "the",
            "march",
            "may",
            "dec",
            "monday",
            "sunday",
            "morning",
            "night",
            "evening",
            "tonight",
            "2024",
            "2024-02-29",
            "2023-02-29",
            "2024-05",
            "5th",
            "of",
            "recent",
            "weekend",
            ",",
            "?",
            "banana",
        ])
        .prop_map(str::to_owned)
    }

    fn any_now() -> impl Strategy<Value = DateTime<Utc>> {
        // Years 1900–2200.
        (-2_208_988_800i64..7_258_118_400i64)
            .prop_map(|secs| Utc.timestamp_opt(secs, 0).single().unwrap())
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_text(text in "\\PC*", now in any_now()) {
            let _ = parse_time_expression(&text, now);
        }

        #[test]
        fn every_parsed_range_is_ordered(text in "\\PC*", now in any_now()) {
            if let Some(range) = parse_time_expression(&text, now) {
                prop_assert!(range.start <= range.end);
            }
        }

        #[test]
        fn every_parsed_word_soup_range_is_ordered(
            words in prop::collection::vec(vocabulary(), 1..6),
            now in any_now(),
        ) {
            let text = words.join(" ");
            if let Some(range) = parse_time_expression(&text, now) {
                prop_assert!(range.start <= range.end, "{}", text);
            }
            let _ = extract_time_expression(&text, now);
        }

        #[test]
        fn n_days_ago_is_exactly_the_day_n_days_before_today(n in 0u64..10_000, now in any_now()) {
            let range = parse_time_expression(&format!("{n} days ago"), now).unwrap();
            let date = now.date_naive().checked_sub_days(Days::new(n)).unwrap();
            prop_assert_eq!(range.start.as_datetime(), date.and_time(NaiveTime::MIN).and_utc());
            let length = range.end.epoch_micros() - range.start.epoch_micros();
            prop_assert_eq!(length, 24 * 3600 * 1_000_000 - 1);
        }

        #[test]
        fn iso_dates_are_exactly_that_day(days_from_ce in 364_878i32..3_652_059) {
            // 1000-01-01 ..= 9999-12-31.
            let date = NaiveDate::from_num_days_from_ce_opt(days_from_ce).unwrap();
            let text = date.format("%Y-%m-%d").to_string();
            let range = parse_time_expression(&text, now()).unwrap();
            prop_assert_eq!(range.start.as_datetime(), date.and_time(NaiveTime::MIN).and_utc());
            prop_assert_eq!(
                range.end.as_datetime(),
                date.and_hms_micro_opt(23, 59, 59, 999_999).unwrap().and_utc()
            );
        }

        #[test]
        fn extract_never_panics_on_arbitrary_text(text in "\\PC*", now in any_now()) {
            let (rest, range) = extract_time_expression(&text, now);
            if range.is_none() {
                prop_assert_eq!(rest, text);
            }
        }

        #[test]
        fn extracted_expression_is_gone_from_the_rest(
            before in prop::collection::vec(prop::sample::select(FILLER), 0..4),
            expression in prop::sample::select(EXPRESSIONS),
            after in prop::collection::vec(prop::sample::select(FILLER), 0..4),
            now in any_now(),
        ) {
            let query = [before.join(" "), expression.to_owned(), after.join(" ")].join(" ");
            let (rest, range) = extract_time_expression(&query, now);
            prop_assert_eq!(range, parse_time_expression(expression, now));
            prop_assert!(range.is_some(), "{}", query);
            prop_assert!(!rest.contains(expression), "{} -> {}", query, rest);
            let expected = [before.join(" "), after.join(" ")].join(" ");
            prop_assert_eq!(rest, expected.split_whitespace().collect::<Vec<_>>().join(" "));
            let found = find_time_expression(&query, now).unwrap();
            prop_assert_eq!(&query[found.span], expression);
        }

        #[test]
        fn between_covers_both_ends(
            x in prop::sample::select(simple_expressions()),
            y in prop::sample::select(simple_expressions()),
            now in any_now(),
        ) {
            let both = parse_time_expression(&format!("between {x} and {y}"), now).unwrap();
            for one in [x, y] {
                let one = parse_time_expression(one, now).unwrap();
                prop_assert!(both.contains(one.start) && both.contains(one.end));
            }
        }
    }
}
