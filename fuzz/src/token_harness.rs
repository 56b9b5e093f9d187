//! The token harness behind the fuzz target `token`, shared with
//! `tests/protocol/props/` (included there with `#[path]`).
//!
//! [`run`] hands its input to `TokenKey::verify` as a hello's token, twice: as it
//! is (when it is UTF-8), and as the signed part of a token made with the
//! harness's key — a JWT header and the input as its claims, signed, so that
//! inputs get past the signature and reach the claims' parsing and checks. Then
//! it asks the claims what a join may do. Whatever the input, nothing may panic,
//! and a token that verifies has a valid user id, has not expired at the time
//! given, and grants a role only for rooms its grants match.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use poselink::proto::Role;
use poselink::token::{Claims, TokenKey};

/// The harness's secret (32 bytes, the minimum).
pub const SECRET: &[u8] = b"fuzzing-secret-of-32-bytes......";
/// The time every token is verified at, seconds since 1970.
pub const NOW: u64 = 1_700_000_000;
/// Room names asked about for every token that verifies.
const ROOMS: [&str; 4] = ["studio-1", "studio-", "a", "kitchen"];

/// What one input did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the input as it was verified.
    pub raw_ok: bool,
    /// Whether the signed input verified.
    pub signed_ok: bool,
}

/// Runs one input; panics if a property above does not hold.
pub fn run(data: &[u8]) -> Outcome {
    let key = TokenKey::hs256(SECRET).expect("a 32-byte secret");
    let mut out = Outcome::default();
    if let Ok(text) = core::str::from_utf8(data) {
        out.raw_ok = check(key.verify(text, NOW));
    }
    let token = sign(data);
    out.signed_ok = check(key.verify(&token, NOW));
    out
}

/// `header.base64(claims).signature` for these claims bytes, HS256 with [`SECRET`].
pub fn sign(claims: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims);
    let signed = format!("{header}.{body}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET);
    let sig = URL_SAFE_NO_PAD.encode(ring::hmac::sign(&key, signed.as_bytes()));
    format!("{signed}.{sig}")
}

/// The properties of a verification's result; whether it verified.
fn check(result: Result<Claims, poselink::token::TokenError>) -> bool {
    match result {
        Ok(claims) => {
            assert!(claims.exp > NOW, "an expired token verified");
            assert!(poselink::proto::validate_name(&claims.sub, "user id").is_ok());
            for room in ROOMS {
                let grant = claims.grant_for(room);
                for role in [Role::Viewer, Role::Member, Role::Owner] {
                    match claims.allows(room, role) {
                        Ok(_) => assert!(grant.is_some(), "{room} allowed with no grant"),
                        Err(e) => assert!(!e.to_string().is_empty()),
                    }
                }
            }
            true
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            false
        }
    }
}
