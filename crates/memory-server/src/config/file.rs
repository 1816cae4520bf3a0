//! The configuration file: where it is ([`FileOrigin`], [`default_config_path`]) and what
//! it says ([`ConfigFile`]): each known key's value, each unknown section or key, and each
//! value of the wrong type, as a problem with its line and column.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::problem::Problem;
use super::settings::{CONFIG_ENV, SETTINGS, Setting, SettingId, Value, ValueKind, sections};

/// How the configuration file was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOrigin {
    /// `--config FILE`.
    Flag,
    /// `MCP_MEMORY_CONFIG`.
    Env,
    /// `<config dir>/mcp-memory/config.toml`, which exists.
    DefaultLocation,
}

impl fmt::Display for FileOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Flag => "--config",
            Self::Env => CONFIG_ENV,
            Self::DefaultLocation => "the default location",
        })
    }
}

/// The default configuration file, `<config dir>/mcp-memory/config.toml`, whether or not it
/// exists (`None` when the platform has no per-user configuration directory).
#[must_use]
pub fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("mcp-memory").join("config.toml"))
}

/// A parsed configuration file: values by setting, each secret a
/// [`Secret`](super::settings::Secret) from the moment it is read. `Debug` masks secrets.
pub struct ConfigFile {
    /// The file.
    pub path: PathBuf,
    values: BTreeMap<SettingId, Value>,
    /// Unknown sections and keys and values of the wrong type, in file order.
    pub(super) problems: Vec<Problem>,
    /// E.g. a secret in a file other users can read.
    pub(super) warnings: Vec<String>,
}

impl fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigFile")
            .field("path", &self.path)
            .field("values", &self.values)
            .finish_non_exhaustive()
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

impl ConfigFile {
    /// Reads and parses `path` (see [`ConfigFile::parse`]), warning when a file holding a
    /// secret is readable by other users.
    ///
    /// # Errors
    /// A [`Problem`] naming the file, how it was chosen, and what failed.
    pub fn read(path: &Path, origin: FileOrigin) -> Result<Self, Problem> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let hint = match origin {
                FileOrigin::Flag => "fix the path given to --config, or drop the flag",
                FileOrigin::Env => "fix MCP_MEMORY_CONFIG, or unset it",
                FileOrigin::DefaultLocation => "fix the file's permissions, or remove it",
            };
            Problem::in_file(
                path,
                None,
                format!("cannot read the config file (named by {origin}): {e}; {hint}"),
            )
        })?;
        let mut file = Self::parse(path, &text)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let secrets: Vec<&str> = SETTINGS
                .iter()
                .filter(|s| s.is_secret() && file.values.contains_key(&s.id))
                .map(|s| s.key)
                .collect();
            if let Ok(meta) = std::fs::metadata(path) {
                let mode = meta.permissions().mode() & 0o777;
                if !secrets.is_empty() && mode & 0o077 != 0 {
                    file.warnings.push(format!(
                        "{} holds a secret ({}) and other users can read it (mode {mode:04o}); \
                         run `chmod 600 {}`",
                        path.display(),
                        secrets.join(", "),
                        path.display()
                    ));
                }
            }
        }
        Ok(file)
    }

    /// Parses `text`, the contents of `path`. Unknown sections and keys, and values of the
    /// wrong type, are recorded as problems (each with its line and column) while the valid
    /// keys are kept; relative paths are made relative to `path`'s directory.
    ///
    /// # Errors
    /// A [`Problem`] with the line and column of a TOML syntax error.
    pub fn parse(path: &Path, text: &str) -> Result<Self, Problem> {
        let document = toml::de::DeTable::parse(text).map_err(|e| {
            let at = e.span().map(|s| position(text, s.start));
            Problem::in_file(
                path,
                at,
                format!("TOML syntax error: {}; fix the file", e.message()),
            )
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new(""));
        let mut file = Self {
            path: path.to_path_buf(),
            values: BTreeMap::new(),
            problems: Vec::new(),
            warnings: Vec::new(),
        };
        let mut found: Vec<(usize, Problem)> = Vec::new();
        let all_sections = sections();
        for (section_name, section_value) in document.get_ref() {
            let section = section_name.get_ref().as_ref();
            let start = section_name.span().start;
            let toml::de::DeValue::Table(table) = section_value.get_ref() else {
                let keys: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
                found.push((
                    start,
                    Problem::in_file(
                        path,
                        Some(position(text, start)),
                        format!(
                            "`{section}` is not in a section; the valid keys are {}",
                            keys.join(", ")
                        ),
                    ),
                ));
                continue;
            };
            if !all_sections.contains(&section) {
                found.push((
                    start,
                    Problem::in_file(
                        path,
                        Some(position(text, start)),
                        format!(
                            "unknown section [{section}]; the valid sections are {}",
                            all_sections
                                .iter()
                                .map(|s| format!("[{s}]"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                ));
                continue;
            }
            for (key, value) in table {
                let name = key.get_ref().as_ref();
                let at = key.span().start;
                let Some(setting) = SETTINGS
                    .iter()
                    .find(|s| s.section() == section && s.name() == name)
                else {
                    let valid: Vec<&str> = SETTINGS
                        .iter()
                        .filter(|s| s.section() == section)
                        .map(Setting::name)
                        .collect();
                    found.push((
                        at,
                        Problem::in_file(
                            path,
                            Some(position(text, at)),
                            format!(
                                "unknown key `{name}` in [{section}]; the valid keys there are {}",
                                valid.join(", ")
                            ),
                        ),
                    ));
                    continue;
                };
                match file_value(setting, value.get_ref()) {
                    Ok(v) => {
                        let v = if setting.kind == ValueKind::Path && !v.trim().is_empty() {
                            base.join(v.trim()).display().to_string()
                        } else {
                            v
                        };
                        file.values.insert(setting.id, Value::of(setting, v));
                    }
                    Err(expected) => {
                        let at = value.span().start;
                        found.push((
                            at,
                            Problem::in_file(
                                path,
                                Some(position(text, at)),
                                format!("{} must be {expected}", setting.key),
                            ),
                        ));
                    }
                }
            }
        }
        found.sort_by_key(|(at, _)| *at);
        file.problems = found.into_iter().map(|(_, p)| p).collect();
        Ok(file)
    }

    /// The value the file gives the setting `id` (blank counts as unset).
    #[must_use]
    pub fn get(&self, id: SettingId) -> Option<&Value> {
        self.values
            .get(&id)
            .filter(|v| !v.expose().trim().is_empty())
    }
}

/// `value` as the string the variable's parser expects, or what was expected instead.
fn file_value(setting: &Setting, value: &toml::de::DeValue<'_>) -> Result<String, &'static str> {
    use toml::de::DeValue;
    let expected = match setting.kind {
        ValueKind::Integer => "a whole number or a string",
        ValueKind::Number => "a number or a string",
        ValueKind::Text | ValueKind::Secret | ValueKind::Path => "a string",
    };
    match (value, setting.kind) {
        (DeValue::String(s), _) => Ok(s.to_string()),
        (DeValue::Integer(i), ValueKind::Integer | ValueKind::Number) => {
            i128::from_str_radix(i.as_str(), i.radix())
                .map(|n| n.to_string())
                .map_err(|_| expected)
        }
        (DeValue::Float(x), ValueKind::Number) => Ok(x.as_str().to_owned()),
        _ => Err(expected),
    }
}
