//! Resolving: every setting from the layers in precedence order ([`Resolution`]), then
//! checked into the typed [`Config`] (every problem at once, each named where its value came
//! from).

use std::collections::BTreeMap;
use std::path::PathBuf;

use memory_cloudflare::config::{CloudflareConfig, CloudflareSettings, Field};

use super::file::{ConfigFile, FileOrigin, default_config_path};
use super::problem::{ConfigError, Problem, Problems, Source};
use super::settings::{
    BACKEND_ENV, CONFIG_ENV, DEFAULT_MODEL, SETTINGS, SUPPORTED_BACKENDS, Secret, Setting,
    SettingId, Value,
};

/// The values some layer gives, by setting, with where each came from.
type Found = BTreeMap<SettingId, (Value, Source)>;

/// Which backend serves the memories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// The embedded default: SQLite + in-process vector search + a local model.
    Sqlite,
    /// Cloudflare: D1, Vectorize, R2 and Workers AI (`memory_cloudflare`).
    Cloudflare,
    /// Local-first SQLite synced through Cloudflare (`memory_hybrid`).
    Hybrid,
}

impl BackendKind {
    /// Whether this backend needs the Cloudflare settings.
    #[must_use]
    pub fn uses_cloudflare(self) -> bool {
        matches!(self, Self::Cloudflare | Self::Hybrid)
    }
}

impl std::str::FromStr for BackendKind {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sqlite" | "sqlite_vec" | "sqlite-vec" => Ok(Self::Sqlite),
            "cloudflare" => Ok(Self::Cloudflare),
            "hybrid" => Ok(Self::Hybrid),
            _ => Err(ConfigError::Invalid {
                variable: BACKEND_ENV,
                value: s.to_owned(),
                expected: SUPPORTED_BACKENDS,
            }),
        }
    }
}

/// Values given on the command line, overriding the environment and the file. `Debug`
/// never shows a secret.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--db`.
    pub sqlite_path: Option<PathBuf>,
    /// `--backend`.
    pub backend: Option<String>,
    /// `--config`: the configuration file.
    pub config_file: Option<PathBuf>,
    /// `serve --api-key`: the key clients of `serve --http` must send.
    pub api_key: Option<Secret>,
}

/// One setting's effective value and where it came from.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The setting.
    pub setting: &'static Setting,
    /// The value as it may be shown (secrets masked); `None` when unset with no default.
    pub value: Option<String>,
    /// Where it came from; `None` when unset with no default.
    pub source: Option<Source>,
}

/// Every source consulted, in precedence order.
struct Layers<'a> {
    overrides: &'a Overrides,
    var: &'a dyn Fn(&str) -> Option<String>,
    file: Option<&'a ConfigFile>,
}

impl Layers<'_> {
    /// `setting`'s value and its source, if any layer sets it.
    fn get(&self, setting: &'static Setting) -> Option<(Value, Source)> {
        let flag = match setting.id {
            SettingId::SqlitePath => self
                .overrides
                .sqlite_path
                .as_ref()
                .map(|p| Value::of(setting, p.display().to_string())),
            SettingId::Backend => self
                .overrides
                .backend
                .clone()
                .map(|v| Value::of(setting, v)),
            // Stays a secret from the command line on (an empty key is no key).
            SettingId::ApiKey => self
                .overrides
                .api_key
                .clone()
                .filter(|k| !k.expose().trim().is_empty())
                .map(Value::Secret),
            _ => None,
        };
        if let (Some(v), Some(name)) = (flag, setting.flag) {
            return Some((v, Source::Flag(name)));
        }
        if let Some(v) = (self.var)(setting.env).filter(|v| !v.trim().is_empty()) {
            return Some((Value::of(setting, v), Source::Env(setting.env)));
        }
        let file = self.file?;
        file.get(setting.id).map(|v| {
            (
                v.clone(),
                Source::File {
                    path: file.path.clone(),
                    key: setting.key,
                },
            )
        })
    }
}

/// The effective configuration with the source of every value, every warning and every
/// problem: what `mcp-memory config` prints, and what [`Config::load`] checks.
#[derive(Debug)]
pub struct Resolution {
    /// The configuration file read (or that failed to read), and how it was chosen.
    pub file: Option<(PathBuf, FileOrigin)>,
    /// Every setting, in [`SETTINGS`] order.
    pub entries: Vec<Entry>,
    /// Warnings, e.g. a secret in a file others can read.
    pub warnings: Vec<String>,
    /// Every problem found; empty when the configuration is valid.
    pub problems: Vec<Problem>,
    config: Option<Config>,
}

impl Resolution {
    /// Resolves `overrides`, the process environment and the configuration file: the one
    /// place the configuration reads the environment.
    #[must_use]
    pub fn load(overrides: &Overrides) -> Self {
        Self::resolve(overrides, &|k| std::env::var(k).ok(), default_config_path())
    }

