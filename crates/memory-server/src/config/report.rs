//! Showing the resolution: what `mcp-memory config` prints (text or JSON), every value with
//! its source and secrets masked, then every warning and problem.

use std::fmt;

use serde_json::json;

use super::problem::Source;
use super::resolve::{Overrides, Resolution};
use super::settings::{PRECEDENCE, SETTINGS};

impl Resolution {
    /// The JSON document `mcp-memory config --json` prints.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        let settings: Vec<serde_json::Value> = self
            .entries
            .iter()
            .map(|e| {
                json!({
                    "key": e.setting.key,
                    "env": e.setting.env,
                    "flag": e.setting.flag,
                    "secret": e.setting.is_secret(),
                    "value": e.value,
                    "source": e.source.as_ref().map_or("unset", Source::kind),
                    "from": e.source.as_ref().map(ToString::to_string),
                })
            })
            .collect();
        let problems: Vec<serde_json::Value> = self
            .problems
            .iter()
            .map(|p| {
                json!({
                    "setting": p.setting,
                    "location": p.location,
                    "message": p.message,
                })
            })
            .collect();
        json!({
            "config_file": self.file.as_ref().map(|(p, _)| p.display().to_string()),
            "config_file_from": self.file.as_ref().map(|(_, o)| o.to_string()),
            "precedence": PRECEDENCE,
            "settings": settings,
            "warnings": self.warnings,
            "problems": problems,
            "valid": self.problems.is_empty(),
        })
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some((path, origin)) => {
                writeln!(f, "config file: {} (from {origin})", path.display())?;
            }
            None => writeln!(f, "config file: none")?,
        }
        writeln!(f, "precedence: {PRECEDENCE}")?;
        writeln!(f)?;
        let width = SETTINGS.iter().map(|s| s.key.len()).max().unwrap_or(0);
        for e in &self.entries {
            let value = e.value.as_deref().unwrap_or("(not set)");
            let source = e.source.as_ref().map_or_else(
                || format!("unset ({} or {})", e.setting.env, e.setting.key),
                ToString::to_string,
            );
            writeln!(f, "{:<width$}  {value}  [{source}]", e.setting.key)?;
        }
        if !self.warnings.is_empty() {
            writeln!(f, "\nwarnings:")?;
            for w in &self.warnings {
                writeln!(f, "  - {w}")?;
            }
        }
        if !self.problems.is_empty() {
            let n = self.problems.len();
            writeln!(f, "\n{n} problem{}:", if n == 1 { "" } else { "s" })?;
            for p in &self.problems {
                writeln!(f, "  - {p}")?;
            }
        }
        Ok(())
    }
}

/// `mcp-memory config`: prints the effective configuration, every value with its source and
/// secrets masked, then every problem; fails (status 1) if there is any.
///
/// # Errors
/// The configuration is not valid (the problems are printed first).
pub fn show(overrides: &Overrides, json: bool) -> anyhow::Result<()> {
    let resolution = Resolution::load(overrides);
    if json {
        println!("{:#}", resolution.to_json());
        if !resolution.problems.is_empty() {
            // The document above already lists the problems: no second JSON document.
            return Err(crate::output::AlreadyReported(format!(
                "the configuration is not valid: {} problem(s)",
                resolution.problems.len()
            ))
            .into());
        }
        return Ok(());
    }
    print!("{resolution}");
    let n = resolution.problems.len();
    if n > 0 {
        anyhow::bail!(
            "the configuration is not valid: {n} problem{} (listed above)",
            if n == 1 { "" } else { "s" }
        );
    }
    Ok(())
}
