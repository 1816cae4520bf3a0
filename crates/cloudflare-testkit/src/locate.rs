// Where Prism comes from: the one place that knows. The crate uses it as `mod locate`
// (`find_prism`, `Prism::start`) and its build script `include!`s it to decide `cfg(prism)`,
// so it needs nothing but std and `dirs` (a build-dependency too). Plain comments only:
// an included file cannot carry inner doc comments.

/// Environment variable naming the Prism executable.
pub(crate) const PRISM_BIN_ENV: &str = "PRISM_BIN";

/// Every environment variable the search reads (the build script reruns when one changes):
/// `PRISM_BIN`, `PATH`, and those the per-user cache directory comes from. Read only by the
/// build script.
#[allow(dead_code)]
pub(crate) const LOOKUP_ENV: &[&str] = &[
    PRISM_BIN_ENV,
    "PATH",
    "XDG_CACHE_HOME",
    "HOME",
    "LOCALAPPDATA",
];

/// Set (to anything) on CI, where a missing Prism fails the tests instead of skipping them.
pub(crate) const CI_ENV: &str = "CI";

/// Whether this runs under CI ([`CI_ENV`] is set).
#[must_use]
pub(crate) fn under_ci() -> bool {
    std::env::var_os(CI_ENV).is_some()
}

/// The per-user tool cache's Prism root, `<cache>/mcp-memory/tools/prism/` (filled by
/// `cargo xtask fetch-prism`), whether or not it exists.
#[must_use]
pub(crate) fn cached_prism_root() -> Option<std::path::PathBuf> {
    dirs::cache_dir().map(|c| c.join("mcp-memory").join("tools").join("prism"))
}

/// Where Prism is installed, if anywhere; first found wins: `PRISM_BIN`; the per-user tool
/// cache (`<cache>/mcp-memory/tools/prism/node_modules/.bin/prism`); `prism` on `PATH`.
#[must_use]
pub(crate) fn find_prism() -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os(PRISM_BIN_ENV).filter(|p| !p.is_empty()) {
        return Some(std::path::PathBuf::from(path));
    }
    let cached =
        cached_prism_root().map(|root| root.join("node_modules").join(".bin").join("prism"));
    if let Some(path) = cached.filter(|p| p.is_file()) {
        return Some(path);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("prism"))
            .find(|p| p.is_file())
    })
}
