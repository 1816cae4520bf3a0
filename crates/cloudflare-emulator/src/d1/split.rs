//! Splitting a string of semicolon-joined SQL statements into single statements, the way
//! SQLite's own `sqlite3_complete()` decides where a statement ends (semicolons inside
//! quotes, comments and `CREATE TRIGGER … BEGIN … END;` bodies do not end a statement).

/// The token classes of `sqlite3_complete()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Semi,
    Ws,
    Other,
    Explain,
    Create,
    Temp,
    Trigger,
    End,
}

/// `sqlite3_complete()`'s state machine (with trigger support): `TRANS[state][token]`.
/// States: 0 invalid, 1 start, 2 normal, 3 explain, 4 create, 5 trigger, 6 semi, 7 end.
const TRANS: [[u8; 8]; 8] = [
    // SEMI WS OTHER EXPLAIN CREATE TEMP TRIGGER END
    [1, 0, 2, 3, 4, 2, 2, 2], // 0 invalid
    [1, 1, 2, 3, 4, 2, 2, 2], // 1 start
    [1, 2, 2, 2, 2, 2, 2, 2], // 2 normal
    [1, 3, 3, 2, 4, 2, 2, 2], // 3 explain
    [1, 4, 2, 2, 2, 4, 5, 2], // 4 create
    [6, 5, 5, 5, 5, 5, 5, 5], // 5 trigger
    [6, 6, 5, 5, 5, 5, 5, 7], // 6 semi
    [1, 7, 5, 5, 5, 5, 5, 5], // 7 end
];

const START: u8 = 1;

fn is_id_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// One token: its class, its byte range, and (for identifiers) nothing more is needed.
fn next_token(bytes: &[u8], at: usize) -> (Token, usize) {
    let b = bytes[at];
    let len = bytes.len();
    match b {
        b';' => (Token::Semi, at + 1),
        b' ' | b'\t' | b'\n' | b'\r' | 0x0c => (Token::Ws, at + 1),
        b'/' if bytes.get(at + 1) == Some(&b'*') => {
            let mut i = at + 2;
            while i + 1 < len && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                i += 1;
            }
            // An unterminated comment runs to the end of the input.
            (Token::Ws, if i + 1 < len { i + 2 } else { len })
        }
        b'-' if bytes.get(at + 1) == Some(&b'-') => {
            let mut i = at + 2;
            while i < len && bytes[i] != b'\n' {
                i += 1;
            }
            (Token::Ws, (i + 1).min(len))
        }
        b'[' => {
            let mut i = at + 1;
            while i < len && bytes[i] != b']' {
                i += 1;
            }
            (Token::Other, (i + 1).min(len))
        }
        b'`' | b'"' | b'\'' => {
            let mut i = at + 1;
            while i < len && bytes[i] != b {
                i += 1;
            }
            (Token::Other, (i + 1).min(len))
        }
        _ if is_id_char(b) => {
            let mut i = at + 1;
            while i < len && is_id_char(bytes[i]) {
                i += 1;
            }
            let word = &bytes[at..i];
            let token = if word.eq_ignore_ascii_case(b"create") {
                Token::Create
            } else if word.eq_ignore_ascii_case(b"trigger") {
                Token::Trigger
            } else if word.eq_ignore_ascii_case(b"temp") || word.eq_ignore_ascii_case(b"temporary")
            {
                Token::Temp
            } else if word.eq_ignore_ascii_case(b"end") {
                Token::End
            } else if word.eq_ignore_ascii_case(b"explain") {
                Token::Explain
            } else {
                Token::Other
            };
            (token, i)
        }
        _ => (Token::Other, at + 1),
    }
}

/// Splits `sql` into its statements, each with its terminating `;` (the last may lack
/// one) and without leading whitespace. Pieces holding only whitespace, comments and
/// semicolons are dropped, as SQLite skips empty statements.
#[must_use]
pub(crate) fn split_statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut pieces = Vec::new();
    let mut state = START;
    let mut piece_start = 0;
    let mut has_content = false;
    let mut at = 0;
    while at < bytes.len() {
        let (token, end) = next_token(bytes, at);
        if token != Token::Ws && token != Token::Semi {
            has_content = true;
        }
        state = TRANS[usize::from(state)][token as usize];
        at = end;
        if token == Token::Semi && state == START {
            if has_content {
                pieces.push(sql[piece_start..at].trim_start());
            }
            piece_start = at;
            has_content = false;
        }
    }
    if has_content {
        pieces.push(sql[piece_start..].trim_start());
    }
    pieces
}

