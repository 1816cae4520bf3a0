//! [`TokenCounter`]: a model's tokenizer without truncation, to count a text's tokens and
//! cut it to a token budget before it is sent to a service that refuses (or silently
//! truncates) longer input, such as Cloudflare Workers AI's 512-token BGE models.
//!
//! ```no_run
//! use memory_embed::{ModelLocation, TokenCounter, DEFAULT_MODEL_ID};
//! # fn demo() -> Result<(), memory_embed::EmbedError> {
//! let dir = ModelLocation::resolve(DEFAULT_MODEL_ID)?.dir;
//! let counter = TokenCounter::from_dir(&dir)?;
//! assert_eq!(counter.count("hello world")?, 4); // [CLS] hello world [SEP]
//! let long = "word ".repeat(1000);
//! let cut = counter.cut(&long, 512)?;
//! assert!(counter.count(cut)? <= 512);
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use tokenizers::Tokenizer;

use crate::error::EmbedError;
use crate::spec::files;

/// Characters looked at per token of the budget before tokenizing, so that a megabyte-long
/// note costs no more than a page. Why 100: WordPiece turns any word longer than its
/// `max_input_chars_per_word` (100 for the BERT vocabularies) into one `[UNK]`, so no token
/// covers more than 100 characters of text between spaces; cutting there first never drops
/// text that could have fitted, except runs of whitespace, which carry nothing.
const CHARS_PER_TOKEN_CEILING: usize = 100;

/// A model's tokenizer, truncation and padding off, for counting and cutting texts by
/// tokens. Counts include the special tokens the model adds (`[CLS]` and `[SEP]` for BERT),
/// because a model's context (512 positions for BERT) holds them too. Cheap to clone.
#[derive(Clone)]
pub struct TokenCounter {
    tokenizer: Arc<Tokenizer>,
}

impl fmt::Debug for TokenCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCounter")
            .field("vocab_size", &self.tokenizer.get_vocab_size(true))
            .finish()
    }
}

impl TokenCounter {
    /// The tokenizer in `dir/tokenizer.json`.
    ///
    /// # Errors
    /// [`EmbedError::MissingFile`] when the file is absent, [`EmbedError::InvalidTokenizer`]
    /// when it cannot be read as a tokenizer.
    pub fn from_dir(dir: &Path) -> Result<Self, EmbedError> {
        let path = dir.join(files::TOKENIZER);
        if !path.is_file() {
            return Err(EmbedError::missing_file(path));
        }
        let invalid = |reason: String| EmbedError::InvalidTokenizer {
            path: path.clone(),
            reason,
        };
        let mut tokenizer = Tokenizer::from_file(&path).map_err(|e| invalid(e.to_string()))?;
        Self::untruncated(&mut tokenizer).map_err(invalid)?;
        Ok(Self {
            tokenizer: Arc::new(tokenizer),
        })
    }

    /// Wraps an already loaded tokenizer (its truncation and padding are turned off).
    pub(crate) fn from_tokenizer(mut tokenizer: Tokenizer) -> Result<Self, EmbedError> {
        Self::untruncated(&mut tokenizer).map_err(|reason| EmbedError::Tokenize { reason })?;
        Ok(Self {
            tokenizer: Arc::new(tokenizer),
        })
    }

