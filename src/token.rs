//! Access tokens: standard JWTs (HS256) that an operator's backend in any language
//! can mint, naming the user, the rooms or room patterns granted with a role each,
//! and an expiry. The hub verifies the token of a hello with [`TokenKey::verify`]
//! and asks the claims what a join may do with [`Claims::grant_for`]; the `token`
//! CLI command mints with [`TokenKey::mint`]. Sans-IO: the time is passed in, so
//! expiry is tested with any clock. Verification runs once per connection, on the
//! control path, so it may allocate.
//!
//! The claims, as JSON:
//!
//! ```text
//! { "sub": "pi-kitchen",                        // user id (a protocol name)
//!   "exp": 1767225600,                          // expiry, seconds since 1970
//!   "rooms": [ { "room": "studio-*",            // exact name, or prefix + "*"
//!                "role": "member",              // owner | member | viewer
//!                "create": true } ] }           // may create the room (default true)
//! ```

use core::fmt;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use crate::proto::{MAX_TOKEN_LEN, Role, validate_name};

/// One room (or pattern of rooms) a token grants, with the highest role it grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// A room name, or a prefix followed by `*` (`"*"` alone grants every room).
    pub room: String,
    /// The highest role granted: a join may ask for this role or a lower one.
    #[serde(with = "role_name")]
    pub role: Role,
    /// Whether a join may create the room if it does not exist.
    #[serde(default = "yes")]
    pub create: bool,
}

fn yes() -> bool {
    true
}

mod role_name {
    use super::Role;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(role: &Role, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(role.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Role, D::Error> {
        let s = <&str>::deserialize(d)?;
        Role::parse(s).ok_or_else(|| D::Error::custom("role must be owner, member or viewer"))
    }
}

/// What a token says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// The rooms granted.
    pub rooms: Vec<Grant>,
}

/// How much a role may do: owner > member > viewer.
const fn rank(role: Role) -> u8 {
    match role {
        Role::Owner => 2,
        Role::Member => 1,
        Role::Viewer => 0,
    }
}

impl Claims {
    /// The first grant whose room or pattern matches `room`.
    pub fn grant_for(&self, room: &str) -> Option<&Grant> {
        self.rooms.iter().find(|g| match g.room.strip_suffix('*') {
            Some(prefix) => room.starts_with(prefix),
            None => g.room == room,
        })
    }

    /// Whether a join of `room` as `role` is allowed, and if so whether it may
    /// create the room.
    pub fn allows(&self, room: &str, role: Role) -> Result<bool, TokenError> {
        let g = self.grant_for(room).ok_or(TokenError::RoomNotGranted)?;
        if rank(role) > rank(g.role) {
            return Err(TokenError::RoleNotGranted);
        }
        Ok(g.create)
    }
}

/// The shortest HS256 secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// Why a token was refused. Each maps to a protocol error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// No token was given.
    Missing,
    /// The token is not a well-formed JWT with the claims above.
    Malformed,
    /// The signature does not match the hub's secret (forged, or another secret).
    BadSignature,
    /// The token is signed with another algorithm than HS256.
    WrongAlgorithm,
    /// The token has expired.
    Expired,
    /// The token grants no room matching the one asked for.
    RoomNotGranted,
    /// The token grants the room with a lower role than the one asked for.
    RoleNotGranted,
    /// The signing secret is shorter than [`MIN_SECRET_LEN`] bytes.
    WeakSecret,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenError::Missing => "no token: send a JWT in the hello (mint one with `poselink token`)",
            TokenError::Malformed => {
                "the token is not a JWT with sub, exp and rooms claims; mint it again"
            }
            TokenError::BadSignature => {
                "the token's signature does not match this hub's secret; it was forged or minted with another secret"
            }
            TokenError::WrongAlgorithm => "the token must be signed with HS256",
            TokenError::Expired => "the token has expired; mint a new one",
            TokenError::RoomNotGranted => "the token does not grant this room",
            TokenError::RoleNotGranted => "the token grants this room only with a lower role",
            TokenError::WeakSecret => {
                "the token secret must be at least 32 bytes; generate one with `openssl rand -hex 32`"
            }
        })
    }
}

impl core::error::Error for TokenError {}

