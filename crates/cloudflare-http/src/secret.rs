//! [`ApiToken`]: the Cloudflare API token as a secret that never prints.

use std::fmt;

/// Environment variable holding the Cloudflare API token.
///
/// See <https://developers.cloudflare.com/fundamentals/api/get-started/create-token/>.
pub const API_TOKEN_ENV: &str = "CLOUDFLARE_API_TOKEN";

/// What [`ApiToken`]'s `Debug` and `Display` print instead of the value.
const REDACTED: &str = "***";

/// A Cloudflare API token.
///
/// `Debug` and `Display` print `***`, never the value; the only way to read it is
/// [`ApiToken::expose`], which the transport calls when it sets the
/// `Authorization` header.
///
/// ```
/// use cloudflare_http::ApiToken;
///
/// let token = ApiToken::new("s3cr3t");
/// assert_eq!(format!("{token:?}"), "ApiToken(***)");
/// assert_eq!(token.to_string(), "***");
/// assert_eq!(token.expose(), "s3cr3t");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl ApiToken {
    /// Wraps a token value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Reads the token from [`API_TOKEN_ENV`] (`CLOUDFLARE_API_TOKEN`).
    ///
    /// # Errors
    ///
    /// [`TokenError::Missing`] if the variable is unset, not Unicode or blank.
    pub fn from_env() -> Result<Self, TokenError> {
        Self::from_env_lookup(|key| std::env::var(key).ok())
    }

    /// Like [`ApiToken::from_env`], reading variables through `lookup`
    /// (testable without touching the process environment).
    ///
    /// # Errors
    ///
    /// [`TokenError::Missing`] if `lookup` returns `None` or a blank value.
    pub fn from_env_lookup(
        lookup: impl FnOnce(&str) -> Option<String>,
    ) -> Result<Self, TokenError> {
        match lookup(API_TOKEN_ENV) {
            Some(value) if !value.trim().is_empty() => Ok(Self(value.trim().to_owned())),
            _ => Err(TokenError::Missing {
                variable: API_TOKEN_ENV,
            }),
        }
    }

    /// The token value. Do not log it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for ApiToken {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ApiToken")
            .field(&format_args!("{REDACTED}"))
            .finish()
    }
}

impl fmt::Display for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Why an [`ApiToken`] could not be read from the environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The variable is unset, not valid Unicode, or blank.
    #[error(
        "{variable} is not set (or is blank): create an API token in the Cloudflare dashboard \
         (My Profile > API Tokens) and export it as {variable}"
    )]
    Missing {
        /// The variable that was read.
        variable: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "very-secret-token-value";

    #[test]
    fn debug_and_display_hide_the_value() {
        let token = ApiToken::new(SECRET);
        let debug = format!("{token:?}");
        let display = format!("{token}");
        assert!(!debug.contains(SECRET), "{debug}");
        assert!(!display.contains(SECRET), "{display}");
        assert_eq!(display, "***");
        assert!(debug.contains("***"));
        // Alternate form too.
        assert!(!format!("{token:#?}").contains(SECRET));
    }

    #[test]
    fn expose_returns_the_value() {
        let token = ApiToken::from(SECRET.to_owned());
        assert_eq!(token.expose(), SECRET);
    }

    #[test]
    fn from_env_lookup_reads_the_variable() {
        let token = ApiToken::from_env_lookup(|key| {
            assert_eq!(key, API_TOKEN_ENV);
            Some(format!(" {SECRET}\n"))
        })
        .unwrap();
        assert_eq!(token.expose(), SECRET);
    }

    #[test]
    fn missing_or_blank_token_names_the_variable() {
        for value in [None, Some(String::new()), Some("   ".to_owned())] {
            let err = ApiToken::from_env_lookup(|_| value.clone()).unwrap_err();
            assert_eq!(
                err,
                TokenError::Missing {
                    variable: API_TOKEN_ENV
                }
            );
            assert!(err.to_string().contains("CLOUDFLARE_API_TOKEN"));
        }
    }
}
