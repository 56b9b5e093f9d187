//! The HS256 secret, from `--secret`, `--secret-file` or `POSELINK_SECRET`: shared by
//! every subcommand that signs or verifies tokens.
//!
//! Precedence: a command-line flag beats the environment, and `--secret` and
//! `--secret-file` together are refused. A secret file's surrounding whitespace
//! (a trailing newline, typically) is trimmed; the secret is the remaining bytes as
//! they are (a hex string is *not* decoded).

use std::path::{Path, PathBuf};

use poselink::token::TokenKey;

use crate::CliError;

/// The environment variable a secret may come from.
pub const SECRET_ENV: &str = "POSELINK_SECRET";

/// Where a secret was found.
#[derive(Clone, derive_more::Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// Given as is (`--secret` or the environment).
    Inline(#[debug("{:?}", poselink::redact::text(_0))] String),
    /// A file to read (`--secret-file`).
    File(PathBuf),
}

/// `POSELINK_SECRET`, when set and not empty.
pub fn from_env() -> Option<String> {
    std::env::var(SECRET_ENV).ok().filter(|s| !s.is_empty())
}

/// Chooses the secret's source: `--secret`, else `--secret-file`, else the
/// environment (`env`); `None` when there is none.
pub fn choose(
    flag: Option<&str>,
    file: Option<&Path>,
    env: Option<String>,
) -> Result<Option<SecretSource>, CliError> {
    match (flag, file) {
        (Some(_), Some(_)) => Err(CliError::config(
            "give either --secret or --secret-file, not both",
        )),
        (Some(s), None) => Ok(Some(SecretSource::Inline(s.to_owned()))),
        (None, Some(p)) => Ok(Some(SecretSource::File(p.to_owned()))),
        (None, None) => Ok(env.map(SecretSource::Inline)),
    }
}

/// Reads a secret file and trims surrounding whitespace.
pub fn read_file(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| {
            CliError::config(format!(
                "cannot read the secret file {}: {e}",
                path.display()
            ))
        })
}

/// The secret's text (reading the file if it comes from one).
pub fn load(source: &SecretSource) -> Result<String, CliError> {
    match source {
        SecretSource::Inline(s) => Ok(s.clone()),
        SecretSource::File(p) => read_file(p),
    }
}

/// A signing key for `secret`, or the reason it is refused (too short).
pub fn key(secret: &str) -> Result<TokenKey, CliError> {
    TokenKey::hs256(secret.as_bytes()).map_err(|e| CliError::config(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence() {
        let env = Some("from-env".to_string());
        assert_eq!(
            choose(Some("flag"), None, env.clone()).unwrap(),
            Some(SecretSource::Inline("flag".into()))
        );
        assert_eq!(
            choose(None, Some(Path::new("f")), env.clone()).unwrap(),
            Some(SecretSource::File("f".into()))
        );
        assert_eq!(
            choose(None, None, env).unwrap(),
            Some(SecretSource::Inline("from-env".into()))
        );
        assert_eq!(choose(None, None, None).unwrap(), None);
        let both = choose(Some("a"), Some(Path::new("f")), None).unwrap_err();
        assert_eq!(both.code, crate::EXIT_CONFIG);
    }

    #[test]
    fn short_secret_is_refused_with_the_minimum() {
        let e = key("short").unwrap_err();
        assert!(e.message.contains("32 bytes"), "{}", e.message);
        key("0123456789abcdef0123456789abcdef").unwrap();
    }
}