    /// Resolves `overrides`, the variables `var` gives and the configuration file (from
    /// `--config`, else `MCP_MEMORY_CONFIG`, else `default_file` if it exists).
    #[must_use]
    pub fn resolve(
        overrides: &Overrides,
        var: &dyn Fn(&str) -> Option<String>,
        default_file: Option<PathBuf>,
    ) -> Self {
        let located = match (
            &overrides.config_file,
            var(CONFIG_ENV).filter(|v| !v.trim().is_empty()),
        ) {
            (Some(p), _) => Some((p.clone(), FileOrigin::Flag)),
            (None, Some(p)) => Some((PathBuf::from(p.trim()), FileOrigin::Env)),
            (None, None) => default_file
                .filter(|p| p.is_file())
                .map(|p| (p, FileOrigin::DefaultLocation)),
        };
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        let file =
            located
                .as_ref()
                .and_then(|(path, origin)| match ConfigFile::read(path, *origin) {
                    Ok(f) => {
                        problems.extend(f.problems.iter().cloned());
                        warnings.extend(f.warnings.iter().cloned());
                        Some(f)
                    }
                    Err(p) => {
                        problems.push(p);
                        None
                    }
                });
        let layers = Layers {
            overrides,
            var,
            file: file.as_ref(),
        };

        let mut entries = Vec::with_capacity(SETTINGS.len());
        let mut found: Found = BTreeMap::new();
        for setting in SETTINGS {
            let (value, source) = match layers.get(setting) {
                Some((v, source)) => {
                    let shown = v.shown();
                    found.insert(setting.id, (v, source.clone()));
                    (Some(shown), Some(source))
                }
                None => {
                    let default = match setting.id {
                        SettingId::Backend => Some("sqlite".to_owned()),
                        SettingId::SqlitePath => {
                            default_sqlite_path().map(|p| p.display().to_string())
                        }
                        SettingId::EmbeddingModel => Some(DEFAULT_MODEL.to_owned()),
                        SettingId::ModelDir => memory_embed::ModelLocation::user_cache_dir(
                            found
                                .get(&SettingId::EmbeddingModel)
                                .map_or(DEFAULT_MODEL, |(v, _)| v.expose().trim()),
                        )
                        .map(|p| p.display().to_string()),
                        SettingId::SessionIdleTimeout => Some(
                            crate::mcp::sessions::SessionLimits::DEFAULT_IDLE_TIMEOUT
                                .as_secs()
                                .to_string(),
                        ),
                        SettingId::SyncInterval => Some(
                            memory_hybrid::DEFAULT_SYNC_INTERVAL
                                .as_secs_f64()
                                .to_string(),
                        ),
                        SettingId::MaxSessions => Some(
                            crate::mcp::sessions::SessionLimits::DEFAULT_MAX_SESSIONS.to_string(),
                        ),
                        SettingId::Cloudflare(field) => field.default_value(),
                        SettingId::ApiKey => None,
                    };
                    let source = default.as_ref().map(|_| Source::Default);
                    (default, source)
                }
            };
            entries.push(Entry {
                setting,
                value,
                source,
            });
        }

        let text = |id: SettingId| {
            found
                .get(&id)
                .map(|(v, _)| v.expose().trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let backend = match text(SettingId::Backend) {
            None => Some(BackendKind::Sqlite),
            Some(v) => match v.parse::<BackendKind>() {
                Ok(kind) => Some(kind),
                Err(_) => {
                    problems.push(Problem::at(
                        Setting::of(SettingId::Backend),
                        found.get(&SettingId::Backend).map(|(_, s)| s),
                        format!("{v:?} is not valid; expected {SUPPORTED_BACKENDS}"),
                    ));
                    None
                }
            },
        };
        // Checked whichever backend is selected (`migrate` needs both), but only a problem
        // when Cloudflare is.
        let cloudflare_any = cloudflare_from(&found);
        let cloudflare = match (backend, &cloudflare_any) {
            (Some(kind), Ok(c)) if kind.uses_cloudflare() => Some(c.clone()),
            (Some(kind), Err(cf)) if kind.uses_cloudflare() => {
                problems.extend(cf.iter().cloned());
                None
            }
            _ => None,
        };
        let sqlite_path = match found.get(&SettingId::SqlitePath) {
            Some((_, Source::Flag(_))) => overrides.sqlite_path.clone(),
            Some((v, _)) => Some(PathBuf::from(v.expose().trim())),
            None => default_sqlite_path(),
        };
        if sqlite_path.is_none() {
            problems.push(Problem::at(
                Setting::of(SettingId::SqlitePath),
                None,
                "no per-user data directory on this system: set it, or pass --db FILE",
            ));
        }

        // A positive whole number, or a problem naming where the value came from.
        let mut positive = |id: SettingId| -> Option<u64> {
            let (v, source) = found.get(&id)?;
            let v = v.expose();
            match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    problems.push(Problem::at(
                        Setting::of(id),
                        Some(source),
                        format!("{v:?} is not a whole number of at least 1"),
                    ));
                    None
                }
            }
        };
        let session_idle_timeout = positive(SettingId::SessionIdleTimeout);
        let max_sessions =
            positive(SettingId::MaxSessions).map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let sync_interval = match found.get(&SettingId::SyncInterval) {
            None => None,
            Some((v, source)) => match v.expose().trim().parse::<f64>() {
                Ok(secs) if secs.is_finite() && (0.05..=86_400.0).contains(&secs) => {
                    Some(std::time::Duration::from_secs_f64(secs))
                }
                _ => {
                    problems.push(Problem::at(
                        Setting::of(SettingId::SyncInterval),
                        Some(source),
                        format!(
                            "{:?} is not a number of seconds from 0.05 to 86400",
                            v.expose()
                        ),
                    ));
                    None
                }
            },
        };

        let config = match (backend, sqlite_path) {
            (Some(backend), Some(sqlite_path)) if problems.is_empty() => Some(Config {
                backend,
                cloudflare,
                sqlite_path,
                embedding_model: text(SettingId::EmbeddingModel)
                    .unwrap_or_else(|| DEFAULT_MODEL.to_owned()),
                model_dir: text(SettingId::ModelDir).map(PathBuf::from),
                api_key: text(SettingId::ApiKey).map(Secret::new),
                session_idle_timeout,
                max_sessions,
                sync_interval,
                cloudflare_any,
            }),
            _ => None,
        };
        Self {
            file: located,
            entries,
            warnings,
            problems,
            config,
        }
    }