/// The first keyword of a statement (after whitespace and comments), upper-cased; empty
/// when it does not start with a word.
#[must_use]
pub(crate) fn leading_keyword(statement: &str) -> String {
    let bytes = statement.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let (token, end) = next_token(bytes, at);
        if token != Token::Ws {
            return if is_id_char(bytes[at]) {
                statement[at..end].to_ascii_uppercase()
            } else {
                String::new()
            };
        }
        at = end;
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splits_on_semicolons_outside_quotes_comments_and_triggers() {
        assert_eq!(
            split_statements("SELECT 1; SELECT 2"),
            vec!["SELECT 1;", "SELECT 2"]
        );
        assert_eq!(
            split_statements("SELECT ';'; SELECT \"a;b\";"),
            vec!["SELECT ';';", "SELECT \"a;b\";"]
        );
        assert_eq!(
            split_statements("SELECT 1 -- x;y\n; SELECT 2 /* ; */;"),
            vec!["SELECT 1 -- x;y\n;", "SELECT 2 /* ; */;"]
        );
        let trigger = "CREATE TRIGGER t AFTER INSERT ON a BEGIN INSERT INTO b VALUES (1); UPDATE c SET x = 1; END;";
        assert_eq!(
            split_statements(&format!("{trigger} SELECT 1;")),
            vec![trigger, "SELECT 1;"]
        );
        let temp = "CREATE TEMP TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; END;";
        assert_eq!(split_statements(temp), vec![temp]);
        assert_eq!(
            split_statements("CREATE TABLE t(x); SELECT [a;b] FROM t"),
            vec!["CREATE TABLE t(x);", "SELECT [a;b] FROM t"]
        );
    }

    #[test]
    fn drops_empty_statements() {
        assert!(split_statements("").is_empty());
        assert!(split_statements(" ;; -- only a comment\n /* c */ ;").is_empty());
        assert_eq!(split_statements(";;SELECT 1;;"), vec!["SELECT 1;"]);
    }

    #[test]
    fn unterminated_tokens_run_to_the_end() {
        assert_eq!(
            split_statements("SELECT 'abc; SELECT 2"),
            vec!["SELECT 'abc; SELECT 2"]
        );
        assert_eq!(
            split_statements("SELECT 1 /* x; y"),
            vec!["SELECT 1 /* x; y"]
        );
    }

    #[test]
    fn leading_keywords() {
        assert_eq!(
            leading_keyword("  /* c */ -- d\n begin transaction;"),
            "BEGIN"
        );
        assert_eq!(leading_keyword("select 1"), "SELECT");
        assert_eq!(leading_keyword("(SELECT 1)"), "");
        assert_eq!(leading_keyword(""), "");
    }

    proptest! {
        #[test]
        fn never_panics_and_keeps_every_non_blank_byte(sql in any::<String>()) {
            let pieces = split_statements(&sql);
            let kept: usize = pieces.iter().map(|p| p.trim().len()).sum();
            prop_assert!(kept <= sql.len());
            for piece in &pieces {
                prop_assert!(sql.contains(piece));
                let _ = leading_keyword(piece);
            }
        }

        #[test]
        fn joined_simple_statements_split_back(
            words in proptest::collection::vec("[a-z0-9 ,'()=]{1,20}", 1..6)
        ) {
            // Statements of words and balanced quotes: drop quotes to keep them simple.
            let statements: Vec<String> = words
                .iter()
                .map(|w| format!("SELECT {}", w.replace('\'', "")))
                .collect();
            let joined = statements.join("; ");
            let pieces = split_statements(&joined);
            prop_assert_eq!(pieces.len(), statements.len());
            for (piece, statement) in pieces.iter().zip(&statements) {
                prop_assert_eq!(piece.trim_end_matches(';').trim(), statement.trim());
            }
        }
    }
}
