//! Cutting each text to what a Workers AI model reads: by the model's tokens where a
//! tokenizer with its vocabulary is at hand, else by a character budget proven never to
//! exceed them.
//!
//! # Why tokens
//!
//! Workers AI's BGE English models read at most 512 tokens, `[CLS]` and `[SEP]` included
//! (each model's page: "Max input tokens: 512"); the emulator refuses longer texts, and so
//! may Cloudflare (see `cloudflare_emulator::ai`). A cut by characters cannot respect that:
//! 2,000 characters of English are about 450 tokens, but 2,000 CJK ideographs are 2,000
//! tokens.
//!
//! # The tokenizer
//!
//! `@cf/baai/bge-small-en-v1.5`, `-base-` and `-large-` tokenize with BERT's uncased
//! WordPiece vocabulary (30,522 entries, `bert-base-uncased`'s), as does the local
//! all-MiniLM-L6-v2, so either's `tokenizer.json` counts BGE tokens exactly. Checked: the
//! local MiniLM `vocab.txt` has sha256 `07eced37…2038a3`, the digest public code pins for
//! `BAAI/bge-small-en-v1.5`'s `vocab.txt`; `bge-base-en-v1.5`'s is listed at the same size
//! (231,508 bytes). `bge-large-en-v1.5`'s was not checked here (the same family, the same
//! `BertTokenizer` configuration). Both use the same normalizer (BERT's: lower case, accents
//! stripped, CJK split). With feature `local-embedding` the backend cuts with such a
//! tokenizer when it finds one ([`WordPieceCut::tokens`]).
//!
//! # The character budget
//!
//! Without a tokenizer, [`WordPieceCut::bound`] keeps the longest prefix whose characters'
//! costs sum to at most 510 (512 less `[CLS]` and `[SEP]`). Why it never exceeds 512: BERT's
//! normalizer decomposes each character (NFD), drops the combining marks (category Mn) and
//! lower-cases; the pre-tokenizer splits on whitespace (dropped) and isolates each
//! punctuation character; WordPiece then turns each word into pieces of at least one
//! character each, or into one `[UNK]`. So a text has at most as many tokens as characters
//! after normalization, and a character's cost here is the most characters its
//! normalization leaves: 1 below U+0900 (Latin, Greek, Cyrillic, Hebrew, Arabic...) and for
//! CJK ideographs, kana, CJK punctuation and full-width forms; 3 for anything else, since a
//! Hangul syllable decomposes into 3 jamo, each a token (the most any character leaves, by
//! an exhaustive check of Unicode 14 with Python's `unicodedata`, pinned by a test on the
//! real tokenizer). So 510 CJK ideographs fit (exactly 512 tokens), and 170 Hangul
//! syllables.
//!
//! Models of another vocabulary (`@cf/google/embeddinggemma-300m`) keep the 2,000-character
//! cut, which the budget above says nothing about.

use cloudflare_ai::EmbeddingModel;
#[cfg(feature = "local-embedding")]
use memory_embed::TokenCounter;

/// Input tokens of the BGE English models, `[CLS]` and `[SEP]` included.
pub(crate) const BGE_MAX_INPUT_TOKENS: usize = 512;

/// Special tokens BERT adds to every text (`[CLS]`, `[SEP]`).
const SPECIAL_TOKENS: usize = 2;

/// The most tokens one character can become (a Hangul syllable: 3 jamo).
const MAX_TOKENS_PER_CHAR: usize = 3;

/// Workers AI models that tokenize with BERT's uncased WordPiece vocabulary.
const UNCASED_WORDPIECE_MODELS: [&str; 3] = [
    "@cf/baai/bge-small-en-v1.5",
    "@cf/baai/bge-base-en-v1.5",
    "@cf/baai/bge-large-en-v1.5",
];

/// Whether `model` reads BERT's uncased WordPiece tokens (the BGE English models).
pub(crate) fn uses_uncased_wordpiece(model: &EmbeddingModel) -> bool {
    UNCASED_WORDPIECE_MODELS.contains(&model.id())
}

/// How the texts of a WordPiece model are cut to its input tokens.
#[derive(Clone, Debug)]
pub(crate) enum WordPieceCut {
    /// With a tokenizer of the same vocabulary: the longest prefix of at most `max_tokens`.
    #[cfg(feature = "local-embedding")]
    Tokens {
        /// The tokenizer, untruncated.
        counter: TokenCounter,
        /// The model's input tokens.
        max_tokens: usize,
    },
    /// By the character budget of the [module docs](self).
    Bound {
        /// The model's input tokens.
        max_tokens: usize,
    },
}

impl WordPieceCut {
    /// The character budget for `max_tokens`.
    pub(crate) fn bound(max_tokens: usize) -> Self {
        Self::Bound { max_tokens }
    }