    /// Why: a published `tokenizer.json` may carry a truncation (all-MiniLM-L6-v2's says
    /// 128), which would make every count look short.
    fn untruncated(tokenizer: &mut Tokenizer) -> Result<(), String> {
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The number of tokens of `text`, special tokens included.
    ///
    /// # Errors
    /// [`EmbedError::Tokenize`] if the tokenizer fails.
    pub fn count(&self, text: &str) -> Result<usize, EmbedError> {
        Ok(self.encode(text)?.len())
    }

    /// The longest prefix of `text` (cut at a token's end, on a character boundary) whose
    /// tokens, special ones included, number at most `max_tokens`; `text` itself when it
    /// fits.
    ///
    /// # Errors
    /// [`EmbedError::Tokenize`] if the tokenizer fails.
    pub fn cut<'a>(&self, text: &'a str, max_tokens: usize) -> Result<&'a str, EmbedError> {
        let ceiling = max_tokens.saturating_mul(CHARS_PER_TOKEN_CEILING);
        let prefix = match text.char_indices().nth(ceiling) {
            Some((end, _)) => &text[..end],
            None => text,
        };
        let encoding = self.encode(prefix)?;
        if encoding.len() <= max_tokens {
            return Ok(prefix);
        }
        let specials = encoding
            .get_special_tokens_mask()
            .iter()
            .filter(|m| **m == 1)
            .count();
        // The content tokens that fit, then the end of the last one in the text.
        let mut keep = max_tokens.saturating_sub(specials);
        let content: Vec<(usize, usize)> = encoding
            .get_offsets()
            .iter()
            .zip(encoding.get_special_tokens_mask())
            .filter(|(_, special)| **special == 0)
            .map(|(offsets, _)| *offsets)
            .collect();
        loop {
            let end = match keep {
                0 => 0,
                n => content.get(n - 1).map_or(prefix.len(), |(_, end)| *end),
            };
            let end = floor_char_boundary(prefix, end);
            let candidate = &prefix[..end];
            // Why re-count: WordPiece matches greedily from a word's start, so the prefix of
            // a word cut inside it may split into more pieces than it had in the whole word.
            if end == 0 || self.count(candidate)? <= max_tokens {
                return Ok(candidate);
            }
            keep -= 1;
        }
    }

    fn encode(&self, text: &str) -> Result<tokenizers::Encoding, EmbedError> {
        self.tokenizer
            .encode(text, true)
            .map_err(|e| EmbedError::Tokenize {
                reason: e.to_string(),
            })
    }
}

/// The largest character boundary of `text` at or below `index`.
fn floor_char_boundary(text: &str, index: usize) -> usize {
    let mut i = index.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DEFAULT_MODEL_ID, ModelLocation};

    /// The real all-MiniLM-L6-v2 tokenizer; fails (never skips) when absent.
    fn counter() -> TokenCounter {
        let dir = ModelLocation::resolve(DEFAULT_MODEL_ID)
            .unwrap_or_else(|e| panic!("run `cargo xtask fetch-model`: {e}"))
            .dir;
        TokenCounter::from_dir(&dir).unwrap()
    }

    #[test]
    fn counts_include_cls_and_sep_and_ignore_the_files_truncation() {
        let c = counter();
        assert_eq!(c.count("hello world").unwrap(), 4);
        // The file truncates at 128; the counter must not.
        assert_eq!(c.count(&"word ".repeat(300)).unwrap(), 302);
        // One token per CJK ideograph.
        assert_eq!(c.count(&"记忆".repeat(300)).unwrap(), 602);
    }

    #[test]
    fn cut_keeps_texts_that_fit_and_cuts_others_to_the_budget() {
        let c = counter();
        assert_eq!(c.cut("hello world", 4).unwrap(), "hello world");
        let cjk = "记忆".repeat(300);
        let cut = c.cut(&cjk, 512).unwrap();
        assert_eq!(cut.chars().count(), 510);
        assert_eq!(c.count(cut).unwrap(), 512);
        let words = "unaffable tokenization ".repeat(200);
        let cut = c.cut(&words, 100).unwrap();
        assert!(c.count(cut).unwrap() <= 100, "{cut}");
        assert!(c.count(cut).unwrap() >= 97, "{cut}");
        assert!(words.starts_with(cut));
        assert_eq!(c.cut(&words, 2).unwrap(), "");
    }

    #[test]
    fn a_missing_tokenizer_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = TokenCounter::from_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("tokenizer.json"), "{err}");
    }
}
