//! What `Debug` shows of a secret: whether it is set, never its text.
//!
//! The settings that hold a secret (the hub's token secret and broker
//! credentials, a client's access token, a private key) and the hello
//! message (its token) derive `Debug` with `derive_more`, whose per-field
//! format routes each secret through one of these, so `{:?}` of a
//! configuration or a message can be logged or put in a bug report.
//! [`text`] is `no_std`; the others come with the `engine` feature.
//!
//! ```
//! let token = Some("eyJhbGciOiJIUzI1NiJ9.e30.sig".to_string());
//! assert_eq!(format!("{:?}", poselink::redact::option(&token)), r#"Some("<redacted>")"#);
//! assert_eq!(format!("{:?}", poselink::redact::option(&None)), "None");
//! assert_eq!(format!("{:?}", poselink::redact::text("")), r#""""#);
//! ```

/// What stands in for a secret's text.
pub const REDACTED: &str = "<redacted>";

/// An optional secret as `Debug` shows it: `Some("<redacted>")` or `None`.
#[cfg(feature = "engine")]
pub fn option(secret: &Option<String>) -> Option<&'static str> {
    secret.as_ref().map(|_| REDACTED)
}

/// A secret held as a string that is empty when unset: `"<redacted>"`, or
/// `""` when it is empty.
pub fn text(secret: &str) -> &'static str {
    if secret.is_empty() { "" } else { REDACTED }
}

/// A URL, or several separated by commas, with the password or token each
/// may carry (`nats://user:pass@host`, `nats://token@host`) shown as `***`:
/// what `Debug` and the log show of the broker's URL.
///
/// ```
/// assert_eq!(poselink::redact::url("nats://hub:pw@broker:4222"), "nats://hub:***@broker:4222");
/// ```
#[cfg(feature = "hub")]
pub fn url(url: &str) -> String {
    crate::hub::redacted_url(url)
}

#[cfg(all(test, feature = "engine"))]
mod tests {
    const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.access-token-42.sig";

    /// Both forms of `Debug` of `value` keep `hidden` out and say `<redacted>`.
    fn assert_hidden(value: &dyn core::fmt::Debug, hidden: &str) {
        for shown in [format!("{value:?}"), format!("{value:#?}")] {
            assert!(!shown.contains(hidden), "{hidden} in {shown}");
            assert!(shown.contains(super::REDACTED), "{shown}");
        }
    }

    #[test]
    fn a_hello_hides_its_token() {
        let hello = crate::proto::Hello {
            minor: 1,
            token: TOKEN,
            resume: 7,
            client: "poselink-client/test",
            stream: 42,
        };
        assert_hidden(&hello, TOKEN);
        let shown = format!("{hello:?}");
        assert!(
            shown.contains("poselink-client/test") && shown.contains("stream: 42"),
            "{shown}"
        );
        let anonymous = crate::proto::Hello { token: "", ..hello };
        assert!(format!("{anonymous:?}").contains(r#"token: """#));
    }

    #[test]
    fn client_settings_hide_their_token() {
        let session = crate::client::SessionConfig {
            token: TOKEN.into(),
            ..Default::default()
        };
        assert_hidden(&session, TOKEN);
        let engine = crate::engine::EngineConfig {
            token: TOKEN.into(),
            ..Default::default()
        };
        assert_hidden(&engine, TOKEN);
        // An unset token still reads as unset, and the other fields as ever.
        let shown = format!("{:?}", crate::engine::EngineConfig::default());
        assert!(shown.contains(r#"token: """#), "{shown}");
        assert!(shown.contains("max_rooms: 8"), "{shown}");
    }

    #[cfg(feature = "hub")]
    #[test]
    fn load_settings_and_private_keys_are_hidden() {
        let load = crate::loadgen::LoadConfig {
            token: TOKEN.into(),
            ..Default::default()
        };
        assert_hidden(&load, TOKEN);
        let ca = crate::tls::private_ca(&["localhost"], -1, 1).unwrap();
        let key_body = ca.key_pem.lines().nth(1).unwrap().to_string();
        assert_hidden(&ca, &key_body);
        assert!(
            format!("{ca:?}").contains("BEGIN CERTIFICATE"),
            "the certificates stay"
        );
    }
}