    /// Cutting with `counter` to `max_tokens`.
    #[cfg(feature = "local-embedding")]
    pub(crate) fn tokens(counter: TokenCounter, max_tokens: usize) -> Self {
        Self::Tokens {
            counter,
            max_tokens,
        }
    }

    /// Whether texts are cut with a tokenizer.
    pub(crate) fn by_tokens(&self) -> bool {
        !matches!(self, Self::Bound { .. })
    }

    /// The longest prefix of `text` that the model reads whole.
    pub(crate) fn cut<'a>(&self, text: &'a str) -> &'a str {
        match self {
            #[cfg(feature = "local-embedding")]
            Self::Tokens {
                counter,
                max_tokens,
            } => match counter.cut(text, *max_tokens) {
                Ok(cut) => cut,
                Err(e) => {
                    // The tokenizer never failed in practice; if it does, the proven budget
                    // still keeps the call within the limit.
                    tracing::warn!(error = %e, "counting tokens failed; cutting by characters");
                    bound_cut(text, *max_tokens)
                }
            },
            Self::Bound { max_tokens } => bound_cut(text, *max_tokens),
        }
    }
}

/// The most tokens `c` can become after BERT's normalization (see the [module docs](self)).
fn token_cost(c: char) -> usize {
    match u32::from(c) {
        // Below Devanagari: a base letter and combining marks, which are dropped.
        0..=0x08FF
        // CJK punctuation, kana; CJK ideographs (extension A, unified, compatibility,
        // supplementary planes); half- and full-width forms. Checked one by one.
        | 0x3000..=0x30FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xF900..=0xFAFF
        | 0xFF00..=0xFFEF
        | 0x2_0000..=0x3_FFFF => 1,
        _ => MAX_TOKENS_PER_CHAR,
    }
}

/// The longest prefix of `text` whose characters cost at most `max_tokens` less the special
/// tokens.
fn bound_cut(text: &str, max_tokens: usize) -> &str {
    let budget = max_tokens.saturating_sub(SPECIAL_TOKENS);
    let mut spent = 0;
    for (i, c) in text.char_indices() {
        spent += token_cost(c);
        if spent > budget {
            return &text[..i];
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bge_english_models_are_wordpiece() {
        assert!(uses_uncased_wordpiece(&EmbeddingModel::BGE_SMALL_EN_V1_5));
        assert!(uses_uncased_wordpiece(&EmbeddingModel::BGE_BASE_EN_V1_5));
        assert!(uses_uncased_wordpiece(&EmbeddingModel::BGE_LARGE_EN_V1_5));
        assert!(!uses_uncased_wordpiece(
            &EmbeddingModel::EMBEDDINGGEMMA_300M
        ));
    }

    #[test]
    fn the_bound_keeps_510_ideographs_170_hangul_and_short_texts_whole() {
        let cut = WordPieceCut::bound(BGE_MAX_INPUT_TOKENS);
        assert!(!cut.by_tokens());
        assert_eq!(cut.cut(&"记忆".repeat(300)).chars().count(), 510);
        assert_eq!(cut.cut(&"한국어".repeat(100)).chars().count(), 170);
        assert_eq!(cut.cut(&"a".repeat(600)).len(), 510);
        assert_eq!(cut.cut("short é"), "short é");
        assert_eq!(bound_cut("abc", 2), "");
    }

    /// The budget's premise on the real tokenizer (MiniLM's, BGE's vocabulary): never more
    /// tokens than the budget allows, and the worst cases are as tight as claimed.
    #[test]
    fn the_bound_holds_on_the_real_tokenizer() {
        use memory_embed::{DEFAULT_MODEL_ID, ModelLocation, TokenCounter};
        let dir = ModelLocation::resolve(DEFAULT_MODEL_ID)
            .unwrap_or_else(|e| panic!("run `cargo xtask fetch-model`: {e}"))
            .dir;
        let counter = TokenCounter::from_dir(&dir).unwrap();
        // A Hangul syllable with a final consonant: 3 tokens.
        assert_eq!(counter.count("한").unwrap(), 2 + 3);
        let texts = [
            "记忆".repeat(400),
            "한국어 문장입니다".repeat(80),
            "fn main() { println!(\"{}\", x.y_z[0]); } // ümlaut ".repeat(40),
            "Ελληνικά кириллица עברית العربية ".repeat(40),
            "テスト、カタカナ。ひらがな！ＡＢＣ".repeat(60),
            "x".repeat(3000),
        ];
        let cut = WordPieceCut::bound(BGE_MAX_INPUT_TOKENS);
        for text in &texts {
            let kept = cut.cut(text);
            let n = counter.count(kept).unwrap();
            assert!(n <= BGE_MAX_INPUT_TOKENS, "{n} tokens for {kept:?}");
        }
    }
}
