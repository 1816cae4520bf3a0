//! [`ApiToken`]: the Cloudflare API token as a secret that never prints.

use std::fmt;

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
}
