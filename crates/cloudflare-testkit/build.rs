//! Sets `cfg(prism)` when the Prism tests can run: Prism is installed (found exactly as
//! `find_prism` finds it, from the same source file) or `CI` is set (so that there a
//! missing Prism fails the tests rather than skipping them). Without it, the tests wrapped
//! in `prism_tests!` are compiled `#[ignore]`d, which every test runner reports as such.

include!("src/locate.rs");

fn main() {
    println!("cargo::rustc-check-cfg=cfg(prism)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/locate.rs");
    println!("cargo::rerun-if-env-changed={CI_ENV}");
    for var in LOOKUP_ENV {
        println!("cargo::rerun-if-env-changed={var}");
    }
    let found = find_prism();
    match &found {
        // Gone or replaced: decide again.
        Some(bin) => println!("cargo::rerun-if-changed={}", bin.display()),
        // Installed later by `cargo xtask fetch-prism`: watch the deepest existing part of
        // the cache's Prism root, but nothing above `<cache>/mcp-memory` (a missing path
        // would rerun this script, and rebuild every test, on every build).
        None => {
            if let Some(watch) = cached_prism_root().and_then(|root| {
                root.ancestors()
                    .take(3)
                    .find(|dir| dir.is_dir())
                    .map(std::path::Path::to_path_buf)
            }) {
                println!("cargo::rerun-if-changed={}", watch.display());
            }
        }
    }
    if found.is_some() || under_ci() {
        println!("cargo::rustc-cfg=prism");
    }
}
