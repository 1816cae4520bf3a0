//! Reading what a person hands the CLI (a file, standard input, an import's lines) without
//! ever holding more than a limit in memory: `/dev/zero`, `yes |` or a 1 GiB file is refused
//! after reading at most the limit plus one byte, never read whole first.

use std::io::{BufRead, Read};

use anyhow::{Result, bail};
use memory_core::limits::MAX_CONTENT_BYTES;

/// Longest line `import` reads: room for the largest content a memory may hold, JSON-escaped
/// (up to ~4× for control characters and non-ASCII written as `\u` escapes), with its tags,
/// metadata and vector. The same bound as one MCP message on stdio.
pub const MAX_IMPORT_LINE_BYTES: usize = 4 * MAX_CONTENT_BYTES;

/// Reads a memory's content from `reader` (`what` names it in errors: the file, standard
/// input), refusing more than [`MAX_CONTENT_BYTES`] after reading at most one byte past it.
pub fn read_content(reader: impl Read, what: &str) -> Result<String> {
    let mut bytes = Vec::new();
    let limit = MAX_CONTENT_BYTES as u64;
    reader
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| anyhow::anyhow!("reading {what}: {e}"))?;
    if bytes.len() as u64 > limit {
        bail!(
            "content: {what} holds more than the limit of {MAX_CONTENT_BYTES} bytes (16 MiB) a \
             memory may hold; store a summary, or split it into several memories"
        );
    }
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{what} is not valid UTF-8 (first bad byte at offset {}); convert it to UTF-8 first",
            e.utf8_error().valid_up_to()
        )
    })
}

/// One line read by [`read_line_bounded`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// The end of the input: nothing was read.
    End,
    /// A line (with its `\n`, unless it is the last line without one) of this many bytes.
    Read(usize),
    /// The line is longer than the limit: `buf` holds its first `limit + 1` bytes and the
    /// rest of the line is still unread.
    TooLong,
}

/// Reads one line into `buf` (cleared first), holding at most `limit + 1` bytes.
///
/// # Errors
///
/// The reader's I/O error.
pub fn read_line_bounded(
    reader: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<Line> {
    buf.clear();
    let n = reader.take(limit as u64 + 1).read_until(b'\n', buf)?;
    Ok(if n == 0 {
        Line::End
    } else if n > limit && buf.last() != Some(&b'\n') {
        Line::TooLong
    } else {
        Line::Read(n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that never ends (like `/dev/zero` or `yes`), counting what was read from it.
    struct Endless {
        byte: u8,
        read: u64,
    }

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            buf.fill(self.byte);
            self.read += buf.len() as u64;
            Ok(buf.len())
        }
    }

    #[test]
    fn endless_content_is_refused_after_the_limit_plus_one_byte() {
        let mut zero = Endless { byte: 0, read: 0 };
        let err = read_content(&mut zero, "/dev/zero")
            .unwrap_err()
            .to_string();
        assert!(err.contains("content") && err.contains("16 MiB"), "{err}");
        assert_eq!(zero.read, MAX_CONTENT_BYTES as u64 + 1);
    }

    #[test]
    fn content_at_the_limit_is_read() {
        let text = "a".repeat(MAX_CONTENT_BYTES);
        assert_eq!(
            read_content(text.as_bytes(), "x").unwrap().len(),
            MAX_CONTENT_BYTES
        );
        let err = read_content(&[0xff, 0xfe][..], "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("UTF-8"), "{err}");
    }

    #[test]
    fn a_line_longer_than_the_limit_is_cut_at_the_limit_plus_one() {
        let mut zero = std::io::BufReader::new(Endless {
            byte: b'0',
            read: 0,
        });
        let mut buf = Vec::new();
        assert_eq!(
            read_line_bounded(&mut zero, &mut buf, 1000).unwrap(),
            Line::TooLong
        );
        assert_eq!(buf.len(), 1001);
        let mut lines = &b"ab\ncd"[..];
        assert_eq!(
            read_line_bounded(&mut lines, &mut buf, 3).unwrap(),
            Line::Read(3)
        );
        assert_eq!(buf, b"ab\n");
        assert_eq!(
            read_line_bounded(&mut lines, &mut buf, 3).unwrap(),
            Line::Read(2)
        );
        assert_eq!(
            read_line_bounded(&mut lines, &mut buf, 3).unwrap(),
            Line::End
        );
        // Exactly the limit with its newline past it is still a line.
        let mut exact = &b"abc\n"[..];
        assert_eq!(
            read_line_bounded(&mut exact, &mut buf, 3).unwrap(),
            Line::Read(4)
        );
    }
}