/// A hub's signing secret, for minting and verifying tokens.
///
/// ```
/// use poselink::proto::Role;
/// use poselink::token::{Claims, Grant, TokenKey};
/// let key = TokenKey::hs256(b"a secret of at least 32 bytes....").unwrap();
/// let claims = Claims {
///     sub: "pi-kitchen".into(),
///     exp: 2_000_000_000,
///     rooms: vec![Grant { room: "studio-*".into(), role: Role::Member, create: true }],
/// };
/// let jwt = key.mint(&claims).unwrap();
/// let back = key.verify(&jwt, 1_700_000_000).unwrap();
/// assert_eq!(back.allows("studio-1", Role::Viewer), Ok(true));
/// assert!(back.allows("studio-1", Role::Owner).is_err());
/// ```
pub struct TokenKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// A key for HS256 with `secret`, which must be at least 32 bytes (RFC 7518
    /// asks for a key as long as the hash).
    pub fn hs256(secret: &[u8]) -> Result<Self, TokenError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(TokenError::WeakSecret);
        }
        Ok(TokenKey {
            encoding: EncodingKey::from_secret(secret).map_err(|_| TokenError::WeakSecret)?,
            decoding: DecodingKey::from_secret(secret).map_err(|_| TokenError::WeakSecret)?,
        })
    }

    /// Signs `claims` into a JWT.
    pub fn mint(&self, claims: &Claims) -> Result<String, TokenError> {
        validate_name(&claims.sub, "user id").map_err(|_| TokenError::Malformed)?;
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|_| TokenError::Malformed)
    }

    /// Checks `token`'s signature, algorithm, claims and expiry at `now_secs`
    /// (seconds since the Unix epoch) and returns its claims.
    pub fn verify(&self, token: &str, now_secs: u64) -> Result<Claims, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked below against the caller's clock, not the crate's.
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(
            |e| match e.kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm,
                _ => TokenError::Malformed,
            },
        )?;
        let claims = data.claims;
        if now_secs >= claims.exp {
            return Err(TokenError::Expired);
        }
        validate_name(&claims.sub, "user id").map_err(|_| TokenError::Malformed)?;
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn claims(rooms: Vec<Grant>) -> Claims {
        Claims {
            sub: "pi-4".into(),
            exp: 1_000,
            rooms,
        }
    }

    fn grant(room: &str, role: Role, create: bool) -> Grant {
        Grant {
            room: room.into(),
            role,
            create,
        }
    }

    #[test]
    fn mint_verify_and_grants() {
        let key = TokenKey::hs256(SECRET).unwrap();
        let c = claims(vec![
            grant("gym", Role::Owner, true),
            grant("studio-*", Role::Viewer, false),
        ]);
        let jwt = key.mint(&c).unwrap();
        let back = key.verify(&jwt, 999).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.allows("gym", Role::Owner), Ok(true));
        assert_eq!(back.allows("studio-7", Role::Viewer), Ok(false));
        assert_eq!(
            back.allows("studio-7", Role::Member),
            Err(TokenError::RoleNotGranted)
        );
        assert_eq!(
            back.allows("garage", Role::Viewer),
            Err(TokenError::RoomNotGranted)
        );
    }

    #[test]
    fn every_refusal() {
        let key = TokenKey::hs256(SECRET).unwrap();
        let jwt = key
            .mint(&claims(vec![grant("*", Role::Member, true)]))
            .unwrap();
        assert_eq!(key.verify(&jwt, 1_000), Err(TokenError::Expired));
        assert_eq!(key.verify("", 0), Err(TokenError::Missing));
        assert_eq!(key.verify("not.a.jwt", 0), Err(TokenError::Malformed));
        let other = TokenKey::hs256(b"another secret, also 32 bytes long").unwrap();
        assert_eq!(
            TokenKey::hs256(b"short").unwrap_err(),
            TokenError::WeakSecret
        );
        assert_eq!(other.verify(&jwt, 0), Err(TokenError::BadSignature));
        // A tampered payload fails the signature.
        let mut parts: Vec<&str> = jwt.split('.').collect();
        let forged_claims = claims(vec![grant("*", Role::Owner, true)]);
        let forged = key.mint(&forged_claims).unwrap();
        parts[1] = forged.split('.').nth(1).unwrap();
        assert_eq!(
            key.verify(&parts.join("."), 0),
            Err(TokenError::BadSignature)
        );
        // HS384 is refused even with the right secret.
        let hs384 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS384),
            &claims(vec![]),
            &EncodingKey::from_secret(SECRET).unwrap(),
        )
        .unwrap();
        assert_eq!(key.verify(&hs384, 0), Err(TokenError::WrongAlgorithm));
        // Claims that are not ours, or a user id that is not a protocol name.
        let junk = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "x", "exp": 10}),
            &EncodingKey::from_secret(SECRET).unwrap(),
        )
        .unwrap();
        assert_eq!(key.verify(&junk, 0), Err(TokenError::Malformed));
        let mut bad_user = claims(vec![]);
        bad_user.sub = "has space".into();
        assert_eq!(key.mint(&bad_user), Err(TokenError::Malformed));
        for e in [
            TokenError::Missing,
            TokenError::Malformed,
            TokenError::BadSignature,
            TokenError::WrongAlgorithm,
            TokenError::Expired,
            TokenError::RoomNotGranted,
            TokenError::RoleNotGranted,
            TokenError::WeakSecret,
        ] {
            assert!(e.to_string().len() > 20, "{e:?}");
        }
    }

    #[test]
    fn a_token_from_another_language_verifies() {
        // Minted by a plain HS256 library elsewhere: role as a string, `create`
        // left out (defaults to true).
        let other = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "browser-1", "exp": 5000,
                "rooms": [{"room": "gym", "role": "viewer"}]}),
            &EncodingKey::from_secret(SECRET).unwrap(),
        )
        .unwrap();
        let c = TokenKey::hs256(SECRET).unwrap().verify(&other, 10).unwrap();
        assert_eq!(c.allows("gym", Role::Viewer), Ok(true));
    }
}
