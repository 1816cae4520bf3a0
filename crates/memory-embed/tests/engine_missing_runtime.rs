//! An unusable ONNX Runtime library: an explicit `MCP_MEMORY_EMBED_ENGINE=onnx` fails with
//! an error naming the library and what to do; `auto` falls back to candle. Its own test
//! binary, because the library is loaded once per process.

use memory_embed::{BertEmbedder, DEFAULT_MODEL_ID, Engine, EngineChoice};

#[test]
fn a_missing_runtime_library_is_an_error_naming_it_and_what_to_do() {
    let dir = memory_embed::ModelLocation::resolve(DEFAULT_MODEL_ID)
        .unwrap()
        .dir;
    let missing = std::env::temp_dir().join("no-such-dir/libonnxruntime.so");
    // SAFETY: the only test of this binary; set before any other thread reads the
    // environment.
    unsafe { std::env::set_var("MCP_MEMORY_ONNXRUNTIME", &missing) };
    let e = BertEmbedder::load_with(
        &dir,
        DEFAULT_MODEL_ID,
        None,
        EngineChoice::Only(Engine::Onnx),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no-such-dir"), "{e}");
    assert!(e.contains("MCP_MEMORY_ONNXRUNTIME"), "{e}");
    let fallback =
        BertEmbedder::load_with(&dir, DEFAULT_MODEL_ID, None, EngineChoice::Auto).unwrap();
    assert_eq!(fallback.engine(), Engine::Candle);
}