    /// The configuration, or every problem found.
    ///
    /// # Errors
    /// [`ConfigError::Problems`] listing each problem with where its value came from.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        match self.config {
            Some(c) if self.problems.is_empty() => Ok(c),
            _ => Err(ConfigError::Problems(Problems(self.problems))),
        }
    }
}

/// `<data dir>/mcp-memory/memories.db`, if the platform has a data directory.
fn default_sqlite_path() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("mcp-memory").join("memories.db"))
}

/// The Cloudflare settings among the values `found` (each with its source), checked; every
/// problem named where its value came from.
fn cloudflare_from(found: &Found) -> Result<CloudflareConfig, Vec<Problem>> {
    let mut settings = CloudflareSettings::default();
    for field in Field::ALL {
        match found.get(&SettingId::Cloudflare(field)) {
            Some((Value::Secret(secret), _)) if field == Field::ApiToken => {
                settings.api_token = Some(secret.clone());
            }
            Some((value, _)) => settings.set(field, value.expose()),
            None => {}
        }
    }
    settings.into_config().map_err(|errors| {
        errors
            .problems()
            .iter()
            .map(|p| {
                let id = SettingId::Cloudflare(p.field);
                let source = found.get(&id).map(|(_, source)| source);
                Problem::at(Setting::of(id), source, p.reason.clone())
            })
            .collect()
    })
}

/// The effective configuration. `Debug` never shows a secret.
#[derive(Debug, Clone)]
pub struct Config {
    /// The backend.
    pub backend: BackendKind,
    /// The Cloudflare settings, read when [`BackendKind::Cloudflare`] is selected.
    pub cloudflare: Option<CloudflareConfig>,
    /// The SQLite file.
    pub sqlite_path: PathBuf,
    /// Embedding model id.
    pub embedding_model: String,
    /// Explicit model directory, if configured.
    pub model_dir: Option<PathBuf>,
    /// The API key for `serve --http` from `--api-key`, the environment or the file, if
    /// any (never empty).
    pub api_key: Option<Secret>,
    /// Seconds an idle HTTP session lives, from the environment or the file
    /// (`--session-idle-timeout` beats both), if set.
    pub session_idle_timeout: Option<u64>,
    /// Most HTTP sessions live at once, from the environment or the file (`--max-sessions`
    /// beats both), if set.
    pub max_sessions: Option<usize>,
    /// Seconds between the hybrid backend's background sync rounds while there is work,
    /// if set (default `memory_hybrid::DEFAULT_SYNC_INTERVAL`).
    pub sync_interval: Option<std::time::Duration>,
    /// The Cloudflare settings checked whichever backend is selected, or their problems.
    cloudflare_any: Result<CloudflareConfig, Vec<Problem>>,
}

impl Config {
    /// Reads the configuration from `overrides`, the process environment and the
    /// configuration file; warnings are logged.
    ///
    /// # Errors
    /// [`ConfigError::Problems`] listing every problem found.
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        let resolution = Resolution::load(overrides);
        for warning in &resolution.warnings {
            tracing::warn!("{warning}");
        }
        resolution.into_config()
    }

    /// The Cloudflare settings whichever backend is selected (`migrate` needs both), as
    /// resolved with the rest of the configuration.
    ///
    /// # Errors
    /// [`ConfigError::Problems`] listing every missing or malformed Cloudflare setting.
    pub fn cloudflare_config(&self) -> Result<CloudflareConfig, ConfigError> {
        if let Some(c) = &self.cloudflare {
            return Ok(c.clone());
        }
        self.cloudflare_any
            .clone()
            .map_err(|p| ConfigError::Problems(Problems(p)))
    }
}
