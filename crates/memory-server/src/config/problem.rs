//! What went wrong and where: [`Source`] (where a value came from), [`Problem`] (one
//! problem, named where its value came from), [`Problems`] and [`ConfigError`].

use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::settings::{PRECEDENCE, Setting};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag, e.g. `--db`.
    Flag(&'static str),
    /// An environment variable.
    Env(&'static str),
    /// A key in the configuration file.
    File {
        /// The file.
        path: PathBuf,
        /// The key, e.g. `sqlite.path`.
        key: &'static str,
    },
    /// The built-in default.
    Default,
}

impl Source {
    /// `flag`, `env`, `file` or `default`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Flag(_) => "flag",
            Self::Env(_) => "env",
            Self::File { .. } => "file",
            Self::Default => "default",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag(flag) => write!(f, "flag {flag}"),
            Self::Env(var) => write!(f, "env {var}"),
            Self::File { path, key } => write!(f, "file {}:{key}", path.display()),
            Self::Default => f.write_str("default"),
        }
    }
}

/// One configuration problem: where (a setting, variable, flag or file position) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file key of the setting at fault, when one is.
    pub setting: Option<&'static str>,
    /// Where the bad value came from, e.g. `CLOUDFLARE_ACCOUNT_ID`,
    /// `cloudflare.account_id in /home/me/.config/mcp-memory/config.toml`, or `FILE:3:1`.
    pub location: String,
    /// What is wrong and what is expected (never a secret).
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

impl Problem {
    /// A problem with `setting`'s value from `source` (`None`: not set anywhere).
    pub(super) fn at(
        setting: &'static Setting,
        source: Option<&Source>,
        message: impl Into<String>,
    ) -> Self {
        let location = match source {
            Some(Source::Flag(flag)) => (*flag).to_owned(),
            Some(Source::Env(var)) => (*var).to_owned(),
            Some(Source::File { path, key }) => format!("{key} in {}", path.display()),
            Some(Source::Default) => setting.env.to_owned(),
            None => format!("{} (or {} in the config file)", setting.env, setting.key),
        };
        Self {
            setting: Some(setting.key),
            location,
            message: message.into(),
        }
    }

    /// A problem with the file itself, at `path` (and a position, if known).
    pub(super) fn in_file(
        path: &Path,
        position: Option<(usize, usize)>,
        message: impl Into<String>,
    ) -> Self {
        let location = match position {
            Some((line, column)) => format!("{}:{line}:{column}", path.display()),
            None => path.display().to_string(),
        };
        Self {
            setting: None,
            location,
            message: message.into(),
        }
    }
}

/// Every problem found, listed one per line by `Display`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "the configuration is not valid: {n} problem{} (precedence: {PRECEDENCE}; \
             `mcp-memory config` shows every value and its source)",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.0 {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

/// A configuration problem, naming the variable, flag or file key to fix.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A variable holds a value we do not understand.
    #[error("{variable}={value:?} is not valid; expected {expected}")]
    Invalid {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// What would be accepted.
        expected: &'static str,
    },
    /// Everything wrong with the configuration (file, flags, variables, and with the
    /// Cloudflare backend selected every missing or malformed Cloudflare setting), each
    /// named where its value came from.
    #[error("{0}")]
    Problems(Problems),
}
