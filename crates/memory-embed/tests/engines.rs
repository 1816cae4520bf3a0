//! The two engines give the same vectors: on 200 texts of every length (empty, one word,
//! sentences, paragraphs, past the 256-token limit; ASCII, accents, CJK, emoji, code), the
//! cosine between candle's and ONNX Runtime's vector is ≥ 0.9999 for each text, alone and
//! in padded batches. Stored vectors, and those other devices carry, stay comparable
//! whichever engine embedded them.
//!
//! Needs the model and ONNX Runtime (`cargo xtask fetch-model`); fails, never skips,
//! without them.

use memory_embed::{
    BertEmbedder, DEFAULT_MODEL_ID, Engine, EngineChoice, Pooling, onnx::runtime_library,
};

/// Words the corpus is made of: everyday English, identifiers, numbers, accents, CJK,
/// emoji and punctuation, so the tokenizer's every path is taken.
const WORDS: &[&str] = &[
    "the",
    "memory",
    "service",
    "stores",
    "notes",
    "for",
    "assistants",
    "and",
    "recalls",
    "them",
    "by",
    "meaning",
    "deployment",
    "failed",
    "because",
    "database",
    "migration",
    "timed",
    "out",
    "Rust's",
    "borrow",
    "checker",
    "HTTP/2",
    "429",
    "rate-limit",
    "café",
    "naïve",
    "Zürich",
    "東京",
    "记忆",
    "서울",
    "🙂",
    "🚀",
    "fn main() {}",
    "snake_case_identifier",
    "CamelCaseName",
    "v1.2.3",
    "2026-12-07",
    "€42.50",
    "—",
    "\"quoted\"",
    "(parenthesised)",
    "e-mail",
    "user@example.com",
    "C++",
    "α-β",
    "\t",
    "\n",
];

/// A deterministic generator (SplitMix64): the corpus is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// 200 texts: the empty text, then lengths spread from 1 to 600 words (past the model's
/// 256-token window, where both must truncate alike).
fn corpus() -> Vec<String> {
    let mut rng = Rng(20_261_207);
    let mut texts = vec![String::new()];
    while texts.len() < 200 {
        let i = texts.len();
        // Lengths grow roughly geometrically, so short texts (the common case) are many.
        let words = ((i as f64 / 199.0).powi(3) * 600.0) as usize + 1;
        let text: Vec<&str> = (0..words).map(|_| WORDS[rng.below(WORDS.len())]).collect();
        texts.push(text.join(" "));
    }
    texts
}

fn load(engine: Engine) -> BertEmbedder {
    let dir = memory_embed::ModelLocation::resolve(DEFAULT_MODEL_ID)
        .unwrap_or_else(|e| {
            panic!("these tests need the model: run `cargo xtask fetch-model`. Error: {e}")
        })
        .dir;
    BertEmbedder::load_with(&dir, DEFAULT_MODEL_ID, None, EngineChoice::Only(engine))
        .unwrap_or_else(|e| {
            panic!(
                "loading {} : {e} (run `cargo xtask fetch-model`)",
                engine.name()
            )
        })
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn both_engines_give_the_same_vectors_for_200_texts_of_every_length() {
    assert!(
        runtime_library().is_some(),
        "no ONNX Runtime library: run `cargo xtask fetch-model` or set MCP_MEMORY_ONNXRUNTIME"
    );
    let candle = load(Engine::Candle);
    let onnx = load(Engine::Onnx);
    assert_eq!(candle.engine(), Engine::Candle);
    assert_eq!(onnx.engine(), Engine::Onnx);
    assert_eq!(onnx.pooling(), Pooling::Mean);
    let texts = corpus();

    // In batches (padded to each chunk's longest text) on both engines.
    let a = candle.embed_blocking(&texts).unwrap();
    let b = onnx.embed_blocking(&texts).unwrap();
    let mut worst = (1.0f32, 0usize);
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x.len(), 384);
        assert_eq!(y.len(), 384);
        let c = cosine(x, y);
        if c < worst.0 {
            worst = (c, i);
        }
    }
    println!(
        "worst cosine candle/onnx over {} texts: {:.7} (text {}, {} chars)",
        texts.len(),
        worst.0,
        worst.1,
        texts[worst.1].chars().count()
    );
    assert!(
        worst.0 >= 0.9999,
        "text {} ({:?}…): cosine {} < 0.9999",
        worst.1,
        texts[worst.1].chars().take(60).collect::<String>(),
        worst.0
    );

    // Alone (no padding) on ONNX Runtime: the same as in a batch.
    for (i, text) in texts.iter().enumerate().step_by(7) {
        let alone = onnx.embed_blocking(std::slice::from_ref(text)).unwrap();
        let c = cosine(&alone[0], &b[i]);
        assert!(c >= 0.9999, "text {i} alone vs batched on onnx: cosine {c}");
    }
}

#[test]
fn an_unknown_engine_name_is_refused_with_the_choices() {
    let e = EngineChoice::parse("tensorflow").unwrap_err().to_string();
    assert!(e.contains("auto, onnx or candle"), "{e}");
    assert_eq!(
        EngineChoice::parse(" ONNX ").unwrap(),
        EngineChoice::Only(Engine::Onnx)
    );
    assert_eq!(EngineChoice::parse("").unwrap(), EngineChoice::Auto);
}
